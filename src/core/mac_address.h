// MacAddress: a 48-bit Ethernet address as a value type.
//
// Contract: parse() accepts exactly six colon-separated pairs of hex digits
// ("aa:bb:cc:dd:ee:ff", any case) and nothing else; to_string() prints lower
// case. Predicates follow IEEE 802: the group bit (bit 0 of the first octet)
// makes an address multicast, all-ones is broadcast, bit 1 of the first octet
// is "locally administered". random_local() never reads a clock or a device:
// the caller supplies the random bits, so tests are deterministic. No I/O.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace umacvlan::core {

// The value of one hex digit (either case), -1 for any other character.
int hex_digit_value(char c);
// Exactly 2 * out.size() hex digits (either case, no separators) into out,
// two per octet; false for anything else (out is then unspecified).
bool decode_hex(std::string_view hex, std::span<std::uint8_t> out);

class MacAddress {
 public:
  static constexpr std::size_t kSize = 6;

  constexpr MacAddress() = default;
  constexpr explicit MacAddress(const std::array<std::uint8_t, kSize>& octets) : octets_(octets) {}
  // Reads 6 octets from p (caller guarantees they exist).
  static MacAddress from_bytes(const std::uint8_t* p);
  // The low 48 bits of v, most significant octet first.
  static constexpr MacAddress from_u64(std::uint64_t v) {
    std::array<std::uint8_t, kSize> o{};
    for (int i = 5; i >= 0; --i) {
      o[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(v & 0xff);
      v >>= 8;
    }
    return MacAddress(o);
  }

  // nullopt for anything that is not exactly "xx:xx:xx:xx:xx:xx".
  static std::optional<MacAddress> parse(std::string_view text);
  // A unicast, locally administered address made of the given random bits.
  static MacAddress random_local(std::uint64_t random_bits);
  static constexpr MacAddress broadcast() { return from_u64(0xffffffffffffULL); }

  std::string to_string() const;
  constexpr std::uint64_t to_u64() const {
    std::uint64_t v = 0;
    for (auto b : octets_) v = (v << 8) | b;
    return v;
  }
  constexpr const std::array<std::uint8_t, kSize>& octets() const { return octets_; }

  constexpr bool is_zero() const { return to_u64() == 0; }
  constexpr bool is_multicast() const { return (octets_[0] & 0x01) != 0; }  // broadcast too
  constexpr bool is_broadcast() const { return to_u64() == 0xffffffffffffULL; }
  constexpr bool is_unicast() const { return !is_multicast(); }
  constexpr bool is_locally_administered() const { return (octets_[0] & 0x02) != 0; }
  // What the kernel's is_valid_ether_addr() accepts: not zero, not multicast.
  constexpr bool is_valid_unicast() const { return !is_zero() && !is_multicast(); }

  friend constexpr auto operator<=>(const MacAddress&, const MacAddress&) = default;

 private:
  std::array<std::uint8_t, kSize> octets_{};
};

}  // namespace umacvlan::core
