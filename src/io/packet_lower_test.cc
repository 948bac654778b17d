// Needs root. Every test works in a namespace of its own holding a veth pair
// va <-> vb (ScopedNetns): frames sent on va arrive on vb.
#include "io/packet_lower.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "io/io_test_util.h"

namespace umacvlan::io {
namespace {

using testing::collect;
using testing::has_marker;
using testing::ifindex_in;
using testing::kMacA;
using testing::kMacB;
using testing::make_frame;
using testing::ScopedNetns;

class PacketLowerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root";
    ASSERT_TRUE(ns_.ok());
    ASSERT_EQ(ns_.ip("link add va address 02:00:00:00:00:0a type veth peer name vb address "
                     "02:00:00:00:00:0b"),
              0);
    ASSERT_EQ(ns_.ip("link set va up"), 0);
    ASSERT_EQ(ns_.ip("link set vb up"), 0);
    ns_fd_ = ns_.open();
    va_ = ifindex_in(ns_fd_, "va");
    vb_ = ifindex_in(ns_fd_, "vb");
    ASSERT_GT(va_, 0);
    ASSERT_GT(vb_, 0);
  }
  int promiscuity(const std::string& dev) { return ns_.link(dev)["promiscuity"].get<int>(); }
  int allmulti(const std::string& dev) { return ns_.link(dev)["allmulti"].get<int>(); }

  ScopedNetns ns_;
  NetnsFd ns_fd_;
  int va_ = 0;
  int vb_ = 0;
};

auto marked(std::uint32_t m) {
  return [m](std::span<const std::uint8_t> f) { return has_marker(f, m); };
}

TEST_F(PacketLowerTest, OpenRefusesMissingInterface) {
  PacketLower pl;
  EXPECT_EQ(PacketLower::open(ns_fd_, 9999, &pl), -ENODEV);
  EXPECT_EQ(PacketLower::open(ns_fd_, 0, &pl), -EINVAL);
  EXPECT_FALSE(pl.valid());
}

TEST_F(PacketLowerTest, ReceivesExactlyWhatThePeerSends) {
  PacketLower a, b;
  ASSERT_EQ(PacketLower::open(ns_fd_, va_, &a), 0);
  ASSERT_EQ(PacketLower::open(ns_fd_, vb_, &b), 0);
  EXPECT_EQ(b.ifindex(), vb_);

  std::vector<std::vector<std::uint8_t>> sent;
  for (std::uint32_t i = 0; i < 10; ++i) {
    sent.push_back(make_frame(kMacB, kMacA, 0xabc000 + i, 46 + 100 * i));
    ASSERT_EQ(a.send(sent.back()), 0);
  }
  const auto got =
      collect(b, 10, [](auto f) { return f.size() >= 14 && f[12] == 0x88 && f[13] == 0xb5; });
  EXPECT_EQ(got, sent);
}

TEST_F(PacketLowerTest, PutsVlanTagsBackByteExact) {
  PacketLower a, b;
  ASSERT_EQ(PacketLower::open(ns_fd_, va_, &a), 0);
  ASSERT_EQ(PacketLower::open(ns_fd_, vb_, &b), 0);

  const std::vector<std::vector<std::uint8_t>> sent = {
      make_frame(kMacB, kMacA, 0xc1, 80, {0x8100, 0xa00a}),                  // PCP 5, VID 10
      make_frame(kMacB, kMacA, 0xc2, 80, {0x8100, 0x0000}),                  // priority tag, VID 0
      make_frame(kMacB, kMacA, 0xc3, 80, {0x88a8, 0x0064, 0x8100, 0x0007}),  // QinQ
      make_frame(kMacB, kMacA, 0xc4, 1500, {0x8100, 0x0fff}),                // full-size payload
  };
  for (const auto& f : sent) ASSERT_EQ(a.send(f), 0);
  const auto got = collect(b, sent.size(), [](auto f) {
    return has_marker(f, 0xc1) || has_marker(f, 0xc2) || has_marker(f, 0xc3) || has_marker(f, 0xc4);
  });
  EXPECT_EQ(got, sent);
}

TEST_F(PacketLowerTest, ViewsPointIntoTheRingUntilReleasedAndWrapAround) {
  PacketLower a, b;
  ASSERT_EQ(PacketLower::open(ns_fd_, va_, &a), 0);
  ASSERT_EQ(PacketLower::open(ns_fd_, vb_, &b), 0);

  // More frames than the ring has slots, untagged and tagged mixed: the
  // views must see each byte-exact, in order, across the ring's wrap.
  const std::size_t total = PacketLower::kSlots * 2 + 7;
  std::vector<std::vector<std::uint8_t>> sent, got;
  FrameBatch batch;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  std::size_t next = 0;
  while (got.size() < total && std::chrono::steady_clock::now() < deadline) {
    // A few at a time, so the ring never overflows.
    for (int k = 0; k < 16 && next < total; ++k, ++next) {
      const auto marker = static_cast<std::uint32_t>(0x7100000 + next);
      sent.push_back(next % 5 == 0 ? make_frame(kMacB, kMacA, marker, 60, {0x8100, 0x0005})
                                   : make_frame(kMacB, kMacA, marker, 60 + next % 300));
      ASSERT_EQ(a.send(sent.back()), 0);
    }
    struct pollfd pfd {
      b.fd(), POLLIN, 0
    };
    ::poll(&pfd, 1, 20);
    b.receive_views(batch);
    const std::vector<std::span<const std::uint8_t>> held(batch.begin(), batch.end());
    // Held views stay valid while frames keep arriving behind them.
    for (int k = 0; k < 4 && next < total; ++k, ++next) {
      const auto marker = static_cast<std::uint32_t>(0x7100000 + next);
      sent.push_back(make_frame(kMacB, kMacA, marker, 70));
      ASSERT_EQ(a.send(sent.back()), 0);
    }
    for (const auto f : held) {
      if (f.size() >= 18 && (f[12] == 0x81 || (f[12] == 0x88 && f[13] == 0xb5)))
        got.emplace_back(f.begin(), f.end());
    }
    b.release_views();
  }
  EXPECT_EQ(got, sent);
}

TEST_F(PacketLowerTest, DoesNotSeeItsOwnTransmissions) {
  PacketLower a, b;
  ASSERT_EQ(PacketLower::open(ns_fd_, va_, &a), 0);
  ASSERT_EQ(PacketLower::open(ns_fd_, vb_, &b), 0);
  const auto frame = make_frame(kMacB, kMacA, 0x0e0e);
  ASSERT_EQ(a.send(frame), 0);
  EXPECT_EQ(collect(b, 1, marked(0x0e0e)).size(), 1u);
  EXPECT_TRUE(collect(a, 1, marked(0x0e0e), std::chrono::milliseconds(200)).empty());

  // The kernel never loops a frame back to the socket that sent it anyway;
  // what IGNORE_OUTGOING adds is silence about everyone else's transmissions
  // on the interface: another socket's,
  PacketLower other;
  ASSERT_EQ(PacketLower::open(ns_fd_, va_, &other), 0);
  ASSERT_EQ(other.send(make_frame(kMacB, kMacA, 0x0f0f)), 0);
  EXPECT_EQ(collect(b, 1, marked(0x0f0f)).size(), 1u);
  EXPECT_TRUE(collect(a, 1, marked(0x0f0f), std::chrono::milliseconds(200)).empty());

  // and the host stack's: an ARP request from va.
  ASSERT_EQ(ns_.ip("addr add 10.77.0.1/24 dev va"), 0);
  testing::sh("ip netns exec " + ns_.name() + " ping -c1 -W1 -q 10.77.0.2 >/dev/null 2>&1");
  auto is_arp = [](std::span<const std::uint8_t> f) {
    return f.size() >= 14 && f[12] == 0x08 && f[13] == 0x06;
  };
  EXPECT_FALSE(collect(b, 1, is_arp).empty()) << "the ARP request left va";
  EXPECT_TRUE(collect(a, 1, is_arp, std::chrono::milliseconds(200)).empty());
}

// A fanout group delivers through its own hook: the sockets' IGNORE_OUTGOING
// must still hold there (found by `umacvlan lab`: with two workers the host
// stack's frames reached the devices).
TEST_F(PacketLowerTest, FanoutMembersDoNotSeeTransmissionsEither) {
  PacketLower::Options opts;
  opts.fanout_group = 4242;
  PacketLower a1, a2, b;
  ASSERT_EQ(PacketLower::open(ns_fd_, va_, &a1, opts), 0);
  ASSERT_EQ(PacketLower::open(ns_fd_, va_, &a2, opts), 0);
  ASSERT_EQ(PacketLower::open(ns_fd_, vb_, &b), 0);
  PacketLower other;
  ASSERT_EQ(PacketLower::open(ns_fd_, va_, &other), 0);
  for (std::uint32_t m = 0x1100; m < 0x1108; ++m) {
    ASSERT_EQ(other.send(make_frame(kMacB, kMacA, m)), 0);
  }
  auto any_mark = [](std::span<const std::uint8_t> f) {
    for (std::uint32_t m = 0x1100; m < 0x1108; ++m) {
      if (has_marker(f, m)) return true;
    }
    return false;
  };
  EXPECT_EQ(collect(b, 8, any_mark).size(), 8u) << "the frames left va";
  EXPECT_TRUE(collect(a1, 1, any_mark, std::chrono::milliseconds(200)).empty());
  EXPECT_TRUE(collect(a2, 1, any_mark, std::chrono::milliseconds(200)).empty());
  // What arrives is still shared out between the members.
  PacketLower sender;
  ASSERT_EQ(PacketLower::open(ns_fd_, vb_, &sender), 0);
  for (std::uint32_t m = 0x1100; m < 0x1108; ++m) {
    ASSERT_EQ(sender.send(make_frame(kMacA, kMacB, m)), 0);
  }
  const auto got1 = collect(a1, 8, any_mark, std::chrono::milliseconds(300));
  const auto got2 = collect(a2, 8, any_mark, std::chrono::milliseconds(300));
  EXPECT_EQ(got1.size() + got2.size(), 8u);
}

TEST_F(PacketLowerTest, SendBurstSendsUpToABatchInOrder) {
  PacketLower a, b;
  ASSERT_EQ(PacketLower::open(ns_fd_, va_, &a), 0);
  ASSERT_EQ(PacketLower::open(ns_fd_, vb_, &b), 0);
  std::vector<std::vector<std::uint8_t>> frames;
  for (std::uint32_t i = 0; i < 70; ++i) frames.push_back(make_frame(kMacB, kMacA, 0x5000 + i));
  std::vector<std::span<const std::uint8_t>> views(frames.begin(), frames.end());
  EXPECT_EQ(a.send_burst(views), static_cast<int>(kBatchSize));
  EXPECT_EQ(a.send_burst({}), 0);
  const auto got = collect(b, kBatchSize,
                           [](auto f) { return f.size() >= 14 && f[12] == 0x88 && f[13] == 0xb5; });
  ASSERT_EQ(got.size(), kBatchSize);
  EXPECT_TRUE(std::equal(got.begin(), got.end(), frames.begin()));
}

TEST_F(PacketLowerTest, SendReportsErrors) {
  PacketLower a;
  ASSERT_EQ(PacketLower::open(ns_fd_, va_, &a), 0);
  const auto too_big = make_frame(kMacB, kMacA, 1, 3000);
  EXPECT_EQ(a.send(too_big), -EMSGSIZE);
  ASSERT_EQ(ns_.ip("link set va down"), 0);
  EXPECT_EQ(a.send(make_frame(kMacB, kMacA, 2)), -ENETDOWN);
  EXPECT_EQ(a.pending_error(), -ENETDOWN);
  EXPECT_EQ(a.pending_error(), 0) << "reading SO_ERROR clears it";
}

TEST_F(PacketLowerTest, FramesBiggerThanASlotAreCountedNotTruncated) {
  ASSERT_EQ(ns_.ip("link set va mtu 4000"), 0);
  ASSERT_EQ(ns_.ip("link set vb mtu 4000"), 0);
  PacketLower a, b;
  ASSERT_EQ(PacketLower::open(ns_fd_, va_, &a), 0);
  ASSERT_EQ(PacketLower::open(ns_fd_, vb_, &b), 0);
  ASSERT_EQ(a.send(make_frame(kMacB, kMacA, 0xb16, 3000)), 0);
  ASSERT_EQ(a.send(make_frame(kMacB, kMacA, 0x5a11, 100)), 0);
  std::uint64_t oversize = 0;
  const auto got = collect(b, 1, marked(0x5a11), std::chrono::milliseconds(2000), &oversize);
  EXPECT_EQ(got.size(), 1u);
  EXPECT_EQ(oversize, 1u);
}

std::uint64_t fold_add(std::uint64_t sum, std::span<const std::uint8_t> bytes) {
  for (std::size_t i = 0; i + 1 < bytes.size(); i += 2) sum += bytes[i] << 8 | bytes[i + 1];
  if (bytes.size() % 2) sum += bytes.back() << 8;
  return sum;
}

std::uint16_t fold(std::uint64_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint16_t>(sum);
}

// The folded pseudo-header sum of the IPv4 UDP datagram at l3 (uncomplemented,
// what CHECKSUM_PARTIAL leaves in the checksum field).
std::uint16_t udp4_pseudo_sum(const std::vector<std::uint8_t>& f, std::size_t l3) {
  const std::size_t l4 = l3 + (f[l3] & 0x0f) * 4u;
  const std::size_t udp_len = f[l4 + 4] << 8 | f[l4 + 5];
  std::uint64_t sum = fold_add(0, std::span(f).subspan(l3 + 12, 8));
  return fold(sum + IPPROTO_UDP + udp_len);
}

// Residue of the UDP checksum of the IPv4 datagram at l3: 0 when valid.
std::uint16_t udp4_checksum_residue(const std::vector<std::uint8_t>& f, std::size_t l3) {
  const std::size_t l4 = l3 + (f[l3] & 0x0f) * 4u;
  const std::size_t udp_len = f[l4 + 4] << 8 | f[l4 + 5];
  const std::uint64_t sum = udp4_pseudo_sum(f, l3);
  return static_cast<std::uint16_t>(~fold(fold_add(sum, std::span(f).subspan(l4, udp_len))));
}

// kMacB <- kMacA, [tags], IPv4 10.77.0.1 -> 10.77.0.2, UDP 1234 -> 9999 with
// payload_len bytes and a zero checksum field.
std::vector<std::uint8_t> make_udp4_frame(const std::vector<std::uint16_t>& tags,
                                          std::size_t payload_len) {
  std::vector<std::uint8_t> f(kMacB.begin(), kMacB.end());
  f.insert(f.end(), kMacA.begin(), kMacA.end());
  auto put16 = [&](std::uint32_t v) {
    f.push_back(static_cast<std::uint8_t>(v >> 8));
    f.push_back(static_cast<std::uint8_t>(v & 0xff));
  };
  for (auto t : tags) put16(t);
  put16(0x0800);
  const std::size_t l3 = f.size();
  const std::size_t total = 20 + 8 + payload_len;
  put16(0x4500);
  put16(static_cast<std::uint32_t>(total));
  put16(0x1234);
  put16(0x4000);
  put16(0x4011);  // TTL 64, UDP
  put16(0);
  for (std::uint8_t b : {10, 77, 0, 1, 10, 77, 0, 2}) f.push_back(b);
  const std::uint16_t ip_csum =
      static_cast<std::uint16_t>(~fold(fold_add(0, std::span(f).subspan(l3, 20))));
  f[l3 + 10] = static_cast<std::uint8_t>(ip_csum >> 8);
  f[l3 + 11] = static_cast<std::uint8_t>(ip_csum & 0xff);
  put16(1234);
  put16(9999);
  put16(static_cast<std::uint32_t>(8 + payload_len));
  put16(0);
  for (std::size_t i = 0; i < payload_len; ++i) f.push_back(static_cast<std::uint8_t>(i * 7));
  return f;
}

bool udp_to_9999(std::span<const std::uint8_t> f) {
  const std::size_t l3 = (f.size() > 16 && f[12] == 0x81 && f[13] == 0x00) ? 18 : 14;
  return f.size() >= l3 + 28 && f[l3 - 2] == 0x08 && f[l3 - 1] == 0x00 &&
         f[l3 + 9] == IPPROTO_UDP && f[l3 + 22] == 0x27 && f[l3 + 23] == 0x0f;
}

// Completes the checksum the header says is partial, as the kernel would
// (the field already holds the pseudo-header sum); returns the frame.
std::vector<std::uint8_t> completed(std::vector<std::uint8_t> f, const VnetHeader& h) {
  const std::size_t at = std::size_t{h.csum_start} + h.csum_offset;
  if (at + 2 > f.size()) return f;
  const std::uint16_t csum =
      static_cast<std::uint16_t>(~fold(fold_add(0, std::span(f).subspan(h.csum_start))));
  f[at] = static_cast<std::uint8_t>(csum >> 8);
  f[at + 1] = static_cast<std::uint8_t>(csum & 0xff);
  return f;
}

// The peer's stack hands veth UDP frames whose checksum is left for
// "hardware" (CHECKSUM_PARTIAL): they arrive as they are, with a header that
// says so and where the checksum goes.
TEST_F(PacketLowerTest, KeepsChecksumsTheStackLeftPartialInTheHeader) {
  ASSERT_EQ(ns_.ip("addr add 10.77.0.1/24 dev va"), 0);
  ASSERT_EQ(ns_.ip("neigh add 10.77.0.2 lladdr 02:00:00:00:00:0b dev va"), 0);
  PacketLower b;
  ASSERT_EQ(PacketLower::open(ns_fd_, vb_, &b), 0);

  const int rc = run_in_netns(ns_fd_, [] {
    const int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) return -errno;
    int failures = 0;
    for (std::size_t len : {1u, 333u, 1200u}) {
      std::vector<std::uint8_t> payload(len, 0x5c);
      sockaddr_in to{};
      to.sin_family = AF_INET;
      to.sin_port = htons(9999);
      inet_pton(AF_INET, "10.77.0.2", &to.sin_addr);
      if (::sendto(s, payload.data(), payload.size(), 0, reinterpret_cast<sockaddr*>(&to),
                   sizeof(to)) < 0) {
        ++failures;
      }
    }
    ::close(s);
    return failures;
  });
  ASSERT_EQ(rc, 0);

  std::vector<VnetHeader> vnet;
  const auto got = collect(b, 3, udp_to_9999, std::chrono::milliseconds(2000), nullptr, &vnet);
  ASSERT_EQ(got.size(), 3u);
  ASSERT_EQ(vnet.size(), 3u);
  for (std::size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(vnet[i].flags & kVnetNeedsCsum, kVnetNeedsCsum) << "frame " << i;
    EXPECT_EQ(vnet[i].gso_type, kVnetGsoNone);
    EXPECT_EQ(vnet[i].csum_start, 14 + 20);
    EXPECT_EQ(vnet[i].csum_offset, 6);
    EXPECT_EQ(udp4_pseudo_sum(got[i], 14), got[i][40] << 8 | got[i][41])
        << "the field holds the pseudo-header sum";
    EXPECT_EQ(udp4_checksum_residue(completed(got[i], vnet[i]), 14), 0)
        << "frame of " << got[i].size();
  }
}

// A tagged frame whose checksum is still partial (injected through a
// PACKET_VNET_HDR socket, as a VLAN device on a veth would send it: this
// kernel may lack 8021q): the header must point at the checksum in the frame
// as we hand it out, with the tag back in it.
TEST_F(PacketLowerTest, PartialChecksumsOfTaggedFramesPointPastTheTag) {
  PacketLower b;
  ASSERT_EQ(PacketLower::open(ns_fd_, vb_, &b), 0);

  const std::vector<std::vector<std::uint16_t>> tag_sets = {{}, {0x8100, 0x200a}};
  std::vector<std::vector<std::uint8_t>> sent;
  const int rc = run_in_netns(ns_fd_, [&] {
    const int s = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
    if (s < 0) return -errno;
    int one = 1;
    ::setsockopt(s, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof(one));
    sockaddr_ll sll{};
    sll.sll_family = AF_PACKET;
    sll.sll_ifindex = va_;
    int failures = ::bind(s, reinterpret_cast<sockaddr*>(&sll), sizeof(sll)) != 0;
    for (const auto& tags : tag_sets) {
      std::vector<std::uint8_t> f = make_udp4_frame(tags, 301);
      const std::size_t l4 = 14 + 4 * (tags.size() / 2) + 20;
      // Only the pseudo-header sum in the checksum field, as the stack leaves it.
      const std::uint16_t pseudo = udp4_pseudo_sum(f, l4 - 20);
      f[l4 + 6] = static_cast<std::uint8_t>(pseudo >> 8);
      f[l4 + 7] = static_cast<std::uint8_t>(pseudo & 0xff);
      sent.push_back(f);
      std::uint8_t vnet[10] = {1 /* NEEDS_CSUM */,
                               0,
                               0,
                               0,
                               0,
                               0,
                               static_cast<std::uint8_t>(l4),
                               static_cast<std::uint8_t>(l4 >> 8),
                               6,
                               0};
      iovec iov[2] = {{vnet, sizeof(vnet)}, {f.data(), f.size()}};
      msghdr msg{};
      msg.msg_iov = iov;
      msg.msg_iovlen = 2;
      failures += ::sendmsg(s, &msg, 0) < 0;
    }
    ::close(s);
    return failures;
  });
  ASSERT_EQ(rc, 0);

  std::vector<VnetHeader> vnet;
  const auto got = collect(b, 2, udp_to_9999, std::chrono::milliseconds(2000), nullptr, &vnet);
  ASSERT_EQ(got.size(), 2u);
  ASSERT_EQ(vnet.size(), 2u);
  for (std::size_t i = 0; i < got.size(); ++i) {
    const std::size_t l3 = 14 + 4 * (tag_sets[i].size() / 2);
    EXPECT_EQ(got[i], sent[i]) << "frame " << i << " arrives as it was sent";
    EXPECT_EQ(vnet[i].flags & kVnetNeedsCsum, kVnetNeedsCsum);
    EXPECT_EQ(vnet[i].csum_start, l3 + 20) << "frame " << i;
    EXPECT_EQ(vnet[i].csum_offset, 6);
    EXPECT_EQ(udp4_checksum_residue(completed(got[i], vnet[i]), l3), 0) << "frame " << i;
  }
}

// kMacB <- kMacA, [tags], IPv4 10.77.0.1 -> 10.77.0.2, TCP 1234 -> 5201 with
// payload_len bytes; the checksum field holds the pseudo-header sum.
std::vector<std::uint8_t> make_tcp4_frame(const std::vector<std::uint16_t>& tags,
                                          std::size_t payload_len) {
  std::vector<std::uint8_t> f = make_udp4_frame(tags, payload_len + 12);
  const std::size_t l3 = 14 + 2 * tags.size();
  const std::size_t l4 = l3 + 20;
  f[l3 + 9] = IPPROTO_TCP;
  f[l3 + 10] = f[l3 + 11] = 0;
  const std::uint16_t ip_csum =
      static_cast<std::uint16_t>(~fold(fold_add(0, std::span(f).subspan(l3, 20))));
  f[l3 + 10] = static_cast<std::uint8_t>(ip_csum >> 8);
  f[l3 + 11] = static_cast<std::uint8_t>(ip_csum & 0xff);
  std::fill(f.begin() + static_cast<std::ptrdiff_t>(l4),
            f.begin() + static_cast<std::ptrdiff_t>(l4 + 20), 0);
  f[l4 + 0] = 1234 >> 8;
  f[l4 + 1] = 1234 & 0xff;
  f[l4 + 2] = 5201 >> 8;
  f[l4 + 3] = 5201 & 0xff;
  f[l4 + 12] = 5 << 4;  // data offset: 20 bytes
  f[l4 + 13] = 0x18;    // PSH, ACK
  f[l4 + 14] = 0xff;    // window
  const std::uint64_t pseudo =
      fold_add(0, std::span(f).subspan(l3 + 12, 8)) + IPPROTO_TCP + (f.size() - l4);
  const std::uint16_t p = fold(pseudo);
  f[l4 + 16] = static_cast<std::uint8_t>(p >> 8);
  f[l4 + 17] = static_cast<std::uint8_t>(p & 0xff);
  return f;
}

// A TCP super-frame sent with a GSO header leaves whole (veth carries GSO),
// and the receiving socket sees it whole with its header, the tag put back
// and csum_start moved past it.
TEST_F(PacketLowerTest, GsoFramesCrossWholeWithTheirHeader) {
  PacketLower a, b;
  ASSERT_EQ(PacketLower::open(ns_fd_, va_, &a), 0);
  ASSERT_EQ(PacketLower::open(ns_fd_, vb_, &b), 0);
  FrameBatch batch(70000);
  const std::vector<std::vector<std::uint16_t>> tag_sets = {{}, {0x8100, 0x200a}};
  for (const auto& tags : tag_sets) {
    const std::size_t l4 = 14 + 2 * tags.size() + 20;
    const auto frame = make_tcp4_frame(tags, 4000);
    VnetHeader h;
    h.flags = kVnetNeedsCsum;
    h.gso_type = kVnetGsoTcpv4;
    h.gso_size = 1000;
    h.hdr_len = static_cast<std::uint16_t>(l4 + 20);
    h.csum_start = static_cast<std::uint16_t>(l4);
    h.csum_offset = 16;
    ASSERT_EQ(a.send(h, frame), 0) << tags.size() << " tags";
    ASSERT_EQ(a.send(frame), -EMSGSIZE) << "without GSO it is bigger than the MTU";

    std::vector<std::uint8_t> got;
    VnetHeader got_h;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (got.empty() && std::chrono::steady_clock::now() < deadline) {
      struct pollfd pfd {
        b.fd(), POLLIN, 0
      };
      ::poll(&pfd, 1, 20);
      b.receive_burst(batch);
      EXPECT_EQ(batch.dropped_oversize, 0u);
      for (std::size_t i = 0; i < batch.count; ++i) {
        if (batch[i].size() > 1514) {
          got.assign(batch[i].begin(), batch[i].end());
          got_h = batch.vnet[i];
        }
      }
    }
    EXPECT_EQ(got, frame) << tags.size() << " tags";
    EXPECT_EQ(got_h.gso_type, kVnetGsoTcpv4);
    EXPECT_EQ(got_h.gso_size, 1000);
    EXPECT_EQ(got_h.flags & kVnetNeedsCsum, kVnetNeedsCsum);
    EXPECT_EQ(got_h.csum_start, l4);
    EXPECT_EQ(got_h.csum_offset, 16);
  }
}

// Where the lower cannot take a super-frame nor fill in checksums (a TAP
// without offloads), the kernel segments it on the way out and completes
// every checksum: the device sees MTU-sized TCP frames carrying all of the
// payload in order.
TEST_F(PacketLowerTest, GsoFramesAreSegmentedWhereTheLowerCannotTakeThem) {
  int tap = -1;
  const int index = run_in_netns(ns_fd_, [&] {
    tap = ::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (tap < 0) return -errno;
    ifreq ifr{};
    std::strcpy(ifr.ifr_name, "plaintap0");
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI;  // no TUNSETOFFLOAD: no TSO, no checksum offload
    if (::ioctl(tap, TUNSETIFF, &ifr) != 0) return -errno;
    return static_cast<int>(::if_nametoindex("plaintap0"));
  });
  ASSERT_GT(index, 0);
  ASSERT_EQ(ns_.ip("link set plaintap0 up"), 0);
  PacketLower a;
  ASSERT_EQ(PacketLower::open(ns_fd_, index, &a), 0);
  const auto frame = make_tcp4_frame({}, 4000);
  VnetHeader h;
  h.flags = kVnetNeedsCsum;
  h.gso_type = kVnetGsoTcpv4;
  h.gso_size = 1000;
  h.hdr_len = 54;
  h.csum_start = 34;
  h.csum_offset = 16;
  ASSERT_EQ(a.send(h, frame), 0);

  std::vector<std::vector<std::uint8_t>> got;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (got.size() < 4 && std::chrono::steady_clock::now() < deadline) {
    std::vector<std::uint8_t> buf(70000);
    const ssize_t n = ::read(tap, buf.data(), buf.size());
    if (n <= 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      continue;
    }
    buf.resize(static_cast<std::size_t>(n));
    if (buf.size() > 34 && buf[12] == 0x08 && buf[13] == 0x00 && buf[23] == IPPROTO_TCP)
      got.push_back(std::move(buf));
  }
  ::close(tap);
  ASSERT_EQ(got.size(), 4u);
  std::vector<std::uint8_t> payload;
  for (const auto& f : got) {
    ASSERT_EQ(f.size(), 54u + 1000u);
    // TCP checksum over pseudo-header and segment: complete, so it folds to 0xffff.
    const std::uint64_t pseudo =
        fold_add(0, std::span(f).subspan(26, 8)) + IPPROTO_TCP + (f.size() - 34);
    EXPECT_EQ(fold(fold_add(pseudo, std::span(f).subspan(34))), 0xffff);
    payload.insert(payload.end(), f.begin() + 54, f.end());
  }
  EXPECT_TRUE(std::equal(payload.begin(), payload.end(), frame.begin() + 54));
}

TEST_F(PacketLowerTest, UnicastFilterMakesVethPromiscuousUntilClosed) {
  ASSERT_EQ(promiscuity("vb"), 0);
  {
    PacketLower b;
    ASSERT_EQ(PacketLower::open(ns_fd_, vb_, &b), 0);
    const MacBytes mac{0x02, 0xaa, 0, 0, 0, 1};
    ASSERT_EQ(b.add_unicast(mac), 0);
    EXPECT_EQ(promiscuity("vb"), 1);
    EXPECT_EQ(b.add_unicast(mac), 0);  // idempotent
    ASSERT_EQ(b.add_unicast({0x02, 0xaa, 0, 0, 0, 2}), 0);
    EXPECT_EQ(b.del_unicast(mac), 0);
    EXPECT_EQ(promiscuity("vb"), 1) << "one address is still in the filter";
    EXPECT_EQ(b.del_unicast({0x02, 0xaa, 0, 0, 0, 2}), 0);
    EXPECT_EQ(promiscuity("vb"), 0);
    EXPECT_EQ(b.del_unicast(mac), 0);  // absent: nothing to do
    EXPECT_EQ(b.add_unicast({0x01, 0, 0x5e, 0, 0, 1}), -EINVAL);
    ASSERT_EQ(b.add_unicast(mac), 0);
    EXPECT_EQ(promiscuity("vb"), 1);
  }
  EXPECT_EQ(promiscuity("vb"), 0) << "closing the socket drops the membership";
}

TEST_F(PacketLowerTest, PromiscAndAllmultiAreIdempotentAndUndoneOnClose) {
  {
    PacketLower b;
    ASSERT_EQ(PacketLower::open(ns_fd_, vb_, &b), 0);
    ASSERT_EQ(b.set_promisc(true), 0);
    ASSERT_EQ(b.set_promisc(true), 0);
    EXPECT_EQ(promiscuity("vb"), 1);
    ASSERT_EQ(b.set_allmulti(true), 0);
    ASSERT_EQ(b.set_allmulti(true), 0);
    EXPECT_EQ(allmulti("vb"), 1);
    ASSERT_EQ(b.set_promisc(false), 0);
    EXPECT_EQ(promiscuity("vb"), 0);
    ASSERT_EQ(b.set_promisc(false), 0);
    ASSERT_EQ(b.set_promisc(true), 0);
  }
  EXPECT_EQ(promiscuity("vb"), 0);
  EXPECT_EQ(allmulti("vb"), 0);
}

TEST_F(PacketLowerTest, MulticastMembershipShowsInTheDeviceListUntilClosed) {
  auto maddr = [&] { return testing::capture("ip -n " + ns_.name() + " maddr show dev vb"); };
  const std::string group = "01:00:5e:11:22:33";
  ASSERT_EQ(maddr().find(group), std::string::npos);
  {
    PacketLower b;
    ASSERT_EQ(PacketLower::open(ns_fd_, vb_, &b), 0);
    const MacBytes mac{0x01, 0x00, 0x5e, 0x11, 0x22, 0x33};
    EXPECT_EQ(b.add_multicast(kMacA), -EINVAL);
    ASSERT_EQ(b.add_multicast(mac), 0);
    ASSERT_EQ(b.add_multicast(mac), 0);
    EXPECT_NE(maddr().find(group), std::string::npos);
    ASSERT_EQ(b.del_multicast(mac), 0);
    EXPECT_EQ(maddr().find(group), std::string::npos) << "one add, one delete";
    ASSERT_EQ(b.add_multicast(mac), 0);
  }
  EXPECT_EQ(maddr().find(group), std::string::npos);
}

TEST_F(PacketLowerTest, MoveKeepsTheSocketAndItsFilters) {
  PacketLower a, b;
  ASSERT_EQ(PacketLower::open(ns_fd_, va_, &a), 0);
  ASSERT_EQ(PacketLower::open(ns_fd_, vb_, &b), 0);
  ASSERT_EQ(b.add_unicast({0x02, 0xaa, 0, 0, 0, 1}), 0);
  PacketLower moved(std::move(b));
  EXPECT_FALSE(b.valid());
  EXPECT_EQ(promiscuity("vb"), 1);
  ASSERT_EQ(a.send(make_frame(kMacB, kMacA, 0x3333)), 0);
  EXPECT_EQ(collect(moved, 1, marked(0x3333)).size(), 1u);
  moved = PacketLower();
  EXPECT_EQ(promiscuity("vb"), 0);
}

TEST_F(PacketLowerTest, StatsCountWhatReachedTheSocket) {
  PacketLower a, b;
  ASSERT_EQ(PacketLower::open(ns_fd_, va_, &a), 0);
  ASSERT_EQ(PacketLower::open(ns_fd_, vb_, &b), 0);
  PacketLower::RingStats st;
  ASSERT_EQ(b.read_stats(&st), 0);
  for (std::uint32_t i = 0; i < 5; ++i) ASSERT_EQ(a.send(make_frame(kMacB, kMacA, 0x900 + i)), 0);
  EXPECT_EQ(collect(b, 1, marked(0x904)).size(), 1u);
  ASSERT_EQ(b.read_stats(&st), 0);
  EXPECT_GE(st.packets, 5u);
  EXPECT_EQ(st.drops, 0u);
}

TEST_F(PacketLowerTest, FramesLostToAFullRingAreCountedWithTheNextFrame) {
  PacketLower a, b;
  ASSERT_EQ(PacketLower::open(ns_fd_, va_, &a), 0);
  ASSERT_EQ(PacketLower::open(ns_fd_, vb_, &b), 0);
  // Nobody reads while more frames arrive than the ring has slots.
  constexpr std::size_t kOver = 40;
  for (std::uint32_t i = 0; i < PacketLower::kSlots + kOver; ++i)
    ASSERT_EQ(a.send(make_frame(kMacB, kMacA, 0xa000 + i)), 0);
  FrameBatch batch;
  std::size_t first = 0;
  std::uint64_t lost = 0;
  while (b.receive_burst(batch) > 0) {
    first += static_cast<std::size_t>(std::count_if(batch.begin(), batch.end(), marked(0xa000)));
    lost += batch.dropped_ring_full;
  }
  EXPECT_EQ(first, 1u) << "the first frame made it";
  EXPECT_EQ(lost, 0u) << "no frame came after the loss yet";
  // The next frame carries the mark: the loss is counted with it, once.
  ASSERT_EQ(a.send(make_frame(kMacB, kMacA, 0xb000)), 0);
  ASSERT_EQ(a.send(make_frame(kMacB, kMacA, 0xb001)), 0);
  std::size_t after = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (after < 2 && std::chrono::steady_clock::now() < deadline) {
    struct pollfd pfd {
      b.fd(), POLLIN, 0
    };
    ::poll(&pfd, 1, 20);
    b.receive_burst(batch);
    lost += batch.dropped_ring_full;
    after += static_cast<std::size_t>(std::count_if(batch.begin(), batch.end(), marked(0xb000)) +
                                      std::count_if(batch.begin(), batch.end(), marked(0xb001)));
  }
  EXPECT_EQ(after, 2u);
  EXPECT_GE(lost, kOver);
  PacketLower::RingStats st;
  ASSERT_EQ(b.read_stats(&st), 0);
  EXPECT_EQ(st.drops, 0u) << "reading the loss reset the counters";
}

}  // namespace
}  // namespace umacvlan::io
