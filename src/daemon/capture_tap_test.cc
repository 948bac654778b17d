// The capture tap alone: what a worker queues, what the control thread
// takes, and the bound. No devices, no threads beyond the test's own.
#include "daemon/capture_tap.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace umacvlan::daemon {
namespace {

std::vector<std::uint8_t> frame(std::size_t n, std::uint8_t fill = 0xab) {
  return std::vector<std::uint8_t>(n, fill);
}

std::vector<CaptureRecord> take(CaptureTap& tap) {
  std::vector<CaptureRecord> out;
  tap.drain([&](const CaptureRecord& r) { out.push_back(r); });
  return out;
}

TEST(CaptureTap, WatchesNothingUntilToldThenWhatItWasTold) {
  CaptureTap tap(1, 16);
  const std::vector<core::Target> to3{{3, core::Reason::kUnicast}};
  EXPECT_FALSE(tap.wants(core::kNoDevice, to3));
  tap.watch_device(3, true);
  EXPECT_TRUE(tap.wants(core::kNoDevice, to3));  // a frame the port gives device 3
  EXPECT_TRUE(tap.wants(3, {}));                 // a frame device 3 sent
  EXPECT_FALSE(tap.wants(4, {}));
  EXPECT_FALSE(tap.wants(99, {}));  // beyond the watchable range: never
  tap.watch_device(3, false);
  EXPECT_FALSE(tap.wants(3, {}));
  tap.watch_all(true);
  EXPECT_TRUE(tap.wants(core::kNoDevice, {}));
}

TEST(CaptureTap, ARecordCarriesTheFrameAndTheDecision) {
  CaptureTap tap(2, 16);
  const auto f = frame(100);
  core::Verdict v;
  v.to_wire = true;
  v.queued = true;
  const std::vector<core::Target> targets{{1, core::Reason::kFlood}, {2, core::Reason::kFlood}};
  tap.push(1, 5, f, v, targets, core::DropReason::kNone);
  const auto got = take(tap);
  ASSERT_EQ(got.size(), 1u);
  const CaptureRecord& r = got[0];
  EXPECT_EQ(r.from, 5u);
  EXPECT_EQ(r.len, 100u);
  EXPECT_EQ(r.caplen, 100u);
  EXPECT_EQ(r.data[99], 0xab);
  EXPECT_TRUE(r.to_wire);
  EXPECT_FALSE(r.to_host);
  EXPECT_TRUE(r.queued);
  EXPECT_EQ(r.ntargets, 2);
  EXPECT_EQ(r.targets_total, 2u);
  EXPECT_EQ(r.targets[1].device, 2u);
  EXPECT_GT(r.time_ns, 1'700'000'000'000'000'000ull);  // a wall-clock time
  EXPECT_TRUE(take(tap).empty());                      // taken once
}

TEST(CaptureTap, BigFramesAreCutAtTheSnapLength) {
  CaptureTap tap(1, 4);
  const auto f = frame(65000);
  tap.push(0, core::kNoDevice, f, core::Verdict{}, {}, core::DropReason::kTooBig);
  const auto got = take(tap);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].len, 65000u);
  EXPECT_EQ(got[0].caplen, kCaptureSnap);
  EXPECT_EQ(got[0].drop, core::DropReason::kTooBig);
}

TEST(CaptureTap, WatchedTargetsComeFirstAndTheRestIsCounted) {
  CaptureTap tap(1, 100);
  tap.watch_device(70, true);
  std::vector<core::Target> many;
  for (core::DeviceId d = 0; d < 80; ++d) many.push_back({d, core::Reason::kFlood});
  tap.push(0, core::kNoDevice, frame(60), core::Verdict{}, many, core::DropReason::kNone);
  const auto got = take(tap);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].ntargets, kCaptureTargets);
  EXPECT_EQ(got[0].targets_total, 80u);
  EXPECT_EQ(got[0].targets[0].device, 70u);  // a flood to 80 still shows the watched one
}

TEST(CaptureTap, AFullRingDropsAndCountsNeverBlocks) {
  CaptureTap tap(1, 4);
  const auto f = frame(60);
  for (std::size_t i = 0; i < kCaptureRing + 10; ++i)
    tap.push(0, core::kNoDevice, f, core::Verdict{}, {}, core::DropReason::kNone);
  EXPECT_EQ(tap.overflow(), 10u);
  EXPECT_EQ(take(tap).size(), kCaptureRing);
  tap.push(0, core::kNoDevice, f, core::Verdict{}, {}, core::DropReason::kNone);
  EXPECT_EQ(take(tap).size(), 1u);  // room again once drained
}

TEST(CaptureTap, AWorkerAndTheControlThreadShareARingSafely) {
  CaptureTap tap(1, 4);
  constexpr std::size_t kFrames = 200000;
  std::thread worker([&] {
    std::vector<std::uint8_t> f(64);
    for (std::size_t i = 0; i < kFrames; ++i) {
      f[0] = static_cast<std::uint8_t>(i);
      f[1] = static_cast<std::uint8_t>(i >> 8);
      tap.push(0, core::kNoDevice, f, core::Verdict{}, {}, core::DropReason::kNone);
    }
  });
  std::size_t taken = 0;
  bool in_order = true;
  std::uint32_t last = 0;
  bool first = true;
  auto drain = [&] {
    taken += tap.drain([&](const CaptureRecord& r) {
      const std::uint32_t seq = r.data[0] | (r.data[1] << 8);
      // Within one worker the records come out in the order pushed (mod 2^16).
      if (!first && seq == last) in_order = false;
      last = seq;
      first = false;
    });
  };
  while (taken + tap.overflow() < kFrames) drain();
  worker.join();
  drain();
  EXPECT_EQ(taken + tap.overflow(), kFrames);
  EXPECT_TRUE(in_order);
}

}  // namespace
}  // namespace umacvlan::daemon
