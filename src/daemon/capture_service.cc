#include "daemon/capture_service.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>
#include <vector>

#include "daemon/link_service.h"

namespace umacvlan::daemon {
namespace {

using nlohmann::json;

std::string hex(const std::uint8_t* data, std::size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(n * 2, '0');
  for (std::size_t i = 0; i < n; ++i) {
    out[2 * i] = kDigits[data[i] >> 4];
    out[2 * i + 1] = kDigits[data[i] & 0xf];
  }
  return out;
}

}  // namespace

void CaptureService::open(ControlServer::StreamId id, const control::LinkRequest& req,
                          const io::NetnsFd& caller) {
  Session s;
  const control::Reply r = links_.capture_target(req, caller, &s.port, &s.device, &s.name);
  if (r.error != 0) {
    // Gone between the reply and now (nothing runs in between, but say so).
    server_.send_line(id, json{{"type", "end"}, {"reason", r.message}}.dump());
    server_.end_stream(id);
    return;
  }
  Tapped& t = taps_[s.port];
  const bool fresh = t.tap == nullptr;
  if (fresh) t.tap = std::make_shared<CaptureTap>(workers_, links_.max_devices());
  if (s.device == core::kNoDevice) {
    if (t.all++ == 0) t.tap->watch_all(true);
  } else if (t.devices[s.device]++ == 0) {
    t.tap->watch_device(s.device, true);
  }
  if (fresh) links_.attach_capture(s.port, t.tap);
  s.overflow_base = t.tap->overflow();
  s.next_stats = Clock::now() + std::chrono::milliseconds(kStatsMs);
  spdlog::info("capture {} of {} started", id,
               s.device == core::kNoDevice ? "port " + s.name : "device " + s.name);
  sessions_.emplace(id, std::move(s));
}

void CaptureService::closed(ControlServer::StreamId id) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  const Session s = std::move(it->second);
  sessions_.erase(it);
  spdlog::info("capture {} of {} ended ({} lines lost to a slow reader)", id, s.name, s.lost);
  auto t = taps_.find(s.port);
  if (t == taps_.end()) return;
  Tapped& tapped = t->second;
  if (s.device == core::kNoDevice) {
    if (--tapped.all == 0) tapped.tap->watch_all(false);
  } else if (auto d = tapped.devices.find(s.device);
             d != tapped.devices.end() && --d->second == 0) {
    tapped.devices.erase(d);
    tapped.tap->watch_device(s.device, false);
  }
  if (tapped.all == 0 && tapped.devices.empty()) {
    links_.attach_capture(s.port, nullptr);
    taps_.erase(t);
  }
}

void CaptureService::end(ControlServer::StreamId id, Session& s, const std::string& reason) {
  if (s.ended) return;
  send_stats(id, s, Clock::now());
  server_.send_line(id, json{{"type", "end"}, {"reason", reason}}.dump());
  server_.end_stream(id);
  s.ended = true;
}

void CaptureService::send_stats(ControlServer::StreamId id, Session& s, Clock::time_point now) {
  s.next_stats = now + std::chrono::milliseconds(kStatsMs);
  auto t = taps_.find(s.port);
  const std::uint64_t overflow = t != taps_.end() ? t->second.tap->overflow() - s.overflow_base : 0;
  if (!server_.send_line(id,
                         json{{"type", "stats"}, {"overflow", overflow}, {"lost", s.lost}}.dump()))
    ++s.lost;
}

void CaptureService::tick() {
  const Clock::time_point now = Clock::now();
  for (auto& [port_serial, tapped] : taps_) {
    const auto port = port_serial;  // a plain variable: lambdas below capture it
    std::string lower;
    const core::Port* cp = links_.port_by_serial(port, &lower);
    std::vector<std::pair<ControlServer::StreamId, Session*>> here;
    for (auto& [id, s] : sessions_) {
      if (s.port == port && !s.ended) here.emplace_back(id, &s);
    }
    if (cp == nullptr) {
      tapped.tap->drain([](const CaptureRecord&) {});
      for (auto& [id, s] : here) end(id, *s, "the port of " + s->name + " is gone");
      continue;
    }
    std::map<core::DeviceId, std::string> names;
    auto name_of = [&](core::DeviceId d) -> const std::string& {
      auto [it, fresh] = names.try_emplace(d);
      if (fresh) {
        it->second = links_.device_name(port, d);
        if (it->second.empty()) it->second = "#" + std::to_string(d);
      }
      return it->second;
    };
    tapped.tap->drain([&](const CaptureRecord& r) {
      std::string line;  // built for the first capture that takes it
      auto text = [&]() -> const std::string& {
        if (!line.empty()) return line;
        json to = json::array();
        for (std::size_t i = 0; i < r.ntargets; ++i) {
          const core::Target& t = r.targets[i];
          to.push_back({{"name", name_of(t.device)},
                        {"reason", core::to_string(t.reason)},
                        {"queued", r.queued && t.reason == core::Reason::kFlood}});
        }
        json from = r.from == core::kNoDevice ? json{{"kind", "lower"}, {"name", lower}}
                                              : json{{"kind", "device"}, {"name", name_of(r.from)}};
        line = json{{"type", "frame"},
                    {"time", r.time_ns},
                    {"from", std::move(from)},
                    {"len", r.len},
                    {"data", hex(r.data.data(), r.caplen)},
                    {"to", std::move(to)},
                    {"more", r.targets_total - r.ntargets},
                    {"host", r.to_host},
                    {"wire", r.to_wire},
                    {"drop", core::to_string(r.drop)}}
                   .dump();
        return line;
      };
      for (auto& [id, s] : here) {
        std::string dir;
        if (s->device != core::kNoDevice) {
          if (r.from == s->device) {
            dir = "out";
          } else {
            for (std::size_t i = 0; i < r.ntargets && dir.empty(); ++i) {
              if (r.targets[i].device == s->device) dir = "in";
            }
            if (dir.empty()) continue;  // another capture's frame
          }
        }
        const std::string& base = text();
        const bool sent = dir.empty() ? server_.send_line(id, base)
                                      : server_.send_line(id, base.substr(0, base.size() - 1) +
                                                                  ",\"dir\":\"" + dir + "\"}");
        if (!sent) ++s->lost;
      }
    });
    for (auto& [id, s] : here) {
      if (s->device != core::kNoDevice && cp->device(s->device) == nullptr) {
        end(id, *s, "device " + s->name + " was deleted");
      } else if (now >= s->next_stats) {
        send_stats(id, *s, now);
      }
    }
  }
}

}  // namespace umacvlan::daemon
