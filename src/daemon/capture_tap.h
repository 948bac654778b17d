// CaptureTap: what the data path copies out for `umacvlan capture`: the
// frames a port handled and what the port decided about each, through a
// bounded queue per worker that never makes a worker wait.
//
// Contract
// - A port has a tap only while a capture runs on it (PortView::capture):
//   with none, the data path pays one null-pointer test per burst.
// - The control thread says what is watched: every frame of the port
//   (watch_all) or the frames of some devices (watch_device: what a device
//   sent, and what the port gave it). Flags are relaxed atomics: a change
//   takes effect within a burst or two.
// - Workers call wants() and then push(worker, ...) for each frame; push()
//   copies at most kCaptureSnap bytes and the decision into the worker's own
//   single-producer ring. A full ring drops the record and counts it
//   (overflow()); nothing on the path blocks, allocates or takes a lock.
// - The control thread (the single consumer) takes the records with
//   drain(), oldest first per worker. A record's targets list the watched
//   devices first, then the others, up to kCaptureTargets (`targets_total`
//   has the full count).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/port.h"

namespace umacvlan::daemon {

inline constexpr std::size_t kCaptureSnap = 2048;
inline constexpr std::size_t kCaptureTargets = 32;
inline constexpr std::size_t kCaptureRing = 1024;  // records per worker (a power of two)

struct CaptureRecord {
  std::uint64_t time_ns = 0;              // CLOCK_REALTIME
  core::DeviceId from = core::kNoDevice;  // kNoDevice: from the lower
  std::uint32_t len = 0;                  // the frame's length
  std::uint32_t caplen = 0;               // bytes in data
  std::uint32_t targets_total = 0;
  std::uint8_t ntargets = 0;  // in targets
  bool to_host = false;
  bool to_wire = false;
  bool queued = false;
  core::DropReason drop = core::DropReason::kNone;
  std::array<core::Target, kCaptureTargets> targets{};
  std::array<std::uint8_t, kCaptureSnap> data{};
};

class CaptureTap {
 public:
  // workers: how many workers may push; devices: DeviceIds below this can
  // be watched one by one (the port's PortLimits::max_devices).
  CaptureTap(std::size_t workers, std::size_t devices);

  // ---- control thread
  void watch_all(bool on) { all_.store(on, std::memory_order_relaxed); }
  void watch_device(core::DeviceId id, bool on);
  // Hands each queued record to f(const CaptureRecord&), oldest first per
  // worker; returns how many.
  template <typename F>
  std::size_t drain(F&& f);
  // Records dropped because a ring was full, over all workers.
  std::uint64_t overflow() const;

  // ---- data path (worker w)
  bool wants(core::DeviceId from, std::span<const core::Target> targets) const {
    if (all_.load(std::memory_order_relaxed)) return true;
    if (watched(from)) return true;
    for (const core::Target& t : targets) {
      if (watched(t.device)) return true;
    }
    return false;
  }
  // drop: the verdict's, or what the data path decided beyond the core
  // (kBadVnet).
  void push(std::size_t worker, core::DeviceId from, std::span<const std::uint8_t> frame,
            const core::Verdict& v, std::span<const core::Target> targets, core::DropReason drop);

 private:
  bool watched(core::DeviceId id) const {
    return id < devices_ && watched_[id].load(std::memory_order_relaxed) != 0;
  }

  struct alignas(64) Ring {
    std::atomic<std::uint64_t> head{0};              // written by the worker
    alignas(64) std::atomic<std::uint64_t> tail{0};  // written by the control thread
    alignas(64) std::atomic<std::uint64_t> overflow{0};
    std::unique_ptr<CaptureRecord[]> slots;
  };

  std::atomic<bool> all_{false};
  std::size_t devices_;
  std::unique_ptr<std::atomic<std::uint8_t>[]> watched_;
  std::vector<std::unique_ptr<Ring>> rings_;
};

template <typename F>
std::size_t CaptureTap::drain(F&& f) {
  std::size_t n = 0;
  for (auto& r : rings_) {
    const std::uint64_t head = r->head.load(std::memory_order_acquire);
    std::uint64_t tail = r->tail.load(std::memory_order_relaxed);
    for (; tail != head; ++tail, ++n) f(r->slots[tail & (kCaptureRing - 1)]);
    r->tail.store(tail, std::memory_order_release);
  }
  return n;
}

}  // namespace umacvlan::daemon
