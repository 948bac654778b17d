#include "core/macnat.h"

#include <algorithm>
#include <array>
#include <cstddef>

#include "core/wire.h"

namespace umacvlan::core {
namespace {

void put_mac(std::uint8_t* p, MacAddress mac) {
  std::copy(mac.octets().begin(), mac.octets().end(), p);
}

// The size of the fixed part of an NDP message before its options, 0 for
// any other ICMPv6 type.
std::size_t ndp_fixed_size(std::uint8_t type) {
  switch (type) {
    case 133:  // Router Solicitation
      return 8;
    case 134:  // Router Advertisement
      return 16;
    case 135:  // Neighbor Solicitation
    case 136:  // Neighbor Advertisement
      return 24;
    case 137:  // Redirect
      return 40;
    default:
      return 0;
  }
}

std::uint16_t fold(std::uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint16_t>(sum);
}

// One's complement sum of bytes that start at an even (odd_start false) or
// odd distance from where the checksum's data starts.
std::uint16_t sum_bytes(const std::uint8_t* p, std::size_t n, bool odd_start) {
  std::uint32_t sum = 0;
  for (std::size_t i = 0; i < n; ++i) {
    sum += (i % 2 == 0) ? static_cast<std::uint32_t>(p[i]) << 8 : p[i];
  }
  const std::uint16_t s = fold(sum);
  return odd_start ? static_cast<std::uint16_t>(s << 8 | s >> 8) : s;
}

// RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), for n bytes changing from `before`
// to `after`.
std::uint16_t checksum_update(std::uint16_t hc, const std::uint8_t* before,
                              const std::uint8_t* after, std::size_t n, bool odd_start) {
  const std::uint16_t m = sum_bytes(before, n, odd_start);
  const std::uint16_t m2 = sum_bytes(after, n, odd_start);
  const std::uint32_t sum = static_cast<std::uint16_t>(~hc) + static_cast<std::uint16_t>(~m) + m2;
  return static_cast<std::uint16_t>(~fold(sum));
}

// Writes mac over the 6 bytes at p, keeping the checksum at csum (covering
// data that starts at csum_start) valid unless it is null.
void replace_mac(std::uint8_t* p, MacAddress mac, std::uint8_t* csum,
                 const std::uint8_t* csum_start) {
  std::array<std::uint8_t, MacAddress::kSize> before{};
  std::copy(p, p + MacAddress::kSize, before.begin());
  put_mac(p, mac);
  if (csum == nullptr) return;
  const bool odd = (p - csum_start) % 2 != 0;
  wire::store_be16(
      csum, checksum_update(wire::load_be16(csum), before.data(), p, MacAddress::kSize, odd));
}

// Whether the NDP options in [at, end) are well formed (RFC 4861 4.6: no
// zero length, none running past the message).
bool ndp_options_ok(const std::uint8_t* p, std::size_t at, std::size_t end) {
  while (at < end) {
    if (end - at < 2) return false;
    const std::size_t len = static_cast<std::size_t>(p[at + 1]) * 8;
    if (len == 0 || len > end - at) return false;
    at += len;
  }
  return true;
}

std::optional<IpAddress> ownable(IpAddress a) {
  if (!a.is_learnable()) return std::nullopt;
  return a;
}

}  // namespace

std::string_view to_string(MacNatStatus s) {
  switch (s) {
    case MacNatStatus::kOk:
      return "ok";
    case MacNatStatus::kMalformed:
      return "malformed";
  }
  return "unknown";
}

EgressResult rewrite_egress(std::span<std::uint8_t> frame, MacAddress lower_mac,
                            bool csum_partial) {
  EgressResult r;
  std::uint8_t* p = frame.data();
  if (frame.size() >= 12) r.original = MacAddress::from_bytes(p + 6);
  const auto layout = parse_layout(frame);
  if (!layout) {
    r.status = MacNatStatus::kMalformed;
    return r;
  }
  const MacAddress src = r.original;

  // Validate everything first: a malformed frame stays untouched.
  enum class Inner { kNone, kArp, kNdp, kDhcp } inner = Inner::kNone;
  std::size_t ndp_options = 0;
  if (layout->kind == L3Kind::kArp) {
    inner = Inner::kArp;
  } else if (layout->kind == L3Kind::kIpv6 && layout->protocol == wire::kProtoIcmpv6) {
    const std::size_t len = layout->end - layout->l4;
    if (len < 4) {
      r.status = MacNatStatus::kMalformed;
      return r;
    }
    const std::size_t fixed = ndp_fixed_size(p[layout->l4]);
    if (fixed != 0) {
      if (len < fixed || !ndp_options_ok(p, layout->l4 + fixed, layout->end)) {
        r.status = MacNatStatus::kMalformed;
        return r;
      }
      inner = Inner::kNdp;
      ndp_options = layout->l4 + fixed;
    }
  } else if (layout->kind == L3Kind::kIpv4 && layout->has_l4 &&
             layout->protocol == wire::kProtoUdp) {
    const std::size_t room = layout->end - layout->l4;
    const std::uint8_t* udp = p + layout->l4;
    if (room < 8 || wire::load_be16(udp + 4) < 8 || wire::load_be16(udp + 4) > room) {
      r.status = MacNatStatus::kMalformed;
      return r;
    }
    const std::size_t bootp_size = wire::load_be16(udp + 4) - 8u;
    if (wire::load_be16(udp) == 68 && wire::load_be16(udp + 2) == 67 &&
        bootp_size >= wire::kBootpFixed && udp[8] == 1) {
      inner = Inner::kDhcp;
    }
  }

  if (src != lower_mac) {
    put_mac(p + 6, lower_mac);
    r.rewritten |= kRewroteEthSource;
  }
  switch (inner) {
    case Inner::kArp: {
      std::uint8_t* sha = p + layout->l3 + wire::kArpSenderHw;
      if (src != lower_mac && MacAddress::from_bytes(sha) == src) {
        put_mac(sha, lower_mac);
        r.rewritten |= kRewroteArpSender;
      }
      break;
    }
    case Inner::kNdp: {
      std::uint8_t* icmp = p + layout->l4;
      std::uint8_t* csum = csum_partial ? nullptr : icmp + 2;
      for (std::size_t at = ndp_options; at < layout->end; at += p[at + 1] * 8u) {
        const bool lladdr =
            p[at] == wire::kNdpOptSourceLladdr || p[at] == wire::kNdpOptTargetLladdr;
        if (!lladdr || src == lower_mac || MacAddress::from_bytes(p + at + 2) != src) continue;
        replace_mac(p + at + 2, lower_mac, csum, icmp);
        r.rewritten |= kRewroteNdpOption;
        if (csum != nullptr) r.rewritten |= kRewroteChecksum;
      }
      break;
    }
    case Inner::kDhcp: {
      std::uint8_t* udp = p + layout->l4;
      std::uint8_t* flags = udp + 8 + 10;
      const std::uint16_t before = wire::load_be16(flags);
      if (before & wire::kBootpBroadcast) break;
      wire::store_be16(flags, static_cast<std::uint16_t>(before | wire::kBootpBroadcast));
      r.rewritten |= kRewroteDhcpFlags;
      // Over IPv4 a zero UDP checksum means "none".
      const std::uint16_t hc = wire::load_be16(udp + 6);
      if (csum_partial || hc == 0) break;
      const std::array<std::uint8_t, 2> old_bytes = {static_cast<std::uint8_t>(before >> 8),
                                                     static_cast<std::uint8_t>(before)};
      const std::uint16_t updated = checksum_update(hc, old_bytes.data(), flags, 2, false);
      wire::store_be16(udp + 6, updated == 0 ? 0xffff : updated);  // 0 would mean "none"
      r.rewritten |= kRewroteChecksum;
      break;
    }
    case Inner::kNone:
      break;
  }
  return r;
}

std::optional<IpAddress> ingress_destination(std::span<const std::uint8_t> frame) {
  const auto layout = parse_layout(frame);
  if (!layout) return std::nullopt;
  const std::uint8_t* l3 = frame.data() + layout->l3;
  switch (layout->kind) {
    case L3Kind::kArp: {
      const std::uint16_t op = wire::load_be16(l3 + wire::kArpOp);
      if (op != wire::kArpReply && op != wire::kArpRequest) return std::nullopt;
      return ownable(IpAddress::v4_from_bytes(l3 + wire::kArpTargetIp));
    }
    case L3Kind::kIpv4:
      return ownable(IpAddress::v4_from_bytes(l3 + 16));
    case L3Kind::kIpv6:
      return ownable(IpAddress::v6_from_bytes(l3 + 24));
    case L3Kind::kOther:
      break;
  }
  return std::nullopt;
}

std::optional<IpAddress> egress_source(std::span<const std::uint8_t> frame) {
  const auto layout = parse_layout(frame);
  if (!layout) return std::nullopt;
  const std::uint8_t* l3 = frame.data() + layout->l3;
  switch (layout->kind) {
    case L3Kind::kArp:
      return ownable(IpAddress::v4_from_bytes(l3 + wire::kArpSenderIp));
    case L3Kind::kIpv4:
      return ownable(IpAddress::v4_from_bytes(l3 + 12));
    case L3Kind::kIpv6:
      return ownable(IpAddress::v6_from_bytes(l3 + 8));
    case L3Kind::kOther:
      break;
  }
  return std::nullopt;
}

IngressResult rewrite_ingress(std::span<std::uint8_t> frame, MacAddress device_mac,
                              bool /*csum_partial: nothing rewritten here is checksummed*/) {
  IngressResult r;
  std::uint8_t* p = frame.data();
  if (frame.size() >= 6) r.original = MacAddress::from_bytes(p);
  const auto layout = parse_layout(frame);
  if (!layout) {
    r.status = MacNatStatus::kMalformed;
    return r;
  }
  if (r.original != device_mac) {
    put_mac(p, device_mac);
    r.rewritten |= kRewroteEthDest;
  }
  if (layout->kind == L3Kind::kArp &&
      wire::load_be16(p + layout->l3 + wire::kArpOp) == wire::kArpReply) {
    std::uint8_t* tha = p + layout->l3 + wire::kArpTargetHw;
    if (MacAddress::from_bytes(tha) != device_mac) {
      put_mac(tha, device_mac);
      r.rewritten |= kRewroteArpTarget;
    }
  }
  return r;
}

std::optional<IpAddress> arp_request_target(std::span<const std::uint8_t> frame) {
  const auto layout = parse_layout(frame);
  if (!layout || layout->kind != L3Kind::kArp) return std::nullopt;
  const std::uint8_t* arp = frame.data() + layout->l3;
  if (wire::load_be16(arp + wire::kArpOp) != wire::kArpRequest) return std::nullopt;
  return ownable(IpAddress::v4_from_bytes(arp + wire::kArpTargetIp));
}

}  // namespace umacvlan::core
