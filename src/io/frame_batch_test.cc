#include "io/frame_batch.h"

#include <gtest/gtest.h>

#include <cstring>
#include <utility>

namespace umacvlan::io {
namespace {

TEST(FrameBatch, CommitPacksFramesOneAfterTheOther) {
  FrameBatch b;
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.slot_size(), kDefaultSlotSize);
  EXPECT_EQ(b.next_slot().size(), kDefaultSlotSize + 1) << "the slot and its spare byte";
  std::memset(b.next_slot().data(), 0xaa, 60);
  b.commit(60);
  std::memset(b.next_slot().data(), 0xbb, 1514);
  b.commit(1514);
  ASSERT_EQ(b.count, 2u);
  EXPECT_EQ(b[0].size(), 60u);
  EXPECT_EQ(b[1].size(), 1514u);
  EXPECT_EQ(b[0][59], 0xaa);
  EXPECT_EQ(b[1][0], 0xbb);
  // Densely packed, each frame on a cache line of its own.
  EXPECT_EQ(b[1].data() - b[0].data(), 64);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(b[1].data()) % 64, 0u);
  EXPECT_EQ(b.next_slot().data() - b[1].data(), 1536);
  std::size_t n = 0;
  for (auto f : b) n += f.size();
  EXPECT_EQ(n, 60u + 1514u);
}

TEST(FrameBatch, FullAtCapacityAndClearResetsCounts) {
  FrameBatch b(128);
  EXPECT_EQ(b.slot_size(), 128u);
  for (std::size_t i = 0; i < FrameBatch::capacity(); ++i) {
    ASSERT_FALSE(b.full()) << i;
    b.commit(64);
  }
  EXPECT_TRUE(b.full());
  b.dropped_oversize = 3;
  b.clear();
  EXPECT_TRUE(b.empty());
  EXPECT_FALSE(b.full());
  EXPECT_EQ(b.dropped_oversize, 0u);
}

TEST(FrameBatch, ABatchOfSuperFramesHoldsManyOfThemAndSmallOnesBesides) {
  const std::size_t big = 65557;
  FrameBatch b(big);
  std::size_t supers = 0;
  while (!b.full()) {
    b.commit(big);
    ++supers;
  }
  EXPECT_GE(supers, kJumboFrames);
  b.clear();
  for (std::size_t i = 0; i < FrameBatch::capacity(); ++i) b.commit(1514);
  EXPECT_TRUE(b.full());
  EXPECT_EQ(b.count, FrameBatch::capacity());
}

TEST(FrameBatch, MoveKeepsViews) {
  FrameBatch b(100);
  b.next_slot()[0] = 7;
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
