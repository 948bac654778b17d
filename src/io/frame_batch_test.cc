#include "io/frame_batch.h"

#include <gtest/gtest.h>

#include <cstring>
#include <utility>

namespace umacvlan::io {
namespace {

TEST(FrameBatch, CommitMakesViewsOfConsecutiveSlots) {
  FrameBatch b;
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.slot_size(), kDefaultSlotSize);
  std::memset(b.slot(0).data(), 0xaa, 60);
  b.commit(60);
  std::memset(b.slot(1).data(), 0xbb, 1514);
  b.commit(1514);
  ASSERT_EQ(b.count, 2u);
  EXPECT_EQ(b[0].size(), 60u);
  EXPECT_EQ(b[1].size(), 1514u);
  EXPECT_EQ(b[0][59], 0xaa);
  EXPECT_EQ(b[1][0], 0xbb);
  EXPECT_EQ(b[1].data(), b.slot(1).data());
  std::size_t n = 0;
  for (auto f : b) n += f.size();
  EXPECT_EQ(n, 60u + 1514u);
}

TEST(FrameBatch, FullAtCapacityAndClearResetsCounts) {
  FrameBatch b(128);
  EXPECT_EQ(b.slot_size(), 128u);
  for (std::size_t i = 0; i < FrameBatch::capacity(); ++i) b.commit(64);
  EXPECT_TRUE(b.full());
  b.dropped_oversize = 3;
  b.clear();
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.dropped_oversize, 0u);
}

TEST(FrameBatch, SlotsDoNotOverlapAndMoveKeepsViews) {
  FrameBatch b(100);
  EXPECT_EQ(b.slot(1).data() - b.slot(0).data(), 100);
  b.slot(0)[0] = 7;
  b.commit(1);
  const auto* before = b[0].data();
  FrameBatch moved(std::move(b));
  ASSERT_EQ(moved.count, 1u);
  EXPECT_EQ(moved[0].data(), before);
  EXPECT_EQ(moved[0][0], 7);
}

TEST(FrameBatch, EachFrameKeepsItsVnetHeaderZeroWhenNoneWasGiven) {
  FrameBatch b;
  VnetHeader gso;
  gso.flags = kVnetNeedsCsum;
  gso.gso_type = kVnetGsoTcpv4;
  gso.hdr_len = 66;
  gso.gso_size = 1448;
  gso.csum_start = 34;
  gso.csum_offset = 16;
  b.commit(1514, gso);
  b.commit(60);
  ASSERT_EQ(b.count, 2u);
  EXPECT_EQ(std::memcmp(&b.vnet[0], &gso, sizeof(gso)), 0);
  const VnetHeader zero{};
  EXPECT_EQ(std::memcmp(&b.vnet[1], &zero, sizeof(zero)), 0);
  b.clear();
  b.commit(60);
  EXPECT_EQ(std::memcmp(&b.vnet[0], &zero, sizeof(zero)), 0) << "a refill replaces the header";
}

TEST(FrameBatch, TinySlotSizeIsClamped) {
  FrameBatch b(1);
  EXPECT_EQ(b.slot_size(), 64u);
}

}  // namespace
}  // namespace umacvlan::io
