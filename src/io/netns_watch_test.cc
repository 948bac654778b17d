// Needs root. Namespaces of its own (ScopedNetns), processes of its own.
#include "io/netns_watch.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>

#include "io/io_test_util.h"
#include "io/netns.h"
#include "io/packet_lower.h"

namespace umacvlan::io {
namespace {

using testing::ScopedNetns;

bool contains(const std::vector<ino_t>& v, ino_t x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

// Whether the watch's fd becomes readable within ms.
bool fires(const NetnsWatch& w, int ms) {
  pollfd p{w.fd(), POLLIN, 0};
  return ::poll(&p, 1, ms) == 1;
}

class NetnsWatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root";
    ASSERT_EQ(NetnsWatch::open(&watch_), 0);
  }
  NetnsWatch watch_;
};

TEST_F(NetnsWatchTest, AMountedNamespaceIsAliveUntilUnmounted) {
  ScopedNetns ns;
  ASSERT_TRUE(ns.ok());
  // Our own reference (what the daemon's sockets are): it does not count.
  const NetnsFd held = ns.open();
  PacketLower socket_there;
  ASSERT_EQ(PacketLower::open(held, 1, &socket_there, PacketLower::Options{.ring = false}), 0);
  const ino_t inode = held.inode();
  watch_.watch(inode);
  EXPECT_TRUE(watch_.scan().empty());
  EXPECT_EQ(watch_.holders(inode).mounts, 1);
  EXPECT_EQ(watch_.holders(inode).processes, 0);

  ns.remove();  // ip netns del: an unmount
  EXPECT_TRUE(fires(watch_, 2000)) << "the unmount must wake the watch";
  EXPECT_TRUE(contains(watch_.scan(), inode));
  // Still ours to drop: the namespace lives while we hold it.
  EXPECT_TRUE(contains(watch_.scan(), inode));
  watch_.unwatch(inode);
  EXPECT_TRUE(watch_.scan().empty());
}

TEST_F(NetnsWatchTest, AProcessInsideKeepsItAliveAndItsExitWakesTheWatch) {
  ScopedNetns ns;
  ASSERT_TRUE(ns.ok());
  const NetnsFd held = ns.open();
  const ino_t inode = held.inode();
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::setns(held.get(), 0);
    ::pause();
    ::_exit(0);
  }
  // Wait until the child is inside.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (netns_of_pid(child).inode() != inode && std::chrono::steady_clock::now() < deadline) {
    ::usleep(10000);
  }
  ns.remove();
  watch_.watch(inode);
  EXPECT_TRUE(watch_.scan().empty());
  EXPECT_EQ(watch_.holders(inode).processes, 1);
  EXPECT_EQ(watch_.holders(inode).mounts, 0);

  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  EXPECT_TRUE(fires(watch_, 2000)) << "the holder's exit must wake the watch";
  EXPECT_TRUE(contains(watch_.scan(), inode));
}

TEST_F(NetnsWatchTest, AnFdInAnotherProcessKeepsItAlive) {
  ScopedNetns ns;
  ASSERT_TRUE(ns.ok());
  const NetnsFd held = ns.open();
  const ino_t inode = held.inode();
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Keeps its inherited fd of the namespace, lives in ours.
    ::close(ready[0]);
    (void)!::write(ready[1], "x", 1);
    ::pause();
    ::_exit(0);
  }
  ::close(ready[1]);
  char c;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ::close(ready[0]);
  ns.remove();
  watch_.watch(inode);
  EXPECT_TRUE(watch_.scan().empty());
  EXPECT_GE(watch_.holders(inode).fds, 1);
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  EXPECT_TRUE(contains(watch_.scan(), inode));
}

TEST_F(NetnsWatchTest, NothingWatchedNothingReported) {
  EXPECT_TRUE(watch_.scan().empty());
}

}  // namespace
}  // namespace umacvlan::io
