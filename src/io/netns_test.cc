// Needs root. Namespaces of its own (ScopedNetns).
#include "io/netns.h"

#include <gtest/gtest.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>

#include "io/io_test_util.h"
#include "io/owned_fd.h"

namespace umacvlan::io {
namespace {

using testing::ScopedNetns;

class RunInNetnsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root";
    ASSERT_TRUE(a_.ok());
    ASSERT_TRUE(b_.ok());
    home_ = current_netns_inode();
    ASSERT_NE(home_, 0u);
  }
  ScopedNetns a_, b_;
  ino_t home_ = 0;
};

TEST_F(RunInNetnsTest, RunsThereReturnsItsValueAndComesBack) {
  const NetnsFd a = a_.open();
  ino_t seen = 0;
  EXPECT_EQ(run_in_netns(a,
                         [&] {
                           seen = current_netns_inode();
                           return 42;
                         }),
            42);
  EXPECT_EQ(seen, a.inode());
  EXPECT_NE(seen, home_);
  EXPECT_EQ(current_netns_inode(), home_);
  // Failures come back as they are.
  EXPECT_EQ(run_in_netns(a, [] { return -ENODEV; }), -ENODEV);
  EXPECT_EQ(current_netns_inode(), home_);
}

TEST_F(RunInNetnsTest, HereRunsInlineAndAnInvalidFdRunsNothing) {
  int calls = 0;
  EXPECT_EQ(run_in_netns(current_netns(),
                         [&] {
                           ++calls;
                           return current_netns_inode() == home_ ? 0 : -1;
                         }),
            0);
  EXPECT_EQ(run_in_netns(NetnsFd(), [&] { return ++calls; }), -EBADF);
  EXPECT_EQ(calls, 1);
}

TEST_F(RunInNetnsTest, CallsNestAndEachLevelGetsItsNamespaceBack) {
  const NetnsFd a = a_.open(), b = b_.open();
  ino_t inner = 0, after_inner = 0;
  ASSERT_EQ(run_in_netns(a,
                         [&] {
                           run_in_netns(b, [&] {
                             inner = current_netns_inode();
                             return 0;
                           });
                           after_inner = current_netns_inode();
                           return 0;
                         }),
            0);
  EXPECT_EQ(inner, b.inode());
  EXPECT_EQ(after_inner, a.inode());
  EXPECT_EQ(current_netns_inode(), home_);
}

TEST_F(RunInNetnsTest, AThrowingCallableStillLeavesTheThreadAtHome) {
  const NetnsFd a = a_.open();
  EXPECT_THROW(run_in_netns(a, []() -> int { throw std::runtime_error("boom"); }),
               std::runtime_error);
  EXPECT_EQ(current_netns_inode(), home_);
}

// What the callable opens stays in that namespace after the call: a socket
// made there finds a device that only that namespace has.
TEST_F(RunInNetnsTest, ASocketMadeThereStaysThere) {
  ASSERT_EQ(a_.ip("link add only-in-a type veth peer name only-in-a-p"), 0);
  const NetnsFd a = a_.open();
  OwnedFd sock;
  ASSERT_EQ(run_in_netns(a,
                         [&] {
                           sock = OwnedFd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
                           return sock.valid() ? 0 : -errno;
                         }),
            0);
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, "only-in-a", IFNAMSIZ - 1);
  EXPECT_EQ(::ioctl(sock.get(), SIOCGIFINDEX, &ifr), 0) << std::strerror(errno);
  EXPECT_EQ(ifr.ifr_ifindex, a_.ifindex("only-in-a"));
  EXPECT_EQ(::if_nametoindex("only-in-a"), 0u) << "this thread is not in a";
}

}  // namespace
}  // namespace umacvlan::io
