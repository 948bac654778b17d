// Needs root. Every test works in namespaces of its own (ScopedNetns).
#include "io/tap_device.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/utsname.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <thread>

#include "io/io_test_util.h"
#include "io/packet_lower.h"

namespace umacvlan::io {
namespace {

using testing::collect;
using testing::has_marker;
using testing::ifindex_in;
using testing::kMacA;
using testing::kMacB;
using testing::make_frame;
using testing::ScopedNetns;

class TapDeviceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root";
    ASSERT_TRUE(ns_.ok());
  }
  ScopedNetns ns_;
};

// Reads from tap until a frame with marker arrives or the timeout passes.
std::vector<std::uint8_t> read_marked(TapDevice& tap, std::uint32_t marker,
                                      std::uint64_t* oversize = nullptr) {
  FrameBatch batch;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (std::chrono::steady_clock::now() < deadline) {
    struct pollfd pfd {
      tap.fd(), POLLIN, 0
    };
    ::poll(&pfd, 1, 20);
    if (tap.read_burst(batch) < 0) break;
    if (oversize != nullptr) *oversize += batch.dropped_oversize;
    for (auto f : batch) {
      if (has_marker(f, marker)) return {f.begin(), f.end()};
    }
  }
  return {};
}

// Copies what one TAP sent into another, virtio-net header and all, and
// keeps the largest frame's size and header.
struct Pump {
  FrameBatch batch{70000};
  std::size_t largest = 0;
  VnetHeader largest_hdr;
  int write_errors = 0;
  void operator()(TapDevice& from, TapDevice& to) {
    if (from.read_burst(batch) < 0) return;
    for (std::size_t i = 0; i < batch.count; ++i) {
      if (batch[i].size() > largest) {
        largest = batch[i].size();
        largest_hdr = batch.vnet[i];
      }
      write_errors += to.write(batch.vnet[i], batch[i]) != 0;
    }
  }
};

// Polls fn() until it returns true or five seconds pass.
bool eventually(const std::function<bool()>& fn) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (std::chrono::steady_clock::now() < deadline) {
    if (fn()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

TEST_F(TapDeviceTest, OpenCreatesPersistentDeviceInsideNamespace) {
  const NetnsFd ns = ns_.open();
  {
    TapDevice tap;
    ASSERT_EQ(TapDevice::open(ns, "umvtap0", &tap), 0);
    EXPECT_TRUE(tap.valid());
    EXPECT_EQ(tap.name(), "umvtap0");
    EXPECT_GT(tap.ifindex(), 0);
    EXPECT_EQ(ifindex_in(ns, "umvtap0"), tap.ifindex());
    EXPECT_EQ(if_nametoindex("umvtap0"), 0u) << "created in the test's own namespace";
    EXPECT_EQ(tap.current_netns().inode(), ns.inode());
    EXPECT_EQ(tap.current_ifindex(), tap.ifindex());
  }
  // Closing the fd leaves the persistent device; opening again attaches.
  const int index = ifindex_in(ns, "umvtap0");
  ASSERT_GT(index, 0);
  TapDevice again;
  ASSERT_EQ(TapDevice::open(ns, "umvtap0", &again), 0);
  EXPECT_EQ(again.ifindex(), index);
  EXPECT_EQ(again.destroy(), 0);
  EXPECT_FALSE(again.valid());
  EXPECT_EQ(ifindex_in(ns, "umvtap0"), 0);
}

TEST_F(TapDeviceTest, OpenRefusesBadNamesOtherDevicesAndASecondAttach) {
  const NetnsFd ns = ns_.open();
  TapDevice tap;
  EXPECT_EQ(TapDevice::open(ns, "", &tap), -EINVAL);
  EXPECT_EQ(TapDevice::open(ns, "sixteen-chars-xx", &tap), -EINVAL);
  ASSERT_EQ(ns_.ip("link add va type veth peer name vb"), 0);
  EXPECT_EQ(TapDevice::open(ns, "va", &tap), -EINVAL);
  EXPECT_FALSE(tap.valid());

  ASSERT_EQ(TapDevice::open(ns, "umvtap0", &tap), 0);
  TapDevice second;
  EXPECT_EQ(TapDevice::open(ns, "umvtap0", &second), -EBUSY);
  EXPECT_FALSE(second.valid());
  EXPECT_EQ(tap.destroy(), 0);
}

TEST_F(TapDeviceTest, PatternNameReportsTheNameTheKernelChose) {
  const NetnsFd ns = ns_.open();
  TapDevice tap;
  ASSERT_EQ(TapDevice::open(ns, "umv%d", &tap), 0);
  EXPECT_EQ(tap.name(), "umv0");
  EXPECT_EQ(ifindex_in(ns, "umv0"), tap.ifindex());
  EXPECT_EQ(tap.destroy(), 0);
}

TEST_F(TapDeviceTest, SetMacMtuUpAndCarrierShowInTheNamespace) {
  const NetnsFd ns = ns_.open();
  TapDevice tap;
  ASSERT_EQ(TapDevice::open(ns, "umvtap0", &tap), 0);
  ASSERT_EQ(tap.set_mac({0x02, 0x11, 0x22, 0x33, 0x44, 0x55}), 0);
  ASSERT_EQ(tap.set_mtu(1400), 0);
  ASSERT_EQ(tap.set_up(true), 0);
  auto l = ns_.link("umvtap0");
  ASSERT_FALSE(l.is_null());
  EXPECT_EQ(l["address"], "02:11:22:33:44:55");
  EXPECT_EQ(l["mtu"], 1400);
  EXPECT_TRUE(ns_.has_flag("umvtap0", "UP"));
  EXPECT_EQ(tap.set_mac({0x01, 0, 0, 0, 0, 1}), -EINVAL);
  EXPECT_EQ(tap.set_mtu(10), -EINVAL);

  ASSERT_EQ(tap.set_carrier(false), 0);
  EXPECT_TRUE(ns_.has_flag("umvtap0", "NO-CARRIER"));
  ASSERT_EQ(tap.set_carrier(true), 0);
  EXPECT_FALSE(ns_.has_flag("umvtap0", "NO-CARRIER"));

  ASSERT_EQ(tap.set_up(false), 0);
  EXPECT_FALSE(ns_.has_flag("umvtap0", "UP"));
  EXPECT_EQ(tap.set_up(false), 0);
  EXPECT_EQ(tap.destroy(), 0);
}

TEST_F(TapDeviceTest, WriteToDownDeviceFailsWithEio) {
  TapDevice tap;
  ASSERT_EQ(TapDevice::open(ns_.open(), "umvtap0", &tap), 0);
  const auto frame = make_frame(kMacA, kMacB, 1);
  EXPECT_EQ(tap.write(frame), -EIO);
  ASSERT_EQ(tap.set_up(true), 0);
  EXPECT_EQ(tap.write(frame), 0);
  EXPECT_EQ(tap.write(std::span(frame).first(10)), -EINVAL);
  EXPECT_EQ(tap.destroy(), 0);
}

TEST_F(TapDeviceTest, WrittenFrameIsReceivedOnTheDeviceByteExact) {
  const NetnsFd ns = ns_.open();
  TapDevice tap;
  ASSERT_EQ(TapDevice::open(ns, "umvtap0", &tap), 0);
  ASSERT_EQ(tap.set_up(true), 0);
  PacketLower capture;
  ASSERT_EQ(PacketLower::open(ns, tap.ifindex(), &capture), 0);

  const auto frame = make_frame(kMacA, kMacB, 0x1234, 200);
  ASSERT_EQ(tap.write(frame), 0);
  const auto got = collect(capture, 1, [](auto f) { return has_marker(f, 0x1234); });
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], frame);
  EXPECT_EQ(tap.destroy(), 0);
}

TEST_F(TapDeviceTest, ReadBurstReturnsWhatTheDeviceTransmitsInBatches) {
  const NetnsFd ns = ns_.open();
  TapDevice tap;
  ASSERT_EQ(TapDevice::open(ns, "umvtap0", &tap), 0);
  ASSERT_EQ(tap.set_up(true), 0);
  PacketLower sender;
  ASSERT_EQ(PacketLower::open(ns, tap.ifindex(), &sender), 0);

  FrameBatch batch;
  EXPECT_EQ(tap.read_burst(batch), 0) << "nothing pending yet";

  const auto one = make_frame(kMacB, kMacA, 0x55aa, 100);
  ASSERT_EQ(sender.send(one), 0);
  EXPECT_EQ(read_marked(tap, 0x55aa), one);

  // 100 frames: a burst stops at the batch capacity and the rest follows.
  std::vector<std::vector<std::uint8_t>> frames;
  for (std::uint32_t i = 0; i < 100; ++i) frames.push_back(make_frame(kMacB, kMacA, 0x7000 + i));
  for (const auto& f : frames) ASSERT_EQ(sender.send(f), 0);
  std::vector<std::vector<std::uint8_t>> got;
  bool saw_full_batch = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (got.size() < frames.size() && std::chrono::steady_clock::now() < deadline) {
    const int n = tap.read_burst(batch);
    ASSERT_GE(n, 0);
    saw_full_batch |= batch.full();
    for (auto f : batch) {
      if (f.size() >= 16 && f[12] == 0x88 && f[13] == 0xb5) got.emplace_back(f.begin(), f.end());
    }
    if (n == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_TRUE(saw_full_batch);
  EXPECT_EQ(got, frames);
  EXPECT_EQ(tap.destroy(), 0);
}

TEST_F(TapDeviceTest, ReadBurstSkipsAndCountsFramesBiggerThanASlot) {
  const NetnsFd ns = ns_.open();
  TapDevice tap;
  ASSERT_EQ(TapDevice::open(ns, "umvtap0", &tap), 0);
  ASSERT_EQ(tap.set_mtu(4000), 0);
  ASSERT_EQ(tap.set_up(true), 0);
  PacketLower sender;
  ASSERT_EQ(PacketLower::open(ns, tap.ifindex(), &sender), 0);

  const auto big = make_frame(kMacB, kMacA, 0xb16, 3000);
  const auto small = make_frame(kMacB, kMacA, 0x5a11, 100);
  ASSERT_EQ(sender.send(big), 0);
  ASSERT_EQ(sender.send(small), 0);
  std::uint64_t oversize = 0;
  EXPECT_EQ(read_marked(tap, 0x5a11, &oversize), small);
  EXPECT_EQ(oversize, 1u);

  // A batch with big slots takes it whole.
  FrameBatch jumbo(4096);
  ASSERT_EQ(sender.send(big), 0);
  std::vector<std::uint8_t> got;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (got.empty() && std::chrono::steady_clock::now() < deadline) {
    ASSERT_GE(tap.read_burst(jumbo), 0);
    for (auto f : jumbo) {
      if (has_marker(f, 0xb16)) got.assign(f.begin(), f.end());
    }
  }
  EXPECT_EQ(got, big);
  EXPECT_EQ(tap.destroy(), 0);
}

// Two TAPs in two namespaces with this test as the wire between them,
// copying every frame with its virtio-net header from one fd to the other:
// a 20 KB TCP send must cross as super-frames bigger than the MTU (GSO TCPV4,
// partial checksum) and arrive intact.
TEST_F(TapDeviceTest, TcpSendsCrossAsGsoSuperFramesWithTheirHeaders) {
  ScopedNetns other;
  ASSERT_TRUE(other.ok());
  TapDevice a, b;
  ASSERT_EQ(TapDevice::open(ns_.open(), "umvtap0", &a), 0);
  ASSERT_EQ(TapDevice::open(other.open(), "umvtap1", &b), 0);
  ASSERT_EQ(a.set_mac(kMacA), 0);
  ASSERT_EQ(b.set_mac(kMacB), 0);
  ASSERT_EQ(a.set_up(true), 0);
  ASSERT_EQ(b.set_up(true), 0);
  ASSERT_EQ(ns_.ip("addr add 10.78.0.1/24 dev umvtap0"), 0);
  ASSERT_EQ(other.ip("addr add 10.78.0.2/24 dev umvtap1"), 0);

  const int server = run_in_netns(other.open(), [] {
    const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(5201);
    inet_pton(AF_INET, "10.78.0.2", &addr.sin_addr);
    if (s < 0 || ::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::listen(s, 1) != 0)
      return -errno;
    return s;
  });
  ASSERT_GE(server, 0);
  const int client = run_in_netns(ns_.open(), [] {
    const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(5201);
    inet_pton(AF_INET, "10.78.0.2", &addr.sin_addr);
    if (s < 0) return -errno;
    if (::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 && errno != EINPROGRESS)
      return -errno;
    return s;
  });
  ASSERT_GE(client, 0);

  std::vector<std::uint8_t> payload(20000);
  for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<std::uint8_t>(i * 13);
  std::vector<std::uint8_t> received;
  std::size_t sent = 0;
  int conn = -1;
  Pump pump;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (received.size() < payload.size() && std::chrono::steady_clock::now() < deadline) {
    struct pollfd pfd[2] = {{a.fd(), POLLIN, 0}, {b.fd(), POLLIN, 0}};
    ::poll(pfd, 2, 10);
    pump(a, b);
    pump(b, a);
    if (conn < 0) conn = ::accept4(server, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (sent < payload.size()) {
      // One send of everything: the stack builds super-frames from it.
      const ssize_t n = ::send(client, payload.data() + sent, payload.size() - sent, MSG_NOSIGNAL);
      if (n > 0) sent += static_cast<std::size_t>(n);
    }
    if (conn >= 0) {
      std::uint8_t buf[65536];
      const ssize_t n = ::recv(conn, buf, sizeof(buf), 0);
      if (n > 0) received.insert(received.end(), buf, buf + n);
    }
  }
  if (conn >= 0) ::close(conn);
  ::close(client);
  ::close(server);

  EXPECT_EQ(received, payload);
  EXPECT_EQ(pump.write_errors, 0);
  EXPECT_GT(pump.largest, 1514u) << "a TCP frame bigger than the MTU";
  EXPECT_EQ(pump.largest_hdr.gso_type & ~kVnetGsoEcn, kVnetGsoTcpv4);
  EXPECT_GT(pump.largest_hdr.gso_size, 0);
  EXPECT_LE(pump.largest_hdr.gso_size, 1460);
  EXPECT_EQ(pump.largest_hdr.flags & kVnetNeedsCsum, kVnetNeedsCsum);
  EXPECT_EQ(pump.largest_hdr.csum_start, 14 + 20);
  EXPECT_EQ(pump.largest_hdr.csum_offset, 16);
  EXPECT_EQ(a.destroy(), 0);
  EXPECT_EQ(b.destroy(), 0);
}

// Linux 6.2 or later: TAPs take UDP segmentation offload.
bool kernel_has_uso() {
  utsname u{};
  int major = 0, minor = 0;
  if (::uname(&u) != 0 || std::sscanf(u.release, "%d.%d", &major, &minor) != 2) return false;
  return major > 6 || (major == 6 && minor >= 2);
}

TEST_F(TapDeviceTest, UdpSegmentSendsCrossAsOneSuperFrameAndEveryDatagramArrives) {
  if (!kernel_has_uso()) GTEST_SKIP() << "UDP segmentation offload on TAPs needs Linux 6.2";
  ScopedNetns other;
  ASSERT_TRUE(other.ok());
  TapDevice a, b;
  ASSERT_EQ(TapDevice::open(ns_.open(), "umvtap0", &a), 0);
  ASSERT_EQ(TapDevice::open(other.open(), "umvtap1", &b), 0);
  ASSERT_EQ(a.set_mac(kMacA), 0);
  ASSERT_EQ(b.set_mac(kMacB), 0);
  ASSERT_EQ(a.set_up(true), 0);
  ASSERT_EQ(b.set_up(true), 0);
  ASSERT_EQ(ns_.ip("addr add 10.78.0.1/24 dev umvtap0"), 0);
  ASSERT_EQ(other.ip("addr add 10.78.0.2/24 dev umvtap1"), 0);

  constexpr int kSegment = 1000;
  constexpr std::size_t kDatagrams = 20;
  auto udp_socket = [](const char* bind_to, const char* connect_to) {
    const int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(5202);
    if (s < 0) return -errno;
    inet_pton(AF_INET, bind_to != nullptr ? bind_to : connect_to, &addr.sin_addr);
    if (bind_to != nullptr && ::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0)
      return -errno;
    if (connect_to != nullptr) {
      if (::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return -errno;
      // Each send is kDatagrams datagrams of kSegment bytes, cut by whoever
      // segments it: the stack, or the receiving side for a super-frame.
      const int segment = kSegment;
      if (::setsockopt(s, SOL_UDP, UDP_SEGMENT, &segment, sizeof segment) != 0) return -errno;
    }
    return s;
  };
  const int server = run_in_netns(other.open(), [&] { return udp_socket("10.78.0.2", nullptr); });
  ASSERT_GE(server, 0);
  const int client = run_in_netns(ns_.open(), [&] { return udp_socket(nullptr, "10.78.0.2"); });
  ASSERT_GE(client, 0);

  std::vector<std::uint8_t> payload(kSegment * kDatagrams);
  for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<std::uint8_t>(i * 7);
  std::vector<std::vector<std::uint8_t>> received;
  bool sent = false;
  Pump pump;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (received.size() < kDatagrams && std::chrono::steady_clock::now() < deadline) {
    struct pollfd pfd[2] = {{a.fd(), POLLIN, 0}, {b.fd(), POLLIN, 0}};
    ::poll(pfd, 2, 10);
    pump(a, b);
    pump(b, a);
    // The first send waits in the neighbour queue for ARP, pumped above.
    if (!sent) sent = ::send(client, payload.data(), payload.size(), 0) == ssize_t(payload.size());
    std::uint8_t buf[65536];
    for (ssize_t n; (n = ::recv(server, buf, sizeof(buf), 0)) > 0;)
      received.emplace_back(buf, buf + n);
  }
  ::close(client);
  ::close(server);

  ASSERT_EQ(received.size(), kDatagrams);
  for (std::size_t k = 0; k < kDatagrams; ++k) {
    const auto first = payload.begin() + static_cast<std::ptrdiff_t>(k * kSegment);
    EXPECT_EQ(received[k], std::vector<std::uint8_t>(first, first + kSegment)) << "datagram " << k;
  }
  EXPECT_EQ(pump.write_errors, 0);
  EXPECT_EQ(pump.largest, 14 + 20 + 8 + payload.size()) << "one frame carried them all";
  EXPECT_EQ(pump.largest_hdr.gso_type, kVnetGsoUdpL4);
  EXPECT_EQ(pump.largest_hdr.gso_size, kSegment);
  EXPECT_EQ(pump.largest_hdr.flags & kVnetNeedsCsum, kVnetNeedsCsum);
  EXPECT_EQ(pump.largest_hdr.csum_start, 14 + 20);
  EXPECT_EQ(pump.largest_hdr.csum_offset, 6);
  EXPECT_EQ(a.destroy(), 0);
  EXPECT_EQ(b.destroy(), 0);
}

TEST_F(TapDeviceTest, CurrentNetnsFollowsTheDeviceToAnotherNamespace) {
  ScopedNetns other;
  ASSERT_TRUE(other.ok());
  TapDevice tap;
  ASSERT_EQ(TapDevice::open(ns_.open(), "umvtap0", &tap), 0);
  ASSERT_EQ(ns_.ip("link set umvtap0 netns " + other.name()), 0);

  const NetnsFd there = other.open();
  EXPECT_EQ(tap.current_netns().inode(), there.inode());
  EXPECT_NE(tap.current_netns().inode(), ns_.open().inode());
  EXPECT_EQ(tap.current_ifindex(), ifindex_in(there, "umvtap0"));
  // Control calls act where the device is now.
  ASSERT_EQ(tap.set_mtu(1280), 0);
  EXPECT_EQ(other.link("umvtap0")["mtu"], 1280);

  ASSERT_EQ(other.ip("link set umvtap0 name renamed0"), 0);
  std::string name;
  ASSERT_EQ(tap.current_name(&name), 0);
  EXPECT_EQ(name, "renamed0");
  ASSERT_EQ(tap.set_up(true), 0);
  EXPECT_TRUE(other.has_flag("renamed0", "UP"));
  EXPECT_EQ(tap.destroy(), 0);
  EXPECT_TRUE(other.link("renamed0").is_null());
}

TEST_F(TapDeviceTest, ReadBurstFailsOnceTheDevicesNamespaceIsDeleted) {
  auto other = std::make_unique<ScopedNetns>();
  ASSERT_TRUE(other->ok());
  TapDevice tap;
  ASSERT_EQ(TapDevice::open(ns_.open(), "umvtap0", &tap), 0);
  ASSERT_EQ(ns_.ip("link set umvtap0 netns " + other->name()), 0);
  FrameBatch batch;
  EXPECT_EQ(tap.read_burst(batch), 0);

  other->remove();  // no fd of it is left open anywhere: it dies
  int rc = 0;
  EXPECT_TRUE(eventually([&] { return (rc = tap.read_burst(batch)) < 0; }));
  EXPECT_EQ(rc, -EBADFD);
  EXPECT_EQ(tap.write(make_frame(kMacA, kMacB, 1)), -EBADFD);
  EXPECT_FALSE(tap.current_netns().valid());
  EXPECT_EQ(tap.destroy(), 0);
}

// Characterises the kernel: the tun fd holds a reference on the namespace it
// was opened in, so a device opened with open() outlives `ip netns del` of
// its own namespace until the fd is closed. create_and_move() avoids this.
TEST_F(TapDeviceTest, OpenKeepsItsOwnNamespaceAlive) {
  auto doomed = std::make_unique<ScopedNetns>();
  ASSERT_TRUE(doomed->ok());
  TapDevice tap;
  ASSERT_EQ(TapDevice::open(doomed->open(), "umvtap0", &tap), 0);
  const ino_t inode = tap.current_netns().inode();
  doomed->remove();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  FrameBatch batch;
  EXPECT_EQ(tap.read_burst(batch), 0);
  EXPECT_EQ(tap.current_netns().inode(), inode);
  EXPECT_EQ(tap.destroy(), 0);  // lets the namespace go
}

class TapCreateAndMoveTest : public TapDeviceTest {
 protected:
  void SetUp() override {
    TapDeviceTest::SetUp();
    ASSERT_TRUE(target_->ok());
  }
  // ns_ plays the daemon's own namespace ("home").
  std::unique_ptr<ScopedNetns> target_ = std::make_unique<ScopedNetns>();
};

TEST_F(TapCreateAndMoveTest, DeviceLandsInTargetAndDiesWithIt) {
  TapDevice tap;
  ASSERT_EQ(TapDevice::create_and_move(ns_.open(), target_->open(), "mv0", &tap), 0);
  EXPECT_EQ(tap.name(), "mv0");
  EXPECT_EQ(tap.ifindex(), ifindex_in(target_->open(), "mv0"));
  EXPECT_EQ(tap.current_netns().inode(), target_->open().inode());
  EXPECT_EQ(ifindex_in(ns_.open(), "mv0"), 0);

  ASSERT_EQ(tap.set_up(true), 0);
  FrameBatch batch;
  EXPECT_GE(tap.read_burst(batch), 0);

  target_->remove();
  int rc = 0;
  EXPECT_TRUE(eventually([&] { return (rc = tap.read_burst(batch)) < 0; }));
  EXPECT_EQ(rc, -EBADFD);
  EXPECT_EQ(tap.destroy(), 0);
}

TEST_F(TapCreateAndMoveTest, NameTakenInTargetIsRefusedAndLeavesNothingBehind) {
  ASSERT_EQ(target_->ip("link add mv0 type veth peer name mv0p"), 0);
  const std::string before = testing::capture("ip -n " + ns_.name() + " -o link");
  TapDevice tap;
  EXPECT_EQ(TapDevice::create_and_move(ns_.open(), target_->open(), "mv0", &tap), -EEXIST);
  EXPECT_FALSE(tap.valid());
  EXPECT_EQ(testing::capture("ip -n " + ns_.name() + " -o link"), before);
  EXPECT_EQ(target_->link("mv0")["linkinfo"]["info_kind"], "veth");
  EXPECT_EQ(TapDevice::create_and_move(ns_.open(), target_->open(), "bad%d", &tap), -EINVAL);
}

TEST_F(TapCreateAndMoveTest, NameTakenAtHomeStillWorks) {
  ASSERT_EQ(ns_.ip("link add mv0 type veth peer name mv0p"), 0);
  TapDevice tap;
  ASSERT_EQ(TapDevice::create_and_move(ns_.open(), target_->open(), "mv0", &tap), 0);
  EXPECT_EQ(ifindex_in(target_->open(), "mv0"), tap.ifindex());
  EXPECT_EQ(ns_.link("mv0")["linkinfo"]["info_kind"], "veth");
  const auto l = target_->link("mv0");
  ASSERT_FALSE(l.is_null());
  EXPECT_EQ(l["linkinfo"]["info_kind"], "tun");
  EXPECT_EQ(tap.destroy(), 0);
  EXPECT_TRUE(target_->link("mv0").is_null());
}

}  // namespace
}  // namespace umacvlan::io
