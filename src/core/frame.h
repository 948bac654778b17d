// FrameView: the Ethernet header fields the forwarding rules need, read from
// a frame's bytes without copying them.
//
// Contract: parse() never reads past the given span. A frame shorter than an
// Ethernet header (14 bytes), or than its 802.1Q/802.1ad tags claim, is
// refused as DropReason::kRunt; one longer than kMaxFrameSize as kOversize.
// ethertype is the first one after any VLAN tags (up to two are skipped);
// tagged tells whether there were any. The view does not own the bytes. No I/O.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "core/mac_address.h"

namespace umacvlan::core {

// Why a frame (or one of its copies) was not delivered. Counted per port by
// the dataplane (the core only decides).
enum class DropReason : std::uint8_t {
  kNone = 0,
  kRunt,           // shorter than an Ethernet header or its VLAN tags
  kOversize,       // longer than kMaxFrameSize
  kNoDst,          // consumed by a source-mode device with nodst
  kPassthruDown,   // unicast for a passthru port whose device is down
  kBcQueueFull,    // the broadcast queue was full (counted as rx_dropped on the lower)
  kNoSubscriber,   // multicast group nobody on the port subscribed to
  kUnknownSender,  // transmit from a device the port does not have
  kPause,          // PAUSE frames are never flooded
  kSpoofed,        // sent with a source MAC not the device's own, spoofchk on
  // Decided by the dataplane, which sees what the core does not:
  kBadVnet,  // a virtio-net header the kernel would refuse (GSO without size, ...)
  kTooBig,   // not GSO and longer than the receiving device's MTU allows
  kIoError,  // the write to a TAP or the send on the lower failed
  kRingFull,  // the lower's receive ring was full: the kernel dropped the frame
  kCount,
};

std::string_view to_string(DropReason r);

inline constexpr std::size_t kEthHeaderSize = 14;
// Largest frame the engine accepts: a 64 KiB GSO payload plus headers.
inline constexpr std::size_t kMaxFrameSize = 65535 + kEthHeaderSize + 8;
inline constexpr std::uint16_t kEthertypePause = 0x8808;
inline constexpr std::uint16_t kEthertypeIpv4 = 0x0800;
inline constexpr std::uint16_t kEthertypeArp = 0x0806;
inline constexpr std::uint16_t kEthertypeIpv6 = 0x86dd;
inline constexpr std::uint16_t kEthertypeVlan = 0x8100;  // 802.1Q
inline constexpr std::uint16_t kEthertypeQinQ = 0x88a8;  // 802.1ad

struct FrameView {
  MacAddress dst;
  MacAddress src;
  std::uint16_t ethertype = 0;
  bool tagged = false;
  std::size_t size = 0;

  // kNone on success (out is filled), otherwise the reason to drop.
  static DropReason parse(std::span<const std::uint8_t> bytes, FrameView* out);
};

}  // namespace umacvlan::core
