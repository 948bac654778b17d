// CaptureService: the control thread's side of `umacvlan capture`: one
// stream per capture, fed from the port's CaptureTap (capture_tap.h).
//
// Contract
// - open() starts a capture on the stream the ControlServer opened for a
//   `capture` request (the daemon's handler already checked that the device
//   or lower exists): the port gets a tap (published with the port's view)
//   and the device, or the whole port, is watched. closed() undoes that for
//   its stream; the tap goes when the port's last capture ends, so a port
//   without a capture pays nothing.
// - tick() (the loop calls it at least every kDrainMs while active())
//   drains the taps and sends each record to every capture it belongs to,
//   as one JSON line:
//     {"type":"frame","time":NS,"from":{"kind":"lower"|"device","name":N},
//      "len":L,"data":HEX,"to":[{"name":N,"reason":R,"queued":B}...],
//      "more":M,"host":B,"wire":B,"drop":REASON[,"dir":"in"|"out"]}
//   (dir for a device's capture: out = it sent the frame, in = the port
//   gave it the frame); about every second {"type":"stats","overflow":N,
//   "lost":N} (records the data path could not queue since the capture
//   began; lines this client was too slow to take); and, when the device or
//   the port goes away, {"type":"end","reason":SENTENCE}, after which the
//   stream closes. A slow client loses lines (counted), never holds the
//   loop.
// - Names are the devices' names where they live now (data: at most
//   kCaptureSnap bytes of the frame, len its whole length).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "control/control_protocol.h"
#include "daemon/capture_tap.h"
#include "daemon/control_server.h"
#include "io/netns.h"

namespace umacvlan::daemon {

class LinkService;

class CaptureService {
 public:
  static constexpr int kDrainMs = 10;
  static constexpr int kStatsMs = 1000;

  CaptureService(LinkService& links, ControlServer& server, std::size_t workers)
      : links_(links), server_(server), workers_(workers) {}

  void open(ControlServer::StreamId id, const control::LinkRequest& req, const io::NetnsFd& caller);
  void closed(ControlServer::StreamId id);
  void tick();
  bool active() const { return !sessions_.empty(); }

 private:
  using Clock = std::chrono::steady_clock;
  struct Session {
    std::uint64_t port = 0;
    core::DeviceId device = core::kNoDevice;  // kNoDevice: the whole port
    std::string name;                         // the device's or the lower's
    std::uint64_t lost = 0;
    std::uint64_t overflow_base = 0;
    bool ended = false;
    Clock::time_point next_stats;
  };
  struct Tapped {
    std::shared_ptr<CaptureTap> tap;
    std::size_t all = 0;                            // port captures
    std::map<core::DeviceId, std::size_t> devices;  // device captures
  };

  void end(ControlServer::StreamId id, Session& s, const std::string& reason);
  void send_stats(ControlServer::StreamId id, Session& s, Clock::time_point now);

  LinkService& links_;
  ControlServer& server_;
  std::size_t workers_;
  std::map<std::uint64_t, Tapped> taps_;  // by port serial
  std::map<ControlServer::StreamId, Session> sessions_;
};

}  // namespace umacvlan::daemon
