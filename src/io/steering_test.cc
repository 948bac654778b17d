// Steering against a real multi-queue TAP and a real fanout group (root):
// the queue a frame lands on is its CPU's while that CPU is calm, and the
// one it is saturated towards while it is marked saturated.
#include "io/steering.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <thread>
#include <vector>

#include "io/io_test_util.h"
#include "io/owned_fd.h"
#include "io/tap_device.h"

namespace umacvlan::io {
namespace {

using testing::ScopedNetns;

// The CPUs this test may run on.
std::vector<int> usable_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (::sched_getaffinity(0, sizeof set, &set) != 0) return cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  }
  return cpus;
}

// Runs fn on a thread pinned to cpu.
void on_cpu(int cpu, const std::function<void()>& fn) {
  std::thread t([&] {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    ASSERT_EQ(::sched_setaffinity(0, sizeof one, &one), 0);
    fn();
  });
  t.join();
}

// Frames of the test's UDP port waiting on each of the TAP's queues.
std::array<int, 2> udp_frames_per_queue(TapDevice& tap, std::uint16_t port) {
  std::array<int, 2> count{};
  FrameBatch batch;
  for (std::size_t q = 0; q < 2; ++q) {
    for (int round = 0; round < 50; ++round) {
      const int n = tap.read_burst(q, batch);
      if (n <= 0) break;
      for (auto f : batch) {
        // Ethernet, IPv4 without options, UDP: the destination port.
        if (f.size() >= 42 && f[12] == 0x08 && f[13] == 0x00 && f[23] == 17 &&
            ((f[36] << 8) | f[37]) == port)
          ++count[q];
      }
    }
  }
  return count;
}

// Now on the clock the program reads (bpf_ktime_get_ns).
std::uint64_t monotonic_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ULL +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

// The readers of queues 0 and 1 (the test, which has read everything sent
// so far) have caught up, a settling time after the last frame.
void catch_up(Steering& s) {
  std::this_thread::sleep_for(std::chrono::nanoseconds(2 * Steering::kSettleNs));
  const std::uint64_t now = monotonic_ns();
  s.caught_up(0, now);
  s.caught_up(1, now);
}

class SteeringTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root";
    ASSERT_TRUE(ns_.ok());
  }
  ScopedNetns ns_;
};

TEST_F(SteeringTest, OpenRefusesAnEmptyQueueTable) {
  Steering s;
  EXPECT_EQ(Steering::open({}, &s), -EINVAL);
  EXPECT_FALSE(s.valid());
}

TEST_F(SteeringTest, StatesAreKeptPerCpu) {
  const std::vector<std::uint32_t> table{1, 0};
  Steering s;
  std::string why;
  ASSERT_EQ(Steering::open(table, &s, &why), 0) << why;
  ASSERT_TRUE(s.valid());
  ASSERT_GE(s.cpus(), 1u);
  EXPECT_EQ(s.queue(0), 1u);
  EXPECT_FALSE(s.away(0));
  s.set_away(0, 0);
  EXPECT_EQ(s.away(0), std::optional<std::uint32_t>(0));
  s.set_away(0, Steering::kMaxQueue);  // out of range: ignored
  EXPECT_EQ(s.away(0), std::optional<std::uint32_t>(0));
  if (s.cpus() > 1) {
    EXPECT_EQ(s.queue(1), 0u);
    EXPECT_FALSE(s.away(1));
  }
  s.set_calm(0);
  EXPECT_FALSE(s.away(0));
  s.set_away(s.cpus(), 1);  // past the end: ignored
  EXPECT_FALSE(s.away(s.cpus()));
}

// A two-queue TAP in the test's namespace with an address and a neighbour,
// each CPU's frames meant for the queue its position says, crossed over
// (so that the test sees the table at work rather than TUN's own choice).
class SteeringTapTest : public SteeringTest {
 protected:
  void SetUp() override {
    SteeringTest::SetUp();
    if (IsSkipped()) return;
    ns_fd_ = ns_.open();
    ASSERT_EQ(TapDevice::open(ns_fd_, "umvst0", &tap_, 2), 0);
    ASSERT_EQ(tap_.set_up(true), 0);
    ASSERT_EQ(ns_.ip("addr add 10.99.0.1/24 dev umvst0"), 0);
    ASSERT_EQ(ns_.ip("neigh add 10.99.0.2 lladdr 02:00:00:00:00:02 dev umvst0"), 0);
    cpus_ = usable_cpus();
    ASSERT_FALSE(cpus_.empty());
    table_.assign(static_cast<std::size_t>(cpus_.back()) + 1, 0);
    for (std::size_t k = 0; k < cpus_.size(); ++k)
      table_[static_cast<std::size_t>(cpus_[k])] = static_cast<std::uint32_t>((k + 1) % 2);
  }
  void TearDown() override {
    if (tap_.valid()) {
      EXPECT_EQ(tap_.set_steering(-1), 0);
      EXPECT_EQ(tap_.destroy(), 0);
    }
  }

  void steer(const Steering::Options& o) {
    std::string why;
    ASSERT_EQ(Steering::open(table_, &steering_, &why, o), 0) << why;
    ASSERT_EQ(tap_.set_steering(steering_.prog_fd()), 0);
  }
  std::size_t queue_of(int cpu) const { return table_[static_cast<std::size_t>(cpu)]; }

  // n connected UDP sockets (each its own flow hash) to port.
  std::vector<OwnedFd> flows(int n, std::uint16_t port) {
    std::vector<OwnedFd> fds;
    EXPECT_EQ(
        run_in_netns(ns_fd_,
                     [&] {
                       for (int i = 0; i < n; ++i) {
                         OwnedFd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
                         sockaddr_in to{};
                         to.sin_family = AF_INET;
                         to.sin_port = htons(port);
                         ::inet_pton(AF_INET, "10.99.0.2", &to.sin_addr);
                         if (::connect(s.get(), reinterpret_cast<sockaddr*>(&to), sizeof to) != 0)
                           return -errno;
                         fds.push_back(std::move(s));
                       }
                       return 0;
                     }),
        0);
    return fds;
  }
  // One datagram on each, from cpu; then where they landed.
  std::array<int, 2> send_from(int cpu, const std::vector<OwnedFd>& fds, std::uint16_t port) {
    on_cpu(cpu, [&] {
      for (const OwnedFd& s : fds) ASSERT_EQ(::send(s.get(), "steer", 5, 0), 5);
    });
    return udp_frames_per_queue(tap_, port);
  }

  NetnsFd ns_fd_;
  TapDevice tap_;
  std::vector<int> cpus_;
  std::vector<std::uint32_t> table_;
  Steering steering_;
};

// New flows from one CPU: all on that CPU's queue while it is calm, all on
// the queue it sends away to while it does.
TEST_F(SteeringTapTest, NewFlowsTakeTheSendersCpuQueueOrWhereItSendsThemAway) {
  steer(Steering::Options{});
  const int cpu = cpus_.back();
  const std::size_t want = queue_of(cpu);

  const auto calm = send_from(cpu, flows(32, 4001), 4001);
  EXPECT_EQ(calm[want], 32) << "every flow on CPU " << cpu << "'s queue " << want;
  EXPECT_EQ(calm[1 - want], 0);

  steering_.set_away(static_cast<std::size_t>(cpu), static_cast<std::uint32_t>(1 - want));
  const auto away = send_from(cpu, flows(32, 4002), 4002);
  EXPECT_EQ(away[1 - want], 32) << "sent away: every new flow on queue " << 1 - want;
  EXPECT_EQ(away[want], 0);

  steering_.set_calm(static_cast<std::size_t>(cpu));
  const auto back = send_from(cpu, flows(32, 4003), 4003);
  EXPECT_EQ(back[want], 32) << "calm again: new flows on the CPU's queue";
}

// A flow that goes on sending keeps its queue when it sends from another
// CPU (no reordering); after a silence (gap 0 here: every time) it takes
// the queue of the CPU it sends from.
TEST_F(SteeringTapTest, AFlowKeepsItsQueueAcrossCpusUntilItFallsSilent) {
  if (cpus_.size() < 2) GTEST_SKIP() << "needs two CPUs";
  const int a = cpus_[0];
  const int b = cpus_[1];
  ASSERT_NE(queue_of(a), queue_of(b));
  constexpr std::uint64_t kLong = 2000000000;  // 2 s: the test's sends are well within
  steer(Steering::Options{kLong, kLong});
  const auto sticky = flows(8, 4011);
  EXPECT_EQ(send_from(a, sticky, 4011)[queue_of(a)], 8);
  EXPECT_EQ(send_from(b, sticky, 4011)[queue_of(a)], 8) << "still CPU " << a << "'s queue";

  steer(Steering::Options{0, kLong});
  const auto fresh = flows(8, 4012);
  EXPECT_EQ(send_from(a, fresh, 4012)[queue_of(a)], 8);
  catch_up(steering_);
  EXPECT_EQ(send_from(b, fresh, 4012)[queue_of(b)], 8) << "silent long enough: CPU " << b;
}

// A flow changes queue only once the old queue's reader has caught up with
// it: told nothing, or told of a time before the flow's last frame (plus
// the settling time), the flow keeps its queue, whatever the silence
// (gap 0) or the time on it (hold 0).
TEST_F(SteeringTapTest, AFlowWaitsForItsOldQueueToCatchUpBeforeItMoves) {
  if (cpus_.size() < 2) GTEST_SKIP() << "needs two CPUs";
  const int a = cpus_[0];
  const int b = cpus_[1];
  ASSERT_NE(queue_of(a), queue_of(b));
  steer(Steering::Options{0, 0});
  const auto fds = flows(8, 4051);
  EXPECT_EQ(send_from(a, fds, 4051)[queue_of(a)], 8);
  EXPECT_EQ(send_from(b, fds, 4051)[queue_of(a)], 8) << "silent, but not caught up: kept";
  const std::uint64_t before = monotonic_ns();
  EXPECT_EQ(send_from(b, fds, 4051)[queue_of(a)], 8);
  steering_.caught_up(static_cast<std::uint32_t>(queue_of(a)), before);
  EXPECT_EQ(steering_.caught_up_at(static_cast<std::uint32_t>(queue_of(a))), before);
  EXPECT_EQ(send_from(b, fds, 4051)[queue_of(a)], 8) << "caught up before the last frame: kept";
  catch_up(steering_);
  EXPECT_EQ(send_from(b, fds, 4051)[queue_of(b)], 8) << "caught up: moved to CPU " << b;
  steering_.caught_up(static_cast<std::uint32_t>(queue_of(b)), before);  // older: ignored
  EXPECT_GT(steering_.caught_up_at(static_cast<std::uint32_t>(queue_of(b))), before);

  // The same for a CPU that sends away.
  steering_.set_away(static_cast<std::size_t>(b), static_cast<std::uint32_t>(queue_of(a)));
  EXPECT_EQ(send_from(b, fds, 4051)[queue_of(b)], 8) << "sent away, not caught up: kept";
  catch_up(steering_);
  EXPECT_EQ(send_from(b, fds, 4051)[queue_of(a)], 8) << "sent away, caught up: moved";
}

// Flows that started on a calm CPU move to the queue it sends away to
// (hold 0 here), and stay there when it calms down again.
TEST_F(SteeringTapTest, FlowsOfACpuThatSendsAwayMoveThere) {
  constexpr std::uint64_t kLong = 2000000000;
  steer(Steering::Options{kLong, 0});
  const int cpu = cpus_.back();
  const std::size_t own = queue_of(cpu);
  const auto fds = flows(32, 4021);
  EXPECT_EQ(send_from(cpu, fds, 4021)[own], 32);
  catch_up(steering_);
  steering_.set_away(static_cast<std::size_t>(cpu), static_cast<std::uint32_t>(1 - own));
  const auto moved = send_from(cpu, fds, 4021);
  EXPECT_EQ(moved[1 - own], 32) << "moved off CPU " << cpu << "'s queue";
  steering_.set_calm(static_cast<std::size_t>(cpu));
  EXPECT_EQ(send_from(cpu, fds, 4021), moved) << "no move back while they send";
}

// A flow that moved moves again, from whichever CPU it sends on, when that
// CPU sends it elsewhere (hold 0 here: at once).
TEST_F(SteeringTapTest, AMovedFlowFollowsTheCpuItSendsOn) {
  if (cpus_.size() < 2) GTEST_SKIP() << "needs two CPUs";
  const int a = cpus_[0];
  const int b = cpus_[1];
  ASSERT_NE(queue_of(a), queue_of(b));
  constexpr std::uint64_t kLong = 2000000000;
  steer(Steering::Options{kLong, 0});
  const auto fds = flows(8, 4031);
  EXPECT_EQ(send_from(a, fds, 4031)[queue_of(a)], 8);
  catch_up(steering_);
  steering_.set_away(static_cast<std::size_t>(a), static_cast<std::uint32_t>(queue_of(b)));
  EXPECT_EQ(send_from(a, fds, 4031)[queue_of(b)], 8) << "moved to CPU " << b << "'s queue";
  EXPECT_EQ(send_from(b, fds, 4031)[queue_of(b)], 8) << "calm CPU " << b << ": kept";
  catch_up(steering_);
  steering_.set_away(static_cast<std::size_t>(b), static_cast<std::uint32_t>(queue_of(a)));
  EXPECT_EQ(send_from(b, fds, 4031)[queue_of(a)], 8) << "sent away from CPU " << b;
}

// On a CPU that sends away, a flow's silence changes nothing (gap 0 here:
// every frame comes after one): before hold_ns it keeps its queue, where a
// calm CPU's flows choose again.
TEST_F(SteeringTapTest, OnACpuThatSendsAwayASilenceKeepsTheFlowsQueue) {
  constexpr std::uint64_t kLong = 2000000000;
  steer(Steering::Options{0, kLong});
  const int cpu = cpus_.back();
  const std::size_t own = queue_of(cpu);
  const auto fds = flows(8, 4041);
  EXPECT_EQ(send_from(cpu, fds, 4041)[own], 8);
  steering_.set_away(static_cast<std::size_t>(cpu), static_cast<std::uint32_t>(1 - own));
  EXPECT_EQ(send_from(cpu, fds, 4041)[own], 8) << "kept: not hold_ns on the queue yet";
}

TEST_F(SteeringTest, OpenRefusesTimesTheProgramCannotHold) {
  Steering s;
  const std::vector<std::uint32_t> table{0};
  EXPECT_EQ(Steering::open(table, &s, nullptr, Steering::Options{1ULL << 31, 0}), -EINVAL);
  EXPECT_EQ(Steering::open(table, &s, nullptr, Steering::Options{0, 1ULL << 31}), -EINVAL);
  EXPECT_FALSE(s.valid());
}

// A fanout group with the program: a frame sent into the lower from a CPU
// lands on the member socket that CPU's entry names.
TEST_F(SteeringTest, FanoutMemberFollowsTheSendersCpu) {
  ASSERT_EQ(ns_.ip("link add umvfa type veth peer name umvfb"), 0);
  ASSERT_EQ(ns_.ip("link set umvfa up"), 0);
  ASSERT_EQ(ns_.ip("link set umvfb up"), 0);
  const NetnsFd ns = ns_.open();
  const int a = testing::ifindex_in(ns, "umvfa");
  const int b = testing::ifindex_in(ns, "umvfb");
  ASSERT_GT(a, 0);
  ASSERT_GT(b, 0);

  const std::vector<int> cpus = usable_cpus();
  ASSERT_FALSE(cpus.empty());
  std::vector<std::uint32_t> table(static_cast<std::size_t>(cpus.back()) + 1, 0);
  for (std::size_t k = 0; k < cpus.size(); ++k)
    table[static_cast<std::size_t>(cpus[k])] = static_cast<std::uint32_t>((k + 1) % 2);
  // gap 0: the same frame sent from each CPU is one flow if it has a hash.
  Steering steering;
  std::string why;
  ASSERT_EQ(Steering::open(table, &steering, &why, Steering::Options{0, 0}), 0) << why;

  PacketLower::Options o;
  o.fanout_group = static_cast<int>(::getpid() & 0xffff);
  o.fanout_prog = steering.prog_fd();
  std::array<PacketLower, 2> members;
  for (auto& m : members) ASSERT_EQ(PacketLower::open(ns, a, &m, o), 0);
  PacketLower sender;
  ASSERT_EQ(PacketLower::open(ns, b, &sender), 0);

  // One frame per CPU, marked with it (made up front: GCC 12 sees a false
  // array bound in make_frame() inlined into the loop).
  std::vector<std::vector<std::uint8_t>> frames;
  for (const int cpu : cpus) {
    frames.push_back(testing::make_frame(testing::kMacA, testing::kMacB,
                                         0x5100 + static_cast<std::uint32_t>(cpu)));
  }
  for (std::size_t k = 0; k < cpus.size(); ++k) {
    const int cpu = cpus[k];
    const std::uint32_t marker = 0x5100 + static_cast<std::uint32_t>(cpu);
    const auto& frame = frames[k];
    on_cpu(cpu, [&] {
      for (int i = 0; i < 8; ++i) ASSERT_EQ(sender.send(frame), 0);
    });
    std::array<int, 2> got{};
    FrameBatch batch;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (got[0] + got[1] < 8 && std::chrono::steady_clock::now() < deadline) {
      for (std::size_t m = 0; m < 2; ++m) {
        if (members[m].receive_burst(batch) < 0) continue;
        for (auto f : batch) {
          if (f.size() >= 18 && f[14] == ((marker >> 24) & 0xff) &&
              f[15] == ((marker >> 16) & 0xff) && f[16] == ((marker >> 8) & 0xff) &&
              f[17] == (marker & 0xff))
            ++got[m];
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    const std::size_t want = table[static_cast<std::size_t>(cpu)];
    EXPECT_EQ(got[want], 8) << "sent on CPU " << cpu << ": member " << want;
    EXPECT_EQ(got[1 - want], 0);
    catch_up(steering);  // everything read: the next CPU's frames may move
  }
}

}  // namespace
}  // namespace umacvlan::io
