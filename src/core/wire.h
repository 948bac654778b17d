// Wire formats that more than one part of the core reads: IP protocol
// numbers, ARP, NDP and BOOTP/DHCP offsets, and big-endian loads and stores.
//
// Contract: constants and pure inline helpers only; the helpers read or
// write exactly two bytes at the pointer the caller vouches for. No I/O.
#pragma once

#include <cstddef>
#include <cstdint>

namespace umacvlan::core::wire {

inline constexpr std::uint8_t kProtoUdp = 17;
inline constexpr std::uint8_t kProtoIcmpv6 = 58;

inline constexpr std::size_t kArpSize = 28;  // Ethernet/IPv4 ARP
inline constexpr std::size_t kArpOp = 6;     // the opcode
inline constexpr std::uint16_t kArpRequest = 1;
inline constexpr std::uint16_t kArpReply = 2;
inline constexpr std::size_t kArpSenderHw = 8;
inline constexpr std::size_t kArpSenderIp = 14;
inline constexpr std::size_t kArpTargetHw = 18;
inline constexpr std::size_t kArpTargetIp = 24;

inline constexpr std::size_t kIpv4MinHeader = 20;
inline constexpr std::size_t kIpv6Header = 40;

inline constexpr std::uint8_t kNdpNeighborAdvert = 136;
inline constexpr std::size_t kNdpNaSize = 24;  // type .. target
inline constexpr std::uint8_t kNdpOptSourceLladdr = 1;
inline constexpr std::uint8_t kNdpOptTargetLladdr = 2;

inline constexpr std::size_t kBootpFixed = 236;               // op .. file
inline constexpr std::size_t kDhcpOptions = kBootpFixed + 4;  // after the magic cookie
inline constexpr std::uint16_t kBootpBroadcast = 0x8000;      // in the flags field

inline std::uint16_t load_be16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>(p[0] << 8 | p[1]);
}

inline void store_be16(std::uint8_t* p, std::uint16_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v);
}

}  // namespace umacvlan::core::wire
