// Needs root: real TAP devices in a namespace of the test's own. The
// Forwarder is fed batches no kernel would hand out (bogus virtio-net
// headers, oversize frames), and what reaches the devices is captured.
#include "daemon/dataplane.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <set>
#include <thread>

#include "io/io_test_util.h"

namespace umacvlan::daemon {
namespace {

using io::testing::collect;
using io::testing::has_marker;
using io::testing::make_frame;
using io::testing::ScopedNetns;

const io::MacBytes kA{0x02, 0, 0, 0, 0, 0x0a};
const io::MacBytes kB{0x02, 0, 0, 0, 0, 0x0b};

class ForwarderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root";
    ASSERT_TRUE(ns_.ok());
    const io::NetnsFd ns = ns_.open();
    core::LowerState lower;
    lower.name = "lower0";
    lower.mac = core::MacAddress({0x02, 0, 0, 0, 0, 0xee});
    lower.mtu = 1500;
    auto port = std::make_shared<core::Port>(lower);
    view_.io = std::make_shared<PortIo>();  // no lower: nothing leaves by the wire
    for (const auto& [name, mac] : {std::pair{"umvta", kA}, std::pair{"umvtb", kB}}) {
      auto dev = std::make_shared<DeviceIo>();
      ASSERT_EQ(io::TapDevice::open(ns, name, &dev->tap), 0);
      ASSERT_EQ(dev->tap.set_mac(mac), 0);
      ASSERT_EQ(dev->tap.set_up(true), 0);
      core::DeviceSpec spec;
      spec.name = name;
      spec.mode = core::Mode::kBridge;
      spec.address = core::MacAddress(mac);
      core::DeviceId id;
      ASSERT_TRUE(port->add_device(spec, 0, &id).ok());
      core::DeviceChange up;
      up.up = true;
      ASSERT_TRUE(port->change_device(id, up).ok());
      dev->id = id;
      view_.devices.push_back(std::move(dev));
    }
    view_.port = port;
    ASSERT_EQ(io::PacketLower::open(ns, view_.devices[1]->tap.ifindex(), &capture_b_), 0);
  }
  void TearDown() override {
    for (auto& d : view_.devices) d->tap.destroy();
  }

  // Which of the markers reached b's stack (one read of the capture).
  std::set<std::uint32_t> seen_at_b(std::initializer_list<std::uint32_t> markers) {
    std::set<std::uint32_t> seen;
    for (const auto& f : collect(
             capture_b_, markers.size() + 1, [](auto) { return true; },
             std::chrono::milliseconds(300))) {
      for (std::uint32_t m : markers) {
        if (has_marker(f, m)) seen.insert(m);
      }
    }
    return seen;
  }

  ScopedNetns ns_;
  PortView view_;
  io::PacketLower capture_b_;
  Forwarder fwd_{0};
};

void add(io::FrameBatch& batch, const std::vector<std::uint8_t>& frame, io::VnetHeader vnet = {}) {
  std::memcpy(batch.next_slot().data(), frame.data(), frame.size());
  batch.commit(frame.size(), vnet);
}

TEST_F(ForwarderTest, AGoodFrameCrossesFromDeviceToDevice) {
  io::FrameBatch batch(core::kMaxFrameSize);
  add(batch, make_frame(kB, kA, 0x1001, 100));
  fwd_.from_device(view_, 0, batch);
  EXPECT_EQ(seen_at_b({0x1001}), std::set<std::uint32_t>{0x1001});
  EXPECT_EQ(Dataplane::device_counters(*view_.devices[1]).rx_packets, 1u);
  EXPECT_EQ(Dataplane::device_counters(*view_.devices[0]).tx_packets, 1u);
}

TEST_F(ForwarderTest, BogusVirtioHeadersAreDroppedAndCountedNeverWritten) {
  io::FrameBatch batch(core::kMaxFrameSize);
  const auto frame = make_frame(kB, kA, 0x2002, 200);
  io::VnetHeader gso_without_size;
  gso_without_size.gso_type = io::kVnetGsoTcpv4;
  gso_without_size.flags = io::kVnetNeedsCsum;
  gso_without_size.csum_start = 34;
  gso_without_size.csum_offset = 16;
  io::VnetHeader csum_past_the_end;
  csum_past_the_end.flags = io::kVnetNeedsCsum;
  csum_past_the_end.csum_start = 4000;
  csum_past_the_end.csum_offset = 6;
  io::VnetHeader unknown_gso;
  unknown_gso.gso_type = 7;
  unknown_gso.gso_size = 1400;
  add(batch, frame, gso_without_size);
  add(batch, frame, csum_past_the_end);
  add(batch, frame, unknown_gso);
  fwd_.from_device(view_, 0, batch);
  EXPECT_TRUE(seen_at_b({0x2002}).empty());
  const core::PortCounters drops = Dataplane::port_counters(*view_.io);
  EXPECT_EQ(drops.drops_for(core::DropReason::kBadVnet), 3u);
  const core::DeviceCounters a = Dataplane::device_counters(*view_.devices[0]);
  EXPECT_EQ(a.tx_dropped, 3u);
  EXPECT_EQ(a.tx_packets, 0u);
  EXPECT_EQ(Dataplane::device_counters(*view_.devices[1]).rx_packets, 0u);
}

TEST_F(ForwarderTest, AFrameLongerThanTheMtuIsNotForwardedUnlessGso) {
  io::FrameBatch batch(core::kMaxFrameSize);
  // 65 KB on a 1500-byte lower, not GSO: the kernel's is_skb_forwardable() refuses it.
  add(batch, make_frame(kB, kA, 0x3003, 65000));
  // 1500 + header + a VLAN tag still fits.
  add(batch, make_frame(kB, kA, 0x3004, 1500 + 4));
  fwd_.from_device(view_, 0, batch);
  EXPECT_EQ(seen_at_b({0x3003, 0x3004}), std::set<std::uint32_t>{0x3004});
  EXPECT_EQ(Dataplane::port_counters(*view_.io).drops_for(core::DropReason::kTooBig), 1u);
  const core::DeviceCounters b = Dataplane::device_counters(*view_.devices[1]);
  EXPECT_EQ(b.rx_dropped, 1u);
  EXPECT_EQ(b.rx_packets, 1u);
}

TEST_F(ForwarderTest, SpoofedFramesAreDroppedWhenSpoofchkIsOn) {
  auto port = std::make_shared<core::Port>(*view_.port);
  core::DeviceChange on;
  on.spoofchk = true;
  ASSERT_TRUE(port->change_device(0, on).ok());
  view_.port = port;
  io::FrameBatch batch(core::kMaxFrameSize);
  const io::MacBytes someone_else{0x02, 0, 0, 0, 0x99, 0x99};
  add(batch, make_frame(kB, someone_else, 0x4004, 100));
  add(batch, make_frame(kB, kA, 0x4005, 100));
  fwd_.from_device(view_, 0, batch);
  EXPECT_EQ(seen_at_b({0x4004, 0x4005}), std::set<std::uint32_t>{0x4005});
  EXPECT_EQ(Dataplane::port_counters(*view_.io).drops_for(core::DropReason::kSpoofed), 1u);
  EXPECT_EQ(Dataplane::device_counters(*view_.devices[0]).tx_dropped, 1u);
}

// The threads: a published view is picked up, and wait_for() returns once
// every worker runs it.
TEST(DataplaneThreads, PublishedViewsAreTakenUpByEveryWorker) {
  Dataplane dp(2);
  const std::uint64_t v1 = dp.publish(std::make_shared<DataplaneView>());
  EXPECT_TRUE(dp.wait_for(v1, 2000));
  const std::uint64_t v2 = dp.publish(std::make_shared<DataplaneView>());
  EXPECT_GT(v2, v1);
  EXPECT_TRUE(dp.wait_for(v2, 2000));
  EXPECT_TRUE(dp.take_notices().empty());
}

}  // namespace
}  // namespace umacvlan::daemon
