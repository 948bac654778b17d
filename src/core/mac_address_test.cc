// MacAddress: parsing, printing, IEEE 802 predicates, random_local(), the
// 48-bit integer view and ordering. Table-driven: every row is a test case.
#include "core/mac_address.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <optional>
#include <ostream>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace umacvlan::core {
namespace {

constexpr std::uint64_t kLow48 = 0xffffffffffffULL;

// A row's name made safe for gtest (letters, digits, underscores only).
std::string sanitize(std::string_view s) {
  std::string out;
  for (char c : s) out += (std::isalnum(static_cast<unsigned char>(c)) != 0) ? c : '_';
  return out.empty() ? "empty" : out;
}

// ---------------------------------------------------------------- parse: accepted

struct ValidText {
  const char* name;
  const char* text;
  std::uint64_t value;
};

void PrintTo(const ValidText& r, std::ostream* os) {
  *os << '"' << r.text << '"';
}

class MacParseValid : public ::testing::TestWithParam<ValidText> {};

TEST_P(MacParseValid, ParsesToTheExpectedOctets) {
  const ValidText& row = GetParam();
  const std::optional<MacAddress> m = MacAddress::parse(row.text);
  ASSERT_TRUE(m.has_value()) << "refused: \"" << row.text << "\"";
  EXPECT_EQ(m->to_u64(), row.value) << row.text;
  // to_string is the lower-case form of the input.
  std::string lower = row.text;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  EXPECT_EQ(m->to_string(), lower);
}

INSTANTIATE_TEST_SUITE_P(
    Rows, MacParseValid,
    ::testing::Values(ValidText{"lower_case", "00:11:22:33:44:55", 0x001122334455ULL},
                      ValidText{"upper_case", "AA:BB:CC:DD:EE:FF", 0xaabbccddeeffULL},
                      ValidText{"mixed_case", "aA:Bb:cC:Dd:eE:F0", 0xaabbccddeef0ULL},
                      ValidText{"all_zero", "00:00:00:00:00:00", 0x000000000000ULL},
                      ValidText{"broadcast", "ff:ff:ff:ff:ff:ff", 0xffffffffffffULL},
                      ValidText{"every_hex_digit", "01:23:45:67:89:Ab", 0x0123456789abULL},
                      ValidText{"digits_and_letters", "9f:a0:0F:F9:c3:3c", 0x9fa00ff9c33cULL}),
    [](const ::testing::TestParamInfo<ValidText>& i) { return std::string(i.param.name); });

// ---------------------------------------------------------------- parse: refused

class MacParseInvalid : public ::testing::TestWithParam<std::string> {};

TEST_P(MacParseInvalid, IsRefused) {
  const std::string& text = GetParam();
  const std::optional<MacAddress> m = MacAddress::parse(text);
  EXPECT_FALSE(m.has_value()) << "accepted \"" << text << "\" as " << m->to_string();
}

INSTANTIATE_TEST_SUITE_P(
    Rows, MacParseInvalid,
    ::testing::Values(std::string(""),                       // empty
                      std::string("00:11:22:33:44"),         // five octets
                      std::string("00:11:22:33:44:5"),       // one digit short
                      std::string("0:11:22:33:44:55"),       // one digit short, at the front
                      std::string("00:11:22:33:44:55:66"),   // seven octets
                      std::string("00:11:22:33:44:555"),     // one digit too many
                      std::string("001122334455"),           // no colons
                      std::string("00:1122:33:44:55"),       // a colon missing
                      std::string("000:11:22:33:44:5"),      // right length, colon misplaced
                      std::string("00::11:22:33:44:5"),      // right length, extra colon
                      std::string("00:11:22:33:44:55:"),     // trailing colon
                      std::string(":00:11:22:33:44:55"),     // leading colon
                      std::string("00-11-22-33-44-55"),      // '-' separators
                      std::string("00:11:22-33:44:55"),      // one '-' separator
                      std::string("00.11.22.33.44.55"),      // '.' separators
                      std::string("00:11:22:33:44:5g"),      // non-hex, last
                      std::string("g0:11:22:33:44:55"),      // non-hex, first
                      std::string("0x:11:22:33:44:55"),      // "0x"
                      std::string("00:11:22:33:44:+5"),      // sign
                      std::string(" 00:11:22:33:44:55"),     // leading space
                      std::string("00:11:22:33:44:55 "),     // trailing space
                      std::string("00:11:22:33:44:55\n"),    // trailing newline
                      std::string("00:11:22: 3:44:55"),      // inner space
                      std::string("00:11:22:33:44:5\0", 17)  // embedded NUL
                      ),
    [](const ::testing::TestParamInfo<std::string>& i) {
      return "row" + std::to_string(i.index) + "_" + sanitize(i.param);
    });

// ---------------------------------------------------------------- to_string

struct Printed {
  std::uint64_t value;
  const char* text;
};

void PrintTo(const Printed& r, std::ostream* os) {
  *os << r.text;
}

class MacToString : public ::testing::TestWithParam<Printed> {};

TEST_P(MacToString, IsLowerCaseAndRoundTrips) {
  const Printed& row = GetParam();
  const MacAddress m = MacAddress::from_u64(row.value);
  EXPECT_EQ(m.to_string(), row.text);
  const std::optional<MacAddress> back = MacAddress::parse(m.to_string());
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, m);
}

INSTANTIATE_TEST_SUITE_P(Rows, MacToString,
                         ::testing::Values(Printed{0x000000000000ULL, "00:00:00:00:00:00"},
                                           Printed{0xaabbccddeeffULL, "aa:bb:cc:dd:ee:ff"},
                                           Printed{0x0123456789abULL, "01:23:45:67:89:ab"},
                                           Printed{0x0a0b0c0d0e0fULL, "0a:0b:0c:0d:0e:0f"}),
                         [](const ::testing::TestParamInfo<Printed>& i) {
                           return sanitize(i.param.text);
                         });

TEST(MacToStringRandom, RoundTripsForManyValues) {
  std::mt19937_64 rng(0x5eed0001);
  for (int i = 0; i < 10000; ++i) {
    const MacAddress m = MacAddress::from_u64(rng());
    const std::string s = m.to_string();
    ASSERT_EQ(s.size(), 17u);
    ASSERT_EQ(s.find_first_of("ABCDEF"), std::string::npos) << s;
    const std::optional<MacAddress> back = MacAddress::parse(s);
    ASSERT_TRUE(back.has_value()) << s;
    ASSERT_EQ(*back, m) << s;
  }
}

// ---------------------------------------------------------------- predicates

struct Predicates {
  const char* text;
  bool zero;
  bool multicast;
  bool broadcast;
  bool local;
  bool valid_unicast;
};

void PrintTo(const Predicates& r, std::ostream* os) {
  *os << r.text;
}

class MacPredicates : public ::testing::TestWithParam<Predicates> {};

TEST_P(MacPredicates, FollowIeee802) {
  const Predicates& row = GetParam();
  const std::optional<MacAddress> m = MacAddress::parse(row.text);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->is_zero(), row.zero);
  EXPECT_EQ(m->is_multicast(), row.multicast);
  EXPECT_EQ(m->is_unicast(), !row.multicast);
  EXPECT_EQ(m->is_broadcast(), row.broadcast);
  EXPECT_EQ(m->is_locally_administered(), row.local);
  EXPECT_EQ(m->is_valid_unicast(), row.valid_unicast);
}

INSTANTIATE_TEST_SUITE_P(
    Rows, MacPredicates,
    ::testing::Values(
        //          text                 zero   mcast  bcast  local  valid
        Predicates{"00:00:00:00:00:00", true, false, false, false, false},
        Predicates{"00:00:00:00:00:01", false, false, false, false, true},  // zero needs all
        Predicates{"00:11:22:33:44:55", false, false, false, false, true},  // global unicast
        Predicates{"02:00:00:00:00:01", false, false, false, true, true},   // local unicast
        Predicates{"fe:ff:ff:ff:ff:ff", false, false, false, true, true},   // bit 0 clear
        Predicates{"01:00:5e:00:00:fb", false, true, false, false, false},  // IPv4 mcast
        Predicates{"33:33:00:00:00:01", false, true, false, true, false},   // IPv6 mcast
        Predicates{"01:80:c2:00:00:01", false, true, false, false, false},  // PAUSE group
        Predicates{"ff:ff:ff:ff:ff:fe", false, true, false, true, false},   // not broadcast
        Predicates{"ff:ff:ff:ff:ff:ff", false, true, true, true, false}),   // broadcast
    [](const ::testing::TestParamInfo<Predicates>& i) { return sanitize(i.param.text); });

TEST(MacBroadcast, IsAllOnes) {
  EXPECT_EQ(MacAddress::broadcast().to_u64(), kLow48);
  EXPECT_EQ(MacAddress::broadcast().to_string(), "ff:ff:ff:ff:ff:ff");
}

// ---------------------------------------------------------------- random_local

TEST(MacRandomLocal, IsAlwaysLocallyAdministeredUnicast) {
  std::vector<std::uint64_t> seeds = {0, ~0ULL, 0x010000000000ULL, 0xffff000000000000ULL,
                                      0x0100000000000000ULL};
  std::mt19937_64 rng(0x5eed0002);
  for (int i = 0; i < 20000; ++i) seeds.push_back(rng());
  for (std::uint64_t bits : seeds) {
    const MacAddress m = MacAddress::random_local(bits);
    ASSERT_TRUE(m.is_unicast()) << std::hex << bits << " -> " << m.to_string();
    ASSERT_TRUE(m.is_locally_administered()) << std::hex << bits << " -> " << m.to_string();
    ASSERT_TRUE(m.is_valid_unicast()) << std::hex << bits << " -> " << m.to_string();
  }
}

TEST(MacRandomLocal, IsDeterministicAndUsesTheBits) {
  std::mt19937_64 rng(0x5eed0003);
  std::set<MacAddress> seen;
  constexpr int kDraws = 10000;
  for (int i = 0; i < kDraws; ++i) {
    const std::uint64_t bits = rng();
    const MacAddress a = MacAddress::random_local(bits);
    ASSERT_EQ(a, MacAddress::random_local(bits)) << std::hex << bits;
    seen.insert(a);
  }
  // 46 free bits: 10000 draws all differ unless the bits are ignored.
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(kDraws));
  // Neighbouring inputs give different addresses too.
  EXPECT_NE(MacAddress::random_local(0x123456), MacAddress::random_local(0x123457));
}

// ---------------------------------------------------------------- u64 view

TEST(MacU64, RoundTripsAndKeepsOctetOrder) {
  const MacAddress m = MacAddress::from_u64(0x001122334455ULL);
  const std::array<std::uint8_t, 6> want = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55};
  EXPECT_EQ(m.octets(), want);
  EXPECT_EQ(MacAddress::from_bytes(want.data()), m);
  EXPECT_EQ(MacAddress(want), m);

  std::mt19937_64 rng(0x5eed0004);
  for (int i = 0; i < 10000; ++i) {
    const std::uint64_t v = rng();
    const MacAddress a = MacAddress::from_u64(v);
    ASSERT_EQ(a.to_u64(), v & kLow48) << std::hex << v;  // high 16 bits dropped
    ASSERT_EQ(MacAddress::from_u64(a.to_u64()), a) << std::hex << v;
    ASSERT_EQ(MacAddress::from_bytes(a.octets().data()), a) << std::hex << v;
  }
}

// ---------------------------------------------------------------- ordering

TEST(MacOrdering, MatchesTheIntegerOrder) {
  std::mt19937_64 rng(0x5eed0005);
  for (int i = 0; i < 10000; ++i) {
    // Half the pairs share a long prefix so later octets decide.
    const std::uint64_t x = rng() & kLow48;
    const std::uint64_t y = (i % 2 == 0) ? (rng() & kLow48) : (x ^ (rng() & 0xff));
    const MacAddress a = MacAddress::from_u64(x);
    const MacAddress b = MacAddress::from_u64(y);
    ASSERT_EQ(a < b, x < y) << a.to_string() << " vs " << b.to_string();
    ASSERT_EQ(a == b, x == y) << a.to_string() << " vs " << b.to_string();
    ASSERT_EQ(a > b, x > y) << a.to_string() << " vs " << b.to_string();
  }
  const std::vector<const char*> sorted = {"00:00:00:00:00:00", "00:00:00:00:00:01",
                                           "00:00:00:00:01:00", "01:00:00:00:00:00",
                                           "02:00:00:00:00:ee", "ff:ff:ff:ff:ff:ff"};
  for (std::size_t i = 1; i < sorted.size(); ++i) {
    EXPECT_LT(*MacAddress::parse(sorted[i - 1]), *MacAddress::parse(sorted[i]))
        << sorted[i - 1] << " < " << sorted[i];
  }
  EXPECT_EQ(MacAddress(), MacAddress::from_u64(0));
}

TEST(DecodeHex, TakesExactlyTwoDigitsPerOctet) {
  std::array<std::uint8_t, 6> mac{};
  ASSERT_TRUE(decode_hex("01005E0000fb", mac));
  EXPECT_EQ(MacAddress(mac).to_string(), "01:00:5e:00:00:fb");
  EXPECT_FALSE(decode_hex("01005e0000f", mac));    // one digit short
  EXPECT_FALSE(decode_hex("01005e0000fb0", mac));  // one too many
  EXPECT_FALSE(decode_hex("01:00:5e:00:0", mac));  // separators are not digits
  EXPECT_FALSE(decode_hex("01005e0000fg", mac));
  EXPECT_TRUE(decode_hex("", std::span<std::uint8_t>()));
}

}  // namespace
}  // namespace umacvlan::core
