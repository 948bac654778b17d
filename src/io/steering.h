// Steering: which dataplane worker the kernel hands a frame to, chosen by
// the CPU a flow's frames arrive on while that CPU has time to spare, and by
// flow hash while it is saturated; a flow keeps its choice while it sends.
//
// Why: a frame a device sends is queued on one of its TAP's queues, and
// the lower's frames on one of the fanout group's sockets; the worker that
// owns that queue is then woken. On a VM, waking a worker whose CPU is
// halted costs tens of microseconds (the hypervisor has to run the vCPU
// again), several times what forwarding the frame costs: a ping between two
// devices paid two such wakes per round trip. Queued for the worker pinned
// to the CPU the sender runs on, the frame wakes a thread on a busy CPU,
// which runs as soon as the sender blocks: no halted CPU, no interrupt. But
// when that CPU is saturated (a stream's sender uses all of it), the worker
// there would share it with the sender while the other CPUs idle: the
// frames are then spread by flow hash, as before, so both cores work.
//
// Contract: open() loads one eBPF socket-filter program (libbpf; needs
// CAP_BPF or CAP_SYS_ADMIN) with two maps: an array with one entry per
// possible CPU, {queue, spread}, and an LRU hash of recent flows (by the
// skb's flow hash). For a frame on CPU c the choice is the flow hash when
// spread[c] is set and the frame has one, else queue[c]; TUN
// (TUNSETSTEERINGEBPF) and AF_PACKET fanout (PACKET_FANOUT_EBPF) take the
// program's value modulo their queue or socket count. Frames keep their
// order per flow: a flow's first frame, or its first after gap_ns of
// silence, takes the choice, and the flow keeps that value while it sends
// (a TCP flow sends from its writer's CPU and, clocked by ACKs, from the
// CPU that received them: by CPU alone its frames would cross queues and
// arrive out of order). The one exception: a flow sending on a saturated
// CPU moves to its hash, once, hold_ns after it got its value (a few frames
// may then pass each other). Frames without a flow hash go by CPU. The
// CPU map is mapped into the process (BPF_F_MMAPABLE): set_spread() is one
// relaxed store, safe from any thread, no system call.
// Closing (destruction) drops the process's references; a TAP or fanout
// group the program is attached to keeps it (and the map) alive.
// Nothing throws; errors are -errno.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "io/owned_fd.h"

namespace umacvlan::io {

struct SteeringOptions {
  std::uint64_t gap_ns = 1000000;     // silence after which a flow chooses again
  std::uint64_t hold_ns = 100000000;  // a flow's least time on a queue before it spreads
};

class Steering {
 public:
  Steering() = default;

  using Options = SteeringOptions;

  // queue_of_cpu[c]: the queue (worker) for frames on CPU c while c is not
  // saturated; CPUs past its end get c modulo its size. The times are at
  // most 2^31-1 ns (-EINVAL).
  static int open(std::span<const std::uint32_t> queue_of_cpu, Steering* out,
                  std::string* error = nullptr, const Options& options = Options{});

  bool valid() const { return prog_.valid(); }
  int prog_fd() const { return prog_.get(); }
  std::size_t cpus() const { return cpus_; }

  // Frames arriving on CPU cpu go by flow (true) or to its queue (false).
  void set_spread(std::size_t cpu, bool spread);
  bool spread(std::size_t cpu) const;

 private:
  OwnedFd map_;
  OwnedFd flows_;
  OwnedFd prog_;
  Mapping<std::uint32_t> values_;  // {queue, spread} per CPU
  std::size_t cpus_ = 0;
};

}  // namespace umacvlan::io
