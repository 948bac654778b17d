#include "core/frame.h"

namespace umacvlan::core {

std::string_view to_string(DropReason r) {
  switch (r) {
    case DropReason::kNone:
      return "none";
    case DropReason::kRunt:
      return "runt";
    case DropReason::kOversize:
      return "oversize";
    case DropReason::kNoDst:
      return "nodst";
    case DropReason::kPassthruDown:
      return "passthru_down";
    case DropReason::kBcQueueFull:
      return "bc_queue_full";
    case DropReason::kNoSubscriber:
      return "no_subscriber";
    case DropReason::kUnknownSender:
      return "unknown_sender";
    case DropReason::kPause:
      return "pause";
    case DropReason::kSpoofed:
      return "spoofed";
    case DropReason::kBadVnet:
      return "bad_vnet_header";
    case DropReason::kTooBig:
      return "too_big";
    case DropReason::kIoError:
      return "io_error";
    case DropReason::kRingFull:
      return "lower_ring_full";
    case DropReason::kCount:
      break;
  }
  return "unknown";
}

DropReason FrameView::parse(std::span<const std::uint8_t> bytes, FrameView* out) {
  if (bytes.size() < kEthHeaderSize) return DropReason::kRunt;
  if (bytes.size() > kMaxFrameSize) return DropReason::kOversize;
  const std::uint8_t* p = bytes.data();
  out->dst = MacAddress::from_bytes(p);
  out->src = MacAddress::from_bytes(p + 6);
  out->size = bytes.size();
  out->tagged = false;
  std::size_t at = 12;
  std::uint16_t type = static_cast<std::uint16_t>(p[at] << 8 | p[at + 1]);
  for (int tags = 0; tags < 2 && (type == kEthertypeVlan || type == kEthertypeQinQ); ++tags) {
    at += 4;
    if (bytes.size() < at + 2) return DropReason::kRunt;
    type = static_cast<std::uint16_t>(p[at] << 8 | p[at + 1]);
    out->tagged = true;
  }
  out->ethertype = type;
  return DropReason::kNone;
}

}  // namespace umacvlan::core
