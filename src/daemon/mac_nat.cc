// LinkService's `macnat` (link_service.h): a port whose lower accepts only
// its own MAC as a source (a Wi-Fi station: the access point drops frames
// from any other). What the kernel's macvlan cannot do: it never sees the
// frames it would have to rewrite.
//
// On: the data path rewrites every frame a device sends out the lower to
// carry the lower's MAC (core::rewrite_egress), and gives each frame that
// arrives for the lower's MAC to the device owning its destination address
// (core::rewrite_ingress). Who owns what is learned here, on the control
// thread, from the frames the learn tap copies off the data path (ARP, NDP,
// DHCP acks, and a device's frames from an address the table does not give
// it yet): a core::IpTable (bounded, core::IpTable::kDefaultMaxEntries),
// published to the workers as a MacNatView when it changes. The workers
// stamp the entries whose devices send out the lower; once a second the
// stamps are folded into the table and what stayed silent for
// macnat_ageing seconds is forgotten. A deleted device's entries go at once.
// Frames for an address nobody owns (the host's own) reach the host as
// before; the host's own traffic never passes the port.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include "daemon/link_json.h"
#include "daemon/link_service.h"
#include "io/netns.h"

namespace umacvlan::daemon {
namespace {

constexpr auto kAgeEvery = std::chrono::seconds(1);
// How long `macnat on|off` waits for the workers to take the new view (they
// do between two bursts; a stuck one is the watchdog's business).
constexpr int kSwitchTimeoutMs = 1000;

}  // namespace

std::optional<core::DeviceId> LinkService::device_with_mac(const Port& port, core::MacAddress mac,
                                                           core::DeviceId except) const {
  for (const auto& [id, d] : port.devices) {
    const core::Device* cd = port.core.device(id);
    if (cd != nullptr && cd->mac == mac && id != except) return id;
  }
  return std::nullopt;
}

control::Reply LinkService::set_macnat(Port& port, std::optional<bool> on,
                                       std::optional<std::uint32_t> ageing) {
  const bool want = on.value_or(port.macnat != nullptr);
  if (!want) {
    if (port.macnat == nullptr) return control::Reply{};
    port.macnat.reset();
    update_learn_tap(port);
    dirty_ = true;
    save();
    // Once the answer leaves, no worker rewrites any more.
    dataplane_.wait_for(publish(), kSwitchTimeoutMs);
    spdlog::info("lower {}: macnat off", port.lower_name);
    return control::Reply{};
  }
  const std::uint32_t seconds =
      ageing.value_or(port.macnat != nullptr ? port.macnat->ageing : control::kDefaultMacnatAgeing);
  if (port.macnat != nullptr && port.macnat->ageing == seconds) return control::Reply{};
  auto next = std::make_unique<MacNat>(seconds);
  if (port.macnat != nullptr) {
    // A new ageing: the same entries, under the new rule from now on.
    for (const core::IpEntry& e : port.macnat->learned.entries())
      next->learned.learn(e.address, e.device, e.mac, e.learned_from, e.last_seen_ms);
    next->view = port.macnat->view;
  }
  const bool was_on = port.macnat != nullptr;
  port.macnat = std::move(next);
  rebuild_macnat_view(port);
  update_learn_tap(port);
  dirty_ = true;
  save();
  // Once the answer leaves, every frame out of the lower is rewritten.
  dataplane_.wait_for(publish(), kSwitchTimeoutMs);
  if (was_on) {
    spdlog::info("lower {}: macnat ageing {} s", port.lower_name, seconds);
  } else {
    spdlog::info("lower {}: macnat on (ageing {} s)", port.lower_name, seconds);
  }
  return control::Reply{};
}

void LinkService::macnat_learn(Port& port, const CaptureRecord& r, std::uint64_t now) {
  MacNat& nat = *port.macnat;
  const std::span<const std::uint8_t> frame(r.data.data(), r.caplen);
  core::LearnResult res;
  if (r.from == core::kNoDevice) {
    // Toward the devices (a DHCP server's ack): chaddr says whose.
    res = nat.learned.learn_dhcp_ack(
        frame, [&](core::MacAddress mac) { return device_with_mac(port, mac); }, now);
  } else {
    const core::Device* cd = port.core.device(r.from);
    if (cd == nullptr) return;
    res = nat.learned.learn_from_device(r.from, cd->mac, frame, now);
  }
  if (!res.routes_changed()) return;
  for (const core::IpChange& c : res) {
    if (c.kind == core::IpChangeKind::kAdded || c.kind == core::IpChangeKind::kMoved) {
      spdlog::info("lower {}: macnat: {} is {}'s", port.lower_name, c.entry.address.to_string(),
                   device_name(port.serial, c.entry.device));
    }
  }
  rebuild_macnat_view(port);
  dirty_ = true;
}

void LinkService::macnat_tick(Port& port, std::uint64_t now) {
  MacNat& nat = *port.macnat;
  const auto clock = std::chrono::steady_clock::now();
  if (clock < nat.next_age) return;
  nat.next_age = clock + kAgeEvery;
  // What the workers saw since: a refresh each (no change to publish).
  if (nat.view != nullptr) {
    for (const auto& [address, owner] : nat.view->owners) {
      const std::uint64_t seen = owner.seen_ms.load(std::memory_order_relaxed);
      const std::optional<core::IpEntry> e = nat.learned.lookup(address);
      if (!e || e->device != owner.device || seen <= e->last_seen_ms) continue;
      nat.learned.learn(address, e->device, e->mac, core::LearnedFrom::kIp, seen);
    }
  }
  const std::vector<core::IpEntry> gone = nat.learned.expire(now);
  if (gone.empty()) return;
  for (const core::IpEntry& e : gone) {
    spdlog::info("lower {}: macnat: {} forgotten ({} s silent)", port.lower_name,
                 e.address.to_string(), nat.ageing);
  }
  rebuild_macnat_view(port);
  dirty_ = true;
}

void LinkService::forget_macnat(Port& port, core::DeviceId id) {
  if (port.macnat == nullptr) return;
  if (port.macnat->learned.forget_device(id).empty()) return;
  rebuild_macnat_view(port);
  dirty_ = true;
}

void LinkService::rebuild_macnat_view(Port& port) {
  MacNat& nat = *port.macnat;
  auto view = std::make_shared<MacNatView>();
  for (const core::IpEntry& e : nat.learned.entries()) {
    MacNatOwner& owner = view->owners[e.address];
    owner.device = e.device;
    std::uint64_t seen = e.last_seen_ms;
    if (nat.view != nullptr) {
      const auto old = nat.view->owners.find(e.address);
      if (old != nat.view->owners.end() && old->second.device == e.device)
        seen = std::max(seen, old->second.seen_ms.load(std::memory_order_relaxed));
    }
    owner.seen_ms.store(seen, std::memory_order_relaxed);
  }
  nat.view = std::move(view);
}

nlohmann::json LinkService::lower_row(const Port& port, const io::LinkInfo& li,
                                      const io::NetnsFd& caller) const {
  // As ip prints any link, then the port's own.
  nlohmann::json j = plain_link_json(li);
  nlohmann::json opts;
  opts["hostaccess"] = port.host != nullptr;
  opts["macnat"] = port.macnat != nullptr;
  if (port.macnat != nullptr) {
    const MacNat& nat = *port.macnat;
    opts["macnat_ageing"] = nat.ageing;
    opts["macnat_max"] = nat.learned.max_entries();
    const std::uint64_t now =
        static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                       std::chrono::steady_clock::now().time_since_epoch())
                                       .count());
    nlohmann::json table = nlohmann::json::array();
    for (const core::IpEntry& e : nat.learned.entries()) {
      std::uint64_t seen = e.last_seen_ms;
      if (nat.view != nullptr) {
        const auto it = nat.view->owners.find(e.address);
        if (it != nat.view->owners.end() && it->second.device == e.device)
          seen = std::max(seen, it->second.seen_ms.load(std::memory_order_relaxed));
      }
      nlohmann::json row;
      row["address"] = e.address.to_string();
      const auto d = port.devices.find(e.device);
      row["dev"] = d != port.devices.end() ? d->second.name : std::string();
      if (d != port.devices.end() && d->second.ns_inode != caller.inode()) {
        const std::string ns = io::netns_name(d->second.ns_inode);
        if (!ns.empty()) row["netns"] = ns;
      }
      const core::Device* cd = port.core.device(e.device);
      row["lladdr"] = (cd != nullptr ? cd->mac : e.mac).to_string();
      row["learned"] = std::string(core::to_string(e.learned_from));
      row["age"] = (now > seen ? now - seen : 0) / 1000;
      table.push_back(std::move(row));
    }
    opts["macnat_table"] = std::move(table);
  }
  j["umacvlan_port"] = std::move(opts);
  return j;
}

}  // namespace umacvlan::daemon
