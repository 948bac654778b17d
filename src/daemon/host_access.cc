// LinkService's `hostaccess` (link_service.h): the lower's own stack and the
// port's bridge devices reach each other. What the kernel's macvlan cannot
// do, and what users otherwise build by hand (a bridge-mode "shim" device
// in the host, an address, a /32 route per container).
//
// On: a bridge-mode device of the port, LOWER.host, in the lower's
// namespace (no address of its own: IPv6 autoconfiguration and router
// advertisements off, proxy_ndp and forwarding on). The host answers the devices' ARP for
// its addresses through it (the kernel answers ARP for any local address on
// any interface), and their neighbour solicitations through a proxy entry
// per IPv6 address of the lower. The devices' addresses are learned from
// what they send (ARP, NDP, DHCP acks, core::IpTable), copied off the data
// path through a CaptureTap that takes only those frames; each one gets a
// host route through LOWER.host (protocol static, scope link): the host
// reaches a device once it has said something. When a device shows a new
// address, the ones it no longer has (read in its namespace) lose theirs. Off: LOWER.host is
// deleted, and its routes and proxy entries go with it.
#include <fcntl.h>
#include <linux/rtnetlink.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>

#include "daemon/link_service.h"

namespace umacvlan::daemon {
namespace {

constexpr auto kProxySyncEvery = std::chrono::seconds(1);

std::uint64_t now_ms() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

// Writes value into /proc/sys/... of the calling thread's namespace.
bool write_sysctl(const std::string& path, const char* value) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = ::write(fd, value, std::strlen(value)) > 0;
  ::close(fd);
  return ok;
}

}  // namespace

bool LinkService::port_options_active() const {
  for (const auto& p : ports_) {
    if (p->learn != nullptr) return true;
  }
  return false;
}

void LinkService::update_learn_tap(Port& port) {
  const bool wanted = port.host != nullptr || port.macnat != nullptr;
  if (wanted == (port.learn != nullptr)) return;
  if (wanted) {
    port.learn = std::make_shared<CaptureTap>(dataplane_.workers(), config_.limits.max_devices);
    port.learn->watch_all(true);
  } else {
    port.learn.reset();
  }
  dirty_ = true;
}

void LinkService::port_options_tick() {
  const std::uint64_t now = now_ms();
  for (auto& p : ports_) {
    if (p->learn == nullptr) continue;
    Port& port = *p;
    port.learn->drain([&](const CaptureRecord& r) {
      if (port.host != nullptr) hostaccess_learn(port, r, now);
      if (port.macnat != nullptr) macnat_learn(port, r, now);
    });
    if (port.host != nullptr) hostaccess_tick(port);
    if (port.macnat != nullptr) macnat_tick(port, now);
  }
  publish_if_changed();
}

control::Reply LinkService::set_hostaccess(Port& port, bool on) {
  if (on == (port.host != nullptr)) return control::Reply{};
  if (!on) {
    disable_hostaccess(port, true);
    // LOWER.host may have been the port's last device.
    remove_port_if_empty(port);
    save();
    return control::Reply{};
  }
  const std::string name = control::host_device_name(port.lower_name);
  const int32_t lower_nsid = nsid_of(port.lower_ns);
  control::LinkRequest add_req;
  add_req.op = control::LinkOp::kAdd;
  add_req.name = name;
  add_req.link = port.lower_name;
  add_req.type_macvlan = true;
  add_req.mode = core::Mode::kBridge;
  control::Reply r = add(add_req, port.lower_ns, lower_nsid);
  if (r.error != 0) {
    if (r.error == EEXIST)
      return refusal(EEXIST, "hostaccess needs the name \"" + name + "\" beside the lower");
    return r;
  }
  // Whatever goes wrong from here, the device just made goes again: a
  // refused request changes nothing.
  auto undo_add = [&](control::Reply why) {
    for (auto& [id, d] : port.devices) {
      if (d.name == name && d.ns_inode == port.lower_ns_inode) {
        remove_device(port, id, true);
        break;
      }
    }
    save();
    return why;
  };
  io::LinkInfo li;
  if (rtnl_.get_link(name, &li, lower_nsid) != 0)
    return undo_add(refusal(ENODEV, "the host device " + name + " vanished as it was made"));
  Found f = find_device(port.lower_ns_inode, li.ifindex);
  if (f.dev == nullptr || f.port != &port)
    return undo_add(refusal(EIO, "the host device " + name + " did not join the port"));
  // No address of its own, and it answers neighbour solicitations for the
  // lower's IPv6 addresses (the proxy entries).
  const std::string conf = "/proc/sys/net/ipv6/conf/" + name + "/";
  const int sysctl_rc = io::run_in_netns(port.lower_ns, [&] {
    bool ok = write_sysctl(conf + "accept_ra", "0");
    ok = write_sysctl(conf + "autoconf", "0") && ok;
    ok = write_sysctl(conf + "proxy_ndp", "1") && ok;
    // The kernel answers for proxy entries only on a forwarding interface;
    // per interface, that changes nothing else (no packet is forwarded
    // unless the namespace's "all" says so).
    ok = write_sysctl(conf + "forwarding", "1") && ok;
    return ok ? 0 : -EIO;
  });
  if (sysctl_rc < 0) spdlog::warn("{}: cannot set its IPv6 sysctls; IPv6 may not reach it", name);
  auto host = std::make_unique<HostAccess>();
  host->device = f.dev->id;
  host->ifindex = li.ifindex;
  host->name = name;
  port.host = std::move(host);
  update_learn_tap(port);
  control::LinkRequest up;
  up.op = control::LinkOp::kSet;
  up.name = name;
  up.up = true;
  if (control::Reply u = set(up, port.lower_ns, lower_nsid); u.error != 0) {
    disable_hostaccess(port, true);
    return u;
  }
  sync_host_proxies(port);
  mark(port);
  save();
  publish();
  spdlog::info("lower {}: hostaccess on through {}", port.lower_name, name);
  return control::Reply{};
}

void LinkService::disable_hostaccess(Port& port, bool remove_device_too) {
  if (port.host == nullptr) return;
  const std::unique_ptr<HostAccess> host = std::move(port.host);
  update_learn_tap(port);
  mark(port);
  publish();
  // Its routes and proxy entries go with the device.
  if (remove_device_too && port.devices.count(host->device) != 0)
    remove_device(port, host->device, true);
  spdlog::info("lower {}: hostaccess off", port.lower_name);
}

void LinkService::host_route(Port& port, const core::IpEntry& e, bool add) {
  if (port.host == nullptr || e.link_local) return;
  io::IpRoute r;
  r.family = e.address.is_v4() ? AF_INET : AF_INET6;
  const auto bytes = e.address.bytes();
  std::copy(bytes.begin(), bytes.end(), r.dst.begin());
  r.dst_prefix = static_cast<std::uint8_t>(bytes.size() * 8);
  r.ifindex = port.host->ifindex;
  std::string why;
  const int rc = with_rtnl_in(
      port.lower_ns,
      [&](io::RtNetlink& nl) { return add ? nl.replace_route(r) : nl.delete_route(r); }, &why);
  if (rc < 0 && !(rc == -ESRCH && !add)) {
    spdlog::warn("{}: cannot {} the route to {}: {}", port.host->name, add ? "add" : "remove",
                 e.address.to_string(), why.empty() ? std::strerror(-rc) : why);
  }
}

void LinkService::sync_host_proxies(Port& port) {
  if (port.host == nullptr) return;
  port.host->next_sync = std::chrono::steady_clock::now() + kProxySyncEvery;
  std::vector<io::IpAddress> addrs;
  std::string why;
  if (with_rtnl_in(
          port.lower_ns,
          [&](io::RtNetlink& nl) {
            return nl.list_addresses(AF_INET6, port.lower_ifindex, &addrs);
          },
          &why) < 0)
    return;
  for (const io::IpAddress& a : addrs) {
    if (a.scope != RT_SCOPE_UNIVERSE) continue;  // link-local: the device has its own
    if (port.host->proxied.count(a.addr) != 0) continue;
    const int rc = with_rtnl_in(
        port.lower_ns,
        [&](io::RtNetlink& nl) { return nl.add_neigh_proxy(port.host->ifindex, a.addr); }, &why);
    if (rc < 0) {
      spdlog::warn("{}: cannot proxy neighbour solicitations: {}", port.host->name, why);
      continue;
    }
    port.host->proxied.insert(a.addr);
  }
}

void LinkService::hostaccess_learn(Port& port, const CaptureRecord& r, std::uint64_t now) {
  HostAccess& host = *port.host;
  auto apply = [&](const core::LearnResult& res) {
    for (const core::IpChange& c : res) {
      switch (c.kind) {
        case core::IpChangeKind::kAdded:
        case core::IpChangeKind::kMoved:
          host_route(port, c.entry, true);
          prune_host_routes(port, c.entry.device);
          spdlog::info("{}: {} is {}'s", host.name, c.entry.address.to_string(),
                       device_name(port.serial, c.entry.device));
          break;
        case core::IpChangeKind::kEvicted:
          host_route(port, c.entry, false);
          break;
        case core::IpChangeKind::kRefreshed:
          break;
      }
    }
  };
  const std::span<const std::uint8_t> frame(r.data.data(), r.caplen);
  if (r.from == core::kNoDevice || r.from == host.device) {
    // Toward the devices (a DHCP server's ack): chaddr says whose.
    apply(host.learned.learn_dhcp_ack(
        frame, [&](core::MacAddress mac) { return device_with_mac(port, mac, host.device); }, now));
    return;
  }
  const core::Device* cd = port.core.device(r.from);
  if (cd == nullptr || cd->mode != core::Mode::kBridge) return;
  apply(host.learned.learn_from_device(r.from, cd->mac, frame, now));
}

void LinkService::hostaccess_tick(Port& port) {
  if (std::chrono::steady_clock::now() >= port.host->next_sync) sync_host_proxies(port);
}

void LinkService::prune_host_routes(Port& port, core::DeviceId id) {
  auto it = port.devices.find(id);
  if (it == port.devices.end() || port.host == nullptr) return;
  const Device& dev = it->second;
  // What the device has now, in its own namespace.
  std::vector<io::IpAddress> have;
  if (with_rtnl_in(
          dev.io->tap.current_netns(),
          [&](io::RtNetlink& nl) { return nl.list_addresses(AF_UNSPEC, dev.ifindex, &have); },
          nullptr) < 0)
    return;
  for (const core::IpAddress& a : port.host->learned.addresses_of(id)) {
    const auto bytes = a.bytes();
    const bool still = std::any_of(have.begin(), have.end(), [&](const io::IpAddress& h) {
      return (h.family == AF_INET) == a.is_v4() &&
             std::equal(bytes.begin(), bytes.end(), h.addr.begin());
    });
    if (still) continue;
    if (const auto gone = port.host->learned.forget(a)) {
      spdlog::info("{}: {} is no longer {}'s", port.host->name, a.to_string(), dev.name);
      host_route(port, *gone, false);
    }
  }
}

void LinkService::forget_host_routes(Port& port, core::DeviceId id) {
  if (port.host == nullptr) return;
  for (const core::IpEntry& e : port.host->learned.forget_device(id)) host_route(port, e, false);
}

}  // namespace umacvlan::daemon
