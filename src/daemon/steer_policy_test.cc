// decide_steering(): one load sample in, each CPU's state out.
#include "daemon/steer_policy.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <vector>

namespace umacvlan::daemon {
namespace {

using State = std::optional<std::uint32_t>;

// Two CPUs, worker w pinned to CPU w and taking CPU w's frames when calm.
struct TwoCpus {
  std::vector<double> busy{0.0, 0.0};
  std::vector<std::uint8_t> saturated{0, 0};
  std::vector<double> share{0.0, 0.0};
  std::vector<int> cpu{0, 1};
  std::vector<std::uint32_t> own{0, 1};
  std::vector<State> away{std::nullopt, std::nullopt};

  std::vector<State> decide() const {
    return decide_steering(SteerSample{busy, saturated, share, cpu, own, away});
  }
};

TEST(SteerPolicy, CalmCpusStayCalm) {
  TwoCpus t;
  t.busy = {0.5, 0.3};
  t.share = {0.4, 0.1};
  EXPECT_EQ(t.decide(), (std::vector<State>{std::nullopt, std::nullopt}));
}

TEST(SteerPolicy, ACpuSaturatedWithForwardingSendsItsFramesToTheOtherWorker) {
  TwoCpus t;  // a UDP flood's sender and worker 0 share CPU 0
  t.busy = {1.0, 0.2};
  t.saturated = {1, 0};
  t.share = {0.45, 0.0};
  EXPECT_EQ(t.decide(), (std::vector<State>{1u, std::nullopt}));
}

TEST(SteerPolicy, ACpuSaturatedBySomethingElseStaysCalm) {
  TwoCpus t;  // an application that polls keeps CPU 0 busy; worker 0 has little to do
  t.busy = {0.97, 0.1};
  t.saturated = {1, 0};
  t.share = {0.05, 0.0};
  EXPECT_EQ(t.decide(), (std::vector<State>{std::nullopt, std::nullopt}));
}

TEST(SteerPolicy, NoTargetWhenEveryOtherCpuIsSaturatedOrUnknown) {
  TwoCpus t;
  t.busy = {1.0, 0.95};
  t.saturated = {1, 1};
  t.share = {0.5, 0.5};
  EXPECT_EQ(t.decide(), (std::vector<State>{std::nullopt, std::nullopt}));
  t.busy = {1.0, -1.0};  // CPU 1's load unknown
  t.saturated = {1, 0};
  t.share = {0.5, 0.0};
  EXPECT_EQ(t.decide(), (std::vector<State>{std::nullopt, std::nullopt}));
}

TEST(SteerPolicy, SendingAwayGoesOnWhileTheTargetWorkerHasWork) {
  TwoCpus t;  // CPU 0 sends to worker 1; with its frames gone it is no longer saturated
  t.away = {1u, std::nullopt};
  t.busy = {0.55, 0.6};
  t.saturated = {0, 0};
  t.share = {0.0, 0.5};
  EXPECT_EQ(t.decide(), (std::vector<State>{1u, std::nullopt}));
  t.share = {0.0, 0.1};  // the flood is over
  EXPECT_EQ(t.decide(), (std::vector<State>{std::nullopt, std::nullopt}));
}

TEST(SteerPolicy, TwoCpusNeverSendToEachOther) {
  TwoCpus t;  // CPU 0 sends to worker 1; both CPUs saturated
  t.away = {1u, std::nullopt};
  t.busy = {0.9, 1.0};
  t.saturated = {1, 1};
  t.share = {0.0, 0.6};
  EXPECT_EQ(t.decide(), (std::vector<State>{1u, std::nullopt}));
  // CPU 0 calm now (its frames are gone), CPU 1 saturated: CPU 0 keeps
  // sending to worker 1, and CPU 1 may not send to worker 0.
  t.busy = {0.5, 1.0};
  t.saturated = {0, 1};
  EXPECT_EQ(t.decide(), (std::vector<State>{1u, std::nullopt}));
}

TEST(SteerPolicy, TheLeastBusyCalmCpuIsTheTarget) {
  std::vector<double> busy{1.0, 0.5, 0.2, 0.4};
  std::vector<std::uint8_t> saturated{1, 0, 0, 0};
  std::vector<double> share{0.5, 0.2, 0.0, 0.1};
  std::vector<int> cpu{0, 1, 2, 3};
  std::vector<std::uint32_t> own{0, 1, 2, 3};
  std::vector<State> away(4);
  EXPECT_EQ(decide_steering(SteerSample{busy, saturated, share, cpu, own, away}),
            (std::vector<State>{2u, std::nullopt, std::nullopt, std::nullopt}));
}

TEST(SteerPolicy, InputsOfTheWrongSizeCountAsUnknown) {
  std::vector<double> busy{1.0, 0.1};
  std::vector<std::uint8_t> saturated{1};  // CPU 1: not saturated
  std::vector<double> share{0.5};          // worker 1: takes nothing
  std::vector<int> cpu{0, 1, 7};           // worker 2 on a CPU past the sample
  std::vector<std::uint32_t> own{0, 1};
  std::vector<State> away;  // nobody sends away yet
  EXPECT_EQ(decide_steering(SteerSample{busy, saturated, share, cpu, own, away}),
            (std::vector<State>{1u, std::nullopt}));
  EXPECT_TRUE(decide_steering(SteerSample{}).empty());
}

}  // namespace
}  // namespace umacvlan::daemon
