// MacNat: egress rewriting (Ethernet source, ARP sender, NDP link-layer
// options, the DHCP BROADCAST flag) with checksums recomputed from scratch
// to verify the incremental updates, csum_partial leaving checksums alone,
// ingress destination and rewriting, ARP request targets, VLAN tags, and
// malformed frames left untouched: a robustness loop of pseudo-random frames
// and every truncation of every valid test frame through every function.
// Frames are built byte by byte here and in frame_builder_test_util.h.
#include "core/macnat.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
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

const MacAddress kLower = MacAddress::from_u64(0x0a00000000aaULL);
const std::vector<Tpids> kTagSets = {{}, {0x8100}, {0x88a8, 0x8100}};

// ---------------------------------------------------------------- builders

Bytes operator+(Bytes a, const Bytes& b) {
  append(a, b);
  return a;
}
std::uint16_t get16(const Bytes& b, std::size_t at) {
  return static_cast<std::uint16_t>(b[at] << 8 | b[at + 1]);
}
MacAddress get_mac(const Bytes& b, std::size_t at) {
  return MacAddress::from_bytes(b.data() + at);
}

enum class Csum { kFull, kZero, kPartial };

// Checksums an L4 message whose field is at csum_at, as `mode` says.
void checksum(Bytes& m, std::size_t csum_at, const IpAddress& src, const IpAddress& dst,
              std::uint8_t proto, Csum mode) {
  m[csum_at] = 0;
  m[csum_at + 1] = 0;
  std::uint16_t c = 0;
  if (mode == Csum::kFull) {
    c = static_cast<std::uint16_t>(~fold(sum16(m, pseudo_sum(src, dst, proto, m.size()))));
    if (c == 0 && proto == 17) c = 0xffff;
  } else if (mode == Csum::kPartial) {
    c = fold(pseudo_sum(src, dst, proto, m.size()));
  }
  m[csum_at] = static_cast<std::uint8_t>(c >> 8);
  m[csum_at + 1] = static_cast<std::uint8_t>(c);
}

Bytes udp4(const IpAddress& src, const IpAddress& dst, std::uint16_t sport, std::uint16_t dport,
           const Bytes& payload, Csum mode = Csum::kFull) {
  Bytes u;
  put16(u, sport);
  put16(u, dport);
  put16(u, static_cast<std::uint16_t>(8 + payload.size()));
  put16(u, 0);
  append(u, payload);
  checksum(u, 6, src, dst, 17, mode);
  return ipv4(src, dst, 17, u);
}

Bytes icmpv6(const IpAddress& src, const IpAddress& dst, std::uint8_t type, const Bytes& body,
             Csum mode = Csum::kFull) {
  Bytes m = {type, 0, 0, 0};
  append(m, body);
  checksum(m, 2, src, dst, 58, mode);
  return ipv6(src, dst, 58, m);
}

Bytes ra_body(const Bytes& options) {
  Bytes b = {64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0};  // hop limit, flags, lifetime, timers
  append(b, options);
  return b;
}

Bytes redirect_body(const IpAddress& target, const IpAddress& dst, const Bytes& options) {
  Bytes b = {0, 0, 0, 0};
  put_ip(b, target);
  put_ip(b, dst);
  append(b, options);
  return b;
}

// BOOTP/DHCP with option 53 = dhcp_type, padded to 300 bytes; xid varies.
Bytes bootp(std::uint8_t op, MacAddress chaddr, const IpAddress& yiaddr, std::uint8_t dhcp_type,
            std::uint32_t xid = 0xdeadbeef, std::uint16_t flags = 0) {
  Bytes b(236, 0);
  b[0] = op;
  b[1] = 1;
  b[2] = 6;
  for (int i = 0; i < 4; ++i) b[4 + i] = static_cast<std::uint8_t>(xid >> (24 - 8 * i));
  b[10] = static_cast<std::uint8_t>(flags >> 8);
  b[11] = static_cast<std::uint8_t>(flags);
  std::copy(yiaddr.bytes().begin(), yiaddr.bytes().end(), b.begin() + 16);
  std::copy(chaddr.octets().begin(), chaddr.octets().end(), b.begin() + 28);
  append(b, {99, 130, 83, 99, 53, 1, dhcp_type, 255});
  b.resize(300, 0);
  return b;
}

Bytes dhcp_client(std::uint8_t type, const Tpids& tpids = {}, Csum mode = Csum::kFull,
                  std::uint32_t xid = 0xdeadbeef, MacAddress dev = kDevMac) {
  return eth(MacAddress::broadcast(), dev, 0x0800,
             udp4(ip("0.0.0.0"), ip("255.255.255.255"), 68, 67,
                  bootp(1, dev, ip("0.0.0.0"), type, xid), mode),
             tpids);
}

std::size_t l3_of(const Tpids& tpids) {
  return 14 + 4 * tpids.size();
}

// Recomputes the L4 checksum of the IPv4 UDP or IPv6 ICMPv6 packet at l3
// from scratch: the one's complement sum over pseudo-header and message,
// checksum field included, must be 0xffff.
bool l4_checksum_ok(const Bytes& f, std::size_t l3) {
  if ((f[l3] >> 4) == 4) {
    const std::size_t ihl = (f[l3] & 0xf) * 4u;
    const std::size_t total = get16(f, l3 + 2);
    const std::size_t len = total - ihl;
    const IpAddress src = IpAddress::v4_from_bytes(f.data() + l3 + 12);
    const IpAddress dst = IpAddress::v4_from_bytes(f.data() + l3 + 16);
    return fold(sum16(f.data() + l3 + ihl, len, pseudo_sum(src, dst, f[l3 + 9], len))) == 0xffff;
  }
  const std::size_t len = get16(f, l3 + 4);
  const IpAddress src = IpAddress::v6_from_bytes(f.data() + l3 + 8);
  const IpAddress dst = IpAddress::v6_from_bytes(f.data() + l3 + 24);
  return fold(sum16(f.data() + l3 + 40, len, pseudo_sum(src, dst, f[l3 + 6], len))) == 0xffff;
}

// What the kernel does with a CHECKSUM_PARTIAL frame: sums the L4 message,
// field (the pseudo-header sum) included, and stores the complement.
void complete_partial(Bytes& f, std::size_t l4, std::size_t len, std::size_t csum_at) {
  const std::uint16_t c = static_cast<std::uint16_t>(~fold(sum16(f.data() + l4, len)));
  f[csum_at] = static_cast<std::uint8_t>(c >> 8);
  f[csum_at + 1] = static_cast<std::uint8_t>(c);
}

EgressResult egress(Bytes& f, bool csum_partial = false) {
  return rewrite_egress(std::span<std::uint8_t>(f.data(), f.size()), kLower, csum_partial);
}
IngressResult ingress(Bytes& f, MacAddress device = kDevMac) {
  return rewrite_ingress(std::span<std::uint8_t>(f.data(), f.size()), device, false);
}

// ---------------------------------------------------------------- egress

TEST(MacNatEgress, ArpRequestAndReplyAnnounceTheLower) {
  for (const Tpids& tpids : kTagSets) {
    const std::size_t l3 = l3_of(tpids);
    Bytes req = eth(MacAddress::broadcast(), kDevMac, 0x0806,
                    arp(1, kDevMac, ip("10.0.0.5"), MacAddress(), ip("10.0.0.1")), tpids);
    const Bytes before = req;
    const EgressResult r = egress(req);
    EXPECT_TRUE(r.ok());
    EXPECT_EQ(r.original, kDevMac);
    EXPECT_EQ(r.rewritten, kRewroteEthSource | kRewroteArpSender);
    EXPECT_EQ(get_mac(req, 0), MacAddress::broadcast());
    EXPECT_EQ(get_mac(req, 6), kLower);
    EXPECT_EQ(get_mac(req, l3 + 8), kLower);
    // Everything else, the sender's IP and the tags included, as it was.
    Bytes expect = before;
    std::copy(kLower.octets().begin(), kLower.octets().end(), expect.begin() + 6);
    std::copy(kLower.octets().begin(), kLower.octets().end(), expect.begin() + l3 + 8);
    EXPECT_EQ(req, expect);

    Bytes reply = eth(kPeerMac, kDevMac, 0x0806,
                      arp(2, kDevMac, ip("10.0.0.5"), kPeerMac, ip("10.0.0.1")), tpids);
    EXPECT_EQ(egress(reply).rewritten, kRewroteEthSource | kRewroteArpSender);
    EXPECT_EQ(get_mac(reply, l3 + 8), kLower);
    EXPECT_EQ(get_mac(reply, l3 + 18), kPeerMac);
  }
}

TEST(MacNatEgress, ArpSenderOtherThanTheSourceStays) {
  Bytes f =
      eth(kPeerMac, kDevMac, 0x0806, arp(2, kPeerMac, ip("10.0.0.9"), kPeerMac, ip("10.0.0.1")));
  EXPECT_EQ(egress(f).rewritten, kRewroteEthSource);
  EXPECT_EQ(get_mac(f, 22), kPeerMac);
  // Already the lower's: nothing to do.
  Bytes own =
      eth(kPeerMac, kLower, 0x0806, arp(1, kLower, ip("10.0.0.2"), MacAddress(), ip("10.0.0.1")));
  const Bytes before = own;
  const EgressResult r = egress(own);
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.rewritten, 0);
  EXPECT_EQ(own, before);
}

TEST(MacNatEgress, NdpLinkLayerOptionsWithValidChecksums) {
  struct Row {
    const char* name;
    std::uint8_t type;
    Bytes body;
    std::size_t option_at;  // from the ICMPv6 header
  };
  const Bytes sll = lladdr_option(1, kDevMac);
  const Bytes tll = lladdr_option(2, kDevMac);
  const Bytes mtu = {5, 1, 0, 0, 0, 0, 0x05, 0xdc};
  const std::vector<Row> rows = {
      {"RS", 133, Bytes{0, 0, 0, 0} + sll, 8},
      {"RA", 134, ra_body(mtu + sll), 24},
      {"NS", 135, nd_body(0, ip("fe80::1"), sll), 24},
      {"NA", 136, nd_body(0x60, ip("fe80::5"), tll), 24},
      {"Redirect", 137, redirect_body(ip("fe80::7"), ip("2001:db8::7"), tll), 40},
  };
  for (const Tpids& tpids : kTagSets) {
    for (const Row& row : rows) {
      SCOPED_TRACE(std::string(row.name) + ", " + std::to_string(tpids.size()) + " tags");
      const std::size_t l3 = l3_of(tpids);
      Bytes f = eth(kPeerMac, kDevMac, 0x86dd,
                    icmpv6(ip("fe80::5"), ip("ff02::2"), row.type, row.body), tpids);
      ASSERT_TRUE(l4_checksum_ok(f, l3));
      const EgressResult r = egress(f);
      EXPECT_TRUE(r.ok());
      EXPECT_EQ(r.rewritten, kRewroteEthSource | kRewroteNdpOption | kRewroteChecksum);
      EXPECT_EQ(get_mac(f, l3 + 40 + row.option_at + 2), kLower);
      EXPECT_TRUE(l4_checksum_ok(f, l3));
    }
  }
}

TEST(MacNatEgress, NdpOptionsNamingOthersStay) {
  // Two source options, one naming the device, one another MAC; a prefix option.
  Bytes prefix(32, 0);
  prefix[0] = 3;
  prefix[1] = 4;
  const Bytes opts = lladdr_option(1, kPeerMac) + prefix + lladdr_option(1, kDevMac);
  Bytes f =
      eth(kPeerMac, kDevMac, 0x86dd, icmpv6(ip("fe80::5"), ip("ff02::1"), 134, ra_body(opts)));
  const EgressResult r = egress(f);
  EXPECT_EQ(r.rewritten, kRewroteEthSource | kRewroteNdpOption | kRewroteChecksum);
  const std::size_t opt0 = 14 + 40 + 16;
  EXPECT_EQ(get_mac(f, opt0 + 2), kPeerMac);
  EXPECT_EQ(get_mac(f, opt0 + 8 + 32 + 2), kLower);
  EXPECT_TRUE(l4_checksum_ok(f, 14));
}

TEST(MacNatEgress, CsumPartialLeavesTheChecksumForTheKernel) {
  for (const Tpids& tpids : kTagSets) {
    const std::size_t l3 = l3_of(tpids);
    Bytes f = eth(kPeerMac, kDevMac, 0x86dd,
                  icmpv6(ip("2001:db8::5"), ip("ff02::1:ff00:1"), 135,
                         nd_body(0, ip("2001:db8::1"), lladdr_option(1, kDevMac)), Csum::kPartial),
                  tpids);
    const std::uint16_t field = get16(f, l3 + 42);
    const EgressResult r = egress(f, true);
    EXPECT_EQ(r.rewritten, kRewroteEthSource | kRewroteNdpOption);
    EXPECT_EQ(get16(f, l3 + 42), field);
    EXPECT_EQ(get_mac(f, l3 + 40 + 24 + 2), kLower);
    // Completed over the rewritten bytes, the checksum verifies.
    complete_partial(f, l3 + 40, get16(f, l3 + 4), l3 + 42);
    EXPECT_TRUE(l4_checksum_ok(f, l3));

    Bytes d = dhcp_client(1, tpids, Csum::kPartial);
    const std::uint16_t udp_field = get16(d, l3 + 26);
    EXPECT_EQ(egress(d, true).rewritten, kRewroteEthSource | kRewroteDhcpFlags);
    EXPECT_EQ(get16(d, l3 + 26), udp_field);
    complete_partial(d, l3 + 20, get16(d, l3 + 24), l3 + 26);
    EXPECT_TRUE(l4_checksum_ok(d, l3));
  }
}

TEST(MacNatEgress, DhcpClientMessagesAskForBroadcastReplies) {
  for (const Tpids& tpids : kTagSets) {
    for (std::uint8_t type : {1, 3, 8}) {  // DISCOVER, REQUEST, INFORM
      SCOPED_TRACE(std::to_string(type) + ", " + std::to_string(tpids.size()) + " tags");
      const std::size_t l3 = l3_of(tpids);
      Bytes f = dhcp_client(type, tpids);
      const EgressResult r = egress(f);
      EXPECT_TRUE(r.ok());
      EXPECT_EQ(r.rewritten, kRewroteEthSource | kRewroteDhcpFlags | kRewroteChecksum);
      EXPECT_EQ(get16(f, l3 + 28 + 10), 0x8000);
      EXPECT_NE(get16(f, l3 + 26), 0);
      EXPECT_TRUE(l4_checksum_ok(f, l3));
      EXPECT_EQ(get_mac(f, l3 + 28 + 28), kDevMac);  // chaddr stays
    }
  }
}

TEST(MacNatEgress, DhcpChecksumStaysValidForManyMessages) {
  // Different xids and MACs put the incremental update through every carry.
  std::mt19937 rng(1624);
  for (int i = 0; i < 3000; ++i) {
    const MacAddress dev = MacAddress::from_u64(0x020000000000ULL | (rng() & 0xffffffffffULL));
    Bytes f = dhcp_client(static_cast<std::uint8_t>(1 + rng() % 8), {}, Csum::kFull,
                          static_cast<std::uint32_t>(rng()), dev);
    ASSERT_TRUE(egress(f).has(kRewroteChecksum));
    ASSERT_TRUE(l4_checksum_ok(f, 14)) << i;
    ASSERT_NE(get16(f, 40), 0) << i;
  }
}

TEST(MacNatEgress, DhcpChecksumThatComesOutZeroIsSentAsAllOnes) {
  // Choose the xid's low word (frame offset 48) so that, once the flag is
  // set, the sum the checksum complements is 0xffff: the checksum is then
  // 0, which UDP must send as 0xffff.
  Bytes g = dhcp_client(1, {}, Csum::kFull, 0xdead0000);
  g[52] = 0x80;  // the flag
  g[40] = 0;
  g[41] = 0;
  const std::uint16_t s =
      fold(sum16(g.data() + 34, get16(g, 38),
                 pseudo_sum(ip("0.0.0.0"), ip("255.255.255.255"), 17, get16(g, 38))));
  Bytes f = dhcp_client(1, {}, Csum::kFull, 0xdead0000u | static_cast<std::uint16_t>(~s));
  ASSERT_NE(get16(f, 40), 0);
  EXPECT_TRUE(egress(f).has(kRewroteDhcpFlags | kRewroteChecksum));
  EXPECT_EQ(get16(f, 40), 0xffff);
  EXPECT_TRUE(l4_checksum_ok(f, 14));
}

TEST(MacNatEgress, DhcpZeroChecksumMeansNone) {
  Bytes f = dhcp_client(1, {}, Csum::kZero);
  const EgressResult r = egress(f);
  EXPECT_EQ(r.rewritten, kRewroteEthSource | kRewroteDhcpFlags);
  EXPECT_EQ(get16(f, 40), 0);
}

TEST(MacNatEgress, OnlyDhcpClientRequestsGetTheFlag) {
  Bytes already = eth(MacAddress::broadcast(), kDevMac, 0x0800,
                      udp4(ip("0.0.0.0"), ip("255.255.255.255"), 68, 67,
                           bootp(1, kDevMac, ip("0.0.0.0"), 1, 7, 0x8000)));
  EXPECT_EQ(egress(already).rewritten, kRewroteEthSource);
  // A DHCP server on a device (67 -> 68, BOOTREPLY) is left as it is.
  Bytes server =
      eth(kPeerMac, kDevMac, 0x0800,
          udp4(ip("10.0.0.5"), ip("10.0.0.9"), 67, 68, bootp(2, kPeerMac, ip("10.0.0.9"), 5)));
  const Bytes server_before = server;
  EXPECT_EQ(egress(server).rewritten, kRewroteEthSource);
  EXPECT_TRUE(std::equal(server.begin() + 12, server.end(), server_before.begin() + 12));
  // BOOTREPLY sent from 68 to 67, and a short "BOOTP" that is only UDP.
  Bytes odd =
      eth(kPeerMac, kDevMac, 0x0800,
          udp4(ip("10.0.0.5"), ip("10.0.0.9"), 68, 67, bootp(2, kPeerMac, ip("10.0.0.9"), 5)));
  EXPECT_EQ(egress(odd).rewritten, kRewroteEthSource);
  Bytes short_udp =
      eth(kPeerMac, kDevMac, 0x0800, udp4(ip("10.0.0.5"), ip("10.0.0.9"), 68, 67, Bytes(100, 1)));
  EXPECT_EQ(egress(short_udp).rewritten, kRewroteEthSource);
}

TEST(MacNatEgress, OrdinaryIpOnlyChangesTheSource) {
  Bytes echo = eth(kPeerMac, kDevMac, 0x86dd,
                   icmpv6(ip("2001:db8::5"), ip("2001:db8::1"), 128, {0, 1, 0, 1, 'x'}));
  Bytes expect = echo;
  std::copy(kLower.octets().begin(), kLower.octets().end(), expect.begin() + 6);
  EXPECT_EQ(egress(echo).rewritten, kRewroteEthSource);
  EXPECT_EQ(echo, expect);
  Bytes udp =
      eth(kPeerMac, kDevMac, 0x0800, udp4(ip("10.0.0.5"), ip("10.0.0.1"), 1234, 53, {1, 2}));
  EXPECT_EQ(egress(udp).rewritten, kRewroteEthSource);
  EXPECT_TRUE(l4_checksum_ok(udp, 14));
  Bytes lldp = eth(MacAddress::from_u64(0x0180c200000eULL), kDevMac, 0x88cc, Bytes(40, 0));
  EXPECT_EQ(egress(lldp).rewritten, kRewroteEthSource);
}

TEST(MacNatEgress, MalformedFramesStayUntouched) {
  std::vector<Bytes> bad;
  // A zero-length NDP option, an option running past the message, a lone byte after the options.
  bad.push_back(
      eth(kPeerMac, kDevMac, 0x86dd,
          icmpv6(ip("fe80::5"), ip("ff02::2"), 133,
                 Bytes{0, 0, 0, 0} + lladdr_option(1, kDevMac) + Bytes{2, 0, 0, 0, 0, 0, 0, 0})));
  bad.push_back(
      eth(kPeerMac, kDevMac, 0x86dd,
          icmpv6(ip("fe80::5"), ip("ff02::2"), 133,
                 Bytes{0, 0, 0, 0} + lladdr_option(1, kDevMac) + Bytes{2, 2, 0, 0, 0, 0, 0, 0})));
  bad.push_back(eth(kPeerMac, kDevMac, 0x86dd,
                    icmpv6(ip("fe80::5"), ip("ff02::2"), 135,
                           nd_body(0, ip("fe80::1"), lladdr_option(1, kDevMac) + Bytes{1}))));
  // An NS shorter than its fixed part.
  bad.push_back(
      eth(kPeerMac, kDevMac, 0x86dd, icmpv6(ip("fe80::5"), ip("ff02::2"), 135, Bytes(10, 0))));
  // A UDP length beyond the IP packet.
  Bytes udp = dhcp_client(1);
  udp[38] = 0xff;
  bad.push_back(udp);
  // An IPv4 total length beyond the frame; a runt; a cut VLAN tag.
  Bytes v4 = dhcp_client(3);
  v4[17] = static_cast<std::uint8_t>(v4[17] + 1);
  bad.push_back(v4);
  const Bytes whole = dhcp_client(1);
  bad.push_back(Bytes(whole.begin(), whole.begin() + 13));
  bad.push_back(Bytes{0, 1, 2, 3, 4, 5, 2, 0, 0, 0, 0xd0, 1, 0x81, 0, 0, 1, 0x08});
  for (std::size_t i = 0; i < bad.size(); ++i) {
    Bytes f = bad[i];
    const EgressResult r = egress(f);
    EXPECT_EQ(r.status, MacNatStatus::kMalformed) << i;
    EXPECT_EQ(r.rewritten, 0) << i;
    EXPECT_EQ(f, bad[i]) << i;
    if (f.size() >= 12) {
      EXPECT_EQ(r.original, kDevMac) << i;
    }
  }
  EXPECT_EQ(to_string(MacNatStatus::kMalformed), "malformed");
}

// ---------------------------------------------------------------- egress source

TEST(MacNatEgressSource, TheAddressAFrameComesFrom) {
  for (const Tpids& tpids : kTagSets) {
    SCOPED_TRACE(std::to_string(tpids.size()) + " tags");
    EXPECT_EQ(egress_source(eth(kPeerMac, kDevMac, 0x0800,
                                udp4(ip("10.0.0.5"), ip("10.0.0.1"), 1234, 53, {1}), tpids)),
              ip("10.0.0.5"));
    EXPECT_EQ(
        egress_source(eth(kPeerMac, kDevMac, 0x86dd,
                          icmpv6(ip("2001:db8::5"), ip("2001:db8::1"), 128, {0, 1, 0, 1}), tpids)),
        ip("2001:db8::5"));
    EXPECT_EQ(
        egress_source(eth(MacAddress::broadcast(), kDevMac, 0x0806,
                          arp(1, kDevMac, ip("10.0.0.5"), MacAddress(), ip("10.0.0.1")), tpids)),
        ip("10.0.0.5"));
  }
  // An ARP probe, a DHCP discover, a malformed frame: nobody's address.
  EXPECT_FALSE(egress_source(eth(MacAddress::broadcast(), kDevMac, 0x0806,
                                 arp(1, kDevMac, ip("0.0.0.0"), MacAddress(), ip("10.0.0.5")))));
  EXPECT_FALSE(egress_source(eth(MacAddress::broadcast(), kDevMac, 0x0800,
                                 udp4(ip("0.0.0.0"), ip("255.255.255.255"), 68, 67, {1}))));
  EXPECT_FALSE(egress_source(std::vector<std::uint8_t>(13, 0)));
  EXPECT_FALSE(egress_source(eth(kPeerMac, kDevMac, 0x88cc, {1, 2, 3})));
}

// ---------------------------------------------------------------- ingress

TEST(MacNatIngress, DestinationOfFramesForTheLower) {
  for (const Tpids& tpids : kTagSets) {
    SCOPED_TRACE(std::to_string(tpids.size()) + " tags");
    EXPECT_EQ(ingress_destination(eth(kLower, kPeerMac, 0x0800,
                                      udp4(ip("10.0.0.1"), ip("10.0.0.5"), 53, 1234, {1}), tpids)),
              ip("10.0.0.5"));
    EXPECT_EQ(ingress_destination(
                  eth(kLower, kPeerMac, 0x86dd,
                      icmpv6(ip("2001:db8::1"), ip("2001:db8::5"), 129, {0, 1, 0, 1}), tpids)),
              ip("2001:db8::5"));
    EXPECT_EQ(
        ingress_destination(eth(kLower, kPeerMac, 0x0806,
                                arp(2, kPeerMac, ip("10.0.0.1"), kLower, ip("10.0.0.5")), tpids)),
        ip("10.0.0.5"));
    // A unicast ARP request (Linux refreshes its neighbours that way).
    EXPECT_EQ(ingress_destination(
                  eth(kLower, kPeerMac, 0x0806,
                      arp(1, kPeerMac, ip("10.0.0.1"), MacAddress(), ip("10.0.0.6")), tpids)),
              ip("10.0.0.6"));
    // A unicast NS: the IPv6 destination, not the target, decides.
    EXPECT_EQ(
        ingress_destination(eth(kLower, kPeerMac, 0x86dd,
                                icmpv6(ip("fe80::1"), ip("fe80::5"), 135,
                                       nd_body(0, ip("2001:db8::99"), lladdr_option(1, kPeerMac))),
                                tpids)),
        ip("fe80::5"));
  }
  // No device owns these; nor do malformed frames or other protocols say.
  EXPECT_FALSE(ingress_destination(
      eth(kLower, kPeerMac, 0x0800, udp4(ip("10.0.0.1"), ip("255.255.255.255"), 1, 2, {}))));
  EXPECT_FALSE(ingress_destination(
      eth(kLower, kPeerMac, 0x0800, udp4(ip("10.0.0.1"), ip("224.0.0.251"), 1, 2, {}))));
  EXPECT_FALSE(ingress_destination(
      eth(kLower, kPeerMac, 0x86dd, icmpv6(ip("fe80::1"), ip("ff02::1"), 128, {0, 0, 0, 0}))));
  Bytes rarp =
      eth(kLower, kPeerMac, 0x0806, arp(3, kPeerMac, ip("10.0.0.1"), kLower, ip("10.0.0.5")));
  EXPECT_FALSE(ingress_destination(rarp));
  Bytes cut = eth(kLower, kPeerMac, 0x0800, udp4(ip("10.0.0.1"), ip("10.0.0.5"), 1, 2, {}));
  cut.pop_back();
  EXPECT_FALSE(ingress_destination(cut));
  EXPECT_FALSE(ingress_destination(eth(kLower, kPeerMac, 0x88cc, Bytes(40, 0))));
}

TEST(MacNatIngress, RewritesTheDestinationAndArpReplyTarget) {
  for (const Tpids& tpids : kTagSets) {
    const std::size_t l3 = l3_of(tpids);
    Bytes reply = eth(kLower, kPeerMac, 0x0806,
                      arp(2, kPeerMac, ip("10.0.0.1"), kLower, ip("10.0.0.5")), tpids);
    const IngressResult r = ingress(reply);
    EXPECT_TRUE(r.ok());
    EXPECT_EQ(r.original, kLower);
    EXPECT_EQ(r.rewritten, kRewroteEthDest | kRewroteArpTarget);
    EXPECT_EQ(get_mac(reply, 0), kDevMac);
    EXPECT_EQ(get_mac(reply, 6), kPeerMac);
    EXPECT_EQ(get_mac(reply, l3 + 8), kPeerMac);
    EXPECT_EQ(get_mac(reply, l3 + 18), kDevMac);

    // A request's target hardware address means nothing: it stays.
    Bytes req = eth(kLower, kPeerMac, 0x0806,
                    arp(1, kPeerMac, ip("10.0.0.1"), MacAddress(), ip("10.0.0.5")), tpids);
    EXPECT_EQ(ingress(req).rewritten, kRewroteEthDest);
    EXPECT_TRUE(get_mac(req, l3 + 18).is_zero());

    // NDP options carry the peer's MAC: untouched, checksum still valid.
    Bytes na = eth(kLower, kPeerMac, 0x86dd,
                   icmpv6(ip("fe80::1"), ip("fe80::5"), 136,
                          nd_body(0x60, ip("fe80::1"), lladdr_option(2, kPeerMac))),
                   tpids);
    Bytes expect = na;
    std::copy(kDevMac.octets().begin(), kDevMac.octets().end(), expect.begin());
    EXPECT_EQ(ingress(na).rewritten, kRewroteEthDest);
    EXPECT_EQ(na, expect);
    EXPECT_TRUE(l4_checksum_ok(na, l3));

    Bytes udp =
        eth(kLower, kPeerMac, 0x0800, udp4(ip("10.0.0.1"), ip("10.0.0.5"), 1, 2, {3}), tpids);
    EXPECT_EQ(ingress(udp).rewritten, kRewroteEthDest);
    EXPECT_TRUE(l4_checksum_ok(udp, l3));
  }
  Bytes bad =
      eth(kLower, kPeerMac, 0x0806, arp(2, kPeerMac, ip("10.0.0.1"), kLower, ip("10.0.0.5")));
  bad.resize(14 + 20);
  const Bytes before = bad;
  const IngressResult r = ingress(bad);
  EXPECT_EQ(r.status, MacNatStatus::kMalformed);
  EXPECT_EQ(bad, before);
}

TEST(MacNatArpRequest, TargetOfRequestsOnly) {
  for (const Tpids& tpids : kTagSets) {
    EXPECT_EQ(arp_request_target(eth(MacAddress::broadcast(), kPeerMac, 0x0806,
                                     arp(1, kPeerMac, ip("10.0.0.1"), MacAddress(), ip("10.0.0.5")),
                                     tpids)),
              ip("10.0.0.5"));
    // A probe asks too (duplicate address detection): the caller decides.
    EXPECT_EQ(arp_request_target(eth(MacAddress::broadcast(), kPeerMac, 0x0806,
                                     arp(1, kPeerMac, ip("0.0.0.0"), MacAddress(), ip("10.0.0.5")),
                                     tpids)),
              ip("10.0.0.5"));
    EXPECT_FALSE(
        arp_request_target(eth(MacAddress::broadcast(), kPeerMac, 0x0806,
                               arp(2, kPeerMac, ip("10.0.0.1"), kLower, ip("10.0.0.5")), tpids)));
  }
  EXPECT_FALSE(arp_request_target(eth(MacAddress::broadcast(), kPeerMac, 0x0800,
                                      udp4(ip("10.0.0.1"), ip("10.0.0.5"), 1, 2, {}))));
  Bytes cut = eth(MacAddress::broadcast(), kPeerMac, 0x0806,
                  arp(1, kPeerMac, ip("10.0.0.1"), MacAddress(), ip("10.0.0.5")));
  cut.pop_back();
  EXPECT_FALSE(arp_request_target(cut));
}

// ---------------------------------------------------------------- robustness

std::vector<Bytes> valid_frames() {
  std::vector<Bytes> out;
  for (const Tpids& tpids : kTagSets) {
    out.push_back(eth(MacAddress::broadcast(), kDevMac, 0x0806,
                      arp(1, kDevMac, ip("10.0.0.5"), MacAddress(), ip("10.0.0.1")), tpids));
    out.push_back(eth(kLower, kPeerMac, 0x0806,
                      arp(2, kPeerMac, ip("10.0.0.1"), kLower, ip("10.0.0.5")), tpids));
    out.push_back(dhcp_client(1, tpids));
    out.push_back(dhcp_client(3, tpids, Csum::kZero));
    out.push_back(
        eth(kLower, kPeerMac, 0x0800, udp4(ip("10.0.0.1"), ip("10.0.0.5"), 1, 2, {3}), tpids));
    out.push_back(eth(kPeerMac, kDevMac, 0x86dd,
                      icmpv6(ip("2001:db8::5"), ip("2001:db8::1"), 128, {0, 1, 0, 1}), tpids));
    out.push_back(eth(
        kPeerMac, kDevMac, 0x86dd,
        icmpv6(ip("fe80::5"), ip("ff02::2"), 133, Bytes{0, 0, 0, 0} + lladdr_option(1, kDevMac)),
        tpids));
    out.push_back(eth(kPeerMac, kDevMac, 0x86dd,
                      icmpv6(ip("fe80::5"), ip("ff02::1"), 134,
                             ra_body(Bytes{5, 1, 0, 0, 0, 0, 5, 0xdc} + lladdr_option(1, kDevMac))),
                      tpids));
    out.push_back(eth(kPeerMac, kDevMac, 0x86dd,
                      icmpv6(ip("fe80::5"), ip("ff02::1:ff00:1"), 135,
                             nd_body(0, ip("fe80::1"), lladdr_option(1, kDevMac))),
                      tpids));
    out.push_back(eth(kPeerMac, kDevMac, 0x86dd,
                      icmpv6(ip("fe80::5"), ip("fe80::1"), 136,
                             nd_body(0x60, ip("fe80::5"), lladdr_option(2, kDevMac))),
                      tpids));
    out.push_back(
        eth(kPeerMac, kDevMac, 0x86dd,
            icmpv6(ip("fe80::5"), ip("fe80::1"), 137,
                   redirect_body(ip("fe80::7"), ip("2001:db8::7"), lladdr_option(2, kDevMac))),
            tpids));
  }
  return out;
}

// Runs bytes (copied into a buffer of exactly their size) through every
// function; a malformed verdict must leave them as they were, and no rewrite
// changes anything it does not report.
void run_all(const Bytes& bytes, bool csum_partial) {
  const std::span<const std::uint8_t> c(bytes.data(), bytes.size());
  (void)ingress_destination(c);
  (void)arp_request_target(c);
  Bytes e(bytes);
  const EgressResult er =
      rewrite_egress(std::span<std::uint8_t>(e.data(), e.size()), kLower, csum_partial);
  if (er.status == MacNatStatus::kMalformed || er.rewritten == 0) {
    ASSERT_EQ(e, bytes);
  }
  Bytes i(bytes);
  const IngressResult ir =
      rewrite_ingress(std::span<std::uint8_t>(i.data(), i.size()), kDevMac, csum_partial);
  if (ir.status == MacNatStatus::kMalformed || ir.rewritten == 0) {
    ASSERT_EQ(i, bytes);
  }
}

TEST(MacNatRobust, EveryTruncationOfEveryValidFrame) {
  std::size_t malformed = 0;
  for (const Bytes& full : valid_frames()) {
    Bytes whole = full;
    ASSERT_TRUE(egress(whole).ok());
    for (std::size_t n = 0; n <= full.size(); ++n) {
      const Bytes cut(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
      run_all(cut, n % 2 == 0);
      Bytes f = cut;
      malformed += egress(f).status == MacNatStatus::kMalformed;
    }
  }
  EXPECT_GT(malformed, 1000u);  // cut inside their headers, most are refused
}

TEST(MacNatRobust, PseudoRandomFrames) {
  std::mt19937_64 rng(0x6d61636e6174ULL);
  const std::vector<Bytes> valid = valid_frames();
  for (int n = 0; n < 6000; ++n) {
    Bytes f = mutated_frame(rng, valid, n);
    run_all(f, rng() % 2 == 0);
    if (HasFatalFailure()) return;
  }
}

}  // namespace
}  // namespace umacvlan::core
