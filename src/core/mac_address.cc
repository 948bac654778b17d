#include "core/mac_address.h"

namespace umacvlan::core {

int hex_digit_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool decode_hex(std::string_view hex, std::span<std::uint8_t> out) {
  if (hex.size() != 2 * out.size()) return false;
  for (std::size_t i = 0; i < out.size(); ++i) {
    const int hi = hex_digit_value(hex[2 * i]);
    const int lo = hex_digit_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<std::uint8_t>(hi << 4 | lo);
  }
  return true;
}

MacAddress MacAddress::from_bytes(const std::uint8_t* p) {
  std::array<std::uint8_t, kSize> o{};
  for (std::size_t i = 0; i < kSize; ++i) o[i] = p[i];
  return MacAddress(o);
}

std::optional<MacAddress> MacAddress::parse(std::string_view text) {
  if (text.size() != 17) return std::nullopt;
  std::array<std::uint8_t, kSize> o{};
  for (std::size_t i = 0; i < kSize; ++i) {
    const std::size_t at = i * 3;
    if (i > 0 && text[at - 1] != ':') return std::nullopt;
    const int hi = hex_digit_value(text[at]);
    const int lo = hex_digit_value(text[at + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    o[i] = static_cast<std::uint8_t>(hi * 16 + lo);
  }
  return MacAddress(o);
}

MacAddress MacAddress::random_local(std::uint64_t random_bits) {
  auto o = from_u64(random_bits).octets();
  o[0] = static_cast<std::uint8_t>((o[0] & 0xfe) | 0x02);  // unicast, locally administered
  return MacAddress(o);
}

std::string MacAddress::to_string() const {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s(17, ':');
  for (std::size_t i = 0; i < kSize; ++i) {
    s[i * 3] = kHex[octets_[i] >> 4];
    s[i * 3 + 1] = kHex[octets_[i] & 0xf];
  }
  return s;
}

}  // namespace umacvlan::core
