// MacNat: frame rewriting for the "macnat" option, for lowers that accept
// only their own MAC as source (Wi-Fi stations). Every frame leaving the
// lower carries the lower's MAC, so do the MACs inside it that announce the
// sender; frames arriving for the lower's MAC go to the device owning the
// destination IP (the caller finds it in an IpTable).
//
// Contract
// - rewrite_egress(), a frame a device sends out the lower (learn from it
//   with IpTable::learn_from_device() first: that compares the original
//   MACs). With S the frame's original Ethernet source:
//   - Ethernet source := lower_mac;
//   - ARP (any operation): sender hardware address := lower_mac if it was S;
//   - ICMPv6 RS, RA, NS, NA, Redirect (133-137), directly after the IPv6
//     header: source/target link-layer address options (types 1, 2) that
//     carried S := lower_mac;
//   - DHCPv4 client messages (IPv4 UDP 68->67, BOOTREQUEST): the BROADCAST
//     flag (0x8000) is set, so the server's answers come back broadcast
//     (chaddr stays the device's: the server tells the clients apart by it).
//   Checksums (ICMPv6, and UDP unless it is 0, "none") are updated
//   incrementally (RFC 1624), except when csum_partial: then the checksum
//   field holds the pseudo-header sum the kernel completes over the data as
//   it will be, and is left alone.
// - ingress_destination(), a frame addressed to the lower's MAC: the address
//   it is for (IPv4/IPv6 destination; ARP target protocol address of a reply,
//   or of a unicast request: Linux refreshes neighbours with those). NDP NS
//   targets are not used (an NS for a device's address arrives multicast).
//   nullopt when no device can own it (IpAddress::is_learnable()).
// - egress_source(): the address a device's frame comes from (ARP sender
//   protocol address, IPv4/IPv6 source), for refreshing its owner on the
//   data path; nullopt when no device can own it.
// - rewrite_ingress(): Ethernet destination := device_mac; ARP reply target
//   hardware address := device_mac. NDP options are left as they are (they
//   carry the peer's MAC); nothing covered by a checksum changes.
// - arp_request_target(): the target protocol address of an ARP request
//   (broadcast ones too, probes and gratuitous ones included); whether to
//   answer, flood or drop is the caller's.
// - Up to two VLAN tags are handled. A malformed frame (see parse_layout(),
//   plus NDP messages shorter than their fixed part or with a zero-length or
//   overlong option, and UDP lengths beyond the IP packet) is left untouched
//   and reported kMalformed; any other frame is rewritten as far as it is
//   understood. Nothing here reads or writes outside the span, allocates or
//   throws. No I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "core/ip_table.h"
#include "core/mac_address.h"

namespace umacvlan::core {

enum class MacNatStatus : std::uint8_t {
  kOk,         // rewritten as far as understood (possibly nothing beyond Ethernet)
  kMalformed,  // untouched
};
std::string_view to_string(MacNatStatus s);

// What a rewrite changed (bits of MacNatResult::rewritten). A field that
// already held the new value does not count.
inline constexpr std::uint16_t kRewroteEthSource = 1 << 0;
inline constexpr std::uint16_t kRewroteEthDest = 1 << 1;
inline constexpr std::uint16_t kRewroteArpSender = 1 << 2;  // sender hardware address
inline constexpr std::uint16_t kRewroteArpTarget = 1 << 3;  // target hardware address
inline constexpr std::uint16_t kRewroteNdpOption = 1 << 4;  // a link-layer address option
inline constexpr std::uint16_t kRewroteDhcpFlags = 1 << 5;  // the BROADCAST flag was set
inline constexpr std::uint16_t kRewroteChecksum = 1 << 6;   // an L4 checksum was updated

struct MacNatResult {
  MacNatStatus status = MacNatStatus::kOk;
  std::uint16_t rewritten = 0;  // kRewrote* bits
  // Egress: the original Ethernet source. Ingress: the original destination.
  // Zero when the frame is shorter than an Ethernet header.
  MacAddress original;

  bool ok() const { return status == MacNatStatus::kOk; }
  bool has(std::uint16_t bits) const { return (rewritten & bits) == bits; }
};
using EgressResult = MacNatResult;
using IngressResult = MacNatResult;

EgressResult rewrite_egress(std::span<std::uint8_t> frame, MacAddress lower_mac, bool csum_partial);

std::optional<IpAddress> ingress_destination(std::span<const std::uint8_t> frame);

std::optional<IpAddress> egress_source(std::span<const std::uint8_t> frame);

IngressResult rewrite_ingress(std::span<std::uint8_t> frame, MacAddress device_mac,
                              bool csum_partial);

std::optional<IpAddress> arp_request_target(std::span<const std::uint8_t> frame);

}  // namespace umacvlan::core
