#include "io/cpu_load.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <thread>

namespace umacvlan::io {
namespace {

TEST(ParseCpuTimes, ReadsEachCpuLineAndSkipsTheSummary) {
  const auto cpus = parse_cpu_times(
      "cpu  100 0 50 800 50 0 0 0 0 0\n"
      "cpu0 60 0 20 400 20 0 0 0 0 0\n"
      "cpu1 40 0 30 400 30 0 0 0 0 0\n"
      "intr 12345 1 2 3\n"
      "ctxt 999\n");
  ASSERT_EQ(cpus.size(), 2u);
  EXPECT_EQ(cpus[0].total, 500u);
  EXPECT_EQ(cpus[0].busy, 80u);  // idle and iowait are not busy
  EXPECT_EQ(cpus[1].total, 500u);
  EXPECT_EQ(cpus[1].busy, 70u);
}

TEST(ParseCpuTimes, StealIsBusyAndGapsStayEmpty) {
  // cpu1 offline: no line; cpu2's steal (8th column) counts as busy.
  const auto cpus = parse_cpu_times(
      "cpu0 1 1 1 7 0 0 0 0\n"
      "cpu2 0 0 0 5 0 0 0 5\n");
  ASSERT_EQ(cpus.size(), 3u);
  EXPECT_EQ(cpus[0].busy, 3u);
  EXPECT_EQ(cpus[1].total, 0u);
  EXPECT_EQ(cpus[2].busy, 5u);
  EXPECT_EQ(cpus[2].total, 10u);
}

TEST(ParseCpuTimes, MalformedLinesAreLeftOut) {
  const auto cpus = parse_cpu_times(
      "cpu0 1 2 3\n"            // too few columns
      "cpux 1 2 3 4 5 6 7 8\n"  // no number
      "cpu1 1 1 1 1 1 1 1 1");  // no newline at the end
  ASSERT_EQ(cpus.size(), 2u);
  EXPECT_EQ(cpus[0].total, 0u);
  EXPECT_EQ(cpus[1].total, 8u);
  EXPECT_EQ(cpus[1].busy, 6u);
  EXPECT_TRUE(parse_cpu_times("").empty());
  EXPECT_TRUE(parse_cpu_times("cpu99999999999999999999 1 1 1 1 1 1 1 1\n").empty());
}

TEST(CpuLoad, FirstSampleIsUnknownThenSharesBetweenZeroAndOne) {
  CpuLoad load;
  ASSERT_EQ(load.open(), 0);
  std::vector<double> busy;
  ASSERT_EQ(load.sample(&busy), 0);
  ASSERT_FALSE(busy.empty());
  for (const double b : busy) EXPECT_EQ(b, -1.0);
  // Keep this CPU busy long enough for the ticks to move (USER_HZ 100).
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(120);
  volatile std::uint64_t spin = 0;
  while (std::chrono::steady_clock::now() < until) spin = spin + 1;
  ASSERT_EQ(load.sample(&busy), 0);
  bool some_known = false;
  for (const double b : busy) {
    if (b < 0) continue;
    some_known = true;
    EXPECT_LE(b, 1.0);
    EXPECT_GE(b, 0.0);
  }
  EXPECT_TRUE(some_known);
}

TEST(CpuLoad, SampleBeforeOpenFails) {
  CpuLoad load;
  std::vector<double> busy;
  EXPECT_EQ(load.sample(&busy), -EBADF);
}

}  // namespace
}  // namespace umacvlan::io
