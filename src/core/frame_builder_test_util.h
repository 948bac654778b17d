// Frame builders shared by the core's tests (ip_table_test.cc,
// macnat_test.cc): Ethernet frames with optional VLAN tags, ARP, IPv4 and
// IPv6 headers, NDP bodies and options, assembled byte by byte in network
// order. Every checksum a builder writes (the IPv4 header checksum) is
// computed in full over the bytes written, never incrementally; sum16,
// fold and pseudo_sum are the pieces for callers checksumming an L4
// message themselves. Nothing here checks what it builds: a frame may be
// made as wrong as a test needs.
#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

#include "core/ip_table.h"
#include "core/mac_address.h"

namespace umacvlan::core::test_frames {

using Bytes = std::vector<std::uint8_t>;
using Tpids = std::vector<std::uint16_t>;  // one VLAN tag per TPID, outermost first

inline const MacAddress kDevMac = MacAddress::from_u64(0x02000000d001ULL);
inline const MacAddress kPeerMac = MacAddress::from_u64(0x0200000000eeULL);

// The IPv4 flags and fragment offset field with only Don't Fragment set.
inline constexpr std::uint16_t kDontFragment = 0x4000;

// Parses an address, failing the test (and returning the default) if it is not one.
inline IpAddress ip(const char* text) {
  const auto a = IpAddress::parse(text);
  EXPECT_TRUE(a.has_value()) << text;
  return a.value_or(IpAddress());
}

inline void put16(Bytes& b, std::uint16_t v) {
  b.push_back(static_cast<std::uint8_t>(v >> 8));
  b.push_back(static_cast<std::uint8_t>(v));
}
inline void put_mac(Bytes& b, MacAddress m) {
  b.insert(b.end(), m.octets().begin(), m.octets().end());
}
inline void put_ip(Bytes& b, const IpAddress& a) {
  b.insert(b.end(), a.bytes().begin(), a.bytes().end());
}
inline void append(Bytes& b, const Bytes& more) {
  b.insert(b.end(), more.begin(), more.end());
}

// One's complement sum of 16-bit big-endian words (an odd last byte padded
// with zero) added to `sum`, not folded.
inline std::uint32_t sum16(const std::uint8_t* p, std::size_t n, std::uint32_t sum = 0) {
  for (std::size_t i = 0; i < n; i += 2) {
    sum += static_cast<std::uint32_t>(p[i] << 8) | (i + 1 < n ? p[i + 1] : 0);
  }
  return sum;
}
inline std::uint32_t sum16(const Bytes& b, std::uint32_t sum = 0) {
  return sum16(b.data(), b.size(), sum);
}
inline std::uint16_t fold(std::uint32_t s) {
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return static_cast<std::uint16_t>(s);
}

// The sum (not folded, not complemented) of the IPv4 or IPv6 pseudo-header
// for an L4 message of `len` bytes of protocol `proto`.
inline std::uint32_t pseudo_sum(const IpAddress& src, const IpAddress& dst, std::uint8_t proto,
                                std::size_t len) {
  Bytes p;
  put_ip(p, src);
  put_ip(p, dst);
  if (src.is_v4()) {
    put16(p, proto);
    put16(p, static_cast<std::uint16_t>(len));
  } else {
    put16(p, static_cast<std::uint16_t>(len >> 16));
    put16(p, static_cast<std::uint16_t>(len));
    put16(p, 0);
    put16(p, proto);
  }
  return sum16(p);
}

// Ethernet header, one 4-byte tag per tpid (VLAN 100, 101, ...), then payload.
inline Bytes eth(MacAddress dst, MacAddress src, std::uint16_t type, const Bytes& payload,
                 const Tpids& tpids = {}) {
  Bytes f;
  put_mac(f, dst);
  put_mac(f, src);
  for (std::size_t i = 0; i < tpids.size(); ++i) {
    put16(f, tpids[i]);
    put16(f, static_cast<std::uint16_t>(100 + i));
  }
  put16(f, type);
  append(f, payload);
  return f;
}

// ARP for Ethernet and IPv4.
inline Bytes arp(std::uint16_t op, MacAddress sha, const IpAddress& spa, MacAddress tha,
                 const IpAddress& tpa) {
  Bytes a;
  put16(a, 1);
  put16(a, 0x0800);
  a.push_back(6);
  a.push_back(4);
  put16(a, op);
  put_mac(a, sha);
  put_ip(a, spa);
  put_mac(a, tha);
  put_ip(a, tpa);
  return a;
}

// IPv4 header without options (id 0x1234, TTL 64, the given flags and
// fragment offset field), its checksum computed, then l4.
inline Bytes ipv4(const IpAddress& src, const IpAddress& dst, std::uint8_t proto, const Bytes& l4,
                  std::uint16_t flags_fragment = 0) {
  Bytes h = {0x45, 0, 0, 0, 0x12, 0x34, 0, 0, 64, proto, 0, 0};
  h[2] = static_cast<std::uint8_t>((20 + l4.size()) >> 8);
  h[3] = static_cast<std::uint8_t>(20 + l4.size());
  h[6] = static_cast<std::uint8_t>(flags_fragment >> 8);
  h[7] = static_cast<std::uint8_t>(flags_fragment);
  put_ip(h, src);
  put_ip(h, dst);
  const std::uint16_t c = static_cast<std::uint16_t>(~fold(sum16(h)));
  h[10] = static_cast<std::uint8_t>(c >> 8);
  h[11] = static_cast<std::uint8_t>(c);
  append(h, l4);
  return h;
}

// IPv6 header (no extension headers) with next header nh, then payload.
inline Bytes ipv6(const IpAddress& src, const IpAddress& dst, std::uint8_t nh, const Bytes& payload,
                  std::uint8_t hop_limit = 255) {
  Bytes h = {0x60, 0, 0, 0};
  put16(h, static_cast<std::uint16_t>(payload.size()));
  h.push_back(nh);
  h.push_back(hop_limit);
  put_ip(h, src);
  put_ip(h, dst);
  append(h, payload);
  return h;
}

// NDP source (1) or target (2) link-layer address option.
inline Bytes lladdr_option(std::uint8_t type, MacAddress m) {
  Bytes o = {type, 1};
  put_mac(o, m);
  return o;
}

// NS / NA body after type, code, checksum: flags (NA) or reserved, target, options.
inline Bytes nd_body(std::uint8_t flags, const IpAddress& target, const Bytes& options) {
  Bytes b = {flags, 0, 0, 0};
  put_ip(b, target);
  append(b, options);
  return b;
}

// A frame for the robustness loops (the n-th of a run): every third one
// random bytes (every other of those with a plausible ethertype), the others
// a valid frame with 1 to 4 bytes changed and, now and then, cut or grown.
inline Bytes mutated_frame(std::mt19937_64& rng, const std::vector<Bytes>& valid, int n) {
  Bytes f;
  if (n % 3 == 0) {
    f.resize(rng() % 200);
    for (auto& b : f) b = static_cast<std::uint8_t>(rng());
    if (f.size() >= 14 && n % 2 == 0) {
      static constexpr std::uint16_t kTypes[] = {0x0800, 0x86dd, 0x0806, 0x8100, 0x88a8};
      const std::uint16_t ty = kTypes[rng() % 5];
      f[12] = static_cast<std::uint8_t>(ty >> 8);
      f[13] = static_cast<std::uint8_t>(ty);
    }
    return f;
  }
  f = valid[rng() % valid.size()];
  const int flips = 1 + static_cast<int>(rng() % 4);
  for (int k = 0; k < flips; ++k) f[rng() % f.size()] = static_cast<std::uint8_t>(rng());
  if (rng() % 4 == 0) f.resize(rng() % (f.size() + 16));
  return f;
}

}  // namespace umacvlan::core::test_frames
