// Needs root: a real TAP in a namespace of the test's own, read and written
// through io_uring.
#include "io/uring.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "io/io_test_util.h"
#include "io/packet_lower.h"
#include "io/tap_device.h"

namespace umacvlan::io {
namespace {

using testing::collect;
using testing::has_marker;
using testing::kMacA;
using testing::kMacB;
using testing::make_frame;
using testing::ScopedNetns;

class UringTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root";
    ASSERT_TRUE(ns_.ok());
    if (const int rc = ring_.open(); rc < 0) GTEST_SKIP() << "no io_uring here: " << strerror(-rc);
    const NetnsFd ns = ns_.open();
    ASSERT_EQ(TapDevice::open(ns, "umvtap0", &tap_), 0);
    ASSERT_EQ(tap_.set_up(true), 0);
    ASSERT_EQ(PacketLower::open(ns, tap_.ifindex(), &packet_), 0);
  }
  void TearDown() override { tap_.destroy(); }

  struct Done {
    std::uint64_t tag;
    int res;
    bool has_buffer;
    unsigned buffer;
  };
  std::vector<Done> submit_and_collect(unsigned n) {
    std::vector<Done> out;
    EXPECT_GE(ring_.submit(n), 0);
    ring_.drain([&](const io_uring_cqe& c) {
      out.push_back({c.user_data, c.res, Uring::has_buffer(c), Uring::buffer_id(c)});
    });
    return out;
  }

  ScopedNetns ns_;
  Uring ring_;
  TapDevice tap_;
  PacketLower packet_;  // the device's stack side of the TAP
};

TEST_F(UringTest, ReadsWhatTheDeviceSentIntoAProvidedBufferThenEagain) {
  const auto frame = make_frame(kMacB, kMacA, 0x5151, 100);
  ASSERT_EQ(packet_.send(frame), 0);  // the device transmits: the TAP fd reads it
  ASSERT_TRUE(ring_.prep_read(tap_.fd(), 7));
  ASSERT_TRUE(ring_.prep_read(tap_.fd(), 8));
  const auto done = submit_and_collect(2);
  ASSERT_EQ(done.size(), 2u);
  // Inline, in order: the frame (behind its virtio-net header), then nothing.
  EXPECT_EQ(done[0].tag, 7u);
  ASSERT_EQ(done[0].res, static_cast<int>(sizeof(VnetHeader) + frame.size()));
  ASSERT_TRUE(done[0].has_buffer);
  const auto buf = ring_.buffer(done[0].buffer);
  EXPECT_EQ(std::memcmp(buf.data() + sizeof(VnetHeader), frame.data(), frame.size()), 0);
  EXPECT_EQ(done[1].tag, 8u);
  EXPECT_EQ(done[1].res, -EAGAIN) << "the TAP fd is non-blocking: no waiting";
  EXPECT_FALSE(done[1].has_buffer) << "an empty read gives its buffer back";
  ring_.recycle(done[0].buffer);
}

TEST_F(UringTest, WritesReachTheDevicesStack) {
  std::vector<std::vector<std::uint8_t>> frames;
  std::vector<std::array<iovec, 2>> iovs(3);
  const VnetHeader plain{};
  for (std::uint32_t i = 0; i < 3; ++i) {
    frames.push_back(make_frame(kMacA, kMacB, 0x6000 + i, 80));
    iovs[i] = {iovec{const_cast<VnetHeader*>(&plain), sizeof plain},
               iovec{frames[i].data(), frames[i].size()}};
    ASSERT_TRUE(ring_.prep_writev(tap_.fd(), iovs[i].data(), 2, 100 + i));
  }
  const auto done = submit_and_collect(3);
  ASSERT_EQ(done.size(), 3u);
  for (std::uint32_t i = 0; i < 3; ++i) {
    EXPECT_EQ(done[i].tag, 100 + i);
    EXPECT_EQ(done[i].res, static_cast<int>(sizeof plain + frames[i].size()));
  }
  const auto got = collect(packet_, 3, [](auto f) {
    return has_marker(f, 0x6000) || has_marker(f, 0x6001) || has_marker(f, 0x6002);
  });
  EXPECT_EQ(got.size(), 3u);
}

TEST_F(UringTest, RecycledBuffersServeMoreReadsThanTheRingHolds) {
  const auto frame = make_frame(kMacB, kMacA, 0x7171, 60);
  for (unsigned i = 0; i < Uring::kBuffers + 10; ++i) {
    ASSERT_EQ(packet_.send(frame), 0);
    ASSERT_TRUE(ring_.prep_read(tap_.fd(), i));
    const auto done = submit_and_collect(1);
    ASSERT_EQ(done.size(), 1u);
    ASSERT_GT(done[0].res, 0) << "read " << i;
    ASSERT_TRUE(done[0].has_buffer);
    ring_.recycle(done[0].buffer);
  }
}

// Reads take the buffer recycled last (the one still in the caches), and
// with every buffer taken prep_read() refuses until one comes back.
TEST_F(UringTest, ReadsTakeTheLastRecycledBufferAndStopWhenNoneIsFree) {
  const auto frame = make_frame(kMacB, kMacA, 0x7272, 60);
  std::vector<unsigned> held;
  while (held.size() < Uring::kBuffers) {
    ASSERT_EQ(packet_.send(frame), 0);
    ASSERT_TRUE(ring_.prep_read(tap_.fd(), held.size()));
    const auto done = submit_and_collect(1);
    ASSERT_EQ(done.size(), 1u);
    ASSERT_GT(done[0].res, 0) << "read " << held.size();
    ASSERT_TRUE(done[0].has_buffer);
    EXPECT_EQ(done[0].tag, held.size()) << "the caller's datum comes back";
    held.push_back(done[0].buffer);
  }
  std::vector<unsigned> sorted = held;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(std::unique(sorted.begin(), sorted.end()), sorted.end()) << "each buffer once";
  EXPECT_EQ(ring_.free_buffers(), 0u);
  EXPECT_FALSE(ring_.prep_read(tap_.fd(), 1)) << "no buffer free";

  ring_.recycle(held[5]);
  ring_.recycle(held[9]);
  EXPECT_EQ(ring_.free_buffers(), 2u);
  ASSERT_EQ(packet_.send(frame), 0);
  ASSERT_TRUE(ring_.prep_read(tap_.fd(), 1));
  auto done = submit_and_collect(1);
  ASSERT_EQ(done.size(), 1u);
  ASSERT_TRUE(done[0].has_buffer);
  EXPECT_EQ(done[0].buffer, held[9]) << "the last recycled first";
  // An empty read gives its buffer back at once: the same one again.
  ASSERT_TRUE(ring_.prep_read(tap_.fd(), 2));
  done = submit_and_collect(1);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].res, -EAGAIN);
  EXPECT_FALSE(done[0].has_buffer);
  EXPECT_EQ(ring_.free_buffers(), 1u);
  ASSERT_EQ(packet_.send(frame), 0);
  ASSERT_TRUE(ring_.prep_read(tap_.fd(), 3));
  done = submit_and_collect(1);
  ASSERT_EQ(done.size(), 1u);
  ASSERT_TRUE(done[0].has_buffer);
  EXPECT_EQ(done[0].buffer, held[5]);
}

}  // namespace
}  // namespace umacvlan::io
