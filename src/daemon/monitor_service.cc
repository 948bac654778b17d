#include "daemon/monitor_service.h"

#include <spdlog/spdlog.h>

#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "io/netns.h"

namespace umacvlan::daemon {
namespace {

using nlohmann::json;

json netns_of(const std::map<ino_t, std::string>& named, ino_t home, ino_t ns) {
  if (ns == home) return nullptr;
  if (auto it = named.find(ns); it != named.end()) return it->second;
  return "net:[" + std::to_string(ns) + "]";
}

json link_event(const char* event, const LinkSummary& l, const json& netns) {
  return json{{"type", "link"},
              {"event", event},
              {"name", l.name},
              {"link", l.lower},
              {"netns", netns},
              {"ifindex", l.ifindex},
              {"address", l.mac.to_string()},
              {"mtu", l.mtu},
              {"mode", core::to_string(l.mode)},
              {"up", l.up}};
}

json port_event(const char* event, const PortSummary& p) {
  return json{{"type", "port"},       {"event", event}, {"name", p.name},
              {"carrier", p.carrier}, {"mtu", p.mtu},   {"address", p.mac.to_string()}};
}

}  // namespace

void MonitorService::open(ControlServer::StreamId id) {
  if (streams_.empty()) {
    // The baseline: what exists now is not news.
    std::vector<PortSummary> ports;
    std::vector<LinkSummary> links;
    links_.summary(&ports, &links);
    ports_.clear();
    links_seen_.clear();
    for (auto& p : ports) ports_.emplace(p.port, std::move(p));
    for (auto& l : links) links_seen_.emplace(std::make_pair(l.port, l.id), std::move(l));
    drops_seen_ = read_drops();
  }
  streams_.insert(id);
  spdlog::info("monitor {} started", id);
}

void MonitorService::closed(ControlServer::StreamId id) {
  if (streams_.erase(id) != 0) spdlog::info("monitor {} ended", id);
}

void MonitorService::send(const json& event) {
  const std::string line = event.dump(-1, ' ', false, json::error_handler_t::replace);
  for (ControlServer::StreamId id : streams_) server_.send_line(id, line);
}

void MonitorService::update() {
  if (streams_.empty()) return;
  std::vector<PortSummary> ports;
  std::vector<LinkSummary> links;
  links_.summary(&ports, &links);
  std::map<ino_t, std::string> named;
  bool named_read = false;
  auto netns = [&](ino_t ns) {
    if (!named_read) {
      named = io::named_netns();
      named_read = true;
    }
    return netns_of(named, io::current_netns_inode(), ns);
  };

  std::map<std::uint64_t, PortSummary> now_ports;
  for (auto& p : ports) now_ports.emplace(p.port, std::move(p));
  std::map<std::pair<std::uint64_t, core::DeviceId>, LinkSummary> now_links;
  for (auto& l : links) now_links.emplace(std::make_pair(l.port, l.id), std::move(l));

  for (const auto& [serial, p] : now_ports) {
    auto was = ports_.find(serial);
    if (was == ports_.end()) {
      send(port_event("added", p));
      continue;
    }
    const PortSummary& o = was->second;
    if (o.carrier != p.carrier) send(port_event("carrier", p));
    json changes = json::array();
    if (o.name != p.name) changes.push_back("name");
    if (o.mtu != p.mtu) changes.push_back("mtu");
    if (o.mac != p.mac) changes.push_back("address");
    if (o.ns != p.ns) changes.push_back("netns");
    if (!changes.empty()) {
      json e = port_event("changed", p);
      e["changes"] = std::move(changes);
      send(e);
    }
  }
  // Devices before their port: a lower deleted takes its devices with it.
  for (const auto& [key, o] : links_seen_) {
    if (now_links.count(key) == 0) send(link_event("removed", o, netns(o.ns)));
  }
  for (const auto& [key, l] : now_links) {
    auto was = links_seen_.find(key);
    if (was == links_seen_.end()) {
      send(link_event("added", l, netns(l.ns)));
      continue;
    }
    const LinkSummary& o = was->second;
    json changes = json::array();
    const bool moved = o.ns != l.ns;
    if (moved) changes.push_back("netns");
    if (o.name != l.name) changes.push_back("name");
    if (moved && o.ifindex != l.ifindex) changes.push_back("ifindex");
    if (o.mac != l.mac) changes.push_back("address");
    if (o.mtu != l.mtu) changes.push_back("mtu");
    if (o.mode != l.mode) changes.push_back("mode");
    if (o.up != l.up) changes.push_back("up");
    if (!changes.empty()) {
      json e = link_event(moved ? "moved" : "changed", l, netns(l.ns));
      e["changes"] = std::move(changes);
      if (o.name != l.name) e["old_name"] = o.name;
      send(e);
    }
  }
  for (const auto& [serial, o] : ports_) {
    if (now_ports.count(serial) == 0) send(port_event("removed", o));
  }
  ports_ = std::move(now_ports);
  links_seen_ = std::move(now_links);
}

void MonitorService::refused(const control::LinkRequest& req, const control::Reply& reply) {
  if (streams_.empty() || reply.error == 0) return;
  if (req.op != control::LinkOp::kAdd && req.op != control::LinkOp::kSet &&
      req.op != control::LinkOp::kDelete)
    return;
  const char* name = ::strerrorname_np(reply.error);
  json e = {{"type", "refused"},
            {"op", req.op == control::LinkOp::kDelete ? "del" : control::to_string(req.op)},
            {"name", req.name},
            {"errno", reply.error},
            {"error", name != nullptr ? name : std::to_string(reply.error)},
            {"message", reply.message.empty()
                            ? std::string("RTNETLINK answers: ") + std::strerror(reply.error)
                            : reply.message}};
  if (!req.link.empty()) e["link"] = req.link;
  send(e);
}

std::map<std::uint64_t, PortSummary> MonitorService::read_drops() {
  std::vector<PortSummary> ports;
  links_.summary(&ports, nullptr);  // the drops are the ports'
  std::map<std::uint64_t, PortSummary> out;
  for (auto& p : ports) out.emplace(p.port, std::move(p));
  drops_at_ = std::chrono::steady_clock::now();
  return out;
}

void MonitorService::drops() {
  if (streams_.empty()) return;
  const auto before = drops_at_;
  auto now = read_drops();
  const double seconds = std::chrono::duration<double>(drops_at_ - before).count();
  for (const auto& [serial, p] : now) {
    auto was = drops_seen_.find(serial);
    json by_reason = json::object();
    for (std::size_t r = 1; r < p.drops.drops.size(); ++r) {
      const std::uint64_t old = was != drops_seen_.end() ? was->second.drops.drops[r] : 0;
      if (p.drops.drops[r] > old)
        by_reason[std::string(core::to_string(static_cast<core::DropReason>(r)))] =
            p.drops.drops[r] - old;
    }
    if (!by_reason.empty()) {
      send(json{{"type", "drops"},
                {"port", p.name},
                {"seconds", std::round(seconds * 1000.0) / 1000.0},
                {"drops", std::move(by_reason)}});
    }
  }
  drops_seen_ = std::move(now);
}

}  // namespace umacvlan::daemon
