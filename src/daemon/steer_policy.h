// steer_policy: where each CPU's frames should go, decided from one sample
// of the CPUs' and the workers' load (adaptive steering, io/steering.h).
//
// Why: with a worker pinned to each CPU, the frames a flow sends on CPU c
// go to c's worker, which then runs as soon as the sender blocks (no
// halted CPU to wake). When a sender keeps c saturated, that worker shares
// c with it while another CPU idles: a 64-byte UDP flood from a sender on
// c reaches about a quarter of the rate it does with the worker elsewhere.
// The frames of such a CPU are then sent *away*, to a CPU with time to
// spare.
//
// Contract: decide_steering() looks at one sample and returns, for each
// CPU, nullopt (calm: its frames go to its own worker) or the worker its
// frames go to. A CPU is sent away when it is saturated (the caller keeps
// that flag, with hysteresis) and its own worker takes at least
// kWorkerShare of the sample's time (a CPU saturated by something else, an
// application that polls, a sender whose worker is elsewhere, stays calm:
// a worker on another CPU would only add a cross-CPU wake-up to every
// frame); the target is the worker of the least busy CPU that is known,
// neither saturated nor itself sending away (two CPUs sending to each other
// would move flows to and fro). A CPU that sends away goes on doing so while
// its target worker takes kWorkerShare or more, however busy it is itself
// now (with its frames gone it is less busy, not calmer). CPUs are decided
// in order, each seeing the decisions before it. Inputs of the wrong size
// count as unknown (a CPU past `busy` is calm; a worker past the shares
// takes nothing). No I/O, no allocation beyond the result, nothing throws.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace umacvlan::daemon {

inline constexpr double kWorkerShare = 0.2;

struct SteerSample {
  std::span<const double> busy;             // per CPU: busy share, 0..1; < 0 unknown
  std::span<const std::uint8_t> saturated;  // per CPU: nonzero when saturated (the caller's flag)
  std::span<const double> worker_share;     // per worker: its busy share
  std::span<const int> worker_cpu;          // per worker: the CPU it is pinned to
  std::span<const std::uint32_t> own;       // per CPU: the worker its frames go to when calm
  // Per CPU: what it does now (nullopt: calm, else the worker it sends to).
  std::span<const std::optional<std::uint32_t>> away;
};

std::vector<std::optional<std::uint32_t>> decide_steering(const SteerSample& s);

}  // namespace umacvlan::daemon
