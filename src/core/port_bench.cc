// Decisions per second of the receive path: unicast with 1, 64 and 4096
// devices (the lookup must not grow with the device count), and a bridge
// device's broadcast to 64 siblings, and a device's group frame that none
// of 1000 siblings joined (each holds the three groups an IPv6 device
// joins: an idle port's router solicitations and MLD reports). Frames are
// decided in bursts of 64, as the dataplane does. Also the lower's filter
// of 1000 such devices, which every configuration change computes.
#include <benchmark/benchmark.h>

#include <vector>

#include "core/port.h"

using namespace umacvlan::core;

namespace {

constexpr std::size_t kBurst = 64;

std::vector<std::uint8_t> make_frame(MacAddress dst, MacAddress src) {
  std::vector<std::uint8_t> f(60, 0);
  for (int i = 0; i < 6; ++i) {
    f[i] = dst.octets()[i];
    f[6 + i] = src.octets()[i];
  }
  f[12] = 0x08;
  return f;
}

Port make_port(int n, Mode mode) {
  LowerState l;
  l.mac = MacAddress::from_u64(0x0200000000eeULL);
  l.unicast_filter = true;
  Port port(l);
  for (int i = 0; i < n; ++i) {
    DeviceSpec s;
    s.name = "d" + std::to_string(i);
    s.mode = mode;
    s.address = MacAddress::from_u64(0x021000000000ULL + static_cast<std::uint64_t>(i) * 7919);
    DeviceId id;
    (void)port.add_device(s, 0, &id);
    DeviceChange up;
    up.up = true;
    (void)port.change_device(id, up);
  }
  return port;
}

void BM_UnicastReceive(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  Port port = make_port(n, Mode::kBridge);
  std::vector<std::vector<std::uint8_t>> frames;
  for (std::size_t i = 0; i < kBurst; ++i) {
    const auto dst =
        MacAddress::from_u64(0x021000000000ULL + static_cast<std::uint64_t>((i * 37) % n) * 7919);
    frames.push_back(make_frame(dst, MacAddress::from_u64(0x02aa00000001ULL)));
  }
  DecisionBatch batch;
  for (auto _ : state) {
    batch.clear();
    for (const auto& f : frames) port.receive(f, batch);
    benchmark::DoNotOptimize(batch[kBurst - 1]);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kBurst));
  state.counters["decisions_per_s"] = benchmark::Counter(
      static_cast<double>(state.iterations() * kBurst), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_UnicastReceive)->Arg(1)->Arg(64)->Arg(4096);

// Bursts of kBurst frames to dst, each sent by the port's first device.
void transmit_bursts(benchmark::State& state, const Port& port, MacAddress dst) {
  const auto sender = port.device_ids().front();
  const auto f = make_frame(dst, port.device(sender)->mac);
  DecisionBatch batch;
  for (auto _ : state) {
    batch.clear();
    for (std::size_t i = 0; i < kBurst; ++i) port.transmit(sender, f, batch);
    benchmark::DoNotOptimize(batch[kBurst - 1]);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kBurst));
  state.counters["decisions_per_s"] = benchmark::Counter(
      static_cast<double>(state.iterations() * kBurst), benchmark::Counter::kIsRate);
}

void BM_BridgeBroadcast64(benchmark::State& state) {
  const Port port = make_port(65, Mode::kBridge);
  transmit_bursts(state, port, MacAddress::broadcast());
}
BENCHMARK(BM_BridgeBroadcast64);

// n up bridge devices, each in the three groups an IPv6 device joins.
Port make_joined_port(int n) {
  Port port = make_port(n, Mode::kBridge);
  for (DeviceId id : port.device_ids()) {
    const std::uint64_t low = port.device(id)->mac.to_u64() & 0xffffff;
    DeviceChange c;
    c.multicast = {MacAddress::from_u64(0x01005e000001ULL), MacAddress::from_u64(0x333300000001ULL),
                   MacAddress::from_u64(0x3333ff000000ULL | low)};
    (void)port.change_device(id, c);
  }
  return port;
}

void BM_GroupNobodyJoined1000(benchmark::State& state) {
  Port port = make_joined_port(1001);
  // ff02::2, all routers: where a router solicitation goes.
  transmit_bursts(state, port, MacAddress::from_u64(0x333300000002ULL));
}
BENCHMARK(BM_GroupNobodyJoined1000);

// The lower's filter with 1000 such devices up: the daemon computes it
// after every change (an add, a device's groups changing).
void BM_LowerFilter1000(benchmark::State& state) {
  const Port port = make_joined_port(1000);
  for (auto _ : state) benchmark::DoNotOptimize(port.lower_filter());
}
BENCHMARK(BM_LowerFilter1000);

}  // namespace

BENCHMARK_MAIN();
