#include "cli/capture.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <fmt/format.h>
#include <pcap/pcap.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <type_traits>
#include <utility>

#include "core/frame.h"

namespace umacvlan::cli {
namespace {

using Bytes = std::span<const std::uint8_t>;
using nlohmann::ordered_json;

constexpr std::size_t kIfNameSize = 16;  // IFNAMSIZ, with its NUL
constexpr std::uint64_t kNsPerSecond = 1000000000ULL;
constexpr int kMaxVlanTags = 8;
constexpr int kMaxIpv6Extensions = 8;

// ------------------------------------------------------------- arguments

std::string incomplete() {
  return "Command line is not complete. Try \"umacvlan capture help\".\n";
}

std::string wrong_argument(std::string_view arg, std::string_view why) {
  return fmt::format("Error: argument \"{}\" is wrong: {}\n", arg, why);
}

std::string duplicate(std::string_view what, std::string_view word) {
  return fmt::format("Error: either \"{}\" is duplicate, or \"{}\" is a garbage.\n", what, word);
}

// ip's check_ifname(): 1..15 characters, no '/', no white space.
bool valid_ifname(std::string_view name) {
  if (name.empty() || name.size() >= kIfNameSize) return false;
  for (char c : name) {
    if (c == '/' || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f')
      return false;
  }
  return true;
}

bool parse_positive(std::string_view text, std::uint64_t* out) {
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v == 0) return false;
  *out = v;
  return true;
}

// libpcap, loaded by the first capture that needs it (dlopen): every other
// command starts without it and the eight libraries it pulls in (dbus,
// systemd, gcrypt, ...), whose loading and relocation cost each `umacvlan
// link add` about 3 ms, a third of what a whole `ip link add` takes here.
struct Libpcap {
  decltype(&::pcap_open_dead) open_dead = nullptr;
  decltype(&::pcap_close) close = nullptr;
  decltype(&::pcap_compile) compile = nullptr;
  decltype(&::pcap_freecode) freecode = nullptr;
  decltype(&::pcap_geterr) geterr = nullptr;
  decltype(&::pcap_offline_filter) offline_filter = nullptr;
  decltype(&::pcap_dump_open) dump_open = nullptr;
  decltype(&::pcap_dump_fopen) dump_fopen = nullptr;
  decltype(&::pcap_dump) dump = nullptr;
  decltype(&::pcap_dump_flush) dump_flush = nullptr;
  decltype(&::pcap_dump_close) dump_close = nullptr;
};

// The loaded library, or nullptr with the reason in *error.
const Libpcap* libpcap(std::string* error) {
  static Libpcap lib;
  static std::string failure;
  static const bool loaded = [] {
    void* h = ::dlopen("libpcap.so.0.8", RTLD_NOW | RTLD_LOCAL);
    if (h == nullptr) {
      const char* why = ::dlerror();
      failure = why != nullptr ? why : "not found";
      return false;
    }
    bool ok = true;
    auto find = [&](auto& fn, const char* name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(::dlsym(h, name));
      if (fn == nullptr && ok) {
        failure = std::string("no ") + name + " in it";
        ok = false;
      }
    };
    find(lib.open_dead, "pcap_open_dead");
    find(lib.close, "pcap_close");
    find(lib.compile, "pcap_compile");
    find(lib.freecode, "pcap_freecode");
    find(lib.geterr, "pcap_geterr");
    find(lib.offline_filter, "pcap_offline_filter");
    find(lib.dump_open, "pcap_dump_open");
    find(lib.dump_fopen, "pcap_dump_fopen");
    find(lib.dump, "pcap_dump");
    find(lib.dump_flush, "pcap_dump_flush");
    find(lib.dump_close, "pcap_dump_close");
    return ok;
  }();
  if (!loaded) {
    *error = fmt::format("Error: capture needs libpcap (Debian's libpcap0.8): {}.\n", failure);
    return nullptr;
  }
  return &lib;
}

// Compiles expression for Ethernet frames; the program (when wanted) is the
// caller's to freecode(). false with pcap's message in *error.
bool compile_filter(const Libpcap& lib, pcap_t* p, const std::string& expression, bpf_program* prog,
                    std::string* error) {
  if (lib.compile(p, prog, expression.c_str(), 1, PCAP_NETMASK_UNKNOWN) != 0) {
    *error = fmt::format("Error: the capture filter is wrong: {}\n", lib.geterr(p));
    return false;
  }
  return true;
}

// --------------------------------------------------------------- reading

bool get_u64(const ordered_json& j, const char* key, std::uint64_t* out) {
  const auto it = j.find(key);
  if (it == j.end()) return false;
  if (it->is_number_unsigned()) {
    *out = it->get<std::uint64_t>();
    return true;
  }
  if (it->is_number_integer() && it->get<std::int64_t>() >= 0) {
    *out = static_cast<std::uint64_t>(it->get<std::int64_t>());
    return true;
  }
  return false;
}

bool get_string(const ordered_json& j, const char* key, std::string* out) {
  const auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return false;
  *out = it->get<std::string>();
  return true;
}

// An optional key: absent is fine, present must be a boolean.
bool get_optional_bool(const ordered_json& j, const char* key, bool* out) {
  const auto it = j.find(key);
  if (it == j.end()) return true;
  if (!it->is_boolean()) return false;
  *out = it->get<bool>();
  return true;
}

// ------------------------------------------------------------- decoding

bool has(Bytes b, std::size_t offset, std::size_t n) {
  return offset <= b.size() && n <= b.size() - offset;
}
std::uint16_t u16(Bytes b, std::size_t offset) {
  return static_cast<std::uint16_t>((b[offset] << 8) | b[offset + 1]);
}
Bytes tail(Bytes b, std::size_t offset) {
  return offset <= b.size() ? b.subspan(offset) : Bytes{};
}

std::string mac_at(Bytes b, std::size_t o) {
  return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[o], b[o + 1], b[o + 2],
                     b[o + 3], b[o + 4], b[o + 5]);
}
std::string ipv4_at(Bytes b, std::size_t o) {
  return fmt::format("{}.{}.{}.{}", b[o], b[o + 1], b[o + 2], b[o + 3]);
}
std::string ipv6_at(Bytes b, std::size_t o) {
  char text[INET6_ADDRSTRLEN] = {};
  if (inet_ntop(AF_INET6, b.data() + o, text, sizeof text) == nullptr) return "?";
  return text;
}

std::string describe_arp(Bytes p) {
  if (p.size() < 8) return "ARP, truncated";
  const std::uint16_t htype = u16(p, 0);
  const std::uint16_t ptype = u16(p, 2);
  const std::uint16_t op = u16(p, 6);
  if (htype != 1 || ptype != 0x0800 || p[4] != 6 || p[5] != 4) {
    return fmt::format("ARP, hardware type {}, protocol 0x{:04x}, op {}", htype, ptype, op);
  }
  if (p.size() < 28) return "ARP, truncated";
  switch (op) {
    case 1:
      return fmt::format("ARP, Request who-has {} tell {}", ipv4_at(p, 24), ipv4_at(p, 14));
    case 2:
      return fmt::format("ARP, Reply {} is-at {}", ipv4_at(p, 14), mac_at(p, 8));
    default:
      return fmt::format("ARP, op {} {} > {}", op, ipv4_at(p, 14), ipv4_at(p, 24));
  }
}

std::string tcp_flags(std::uint8_t f) {
  // tcpdump's letters and order; '.' is ACK.
  static constexpr std::array<std::pair<std::uint8_t, char>, 8> kFlags{{{0x01, 'F'},
                                                                        {0x02, 'S'},
                                                                        {0x04, 'R'},
                                                                        {0x08, 'P'},
                                                                        {0x10, '.'},
                                                                        {0x20, 'U'},
                                                                        {0x40, 'E'},
                                                                        {0x80, 'W'}}};
  std::string s;
  for (const auto& [bit, letter] : kFlags) {
    if ((f & bit) != 0) s += letter;
  }
  return s.empty() ? "none" : s;
}

std::string_view dhcp_message(std::uint8_t type) {
  static constexpr std::array<std::string_view, 9> kNames{
      "", "Discover", "Offer", "Request", "Decline", "ACK", "NAK", "Release", "Inform"};
  return type < kNames.size() ? kNames[type] : std::string_view{};
}

// BOOTP/DHCP (RFC 2131): the message type is option 53 after the magic
// cookie at offset 236.
std::string describe_dhcp(Bytes p) {
  if (p.empty()) return "DHCP, truncated";
  const std::string_view op = p[0] == 1 ? "request" : p[0] == 2 ? "reply" : "op ?";
  constexpr std::size_t kOptions = 240;
  if (has(p, 236, 4) && p[236] == 0x63 && p[237] == 0x82 && p[238] == 0x53 && p[239] == 0x63) {
    std::size_t o = kOptions;
    while (o < p.size() && p[o] != 255) {
      if (p[o] == 0) {
        ++o;
        continue;
      }
      if (!has(p, o, 2) || !has(p, o + 2, p[o + 1])) break;
      if (p[o] == 53 && p[o + 1] >= 1) {
        const std::string_view name = dhcp_message(p[o + 2]);
        if (!name.empty()) return fmt::format("DHCP {}", name);
        return fmt::format("DHCP message type {}", p[o + 2]);
      }
      o += 2u + p[o + 1];
    }
  }
  return fmt::format("BOOTP {}", op);
}

std::string describe_dhcpv6(Bytes p) {
  static constexpr std::array<std::string_view, 14> kNames{"",
                                                           "Solicit",
                                                           "Advertise",
                                                           "Request",
                                                           "Confirm",
                                                           "Renew",
                                                           "Rebind",
                                                           "Reply",
                                                           "Release",
                                                           "Decline",
                                                           "Reconfigure",
                                                           "Information-request",
                                                           "Relay-forward",
                                                           "Relay-reply"};
  if (p.empty()) return "DHCPv6, truncated";
  if (p[0] != 0 && p[0] < kNames.size()) return fmt::format("DHCPv6 {}", kNames[p[0]]);
  return fmt::format("DHCPv6 message type {}", p[0]);
}

std::string describe_icmp(Bytes p) {
  if (p.size() < 2) return "ICMP, truncated";
  const std::uint8_t type = p[0];
  const std::uint8_t code = p[1];
  if (type == 0 || type == 8) {
    const std::string_view what = type == 8 ? "echo request" : "echo reply";
    if (p.size() < 8) return fmt::format("ICMP {}, truncated", what);
    return fmt::format("ICMP {}, id {}, seq {}", what, u16(p, 4), u16(p, 6));
  }
  switch (type) {
    case 3:
      return fmt::format("ICMP destination unreachable, code {}", code);
    case 5:
      return fmt::format("ICMP redirect, code {}", code);
    case 11:
      return fmt::format("ICMP time exceeded, code {}", code);
    default:
      return fmt::format("ICMP type {} code {}", type, code);
  }
}

std::string describe_icmpv6(Bytes p) {
  if (p.size() < 2) return "ICMPv6, truncated";
  const std::uint8_t type = p[0];
  const std::uint8_t code = p[1];
  switch (type) {
    case 1:
      return fmt::format("ICMPv6 destination unreachable, code {}", code);
    case 2:
      return "ICMPv6 packet too big";
    case 3:
      return fmt::format("ICMPv6 time exceeded, code {}", code);
    case 128:
    case 129: {
      const std::string_view what = type == 128 ? "echo request" : "echo reply";
      if (p.size() < 8) return fmt::format("ICMPv6 {}, truncated", what);
      return fmt::format("ICMPv6 {}, id {}, seq {}", what, u16(p, 4), u16(p, 6));
    }
    case 130:
      return "ICMPv6 multicast listener query";
    case 131:
      return "ICMPv6 multicast listener report";
    case 132:
      return "ICMPv6 multicast listener done";
    case 133:
      return "ICMPv6 router solicitation";
    case 134:
      return "ICMPv6 router advertisement";
    case 135:
      if (p.size() < 24) return "ICMPv6 neighbor solicitation, truncated";
      return fmt::format("ICMPv6 neighbor solicitation, who has {}", ipv6_at(p, 8));
    case 136:
      if (p.size() < 24) return "ICMPv6 neighbor advertisement, truncated";
      return fmt::format("ICMPv6 neighbor advertisement, tgt is {}", ipv6_at(p, 8));
    case 137:
      return "ICMPv6 redirect";
    case 143:
      return "ICMPv6 multicast listener report v2";
    default:
      return fmt::format("ICMPv6 type {} code {}", type, code);
  }
}

std::string describe_udp(Bytes p, bool ipv6) {
  if (p.size() < 4) return "UDP, truncated";
  const std::uint16_t sport = u16(p, 0);
  const std::uint16_t dport = u16(p, 2);
  std::string s = fmt::format("UDP {} > {}", sport, dport);
  if (p.size() < 8) return s + ", truncated";
  const Bytes payload = p.subspan(8);
  if (!ipv6 && (sport == 67 || sport == 68) && (dport == 67 || dport == 68)) {
    s += " " + describe_dhcp(payload);
  } else if (ipv6 && (sport == 546 || sport == 547) && (dport == 546 || dport == 547)) {
    s += " " + describe_dhcpv6(payload);
  }
  return s;
}

std::string describe_tcp(Bytes p) {
  if (p.size() < 4) return "TCP, truncated";
  std::string s = fmt::format("TCP {} > {}", u16(p, 0), u16(p, 2));
  if (p.size() < 14) return s + ", truncated";
  return fmt::format("{} [{}]", s, tcp_flags(p[13]));
}

// The transport part after an IPv4 or IPv6 header.
std::string describe_transport(std::uint8_t proto, Bytes p, bool ipv6) {
  switch (proto) {
    case 1:
      if (!ipv6) return describe_icmp(p);
      break;
    case 2:
      if (!ipv6) return "IGMP";
      break;
    case 6:
      return describe_tcp(p);
    case 17:
      return describe_udp(p, ipv6);
    case 58:
      if (ipv6) return describe_icmpv6(p);
      break;
    default:
      break;
  }
  return fmt::format("proto {}", proto);
}

std::string describe_ipv4(Bytes p) {
  if (p.size() < 20) return "IPv4, truncated";
  const unsigned version = p[0] >> 4;
  const std::size_t ihl = static_cast<std::size_t>(p[0] & 0x0f) * 4;
  if (version != 4) return fmt::format("IPv4, bad version {}", version);
  if (ihl < 20) return fmt::format("IPv4, bad header length {}", ihl);
  std::string s = fmt::format("IPv4 {} > {}", ipv4_at(p, 12), ipv4_at(p, 16));
  if (p.size() < ihl) return s + ", truncated";
  const std::uint8_t proto = p[9];
  const unsigned fragment_offset = (u16(p, 6) & 0x1fffu) * 8;
  if (fragment_offset != 0)
    return fmt::format("{} fragment offset {}, proto {}", s, fragment_offset, proto);
  // The payload ends where the header says (Ethernet pads short frames),
  // or at the captured end.
  std::size_t end = p.size();
  const std::size_t total = u16(p, 2);
  if (total >= ihl && total < end) end = total;
  return s + " " + describe_transport(proto, p.subspan(ihl, end - ihl), false);
}

std::string describe_ipv6(Bytes p) {
  if (p.size() < 40) return "IPv6, truncated";
  const unsigned version = p[0] >> 4;
  if (version != 6) return fmt::format("IPv6, bad version {}", version);
  std::string s = fmt::format("IPv6 {} > {}", ipv6_at(p, 8), ipv6_at(p, 24));
  std::size_t end = p.size();
  const std::size_t payload = u16(p, 4);
  if (payload != 0 && 40 + payload < end) end = 40 + payload;
  std::uint8_t next = p[6];
  std::size_t o = 40;
  for (int i = 0; i < kMaxIpv6Extensions; ++i) {
    if (next == 0 || next == 43 || next == 60) {  // hop-by-hop, routing, destination
      if (!has(p, o, 2)) return s + ", truncated";
      const std::size_t length = (static_cast<std::size_t>(p[o + 1]) + 1) * 8;
      next = p[o];
      if (!has(p, o, length)) return s + ", truncated";
      o += length;
    } else if (next == 44) {  // fragment
      if (!has(p, o, 8)) return s + ", truncated";
      const unsigned offset = u16(p, o + 2) & 0xfff8u;
      next = p[o];
      o += 8;
      if (offset != 0) return fmt::format("{} fragment offset {}, next header {}", s, offset, next);
    } else {
      break;
    }
  }
  if (next == 59) return s + " no next header";
  const Bytes l4 = o < end ? p.subspan(o, end - o) : Bytes{};
  return s + " " + describe_transport(next, l4, true);
}

std::string describe_ethertype(std::uint16_t type, Bytes p) {
  switch (type) {
    case 0x0800:
      return describe_ipv4(p);
    case 0x0806:
      return describe_arp(p);
    case 0x86dd:
      return describe_ipv6(p);
    case 0x8035:
      return "ethertype 0x8035 (RARP)";
    case 0x8808:
      return "ethertype 0x8808 (MAC control, PAUSE)";
    case 0x888e:
      return "ethertype 0x888e (EAPOL)";
    case 0x88cc:
      return "ethertype 0x88cc (LLDP)";
    default:
      break;
  }
  if (type <= 1500) return fmt::format("802.3 LLC, length field {}", type);
  return fmt::format("ethertype 0x{:04x}", type);
}

bool is_vlan_tag(std::uint16_t type) {
  return type == 0x8100 || type == 0x88a8 || type == 0x9100;
}

std::string_view reason_words(const CaptureTarget& t) {
  if (t.reason == "unicast") return "unicast";
  if (t.reason == "flood") return "flood";
  if (t.reason == "source_copy") return "source list";
  if (t.reason == "reflect") return "reflected";
  return t.reason;
}

// pcap's FILE* for "-w -": writes through to the session's ostream.
ssize_t ostream_write(void* cookie, const char* buf, size_t size) {
  auto* os = static_cast<std::ostream*>(cookie);
  os->write(buf, static_cast<std::streamsize>(size));
  if (!*os) {
    errno = EIO;
    return 0;
  }
  return static_cast<ssize_t>(size);
}

FILE* open_ostream_file(std::ostream* os) {
  cookie_io_functions_t io{};
  io.write = ostream_write;
  return fopencookie(os, "w", io);
}

std::string plural(std::uint64_t n, std::string_view one, std::string_view many) {
  return fmt::format("{} {}", n, n == 1 ? one : many);
}

}  // namespace

// ------------------------------------------------------------- arguments

bool parse_capture_args(const std::vector<std::string>& words, CaptureArgs* out,
                        std::string* error) {
  CaptureArgs a;
  bool have_kind = false;
  bool have_file = false;
  bool have_count = false;
  std::size_t i = 0;
  for (; i < words.size(); ++i) {
    const std::string& w = words[i];
    const bool more = i + 1 < words.size();
    if ((w == "dev" || w == "port") && !have_kind) {
      if (!more) {
        *error = incomplete();
        return false;
      }
      const std::string& name = words[++i];
      if (!valid_ifname(name)) {
        *error = wrong_argument(name, fmt::format("\"{}\" not a valid ifname", w));
        return false;
      }
      a.kind = w == "dev" ? CaptureArgs::kDev : CaptureArgs::kPort;
      a.name = name;
      have_kind = true;
    } else if (w == "dev") {
      // "port" here starts the filter (pcap's "port 53"); "dev" never can.
      *error = duplicate(w, more ? words[i + 1] : w);
      return false;
    } else if (w == "-w") {
      if (!more) {
        *error = incomplete();
        return false;
      }
      if (have_file) {
        *error = duplicate(w, words[i + 1]);
        return false;
      }
      a.write_file = words[++i];
      if (a.write_file.empty()) {
        *error = wrong_argument(a.write_file, "FILE must not be empty");
        return false;
      }
      have_file = true;
    } else if (w == "-c") {
      if (!more) {
        *error = incomplete();
        return false;
      }
      if (have_count) {
        *error = duplicate(w, words[i + 1]);
        return false;
      }
      if (!parse_positive(words[i + 1], &a.count)) {
        *error = wrong_argument(words[i + 1], "COUNT must be a positive integer");
        return false;
      }
      ++i;
      have_count = true;
    } else if (w.size() > 1 && w[0] == '-') {
      *error = wrong_argument(w, "the options of \"capture\" are -w FILE and -c COUNT");
      return false;
    } else {
      break;
    }
  }
  if (!have_kind) {
    *error = "Error: \"dev\" or \"port\" is required.\n";
    return false;
  }
  for (std::size_t j = i; j < words.size(); ++j) {
    if (j > i) a.filter += ' ';
    a.filter += words[j];
  }
  if (!a.filter.empty()) {
    const Libpcap* lib = libpcap(error);
    if (lib == nullptr) return false;
    pcap_t* p = lib->open_dead(DLT_EN10MB, static_cast<int>(kSnaplen));
    if (p == nullptr) {
      *error = "Error: cannot start libpcap to compile the capture filter.\n";
      return false;
    }
    bpf_program prog{};
    const bool ok = compile_filter(*lib, p, a.filter, &prog, error);
    if (ok) lib->freecode(&prog);
    lib->close(p);
    if (!ok) return false;
  }
  a.json = out->json;  // the global -j is main's, set before or after
  *out = std::move(a);
  return true;
}

std::string capture_usage() {
  return "Usage: umacvlan capture { dev NAME | port LOWER } [ -w FILE ] [ -c COUNT ] [ FILTER ]\n"
         "where  NAME   := a macvlan device of the daemon (what it sends: out, receives: in)\n"
         "       LOWER  := a lower device with a macvlan port (every frame the port handles)\n"
         "       FILE   := a pcap file to write instead of text (\"-\": standard output)\n"
         "       COUNT  := stop after COUNT frames that matched FILTER\n"
         "       FILTER := a pcap-filter(7) expression, as tcpdump takes it\n";
}

// --------------------------------------------------------------- records

bool decode_hex(std::string_view hex, std::vector<std::uint8_t>* out) {
  std::vector<std::uint8_t> bytes(hex.size() / 2);
  if (!core::decode_hex(hex, bytes)) return false;
  *out = std::move(bytes);
  return true;
}

bool parse_frame_record(const ordered_json& j, FrameRecord* out) {
  if (!j.is_object()) return false;
  FrameRecord f;
  std::uint64_t len = 0;
  std::string hex;
  if (!get_u64(j, "time", &f.time_ns) || !get_u64(j, "len", &len) || len > UINT32_MAX ||
      !get_string(j, "data", &hex) || !decode_hex(hex, &f.data) || f.data.size() > len) {
    return false;
  }
  f.len = static_cast<std::uint32_t>(len);
  const auto from = j.find("from");
  if (from == j.end() || !from->is_object() || !get_string(*from, "kind", &f.from_kind) ||
      !get_string(*from, "name", &f.from_name)) {
    return false;
  }
  if (const auto to = j.find("to"); to != j.end()) {
    if (!to->is_array()) return false;
    for (const ordered_json& t : *to) {
      CaptureTarget target;
      if (!t.is_object() || !get_string(t, "name", &target.name) ||
          !get_string(t, "reason", &target.reason) ||
          !get_optional_bool(t, "queued", &target.queued)) {
        return false;
      }
      f.to.push_back(std::move(target));
    }
  }
  if (j.contains("more") && !get_u64(j, "more", &f.more)) return false;
  if (!get_optional_bool(j, "host", &f.host) || !get_optional_bool(j, "wire", &f.wire))
    return false;
  if (j.contains("drop") && !get_string(j, "drop", &f.drop)) return false;
  if (j.contains("dir") && !get_string(j, "dir", &f.dir)) return false;
  *out = std::move(f);
  return true;
}

// ------------------------------------------------------------------- text

std::string format_time(std::uint64_t time_ns, TimeZone tz) {
  const std::time_t seconds = static_cast<std::time_t>(time_ns / kNsPerSecond);
  const std::uint64_t micros = (time_ns % kNsPerSecond) / 1000;
  std::tm tm{};
  const bool ok = tz == TimeZone::kUtc ? gmtime_r(&seconds, &tm) != nullptr
                                       : localtime_r(&seconds, &tm) != nullptr;
  if (!ok) return fmt::format("{}.{:06}", seconds, micros);
  return fmt::format("{:02}:{:02}:{:02}.{:06}", tm.tm_hour, tm.tm_min, tm.tm_sec, micros);
}

std::string describe_frame(std::span<const std::uint8_t> data, std::uint32_t len) {
  if (data.size() < core::kEthHeaderSize) {
    return fmt::format("truncated Ethernet header ({} bytes), length {}", data.size(), len);
  }
  std::string s = fmt::format("{} > {}", mac_at(data, 6), mac_at(data, 0));
  std::uint16_t type = u16(data, 12);
  std::size_t o = core::kEthHeaderSize;
  for (int tags = 0; is_vlan_tag(type) && tags < kMaxVlanTags; ++tags) {
    if (!has(data, o, 4)) return fmt::format("{} vlan, truncated, length {}", s, len);
    s += fmt::format(" vlan {}", u16(data, o) & 0x0fff);
    type = u16(data, o + 2);
    o += 4;
  }
  return fmt::format("{} {}, length {}", s, describe_ethertype(type, tail(data, o)), len);
}

std::string drop_phrase(std::string_view reason) {
  using core::DropReason;
  for (std::uint8_t i = 0; i < static_cast<std::uint8_t>(DropReason::kCount); ++i) {
    const auto r = static_cast<DropReason>(i);
    if (core::to_string(r) != reason) continue;
    switch (r) {
      case DropReason::kNone:
        return "none";
      case DropReason::kRunt:
        return "runt: shorter than an Ethernet header or its VLAN tags";
      case DropReason::kOversize:
        return "oversize: longer than the largest frame the engine takes";
      case DropReason::kNoDst:
        return "nodst: taken by a source-mode device with nodst";
      case DropReason::kPassthruDown:
        return "passthru_down: for a passthru device that is down";
      case DropReason::kBcQueueFull:
        return "bc_queue_full: the broadcast queue was full";
      case DropReason::kNoSubscriber:
        return "no_subscriber: a multicast group no device joined";
      case DropReason::kUnknownSender:
        return "unknown_sender: sent by a device the port does not have";
      case DropReason::kPause:
        return "pause: PAUSE frames are never forwarded";
      case DropReason::kSpoofed:
        return "spoofed: sent with a source MAC not the device's own, spoofchk on";
      case DropReason::kBadVnet:
        return "bad_vnet_header: a virtio-net header the kernel would refuse";
      case DropReason::kTooBig:
        return "too_big: longer than the receiving device's MTU allows";
      case DropReason::kIoError:
        return "io_error: the write to the device or the lower failed";
      case DropReason::kRingFull:
        return "lower_ring_full: the lower's receive ring was full, the kernel dropped frames";
      case DropReason::kCount:
        break;
    }
  }
  return std::string(reason);
}

std::string describe_decision(const FrameRecord& frame) {
  std::vector<std::string> parts;
  for (const CaptureTarget& t : frame.to) {
    parts.push_back(fmt::format("{} ({}{})", t.name, reason_words(t), t.queued ? ", queued" : ""));
  }
  if (frame.more != 0) parts.push_back(fmt::format("+{} more", frame.more));
  if (frame.host) parts.push_back("stack");
  if (frame.wire) parts.push_back("wire");
  const bool dropped = !frame.drop.empty() && frame.drop != "none";
  std::string s;
  if (!parts.empty()) {
    s = fmt::format("to {}", fmt::join(parts, ", "));
  } else if (!dropped) {
    s = "to nobody";
  }
  if (dropped) {
    if (!s.empty()) s += "; ";
    s += fmt::format("dropped ({})", drop_phrase(frame.drop));
  }
  return s;
}

std::string format_frame_line(const FrameRecord& frame, std::string_view watched, TimeZone tz) {
  std::string where;
  if (frame.dir == "out") {
    where = fmt::format("out {}", watched.empty() ? frame.from_name : watched);
  } else if (frame.dir == "in") {
    where = watched.empty() ? fmt::format("in from {}", frame.from_name)
                            : fmt::format("in {} from {}", watched, frame.from_name);
  } else {
    where = fmt::format("from {}", frame.from_name);
  }
  return fmt::format("{} {} {}: {}", format_time(frame.time_ns, tz), where,
                     describe_frame(frame.data, frame.len), describe_decision(frame));
}

std::string format_capture_summary(const CaptureSummary& s) {
  std::string text = plural(s.captured, "packet captured\n", "packets captured\n");
  text += plural(s.overflow, "packet dropped by umacvlan (capture queue full)\n",
                 "packets dropped by umacvlan (capture queue full)\n");
  text += plural(s.lost, "packet dropped by umacvlan (reader too slow)\n",
                 "packets dropped by umacvlan (reader too slow)\n");
  if (s.filtered_out != 0) {
    text += plural(s.filtered_out, "packet did not match the filter\n",
                   "packets did not match the filter\n");
  }
  if (s.malformed != 0) {
    text += plural(s.malformed, "malformed record skipped\n", "malformed records skipped\n");
  }
  if (!s.end_reason.empty()) text += fmt::format("capture ended: {}\n", s.end_reason);
  if (s.closed) text += "capture ended: the daemon closed the stream\n";
  return text;
}

std::string capture_banner(const CaptureArgs& args) {
  return fmt::format("listening on {} {}, link-type EN10MB (Ethernet), snapshot length {} bytes\n",
                     args.kind == CaptureArgs::kDev ? "dev" : "port", args.name, kSnaplen);
}

// ---------------------------------------------------------------- session

struct CaptureSession::Pcap {
  explicit Pcap(const Libpcap& l) : lib(l) {}
  const Libpcap& lib;
  pcap_t* dead = nullptr;
  bpf_program program{};
  bool filtering = false;
  pcap_dumper_t* dumper = nullptr;

  Pcap(const Pcap&) = delete;
  Pcap& operator=(const Pcap&) = delete;
  ~Pcap() {
    if (dumper != nullptr) lib.dump_close(dumper);
    if (filtering) lib.freecode(&program);
    if (dead != nullptr) lib.close(dead);
  }
};

CaptureSession::CaptureSession(CaptureArgs args, std::ostream& out, TimeZone tz)
    : args_(std::move(args)), out_(out), tz_(tz) {}

CaptureSession::~CaptureSession() = default;

bool CaptureSession::open(std::string* error) {
  const Libpcap* lib = libpcap(error);
  if (lib == nullptr) return false;
  auto pcap = std::make_unique<Pcap>(*lib);
  pcap->dead = lib->open_dead(DLT_EN10MB, static_cast<int>(kSnaplen));
  if (pcap->dead == nullptr) {
    *error = "Error: cannot start libpcap for the capture.\n";
    return false;
  }
  if (!args_.filter.empty()) {
    if (!compile_filter(*lib, pcap->dead, args_.filter, &pcap->program, error)) return false;
    pcap->filtering = true;
  }
  if (!args_.write_file.empty()) {
    if (args_.write_file == "-") {
      FILE* f = open_ostream_file(&out_);
      if (f != nullptr) pcap->dumper = lib->dump_fopen(pcap->dead, f);
      if (pcap->dumper == nullptr) {
        if (f != nullptr) std::fclose(f);
        *error = "Error: cannot write the capture to the standard output.\n";
        return false;
      }
    } else {
      errno = 0;
      pcap->dumper = lib->dump_open(pcap->dead, args_.write_file.c_str());
      if (pcap->dumper == nullptr) {
        const int e = errno;
        *error = fmt::format("Error: cannot open \"{}\" for writing: {}\n", args_.write_file,
                             e != 0 ? std::strerror(e) : lib->geterr(pcap->dead));
        return false;
      }
    }
    // The file header now: a full disk or a closed pipe shows before the
    // first frame.
    if (lib->dump_flush(pcap->dumper) != 0 || !out_.flush()) {
      *error = fmt::format("Error: cannot write \"{}\": {}\n", args_.write_file,
                           std::strerror(errno != 0 ? errno : EIO));
      return false;
    }
  }
  pcap_ = std::move(pcap);
  return true;
}

bool CaptureSession::emit(const FrameRecord& frame, const ordered_json& record) {
  if (pcap_->dumper != nullptr) {
    pcap_pkthdr header{};
    header.ts.tv_sec = static_cast<decltype(header.ts.tv_sec)>(frame.time_ns / kNsPerSecond);
    header.ts.tv_usec =
        static_cast<decltype(header.ts.tv_usec)>((frame.time_ns % kNsPerSecond) / 1000);
    header.caplen = static_cast<bpf_u_int32>(frame.data.size());
    header.len = frame.len;
    pcap_->lib.dump(reinterpret_cast<u_char*>(pcap_->dumper), &header, frame.data.data());
    errno = 0;
    if (pcap_->lib.dump_flush(pcap_->dumper) != 0 || !out_.flush()) {
      error_ = fmt::format("Error: cannot write \"{}\": {}\n", args_.write_file,
                           std::strerror(errno != 0 ? errno : EIO));
      return false;
    }
    return true;
  }
  if (args_.json) {
    out_ << record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
  } else {
    out_ << format_frame_line(frame, args_.kind == CaptureArgs::kDev ? args_.name : "", tz_)
         << '\n';
  }
  if (!out_.flush()) {
    error_ = "Error: cannot write the capture to the output.\n";
    return false;
  }
  return true;
}

bool CaptureSession::consume(const std::string& line) {
  if (done_ || pcap_ == nullptr) return false;
  const ordered_json j = ordered_json::parse(line, nullptr, false);
  std::string type;
  if (j.is_discarded() || !j.is_object() || !get_string(j, "type", &type)) {
    ++summary_.malformed;
    return true;
  }
  if (type == "frame") {
    FrameRecord frame;
    if (!parse_frame_record(j, &frame)) {
      ++summary_.malformed;
      return true;
    }
    if (frame.data.size() > kSnaplen) frame.data.resize(kSnaplen);
    if (pcap_->filtering) {
      pcap_pkthdr header{};
      header.caplen = static_cast<bpf_u_int32>(frame.data.size());
      header.len = frame.len;
      static const std::uint8_t kNothing = 0;
      const u_char* bytes = frame.data.empty() ? &kNothing : frame.data.data();
      if (pcap_->lib.offline_filter(&pcap_->program, &header, bytes) == 0) {
        ++summary_.filtered_out;
        return true;
      }
    }
    if (!emit(frame, j)) {
      done_ = true;
      return false;
    }
    ++summary_.captured;
    if (args_.count != 0 && summary_.captured >= args_.count) done_ = true;
    return !done_;
  }
  if (type == "stats") {
    std::uint64_t overflow = 0;
    std::uint64_t lost = 0;
    if (!get_u64(j, "overflow", &overflow) || !get_u64(j, "lost", &lost)) {
      ++summary_.malformed;
      return true;
    }
    summary_.overflow = overflow;
    summary_.lost = lost;
    return true;
  }
  if (type == "end") {
    std::string reason;
    if (!get_string(j, "reason", &reason)) {
      ++summary_.malformed;
      return true;
    }
    summary_.end_reason = reason.empty() ? "the daemon ended the capture" : reason;
    done_ = true;
    return false;
  }
  return true;  // a type of a later daemon
}

bool CaptureSession::close(std::string* error) {
  done_ = true;
  if (pcap_ == nullptr || pcap_->dumper == nullptr) return true;
  errno = 0;
  const bool flushed = pcap_->lib.dump_flush(pcap_->dumper) == 0;
  const int e = errno;
  pcap_->lib.dump_close(pcap_->dumper);  // fclose(); its result is not returned by libpcap
  pcap_->dumper = nullptr;
  if (!flushed || !out_.flush()) {
    *error = fmt::format("Error: cannot write \"{}\": {}\n", args_.write_file,
                         std::strerror(e != 0 ? e : EIO));
    return false;
  }
  return true;
}

int run_capture_stream(const CaptureArgs& args, const LineSource& source, std::ostream& out,
                       std::ostream& err, const std::atomic<bool>* stop, TimeZone tz) {
  CaptureSession session(args, out, tz);
  std::string error;
  if (!session.open(&error)) {
    err << error << std::flush;
    return 1;
  }
  err << capture_banner(args) << std::flush;
  const auto stopped = [stop] { return stop != nullptr && stop->load(std::memory_order_relaxed); };
  bool end_of_stream = false;
  std::string line;
  while (!stopped()) {
    if (!source(&line)) {
      end_of_stream = true;
      break;
    }
    if (!session.consume(line)) break;
  }
  int rc = 0;
  if (!session.error().empty()) {
    err << session.error();
    rc = 1;
  }
  if (!session.close(&error) && rc == 0) {
    err << error;
    rc = 1;
  }
  if (end_of_stream && !stopped()) session.summary().closed = true;
  err << format_capture_summary(session.summary()) << std::flush;
  return rc;
}

}  // namespace umacvlan::cli
