// Mode: the five macvlan modes, the two mode flags and the source-list
// operations.
//
// Contract: the enumerator values are the kernel's (uapi MACVLAN_MODE_*,
// MACVLAN_FLAG_*), so a set of modes is a plain bitmask and values can cross
// netlink unchanged. parse_mode() accepts exactly the iproute2 keywords.
// No I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace umacvlan::core {

enum class Mode : std::uint32_t {
  kPrivate = 1,
  kVepa = 2,
  kBridge = 4,
  kPassthru = 8,
  kSource = 16,
};

using ModeMask = std::uint32_t;
constexpr ModeMask mask(Mode m) {
  return static_cast<ModeMask>(m);
}

// Mode flags (IFLA_MACVLAN_FLAGS).
inline constexpr std::uint16_t kFlagNoPromisc = 1;
inline constexpr std::uint16_t kFlagNoDst = 2;

// The source-mode MAC list operation (IFLA_MACVLAN_MACADDR_MODE) of
// `macaddr {add|del MAC | set [MAC...] | flush}`.
enum class SourceOp : std::uint8_t { kNone, kAdd, kDel, kSet, kFlush };

constexpr std::string_view to_string(Mode m) {
  switch (m) {
    case Mode::kPrivate:
      return "private";
    case Mode::kVepa:
      return "vepa";
    case Mode::kBridge:
      return "bridge";
    case Mode::kPassthru:
      return "passthru";
    case Mode::kSource:
      return "source";
  }
  return "unknown";
}

constexpr std::optional<Mode> parse_mode(std::string_view s) {
  if (s == "private") return Mode::kPrivate;
  if (s == "vepa") return Mode::kVepa;
  if (s == "bridge") return Mode::kBridge;
  if (s == "passthru") return Mode::kPassthru;
  if (s == "source") return Mode::kSource;
  return std::nullopt;
}

}  // namespace umacvlan::core
