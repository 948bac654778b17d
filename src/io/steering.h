// Steering: which dataplane worker the kernel hands a frame to, chosen by
// the CPU a flow's frames arrive on while that CPU has time to spare, and
// away from it, to a CPU that has, while it is saturated; a flow keeps its
// choice while it sends.
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
// there would share it with the sender while another CPU idles: the frames
// then go to that other CPU's worker.
//
// Contract: open() loads one eBPF socket-filter program (libbpf; needs
// CAP_BPF or CAP_SYS_ADMIN) with two maps: an array with one entry per
// possible CPU, {queue, state}, and an LRU hash of recent flows (by the
// skb's flow hash). A CPU is calm, or sends its frames away to another
// queue (set_away(): the caller's choice, for a CPU saturated with
// forwarding while another has time to spare). A frame on CPU c is given
// c's queue, or the queue c sends away to; TUN (TUNSETSTEERINGEBPF) and
// AF_PACKET fanout (PACKET_FANOUT_EBPF) take the program's value modulo
// their queue or socket count. Frames keep their order per flow: a flow's
// first frame, or its first after gap_ns of silence on a calm CPU, takes
// the choice, and the flow keeps that value while it sends (a TCP flow
// sends from its writer's CPU and, clocked by ACKs, from the CPU that
// received them: by CPU alone its frames would cross queues and arrive out
// of order). On a CPU that sends away a silence changes nothing (a stream
// whose sender shares the CPU pauses now and then). The one exception: a
// flow sending on a CPU that sends away moves there if it has had its value
// for hold_ns (so at most once per hold_ns; a few frames may then pass each
// other). Frames without a flow hash go by CPU. The CPU map is mapped into the process
// (BPF_F_MMAPABLE): set_calm() and set_away() are one relaxed store each,
// safe from any thread, no system call.
// Closing (destruction) drops the process's references; a TAP or fanout
// group the program is attached to keeps it (and the map) alive.
// Nothing throws; errors are -errno.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "io/owned_fd.h"

namespace umacvlan::io {

struct SteeringOptions {
  std::uint64_t gap_ns = 1000000;     // silence after which a flow chooses again
  std::uint64_t hold_ns = 100000000;  // a flow's least time on a queue before it moves
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

  // The queue the table gave CPU cpu (0 past the end).
  std::uint32_t queue(std::size_t cpu) const;
  // CPU cpu's frames go to its own queue, and its flows choose again after
  // a silence.
  void set_calm(std::size_t cpu);
  // CPU cpu's frames go to queue `to` (below kMaxQueue); its flows move
  // there (each when it has had its queue for hold_ns) and do not choose
  // again after a silence.
  static constexpr std::uint32_t kMaxQueue = 0x7fffffff;
  void set_away(std::size_t cpu, std::uint32_t to);
  // The queue CPU cpu sends away to, if it does.
  std::optional<std::uint32_t> away(std::size_t cpu) const;

 private:
  OwnedFd map_;
  OwnedFd flows_;
  OwnedFd prog_;
  Mapping<std::uint32_t> values_;  // {queue, state} per CPU
  std::size_t cpus_ = 0;
};

}  // namespace umacvlan::io
