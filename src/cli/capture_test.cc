#include "cli/capture.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <pcap/pcap.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "cli/stream_test_util.h"
#include "core/frame.h"
#include "core/mac_address.h"

namespace umacvlan::cli {
namespace {

using Bytes = std::vector<std::uint8_t>;
using nlohmann::ordered_json;
using Words = std::vector<std::string>;

constexpr std::uint64_t kTime = 1700000000123456789ULL;  // 2023-11-14 22:13:20.123456 UTC
constexpr const char* kA = "02:00:00:00:00:01";
constexpr const char* kB = "02:00:00:00:00:02";
constexpr const char* kBroadcast = "ff:ff:ff:ff:ff:ff";

// ------------------------------------------------------------ frame makers

void put16(Bytes* b, std::uint16_t v) {
  b->push_back(static_cast<std::uint8_t>(v >> 8));
  b->push_back(static_cast<std::uint8_t>(v));
}
void put(Bytes* b, const Bytes& more) {
  b->insert(b->end(), more.begin(), more.end());
}

Bytes mac(const char* text) {
  const auto m = core::MacAddress::parse(text);
  EXPECT_TRUE(m.has_value()) << text;
  const core::MacAddress address = m.value_or(core::MacAddress{});
  const auto& o = address.octets();
  return Bytes(o.begin(), o.end());
}
Bytes ip4(const char* text) {
  Bytes b(4);
  EXPECT_EQ(inet_pton(AF_INET, text, b.data()), 1) << text;
  return b;
}
Bytes ip6(const char* text) {
  Bytes b(16);
  EXPECT_EQ(inet_pton(AF_INET6, text, b.data()), 1) << text;
  return b;
}

Bytes eth(const char* dst, const char* src, std::uint16_t type, const Bytes& payload) {
  Bytes b = mac(dst);
  put(&b, mac(src));
  put16(&b, type);
  put(&b, payload);
  return b;
}

Bytes vlan(std::uint16_t tpid, std::uint16_t vid, std::uint16_t type, const Bytes& payload) {
  Bytes b;
  put16(&b, tpid);
  put16(&b, vid);
  put16(&b, type);
  put(&b, payload);
  return b;
}

// An Ethernet header with 802.1Q/802.1ad tags: the tags' TPIDs come where
// eth() puts the ethertype.
Bytes tagged(const char* dst, const char* src, const Bytes& tags_and_payload) {
  Bytes b = mac(dst);
  put(&b, mac(src));
  put(&b, tags_and_payload);
  return b;
}

Bytes arp(std::uint16_t op, const char* sha, const char* spa, const char* tha, const char* tpa) {
  Bytes b;
  put16(&b, 1);
  put16(&b, 0x0800);
  b.push_back(6);
  b.push_back(4);
  put16(&b, op);
  put(&b, mac(sha));
  put(&b, ip4(spa));
  put(&b, mac(tha));
  put(&b, ip4(tpa));
  return b;
}

Bytes ipv4(const char* src, const char* dst, std::uint8_t proto, const Bytes& payload,
           std::uint16_t fragment = 0) {
  Bytes b{0x45, 0};
  put16(&b, static_cast<std::uint16_t>(20 + payload.size()));
  put16(&b, 0x1234);
  put16(&b, fragment);
  b.push_back(64);
  b.push_back(proto);
  put16(&b, 0);
  put(&b, ip4(src));
  put(&b, ip4(dst));
  put(&b, payload);
  return b;
}

Bytes ipv6(const char* src, const char* dst, std::uint8_t next, const Bytes& payload) {
  Bytes b{0x60, 0, 0, 0};
  put16(&b, static_cast<std::uint16_t>(payload.size()));
  b.push_back(next);
  b.push_back(255);
  put(&b, ip6(src));
  put(&b, ip6(dst));
  put(&b, payload);
  return b;
}

Bytes icmp_echo(std::uint8_t type, std::uint16_t id, std::uint16_t seq, std::size_t data) {
  Bytes b{type, 0, 0, 0};
  put16(&b, id);
  put16(&b, seq);
  b.resize(b.size() + data, 0xab);
  return b;
}

Bytes udp(std::uint16_t sport, std::uint16_t dport, const Bytes& payload) {
  Bytes b;
  put16(&b, sport);
  put16(&b, dport);
  put16(&b, static_cast<std::uint16_t>(8 + payload.size()));
  put16(&b, 0);
  put(&b, payload);
  return b;
}

Bytes tcp(std::uint16_t sport, std::uint16_t dport, std::uint8_t flags) {
  Bytes b;
  put16(&b, sport);
  put16(&b, dport);
  b.resize(12, 0);
  b.push_back(0x50);
  b.push_back(flags);
  b.resize(20, 0);
  return b;
}

// BOOTP with the DHCP cookie and option 53 (message_type < 0: no cookie).
Bytes dhcp(std::uint8_t op, int message_type) {
  Bytes b(236, 0);
  b[0] = op;
  b[1] = 1;
  b[2] = 6;
  if (message_type >= 0) {
    put(&b, {0x63, 0x82, 0x53, 0x63});
    put(&b, {0, 0, 61, 1, 9});  // pads, then an option before 53
    put(&b, {53, 1, static_cast<std::uint8_t>(message_type), 255});
  }
  return b;
}

Bytes icmpv6(std::uint8_t type, const Bytes& body) {
  Bytes b{type, 0, 0, 0};
  put(&b, body);
  return b;
}

Bytes ndp(std::uint8_t type, const char* target) {
  Bytes body(4, 0);
  put(&body, ip6(target));
  return icmpv6(type, body);
}

std::string describe(const Bytes& frame) {
  return describe_frame(frame, static_cast<std::uint32_t>(frame.size()));
}

// ----------------------------------------------------------- record makers

std::string hex(const Bytes& b) {
  std::string s;
  for (std::uint8_t x : b) s += fmt::format("{:02x}", x);
  return s;
}

ordered_json frame_record(const Bytes& data, std::uint32_t len, std::uint64_t time = kTime) {
  return ordered_json{
      {"type", "frame"},
      {"time", time},
      {"from", {{"kind", "lower"}, {"name", "eth0"}}},
      {"len", len},
      {"data", hex(data)},
      {"to", ordered_json::array({{{"name", "mv0"}, {"reason", "unicast"}, {"queued", false}}})},
      {"more", 0},
      {"host", false},
      {"wire", false},
      {"drop", "none"}};
}

std::string frame_line(const Bytes& data, std::uint64_t time = kTime) {
  return frame_record(data, static_cast<std::uint32_t>(data.size()), time).dump();
}

const Bytes& arp_request() {
  static const Bytes f =
      eth(kBroadcast, kA, 0x0806, arp(1, kA, "10.0.0.1", "00:00:00:00:00:00", "10.0.0.2"));
  return f;
}
const Bytes& icmp_request() {
  static const Bytes f =
      eth(kA, kB, 0x0800, ipv4("10.0.0.9", "10.0.0.1", 1, icmp_echo(8, 7, 1, 56)));
  return f;
}
const Bytes& udp_dns() {
  static const Bytes f =
      eth(kB, kA, 0x0800, ipv4("10.0.0.1", "10.0.0.2", 17, udp(5353, 53, Bytes(12, 0))));
  return f;
}

struct TempFile {
  std::string path;
  TempFile() {
    char name[] = "/tmp/umacvlan_capture_test_XXXXXX";
    const int fd = mkstemp(name);
    EXPECT_GE(fd, 0);
    if (fd >= 0) ::close(fd);
    path = name;
  }
  ~TempFile() { ::unlink(path.c_str()); }
};

struct PcapPacket {
  pcap_pkthdr header{};
  Bytes data;
};

// Reads a pcap file with libpcap; its link type and snaplen in *linktype,
// *snaplen.
std::vector<PcapPacket> read_pcap(const std::string& path, int* linktype, int* snaplen) {
  char errbuf[PCAP_ERRBUF_SIZE] = {};
  pcap_t* p = pcap_open_offline(path.c_str(), errbuf);
  EXPECT_NE(p, nullptr) << errbuf;
  std::vector<PcapPacket> packets;
  if (p == nullptr) return packets;
  *linktype = pcap_datalink(p);
  *snaplen = pcap_snapshot(p);
  pcap_pkthdr* h = nullptr;
  const u_char* data = nullptr;
  while (pcap_next_ex(p, &h, &data) == 1) {
    PcapPacket packet;
    packet.header = *h;
    packet.data.assign(data, data + h->caplen);
    packets.push_back(std::move(packet));
  }
  pcap_close(p);
  return packets;
}

CaptureArgs port_args(std::string filter = {}) {
  CaptureArgs a;
  a.kind = CaptureArgs::kPort;
  a.name = "eth0";
  a.filter = std::move(filter);
  return a;
}

// --------------------------------------------------------------- arguments

TEST(CaptureArgs, DevWithOptionsInAnyOrderThenTheFilter) {
  CaptureArgs a;
  std::string error;
  ASSERT_TRUE(parse_capture_args(
      {"-c", "3", "dev", "mv0", "-w", "/tmp/x.pcap", "icmp", "or", "arp"}, &a, &error))
      << error;
  EXPECT_EQ(a.kind, CaptureArgs::kDev);
  EXPECT_EQ(a.name, "mv0");
  EXPECT_EQ(a.count, 3u);
  EXPECT_EQ(a.write_file, "/tmp/x.pcap");
  EXPECT_EQ(a.filter, "icmp or arp");
  EXPECT_FALSE(a.json);
}

TEST(CaptureArgs, PortWithoutOptionsCapturesEverything) {
  CaptureArgs a;
  std::string error;
  ASSERT_TRUE(parse_capture_args({"port", "eth0"}, &a, &error)) << error;
  EXPECT_EQ(a.kind, CaptureArgs::kPort);
  EXPECT_EQ(a.name, "eth0");
  EXPECT_EQ(a.count, 0u);
  EXPECT_EQ(a.write_file, "");
  EXPECT_EQ(a.filter, "");
}

TEST(CaptureArgs, PortAfterTheNameStartsTheFilter) {
  CaptureArgs a;
  std::string error;
  ASSERT_TRUE(parse_capture_args({"dev", "mv0", "port", "53"}, &a, &error)) << error;
  EXPECT_EQ(a.kind, CaptureArgs::kDev);
  EXPECT_EQ(a.filter, "port 53");
  ASSERT_TRUE(parse_capture_args({"port", "eth0", "-w", "-", "port", "53"}, &a, &error)) << error;
  EXPECT_EQ(a.kind, CaptureArgs::kPort);
  EXPECT_EQ(a.name, "eth0");
  EXPECT_EQ(a.write_file, "-");
  EXPECT_EQ(a.filter, "port 53");
}

TEST(CaptureArgs, KeepsTheJsonFlagMainSet) {
  CaptureArgs a;
  a.json = true;
  std::string error;
  ASSERT_TRUE(parse_capture_args({"dev", "mv0", "ether", "src", kA}, &a, &error)) << error;
  EXPECT_TRUE(a.json);
  EXPECT_EQ(a.filter, "ether src 02:00:00:00:00:01");
}

struct BadArgs {
  Words words;
  std::string error;
};

TEST(CaptureArgs, EveryWrongArgumentHasItsMessageAndChangesNothing) {
  const std::string incomplete = "Command line is not complete. Try \"umacvlan capture help\".\n";
  const std::string required = "Error: \"dev\" or \"port\" is required.\n";
  const std::vector<BadArgs> cases = {
      {{}, required},
      {{"icmp"}, required},
      {{"-c", "2"}, required},
      {{"dev"}, incomplete},
      {{"port"}, incomplete},
      {{"dev", "mv0", "-c"}, incomplete},
      {{"dev", "mv0", "-w"}, incomplete},
      {{"dev", "mv0", "-c", "0"},
       "Error: argument \"0\" is wrong: COUNT must be a positive integer\n"},
      {{"dev", "mv0", "-c", "x"},
       "Error: argument \"x\" is wrong: COUNT must be a positive integer\n"},
      {{"dev", "mv0", "-c", "-1"},
       "Error: argument \"-1\" is wrong: COUNT must be a positive integer\n"},
      {{"dev", "mv0", "-c", "18446744073709551616"},
       "Error: argument \"18446744073709551616\" is wrong: COUNT must be a positive integer\n"},
      {{"dev", "mv0", "-c", "1", "-c", "2"},
       "Error: either \"-c\" is duplicate, or \"2\" is a garbage.\n"},
      {{"dev", "mv0", "-w", "a", "-w", "b"},
       "Error: either \"-w\" is duplicate, or \"b\" is a garbage.\n"},
      {{"dev", "mv0", "-w", ""}, "Error: argument \"\" is wrong: FILE must not be empty\n"},
      {{"dev", "mv0", "dev", "mv1"},
       "Error: either \"dev\" is duplicate, or \"mv1\" is a garbage.\n"},
      {{"port", "eth0", "dev"}, "Error: either \"dev\" is duplicate, or \"dev\" is a garbage.\n"},
      {{"dev", "sixteen-chars-xx"},
       "Error: argument \"sixteen-chars-xx\" is wrong: \"dev\" not a valid ifname\n"},
      {{"dev", ""}, "Error: argument \"\" is wrong: \"dev\" not a valid ifname\n"},
      {{"port", "a/b"}, "Error: argument \"a/b\" is wrong: \"port\" not a valid ifname\n"},
      {{"port", "a b"}, "Error: argument \"a b\" is wrong: \"port\" not a valid ifname\n"},
      {{"dev", "mv0", "-x"},
       "Error: argument \"-x\" is wrong: the options of \"capture\" are -w FILE and -c COUNT\n"},
      {{"dev", "mv0", "tcp", "and"},
       "Error: the capture filter is wrong: can't parse filter expression: syntax error\n"},
      {{"dev", "mv0", "ether", "src", "nonsense"},
       "Error: the capture filter is wrong: unknown ether host 'nonsense'\n"},
      {{"dev", "mv0", "-w", "f", "tcp", "and", "and"},
       "Error: the capture filter is wrong: can't parse filter expression: syntax error\n"},
  };
  for (const BadArgs& c : cases) {
    CaptureArgs a;
    a.name = "keep";
    a.count = 9;
    a.filter = "keep";
    std::string error;
    EXPECT_FALSE(parse_capture_args(c.words, &a, &error))
        << fmt::format("{}", fmt::join(c.words, " "));
    EXPECT_EQ(error, c.error) << fmt::format("{}", fmt::join(c.words, " "));
    EXPECT_EQ(a.name, "keep");
    EXPECT_EQ(a.count, 9u);
    EXPECT_EQ(a.filter, "keep");
  }
}

TEST(CaptureArgs, UsageIsTheGrammar) {
  EXPECT_EQ(capture_usage().rfind(
                "Usage: umacvlan capture { dev NAME | port LOWER } [ -w FILE ] [ -c COUNT ] "
                "[ FILTER ]\n",
                0),
            0u);
  EXPECT_EQ(capture_usage().back(), '\n');
}

// ----------------------------------------------------------------- records

TEST(CaptureRecord, HexDecodesEitherCaseAndRefusesOddOrBadDigits) {
  Bytes b;
  ASSERT_TRUE(decode_hex("00ff0A7f", &b));
  EXPECT_EQ(b, (Bytes{0x00, 0xff, 0x0a, 0x7f}));
  ASSERT_TRUE(decode_hex("", &b));
  EXPECT_TRUE(b.empty());
  b = {1};
  EXPECT_FALSE(decode_hex("abc", &b));
  EXPECT_FALSE(decode_hex("zz", &b));
  EXPECT_FALSE(decode_hex("0g", &b));
  EXPECT_FALSE(decode_hex("0 ", &b));
  EXPECT_EQ(b, Bytes{1});  // unchanged on failure
}

TEST(CaptureRecord, ParsesEveryField) {
  const ordered_json j = ordered_json::parse(
      R"({"type":"frame","time":5,"from":{"kind":"device","name":"mv0"},"len":60,)"
      R"("data":"0102","to":[{"name":"mv1","reason":"flood","queued":true},)"
      R"({"name":"mv2","reason":"reflect","queued":false}],"more":3,"host":true,"wire":true,)"
      R"("drop":"spoofed","dir":"out","future":1})");
  FrameRecord f;
  ASSERT_TRUE(parse_frame_record(j, &f));
  EXPECT_EQ(f.time_ns, 5u);
  EXPECT_EQ(f.from_kind, "device");
  EXPECT_EQ(f.from_name, "mv0");
  EXPECT_EQ(f.len, 60u);
  EXPECT_EQ(f.data, (Bytes{1, 2}));
  ASSERT_EQ(f.to.size(), 2u);
  EXPECT_EQ(f.to[0].name, "mv1");
  EXPECT_EQ(f.to[0].reason, "flood");
  EXPECT_TRUE(f.to[0].queued);
  EXPECT_EQ(f.to[1].reason, "reflect");
  EXPECT_FALSE(f.to[1].queued);
  EXPECT_EQ(f.more, 3u);
  EXPECT_TRUE(f.host);
  EXPECT_TRUE(f.wire);
  EXPECT_EQ(f.drop, "spoofed");
  EXPECT_EQ(f.dir, "out");
}

TEST(CaptureRecord, RefusesMissingKeysWrongTypesAndMoreBytesThanLen) {
  const ordered_json good = frame_record({1, 2, 3}, 3);
  FrameRecord f;
  ASSERT_TRUE(parse_frame_record(good, &f));
  for (const char* key : {"time", "from", "len", "data"}) {
    ordered_json j = good;
    j.erase(key);
    EXPECT_FALSE(parse_frame_record(j, &f)) << key;
  }
  const std::vector<std::pair<const char*, ordered_json>> wrong = {
      {"time", "5"},
      {"time", -1},
      {"len", 2},  // fewer than the 3 bytes of data
      {"len", 4294967296ULL},
      {"data", "010"},
      {"data", "01zz03"},
      {"from", "eth0"},
      {"from", {{"kind", "lower"}}},
      {"to", "mv0"},
      {"to", ordered_json::array({{{"name", "mv0"}}})},
      {"to", ordered_json::array({{{"name", "mv0"}, {"reason", "flood"}, {"queued", 1}}})},
      {"more", -2},
      {"host", 1},
      {"wire", "yes"},
      {"drop", 0},
      {"dir", true},
  };
  for (const auto& [key, value] : wrong) {
    ordered_json j = good;
    j[key] = value;
    EXPECT_FALSE(parse_frame_record(j, &f)) << j.dump();
  }
  EXPECT_FALSE(parse_frame_record(ordered_json::array(), &f));
}

// --------------------------------------------------------------- decoders

TEST(CaptureDescribe, Arp) {
  EXPECT_EQ(describe(arp_request()),
            "02:00:00:00:00:01 > ff:ff:ff:ff:ff:ff ARP, Request who-has 10.0.0.2 tell 10.0.0.1, "
            "length 42");
  EXPECT_EQ(describe(eth(kA, kB, 0x0806, arp(2, kB, "10.0.0.2", kA, "10.0.0.1"))),
            "02:00:00:00:00:02 > 02:00:00:00:00:01 ARP, Reply 10.0.0.2 is-at 02:00:00:00:00:02, "
            "length 42");
  Bytes padded = arp_request();
  padded.resize(60, 0);
  EXPECT_EQ(describe(padded),
            "02:00:00:00:00:01 > ff:ff:ff:ff:ff:ff ARP, Request who-has 10.0.0.2 tell 10.0.0.1, "
            "length 60");
  Bytes short_arp = arp_request();
  short_arp.resize(14 + 20);
  EXPECT_EQ(describe(short_arp), "02:00:00:00:00:01 > ff:ff:ff:ff:ff:ff ARP, truncated, length 34");
  Bytes other = arp(1, kA, "10.0.0.1", kB, "10.0.0.2");
  other[1] = 6;  // hardware type 6 (IEEE 802)
  EXPECT_EQ(describe(eth(kBroadcast, kA, 0x0806, other)),
            "02:00:00:00:00:01 > ff:ff:ff:ff:ff:ff ARP, hardware type 6, protocol 0x0800, op 1, "
            "length 42");
}

TEST(CaptureDescribe, Ipv4IcmpEcho) {
  EXPECT_EQ(describe(icmp_request()),
            "02:00:00:00:00:02 > 02:00:00:00:00:01 IPv4 10.0.0.9 > 10.0.0.1 ICMP echo request, id "
            "7, seq 1, length 98");
  EXPECT_EQ(describe(eth(kB, kA, 0x0800, ipv4("10.0.0.1", "10.0.0.9", 1, icmp_echo(0, 7, 1, 56)))),
            "02:00:00:00:00:01 > 02:00:00:00:00:02 IPv4 10.0.0.1 > 10.0.0.9 ICMP echo reply, id 7, "
            "seq 1, length 98");
  EXPECT_EQ(describe(eth(kB, kA, 0x0800, ipv4("10.0.0.1", "10.0.0.9", 1, {11, 0, 0, 0}))),
            "02:00:00:00:00:01 > 02:00:00:00:00:02 IPv4 10.0.0.1 > 10.0.0.9 ICMP time exceeded, "
            "code 0, length 38");
}

TEST(CaptureDescribe, Ipv4UdpAndDhcp) {
  EXPECT_EQ(describe(udp_dns()),
            "02:00:00:00:00:01 > 02:00:00:00:00:02 IPv4 10.0.0.1 > 10.0.0.2 UDP 5353 > 53, length "
            "54");
  EXPECT_EQ(describe(eth(kBroadcast, kA, 0x0800,
                         ipv4("0.0.0.0", "255.255.255.255", 17, udp(68, 67, dhcp(1, 1))))),
            "02:00:00:00:00:01 > ff:ff:ff:ff:ff:ff IPv4 0.0.0.0 > 255.255.255.255 UDP 68 > 67 DHCP "
            "Discover, length 291");
  EXPECT_EQ(
      describe(eth(kA, kB, 0x0800, ipv4("10.0.0.254", "10.0.0.1", 17, udp(67, 68, dhcp(2, 5))))),
      "02:00:00:00:00:02 > 02:00:00:00:00:01 IPv4 10.0.0.254 > 10.0.0.1 UDP 67 > 68 DHCP "
      "ACK, length 291");
  EXPECT_EQ(describe(eth(kBroadcast, kA, 0x0800,
                         ipv4("0.0.0.0", "255.255.255.255", 17, udp(68, 67, dhcp(1, -1))))),
            "02:00:00:00:00:01 > ff:ff:ff:ff:ff:ff IPv4 0.0.0.0 > 255.255.255.255 UDP 68 > 67 "
            "BOOTP request, length 278");
  EXPECT_EQ(describe(eth(kBroadcast, kA, 0x0800,
                         ipv4("0.0.0.0", "255.255.255.255", 17, udp(68, 67, {})))),
            "02:00:00:00:00:01 > ff:ff:ff:ff:ff:ff IPv4 0.0.0.0 > 255.255.255.255 UDP 68 > 67 "
            "DHCP, truncated, length 42");
}

TEST(CaptureDescribe, Ipv4TcpFlags) {
  const auto line = [](std::uint8_t flags) {
    return describe(eth(kA, kB, 0x0800, ipv4("10.0.0.2", "10.0.0.1", 6, tcp(80, 40000, flags))));
  };
  EXPECT_EQ(line(0x12),
            "02:00:00:00:00:02 > 02:00:00:00:00:01 IPv4 10.0.0.2 > 10.0.0.1 TCP 80 > 40000 [S.], "
            "length 54");
  EXPECT_EQ(line(0x02),
            "02:00:00:00:00:02 > 02:00:00:00:00:01 IPv4 10.0.0.2 > 10.0.0.1 TCP 80 > 40000 [S], "
            "length 54");
  EXPECT_EQ(line(0x18),
            "02:00:00:00:00:02 > 02:00:00:00:00:01 IPv4 10.0.0.2 > 10.0.0.1 TCP 80 > 40000 [P.], "
            "length 54");
  EXPECT_EQ(line(0x11),
            "02:00:00:00:00:02 > 02:00:00:00:00:01 IPv4 10.0.0.2 > 10.0.0.1 TCP 80 > 40000 [F.], "
            "length 54");
  EXPECT_EQ(line(0x04),
            "02:00:00:00:00:02 > 02:00:00:00:00:01 IPv4 10.0.0.2 > 10.0.0.1 TCP 80 > 40000 [R], "
            "length 54");
  EXPECT_EQ(line(0x00),
            "02:00:00:00:00:02 > 02:00:00:00:00:01 IPv4 10.0.0.2 > 10.0.0.1 TCP 80 > 40000 "
            "[none], length 54");
}

TEST(CaptureDescribe, Ipv4OddCases) {
  // A fragment after the first, another protocol, a bad header.
  EXPECT_EQ(describe(eth(kA, kB, 0x0800, ipv4("10.0.0.2", "10.0.0.1", 17, Bytes(8, 0), 0x00b9))),
            "02:00:00:00:00:02 > 02:00:00:00:00:01 IPv4 10.0.0.2 > 10.0.0.1 fragment offset 1480, "
            "proto 17, length 42");
  EXPECT_EQ(describe(eth(kA, kB, 0x0800, ipv4("10.0.0.2", "10.0.0.1", 47, Bytes(4, 0)))),
            "02:00:00:00:00:02 > 02:00:00:00:00:01 IPv4 10.0.0.2 > 10.0.0.1 proto 47, length 38");
  Bytes bad = ipv4("10.0.0.2", "10.0.0.1", 1, icmp_echo(8, 1, 1, 0));
  bad[0] = 0x44;
  EXPECT_EQ(describe(eth(kA, kB, 0x0800, bad)),
            "02:00:00:00:00:02 > 02:00:00:00:00:01 IPv4, bad header length 16, length 42");
  bad[0] = 0x65;
  EXPECT_EQ(describe(eth(kA, kB, 0x0800, bad)),
            "02:00:00:00:00:02 > 02:00:00:00:00:01 IPv4, bad version 6, length 42");
  bad[0] = 0x4f;  // 60-byte header, 28 bytes there
  EXPECT_EQ(describe(eth(kA, kB, 0x0800, bad)),
            "02:00:00:00:00:02 > 02:00:00:00:00:01 IPv4 10.0.0.2 > 10.0.0.1, truncated, length 42");
}

TEST(CaptureDescribe, Ipv6IcmpEchoAndNdp) {
  EXPECT_EQ(describe(eth(kB, kA, 0x86dd, ipv6("fe80::1", "fe80::2", 58, icmp_echo(128, 1, 2, 8)))),
            "02:00:00:00:00:01 > 02:00:00:00:00:02 IPv6 fe80::1 > fe80::2 ICMPv6 echo request, id "
            "1, seq 2, length 70");
  EXPECT_EQ(describe(eth(kA, kB, 0x86dd, ipv6("fe80::2", "fe80::1", 58, icmp_echo(129, 1, 2, 8)))),
            "02:00:00:00:00:02 > 02:00:00:00:00:01 IPv6 fe80::2 > fe80::1 ICMPv6 echo reply, id 1, "
            "seq 2, length 70");
  EXPECT_EQ(describe(eth("33:33:ff:00:00:02", kA, 0x86dd,
                         ipv6("fe80::1", "ff02::1:ff00:2", 58, ndp(135, "fe80::2")))),
            "02:00:00:00:00:01 > 33:33:ff:00:00:02 IPv6 fe80::1 > ff02::1:ff00:2 ICMPv6 neighbor "
            "solicitation, who has fe80::2, length 78");
  EXPECT_EQ(describe(eth(kA, kB, 0x86dd, ipv6("fe80::2", "fe80::1", 58, ndp(136, "fe80::2")))),
            "02:00:00:00:00:02 > 02:00:00:00:00:01 IPv6 fe80::2 > fe80::1 ICMPv6 neighbor "
            "advertisement, tgt is fe80::2, length 78");
  EXPECT_EQ(describe(eth("33:33:00:00:00:02", kA, 0x86dd,
                         ipv6("fe80::1", "ff02::2", 58, icmpv6(133, Bytes(4, 0))))),
            "02:00:00:00:00:01 > 33:33:00:00:00:02 IPv6 fe80::1 > ff02::2 ICMPv6 router "
            "solicitation, length 62");
  EXPECT_EQ(describe(eth("33:33:00:00:00:01", kB, 0x86dd,
                         ipv6("fe80::2", "ff02::1", 58, icmpv6(134, Bytes(12, 0))))),
            "02:00:00:00:00:02 > 33:33:00:00:00:01 IPv6 fe80::2 > ff02::1 ICMPv6 router "
            "advertisement, length 70");
  Bytes short_ns = ndp(135, "fe80::2");
  short_ns.resize(20);
  EXPECT_EQ(describe(eth(kBroadcast, kA, 0x86dd, ipv6("fe80::1", "ff02::1", 58, short_ns))),
            "02:00:00:00:00:01 > ff:ff:ff:ff:ff:ff IPv6 fe80::1 > ff02::1 ICMPv6 neighbor "
            "solicitation, truncated, length 74");
}

TEST(CaptureDescribe, Ipv6ExtensionHeadersUdpTcpAndDhcpv6) {
  // Hop-by-hop (router alert), then an MLDv2 report.
  Bytes hop{58, 0, 5, 2, 0, 0, 1, 0};
  put(&hop, icmpv6(143, Bytes(4, 0)));
  EXPECT_EQ(describe(eth("33:33:00:00:00:16", kA, 0x86dd, ipv6("fe80::1", "ff02::16", 0, hop))),
            "02:00:00:00:00:01 > 33:33:00:00:00:16 IPv6 fe80::1 > ff02::16 ICMPv6 multicast "
            "listener report v2, length 70");
  EXPECT_EQ(describe(eth("33:33:00:01:00:02", kA, 0x86dd,
                         ipv6("fe80::1", "ff02::1:2", 17, udp(546, 547, {1, 0, 0, 1})))),
            "02:00:00:00:00:01 > 33:33:00:01:00:02 IPv6 fe80::1 > ff02::1:2 UDP 546 > 547 DHCPv6 "
            "Solicit, length 66");
  EXPECT_EQ(
      describe(eth(kB, kA, 0x86dd, ipv6("2001:db8::1", "2001:db8::2", 6, tcp(22, 5000, 0x10)))),
      "02:00:00:00:00:01 > 02:00:00:00:00:02 IPv6 2001:db8::1 > 2001:db8::2 TCP 22 > 5000 "
      "[.], length 74");
  Bytes fragment{17, 0, 0x05, 0xa8, 0, 0, 0, 1};  // offset 1448
  put(&fragment, Bytes(8, 0));
  EXPECT_EQ(describe(eth(kB, kA, 0x86dd, ipv6("2001:db8::1", "2001:db8::2", 44, fragment))),
            "02:00:00:00:00:01 > 02:00:00:00:00:02 IPv6 2001:db8::1 > 2001:db8::2 fragment offset "
            "1448, next header 17, length 70");
  EXPECT_EQ(describe(eth(kB, kA, 0x86dd, ipv6("2001:db8::1", "2001:db8::2", 59, {}))),
            "02:00:00:00:00:01 > 02:00:00:00:00:02 IPv6 2001:db8::1 > 2001:db8::2 no next header, "
            "length 54");
  Bytes long_hop{58, 10, 0, 0, 0, 0, 0, 0};  // claims 88 bytes
  EXPECT_EQ(describe(eth(kB, kA, 0x86dd, ipv6("2001:db8::1", "2001:db8::2", 0, long_hop))),
            "02:00:00:00:00:01 > 02:00:00:00:00:02 IPv6 2001:db8::1 > 2001:db8::2, truncated, "
            "length 62");
}

TEST(CaptureDescribe, VlanTags) {
  EXPECT_EQ(describe(tagged(kBroadcast, kA,
                            vlan(0x8100, 0x2005, 0x0806,
                                 arp(1, kA, "10.0.0.1", "00:00:00:00:00:00", "10.0.0.2")))),
            "02:00:00:00:00:01 > ff:ff:ff:ff:ff:ff vlan 5 ARP, Request who-has 10.0.0.2 tell "
            "10.0.0.1, length 46");
  // Tags, then too little for the inner IPv4 header.
  EXPECT_EQ(describe(tagged(kB, kA, vlan(0x88a8, 100, 0x8100, {0x00, 0x05, 0x08, 0x00, 0x45}))),
            "02:00:00:00:00:01 > 02:00:00:00:00:02 vlan 100 vlan 5 IPv4, truncated, length 23");
  Bytes qinq = tagged(kB, kA, vlan(0x88a8, 100, 0x8100, {}));
  put16(&qinq, 5);
  put16(&qinq, 0x0800);
  put(&qinq, ipv4("10.0.0.1", "10.0.0.2", 17, udp(1, 2, {})));
  EXPECT_EQ(describe(qinq),
            "02:00:00:00:00:01 > 02:00:00:00:00:02 vlan 100 vlan 5 IPv4 10.0.0.1 > 10.0.0.2 UDP 1 "
            "> 2, length 50");
  Bytes cut = tagged(kB, kA, {0x81, 0x00, 0x00});
  EXPECT_EQ(describe(cut), "02:00:00:00:00:01 > 02:00:00:00:00:02 vlan, truncated, length 15");
}

TEST(CaptureDescribe, RuntsOtherTypesAndTruncatedCaptures) {
  const Bytes runt{1, 2, 3, 4, 5};
  EXPECT_EQ(describe(runt), "truncated Ethernet header (5 bytes), length 5");
  EXPECT_EQ(describe_frame({}, 0), "truncated Ethernet header (0 bytes), length 0");
  EXPECT_EQ(describe(eth(kB, kA, 0x1234, {})),
            "02:00:00:00:00:01 > 02:00:00:00:00:02 ethertype 0x1234, length 14");
  EXPECT_EQ(describe(eth("01:80:c2:00:00:0e", kA, 0x88cc, Bytes(10, 0))),
            "02:00:00:00:00:01 > 01:80:c2:00:00:0e ethertype 0x88cc (LLDP), length 24");
  EXPECT_EQ(describe(eth("01:80:c2:00:00:01", kA, 0x8808, Bytes(46, 0))),
            "02:00:00:00:00:01 > 01:80:c2:00:00:01 ethertype 0x8808 (MAC control, PAUSE), length "
            "60");
  EXPECT_EQ(describe(eth("01:80:c2:00:00:00", kA, 38, Bytes(46, 0))),
            "02:00:00:00:00:01 > 01:80:c2:00:00:00 802.3 LLC, length field 38, length 60");
  // caplen < len: the first 38 of 98 bytes (4 bytes of ICMP).
  const Bytes& f = icmp_request();
  const std::span<const std::uint8_t> first(f.data(), 38);
  EXPECT_EQ(describe_frame(first, 98),
            "02:00:00:00:00:02 > 02:00:00:00:00:01 IPv4 10.0.0.9 > 10.0.0.1 ICMP echo request, "
            "truncated, length 98");
  EXPECT_EQ(describe_frame(first.first(24), 98),
            "02:00:00:00:00:02 > 02:00:00:00:00:01 IPv4, truncated, length 98");
  EXPECT_EQ(describe_frame(std::span<const std::uint8_t>(udp_dns().data(), 36), 54),
            "02:00:00:00:00:01 > 02:00:00:00:00:02 IPv4 10.0.0.1 > 10.0.0.2 UDP, truncated, length "
            "54");
}

// Bytes placed at the very end of a readable page, a PROT_NONE page after
// it: a decoder that reads one byte too far faults here, sanitizer or not.
class GuardedBuffer {
 public:
  GuardedBuffer() {
    page_ = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    void* m =
        ::mmap(nullptr, 2 * page_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    EXPECT_NE(m, MAP_FAILED);
    base_ = static_cast<std::uint8_t*>(m);
    EXPECT_EQ(::mprotect(base_ + page_, page_, PROT_NONE), 0);
  }
  ~GuardedBuffer() { ::munmap(base_, 2 * page_); }
  GuardedBuffer(const GuardedBuffer&) = delete;
  GuardedBuffer& operator=(const GuardedBuffer&) = delete;

  std::span<const std::uint8_t> place(const Bytes& b) {
    std::uint8_t* at = base_ + page_ - b.size();
    if (!b.empty()) std::memcpy(at, b.data(), b.size());  // an empty one may have no data()
    return {at, b.size()};
  }

 private:
  std::size_t page_ = 0;
  std::uint8_t* base_ = nullptr;
};

TEST(CaptureDescribe, PseudoRandomFramesNeverReadPastTheirBytes) {
  GuardedBuffer guard;
  std::mt19937 rng(20240611);
  const std::uint16_t kTypes[] = {0x0800, 0x86dd, 0x0806, 0x8100, 0x88a8, 0x9100, 0x88cc, 0x0026};
  const std::uint8_t kProtos[] = {1, 6, 17, 58, 0, 43, 44, 60, 59};
  std::size_t lines = 0;
  for (int i = 0; i < 5000; ++i) {
    Bytes b(rng() % 140);
    for (auto& x : b) x = static_cast<std::uint8_t>(rng());
    // Mostly plausible headers, so that the decoders behind them run too.
    if (b.size() >= 14 && rng() % 4 != 0) {
      const std::uint16_t type = kTypes[rng() % std::size(kTypes)];
      b[12] = static_cast<std::uint8_t>(type >> 8);
      b[13] = static_cast<std::uint8_t>(type);
      if (type == 0x0800 && b.size() > 23) {
        b[14] = static_cast<std::uint8_t>(0x40 | (5 + rng() % 3));
        b[20] = b[21] = 0;
        b[23] = kProtos[rng() % 3];
        if (rng() % 2 != 0 && b.size() > 37) {  // DHCP's ports
          b[34] = b[36] = 0;
          b[35] = 68;
          b[37] = 67;
        }
      } else if (type == 0x86dd && b.size() > 20) {
        b[14] = 0x60;
        b[20] = kProtos[rng() % std::size(kProtos)];
      } else if (type == 0x0806 && b.size() > 19) {
        const std::uint8_t kEthernetIpv4[] = {0, 1, 8, 0, 6, 4};
        std::memcpy(&b[14], kEthernetIpv4, sizeof kEthernetIpv4);
      }
    }
    const std::uint32_t len = static_cast<std::uint32_t>(b.size() + rng() % 3 * 100);
    const std::string d = describe_frame(guard.place(b), len);
    const std::string suffix = fmt::format(", length {}", len);
    ASSERT_GE(d.size(), suffix.size()) << hex(b);
    EXPECT_EQ(d.substr(d.size() - suffix.size()), suffix) << hex(b);
    EXPECT_EQ(d.find('\n'), std::string::npos) << hex(b);
    lines += d.empty() ? 0 : 1;
  }
  EXPECT_EQ(lines, 5000u);
}

// --------------------------------------------------------------- decisions

FrameRecord decided(std::vector<CaptureTarget> to, std::string drop = "none") {
  FrameRecord f;
  f.time_ns = kTime;
  f.from_kind = "lower";
  f.from_name = "eth0";
  f.data = arp_request();
  f.len = 42;
  f.to = std::move(to);
  f.drop = std::move(drop);
  return f;
}

TEST(CaptureDecision, TargetsReasonsStackWireAndDrops) {
  EXPECT_EQ(describe_decision(decided({{"mv0", "unicast", false}})), "to mv0 (unicast)");
  FrameRecord flood = decided({{"mv1", "flood", false}, {"mv2", "flood", true}});
  flood.more = 3;
  flood.host = true;
  flood.wire = true;
  EXPECT_EQ(describe_decision(flood), "to mv1 (flood), mv2 (flood, queued), +3 more, stack, wire");
  EXPECT_EQ(describe_decision(decided({{"mvs", "source_copy", false}, {"mvb", "reflect", false}})),
            "to mvs (source list), mvb (reflected)");
  FrameRecord wire = decided({});
  wire.wire = true;
  EXPECT_EQ(describe_decision(wire), "to wire");
  EXPECT_EQ(describe_decision(decided({})), "to nobody");
  EXPECT_EQ(describe_decision(decided({}, "spoofed")),
            "dropped (spoofed: sent with a source MAC not the device's own, spoofchk on)");
  EXPECT_EQ(describe_decision(decided({{"mv1", "flood", false}}, "bc_queue_full")),
            "to mv1 (flood); dropped (bc_queue_full: the broadcast queue was full)");
  EXPECT_EQ(describe_decision(decided({}, "a_later_reason")), "dropped (a_later_reason)");
  EXPECT_EQ(describe_decision(decided({{"mv9", "later", false}})), "to mv9 (later)");
}

TEST(CaptureDecision, EveryDropReasonHasAPhrase) {
  for (std::uint8_t i = 1; i < static_cast<std::uint8_t>(core::DropReason::kCount); ++i) {
    const std::string reason(core::to_string(static_cast<core::DropReason>(i)));
    const std::string phrase = drop_phrase(reason);
    EXPECT_EQ(phrase.rfind(reason + ": ", 0), 0u) << reason << " -> " << phrase;
    EXPECT_GT(phrase.size(), reason.size() + 10) << reason;
  }
  EXPECT_EQ(drop_phrase("no_subscriber"), "no_subscriber: a multicast group no device joined");
  EXPECT_EQ(drop_phrase("nonsense"), "nonsense");
}

TEST(CaptureText, TimeIsHoursMinutesSecondsMicroseconds) {
  EXPECT_EQ(format_time(kTime, TimeZone::kUtc), "22:13:20.123456");
  EXPECT_EQ(format_time(0, TimeZone::kUtc), "00:00:00.000000");
  EXPECT_EQ(format_time(86399999999999ULL, TimeZone::kUtc), "23:59:59.999999");
  EXPECT_EQ(format_time(kTime, TimeZone::kLocal).size(), 15u);
}

TEST(CaptureText, LinesSayWhereTheFrameWasSeen) {
  FrameRecord f = decided({{"mv1", "flood", false}});
  f.wire = true;
  EXPECT_EQ(format_frame_line(f, "", TimeZone::kUtc),
            "22:13:20.123456 from eth0 02:00:00:00:00:01 > ff:ff:ff:ff:ff:ff ARP, Request who-has "
            "10.0.0.2 tell 10.0.0.1, length 42: to mv1 (flood), wire");
  f.dir = "in";
  EXPECT_EQ(format_frame_line(f, "mv1", TimeZone::kUtc),
            "22:13:20.123456 in mv1 from eth0 02:00:00:00:00:01 > ff:ff:ff:ff:ff:ff ARP, Request "
            "who-has 10.0.0.2 tell 10.0.0.1, length 42: to mv1 (flood), wire");
  f.dir = "out";
  f.from_kind = "device";
  f.from_name = "mv0";
  EXPECT_EQ(format_frame_line(f, "mv0", TimeZone::kUtc),
            "22:13:20.123456 out mv0 02:00:00:00:00:01 > ff:ff:ff:ff:ff:ff ARP, Request who-has "
            "10.0.0.2 tell 10.0.0.1, length 42: to mv1 (flood), wire");
}

TEST(CaptureText, SummaryInTcpdumpsWords) {
  CaptureSummary s;
  EXPECT_EQ(format_capture_summary(s),
            "0 packets captured\n"
            "0 packets dropped by umacvlan (capture queue full)\n"
            "0 packets dropped by umacvlan (reader too slow)\n");
  s.captured = 1;
  s.overflow = 1;
  s.lost = 1;
  s.filtered_out = 1;
  s.malformed = 1;
  EXPECT_EQ(format_capture_summary(s),
            "1 packet captured\n"
            "1 packet dropped by umacvlan (capture queue full)\n"
            "1 packet dropped by umacvlan (reader too slow)\n"
            "1 packet did not match the filter\n"
            "1 malformed record skipped\n");
  s = CaptureSummary{12, 30, 2, 7, 5, "device mv0 was deleted.", false};
  EXPECT_EQ(format_capture_summary(s),
            "12 packets captured\n"
            "7 packets dropped by umacvlan (capture queue full)\n"
            "5 packets dropped by umacvlan (reader too slow)\n"
            "30 packets did not match the filter\n"
            "2 malformed records skipped\n"
            "capture ended: device mv0 was deleted.\n");
  s = CaptureSummary{};
  s.closed = true;
  EXPECT_EQ(format_capture_summary(s),
            "0 packets captured\n"
            "0 packets dropped by umacvlan (capture queue full)\n"
            "0 packets dropped by umacvlan (reader too slow)\n"
            "capture ended: the daemon closed the stream\n");
  CaptureArgs a = port_args();
  EXPECT_EQ(capture_banner(a),
            "listening on port eth0, link-type EN10MB (Ethernet), snapshot length 262144 bytes\n");
  a.kind = CaptureArgs::kDev;
  a.name = "mv0";
  EXPECT_EQ(capture_banner(a),
            "listening on dev mv0, link-type EN10MB (Ethernet), snapshot length 262144 bytes\n");
}

// ----------------------------------------------------------------- streams

TEST(CaptureStream, WritesAPcapFileLibpcapReadsBack) {
  TempFile file;
  CaptureArgs args = port_args();
  args.write_file = file.path;
  Lines in;
  in.lines.push_back(frame_line(arp_request()));
  // Truncated by the daemon: 38 of the 98 bytes.
  const Bytes& icmp = icmp_request();
  in.lines.push_back(
      frame_record(Bytes(icmp.begin(), icmp.begin() + 38), 98, 1700000001000999000ULL).dump());
  in.lines.push_back(R"({"type":"stats","overflow":3,"lost":1})");
  in.lines.push_back(R"({"type":"end","reason":"eth0 went away."})");
  in.lines.push_back(frame_line(udp_dns()));  // after the end: never read
  std::ostringstream out;
  std::ostringstream err;
  EXPECT_EQ(run_capture_stream(args, in.source(), out, err, nullptr, TimeZone::kUtc), 0);
  EXPECT_EQ(in.next, 4u);
  EXPECT_EQ(out.str(), "");
  EXPECT_EQ(err.str(),
            "listening on port eth0, link-type EN10MB (Ethernet), snapshot length 262144 bytes\n"
            "2 packets captured\n"
            "3 packets dropped by umacvlan (capture queue full)\n"
            "1 packet dropped by umacvlan (reader too slow)\n"
            "capture ended: eth0 went away.\n");
  int linktype = 0;
  int snaplen = 0;
  const auto packets = read_pcap(file.path, &linktype, &snaplen);
  EXPECT_EQ(linktype, DLT_EN10MB);
  EXPECT_EQ(snaplen, 262144);
  ASSERT_EQ(packets.size(), 2u);
  EXPECT_EQ(packets[0].header.ts.tv_sec, 1700000000);
  EXPECT_EQ(packets[0].header.ts.tv_usec, 123456);
  EXPECT_EQ(packets[0].header.caplen, 42u);
  EXPECT_EQ(packets[0].header.len, 42u);
  EXPECT_EQ(packets[0].data, arp_request());
  EXPECT_EQ(packets[1].header.ts.tv_sec, 1700000001);
  EXPECT_EQ(packets[1].header.ts.tv_usec, 999);
  EXPECT_EQ(packets[1].header.caplen, 38u);
  EXPECT_EQ(packets[1].header.len, 98u);
  EXPECT_EQ(packets[1].data, Bytes(icmp.begin(), icmp.begin() + 38));
}

TEST(CaptureStream, WritesThePcapToTheOutputStreamForDash) {
  CaptureArgs args = port_args("icmp");
  args.write_file = "-";
  Lines in;
  in.lines = {frame_line(arp_request()), frame_line(icmp_request())};
  std::ostringstream out;
  std::ostringstream err;
  EXPECT_EQ(run_capture_stream(args, in.source(), out, err, nullptr, TimeZone::kUtc), 0);
  const std::string pcap = out.str();
  // File header (24 bytes), one record header (16) and the 98 bytes.
  ASSERT_EQ(pcap.size(), 24u + 16u + 98u);
  EXPECT_EQ(pcap.substr(0, 4), std::string("\xd4\xc3\xb2\xa1", 4));  // microseconds, this host
  TempFile file;
  FILE* f = std::fopen(file.path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  std::fwrite(pcap.data(), 1, pcap.size(), f);
  std::fclose(f);
  int linktype = 0;
  int snaplen = 0;
  const auto packets = read_pcap(file.path, &linktype, &snaplen);
  ASSERT_EQ(packets.size(), 1u);
  EXPECT_EQ(packets[0].data, icmp_request());
  EXPECT_EQ(err.str(),
            "listening on port eth0, link-type EN10MB (Ethernet), snapshot length 262144 bytes\n"
            "1 packet captured\n"
            "0 packets dropped by umacvlan (capture queue full)\n"
            "0 packets dropped by umacvlan (reader too slow)\n"
            "1 packet did not match the filter\n"
            "capture ended: the daemon closed the stream\n");
}

// What each filter lets through of: ARP from A, ICMP from B, UDP from A,
// and the same ICMP cut to 30 bytes (the filter sees only those).
std::vector<std::string> filtered(const std::string& filter, CaptureSummary* summary) {
  CaptureArgs args = port_args(filter);
  std::ostringstream out;
  CaptureSession session(args, out, TimeZone::kUtc);
  std::string error;
  EXPECT_TRUE(session.open(&error)) << error;
  const Bytes& icmp = icmp_request();
  for (const std::string& line :
       {frame_line(arp_request()), frame_line(icmp_request()), frame_line(udp_dns()),
        frame_record(Bytes(icmp.begin(), icmp.begin() + 30), 98).dump()}) {
    EXPECT_TRUE(session.consume(line));
  }
  EXPECT_TRUE(session.close(&error)) << error;
  *summary = session.summary();
  std::vector<std::string> lines;
  std::istringstream text(out.str());
  for (std::string l; std::getline(text, l);) lines.push_back(l);
  return lines;
}

TEST(CaptureStream, FiltersWithPcapOfflineFilter) {
  CaptureSummary s;
  auto lines = filtered("arp", &s);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0],
            "22:13:20.123456 from eth0 02:00:00:00:00:01 > ff:ff:ff:ff:ff:ff ARP, Request who-has "
            "10.0.0.2 tell 10.0.0.1, length 42: to mv0 (unicast)");
  EXPECT_EQ(s.captured, 1u);
  EXPECT_EQ(s.filtered_out, 3u);

  // "icmp" reads the IP protocol (byte 23): the cut copy has it.
  lines = filtered("icmp", &s);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0],
            "22:13:20.123456 from eth0 02:00:00:00:00:02 > 02:00:00:00:00:01 IPv4 10.0.0.9 > "
            "10.0.0.1 ICMP echo request, id 7, seq 1, length 98: to mv0 (unicast)");
  EXPECT_EQ(lines[1],
            "22:13:20.123456 from eth0 02:00:00:00:00:02 > 02:00:00:00:00:01 IPv4, truncated, "
            "length 98: to mv0 (unicast)");
  EXPECT_EQ(s.filtered_out, 2u);

  // The ICMP type (byte 34) is past the cut copy's 30 bytes: no match.
  lines = filtered("icmp[icmptype] == icmp-echo", &s);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0],
            "22:13:20.123456 from eth0 02:00:00:00:00:02 > 02:00:00:00:00:01 IPv4 10.0.0.9 > "
            "10.0.0.1 ICMP echo request, id 7, seq 1, length 98: to mv0 (unicast)");
  EXPECT_EQ(s.filtered_out, 3u);

  lines = filtered("ether src 02:00:00:00:00:01", &s);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_NE(lines[0].find(" ARP, "), std::string::npos);
  EXPECT_NE(lines[1].find(" UDP 5353 > 53,"), std::string::npos);
  EXPECT_EQ(s.filtered_out, 2u);

  lines = filtered("", &s);
  EXPECT_EQ(lines.size(), 4u);
  EXPECT_EQ(s.filtered_out, 0u);
}

TEST(CaptureStream, AnInvalidFilterFailsToOpen) {
  std::ostringstream out;
  CaptureSession session(port_args("tcp and"), out);
  std::string error;
  EXPECT_FALSE(session.open(&error));
  EXPECT_EQ(error,
            "Error: the capture filter is wrong: can't parse filter expression: syntax error\n");
  EXPECT_FALSE(session.consume(frame_line(arp_request())));
  Lines in;
  in.lines = {frame_line(arp_request())};
  std::ostringstream err;
  EXPECT_EQ(run_capture_stream(port_args("tcp and"), in.source(), out, err, nullptr), 1);
  EXPECT_EQ(err.str(),
            "Error: the capture filter is wrong: can't parse filter expression: syntax error\n");
  EXPECT_EQ(in.next, 0u);
}

TEST(CaptureStream, StopsAfterCountMatchingFrames) {
  CaptureArgs args = port_args("icmp");
  args.count = 2;
  Lines in;
  for (int i = 0; i < 5; ++i) {
    in.lines.push_back(frame_line(arp_request(), kTime + static_cast<std::uint64_t>(i) * 1000));
    in.lines.push_back(frame_line(icmp_request(), kTime + static_cast<std::uint64_t>(i) * 1000));
  }
  std::ostringstream out;
  std::ostringstream err;
  EXPECT_EQ(run_capture_stream(args, in.source(), out, err, nullptr, TimeZone::kUtc), 0);
  EXPECT_EQ(in.next, 4u);  // arp, icmp, arp, icmp: then no more reading
  EXPECT_EQ(out.str(),
            "22:13:20.123456 from eth0 02:00:00:00:00:02 > 02:00:00:00:00:01 IPv4 10.0.0.9 > "
            "10.0.0.1 ICMP echo request, id 7, seq 1, length 98: to mv0 (unicast)\n"
            "22:13:20.123457 from eth0 02:00:00:00:00:02 > 02:00:00:00:00:01 IPv4 10.0.0.9 > "
            "10.0.0.1 ICMP echo request, id 7, seq 1, length 98: to mv0 (unicast)\n");
  EXPECT_NE(err.str().find("2 packets captured\n"), std::string::npos);
  EXPECT_NE(err.str().find("2 packets did not match the filter\n"), std::string::npos);
  EXPECT_EQ(err.str().find("capture ended"), std::string::npos);
}

TEST(CaptureStream, MalformedLinesAreCountedAndSkipped) {
  Lines in;
  ordered_json odd = frame_record(arp_request(), 42);
  odd["data"] = hex(arp_request()).substr(1);
  ordered_json bad_hex = frame_record(arp_request(), 42);
  bad_hex["data"] = "zz" + hex(arp_request()).substr(2);
  ordered_json too_long = frame_record(arp_request(), 41);
  ordered_json no_from = frame_record(arp_request(), 42);
  no_from.erase("from");
  in.lines = {"not json",
              "",
              "[1,2]",
              R"({"type":5})",
              odd.dump(),
              bad_hex.dump(),
              too_long.dump(),
              no_from.dump(),
              R"({"type":"stats","overflow":"many","lost":0})",
              R"({"type":"end"})",
              R"({"type":"heartbeat","time":1})",  // a later type: ignored, not counted
              frame_line(arp_request())};
  std::ostringstream out;
  std::ostringstream err;
  EXPECT_EQ(run_capture_stream(port_args(), in.source(), out, err, nullptr, TimeZone::kUtc), 0);
  EXPECT_EQ(out.str(),
            "22:13:20.123456 from eth0 02:00:00:00:00:01 > ff:ff:ff:ff:ff:ff ARP, Request who-has "
            "10.0.0.2 tell 10.0.0.1, length 42: to mv0 (unicast)\n");
  EXPECT_EQ(err.str(),
            "listening on port eth0, link-type EN10MB (Ethernet), snapshot length 262144 bytes\n"
            "1 packet captured\n"
            "0 packets dropped by umacvlan (capture queue full)\n"
            "0 packets dropped by umacvlan (reader too slow)\n"
            "10 malformed records skipped\n"
            "capture ended: the daemon closed the stream\n");
}

TEST(CaptureStream, DeviceCaptureLinesCarryTheDirection) {
  CaptureArgs args;
  args.kind = CaptureArgs::kDev;
  args.name = "mv0";
  ordered_json out_frame = frame_record(arp_request(), 42);
  out_frame["from"] = {{"kind", "device"}, {"name", "mv0"}};
  out_frame["to"] =
      ordered_json::array({{{"name", "mv1"}, {"reason", "flood"}, {"queued", false}}});
  out_frame["wire"] = true;
  out_frame["dir"] = "out";
  ordered_json in_frame = frame_record(icmp_request(), 98);
  in_frame["dir"] = "in";
  ordered_json spoofed = frame_record(udp_dns(), 54);
  spoofed["from"] = {{"kind", "device"}, {"name", "mv0"}};
  spoofed["to"] = ordered_json::array();
  spoofed["drop"] = "spoofed";
  spoofed["dir"] = "out";
  Lines in;
  in.lines = {out_frame.dump(), in_frame.dump(), spoofed.dump()};
  std::ostringstream out;
  std::ostringstream err;
  EXPECT_EQ(run_capture_stream(args, in.source(), out, err, nullptr, TimeZone::kUtc), 0);
  EXPECT_EQ(out.str(),
            "22:13:20.123456 out mv0 02:00:00:00:00:01 > ff:ff:ff:ff:ff:ff ARP, Request who-has "
            "10.0.0.2 tell 10.0.0.1, length 42: to mv1 (flood), wire\n"
            "22:13:20.123456 in mv0 from eth0 02:00:00:00:00:02 > 02:00:00:00:00:01 IPv4 10.0.0.9 "
            "> 10.0.0.1 ICMP echo request, id 7, seq 1, length 98: to mv0 (unicast)\n"
            "22:13:20.123456 out mv0 02:00:00:00:00:01 > 02:00:00:00:00:02 IPv4 10.0.0.1 > "
            "10.0.0.2 UDP 5353 > 53, length 54: dropped (spoofed: sent with a source MAC not the "
            "device's own, spoofchk on)\n");
}

TEST(CaptureStream, JsonEchoesEachMatchingRecordAsOneLine) {
  CaptureArgs args = port_args("arp");
  args.json = true;
  Lines in;
  in.lines = {"  " + frame_line(arp_request()) + "  ", frame_line(icmp_request()),
              R"({"type":"stats","overflow":0,"lost":0})"};
  std::ostringstream out;
  std::ostringstream err;
  EXPECT_EQ(run_capture_stream(args, in.source(), out, err, nullptr, TimeZone::kUtc), 0);
  EXPECT_EQ(out.str(), frame_line(arp_request()) + "\n");
}

TEST(CaptureStream, StopIsReadBetweenLines) {
  std::atomic<bool> stop{true};
  Lines in;
  in.lines = {frame_line(arp_request()), frame_line(arp_request())};
  std::ostringstream out;
  std::ostringstream err;
  EXPECT_EQ(run_capture_stream(port_args(), in.source(), out, err, &stop, TimeZone::kUtc), 0);
  EXPECT_EQ(in.next, 0u);
  EXPECT_EQ(out.str(), "");
  // Set while the first line is read (as SIGINT would): that line still
  // counts, no further one is read, and it is not "closed by the daemon".
  stop = false;
  std::size_t reads = 0;
  const LineSource source = [&](std::string* line) {
    ++reads;
    *line = frame_line(arp_request());
    stop = true;
    return true;
  };
  std::ostringstream err2;
  EXPECT_EQ(run_capture_stream(port_args(), source, out, err2, &stop, TimeZone::kUtc), 0);
  EXPECT_EQ(reads, 1u);
  EXPECT_EQ(err2.str(),
            "listening on port eth0, link-type EN10MB (Ethernet), snapshot length 262144 bytes\n"
            "1 packet captured\n"
            "0 packets dropped by umacvlan (capture queue full)\n"
            "0 packets dropped by umacvlan (reader too slow)\n");
}

TEST(CaptureStream, AnUnwritableFileIsAnErrorBeforeAnyLineIsRead) {
  CaptureArgs args = port_args();
  args.write_file = "/nonexistent-umacvlan-dir/x.pcap";
  Lines in;
  in.lines = {frame_line(arp_request())};
  std::ostringstream out;
  std::ostringstream err;
  EXPECT_EQ(run_capture_stream(args, in.source(), out, err, nullptr), 1);
  EXPECT_EQ(err.str(),
            "Error: cannot open \"/nonexistent-umacvlan-dir/x.pcap\" for writing: No such file or "
            "directory\n");
  EXPECT_EQ(in.next, 0u);

  args.write_file = "/dev/full";
  std::ostringstream err2;
  EXPECT_EQ(run_capture_stream(args, in.source(), out, err2, nullptr), 1);
  EXPECT_EQ(err2.str(), "Error: cannot write \"/dev/full\": No space left on device\n");
  EXPECT_EQ(in.next, 0u);
}

TEST(CaptureStream, AClosedOutputEndsTheCaptureWithAnError) {
  Lines in;
  in.lines = {frame_line(arp_request()), frame_line(arp_request())};
  std::ostringstream out;
  out.setstate(std::ios::badbit);
  std::ostringstream err;
  EXPECT_EQ(run_capture_stream(port_args(), in.source(), out, err, nullptr, TimeZone::kUtc), 1);
  EXPECT_EQ(in.next, 1u);
  EXPECT_EQ(err.str(),
            "listening on port eth0, link-type EN10MB (Ethernet), snapshot length 262144 bytes\n"
            "Error: cannot write the capture to the output.\n"
            "0 packets captured\n"
            "0 packets dropped by umacvlan (capture queue full)\n"
            "0 packets dropped by umacvlan (reader too slow)\n");
}

}  // namespace
}  // namespace umacvlan::cli
