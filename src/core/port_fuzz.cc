// libFuzzer target over the frame path: the first bytes of the input build a
// port (modes, flags, source lists, subscriptions, queue limits), the rest
// are frames fed to receive() and transmit(). The properties checked are the
// engine's invariants: no crash, no out-of-range target, only up devices
// receive, a bridge device never gets its own multicast transmission back.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "core/port.h"

using namespace umacvlan::core;

namespace {

MacAddress mac_n(std::uint8_t n) {
  return MacAddress::from_u64(0x020000000000ULL | n);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 8) return 0;
  LowerState lower;
  lower.mac = mac_n(0xee);
  lower.unicast_filter = data[0] & 1;
  Port port(lower);
  const int ndev = 1 + data[1] % 6;
  for (int i = 0; i < ndev; ++i) {
    const std::uint8_t b = data[2 + i % 6];
    DeviceSpec spec;
    spec.name = "d" + std::to_string(i);
    spec.address = mac_n(static_cast<std::uint8_t>(i + 1));
    static constexpr Mode kModes[] = {Mode::kPrivate, Mode::kVepa, Mode::kBridge, Mode::kPassthru,
                                      Mode::kSource};
    spec.mode = kModes[b % 5];
    if (spec.mode == Mode::kSource) {
      spec.flags = (b & 0x20) ? kFlagNoDst : 0;
      spec.macaddr = {SourceOp::kSet, {mac_n(static_cast<std::uint8_t>(b % 8)), mac_n(0xee)}};
    }
    spec.bcqueuelen = (b >> 3) % 3;
    spec.bclim = static_cast<std::int32_t>(b % 4) - 1;
    DeviceId id;
    if (!port.add_device(spec, b, &id).ok()) continue;
    DeviceChange up;
    up.up = (b & 0x40) == 0;
    up.multicast = std::vector<MacAddress>{MacAddress::from_u64(0x01005e000001ULL)};
    up.allmulti = (b & 0x80) != 0;
    (void)port.change_device(id, up);
  }
  DecisionBatch batch;
  std::size_t at = 8;
  while (at < size) {
    const std::size_t len = std::min<std::size_t>(data[at - 1] % 80, size - at);
    const std::span<const std::uint8_t> frame(data + at, len);
    const DeviceId from = data[at - 2] % 8;
    batch.clear();
    if (data[at - 3] & 1) {
      port.transmit(from, frame, batch);
    } else {
      port.receive(frame, batch);
    }
    for (const Target& t : batch.targets(batch.back())) {
      const Device* d = port.device(t.device);
      if (d == nullptr || !d->up) std::abort();
      // A bridge device never gets its own multicast transmission back. (From
      // the wire it does: another host sharing its MAC, the kernel's 2026
      // fix, which the core follows.)
      const bool multicast = len >= 12 && (frame[0] & 1);
      const bool transmitted = (data[at - 3] & 1) != 0;
      if (multicast && transmitted && d->mode == Mode::kBridge && t.device == from) std::abort();
    }
    at += len + 3;
  }
  return 0;
}
