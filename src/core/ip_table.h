// IpTable: which device owns which IPv4/IPv6 address, learned from what the
// devices send (ARP, NDP, DHCP, ordinary IP traffic), aged and bounded. The
// "hostaccess" option adds a host route per entry; "macnat" uses it to send
// frames arriving for the lower's MAC to the device owning the destination.
//
// Contract
// - IpAddress is a value type: family, 4 or 16 bytes; parse() accepts the
//   dotted quad (no leading zeros) and the RFC 4291 text forms (with "::" and
//   a dotted IPv4 tail), to_string() prints RFC 5952 (lower case, longest
//   zero run compressed, ::ffff:a.b.c.d for v4-mapped). Ordering: IPv4 before
//   IPv6, then by bytes.
// - parse_layout() finds the headers of an Ethernet frame (up to two
//   802.1Q/802.1ad tags) without reading past the span; it is shared with
//   macnat.h.
// - learn_from_device() parses a frame a device sent (before any macnat
//   rewrite: it compares the frame's MACs with the device's). It learns
//   - the ARP sender protocol address, when the sender hardware address is
//     dev_mac (never 0.0.0.0, so an ARP probe teaches nothing);
//   - the IPv4 / IPv6 source address when the Ethernet source is dev_mac;
//   - the target of an NDP Neighbor Advertisement (code 0, hop limit 255)
//     whose Ethernet source is dev_mac and whose target link-layer option,
//     if any, is dev_mac (otherwise it speaks for someone else).
//   Only addresses a host can own are learned (is_learnable()): never
//   unspecified, "this network" 0/8, loopback, multicast, 255.255.255.255 or
//   v4-mapped IPv6. Link-local addresses (fe80::/10, 169.254/16) are learned
//   and flagged link_local. An IPv4 header with a wrong checksum or any header
//   that claims more bytes than the frame has teaches nothing. NDP messages
//   behind IPv6 extension headers are not recognised (their source still is).
// - learn_dhcp_ack() learns yiaddr of a DHCPv4 ACK (UDP 67->68, BOOTREPLY,
//   option 53 = 5, also in an overloaded sname/file field) going to the
//   device whose MAC is chaddr.
// - The last device to show an address owns it (moved). Every change is
//   reported, in order, so a caller can keep host routes in step: learning
//   returns a LearnResult; forget(), forget_device() and expire() return the
//   entries they removed. The table never holds more than max_entries: a new
//   address evicts the least recently seen entry, reported as kEvicted.
// - ttl_ms == 0 disables ageing. Time is the caller's (milliseconds from any
//   monotonic origin); a refresh never moves last_seen_ms backwards.
// - A refresh (the common case on the data path) does not allocate; a new
//   address does. Not thread-safe: the caller serializes. Never throws for
//   any frame, never reads outside the span. No I/O, no clock.
#pragma once

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/mac_address.h"
#include "core/port.h"

namespace umacvlan::core {

// ---------------------------------------------------------------- IpAddress

enum class IpFamily : std::uint8_t { kV4 = 4, kV6 = 6 };

class IpAddress {
 public:
  static constexpr std::size_t kV4Size = 4;
  static constexpr std::size_t kV6Size = 16;

  // 0.0.0.0
  constexpr IpAddress() = default;
  static constexpr IpAddress v4(const std::array<std::uint8_t, kV4Size>& b) {
    IpAddress a;
    for (std::size_t i = 0; i < kV4Size; ++i) a.bytes_[i] = b[i];
    return a;
  }
  // a.b.c.d as the integer a << 24 | b << 16 | c << 8 | d.
  static constexpr IpAddress v4(std::uint32_t host_order) {
    return v4({static_cast<std::uint8_t>(host_order >> 24),
               static_cast<std::uint8_t>(host_order >> 16),
               static_cast<std::uint8_t>(host_order >> 8), static_cast<std::uint8_t>(host_order)});
  }
  static constexpr IpAddress v6(const std::array<std::uint8_t, kV6Size>& b) {
    IpAddress a;
    a.family_ = IpFamily::kV6;
    a.bytes_ = b;
    return a;
  }
  // Reads 4 (v4) or 16 (v6) bytes from p (the caller guarantees they exist).
  static IpAddress v4_from_bytes(const std::uint8_t* p);
  static IpAddress v6_from_bytes(const std::uint8_t* p);

  // nullopt for anything but one IPv4 or IPv6 address (no prefix, no zone).
  static std::optional<IpAddress> parse(std::string_view text);
  std::string to_string() const;

  constexpr IpFamily family() const { return family_; }
  constexpr bool is_v4() const { return family_ == IpFamily::kV4; }
  constexpr bool is_v6() const { return family_ == IpFamily::kV6; }
  constexpr std::size_t size() const { return is_v4() ? kV4Size : kV6Size; }
  // The 4 or 16 address bytes, network order.
  std::span<const std::uint8_t> bytes() const { return {bytes_.data(), size()}; }

  bool is_unspecified() const;  // 0.0.0.0, ::
  bool is_loopback() const;     // 127/8, ::1
  bool is_multicast() const;    // 224/4, ff00::/8
  bool is_broadcast() const;    // 255.255.255.255
  bool is_link_local() const;   // 169.254/16, fe80::/10
  bool is_v4_mapped() const;    // ::ffff:0:0/96
  // Whether a device can own the address (what the table learns).
  bool is_learnable() const;

  std::size_t hash() const;

  friend constexpr auto operator<=>(const IpAddress&, const IpAddress&) = default;

 private:
  IpFamily family_ = IpFamily::kV4;
  std::array<std::uint8_t, kV6Size> bytes_{};  // IPv4 uses the first 4, the rest stay 0
};

struct IpAddressHash {
  std::size_t operator()(const IpAddress& a) const { return a.hash(); }
};

// ---------------------------------------------------------------- frame layout

enum class L3Kind : std::uint8_t {
  kOther,  // any other ethertype, or ARP for something other than IPv4 over Ethernet
  kArp,    // ARP, hardware Ethernet (6), protocol IPv4 (4): 28 bytes at l3
  kIpv4,
  kIpv6,
};

// Where the headers of a frame are. Offsets index the frame.
struct PacketLayout {
  L3Kind kind = L3Kind::kOther;
  std::uint16_t ethertype = 0;  // after the VLAN tags
  std::uint8_t vlan_tags = 0;   // 0, 1 or 2
  std::size_t l3 = 0;           // the ARP / IP header
  std::size_t end = 0;          // end of the ARP / IP packet (Ethernet padding follows)
  // IP only.
  std::uint8_t protocol = 0;  // IPv4 protocol, IPv6 next header (extension headers not skipped)
  bool has_l4 = false;        // false for IPv4 fragments (first or later)
  std::size_t l4 = 0;         // the transport header (which may be shorter than its own size)
};

// nullopt when the frame is malformed: shorter than an Ethernet header or its
// tags; an ARP/IPv4 header cut short; an IPv4 header with version != 4,
// IHL < 5, or a total length outside [IHL * 4, bytes present]; an IPv6 header
// with version != 6 or a payload length beyond the bytes present.
std::optional<PacketLayout> parse_layout(std::span<const std::uint8_t> frame);

// ---------------------------------------------------------------- IpTable

enum class LearnedFrom : std::uint8_t { kArp, kNdp, kDhcp, kIp };
std::string_view to_string(LearnedFrom how);

struct IpEntry {
  IpAddress address;
  DeviceId device = kNoDevice;
  MacAddress mac;  // the device's MAC when last seen
  std::uint64_t last_seen_ms = 0;
  LearnedFrom learned_from = LearnedFrom::kIp;  // how it was last seen
  bool link_local = false;                      // address.is_link_local()

  friend bool operator==(const IpEntry&, const IpEntry&) = default;
};

enum class IpChangeKind : std::uint8_t {
  kAdded,      // a new address: add its route
  kMoved,      // another device owns it now: previous_device lost it
  kRefreshed,  // same device, last_seen_ms (and mac, learned_from) updated: no route change
  kEvicted,    // dropped to make room (entry as it was): remove its route
};
std::string_view to_string(IpChangeKind kind);

struct IpChange {
  IpChangeKind kind = IpChangeKind::kAdded;
  IpEntry entry;                         // as it is now; for kEvicted, as it was
  DeviceId previous_device = kNoDevice;  // kMoved only
};

// What one learn call changed, in the order it happened (an eviction comes
// before the addition that made it). Fixed capacity: a frame teaches at most
// two addresses (an NA's source and target), each may evict one entry.
struct LearnResult {
  static constexpr std::size_t kCapacity = 4;
  std::array<IpChange, kCapacity> changes{};
  std::size_t count = 0;

  const IpChange* begin() const { return changes.data(); }
  const IpChange* end() const { return changes.data() + count; }
  std::size_t size() const { return count; }
  bool empty() const { return count == 0; }
  // Whether a host route has to change (anything but refreshes).
  bool routes_changed() const;
};

class IpTable {
 public:
  static constexpr std::size_t kDefaultMaxEntries = 4096;
  static constexpr std::uint64_t kDefaultTtlMs = 300'000;

  // max_entries is at least 1 (0 is taken as 1). ttl_ms 0: no ageing.
  explicit IpTable(std::size_t max_entries = kDefaultMaxEntries,
                   std::uint64_t ttl_ms = kDefaultTtlMs);

  // A frame device `dev` (MAC dev_mac) sent. See the contract above.
  LearnResult learn_from_device(DeviceId dev, MacAddress dev_mac,
                                std::span<const std::uint8_t> frame, std::uint64_t now_ms);
  // A frame going to the devices: learns yiaddr of a DHCPv4 ACK for the
  // device device_of(chaddr) names (nothing when it names none).
  LearnResult learn_dhcp_ack(std::span<const std::uint8_t> frame,
                             const std::function<std::optional<DeviceId>(MacAddress)>& device_of,
                             std::uint64_t now_ms);
  // One address, however the caller knows it. Nothing for an address that is
  // not learnable or for kNoDevice.
  LearnResult learn(IpAddress address, DeviceId dev, MacAddress dev_mac, LearnedFrom how,
                    std::uint64_t now_ms);

  std::optional<IpEntry> lookup(const IpAddress& address) const;
  // Sorted by address.
  std::vector<IpAddress> addresses_of(DeviceId dev) const;
  // Every entry, sorted by address.
  std::vector<IpEntry> entries() const;

  // The removed entry, if there was one.
  std::optional<IpEntry> forget(const IpAddress& address);
  // The removed entries, sorted by address.
  std::vector<IpEntry> forget_device(DeviceId dev);
  // Removes the entries not seen for ttl_ms (now_ms - last_seen_ms >= ttl_ms),
  // oldest first. Nothing when ageing is off.
  std::vector<IpEntry> expire(std::uint64_t now_ms);
  // When the next entry expires (nullopt: empty table or no ageing).
  std::optional<std::uint64_t> next_expiry_ms() const;

  std::size_t size() const { return by_address_.size(); }
  std::size_t max_entries() const { return max_entries_; }
  std::uint64_t ttl_ms() const { return ttl_ms_; }

 private:
  using AgeKey = std::pair<std::uint64_t, IpAddress>;  // (last_seen_ms, address)

  void learn_into(const IpAddress& address, DeviceId dev, MacAddress dev_mac, LearnedFrom how,
                  std::uint64_t now_ms, LearnResult* out);
  void set_age(const IpAddress& address, std::uint64_t old_ms, std::uint64_t new_ms);
  IpEntry erase(const IpAddress& address);

  std::size_t max_entries_;
  std::uint64_t ttl_ms_;
  std::unordered_map<IpAddress, IpEntry, IpAddressHash> by_address_;
  std::set<AgeKey> by_age_;  // least recently seen first
};

}  // namespace umacvlan::core
