// Needs root: real TAP devices in a namespace of the test's own. The
// Forwarder is fed batches no kernel would hand out (bogus virtio-net
// headers, oversize frames), and what reaches the devices is captured.
#include "daemon/dataplane.h"

#include <gtest/gtest.h>
#include <sched.h>
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

// A bridge device NAME with mac, up: its TAP in ns, its place in port and
// its I/O in view (at index = its DeviceId, a free slot or a new one).
void add_bridge_device(const io::NetnsFd& ns, const std::string& name, const io::MacBytes& mac,
                       core::Port& port, PortView& view) {
  auto dev = std::make_shared<DeviceIo>();
  ASSERT_EQ(io::TapDevice::open(ns, name, &dev->tap), 0);
  ASSERT_EQ(dev->tap.set_mac(mac), 0);
  ASSERT_EQ(dev->tap.set_up(true), 0);
  core::DeviceSpec spec;
  spec.name = name;
  spec.mode = core::Mode::kBridge;
  spec.address = core::MacAddress(mac);
  core::DeviceId id;
  ASSERT_TRUE(port.add_device(spec, 0, &id).ok());
  core::DeviceChange up;
  up.up = true;
  ASSERT_TRUE(port.change_device(id, up).ok());
  dev->id = id;
  if (view.devices.size() <= id) view.devices.resize(id + 1);
  view.devices[id] = std::move(dev);
}

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
    for (const auto& [name, mac] : {std::pair{"umvta", kA}, std::pair{"umvtb", kB}})
      ASSERT_NO_FATAL_FAILURE(add_bridge_device(ns, name, mac, *port, view_));
    view_.port = port;
    ASSERT_EQ(io::PacketLower::open(ns, view_.devices[1]->tap.ifindex(), &capture_b_), 0);
  }
  void TearDown() override {
    for (auto& d : view_.devices) d->tap.destroy();
  }

  // The port from now on: as it was, with change made to device id.
  void change_device(core::DeviceId id, const core::DeviceChange& change) {
    auto port = std::make_shared<core::Port>(*view_.port);
    ASSERT_TRUE(port->change_device(id, change).ok());
    view_.port = port;
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
  core::DeviceChange on;
  on.spoofchk = true;
  ASSERT_NO_FATAL_FAILURE(change_device(0, on));
  io::FrameBatch batch(core::kMaxFrameSize);
  const io::MacBytes someone_else{0x02, 0, 0, 0, 0x99, 0x99};
  add(batch, make_frame(kB, someone_else, 0x4004, 100));
  add(batch, make_frame(kB, kA, 0x4005, 100));
  fwd_.from_device(view_, 0, batch);
  EXPECT_EQ(seen_at_b({0x4004, 0x4005}), std::set<std::uint32_t>{0x4005});
  EXPECT_EQ(Dataplane::port_counters(*view_.io).drops_for(core::DropReason::kSpoofed), 1u);
  EXPECT_EQ(Dataplane::device_counters(*view_.devices[0]).tx_dropped, 1u);
}

// ---------------------------------------------------------- shared floods

// A FloodSink of two workers whose rings are vectors the test looks into.
class TestSink final : public FloodSink {
 public:
  std::size_t workers() const override { return 2; }
  FloodShare* claim(std::size_t w, std::size_t limit) override {
    EXPECT_EQ(w, 1u);
    if (full || handed.size() >= limit) return nullptr;
    open.keep = std::make_shared<int>(0);  // what a worker's sink holds: its view
    return &open;
  }
  void commit(std::size_t) override { handed.push_back(open); }
  bool full = false;
  FloodShare open;
  std::vector<FloodShare> handed;
};

const io::MacBytes kBroadcast{0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
const io::MacBytes kOutside{0x02, 0, 0, 0, 0x55, 0x55};

// fwd, sharing out floods of 2 copies or more through sink, decides one
// broadcast from the lower carrying marker.
void flood_from_lower(Forwarder& fwd, FloodSink& sink, const PortView& view, std::uint32_t marker) {
  fwd.set_flood_sink(&sink, 2);
  io::FrameBatch batch(core::kMaxFrameSize);
  add(batch, make_frame(kBroadcast, kOutside, marker, 100));
  fwd.from_lower(view, batch);
}

// A broadcast from the lower to devices 0 and 1: worker 0 writes device 0's
// copy and hands device 1's to worker 1, which writes it from the share.
TEST_F(ForwarderTest, AFloodIsSharedOutToTheWorkerOwningEachDevice) {
  io::PacketLower capture_a;
  ASSERT_EQ(io::PacketLower::open(ns_.open(), view_.devices[0]->tap.ifindex(), &capture_a), 0);
  TestSink sink;
  flood_from_lower(fwd_, sink, view_, 0x7001);
  ASSERT_EQ(sink.handed.size(), 1u);
  const FloodShare& share = sink.handed[0];
  ASSERT_EQ(share.targets.size(), 1u);
  EXPECT_EQ(share.targets[0].device, 1u);
  EXPECT_EQ(share.port, &view_);
  EXPECT_FALSE(share.from_device);
  EXPECT_TRUE(has_marker(share.frame, 0x7001));
  EXPECT_EQ(fwd_.counters().shares_out, 1u);
  EXPECT_EQ(collect(
                capture_a, 2, [](auto f) { return has_marker(f, 0x7001); },
                std::chrono::milliseconds(300))
                .size(),
            1u);
  EXPECT_TRUE(seen_at_b({0x7001}).empty()) << "b's copy is worker 1's to write";
  EXPECT_EQ(Dataplane::device_counters(*view_.devices[1]).rx_packets, 0u);

  Forwarder other(1);
  other.from_share(share, &view_);
  EXPECT_EQ(seen_at_b({0x7001}), std::set<std::uint32_t>{0x7001});
  const core::DeviceCounters b = Dataplane::device_counters(*view_.devices[1]);
  EXPECT_EQ(b.rx_packets, 1u);
  EXPECT_EQ(b.rx_multicast, 1u);
  EXPECT_EQ(other.counters().shares_in, 1u);
}

// A device's broadcast reaches its siblings inline, as in the kernel (in
// order with the device's unicasts to them): never shared out.
TEST_F(ForwarderTest, ADevicesFloodIsWrittenByTheWorkerThatReadIt) {
  TestSink sink;
  fwd_.set_flood_sink(&sink, 1);
  io::FrameBatch batch(core::kMaxFrameSize);
  add(batch, make_frame(kBroadcast, kA, 0x7005, 100));
  fwd_.from_device(view_, 0, batch);
  EXPECT_TRUE(sink.handed.empty());
  EXPECT_EQ(seen_at_b({0x7005}), std::set<std::uint32_t>{0x7005});
}

// No room in the other worker's ring (or more waiting than the port's
// bcqueuelen): nobody gets the flood, and it counts as bc_queue_full.
TEST_F(ForwarderTest, AFloodWithoutRoomToShareReachesNobody) {
  TestSink sink;
  sink.full = true;
  flood_from_lower(fwd_, sink, view_, 0x7002);
  EXPECT_TRUE(sink.handed.empty());
  EXPECT_EQ(Dataplane::port_counters(*view_.io).drops_for(core::DropReason::kBcQueueFull), 1u);
  EXPECT_EQ(Dataplane::device_counters(*view_.devices[0]).rx_packets, 0u);
  EXPECT_EQ(Dataplane::device_counters(*view_.devices[1]).rx_packets, 0u);

  // Below the split threshold the worker writes every copy itself.
  fwd_.set_flood_sink(&sink, 3);
  io::FrameBatch batch(core::kMaxFrameSize);
  add(batch, make_frame(kBroadcast, kOutside, 0x7003, 100));
  fwd_.from_lower(view_, batch);
  EXPECT_EQ(seen_at_b({0x7003}), std::set<std::uint32_t>{0x7003});
  EXPECT_EQ(Dataplane::device_counters(*view_.devices[0]).rx_packets, 1u);
}

// A flood none of whose devices another worker owns is not handed over,
// and the share it claimed lets go of what it held.
TEST_F(ForwarderTest, AShareWithNothingForTheOtherWorkerIsNotHandedOver) {
  core::DeviceChange down;
  down.up = false;
  ASSERT_NO_FATAL_FAILURE(change_device(1, down));
  TestSink sink;
  fwd_.set_flood_sink(&sink, 1);
  io::FrameBatch batch(core::kMaxFrameSize);
  add(batch, make_frame(kBroadcast, kOutside, 0x7006, 100));
  fwd_.from_lower(view_, batch);
  EXPECT_TRUE(sink.handed.empty());
  EXPECT_EQ(sink.open.keep, nullptr);
  EXPECT_EQ(fwd_.counters().shares_out, 0u);
  EXPECT_EQ(Dataplane::device_counters(*view_.devices[0]).rx_packets, 1u);
}

// A share decided in an older view reaches only the devices the receiving
// worker's view still has: not one removed (or replaced) since, nor any
// once the port is gone.
TEST_F(ForwarderTest, ASharedFloodSkipsDevicesGoneFromTheNewerView) {
  TestSink sink;
  flood_from_lower(fwd_, sink, view_, 0x7004);
  ASSERT_EQ(sink.handed.size(), 1u);
  Forwarder other(1);
  PortView newer = view_;
  newer.devices[1] = std::make_shared<DeviceIo>();  // another device in b's slot
  other.from_share(sink.handed[0], &newer);
  other.from_share(sink.handed[0], nullptr);
  EXPECT_TRUE(seen_at_b({0x7004}).empty());
  EXPECT_EQ(Dataplane::device_counters(*view_.devices[1]).rx_packets, 0u);
  // The same device in a newer view still gets it.
  newer.devices[1] = view_.devices[1];
  other.from_share(sink.handed[0], &newer);
  EXPECT_EQ(seen_at_b({0x7004}), std::set<std::uint32_t>{0x7004});
}

// ---------------------------------------------------------------- macnat

const io::MacBytes kLower{0x02, 0, 0, 0, 0, 0xee};
const io::MacBytes kPeer{0x02, 0, 0, 0, 0, 0x77};

// An IPv4 UDP frame from src_ip to dst_ip (last octets of 10.0.0.0/24)
// whose payload starts with marker.
std::vector<std::uint8_t> udp4(const io::MacBytes& dst, const io::MacBytes& src,
                               std::uint8_t src_ip, std::uint8_t dst_ip, std::uint32_t marker) {
  std::vector<std::uint8_t> f(dst.begin(), dst.end());
  f.insert(f.end(), src.begin(), src.end());
  f.insert(f.end(), {0x08, 0x00});
  const std::uint8_t ip[20] = {0x45, 0, 0,  20 + 8 + 8, 0, 1,      0,  0, 64, 17,
                               0,    0, 10, 0,          0, src_ip, 10, 0, 0,  dst_ip};
  f.insert(f.end(), ip, ip + 20);
  std::uint32_t sum = 0;
  for (std::size_t i = 14; i < 34; i += 2) sum += static_cast<std::uint32_t>(f[i] << 8 | f[i + 1]);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  f[24] = static_cast<std::uint8_t>(~sum >> 8);
  f[25] = static_cast<std::uint8_t>(~sum);
  f.insert(f.end(), {0x30, 0x39, 0x30, 0x39, 0, 16, 0, 0});  // UDP 12345 -> 12345, no checksum
  for (int shift = 24; shift >= 0; shift -= 8)
    f.push_back(static_cast<std::uint8_t>(marker >> shift));
  f.insert(f.end(), 4, 0);
  return f;
}

bool udp_marker(std::span<const std::uint8_t> f, std::uint32_t marker) {
  if (f.size() < 46 || f[12] != 0x08 || f[13] != 0x00 || f[23] != 17) return false;
  return (static_cast<std::uint32_t>(f[42]) << 24 | static_cast<std::uint32_t>(f[43]) << 16 |
          static_cast<std::uint32_t>(f[44]) << 8 | f[45]) == marker;
}

// An ARP request from a (10.0.0.11) for 10.0.0.1, broadcast.
std::vector<std::uint8_t> arp_request_from_a() {
  const io::MacBytes bcast{0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  std::vector<std::uint8_t> f(bcast.begin(), bcast.end());
  f.insert(f.end(), kA.begin(), kA.end());
  f.insert(f.end(), {0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1});
  f.insert(f.end(), kA.begin(), kA.end());
  f.insert(f.end(), {10, 0, 0, 11, 0, 0, 0, 0, 0, 0, 10, 0, 0, 1});
  f.resize(60, 0);
  return f;
}

TEST_F(ForwarderTest, MacnatGivesFramesForTheLowerToTheOwnerOfTheirAddress) {
  io::FrameBatch batch(core::kMaxFrameSize);
  add(batch, udp4(kLower, kPeer, 1, 12, 0x5005));  // b's address
  add(batch, udp4(kLower, kPeer, 1, 99, 0x5006));  // nobody's: the host's
  // Without macnat, neither reaches b.
  fwd_.from_lower(view_, batch);
  EXPECT_TRUE(collect(
                  capture_b_, 1,
                  [](auto f) { return udp_marker(f, 0x5005) || udp_marker(f, 0x5006); },
                  std::chrono::milliseconds(300))
                  .empty());

  auto nat = std::make_shared<MacNatView>();
  nat->owners[core::IpAddress::v4(0x0a00000c)].device = 1;
  view_.macnat = nat;
  batch.clear();
  add(batch, udp4(kLower, kPeer, 1, 12, 0x5005));
  add(batch, udp4(kLower, kPeer, 1, 99, 0x5006));
  fwd_.from_lower(view_, batch);
  const auto got = collect(
      capture_b_, 2, [](auto f) { return udp_marker(f, 0x5005) || udp_marker(f, 0x5006); },
      std::chrono::milliseconds(300));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(udp_marker(got[0], 0x5005));
  EXPECT_TRUE(std::equal(kB.begin(), kB.end(), got[0].begin())) << "sent to b's MAC";
  EXPECT_TRUE(std::equal(kPeer.begin(), kPeer.end(), got[0].begin() + 6)) << "source kept";
}

TEST_F(ForwarderTest, MacnatRewritesOnlyWhatLeavesAndLearnsNewSources) {
  auto nat = std::make_shared<MacNatView>();
  view_.macnat = nat;
  view_.learn = std::make_shared<CaptureTap>(1, 16);
  view_.learn->watch_all(true);
  io::FrameBatch batch(core::kMaxFrameSize);
  // A broadcast ARP (to b and out the lower) and a unicast to the outside
  // from an address the table does not know.
  add(batch, arp_request_from_a());
  add(batch, udp4(kPeer, kA, 11, 1, 0x6006));
  fwd_.from_device(view_, 0, batch);
  // b's copy is the frame as a sent it.
  const auto got = collect(
      capture_b_, 1, [](auto f) { return f.size() >= 14 && f[12] == 0x08 && f[13] == 0x06; },
      std::chrono::milliseconds(300));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(std::equal(kA.begin(), kA.end(), got[0].begin() + 6));
  EXPECT_TRUE(std::equal(kA.begin(), kA.end(), got[0].begin() + 22)) << "ARP sender untouched";
  // What went to the wire only was rewritten in place: the lower's MAC.
  EXPECT_TRUE(std::equal(kLower.begin(), kLower.end(), batch[1].begin() + 6));
  // The learn tap had the ARP (it teaches) and the unknown source.
  std::vector<core::DeviceId> learned_from;
  view_.learn->drain([&](const CaptureRecord& r) {
    learned_from.push_back(r.from);
    EXPECT_TRUE(std::equal(kA.begin(), kA.end(), r.data.begin() + 6)) << "as a sent it";
  });
  EXPECT_EQ(learned_from.size(), 2u);

  // Known now: a refresh of its stamp, nothing for the learn tap.
  auto known = std::make_shared<MacNatView>();
  known->owners[core::IpAddress::v4(0x0a00000b)].device = 0;
  view_.macnat = known;
  batch.clear();
  add(batch, udp4(kPeer, kA, 11, 1, 0x6007));
  fwd_.from_device(view_, 0, batch);
  EXPECT_GT(known->owners.begin()->second.seen_ms.load(), 0u);
  EXPECT_EQ(view_.learn->drain([](const CaptureRecord&) {}), 0u);
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

// Two workers' setting: a veth lower (lower0; its peer wire0 is the wire to
// send from) with a ring per worker in one fanout group, and kDevices
// bridge devices on it.
class FloodThreads : public ::testing::Test {
 protected:
  static constexpr std::size_t kDevices = 40;

  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root";
    ASSERT_TRUE(ns_.ok());
    ASSERT_EQ(ns_.ip("link add lower0 type veth peer name wire0"), 0);
    ASSERT_EQ(ns_.ip("link set lower0 up"), 0);
    ASSERT_EQ(ns_.ip("link set wire0 up"), 0);
    fd_ = ns_.open();
    core::LowerState lower;
    lower.name = "lower0";
    lower.mac = core::MacAddress({0x02, 0, 0, 0, 0, 0xee});
    auto port = std::make_shared<core::Port>(lower);
    pv_.io = std::make_shared<PortIo>();
    for (std::size_t i = 0; i < kDevices; ++i)
      ASSERT_NO_FATAL_FAILURE(add_bridge_device(fd_, name(i), mac(i), *port, pv_));
    pv_.port = port;
    const int lower_index = io::testing::ifindex_in(fd_, "lower0");
    for (std::size_t w = 0; w < 2; ++w) {
      io::PacketLower ring;
      io::PacketLower::Options o;
      o.fanout_group = static_cast<int>((::getpid() * 7 + 3) & 0xffff);
      ASSERT_EQ(io::PacketLower::open(fd_, lower_index, &ring, o), 0);
      pv_.io->rings.push_back(std::move(ring));
    }
    ASSERT_EQ(io::PacketLower::open(fd_, io::testing::ifindex_in(fd_, "wire0"), &wire_), 0);
  }
  void TearDown() override {
    for (auto& d : pv_.devices) {
      if (d != nullptr) d->tap.destroy();
    }
  }

  static std::string name(std::size_t i) { return "umvf" + std::to_string(i); }
  static io::MacBytes mac(std::size_t i) {
    return {0x02, 0, 0, 0, 1, static_cast<std::uint8_t>(i)};
  }
  // Publishes the port as it is now to dp; true once every worker runs it.
  bool publish(Dataplane& dp) {
    auto view = std::make_shared<DataplaneView>();
    view->ports.push_back(pv_);
    return dp.wait_for(dp.publish(view), 2000);
  }

  ScopedNetns ns_;
  io::NetnsFd fd_;
  PortView pv_;
  io::PacketLower wire_;
};

// Broadcasts from the wire reach every device once, each device's in the
// order sent, written by both workers (the floods are shared out).
TEST_F(FloodThreads, FloodsToManyDevicesAreWrittenByEveryWorkerInOrder) {
  // Watch one device of each worker (0 and 1: DeviceId modulo 2).
  io::PacketLower watch0, watch1;
  ASSERT_EQ(io::PacketLower::open(fd_, pv_.devices[0]->tap.ifindex(), &watch0), 0);
  ASSERT_EQ(io::PacketLower::open(fd_, pv_.devices[1]->tap.ifindex(), &watch1), 0);
  constexpr std::uint32_t kFloods = 30;
  std::uint32_t round = 0;
  // With io_uring and with one system call a write.
  for (TapIo tap_io : {TapIo::kAuto, TapIo::kSyscalls}) {
    ++round;
    Dataplane dp(2, tap_io, 0, -1, Steer::kFlow);
    ASSERT_TRUE(publish(dp));
    const std::uint32_t first = 0x8000 + round * 0x100;
    for (std::uint32_t k = 0; k < kFloods; ++k)
      ASSERT_EQ(wire_.send(make_frame(kBroadcast, kOutside, first + k, 100)), 0);
    const auto ours = [](auto f) {
      return f.size() >= 6 && std::equal(kBroadcast.begin(), kBroadcast.end(), f.begin()) &&
             std::equal(kOutside.begin(), kOutside.end(), f.begin() + 6);
    };
    for (io::PacketLower* w : {&watch0, &watch1}) {
      const auto got = collect(*w, kFloods, ours);
      ASSERT_EQ(got.size(), kFloods);
      for (std::uint32_t k = 0; k < kFloods; ++k)
        EXPECT_TRUE(has_marker(got[k], first + k)) << "copy " << k << " out of order";
    }
    // Every device got every flood (counted once written).
    const std::uint64_t want = std::uint64_t{kFloods} * round;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    auto all_there = [&] {
      for (const auto& d : pv_.devices) {
        if (Dataplane::device_counters(*d).rx_packets != want) return false;
      }
      return true;
    };
    while (!all_there() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    for (const auto& d : pv_.devices)
      EXPECT_EQ(Dataplane::device_counters(*d).rx_packets, want) << "device " << d->id;
    const std::uint64_t out = dp.worker_counters(0).shares_out + dp.worker_counters(1).shares_out;
    const std::uint64_t in = dp.worker_counters(0).shares_in + dp.worker_counters(1).shares_in;
    EXPECT_EQ(out, kFloods);
    EXPECT_EQ(in, kFloods);
    EXPECT_EQ(Dataplane::port_counters(*pv_.io).drops_for(core::DropReason::kBcQueueFull), 0u);
  }
}

// Devices removed and added while floods run: once wait_for() says the
// workers have let go of a removed device, no copy reaches it any more,
// not even one shared out in the view before (its TAP still open, then
// destroyed, as `link del` does); nothing is written to a closed
// descriptor.
TEST_F(FloodThreads, ARemovedDeviceGetsNoCopyOnceTheWorkersHaveLetGo) {
  Dataplane dp(2);
  ASSERT_TRUE(publish(dp));
  // Broadcasts from the wire as fast as they go, so that shares wait in
  // the workers' rings when a view changes, until the test ends (also when
  // it fails).
  struct Sender {
    std::atomic<bool> stop{false};
    std::thread thread;
    ~Sender() {
      stop.store(true);
      if (thread.joinable()) thread.join();
    }
  } sender;
  sender.thread = std::thread([&] {
    for (std::uint32_t k = 0; !sender.stop.load(); ++k) {
      (void)wire_.send(make_frame(kBroadcast, kOutside, 0x9000 + (k & 0xfff), 64));
    }
  });
  for (std::size_t round = 0; round < 20; ++round) {
    const core::DeviceId id = static_cast<core::DeviceId>(round % kDevices);
    auto port = std::make_shared<core::Port>(*pv_.port);
    port->remove_device(id);
    pv_.port = port;
    std::shared_ptr<DeviceIo> gone = std::move(pv_.devices[id]);
    ASSERT_TRUE(publish(dp));
    // Its TAP still open: nothing more is written to it.
    const std::uint64_t rx = Dataplane::device_counters(*gone).rx_packets;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    EXPECT_EQ(Dataplane::device_counters(*gone).rx_packets, rx) << "round " << round;
    gone->tap.destroy();
    port = std::make_shared<core::Port>(*pv_.port);
    ASSERT_NO_FATAL_FAILURE(add_bridge_device(fd_, name(id), mac(id), *port, pv_));
    pv_.port = port;
    ASSERT_TRUE(publish(dp));
  }
  EXPECT_GT(dp.worker_counters(0).shares_in + dp.worker_counters(1).shares_in, 0u);
  EXPECT_EQ(Dataplane::port_counters(*pv_.io).drops_for(core::DropReason::kIoError), 0u);
}

// Steering by CPU (root: it loads an eBPF program): each worker is pinned
// to a CPU of its own that the process may use, and the program is there
// for the TAPs and fanout groups. With kFlow, or one worker, neither.
TEST(DataplaneThreads, AdaptiveSteeringPinsEachWorkerToAnAllowedCpu) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  ASSERT_EQ(::sched_getaffinity(0, sizeof allowed, &allowed), 0);
  {
    Dataplane dp(2, TapIo::kAuto, 0, -1, Steer::kAdaptive);
    EXPECT_GE(dp.steering_prog(), 0);
    for (std::size_t w = 0; w < 2; ++w) {
      const int cpu = dp.worker_cpu(w);
      ASSERT_GE(cpu, 0);
      EXPECT_TRUE(CPU_ISSET(cpu, &allowed)) << "worker " << w << " on CPU " << cpu;
    }
    if (CPU_COUNT(&allowed) >= 2) {
      EXPECT_NE(dp.worker_cpu(0), dp.worker_cpu(1));
    }
    EXPECT_EQ(dp.worker_cpu(2), -1);
    EXPECT_TRUE(dp.wait_for(dp.publish(std::make_shared<DataplaneView>()), 2000));
  }
  {
    Dataplane dp(2, TapIo::kAuto, 0, -1, Steer::kFlow);
    EXPECT_EQ(dp.steering_prog(), -1);
    EXPECT_EQ(dp.worker_cpu(0), -1);
  }
  {
    Dataplane dp(1, TapIo::kAuto, 0, -1, Steer::kAdaptive);
    EXPECT_EQ(dp.steering_prog(), -1);
    EXPECT_EQ(dp.worker_cpu(0), -1);
  }
}

}  // namespace
}  // namespace umacvlan::daemon
