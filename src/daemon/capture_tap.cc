#include "daemon/capture_tap.h"

#include <time.h>

#include <algorithm>

namespace umacvlan::daemon {

CaptureTap::CaptureTap(std::size_t workers, std::size_t devices)
    : devices_(devices), watched_(new std::atomic<std::uint8_t>[devices]()) {
  for (std::size_t i = 0; i < devices; ++i) watched_[i].store(0, std::memory_order_relaxed);
  for (std::size_t w = 0; w < std::max<std::size_t>(workers, 1); ++w) {
    auto r = std::make_unique<Ring>();
    r->slots = std::make_unique<CaptureRecord[]>(kCaptureRing);
    rings_.push_back(std::move(r));
  }
}

void CaptureTap::watch_device(core::DeviceId id, bool on) {
  if (id < devices_) watched_[id].store(on ? 1 : 0, std::memory_order_relaxed);
}

std::uint64_t CaptureTap::overflow() const {
  std::uint64_t n = 0;
  for (const auto& r : rings_) n += r->overflow.load(std::memory_order_relaxed);
  return n;
}

void CaptureTap::push(std::size_t worker, core::DeviceId from, std::span<const std::uint8_t> frame,
                      const core::Verdict& v, std::span<const core::Target> targets,
                      core::DropReason drop) {
  if (worker >= rings_.size()) return;
  Ring& r = *rings_[worker];
  const std::uint64_t head = r.head.load(std::memory_order_relaxed);
  if (head - r.tail.load(std::memory_order_acquire) >= kCaptureRing) {
    r.overflow.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  CaptureRecord& rec = r.slots[head & (kCaptureRing - 1)];
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  rec.time_ns = static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ull +
                static_cast<std::uint64_t>(ts.tv_nsec);
  rec.from = from;
  rec.len = static_cast<std::uint32_t>(frame.size());
  rec.caplen = static_cast<std::uint32_t>(std::min(frame.size(), kCaptureSnap));
  std::copy_n(frame.begin(), rec.caplen, rec.data.begin());
  rec.to_host = v.to_host;
  rec.to_wire = v.to_wire;
  rec.queued = v.queued;
  rec.drop = drop;
  rec.targets_total = static_cast<std::uint32_t>(targets.size());
  // The watched devices first, so that a capture of one device sees itself
  // among the targets of a flood to many.
  std::size_t n = 0;
  for (const core::Target& t : targets) {
    if (n < kCaptureTargets && watched(t.device)) rec.targets[n++] = t;
  }
  for (const core::Target& t : targets) {
    if (n < kCaptureTargets && !watched(t.device)) rec.targets[n++] = t;
  }
  rec.ntargets = static_cast<std::uint8_t>(n);
  r.head.store(head + 1, std::memory_order_release);
}

}  // namespace umacvlan::daemon
