#include "core/ip_table.h"

#include <algorithm>
#include <limits>

#include "core/wire.h"

namespace umacvlan::core {
namespace {

std::optional<std::array<std::uint8_t, 4>> parse_dotted_quad(std::string_view s) {
  std::array<std::uint8_t, 4> out{};
  std::size_t i = 0;
  for (std::size_t part = 0; part < 4; ++part) {
    if (part > 0) {
      if (i >= s.size() || s[i] != '.') return std::nullopt;
      ++i;
    }
    const std::size_t start = i;
    unsigned v = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9' && i - start < 3) {
      v = v * 10 + static_cast<unsigned>(s[i] - '0');
      ++i;
    }
    const std::size_t digits = i - start;
    if (digits == 0 || v > 255 || (digits > 1 && s[start] == '0')) return std::nullopt;
    out[part] = static_cast<std::uint8_t>(v);
  }
  if (i != s.size()) return std::nullopt;
  return out;
}

std::optional<IpAddress> parse_v6(std::string_view s) {
  std::array<std::uint16_t, 8> head{};  // groups before "::"
  std::array<std::uint16_t, 8> tail{};  // groups after it
  std::size_t nhead = 0;
  std::size_t ntail = 0;
  bool gap = false;
  std::size_t i = 0;
  if (s.starts_with("::")) {
    gap = true;
    i = 2;
  }
  while (i < s.size()) {
    std::size_t j = i;
    while (j < s.size() && s[j] != ':') ++j;
    const std::string_view token = s.substr(i, j - i);
    if (token.empty()) return std::nullopt;
    auto& groups = gap ? tail : head;
    std::size_t& n = gap ? ntail : nhead;
    if (token.find('.') != std::string_view::npos) {
      // A dotted IPv4 tail: the last two groups.
      const auto quad = parse_dotted_quad(token);
      if (!quad || j != s.size() || n + 2 > groups.size()) return std::nullopt;
      groups[n++] = static_cast<std::uint16_t>((*quad)[0] << 8 | (*quad)[1]);
      groups[n++] = static_cast<std::uint16_t>((*quad)[2] << 8 | (*quad)[3]);
      break;
    }
    if (token.size() > 4 || n >= groups.size()) return std::nullopt;
    unsigned v = 0;
    for (char c : token) {
      const int h = hex_digit_value(c);
      if (h < 0) return std::nullopt;
      v = v * 16 + static_cast<unsigned>(h);
    }
    groups[n++] = static_cast<std::uint16_t>(v);
    if (j == s.size()) break;
    if (j + 1 < s.size() && s[j + 1] == ':') {
      if (gap) return std::nullopt;  // a second "::"
      gap = true;
      i = j + 2;
    } else {
      i = j + 1;
      if (i == s.size()) return std::nullopt;  // a trailing single ':'
    }
  }
  const std::size_t total = nhead + ntail;
  if (gap ? total > 7 : total != 8) return std::nullopt;
  std::array<std::uint16_t, 8> groups{};
  for (std::size_t k = 0; k < nhead; ++k) groups[k] = head[k];
  for (std::size_t k = 0; k < ntail; ++k) groups[8 - ntail + k] = tail[k];
  std::array<std::uint8_t, 16> b{};
  for (std::size_t k = 0; k < 8; ++k) {
    b[2 * k] = static_cast<std::uint8_t>(groups[k] >> 8);
    b[2 * k + 1] = static_cast<std::uint8_t>(groups[k]);
  }
  return IpAddress::v6(b);
}

std::string dotted_quad(const std::uint8_t* p) {
  std::string s;
  for (int i = 0; i < 4; ++i) {
    if (i > 0) s += '.';
    s += std::to_string(p[i]);
  }
  return s;
}

bool ipv4_header_checksum_ok(const std::uint8_t* p, std::size_t len) {
  std::uint32_t sum = 0;
  for (std::size_t i = 0; i + 1 < len; i += 2) sum += wire::load_be16(p + i);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return sum == 0xffff;
}

// Looks for DHCP option 53 (message type) in options[0, size), honouring
// pad and end. overload receives option 52's value when present.
std::optional<std::uint8_t> dhcp_message_type(const std::uint8_t* p, std::size_t size,
                                              std::uint8_t* overload) {
  std::optional<std::uint8_t> type;
  std::size_t i = 0;
  while (i < size) {
    const std::uint8_t code = p[i];
    if (code == 0) {
      ++i;
      continue;
    }
    if (code == 255) break;
    if (i + 1 >= size) break;
    const std::size_t len = p[i + 1];
    if (i + 2 + len > size) break;
    if (code == 53 && len == 1 && !type) type = p[i + 2];
    if (code == 52 && len == 1 && overload != nullptr) *overload = p[i + 2];
    i += 2 + len;
  }
  return type;
}

}  // namespace

// ---------------------------------------------------------------- IpAddress

IpAddress IpAddress::v4_from_bytes(const std::uint8_t* p) {
  return v4({p[0], p[1], p[2], p[3]});
}

IpAddress IpAddress::v6_from_bytes(const std::uint8_t* p) {
  std::array<std::uint8_t, kV6Size> b{};
  std::copy(p, p + kV6Size, b.begin());
  return v6(b);
}

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  if (text.find(':') != std::string_view::npos) return parse_v6(text);
  const auto quad = parse_dotted_quad(text);
  if (!quad) return std::nullopt;
  return v4(*quad);
}

std::string IpAddress::to_string() const {
  if (is_v4()) return dotted_quad(bytes_.data());
  if (is_v4_mapped()) return "::ffff:" + dotted_quad(bytes_.data() + 12);
  std::array<std::uint16_t, 8> g{};
  for (std::size_t k = 0; k < 8; ++k) {
    g[k] = static_cast<std::uint16_t>(bytes_[2 * k] << 8 | bytes_[2 * k + 1]);
  }
  // RFC 5952 4.2: the longest run of two or more zero groups, the first on a tie.
  std::size_t best_at = 8;
  std::size_t best_len = 1;
  for (std::size_t k = 0; k < 8;) {
    if (g[k] != 0) {
      ++k;
      continue;
    }
    std::size_t e = k;
    while (e < 8 && g[e] == 0) ++e;
    if (e - k > best_len) {
      best_at = k;
      best_len = e - k;
    }
    k = e;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  for (std::size_t k = 0; k < 8; ++k) {
    if (k == best_at) {
      s += "::";
      k += best_len - 1;
      continue;
    }
    if (!s.empty() && s.back() != ':') s += ':';
    bool started = false;
    for (int shift = 12; shift >= 0; shift -= 4) {
      const unsigned nibble = (g[k] >> shift) & 0xf;
      if (nibble != 0 || started || shift == 0) {
        s += kHex[nibble];
        started = true;
      }
    }
  }
  return s;
}

bool IpAddress::is_unspecified() const {
  return std::all_of(bytes_.begin(), bytes_.end(), [](std::uint8_t b) { return b == 0; });
}

bool IpAddress::is_loopback() const {
  if (is_v4()) return bytes_[0] == 127;
  for (std::size_t i = 0; i < 15; ++i) {
    if (bytes_[i] != 0) return false;
  }
  return bytes_[15] == 1;
}

bool IpAddress::is_multicast() const {
  return is_v4() ? (bytes_[0] & 0xf0) == 0xe0 : bytes_[0] == 0xff;
}

bool IpAddress::is_broadcast() const {
  return is_v4() && bytes_[0] == 0xff && bytes_[1] == 0xff && bytes_[2] == 0xff &&
         bytes_[3] == 0xff;
}

bool IpAddress::is_link_local() const {
  if (is_v4()) return bytes_[0] == 169 && bytes_[1] == 254;
  return bytes_[0] == 0xfe && (bytes_[1] & 0xc0) == 0x80;
}

bool IpAddress::is_v4_mapped() const {
  if (is_v4()) return false;
  for (std::size_t i = 0; i < 10; ++i) {
    if (bytes_[i] != 0) return false;
  }
  return bytes_[10] == 0xff && bytes_[11] == 0xff;
}

bool IpAddress::is_learnable() const {
  if (is_unspecified() || is_loopback() || is_multicast()) return false;
  if (is_v4()) return bytes_[0] != 0 && !is_broadcast();  // 0/8 is "this network"
  return !is_v4_mapped();
}

std::size_t IpAddress::hash() const {
  std::uint64_t h = 1469598103934665603ULL;  // FNV-1a
  h = (h ^ static_cast<std::uint8_t>(family_)) * 1099511628211ULL;
  for (std::uint8_t b : bytes_) h = (h ^ b) * 1099511628211ULL;
  return static_cast<std::size_t>(h);
}

// ---------------------------------------------------------------- layout

std::optional<PacketLayout> parse_layout(std::span<const std::uint8_t> frame) {
  const std::uint8_t* p = frame.data();
  const std::size_t n = frame.size();
  if (n < 14) return std::nullopt;
  PacketLayout out;
  std::size_t at = 12;
  std::uint16_t type = wire::load_be16(p + at);
  while (out.vlan_tags < 2 && (type == kEthertypeVlan || type == kEthertypeQinQ)) {
    at += 4;
    if (n < at + 2) return std::nullopt;
    type = wire::load_be16(p + at);
    ++out.vlan_tags;
  }
  out.ethertype = type;
  out.l3 = at + 2;
  out.end = n;
  const std::size_t avail = n - out.l3;
  switch (type) {
    case kEthertypeArp: {
      if (avail < 8) return std::nullopt;
      const std::uint8_t* a = p + out.l3;
      if (wire::load_be16(a) != 1 || wire::load_be16(a + 2) != kEthertypeIpv4 || a[4] != 6 ||
          a[5] != 4)
        return out;
      if (avail < wire::kArpSize) return std::nullopt;
      out.kind = L3Kind::kArp;
      out.end = out.l3 + wire::kArpSize;
      return out;
    }
    case kEthertypeIpv4: {
      if (avail < wire::kIpv4MinHeader) return std::nullopt;
      const std::uint8_t* ip = p + out.l3;
      const std::size_t ihl = static_cast<std::size_t>(ip[0] & 0x0f) * 4;
      const std::size_t total = wire::load_be16(ip + 2);
      if ((ip[0] >> 4) != 4 || ihl < wire::kIpv4MinHeader || total < ihl || total > avail) {
        return std::nullopt;
      }
      out.kind = L3Kind::kIpv4;
      out.end = out.l3 + total;
      out.protocol = ip[9];
      const bool fragment = (wire::load_be16(ip + 6) & 0x3fff) != 0;  // MF or an offset
      out.has_l4 = !fragment;
      out.l4 = out.l3 + ihl;
      return out;
    }
    case kEthertypeIpv6: {
      if (avail < wire::kIpv6Header) return std::nullopt;
      const std::uint8_t* ip = p + out.l3;
      const std::size_t payload = wire::load_be16(ip + 4);
      if ((ip[0] >> 4) != 6 || wire::kIpv6Header + payload > avail) return std::nullopt;
      out.kind = L3Kind::kIpv6;
      out.end = out.l3 + wire::kIpv6Header + payload;
      out.protocol = ip[6];
      out.has_l4 = true;
      out.l4 = out.l3 + wire::kIpv6Header;
      return out;
    }
    default:
      return out;
  }
}

// ---------------------------------------------------------------- names

std::string_view to_string(LearnedFrom how) {
  switch (how) {
    case LearnedFrom::kArp:
      return "arp";
    case LearnedFrom::kNdp:
      return "ndp";
    case LearnedFrom::kDhcp:
      return "dhcp";
    case LearnedFrom::kIp:
      return "ip";
  }
  return "unknown";
}

std::string_view to_string(IpChangeKind kind) {
  switch (kind) {
    case IpChangeKind::kAdded:
      return "added";
    case IpChangeKind::kMoved:
      return "moved";
    case IpChangeKind::kRefreshed:
      return "refreshed";
    case IpChangeKind::kEvicted:
      return "evicted";
  }
  return "unknown";
}

bool LearnResult::routes_changed() const {
  return std::any_of(begin(), end(),
                     [](const IpChange& c) { return c.kind != IpChangeKind::kRefreshed; });
}

// ---------------------------------------------------------------- IpTable

IpTable::IpTable(std::size_t max_entries, std::uint64_t ttl_ms)
    : max_entries_(std::max<std::size_t>(max_entries, 1)), ttl_ms_(ttl_ms) {}

LearnResult IpTable::learn_from_device(DeviceId dev, MacAddress dev_mac,
                                       std::span<const std::uint8_t> frame, std::uint64_t now_ms) {
  LearnResult out;
  if (dev == kNoDevice) return out;
  const auto layout = parse_layout(frame);
  if (!layout) return out;
  const std::uint8_t* p = frame.data();
  const bool from_dev = MacAddress::from_bytes(p + 6) == dev_mac;
  switch (layout->kind) {
    case L3Kind::kArp: {
      const std::uint8_t* a = p + layout->l3;
      if (MacAddress::from_bytes(a + 8) != dev_mac) break;
      learn_into(IpAddress::v4_from_bytes(a + 14), dev, dev_mac, LearnedFrom::kArp, now_ms, &out);
      break;
    }
    case L3Kind::kIpv4: {
      const std::uint8_t* ip = p + layout->l3;
      if (!from_dev || !ipv4_header_checksum_ok(ip, layout->l4 - layout->l3)) break;
      learn_into(IpAddress::v4_from_bytes(ip + 12), dev, dev_mac, LearnedFrom::kIp, now_ms, &out);
      break;
    }
    case L3Kind::kIpv6: {
      if (!from_dev) break;
      const std::uint8_t* ip = p + layout->l3;
      const IpAddress src = IpAddress::v6_from_bytes(ip + 8);
      const bool icmp = layout->protocol == wire::kProtoIcmpv6 && layout->end - layout->l4 >= 4;
      const std::uint8_t icmp_type = icmp ? p[layout->l4] : 0;
      const bool ndp = icmp && icmp_type >= 133 && icmp_type <= 137;
      learn_into(src, dev, dev_mac, ndp ? LearnedFrom::kNdp : LearnedFrom::kIp, now_ms, &out);
      // RFC 4861 7.1.2: a valid NA has hop limit 255, code 0, at least 24 bytes.
      if (icmp_type != wire::kNdpNeighborAdvert || ip[7] != 255 || p[layout->l4 + 1] != 0 ||
          layout->end - layout->l4 < wire::kNdpNaSize) {
        break;
      }
      const std::uint8_t* na = p + layout->l4;
      bool speaks_for_dev = true;
      for (std::size_t o = layout->l4 + wire::kNdpNaSize; o + 2 <= layout->end;) {
        const std::size_t len = static_cast<std::size_t>(p[o + 1]) * 8;
        if (len == 0 || o + len > layout->end) {
          speaks_for_dev = false;  // malformed options: the receivers drop it
          break;
        }
        if (p[o] == wire::kNdpOptTargetLladdr && MacAddress::from_bytes(p + o + 2) != dev_mac) {
          speaks_for_dev = false;
        }
        o += len;
      }
      const IpAddress target = IpAddress::v6_from_bytes(na + 8);
      if (speaks_for_dev && target != src) {
        learn_into(target, dev, dev_mac, LearnedFrom::kNdp, now_ms, &out);
      }
      break;
    }
    case L3Kind::kOther:
      break;
  }
  return out;
}

LearnResult IpTable::learn_dhcp_ack(
    std::span<const std::uint8_t> frame,
    const std::function<std::optional<DeviceId>(MacAddress)>& device_of, std::uint64_t now_ms) {
  LearnResult out;
  const auto layout = parse_layout(frame);
  if (!layout || layout->kind != L3Kind::kIpv4 || !layout->has_l4 ||
      layout->protocol != wire::kProtoUdp || layout->end - layout->l4 < 8) {
    return out;
  }
  const std::uint8_t* udp = frame.data() + layout->l4;
  const std::size_t udp_len = wire::load_be16(udp + 4);
  if (wire::load_be16(udp) != 67 || wire::load_be16(udp + 2) != 68 || udp_len < 8 ||
      udp_len > layout->end - layout->l4) {
    return out;
  }
  const std::uint8_t* bootp = udp + 8;
  const std::size_t size = udp_len - 8;
  if (size < wire::kDhcpOptions || bootp[0] != 2 || bootp[1] != 1 || bootp[2] != 6) return out;
  if (bootp[236] != 99 || bootp[237] != 130 || bootp[238] != 83 || bootp[239] != 99) return out;
  std::uint8_t overload = 0;
  auto type = dhcp_message_type(bootp + wire::kDhcpOptions, size - wire::kDhcpOptions, &overload);
  // RFC 2132 9.3: option overload continues the options in file (1), sname (2) or both (3).
  if (!type && (overload & 1)) type = dhcp_message_type(bootp + 108, 128, nullptr);
  if (!type && (overload & 2)) type = dhcp_message_type(bootp + 44, 64, nullptr);
  if (type != 5) return out;  // DHCPACK
  const MacAddress chaddr = MacAddress::from_bytes(bootp + 28);
  if (!device_of) return out;
  const std::optional<DeviceId> dev = device_of(chaddr);
  if (!dev || *dev == kNoDevice) return out;
  learn_into(IpAddress::v4_from_bytes(bootp + 16), *dev, chaddr, LearnedFrom::kDhcp, now_ms, &out);
  return out;
}

LearnResult IpTable::learn(IpAddress address, DeviceId dev, MacAddress dev_mac, LearnedFrom how,
                           std::uint64_t now_ms) {
  LearnResult out;
  if (dev != kNoDevice) learn_into(address, dev, dev_mac, how, now_ms, &out);
  return out;
}

void IpTable::learn_into(const IpAddress& address, DeviceId dev, MacAddress dev_mac,
                         LearnedFrom how, std::uint64_t now_ms, LearnResult* out) {
  if (!address.is_learnable() || out->count + 2 > LearnResult::kCapacity) return;
  auto it = by_address_.find(address);
  if (it != by_address_.end()) {
    IpEntry& e = it->second;
    IpChange c;
    if (e.device == dev) {
      c.kind = IpChangeKind::kRefreshed;
      set_age(address, e.last_seen_ms, std::max(e.last_seen_ms, now_ms));
      e.last_seen_ms = std::max(e.last_seen_ms, now_ms);
    } else {
      c.kind = IpChangeKind::kMoved;
      c.previous_device = e.device;
      set_age(address, e.last_seen_ms, now_ms);
      e.last_seen_ms = now_ms;
      e.device = dev;
    }
    e.mac = dev_mac;
    e.learned_from = how;
    c.entry = e;
    out->changes[out->count++] = c;
    return;
  }
  if (by_address_.size() >= max_entries_) {
    const IpAddress oldest = by_age_.begin()->second;
    IpChange evicted;
    evicted.kind = IpChangeKind::kEvicted;
    evicted.entry = erase(oldest);
    out->changes[out->count++] = evicted;
  }
  IpEntry e;
  e.address = address;
  e.device = dev;
  e.mac = dev_mac;
  e.last_seen_ms = now_ms;
  e.learned_from = how;
  e.link_local = address.is_link_local();
  by_address_.emplace(address, e);
  by_age_.emplace(now_ms, address);
  IpChange added;
  added.kind = IpChangeKind::kAdded;
  added.entry = e;
  out->changes[out->count++] = added;
}

void IpTable::set_age(const IpAddress& address, std::uint64_t old_ms, std::uint64_t new_ms) {
  if (old_ms == new_ms) return;
  // Moving the node keeps a refresh free of allocation.
  auto node = by_age_.extract(AgeKey{old_ms, address});
  node.value().first = new_ms;
  by_age_.insert(std::move(node));
}

IpEntry IpTable::erase(const IpAddress& address) {
  auto it = by_address_.find(address);
  IpEntry e = it->second;
  by_age_.erase(AgeKey{e.last_seen_ms, address});
  by_address_.erase(it);
  return e;
}

std::optional<IpEntry> IpTable::lookup(const IpAddress& address) const {
  auto it = by_address_.find(address);
  if (it == by_address_.end()) return std::nullopt;
  return it->second;
}

std::vector<IpAddress> IpTable::addresses_of(DeviceId dev) const {
  std::vector<IpAddress> out;
  for (const auto& [address, e] : by_address_) {
    if (e.device == dev) out.push_back(address);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<IpEntry> IpTable::entries() const {
  std::vector<IpEntry> out;
  out.reserve(by_address_.size());
  for (const auto& [address, e] : by_address_) out.push_back(e);
  std::sort(out.begin(), out.end(),
            [](const IpEntry& a, const IpEntry& b) { return a.address < b.address; });
  return out;
}

std::optional<IpEntry> IpTable::forget(const IpAddress& address) {
  if (!by_address_.contains(address)) return std::nullopt;
  return erase(address);
}

std::vector<IpEntry> IpTable::forget_device(DeviceId dev) {
  std::vector<IpEntry> out;
  for (const IpAddress& address : addresses_of(dev)) out.push_back(erase(address));
  return out;
}

std::vector<IpEntry> IpTable::expire(std::uint64_t now_ms) {
  std::vector<IpEntry> out;
  if (ttl_ms_ == 0) return out;
  while (!by_age_.empty()) {
    const std::uint64_t seen = by_age_.begin()->first;
    if (now_ms < seen || now_ms - seen < ttl_ms_) break;
    const IpAddress oldest = by_age_.begin()->second;
    out.push_back(erase(oldest));
  }
  return out;
}

std::optional<std::uint64_t> IpTable::next_expiry_ms() const {
  if (ttl_ms_ == 0 || by_age_.empty()) return std::nullopt;
  const std::uint64_t seen = by_age_.begin()->first;
  constexpr std::uint64_t kNever = std::numeric_limits<std::uint64_t>::max();
  return seen > kNever - ttl_ms_ ? kNever : seen + ttl_ms_;
}

}  // namespace umacvlan::core
