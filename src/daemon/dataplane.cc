#include "daemon/dataplane.h"

namespace umacvlan::daemon {

Dataplane::Dataplane() : rx_(core::kMaxFrameSize), tx_(core::kMaxFrameSize) {}

void Dataplane::deliver(PortRuntime& port, std::span<const std::uint8_t> frame,
                        const io::VnetHeader& vnet, const core::Verdict& v, bool queued_pass) {
  if (v.queued != queued_pass) return;
  for (const core::Target& t : decisions_.targets(v)) {
    auto it = port.devices.find(t.device);
    if (it == port.devices.end()) continue;
    const bool ok = it->second.tap.write(vnet, frame) == 0;
    if (!ok) ++counters_.tap_write_errors;
    port.port.count_rx(t.device, frame.size(), t.reason == core::Reason::kFlood, ok);
  }
}

int Dataplane::on_lower_readable(PortRuntime& port) {
  rx_.clear();
  const int n = port.lower.receive_burst(rx_);
  if (n < 0) return n;
  counters_.oversize += rx_.dropped_oversize;
  counters_.lower_rx_frames += rx_.count;
  decisions_.clear();
  for (std::size_t i = 0; i < rx_.count; ++i) port.port.receive(rx_[i], decisions_);
  // Inline deliveries first, then what went through the broadcast queue: the
  // kernel drains that queue from a work item after the burst.
  for (std::size_t i = 0; i < rx_.count; ++i)
    deliver(port, rx_[i], rx_.vnet[i], decisions_[i], false);
  for (std::size_t i = 0; i < rx_.count; ++i)
    deliver(port, rx_[i], rx_.vnet[i], decisions_[i], true);
  port.port.end_batch();
  return static_cast<int>(rx_.count);
}

int Dataplane::on_tap_readable(PortRuntime& port, DeviceRuntime& dev) {
  tx_.clear();
  const int n = dev.tap.read_burst(tx_);
  counters_.oversize += tx_.dropped_oversize;
  if (n < 0 && tx_.count == 0) return n;
  decisions_.clear();
  for (std::size_t i = 0; i < tx_.count; ++i) port.port.transmit(dev.id, tx_[i], decisions_);
  for (std::size_t i = 0; i < tx_.count; ++i) {
    const core::Verdict& v = decisions_[i];
    deliver(port, tx_[i], tx_.vnet[i], v, false);
    bool sent = v.drop != core::DropReason::kRunt && v.drop != core::DropReason::kOversize &&
                v.drop != core::DropReason::kUnknownSender;
    if (v.to_wire) {
      sent = port.lower.send(tx_.vnet[i], tx_[i]) == 0;
      if (sent) {
        ++counters_.lower_tx_frames;
      } else {
        ++counters_.lower_tx_errors;
      }
    }
    port.port.count_tx(dev.id, tx_[i].size(), sent);
  }
  port.port.end_batch();
  return n < 0 ? n : static_cast<int>(tx_.count);
}

}  // namespace umacvlan::daemon
