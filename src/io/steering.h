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
// for hold_ns (so at most once per hold_ns). Either way a flow changes
// queue only once the worker of its old queue has caught up with it: that
// worker said (caught_up()) that at some time at least kSettleNs after the
// flow's previous frame it had nothing left to read, so every frame of the
// flow queued there has been forwarded and none can be passed by one on the
// new queue. Until then the flow keeps its queue (a silence that comes from
// a stalled worker, not from the sender, is no reason to move: moving then
// put a TCP stream's next frames ahead of the ones still queued, and each
// such pass cost it dozens of spurious retransmissions). A queue the table
// of caught-up times does not cover (kMaxQueues or more) moves without
// waiting. Frames without a flow hash go by CPU. The CPU map and the
// caught-up table are mapped into the process (BPF_F_MMAPABLE):
// set_calm(), set_away() and caught_up() are one relaxed store each, safe
// from any thread, no system call.
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

  // Queue `queue`'s reader had nothing left to read at time ns (CLOCK_MONOTONIC,
  // as bpf_ktime_get_ns(); read before the look that found nothing), and
  // every frame it read before has been forwarded. Times only grow: an
  // older one than the table holds is ignored. Queues from kMaxQueues on
  // are not tracked.
  static constexpr std::uint32_t kMaxQueues = 1024;
  // How long after the program chose a frame's queue the frame is surely
  // on it (the choice and the queueing run in one call, with bottom halves
  // off).
  static constexpr std::uint64_t kSettleNs = 50000;
  void caught_up(std::uint32_t queue, std::uint64_t ns);
  // What caught_up() last said for queue (0: never; 0 past kMaxQueues).
  std::uint64_t caught_up_at(std::uint32_t queue) const;

 private:
  OwnedFd map_;
  OwnedFd flows_;
  OwnedFd caught_map_;
  OwnedFd prog_;
  Mapping<std::uint32_t> values_;  // {queue, state} per CPU
  Mapping<std::uint64_t> caught_;  // per queue: the caught_up() time
  std::size_t cpus_ = 0;
};

}  // namespace umacvlan::io
