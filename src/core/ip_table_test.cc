// IpTable and IpAddress: text forms, frame layout, learning from ARP, IPv4,
// IPv6, NDP and DHCP ACKs (with VLAN tags), refresh / move / ageing /
// eviction / forgetting and how each is reported, and a robustness loop of
// pseudo-random frames and every truncation of every valid test frame.
// Frames are built byte by byte here and in frame_builder_test_util.h, with
// their checksums.
#include "core/ip_table.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "core/frame_builder_test_util.h"

namespace umacvlan::core {

// Found by argument-dependent lookup; static, so each test file may have its own.
static void PrintTo(const IpAddress& a, std::ostream* os) {
  *os << a.to_string();
}

namespace {

using namespace test_frames;

// ---------------------------------------------------------------- builders

const MacAddress kDev2Mac = MacAddress::from_u64(0x02000000d002ULL);
constexpr DeviceId kDev = 1;
constexpr DeviceId kDev2 = 2;

Bytes udp4(const IpAddress& src, const IpAddress& dst, std::uint16_t sport, std::uint16_t dport,
           const Bytes& payload) {
  Bytes u;
  put16(u, sport);
  put16(u, dport);
  put16(u, static_cast<std::uint16_t>(8 + payload.size()));
  put16(u, 0);
  append(u, payload);
  std::uint16_t c = static_cast<std::uint16_t>(~fold(sum16(u, pseudo_sum(src, dst, 17, u.size()))));
  if (c == 0) c = 0xffff;
  u[6] = static_cast<std::uint8_t>(c >> 8);
  u[7] = static_cast<std::uint8_t>(c);
  return ipv4(src, dst, 17, u, kDontFragment);
}

Bytes icmp4_echo(const IpAddress& src, const IpAddress& dst) {
  Bytes m = {8, 0, 0, 0, 0x00, 0x01, 0x00, 0x01, 'p', 'i', 'n', 'g'};
  const std::uint16_t c = static_cast<std::uint16_t>(~fold(sum16(m)));
  m[2] = static_cast<std::uint8_t>(c >> 8);
  m[3] = static_cast<std::uint8_t>(c);
  return ipv4(src, dst, 1, m, kDontFragment);
}

// An IPv6 packet carrying ICMPv6 type/code followed by body, checksummed.
Bytes icmpv6(const IpAddress& src, const IpAddress& dst, std::uint8_t type, std::uint8_t code,
             const Bytes& body, std::uint8_t hop_limit = 255) {
  Bytes m = {type, code, 0, 0};
  append(m, body);
  const std::uint16_t c =
      static_cast<std::uint16_t>(~fold(sum16(m, pseudo_sum(src, dst, 58, m.size()))));
  m[2] = static_cast<std::uint8_t>(c >> 8);
  m[3] = static_cast<std::uint8_t>(c);
  return ipv6(src, dst, 58, m, hop_limit);
}

// BOOTP/DHCP: op, chaddr, yiaddr, then the magic cookie and options
// (53 = dhcp_type unless 0, then `extra`, then end), padded to 300 bytes.
Bytes bootp(std::uint8_t op, MacAddress chaddr, const IpAddress& yiaddr, std::uint8_t dhcp_type,
            const Bytes& extra = {}) {
  Bytes b(236, 0);
  b[0] = op;
  b[1] = 1;
  b[2] = 6;
  b[4] = 0xde;
  b[5] = 0xad;
  b[6] = 0xbe;
  b[7] = 0xef;
  std::copy(yiaddr.bytes().begin(), yiaddr.bytes().end(), b.begin() + 16);
  std::copy(chaddr.octets().begin(), chaddr.octets().end(), b.begin() + 28);
  append(b, {99, 130, 83, 99});
  if (dhcp_type != 0) append(b, {53, 1, dhcp_type});
  append(b, extra);
  b.push_back(255);
  if (b.size() < 300) b.resize(300, 0);
  return b;
}

Bytes dhcp_ack(MacAddress chaddr, const IpAddress& yiaddr, std::uint8_t type = 5,
               const std::vector<std::uint16_t>& tpids = {}) {
  return eth(chaddr, kPeerMac, 0x0800,
             udp4(ip("192.168.1.1"), yiaddr, 67, 68, bootp(2, chaddr, yiaddr, type)), tpids);
}

// ---------------------------------------------------------------- IpAddress

TEST(IpTableAddress, ParsesAndPrintsCanonicalForms) {
  const std::vector<std::pair<std::string, std::string>> rows = {
      {"0.0.0.0", "0.0.0.0"},
      {"192.168.1.20", "192.168.1.20"},
      {"255.255.255.255", "255.255.255.255"},
      {"::", "::"},
      {"::1", "::1"},
      {"1::", "1::"},
      {"2001:DB8::1", "2001:db8::1"},
      {"2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"},
      {"2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"},     // RFC 5952 4.2.3: the first on a tie
      {"2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"},  // 4.2.2: not for one group
      {"2001:0:0:1:0:0:0:1", "2001:0:0:1::1"},           // the longest run
      {"fe80::a:b:c:d", "fe80::a:b:c:d"},
      {"1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0"},
      {"::ffff:192.0.2.1", "::ffff:192.0.2.1"},
      {"::ffff:c000:201", "::ffff:192.0.2.1"},
      {"64:ff9b::192.0.2.33", "64:ff9b::c000:221"},
      {"1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:102:304"},
  };
  for (const auto& [in, out] : rows) {
    const auto a = IpAddress::parse(in);
    ASSERT_TRUE(a.has_value()) << in;
    EXPECT_EQ(a->to_string(), out) << in;
    EXPECT_EQ(IpAddress::parse(a->to_string()), a) << in;
  }
}

TEST(IpTableAddress, RefusesEverythingElse) {
  for (const char* bad : {"",
                          "1",
                          "1.2.3",
                          "1.2.3.4.5",
                          "256.1.1.1",
                          "01.2.3.4",
                          "1.2.3.4 ",
                          " 1.2.3.4",
                          "1..2.3",
                          "1.2.3.-4",
                          "a.b.c.d",
                          ":",
                          ":::",
                          "1:::2",
                          "1::2::3",
                          ":1::",
                          "1:2:3:4:5:6:7:8:9",
                          "1:2:3:4:5:6:7",
                          "12345::",
                          "g::",
                          "1::2:",
                          "::1.2.3",
                          "1.2.3.4::",
                          "::1.2.3.4:5",
                          "1:2:3:4:5:6:7:1.2.3.4",
                          "fe80::1%eth0",
                          "10.0.0.0/8"}) {
    EXPECT_FALSE(IpAddress::parse(bad).has_value()) << "'" << bad << "'";
  }
}

TEST(IpTableAddress, OrdersV4BeforeV6ThenByBytes) {
  std::vector<IpAddress> v = {ip("::1"),      ip("10.0.0.2"),    ip("fe80::1"),
                              ip("10.0.0.1"), ip("2001:db8::1"), ip("9.255.255.255")};
  std::sort(v.begin(), v.end());
  std::vector<std::string> s;
  for (const auto& a : v) s.push_back(a.to_string());
  EXPECT_EQ(s, (std::vector<std::string>{"9.255.255.255", "10.0.0.1", "10.0.0.2", "::1",
                                         "2001:db8::1", "fe80::1"}));
  // 0.0.0.0 and :: have the same bytes and differ by family.
  EXPECT_NE(ip("0.0.0.0"), ip("::"));
  EXPECT_NE(ip("0.0.0.0").hash(), ip("::").hash());
  EXPECT_EQ(ip("10.1.2.3").hash(), IpAddress::v4(0x0a010203u).hash());
  EXPECT_EQ(ip("10.1.2.3"), IpAddress::v4(0x0a010203u));
}

TEST(IpTableAddress, Predicates) {
  struct Row {
    const char* text;
    bool learnable;
    bool link_local;
  };
  for (const Row& r : std::vector<Row>{{"10.0.0.1", true, false},
                                       {"169.254.7.7", true, true},
                                       {"0.0.0.0", false, false},
                                       {"0.1.2.3", false, false},
                                       {"127.0.0.1", false, false},
                                       {"224.0.0.251", false, false},
                                       {"239.255.255.250", false, false},
                                       {"255.255.255.255", false, false},
                                       {"2001:db8::1", true, false},
                                       {"fe80::1", true, true},
                                       {"febf::1", true, true},
                                       {"fec0::1", true, false},
                                       {"::", false, false},
                                       {"::1", false, false},
                                       {"ff02::1", false, false},
                                       {"::ffff:10.0.0.1", false, false}}) {
    EXPECT_EQ(ip(r.text).is_learnable(), r.learnable) << r.text;
    EXPECT_EQ(ip(r.text).is_link_local(), r.link_local) << r.text;
  }
}

// ---------------------------------------------------------------- layout

TEST(IpTableLayout, FindsHeadersBehindTags) {
  const Bytes pkt = icmp4_echo(ip("10.0.0.5"), ip("10.0.0.1"));
  for (std::size_t tags = 0; tags <= 2; ++tags) {
    const std::vector<std::uint16_t> tpids(tags == 2   ? std::vector<std::uint16_t>{0x88a8, 0x8100}
                                           : tags == 1 ? std::vector<std::uint16_t>{0x8100}
                                                       : std::vector<std::uint16_t>{});
    Bytes f = eth(kPeerMac, kDevMac, 0x0800, pkt, tpids);
    f.resize(f.size() + 7, 0);  // Ethernet padding
    const auto l = parse_layout(f);
    ASSERT_TRUE(l.has_value()) << tags;
    EXPECT_EQ(l->kind, L3Kind::kIpv4);
    EXPECT_EQ(l->vlan_tags, tags);
    EXPECT_EQ(l->l3, 14 + 4 * tags);
    EXPECT_EQ(l->l4, 34 + 4 * tags);
    EXPECT_EQ(l->end, 14 + 4 * tags + pkt.size());
    EXPECT_EQ(l->protocol, 1);
    EXPECT_TRUE(l->has_l4);
  }
}

TEST(IpTableLayout, RefusesHeadersCutShortOrInconsistent) {
  Bytes v4 = eth(kPeerMac, kDevMac, 0x0800, icmp4_echo(ip("10.0.0.5"), ip("10.0.0.1")));
  Bytes bad = v4;
  bad[14] = 0x44;  // IHL 4
  EXPECT_FALSE(parse_layout(bad));
  bad = v4;
  bad[14] = 0x65;  // version 6
  EXPECT_FALSE(parse_layout(bad));
  bad = v4;
  bad[17] = static_cast<std::uint8_t>(bad[17] + 1);  // total length one past the frame
  EXPECT_FALSE(parse_layout(bad));
  bad = v4;
  bad[16] = 0;
  bad[17] = 19;  // total length below the header
  EXPECT_FALSE(parse_layout(bad));
  bad = v4;
  bad[20] = 0x20;  // MF: a first fragment has no whole transport payload
  ASSERT_TRUE(parse_layout(bad));
  EXPECT_FALSE(parse_layout(bad)->has_l4);

  Bytes v6 =
      eth(kPeerMac, kDevMac, 0x86dd, icmpv6(ip("fe80::1"), ip("fe80::2"), 128, 0, {0, 1, 0, 1}));
  bad = v6;
  bad[19] = static_cast<std::uint8_t>(bad[19] + 1);  // payload length
  EXPECT_FALSE(parse_layout(bad));
  bad = v6;
  bad[14] = 0x40;
  EXPECT_FALSE(parse_layout(bad));

  // ARP for something other than IPv4 over Ethernet is not ours, not malformed.
  Bytes other = eth(MacAddress::broadcast(), kDevMac, 0x0806,
                    arp(1, kDevMac, ip("10.0.0.5"), MacAddress(), ip("10.0.0.1")));
  other[17] = 0xdd;  // protocol 0x08dd
  ASSERT_TRUE(parse_layout(other));
  EXPECT_EQ(parse_layout(other)->kind, L3Kind::kOther);

  // A third tag is not skipped.
  Bytes three = eth(kPeerMac, kDevMac, 0x8100, {0x00, 0x66, 0x08, 0x00}, {0x88a8, 0x8100});
  ASSERT_TRUE(parse_layout(three));
  EXPECT_EQ(parse_layout(three)->kind, L3Kind::kOther);
  EXPECT_EQ(parse_layout(three)->ethertype, 0x8100);
}

// ---------------------------------------------------------------- learning

const IpChange& only_change(const LearnResult& r) {
  EXPECT_EQ(r.size(), 1u);
  return *r.begin();
}

TEST(IpTableLearn, ArpRequestReplyAndProbe) {
  IpTable t;
  const Bytes req = eth(MacAddress::broadcast(), kDevMac, 0x0806,
                        arp(1, kDevMac, ip("10.0.0.5"), MacAddress(), ip("10.0.0.1")));
  LearnResult r = t.learn_from_device(kDev, kDevMac, req, 1000);
  const IpChange& c = only_change(r);
  EXPECT_EQ(c.kind, IpChangeKind::kAdded);
  EXPECT_EQ(c.entry.address, ip("10.0.0.5"));
  EXPECT_EQ(c.entry.device, kDev);
  EXPECT_EQ(c.entry.mac, kDevMac);
  EXPECT_EQ(c.entry.last_seen_ms, 1000u);
  EXPECT_EQ(c.entry.learned_from, LearnedFrom::kArp);
  EXPECT_FALSE(c.entry.link_local);
  EXPECT_TRUE(r.routes_changed());
  EXPECT_EQ(t.lookup(ip("10.0.0.5")), c.entry);

  const Bytes reply =
      eth(kPeerMac, kDevMac, 0x0806, arp(2, kDevMac, ip("10.0.0.6"), kPeerMac, ip("10.0.0.1")));
  EXPECT_EQ(only_change(t.learn_from_device(kDev, kDevMac, reply, 1001)).kind,
            IpChangeKind::kAdded);

  // A probe (sender 0.0.0.0) announces nothing; nor does ARP for another MAC.
  const Bytes probe = eth(MacAddress::broadcast(), kDevMac, 0x0806,
                          arp(1, kDevMac, ip("0.0.0.0"), MacAddress(), ip("10.0.0.7")));
  EXPECT_TRUE(t.learn_from_device(kDev, kDevMac, probe, 1002).empty());
  const Bytes proxy =
      eth(kPeerMac, kDevMac, 0x0806, arp(2, kPeerMac, ip("10.0.0.8"), kPeerMac, ip("10.0.0.1")));
  EXPECT_TRUE(t.learn_from_device(kDev, kDevMac, proxy, 1003).empty());
  EXPECT_EQ(t.addresses_of(kDev), (std::vector<IpAddress>{ip("10.0.0.5"), ip("10.0.0.6")}));
}

TEST(IpTableLearn, Ipv4SourcesOnlyWhenOwnable) {
  IpTable t;
  const Bytes udp =
      eth(kPeerMac, kDevMac, 0x0800, udp4(ip("10.0.0.5"), ip("10.0.0.1"), 1234, 53, {1, 2, 3}));
  const IpChange c = only_change(t.learn_from_device(kDev, kDevMac, udp, 5));
  EXPECT_EQ(c.entry.address, ip("10.0.0.5"));
  EXPECT_EQ(c.entry.learned_from, LearnedFrom::kIp);

  const Bytes echo = eth(kPeerMac, kDevMac, 0x0800, icmp4_echo(ip("10.0.0.9"), ip("10.0.0.1")));
  EXPECT_EQ(only_change(t.learn_from_device(kDev, kDevMac, echo, 6)).entry.address, ip("10.0.0.9"));

  for (const char* src : {"0.0.0.0", "224.0.0.1", "255.255.255.255", "127.0.0.1"}) {
    const Bytes f =
        eth(kPeerMac, kDevMac, 0x0800, udp4(ip(src), ip("10.0.0.1"), 68, 67, {0, 0, 0, 0}));
    EXPECT_TRUE(t.learn_from_device(kDev, kDevMac, f, 7).empty()) << src;
  }
  // Sent with another Ethernet source (forwarded, or spoofed): not the device's.
  const Bytes other = eth(kPeerMac, kDev2Mac, 0x0800, icmp4_echo(ip("10.0.0.10"), ip("10.0.0.1")));
  EXPECT_TRUE(t.learn_from_device(kDev, kDevMac, other, 8).empty());
  // A broken IPv4 header checksum.
  Bytes bad = eth(kPeerMac, kDevMac, 0x0800, icmp4_echo(ip("10.0.0.11"), ip("10.0.0.1")));
  bad[24] ^= 0x01;
  EXPECT_TRUE(t.learn_from_device(kDev, kDevMac, bad, 9).empty());
  EXPECT_TRUE(t.learn_from_device(kNoDevice, kDevMac, echo, 10).empty());
  EXPECT_EQ(t.size(), 2u);
}

TEST(IpTableLearn, Ipv6SourcesAndLinkLocalFlag) {
  IpTable t;
  const Bytes echo = eth(kPeerMac, kDevMac, 0x86dd,
                         icmpv6(ip("2001:db8::5"), ip("2001:db8::1"), 128, 0, {0, 1, 0, 1}, 64));
  const IpChange c = only_change(t.learn_from_device(kDev, kDevMac, echo, 1));
  EXPECT_EQ(c.entry.address, ip("2001:db8::5"));
  EXPECT_EQ(c.entry.learned_from, LearnedFrom::kIp);
  EXPECT_FALSE(c.entry.link_local);

  const Bytes ll = eth(kPeerMac, kDevMac, 0x86dd,
                       ipv6(ip("fe80::5"), ip("fe80::1"), 17, {0, 1, 0, 2, 0, 8, 0, 0}, 64));
  const IpChange c2 = only_change(t.learn_from_device(kDev, kDevMac, ll, 2));
  EXPECT_EQ(c2.entry.address, ip("fe80::5"));
  EXPECT_TRUE(c2.entry.link_local);

  for (const char* src : {"::", "ff02::1", "::1", "::ffff:10.0.0.1"}) {
    const Bytes f = eth(kPeerMac, kDevMac, 0x86dd, ipv6(ip(src), ip("ff02::2"), 59, {}, 1));
    EXPECT_TRUE(t.learn_from_device(kDev, kDevMac, f, 3).empty()) << src;
  }
  const Bytes other =
      eth(kPeerMac, kDev2Mac, 0x86dd, ipv6(ip("2001:db8::7"), ip("::1"), 59, {}, 1));
  EXPECT_TRUE(t.learn_from_device(kDev, kDevMac, other, 4).empty());
}

TEST(IpTableLearn, UnsolicitedNeighborAdvertisementTeachesItsTarget) {
  IpTable t;
  // From the link-local address, announcing a global one (override flag).
  const Bytes na = eth(MacAddress::from_u64(0x333300000001ULL), kDevMac, 0x86dd,
                       icmpv6(ip("fe80::5"), ip("ff02::1"), 136, 0,
                              nd_body(0x20, ip("2001:db8::5"), lladdr_option(2, kDevMac))));
  const LearnResult r = t.learn_from_device(kDev, kDevMac, na, 10);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r.changes[0].entry.address, ip("fe80::5"));
  EXPECT_EQ(r.changes[0].entry.learned_from, LearnedFrom::kNdp);
  EXPECT_EQ(r.changes[1].entry.address, ip("2001:db8::5"));
  EXPECT_EQ(r.changes[1].entry.learned_from, LearnedFrom::kNdp);
  EXPECT_EQ(r.changes[1].kind, IpChangeKind::kAdded);

  // Source and target the same: one entry, not two changes for it.
  const Bytes self =
      eth(MacAddress::from_u64(0x333300000001ULL), kDevMac, 0x86dd,
          icmpv6(ip("2001:db8::6"), ip("ff02::1"), 136, 0, nd_body(0x20, ip("2001:db8::6"), {})));
  EXPECT_EQ(t.learn_from_device(kDev, kDevMac, self, 11).size(), 1u);

  // A target link-layer option naming another MAC speaks for someone else.
  const Bytes proxy = eth(kPeerMac, kDevMac, 0x86dd,
                          icmpv6(ip("fe80::5"), ip("fe80::1"), 136, 0,
                                 nd_body(0x60, ip("2001:db8::99"), lladdr_option(2, kPeerMac))));
  const LearnResult rp = t.learn_from_device(kDev, kDevMac, proxy, 12);
  ASSERT_EQ(rp.size(), 1u);
  EXPECT_EQ(rp.changes[0].entry.address, ip("fe80::5"));
  EXPECT_EQ(rp.changes[0].kind, IpChangeKind::kRefreshed);

  // Hop limit not 255, or a zero-length option: not a valid NA (RFC 4861 7.1.2).
  const Bytes routed =
      eth(kPeerMac, kDevMac, 0x86dd,
          icmpv6(ip("fe80::5"), ip("fe80::1"), 136, 0, nd_body(0x20, ip("2001:db8::98"), {}), 64));
  EXPECT_EQ(t.learn_from_device(kDev, kDevMac, routed, 13).size(), 1u);
  const Bytes zero_opt = eth(kPeerMac, kDevMac, 0x86dd,
                             icmpv6(ip("fe80::5"), ip("fe80::1"), 136, 0,
                                    nd_body(0x20, ip("2001:db8::97"), {2, 0, 0, 0, 0, 0, 0, 0})));
  EXPECT_EQ(t.learn_from_device(kDev, kDevMac, zero_opt, 14).size(), 1u);
  EXPECT_FALSE(t.lookup(ip("2001:db8::99")));
  EXPECT_FALSE(t.lookup(ip("2001:db8::98")));
  EXPECT_FALSE(t.lookup(ip("2001:db8::97")));

  // Duplicate address detection: an NS from :: teaches nothing.
  const Bytes dad =
      eth(MacAddress::from_u64(0x3333ff000007ULL), kDevMac, 0x86dd,
          icmpv6(ip("::"), ip("ff02::1:ff00:7"), 135, 0, nd_body(0, ip("2001:db8::7"), {})));
  EXPECT_TRUE(t.learn_from_device(kDev, kDevMac, dad, 15).empty());
  EXPECT_EQ(t.addresses_of(kDev),
            (std::vector<IpAddress>{ip("2001:db8::5"), ip("2001:db8::6"), ip("fe80::5")}));
}

TEST(IpTableLearn, BehindOneOrTwoVlanTags) {
  for (const auto& tpids : std::vector<std::vector<std::uint16_t>>{{0x8100}, {0x88a8, 0x8100}}) {
    IpTable t;
    const Bytes a = eth(MacAddress::broadcast(), kDevMac, 0x0806,
                        arp(1, kDevMac, ip("10.0.0.5"), MacAddress(), ip("10.0.0.1")), tpids);
    const Bytes v4 =
        eth(kPeerMac, kDevMac, 0x0800, icmp4_echo(ip("10.0.0.6"), ip("10.0.0.1")), tpids);
    const Bytes na = eth(kPeerMac, kDevMac, 0x86dd,
                         icmpv6(ip("fe80::5"), ip("ff02::1"), 136, 0,
                                nd_body(0x20, ip("2001:db8::5"), lladdr_option(2, kDevMac))),
                         tpids);
    EXPECT_EQ(t.learn_from_device(kDev, kDevMac, a, 1).size(), 1u);
    EXPECT_EQ(t.learn_from_device(kDev, kDevMac, v4, 1).size(), 1u);
    EXPECT_EQ(t.learn_from_device(kDev, kDevMac, na, 1).size(), 2u);
    EXPECT_EQ(t.size(), 4u) << tpids.size() << " tags";
    EXPECT_TRUE(t.learn_dhcp_ack(
                     dhcp_ack(kDevMac, ip("10.0.0.77"), 5, tpids),
                     [](MacAddress) { return std::optional<DeviceId>(kDev); }, 2)
                    .routes_changed());
  }
}

TEST(IpTableLearn, RefreshKeepsTheRouteAndNeverGoesBack) {
  IpTable t;
  const Bytes echo = eth(kPeerMac, kDevMac, 0x0800, icmp4_echo(ip("10.0.0.5"), ip("10.0.0.1")));
  t.learn_from_device(kDev, kDevMac, echo, 100);
  LearnResult r = t.learn_from_device(kDev, kDevMac, echo, 200);
  EXPECT_EQ(only_change(r).kind, IpChangeKind::kRefreshed);
  EXPECT_FALSE(r.routes_changed());
  EXPECT_EQ(t.lookup(ip("10.0.0.5"))->last_seen_ms, 200u);
  // An older time (a caller's batch out of order) does not age the entry.
  t.learn_from_device(kDev, kDevMac, echo, 150);
  EXPECT_EQ(t.lookup(ip("10.0.0.5"))->last_seen_ms, 200u);
  // How it was last seen follows the frames.
  const Bytes a = eth(MacAddress::broadcast(), kDevMac, 0x0806,
                      arp(1, kDevMac, ip("10.0.0.5"), MacAddress(), ip("10.0.0.1")));
  t.learn_from_device(kDev, kDevMac, a, 300);
  EXPECT_EQ(t.lookup(ip("10.0.0.5"))->learned_from, LearnedFrom::kArp);
}

TEST(IpTableLearn, AnAddressMovesToTheLastDeviceShowingIt) {
  IpTable t;
  const Bytes from1 = eth(kPeerMac, kDevMac, 0x0800, icmp4_echo(ip("10.0.0.5"), ip("10.0.0.1")));
  const Bytes from2 = eth(MacAddress::broadcast(), kDev2Mac, 0x0806,
                          arp(1, kDev2Mac, ip("10.0.0.5"), MacAddress(), ip("10.0.0.5")));
  t.learn_from_device(kDev, kDevMac, from1, 10);
  const LearnResult r = t.learn_from_device(kDev2, kDev2Mac, from2, 20);
  const IpChange& c = only_change(r);
  EXPECT_EQ(c.kind, IpChangeKind::kMoved);
  EXPECT_EQ(c.previous_device, kDev);
  EXPECT_EQ(c.entry.device, kDev2);
  EXPECT_EQ(c.entry.mac, kDev2Mac);
  EXPECT_EQ(c.entry.last_seen_ms, 20u);
  EXPECT_TRUE(r.routes_changed());
  EXPECT_TRUE(t.addresses_of(kDev).empty());
  EXPECT_EQ(t.addresses_of(kDev2), std::vector<IpAddress>{ip("10.0.0.5")});
  EXPECT_EQ(t.size(), 1u);
}

TEST(IpTableLearn, DhcpAckTeachesYiaddrForChaddr) {
  IpTable t;
  std::vector<MacAddress> asked;
  auto device_of = [&](MacAddress m) -> std::optional<DeviceId> {
    asked.push_back(m);
    if (m == kDevMac) return kDev;
    return std::nullopt;
  };
  const LearnResult r = t.learn_dhcp_ack(dhcp_ack(kDevMac, ip("192.168.1.50")), device_of, 42);
  const IpChange& c = only_change(r);
  EXPECT_EQ(c.kind, IpChangeKind::kAdded);
  EXPECT_EQ(c.entry.address, ip("192.168.1.50"));
  EXPECT_EQ(c.entry.device, kDev);
  EXPECT_EQ(c.entry.mac, kDevMac);
  EXPECT_EQ(c.entry.learned_from, LearnedFrom::kDhcp);
  EXPECT_EQ(asked, std::vector<MacAddress>{kDevMac});

  // An OFFER, a NAK, no message type, an unknown client, a zero yiaddr.
  EXPECT_TRUE(t.learn_dhcp_ack(dhcp_ack(kDevMac, ip("192.168.1.51"), 2), device_of, 43).empty());
  EXPECT_TRUE(t.learn_dhcp_ack(dhcp_ack(kDevMac, ip("192.168.1.52"), 6), device_of, 43).empty());
  EXPECT_TRUE(t.learn_dhcp_ack(dhcp_ack(kDevMac, ip("192.168.1.53"), 0), device_of, 43).empty());
  EXPECT_TRUE(t.learn_dhcp_ack(dhcp_ack(kDev2Mac, ip("192.168.1.54")), device_of, 43).empty());
  EXPECT_TRUE(t.learn_dhcp_ack(dhcp_ack(kDevMac, ip("0.0.0.0")), device_of, 43).empty());
  // A client's message (BOOTREQUEST, 68 -> 67) is no ACK.
  const Bytes req =
      eth(MacAddress::broadcast(), kDevMac, 0x0800,
          udp4(ip("0.0.0.0"), ip("255.255.255.255"), 68, 67, bootp(1, kDevMac, ip("0.0.0.0"), 3)));
  EXPECT_TRUE(t.learn_dhcp_ack(req, device_of, 43).empty());
  // Learning from a device's frames never takes a DHCP ACK for a device's.
  EXPECT_EQ(t.size(), 1u);

  // Option 53 in the file field, announced by option overload (52 = 1).
  Bytes payload = bootp(2, kDevMac, ip("192.168.1.60"), 0, {52, 1, 1});
  payload[108] = 53;
  payload[109] = 1;
  payload[110] = 5;
  payload[111] = 255;
  const Bytes overloaded =
      eth(kDevMac, kPeerMac, 0x0800, udp4(ip("192.168.1.1"), ip("192.168.1.60"), 67, 68, payload));
  EXPECT_EQ(only_change(t.learn_dhcp_ack(overloaded, device_of, 44)).entry.address,
            ip("192.168.1.60"));
  EXPECT_TRUE(t.learn_dhcp_ack(dhcp_ack(kDevMac, ip("192.168.1.61")), nullptr, 45).empty());
}

// ---------------------------------------------------------------- ageing, bound

LearnResult learn_echo(IpTable& t, DeviceId dev, MacAddress mac, const char* src,
                       std::uint64_t now) {
  return t.learn_from_device(dev, mac,
                             eth(kPeerMac, mac, 0x0800, icmp4_echo(ip(src), ip("10.0.0.1"))), now);
}

TEST(IpTableAge, ExpireRemovesWhatWasNotSeenForTheTtl) {
  IpTable t(16, 1000);
  learn_echo(t, kDev, kDevMac, "10.0.0.5", 0);
  learn_echo(t, kDev, kDevMac, "10.0.0.6", 500);
  learn_echo(t, kDev2, kDev2Mac, "10.0.0.7", 700);
  EXPECT_EQ(t.next_expiry_ms(), 1000u);
  EXPECT_TRUE(t.expire(999).empty());
  std::vector<IpEntry> gone = t.expire(1000);
  ASSERT_EQ(gone.size(), 1u);
  EXPECT_EQ(gone[0].address, ip("10.0.0.5"));
  EXPECT_EQ(gone[0].device, kDev);
  EXPECT_EQ(t.next_expiry_ms(), 1500u);
  // A refresh pushes the expiry back.
  learn_echo(t, kDev, kDevMac, "10.0.0.6", 1400);
  gone = t.expire(1700);
  ASSERT_EQ(gone.size(), 1u);
  EXPECT_EQ(gone[0].address, ip("10.0.0.7"));
  EXPECT_EQ(t.expire(5000).size(), 1u);
  EXPECT_EQ(t.size(), 0u);
  EXPECT_FALSE(t.next_expiry_ms());
  // A clock before every entry expires nothing.
  learn_echo(t, kDev, kDevMac, "10.0.0.5", 9000);
  EXPECT_TRUE(t.expire(10).empty());
}

TEST(IpTableAge, TtlZeroNeverExpires) {
  IpTable t(16, 0);
  learn_echo(t, kDev, kDevMac, "10.0.0.5", 0);
  EXPECT_TRUE(t.expire(~0ULL).empty());
  EXPECT_FALSE(t.next_expiry_ms());
  EXPECT_EQ(t.size(), 1u);
}

TEST(IpTableBound, ANewAddressEvictsTheLeastRecentlySeen) {
  IpTable t(3, 0);
  learn_echo(t, kDev, kDevMac, "10.0.0.1", 10);
  learn_echo(t, kDev, kDevMac, "10.0.0.2", 20);
  learn_echo(t, kDev2, kDev2Mac, "10.0.0.3", 30);
  learn_echo(t, kDev, kDevMac, "10.0.0.1", 40);  // refreshed: now .2 is the oldest
  const LearnResult r = learn_echo(t, kDev2, kDev2Mac, "10.0.0.4", 50);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r.changes[0].kind, IpChangeKind::kEvicted);
  EXPECT_EQ(r.changes[0].entry.address, ip("10.0.0.2"));
  EXPECT_EQ(r.changes[0].entry.device, kDev);
  EXPECT_EQ(r.changes[0].entry.last_seen_ms, 20u);
  EXPECT_EQ(r.changes[1].kind, IpChangeKind::kAdded);
  EXPECT_EQ(r.changes[1].entry.address, ip("10.0.0.4"));
  EXPECT_EQ(t.size(), 3u);
  EXPECT_FALSE(t.lookup(ip("10.0.0.2")));
  // A move needs no room.
  EXPECT_EQ(only_change(learn_echo(t, kDev, kDevMac, "10.0.0.3", 60)).kind, IpChangeKind::kMoved);
  EXPECT_EQ(t.size(), 3u);
}

TEST(IpTableBound, NeverGrowsPastTheBoundAndReportsEveryEviction) {
  IpTable t(8, 0);
  std::map<IpAddress, DeviceId> routes;  // what a caller following the changes holds
  std::mt19937 rng(7);
  for (int i = 0; i < 2000; ++i) {
    const std::string src =
        "10.0." + std::to_string(rng() % 4) + "." + std::to_string(1 + rng() % 10);
    const DeviceId dev = rng() % 3;
    const MacAddress mac = MacAddress::from_u64(0x020000000100ULL + dev);
    for (const IpChange& c : learn_echo(t, dev, mac, src.c_str(), static_cast<std::uint64_t>(i))) {
      switch (c.kind) {
        case IpChangeKind::kAdded:
          ASSERT_FALSE(routes.contains(c.entry.address));
          routes[c.entry.address] = c.entry.device;
          break;
        case IpChangeKind::kMoved:
          ASSERT_EQ(routes.at(c.entry.address), c.previous_device);
          routes[c.entry.address] = c.entry.device;
          break;
        case IpChangeKind::kRefreshed:
          ASSERT_EQ(routes.at(c.entry.address), c.entry.device);
          break;
        case IpChangeKind::kEvicted:
          ASSERT_EQ(routes.erase(c.entry.address), 1u);
          break;
      }
    }
    ASSERT_LE(t.size(), 8u);
    ASSERT_EQ(routes.size(), t.size());
  }
  for (const IpEntry& e : t.entries()) EXPECT_EQ(routes.at(e.address), e.device);
}

TEST(IpTableBound, ZeroMeansOne) {
  IpTable t(0, 0);
  EXPECT_EQ(t.max_entries(), 1u);
  learn_echo(t, kDev, kDevMac, "10.0.0.1", 1);
  const LearnResult r = learn_echo(t, kDev, kDevMac, "10.0.0.2", 2);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r.changes[0].kind, IpChangeKind::kEvicted);
  EXPECT_EQ(t.size(), 1u);
  // An NA teaching two addresses into a table of one: the second evicts the first.
  const Bytes na =
      eth(kPeerMac, kDevMac, 0x86dd,
          icmpv6(ip("fe80::5"), ip("ff02::1"), 136, 0, nd_body(0x20, ip("2001:db8::5"), {})));
  const LearnResult r2 = t.learn_from_device(kDev, kDevMac, na, 3);
  ASSERT_EQ(r2.size(), 4u);
  EXPECT_EQ(r2.changes[2].kind, IpChangeKind::kEvicted);
  EXPECT_EQ(r2.changes[2].entry.address, ip("fe80::5"));
  EXPECT_EQ(t.entries().front().address, ip("2001:db8::5"));
}

TEST(IpTableForget, DeviceAndAddress) {
  IpTable t;
  learn_echo(t, kDev, kDevMac, "10.0.0.9", 1);
  learn_echo(t, kDev2, kDev2Mac, "10.0.0.2", 1);
  learn_echo(t, kDev, kDevMac, "10.0.0.1", 1);
  t.learn(ip("2001:db8::1"), kDev, kDevMac, LearnedFrom::kNdp, 1);
  const std::vector<IpEntry> gone = t.forget_device(kDev);
  ASSERT_EQ(gone.size(), 3u);
  EXPECT_EQ(gone[0].address, ip("10.0.0.1"));
  EXPECT_EQ(gone[1].address, ip("10.0.0.9"));
  EXPECT_EQ(gone[2].address, ip("2001:db8::1"));
  EXPECT_TRUE(t.forget_device(kDev).empty());
  EXPECT_EQ(t.size(), 1u);
  EXPECT_EQ(t.forget(ip("10.0.0.2"))->device, kDev2);
  EXPECT_FALSE(t.forget(ip("10.0.0.2")));
  EXPECT_EQ(t.size(), 0u);
  EXPECT_FALSE(t.next_expiry_ms());
  // learn() applies the same filter.
  EXPECT_TRUE(t.learn(ip("224.0.0.1"), kDev, kDevMac, LearnedFrom::kIp, 1).empty());
  EXPECT_TRUE(t.learn(ip("10.0.0.1"), kNoDevice, kDevMac, LearnedFrom::kIp, 1).empty());
}

TEST(IpTableForget, EntriesAreSortedByAddress) {
  IpTable t;
  for (const char* a : {"fe80::1", "10.0.0.10", "2001:db8::1", "10.0.0.9", "1.2.3.4"}) {
    t.learn(ip(a), kDev, kDevMac, LearnedFrom::kIp, 1);
  }
  std::vector<std::string> s;
  for (const IpEntry& e : t.entries()) s.push_back(e.address.to_string());
  EXPECT_EQ(
      s, (std::vector<std::string>{"1.2.3.4", "10.0.0.9", "10.0.0.10", "2001:db8::1", "fe80::1"}));
  EXPECT_EQ(to_string(LearnedFrom::kDhcp), "dhcp");
  EXPECT_EQ(to_string(IpChangeKind::kEvicted), "evicted");
}

// ---------------------------------------------------------------- robustness

std::vector<Bytes> valid_frames() {
  std::vector<Bytes> out;
  for (const auto& tpids :
       std::vector<std::vector<std::uint16_t>>{{}, {0x8100}, {0x88a8, 0x8100}}) {
    out.push_back(eth(MacAddress::broadcast(), kDevMac, 0x0806,
                      arp(1, kDevMac, ip("10.0.0.5"), MacAddress(), ip("10.0.0.1")), tpids));
    out.push_back(eth(kPeerMac, kDevMac, 0x0806,
                      arp(2, kDevMac, ip("10.0.0.5"), kPeerMac, ip("10.0.0.1")), tpids));
    out.push_back(
        eth(kPeerMac, kDevMac, 0x0800, udp4(ip("10.0.0.5"), ip("10.0.0.1"), 1, 2, {9, 9}), tpids));
    out.push_back(
        eth(kPeerMac, kDevMac, 0x0800, icmp4_echo(ip("10.0.0.5"), ip("10.0.0.1")), tpids));
    out.push_back(
        eth(MacAddress::broadcast(), kDevMac, 0x0800,
            udp4(ip("0.0.0.0"), ip("255.255.255.255"), 68, 67, bootp(1, kDevMac, ip("0.0.0.0"), 1)),
            tpids));
    out.push_back(dhcp_ack(kDevMac, ip("192.168.1.50"), 5, tpids));
    out.push_back(eth(kPeerMac, kDevMac, 0x86dd,
                      icmpv6(ip("2001:db8::5"), ip("2001:db8::1"), 128, 0, {0, 1, 0, 1}, 64),
                      tpids));
    out.push_back(eth(kPeerMac, kDevMac, 0x86dd,
                      icmpv6(ip("fe80::5"), ip("ff02::1"), 136, 0,
                             nd_body(0x20, ip("2001:db8::5"), lladdr_option(2, kDevMac))),
                      tpids));
    out.push_back(eth(kPeerMac, kDevMac, 0x86dd,
                      icmpv6(ip("fe80::5"), ip("ff02::1:ff00:1"), 135, 0,
                             nd_body(0, ip("fe80::1"), lladdr_option(1, kDevMac))),
                      tpids));
  }
  return out;
}

// Feeds bytes, copied into a buffer of exactly their size, to everything that
// parses frames here; the table must stay within its bound.
void feed(IpTable& t, const Bytes& bytes, std::uint64_t now) {
  const Bytes exact(bytes);
  const std::span<const std::uint8_t> f(exact.data(), exact.size());
  (void)parse_layout(f);
  const LearnResult a = t.learn_from_device(kDev, kDevMac, f, now);
  ASSERT_LE(a.size(), LearnResult::kCapacity);
  const LearnResult b = t.learn_dhcp_ack(
      f,
      [](MacAddress m) { return std::optional<DeviceId>(static_cast<DeviceId>(m.to_u64() % 5)); },
      now);
  ASSERT_LE(b.size(), LearnResult::kCapacity);
  ASSERT_LE(t.size(), t.max_entries());
}

TEST(IpTableRobust, EveryTruncationOfEveryValidFrame) {
  IpTable t(64, 1000);
  std::size_t learned = 0;
  for (const Bytes& full : valid_frames()) {
    IpTable probe;
    learned += probe.learn_from_device(kDev, kDevMac, full, 1).size() +
               probe
                   .learn_dhcp_ack(
                       full, [](MacAddress) { return std::optional<DeviceId>(kDev); }, 1)
                   .size();
    for (std::size_t n = 0; n < full.size(); ++n) {
      const Bytes cut(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
      feed(t, cut, n);
      // A frame cut inside its IP packet (IP headers say how long they are)
      // is malformed and teaches nothing.
      const auto l = parse_layout(full);
      if (l && l->kind != L3Kind::kOther && n < l->end) {
        IpTable fresh;
        EXPECT_TRUE(fresh.learn_from_device(kDev, kDevMac, cut, 1).empty()) << n;
      }
    }
  }
  EXPECT_GT(learned, 20u);  // the untruncated frames do teach
}

TEST(IpTableRobust, PseudoRandomFrames) {
  IpTable t(32, 100);
  std::mt19937_64 rng(20240611);
  const std::vector<Bytes> valid = valid_frames();
  for (int i = 0; i < 6000; ++i) {
    const Bytes f = mutated_frame(rng, valid, i);
    feed(t, f, static_cast<std::uint64_t>(i));
    if (i % 500 == 0) t.expire(static_cast<std::uint64_t>(i));
  }
}

}  // namespace
}  // namespace umacvlan::core
