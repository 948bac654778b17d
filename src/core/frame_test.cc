// FrameView::parse: runts, header fields, 802.1Q / 802.1ad tags, oversize,
// and the names of the drop reasons. Table-driven: every row is a test case.
#include "core/frame.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <ostream>
#include <set>
#include <span>
#include <string>
#include <vector>

namespace umacvlan::core {
namespace {

const MacAddress kDst = MacAddress::from_u64(0x01005e0000fbULL);
const MacAddress kSrc = MacAddress::from_u64(0x02000000aa01ULL);

// dst, src, then `rest` (ethertype/tags/payload) as given.
std::vector<std::uint8_t> with_header(const std::vector<std::uint8_t>& rest) {
  std::vector<std::uint8_t> f(12 + rest.size());
  std::copy(kDst.octets().begin(), kDst.octets().end(), f.begin());
  std::copy(kSrc.octets().begin(), kSrc.octets().end(), f.begin() + 6);
  std::copy(rest.begin(), rest.end(), f.begin() + 12);
  return f;
}

// Parses into a view pre-filled with junk, so stale fields cannot pass.
DropReason parse(const std::vector<std::uint8_t>& bytes, FrameView* out) {
  out->dst = MacAddress::from_u64(0x0a0a0a0a0a0aULL);
  out->src = MacAddress::from_u64(0x0b0b0b0b0b0bULL);
  out->ethertype = 0xdead;
  out->tagged = true;
  out->size = 12345;
  return FrameView::parse(std::span<const std::uint8_t>(bytes.data(), bytes.size()), out);
}

// ---------------------------------------------------------------- runts

class FrameRunt : public ::testing::TestWithParam<std::size_t> {};

TEST_P(FrameRunt, IsRefused) {
  // Exactly n bytes, so reading past them is caught by sanitizers; the bytes
  // are an 802.1Q-less header prefix that would parse if it were longer.
  std::vector<std::uint8_t> full = with_header({0x08, 0x00});
  full.resize(GetParam());
  FrameView v;
  EXPECT_EQ(parse(full, &v), DropReason::kRunt) << GetParam() << " bytes";
}

INSTANTIATE_TEST_SUITE_P(Bytes, FrameRunt, ::testing::Range<std::size_t>(0, kEthHeaderSize),
                         [](const ::testing::TestParamInfo<std::size_t>& i) {
                           return "len" + std::to_string(i.param);
                         });

TEST(Frame, FourteenBytesIsAFrame) {
  const std::vector<std::uint8_t> f = with_header({0x86, 0xdd});
  ASSERT_EQ(f.size(), kEthHeaderSize);
  FrameView v;
  ASSERT_EQ(parse(f, &v), DropReason::kNone);
  EXPECT_EQ(v.dst, kDst);
  EXPECT_EQ(v.src, kSrc);
  EXPECT_EQ(v.ethertype, 0x86dd);
  EXPECT_FALSE(v.tagged);
  EXPECT_EQ(v.size, kEthHeaderSize);
}

// ---------------------------------------------------------------- tags

struct TagRow {
  const char* name;
  std::vector<std::uint8_t> rest;  // everything after the source MAC
  DropReason result;
  std::uint16_t ethertype;  // when result is kNone
  bool tagged;
};

void PrintTo(const TagRow& r, std::ostream* os) {
  *os << r.name;
}

class FrameTags : public ::testing::TestWithParam<TagRow> {};

TEST_P(FrameTags, SkipsUpToTwoTags) {
  const TagRow& row = GetParam();
  const std::vector<std::uint8_t> f = with_header(row.rest);
  FrameView v;
  const DropReason r = parse(f, &v);
  ASSERT_EQ(r, row.result) << to_string(r) << " for " << f.size() << " bytes";
  if (row.result != DropReason::kNone) return;
  EXPECT_EQ(v.dst, kDst);
  EXPECT_EQ(v.src, kSrc);
  EXPECT_EQ(v.ethertype, row.ethertype) << std::hex << v.ethertype;
  EXPECT_EQ(v.tagged, row.tagged);
  EXPECT_EQ(v.size, f.size());
}

// A payload so the frame has minimum size: tags never look into it.
const std::vector<std::uint8_t> kPayload(46, 0x81);

std::vector<std::uint8_t> cat(std::vector<std::uint8_t> a, const std::vector<std::uint8_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

INSTANTIATE_TEST_SUITE_P(
    Rows, FrameTags,
    ::testing::Values(
        TagRow{"untagged_ipv4", cat({0x08, 0x00}, kPayload), DropReason::kNone, 0x0800, false},
        TagRow{"untagged_pause", cat({0x88, 0x08}, kPayload), DropReason::kNone, 0x8808, false},
        TagRow{"dot1q", cat({0x81, 0x00, 0x00, 0x05, 0x86, 0xdd}, kPayload), DropReason::kNone,
               0x86dd, true},
        TagRow{"dot1q_exactly_18_bytes",
               {0x81, 0x00, 0x00, 0x05, 0x08, 0x06},
               DropReason::kNone,
               0x0806,
               true},
        TagRow{"dot1ad_single", cat({0x88, 0xa8, 0x00, 0x07, 0x08, 0x00}, kPayload),
               DropReason::kNone, 0x0800, true},
        TagRow{"qinq", cat({0x88, 0xa8, 0x00, 0x07, 0x81, 0x00, 0x00, 0x05, 0x08, 0x00}, kPayload),
               DropReason::kNone, 0x0800, true},
        TagRow{"qinq_exactly_22_bytes",
               {0x88, 0xa8, 0x00, 0x07, 0x81, 0x00, 0x00, 0x05, 0x88, 0xcc},
               DropReason::kNone,
               0x88cc,
               true},
        TagRow{"double_dot1q",
               cat({0x81, 0x00, 0x00, 0x01, 0x81, 0x00, 0x00, 0x02, 0x08, 0x06}, kPayload),
               DropReason::kNone, 0x0806, true},
        // Only two tags are skipped: the third tag's TPID is the ethertype.
        TagRow{
            "third_tag_not_skipped",
            cat({0x88, 0xa8, 0x00, 0x01, 0x81, 0x00, 0x00, 0x02, 0x81, 0x00, 0x00, 0x03}, kPayload),
            DropReason::kNone, 0x8100, true},
        // Truncated tags: shorter than the tags claim.
        TagRow{"dot1q_tpid_only_14", {0x81, 0x00}, DropReason::kRunt, 0, false},
        TagRow{"dot1q_no_inner_type_16", {0x81, 0x00, 0x00, 0x05}, DropReason::kRunt, 0, false},
        TagRow{"dot1q_half_inner_type_17",
               {0x81, 0x00, 0x00, 0x05, 0x08},
               DropReason::kRunt,
               0,
               false},
        TagRow{"qinq_no_second_tci_18",
               {0x88, 0xa8, 0x00, 0x07, 0x81, 0x00},
               DropReason::kRunt,
               0,
               false},
        TagRow{"qinq_no_inner_type_20",
               {0x88, 0xa8, 0x00, 0x07, 0x81, 0x00, 0x00, 0x05},
               DropReason::kRunt,
               0,
               false},
        TagRow{"qinq_half_inner_type_21",
               {0x88, 0xa8, 0x00, 0x07, 0x81, 0x00, 0x00, 0x05, 0x08},
               DropReason::kRunt,
               0,
               false}),
    [](const ::testing::TestParamInfo<TagRow>& i) { return std::string(i.param.name); });

// ---------------------------------------------------------------- oversize

struct SizeRow {
  std::size_t size;
  DropReason result;
};

void PrintTo(const SizeRow& r, std::ostream* os) {
  *os << r.size << " bytes";
}

class FrameSize : public ::testing::TestWithParam<SizeRow> {};

TEST_P(FrameSize, LargestFrameIsKMaxFrameSize) {
  std::vector<std::uint8_t> f = with_header({0x08, 0x00});
  f.resize(GetParam().size, 0x5a);
  FrameView v;
  EXPECT_EQ(parse(f, &v), GetParam().result) << GetParam().size << " bytes";
  if (GetParam().result == DropReason::kNone) {
    EXPECT_EQ(v.size, GetParam().size);
    EXPECT_EQ(v.ethertype, 0x0800);
  }
}

INSTANTIATE_TEST_SUITE_P(Rows, FrameSize,
                         ::testing::Values(SizeRow{1514, DropReason::kNone},
                                           SizeRow{kMaxFrameSize, DropReason::kNone},
                                           SizeRow{kMaxFrameSize + 1, DropReason::kOversize},
                                           SizeRow{2 * kMaxFrameSize, DropReason::kOversize}),
                         [](const ::testing::TestParamInfo<SizeRow>& i) {
                           return "len" + std::to_string(i.param.size);
                         });

// ---------------------------------------------------------------- names

TEST(FrameDropReason, NamesAreDistinct) {
  std::set<std::string> seen;
  for (std::size_t i = 0; i < static_cast<std::size_t>(DropReason::kCount); ++i) {
    const std::string name(to_string(static_cast<DropReason>(i)));
    EXPECT_FALSE(name.empty()) << "reason " << i;
    EXPECT_NE(name, "unknown") << "reason " << i;
    EXPECT_TRUE(seen.insert(name).second) << "reason " << i << " repeats \"" << name << "\"";
  }
  EXPECT_EQ(to_string(DropReason::kRunt), "runt");
  EXPECT_EQ(to_string(DropReason::kOversize), "oversize");
}

}  // namespace
}  // namespace umacvlan::core
