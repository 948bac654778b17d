// MonitorService: `umacvlan monitor`, events as they happen, one JSON line
// each, to every monitor stream the ControlServer opened.
//
// Contract
// - update() (the loop calls it after every turn while active()) compares
//   the ports and devices (LinkService::summary()) with what it saw last
//   and sends what changed, whoever changed it (a request, plain `ip`, a
//   namespace that died):
//     {"type":"link","event":"added"|"changed"|"moved"|"removed","name",
//      "link","netns"(null: the daemon's own),"ifindex","address","mtu",
//      "mode","up"[,"changes":[FIELD...]]}
//     {"type":"port","event":"added"|"removed"|"carrier"|"changed","name",
//      "carrier","mtu","address"[,"changes":[...]]}
//   A device's "moved" lists "netns" (and "name", "ifindex" when they
//   changed with it); "changed" lists the fields among name, address, mtu,
//   mode, up; a new name comes with "old_name".
// - refused() sends {"type":"refused","op","name"[,"link"],"errno","error",
//   "message"} for a request that was refused (nothing changed).
// - drops() (once a second) sends, per port that dropped frames since the
//   last call, {"type":"drops","port","seconds","drops":{REASON:N...}}.
// - A monitor that opens sees what happens from then on (no replay). A slow
//   reader loses lines (ControlServer bounds its buffer), never holds the
//   loop. Costs nothing while no monitor runs.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "control/control_protocol.h"
#include "core/port.h"
#include "daemon/control_server.h"
#include "daemon/link_service.h"

namespace umacvlan::daemon {

class MonitorService {
 public:
  MonitorService(LinkService& links, ControlServer& server) : links_(links), server_(server) {}

  void open(ControlServer::StreamId id);
  void closed(ControlServer::StreamId id);
  bool active() const { return !streams_.empty(); }

  void update();
  void refused(const control::LinkRequest& req, const control::Reply& reply);
  void drops();

 private:
  void send(const nlohmann::json& event);
  // Every port's drops so far, by serial (and when they were read).
  std::map<std::uint64_t, PortSummary> read_drops();

  LinkService& links_;
  ControlServer& server_;
  std::set<ControlServer::StreamId> streams_;
  std::map<std::uint64_t, PortSummary> ports_;
  std::map<std::pair<std::uint64_t, core::DeviceId>, LinkSummary> links_seen_;
  std::map<std::uint64_t, PortSummary> drops_seen_;
  std::chrono::steady_clock::time_point drops_at_;
};

}  // namespace umacvlan::daemon
