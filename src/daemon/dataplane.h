// Dataplane: moves bursts of frames between a port's lower and its devices,
// doing exactly what the core decided.
//
// Frames keep the virtio-net header their source gave them (a device's GSO
// super-frame, a partial checksum): every TAP write and lower send of a frame
// carries the header it was read with, so the kernel segments or checksums
// only where the receiver needs it. The core sees the frames, never the
// headers.
//
// Contract: on_lower_readable() reads a burst from the lower's ring, asks
// core::Port::receive() for a verdict per frame, then writes each copy to its
// device's TAP (the broadcast queue's copies after the inline ones) and ends
// the burst. on_tap_readable() reads a burst a device sent, asks
// core::Port::transmit(), writes local copies to sibling TAPs and sends the
// rest out the lower. Every write's outcome is counted on the port (rx/tx,
// drops). Nothing allocates per frame; nothing logs per frame. A TAP read
// error is returned so the caller can drop the device.
#pragma once

#include "core/port.h"
#include "daemon/runtime.h"
#include "io/frame_batch.h"

namespace umacvlan::daemon {

struct DataplaneCounters {
  std::uint64_t lower_rx_frames = 0;
  std::uint64_t lower_tx_frames = 0;
  std::uint64_t lower_tx_errors = 0;
  std::uint64_t tap_write_errors = 0;
  std::uint64_t oversize = 0;
};

class Dataplane {
 public:
  Dataplane();

  // Returns the number of frames handled, or -errno from the lower.
  int on_lower_readable(PortRuntime& port);
  // Returns frames handled, or -errno if the TAP failed (device gone).
  int on_tap_readable(PortRuntime& port, DeviceRuntime& dev);

  const DataplaneCounters& counters() const { return counters_; }

 private:
  void deliver(PortRuntime& port, std::span<const std::uint8_t> frame, const io::VnetHeader& vnet,
               const core::Verdict& v, bool queued_pass);

  io::FrameBatch rx_;
  io::FrameBatch tx_;
  core::DecisionBatch decisions_;
  DataplaneCounters counters_;
};

}  // namespace umacvlan::daemon
