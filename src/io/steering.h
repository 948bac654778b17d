// Steering: which dataplane worker the kernel hands a frame to, chosen by
// the CPU the frame arrived on while that CPU has time to spare, and by flow
// while it is saturated.
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
// Contract: open() loads one eBPF socket-filter program and its array map
// (libbpf; needs CAP_BPF or CAP_SYS_ADMIN), one entry per possible CPU:
// {queue, spread}. For a frame on CPU c the program returns the skb's flow
// hash when spread[c] is set and the frame has a hash, else queue[c]; TUN
// (TUNSETSTEERINGEBPF) and AF_PACKET fanout (PACKET_FANOUT_EBPF) take that
// modulo their queue or socket count. The map is mapped into the process
// (BPF_F_MMAPABLE): set_spread() is one relaxed store, safe from any
// thread, no system call. Frames of one flow stay on one queue as long as
// their sender stays on one CPU and its CPU's mode does not change; a
// sender that migrates may see a few frames reordered, as with the
// kernel's own TUN queue selection when a flow moves.
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

// Unmaps the steering map's values (Steering's deleter).
struct SteeringUnmap {
  std::size_t size = 0;
  void operator()(std::uint32_t* p) const;
};

class Steering {
 public:
  Steering() = default;

  // queue_of_cpu[c]: the queue (worker) for frames on CPU c while c is not
  // saturated; CPUs past its end get c modulo its size.
  static int open(std::span<const std::uint32_t> queue_of_cpu, Steering* out,
                  std::string* error = nullptr);

  bool valid() const { return prog_.valid(); }
  int prog_fd() const { return prog_.get(); }
  std::size_t cpus() const { return cpus_; }

  // Frames arriving on CPU cpu go by flow (true) or to its queue (false).
  void set_spread(std::size_t cpu, bool spread);
  bool spread(std::size_t cpu) const;

 private:
  OwnedFd map_;
  OwnedFd prog_;
  std::unique_ptr<std::uint32_t, SteeringUnmap> values_;  // {queue, spread} per CPU
  std::size_t cpus_ = 0;
};

}  // namespace umacvlan::io
