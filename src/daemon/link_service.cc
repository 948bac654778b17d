#include "daemon/link_service.h"

#include <linux/if.h>
#include <linux/if_arp.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "daemon/link_json.h"

namespace umacvlan::daemon {
namespace {

using control::LinkOp;
using control::Reply;

Reply failure(int err, std::string message = {}) {
  Reply r;
  r.error = err;
  r.message = std::move(message);
  return r;
}

Reply from_status(const core::Status& s) {
  if (s.ok()) return Reply{};
  return failure(s.err, "Error: " + s.message + ".");
}

Reply cannot_find(const std::string& name) {
  return failure(ENODEV, "Cannot find device \"" + name + "\"");
}

core::SourceListChange source_change(const control::LinkRequest& req) {
  core::SourceListChange c;
  c.addrs = req.macaddrs;
  switch (req.macaddr_mode) {
    case control::MacaddrMode::kNone:
      c.op = core::SourceOp::kNone;
      break;
    case control::MacaddrMode::kAdd:
      c.op = core::SourceOp::kAdd;
      break;
    case control::MacaddrMode::kDel:
      c.op = core::SourceOp::kDel;
      break;
    case control::MacaddrMode::kSet:
      c.op = core::SourceOp::kSet;
      break;
    case control::MacaddrMode::kFlush:
      c.op = core::SourceOp::kFlush;
      break;
  }
  return c;
}

std::vector<core::MacAddress> to_core(const std::vector<io::MacBytes>& v) {
  std::vector<core::MacAddress> out;
  out.reserve(v.size());
  for (const auto& b : v) out.push_back(from_bytes(b));
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

LinkService::LinkService(FdWatcher& watcher)
    : watcher_(watcher), home_(io::current_netns()), rng_(std::random_device{}()) {}

LinkService::~LinkService() = default;

std::size_t LinkService::device_count() const {
  std::size_t n = 0;
  for (const auto& p : ports_) n += p->devices.size();
  return n;
}

LinkService::Found LinkService::find_device(ino_t ns_inode, int ifindex) {
  for (auto& p : ports_) {
    for (auto& [id, d] : p->devices) {
      if (d.ns_inode == ns_inode && d.ifindex == ifindex) return {p.get(), &d};
    }
  }
  return {};
}

LinkService::Found LinkService::find_by_name(const io::NetnsFd& caller, io::RtNetlink& rtnl,
                                             const std::string& name, Reply* error) {
  io::LinkInfo li;
  if (rtnl.get_link(name, &li) != 0) {
    *error = cannot_find(name);
    return {};
  }
  Found f = find_device(caller.inode(), li.ifindex);
  if (f.dev == nullptr) {
    *error = failure(EOPNOTSUPP, "Error: \"" + name + "\" is not a umacvlan device.");
  }
  return f;
}

control::Reply LinkService::handle(const control::LinkRequest& req, const io::NetnsFd& caller) {
  // Users may have moved, renamed or deleted devices with plain `ip` since
  // the last event: start from the kernel's present view.
  resync();
  // Names in a request are the caller's: one netlink socket in its namespace.
  io::RtNetlink rtnl;
  if (int rc = io::RtNetlink::open(caller, &rtnl); rc < 0) return failure(-rc);
  switch (req.op) {
    case LinkOp::kAdd:
      return add(req, caller, rtnl);
    case LinkOp::kSet:
      return set(req, caller, rtnl);
    case LinkOp::kDelete:
      return del(req, caller, rtnl);
    case LinkOp::kShow:
      return show(req, caller, rtnl);
  }
  return failure(EINVAL, "Error: unknown request.");
}

control::Reply LinkService::add(const control::LinkRequest& req, const io::NetnsFd& caller,
                                io::RtNetlink& rtnl) {
  if (req.link.empty()) return failure(EINVAL, "Error: a macvlan device needs \"link LOWER\".");
  io::LinkInfo lower;
  if (rtnl.get_link(req.link, &lower) != 0) return cannot_find(req.link);
  io::LinkInfo clash;
  if (rtnl.get_link(req.name, &clash) == 0) return failure(EEXIST);

  // On top of one of our devices: attach to that device's lower.
  PortRuntime* port = find_device(caller.inode(), lower.ifindex).port;
  std::unique_ptr<PortRuntime> fresh;
  if (port == nullptr) {
    for (auto& p : ports_) {
      if (p->lower_ns_inode == caller.inode() && p->lower_ifindex == lower.ifindex) port = p.get();
    }
  }
  if (port == nullptr) {
    if (lower.type != ARPHRD_ETHER || (lower.flags & IFF_LOOPBACK) || !lower.has_mac)
      return failure(EINVAL, "Error: the lower device must be an Ethernet device.");
    core::LowerState ls;
    ls.name = lower.name;
    ls.mac = from_bytes(lower.mac);
    ls.mtu = lower.mtu;
    ls.carrier = (lower.flags & IFF_LOWER_UP) != 0;
    ls.promisc = lower.promiscuity > 0;
    ls.allmulti = lower.allmulti > 0;
    ls.unicast_filter = false;  // AF_PACKET cannot tell; assume the worst (veth)
    fresh = std::make_unique<PortRuntime>(std::move(ls));
    fresh->lower_ns = caller.dup();
    fresh->lower_ns_inode = caller.inode();
    fresh->lower_ifindex = lower.ifindex;
    fresh->lower_name = lower.name;
    port = fresh.get();
  }

  core::DeviceSpec spec;
  spec.name = req.name;
  spec.address = req.address;
  spec.mtu = req.mtu;
  spec.mode = req.mode;
  spec.flags = req.flags.value_or(0);
  spec.bcqueuelen = req.bcqueuelen;
  spec.bclim = req.bclim;
  spec.macaddr = source_change(req);
  core::DeviceId id = core::kNoDevice;
  if (core::Status s = port->port.add_device(spec, rng_(), &id); !s.ok()) return from_status(s);

  // The core said yes; now the kernel objects. Undo everything on failure.
  auto undo = [&](int err) {
    port->port.remove_device(id);
    return failure(err);
  };
  if (fresh) {
    if (int rc = io::RtNetlink::open(fresh->lower_ns, &fresh->lower_rtnl); rc < 0) return undo(-rc);
    if (int rc = io::PacketLower::open(fresh->lower_ns, lower.ifindex, &fresh->lower); rc < 0)
      return undo(-rc);
    if (int rc =
            io::StackFilter::open(fresh->lower_ns, lower.name, lower.ifindex, &fresh->stack_filter);
        rc < 0) {
      spdlog::warn("no nftables ingress filter on {} ({}): frames for devices also reach its stack",
                   lower.name, fresh->stack_filter.last_error());
    }
  }
  DeviceRuntime dev;
  dev.id = id;
  // Made in the daemon's namespace and moved to the caller's: a TAP fd opened
  // inside a namespace would keep that namespace alive after `ip netns del`.
  if (int rc = io::TapDevice::create_and_move(home_, caller, req.name, &dev.tap); rc < 0)
    return undo(-rc);
  const core::Device* d = port->port.device(id);
  dev.ns_inode = caller.inode();
  dev.ifindex = dev.tap.ifindex();
  dev.name = req.name;
  int rc = dev.tap.set_mac(to_bytes(d->mac));
  if (rc == 0) rc = dev.tap.set_mtu(d->mtu);
  if (rc == 0) rc = dev.tap.set_carrier(port->port.lower().carrier);
  if (rc < 0) {
    dev.tap.destroy();
    return undo(-rc);
  }

  if (fresh) {
    fresh->tag = std::make_unique<FdTag>(FdTag{FdTag::kLower, fresh.get(), core::kNoDevice});
    watcher_.watch(fresh->lower.fd(), fresh->tag.get());
    ports_.push_back(std::move(fresh));
  }
  auto [it, inserted] = port->devices.emplace(id, std::move(dev));
  DeviceRuntime& live = it->second;
  live.tag = std::make_unique<FdTag>(FdTag{FdTag::kTap, port, id});
  watcher_.watch(live.tap.fd(), live.tag.get());
  if (req.up.value_or(false)) {
    core::DeviceChange c;
    c.up = true;
    if (core::Status s = port->port.change_device(id, c); !s.ok()) {
      remove_device(*port, id, true);
      remove_port_if_empty(*port);
      return from_status(s);
    }
  }
  apply_device(*port, live);
  apply_lower_filter(*port);
  return Reply{};
}

control::Reply LinkService::set(const control::LinkRequest& req, const io::NetnsFd& caller,
                                io::RtNetlink& rtnl) {
  Reply err;
  Found f = find_by_name(caller, rtnl, req.name, &err);
  if (f.dev == nullptr) return err;
  core::DeviceChange c;
  c.mode = req.mode;
  c.flags = req.flags;
  c.bcqueuelen = req.bcqueuelen;
  c.bclim = req.bclim;
  c.macaddr = source_change(req);
  c.address = req.address;
  c.mtu = req.mtu;
  c.up = req.up;
  const core::Device* before = f.port->port.device(f.dev->id);
  const bool passthru_addr = req.address && before->mode == core::Mode::kPassthru;
  if (core::Status s = f.port->port.change_device(f.dev->id, c); !s.ok()) return from_status(s);
  if (passthru_addr) {
    // Setting the passthru device's address sets the lower's.
    io::LinkChange lc;
    lc.mac = to_bytes(*req.address);
    f.port->lower_rtnl.set_link(f.port->lower_ifindex, lc);
  }
  apply_device(*f.port, *f.dev);
  apply_lower_filter(*f.port);
  return Reply{};
}

control::Reply LinkService::del(const control::LinkRequest& req, const io::NetnsFd& caller,
                                io::RtNetlink& rtnl) {
  Reply err;
  Found f = find_by_name(caller, rtnl, req.name, &err);
  if (f.dev == nullptr) return err;
  PortRuntime& port = *f.port;
  remove_device(port, f.dev->id, true);
  remove_port_if_empty(port);
  return Reply{};
}

control::Reply LinkService::show(const control::LinkRequest& req, const io::NetnsFd& caller,
                                 io::RtNetlink& rtnl) {
  const ino_t here = caller.inode();
  Reply r;
  if (!req.name.empty()) {
    io::LinkInfo li;
    if (rtnl.get_link(req.name, &li) != 0)
      return failure(ENODEV, "Device \"" + req.name + "\" does not exist.");
  }
  std::vector<std::pair<int, nlohmann::json>> rows;
  for (auto& p : ports_) {
    for (auto& [id, d] : p->devices) {
      if (d.ns_inode != here) continue;
      if (!req.name.empty() && d.name != req.name) continue;
      io::LinkInfo li;
      if (rtnl.get_link(d.ifindex, &li) != 0) continue;
      std::string lower_name;
      if (p->lower_ns_inode == here) lower_name = p->lower_name;
      rows.emplace_back(li.ifindex,
                        link_json(li, lower_name, p->lower_ifindex, *p->port.device(id), p->port));
    }
  }
  std::sort(rows.begin(), rows.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [idx, j] : rows) r.links.push_back(std::move(j));
  return r;
}

void LinkService::remove_device(PortRuntime& port, core::DeviceId id, bool destroy_tap) {
  auto it = port.devices.find(id);
  if (it == port.devices.end()) return;
  if (it->second.tap.valid()) {
    watcher_.unwatch(it->second.tap.fd());
    if (destroy_tap) it->second.tap.destroy();
  }
  port.devices.erase(it);
  port.port.remove_device(id);
  apply_lower_filter(port);
}

void LinkService::remove_port_if_empty(PortRuntime& port) {
  if (!port.devices.empty()) return;
  if (port.port.passthru() || port.port.lower().mac != port.port.lower_perm_mac()) {
    // The lower gets the MAC it had before a passthru device took it over.
    io::LinkChange lc;
    lc.mac = to_bytes(port.port.lower_perm_mac());
    port.lower_rtnl.set_link(port.lower_ifindex, lc);
  }
  if (port.lower.fd() >= 0) watcher_.unwatch(port.lower.fd());
  ports_.erase(
      std::remove_if(ports_.begin(), ports_.end(), [&](const auto& p) { return p.get() == &port; }),
      ports_.end());
}

void LinkService::device_failed(PortRuntime& port, core::DeviceId id) {
  remove_device(port, id, false);
  remove_port_if_empty(port);
}

void LinkService::remove_all() {
  while (!ports_.empty()) {
    PortRuntime& p = *ports_.back();
    while (!p.devices.empty()) remove_device(p, p.devices.begin()->first, true);
    remove_port_if_empty(p);
  }
}

void LinkService::apply_lower_filter(PortRuntime& port) {
  const core::LowerFilter want = port.port.lower_filter();
  core::LowerFilter& have = port.applied;
  if (want == have) return;
  auto diff = [](const std::vector<core::MacAddress>& a, const std::vector<core::MacAddress>& b) {
    std::vector<core::MacAddress> out;
    std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
    return out;
  };
  for (const auto& m : diff(have.unicast, want.unicast)) port.lower.del_unicast(to_bytes(m));
  for (const auto& m : diff(want.unicast, have.unicast)) port.lower.add_unicast(to_bytes(m));
  for (const auto& m : diff(have.multicast, want.multicast)) port.lower.del_multicast(to_bytes(m));
  for (const auto& m : diff(want.multicast, have.multicast)) port.lower.add_multicast(to_bytes(m));
  if (want.promisc != have.promisc) port.lower.set_promisc(want.promisc);
  if (want.allmulti != have.allmulti) port.lower.set_allmulti(want.allmulti);
  io::StackFilterRules rules;
  for (const auto& m : want.consumed_sources) rules.sources.push_back(to_bytes(m));
  for (const auto& m : want.consumed_destinations) rules.destinations.push_back(to_bytes(m));
  for (const auto& m : want.consumed_multicast_sources)
    rules.multicast_sources.push_back(to_bytes(m));
  rules.all_unicast = want.consumed_unicast;
  if (port.stack_filter.valid() && port.stack_filter.apply(rules) < 0)
    spdlog::warn("nftables: {}", port.stack_filter.last_error());
  have = want;
}

void LinkService::apply_device(PortRuntime& port, DeviceRuntime& dev) {
  const core::Device* d = port.port.device(dev.id);
  if (d == nullptr) return;
  io::NetnsFd ns = dev.tap.current_netns();
  io::RtNetlink rtnl;
  if (!ns.valid() || io::RtNetlink::open(ns, &rtnl) < 0) return;
  io::LinkInfo li;
  if (rtnl.get_link(dev.ifindex, &li) != 0) return;
  io::LinkChange c;
  if (from_bytes(li.mac) != d->mac) c.mac = to_bytes(d->mac);
  if (li.mtu != d->mtu) c.mtu = d->mtu;
  if (((li.flags & IFF_UP) != 0) != d->up) c.up = d->up;
  if (c.mac || c.mtu || c.up) rtnl.set_link(dev.ifindex, c);
}

bool LinkService::resync_device(PortRuntime& port, DeviceRuntime& dev) {
  io::NetnsFd ns = dev.tap.current_netns();
  if (!ns.valid()) return false;
  io::RtNetlink rtnl;
  if (io::RtNetlink::open(ns, &rtnl) < 0) return false;
  std::string name;
  if (dev.tap.current_name(&name) != 0) return false;
  io::LinkInfo li;
  if (rtnl.get_link(name, &li) != 0) return false;
  dev.ns_inode = ns.inode();
  dev.name = name;
  dev.ifindex = li.ifindex;

  const core::Device* d = port.port.device(dev.id);
  core::DeviceChange c;
  const bool up = (li.flags & IFF_UP) != 0;
  if (up != d->up) c.up = up;
  if (from_bytes(li.mac) != d->mac) c.address = from_bytes(li.mac);
  if (li.mtu != d->mtu) c.mtu = li.mtu;
  if ((li.promiscuity > 0) != d->promisc) c.promisc = li.promiscuity > 0;
  if ((li.allmulti > 0) != d->allmulti) c.allmulti = li.allmulti > 0;
  std::vector<io::MacBytes> groups;
  if (up && io::read_dev_mcast(ns, li.ifindex, &groups) == 0) {
    auto g = to_core(groups);
    if (g != d->multicast) c.multicast = std::move(g);
  }
  if (up && li.operstate == IF_OPER_UNKNOWN && port.port.lower().carrier) {
    // A TAP never reports an operstate of its own; a macvlan says UP.
    io::LinkChange oper;
    oper.operstate = IF_OPER_UP;
    rtnl.set_link(li.ifindex, oper);
  }
  if (!c.up && !c.address && !c.mtu && !c.promisc && !c.allmulti && !c.multicast) return true;
  if (!port.port.change_device(dev.id, c).ok()) {
    // Part of it is what the kernel's macvlan would have refused (say, up
    // with a MAC in use): take each part alone, then put the TAP back the
    // way the core has it.
    core::DeviceChange rest = c;
    rest.up.reset();
    rest.address.reset();
    rest.mtu.reset();
    (void)port.port.change_device(dev.id, rest);
    core::DeviceChange a, m, u;
    a.address = c.address;
    m.mtu = c.mtu;
    u.up = c.up;
    for (const core::DeviceChange* part : {&a, &m, &u})
      (void)port.port.change_device(dev.id, *part);
    apply_device(port, dev);
  }
  return true;
}

bool LinkService::resync_lower(PortRuntime& port) {
  io::LinkInfo li;
  if (port.lower_rtnl.get_link(port.lower_ifindex, &li) != 0) return false;
  core::Port& p = port.port;
  port.lower_name = li.name;
  if (li.mtu != p.lower().mtu) {
    p.lower_mtu_changed(li.mtu);
    for (auto& [id, d] : port.devices) apply_device(port, d);
  }
  const bool carrier = (li.flags & IFF_LOWER_UP) != 0;
  if (carrier != p.lower().carrier) {
    p.lower_carrier_changed(carrier);
    for (auto& [id, d] : port.devices) d.tap.set_carrier(carrier);
  }
  if (li.has_mac && from_bytes(li.mac) != p.lower().mac) {
    p.lower_mac_changed(from_bytes(li.mac));
    for (auto& [id, d] : port.devices) apply_device(port, d);
  }
  p.lower_flags_changed(li.promiscuity > 0, li.allmulti > 0);
  return true;
}

void LinkService::resync() {
  for (std::size_t i = 0; i < ports_.size();) {
    PortRuntime& port = *ports_[i];
    if (!resync_lower(port)) {
      // The lower is gone: so are its devices.
      while (!port.devices.empty()) remove_device(port, port.devices.begin()->first, true);
      remove_port_if_empty(port);
      continue;
    }
    std::vector<core::DeviceId> gone;
    for (auto& [id, d] : port.devices) {
      if (!resync_device(port, d)) gone.push_back(id);
    }
    for (core::DeviceId id : gone) remove_device(port, id, true);
    apply_lower_filter(port);
    if (port.devices.empty()) {
      remove_port_if_empty(port);
      continue;
    }
    ++i;
  }
}

}  // namespace umacvlan::daemon
