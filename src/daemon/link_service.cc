#include "daemon/link_service.h"

#include <linux/if.h>
#include <linux/if_arp.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "daemon/link_json.h"
#include "daemon/metrics.h"

namespace umacvlan::daemon {
namespace {

using control::LinkOp;
using control::Reply;

// How long a removal waits for the workers to let go of a device.
constexpr int kReleaseTimeoutMs = 2000;
// Multicast lists are read at most this often per namespace, and less often
// when the reads of all namespaces together would cost more than
// 1/kMcastPollCostFactor of a core: a namespace whose read took C of CPU
// time, with N namespaces to read, waits max(kMcastPollMs, C * factor * N)
// (a namespace of a thousand devices; a thousand containers of one each).
constexpr long kMcastPollMs = 250;
constexpr int kMcastPollCostFactor = 250;
// Events (a device made, brought up, given an address) ask for a read of
// their namespace at once, but not more often than 1/kMcastEventCostFactor
// of a core allows: after a read that took C, an event within C * factor
// waits for the next tick. A loop making devices one by one in a namespace
// of a thousand otherwise read it (about 4,000 lines) once per device.
constexpr int kMcastEventCostFactor = 20;
constexpr int32_t kNoNsid = -2;

Reply failure(int err, std::string message = {}) {
  Reply r;
  r.error = err;
  r.message = std::move(message);
  return r;
}

Reply from_status(const core::Status& s) {
  if (s.ok()) return Reply{};
  return refusal(s.err, s.message);
}

Reply cannot_find(const std::string& name) {
  return failure(ENODEV, "Cannot find device \"" + name + "\"");
}

// A refusal of the kernel's: its errno, and its own sentence when it gave one
// (the CLI prints "RTNETLINK answers: ..." otherwise, as ip does).
Reply kernel_refused(int rc, const std::string& why) {
  return failure(rc < 0 ? -rc : EIO, why.empty() ? std::string() : "Error: " + why + ".");
}

io::MacBytes to_bytes(core::MacAddress m) {
  return m.octets();
}
core::MacAddress from_bytes(const io::MacBytes& b) {
  return core::MacAddress(b);
}

std::vector<core::MacAddress> to_core(const std::vector<io::MacBytes>& v) {
  std::vector<core::MacAddress> out;
  out.reserve(v.size());
  for (const auto& b : v) out.push_back(from_bytes(b));
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

core::LowerState lower_state(const io::LinkInfo& li) {
  core::LowerState ls;
  ls.name = li.name;
  ls.mac = from_bytes(li.mac);
  ls.mtu = li.mtu;
  ls.carrier = (li.flags & IFF_LOWER_UP) != 0;
  ls.promisc = li.promiscuity > 0;
  ls.allmulti = li.allmulti > 0;
  ls.unicast_filter = false;  // AF_PACKET cannot tell; assume the worst (veth)
  return ls;
}

// What of the port's filter the lower's stack must not see, for nftables.
io::StackFilterRules stack_rules(const core::LowerFilter& f) {
  io::StackFilterRules rules;
  for (const auto& m : f.consumed_sources) rules.sources.push_back(to_bytes(m));
  for (const auto& m : f.consumed_destinations) rules.destinations.push_back(to_bytes(m));
  for (const auto& m : f.consumed_multicast_sources) rules.multicast_sources.push_back(to_bytes(m));
  rules.all_unicast = f.consumed_unicast;
  return rules;
}

bool ethernet(const io::LinkInfo& li) {
  return li.type == ARPHRD_ETHER && (li.flags & IFF_LOOPBACK) == 0 && li.has_mac;
}

// A TAP the daemon could have made: multi-queue, with headers.
bool our_kind_of_tap(const io::LinkInfo& li) {
  return li.tun && li.tun->tap && li.tun->multi_queue && li.tun->vnet_hdr;
}

const io::NetnsFd* find_space(const std::vector<io::NetnsFd>& spaces, ino_t inode) {
  for (const auto& s : spaces) {
    if (s.inode() == inode) return &s;
  }
  return nullptr;
}

}  // namespace

// Where the kernel refuses without a message of its own, ip prints
// "RTNETLINK answers: <strerror>": that line comes first, word for word, and
// what umacvlan knows of the reason follows on a line of its own.
Reply refusal(int err, const std::string& why) {
  std::string message = std::string("RTNETLINK answers: ") + std::strerror(err);
  if (!why.empty()) message += "\numacvlan: " + why + ".";
  return failure(err, std::move(message));
}

LinkService::LinkService(LinkServiceConfig config, Dataplane& dataplane, io::NetnsWatch& watch)
    : config_(std::move(config)),
      dataplane_(dataplane),
      watch_(watch),
      home_(io::current_netns()),
      home_inode_(home_.inode()),
      rng_(std::random_device{}()) {}

LinkService::~LinkService() = default;

std::size_t LinkService::device_count() const {
  std::size_t n = 0;
  for (const auto& p : ports_) n += p->devices.size();
  return n;
}

// ================================================================ start

int LinkService::start() {
  if (int rc = io::RtNetlink::open(home_, &rtnl_); rc < 0) return rc;
  if (int rc = io::LinkMonitor::open(home_, &monitor_); rc < 0) return rc;
  State state;
  if (!config_.state_path.empty()) {
    LoadResult result = LoadResult::kMissing;
    std::string error;
    if (load_state(config_.state_path, &state, &result, &error) < 0) {
      spdlog::error("state: {}; starting empty", error);
    } else if (result == LoadResult::kCorrupt) {
      spdlog::error("state: {}; starting from what the kernel still shows", error);
    } else if (result == LoadResult::kLoaded) {
      if (!error.empty()) spdlog::error("state: {}", error);  // a corrupt journal
      std::size_t devices = 0;
      for (const auto& p : state.ports) devices += p.devices.size();
      spdlog::info("state: {} port(s), {} device(s) in {}", state.ports.size(), devices,
                   config_.state_path);
    }
  }
  adopt(state);
  clean_leftovers(state);
  save();
  publish();
  return 0;
}

void LinkService::adopt(const State& state) {
  if (state.ports.empty()) return;
  const std::vector<io::NetnsFd> spaces = io::all_netns();
  for (const PortRecord& rec : state.ports) adopt_port(rec, spaces);
  std::size_t adopted = device_count();
  readopted_ = adopted;
  spdlog::info("re-adopted {} device(s) on {} port(s)", adopted, ports_.size());
}

void LinkService::adopt_port(const PortRecord& rec, const std::vector<io::NetnsFd>& spaces) {
  // Finds a device's TAP where the record says, or by name anywhere.
  auto find_tap = [&](const DeviceRecord& d, io::LinkInfo* li) -> const io::NetnsFd* {
    if (const io::NetnsFd* ns = find_space(spaces, d.netns)) {
      const int32_t id = nsid_of(*ns);
      if (rtnl_.get_link(d.ifindex, li, id) == 0 && our_kind_of_tap(*li)) return ns;
      if (rtnl_.get_link(d.name, li, id) == 0 && our_kind_of_tap(*li)) return ns;
    }
    const io::NetnsFd* found = nullptr;
    io::LinkInfo candidate;
    int hits = 0;
    for (const auto& ns : spaces) {
      int32_t id = kNoNsid;
      if (rtnl_.find_nsid(ns, &id) < 0) continue;
      if (id == -1 && ns.inode() != home_inode_) continue;  // no id: nothing to ask through
      if (rtnl_.get_link(d.name, &candidate, id) == 0 && our_kind_of_tap(candidate) &&
          candidate.tun->queues == 0) {
        found = &ns;
        *li = candidate;
        ++hits;
      }
    }
    return hits == 1 ? found : nullptr;
  };
  auto drop_taps = [&](const char* why) {
    for (const DeviceRecord& d : rec.devices) {
      io::LinkInfo li;
      const io::NetnsFd* ns = find_tap(d, &li);
      io::TapDevice tap;
      if (ns != nullptr && io::TapDevice::open(*ns, li.name, &tap, 1, true) == 0) tap.destroy();
      spdlog::warn("device {}: dropped, {}", d.name, why);
    }
  };

  const io::NetnsFd* lower_ns = find_space(spaces, rec.lower_netns);
  if (lower_ns == nullptr) {
    spdlog::warn("lower {}: its network namespace is gone", rec.lower_name);
    drop_taps("its lower's namespace is gone");
    return;
  }
  const int32_t lower_id = nsid_of(*lower_ns);
  io::LinkInfo li;
  bool found = rtnl_.get_link(rec.lower_ifindex, &li, lower_id) == 0 &&
               (li.name == rec.lower_name || from_bytes(li.mac) == rec.lower_perm_mac);
  if (!found) found = rtnl_.get_link(rec.lower_name, &li, lower_id) == 0;
  if (!found || !ethernet(li)) {
    spdlog::warn("lower {}: gone from its namespace", rec.lower_name);
    drop_taps("its lower is gone");
    return;
  }

  auto port = std::make_unique<Port>(core::Port(lower_state(li), config_.limits));
  port->serial = next_serial_++;
  if (int rc = open_lower(*port, *lower_ns, li.ifindex, li.name); rc < 0) {
    spdlog::error("lower {}: cannot reattach ({}); its devices stay as they are", li.name,
                  std::strerror(-rc));
    return;
  }
  for (const DeviceRecord& d : rec.devices) {
    io::LinkInfo tl;
    const io::NetnsFd* ns = find_tap(d, &tl);
    if (ns == nullptr) {
      if (d.pending) {
        spdlog::warn("device {}: its `link add` was cut short before the TAP was made; dropped",
                     d.name);
      } else {
        spdlog::warn("device {}: its TAP is gone; dropped", d.name);
      }
      continue;
    }
    if (d.pending) spdlog::info("device {}: its `link add` was cut short; adopted", d.name);
    auto dio = std::make_shared<DeviceIo>();
    if (int rc = io::TapDevice::open(*ns, tl.name, &dio->tap, dataplane_.workers()); rc < 0) {
      spdlog::warn("device {}: cannot attach to its TAP ({}); left alone", tl.name,
                   std::strerror(-rc));
      continue;
    }
    steer(dio->tap, true);
    core::DeviceSpec spec;
    spec.name = tl.name;
    spec.mode = d.mode;
    spec.flags = d.flags;
    if (d.mode != core::Mode::kPassthru) spec.address = from_bytes(tl.mac);
    spec.mtu = std::min(tl.mtu, port->core.lower().mtu);
    spec.bcqueuelen = d.bcqueuelen;
    spec.bclim = rec.bclim;
    if (d.mode == core::Mode::kSource) spec.macaddr = {core::SourceOp::kSet, d.sources};
    spec.spoofchk = d.spoofchk;
    core::DeviceId id = core::kNoDevice;
    if (core::Status s = port->core.add_device(spec, rng_(), &id); !s.ok()) {
      spdlog::warn("device {}: refused on re-adoption ({}); left alone", tl.name, s.message);
      continue;
    }
    dio->id = id;
    Device dev;
    dev.id = id;
    dev.io = std::move(dio);
    dev.ns_inode = ns->inode();
    dev.ifindex = tl.ifindex;
    dev.name = tl.name;
    dev.pinned_ns = ns->inode();
    hold_namespace(dev.pinned_ns);
    auto [it, ok] = port->devices.emplace(id, std::move(dev));
    it->second.io->tap.set_carrier(port->core.lower().carrier);
    set_noqueue(*ns, it->second);
    sync_device(*port, it->second, tl);
  }
  if (port->devices.empty()) {
    spdlog::info("lower {}: no device left; port dropped", li.name);
    release_namespace(port->lower_ns_inode);
    return;
  }
  apply_lower_filter(*port);
  if (rec.hostaccess) {
    // LOWER.host came back with the other devices; what it learned did not
    // (the routes it made stay until their devices speak again).
    const std::string host_name = control::host_device_name(port->lower_name);
    for (auto& [id, d] : port->devices) {
      if (d.name != host_name || d.ns_inode != port->lower_ns_inode) continue;
      auto host = std::make_unique<HostAccess>();
      host->device = id;
      host->ifindex = d.ifindex;
      host->name = host_name;
      port->host = std::move(host);
      sync_host_proxies(*port);
    }
    if (port->host == nullptr)
      spdlog::warn("lower {}: hostaccess was on, but {} is gone: off", li.name, host_name);
  }
  // What macnat learned did not come back: the devices teach it again as
  // they speak (until then, frames for them reach the host).
  if (rec.macnat) {
    port->macnat = std::make_unique<MacNat>(rec.macnat_ageing);
    rebuild_macnat_view(*port);
  }
  update_learn_tap(*port);
  ports_.push_back(std::move(port));
}

void LinkService::clean_leftovers(const State& state) {
  // Stale nftables tables of ours in every namespace a port of ours used.
  const std::string table_prefix = "umacvlan_" + config_.instance + "_";
  std::set<ino_t> inodes{home_inode_};
  for (const auto& p : state.ports) inodes.insert(p.lower_netns);
  const std::vector<io::NetnsFd> spaces = io::all_netns();
  for (ino_t inode : inodes) {
    const io::NetnsFd* ns = find_space(spaces, inode);
    if (ns == nullptr) continue;
    std::vector<std::string> keep;
    for (const auto& p : ports_) {
      if (p->lower_ns_inode == inode) keep.push_back(p->stack_filter.table());
    }
    const int removed = io::StackFilter::remove_stale(*ns, table_prefix, keep);
    if (removed > 0) spdlog::warn("removed {} stale nftables table(s) of an earlier run", removed);
  }
}

// ================================================================ namespaces

int32_t LinkService::nsid_of(const io::NetnsFd& ns) {
  const ino_t inode = ns.inode();
  if (inode == home_inode_) return io::RtNetlink::kOwnNamespace;
  if (auto it = id_by_ns_.find(inode); it != id_by_ns_.end()) return it->second;
  int32_t id = kNoNsid;
  if (rtnl_.get_nsid(ns, &id) < 0 || id < 0) return kNoNsid;
  // An id that named another namespace before (it died, the id was reused).
  if (auto old = ns_by_id_.find(id); old != ns_by_id_.end()) id_by_ns_.erase(old->second);
  ns_by_id_[id] = inode;
  id_by_ns_[inode] = id;
  return id;
}

int32_t LinkService::nsid_of_inode(ino_t inode) const {
  if (inode == home_inode_) return io::RtNetlink::kOwnNamespace;
  auto it = id_by_ns_.find(inode);
  return it == id_by_ns_.end() ? kNoNsid : it->second;
}

ino_t LinkService::inode_of_nsid(int32_t nsid) const {
  if (nsid < 0) return home_inode_;
  auto it = ns_by_id_.find(nsid);
  return it == ns_by_id_.end() ? 0 : it->second;
}

void LinkService::hold_namespace(ino_t inode) {
  if (inode == 0 || inode == home_inode_) return;
  if (holds_[inode]++ == 0) watch_.watch(inode);
}

void LinkService::release_namespace(ino_t inode) {
  auto it = holds_.find(inode);
  if (it == holds_.end()) return;
  if (--it->second == 0) {
    holds_.erase(it);
    watch_.unwatch(inode);
  }
}

// ================================================================ lookup

LinkService::Found LinkService::find_device(ino_t ns, int ifindex) {
  for (auto& p : ports_) {
    for (auto& [id, d] : p->devices) {
      if (d.ns_inode == ns && d.ifindex == ifindex) return {p.get(), &d};
    }
  }
  return {};
}

LinkService::Found LinkService::find_by_name(ino_t ns, int32_t nsid, const std::string& name,
                                             Reply* error) {
  io::LinkInfo li;
  if (rtnl_.get_link(name, &li, nsid) != 0) {
    *error = cannot_find(name);
    return {};
  }
  Found f = find_device(ns, li.ifindex);
  if (f.dev == nullptr) *error = refusal(EOPNOTSUPP, "\"" + name + "\" is not a umacvlan device");
  return f;
}

LinkService::Port* LinkService::find_port_by_io(const PortIo* io) {
  for (auto& p : ports_) {
    if (p->io.get() == io) return p.get();
  }
  return nullptr;
}

LinkService::Port* LinkService::find_lower(ino_t ns, int ifindex) {
  for (auto& p : ports_) {
    if (p->lower_ns_inode == ns && p->lower_ifindex == ifindex) return p.get();
  }
  return nullptr;
}

// ================================================================ requests

control::Reply LinkService::handle(const control::LinkRequest& req, const io::NetnsFd& caller) {
  // Users may have moved, renamed or deleted devices with plain `ip` just
  // before: what the kernel said until now is queued on the monitor.
  process_events();
  const int32_t nsid = nsid_of(caller);
  if (nsid == kNoNsid)
    return failure(EINVAL, "Error: cannot address the caller's network namespace.");
  switch (req.op) {
    case LinkOp::kAdd: {
      Reply r = add(req, caller, nsid);
      if (r.error != 0 || !(req.hostaccess || req.macnat || req.macnat_ageing)) return r;
      // The device is made: its port takes the options too.
      Reply err;
      Found f = find_by_name(caller.inode(), nsid, req.name, &err);
      return f.port != nullptr ? set_port_options(*f.port, req) : err;
    }
    case LinkOp::kSet:
      return req.hostaccess || req.macnat || req.macnat_ageing ? set_port_option(req, caller, nsid)
                                                               : set(req, caller, nsid);
    case LinkOp::kDelete:
      return del(req, caller, nsid);
    case LinkOp::kShow:
      return show(req, caller, nsid);
    case LinkOp::kPort:
      return port(req, caller, nsid);
    case LinkOp::kCapture: {
      std::uint64_t port_serial = 0;
      core::DeviceId device = core::kNoDevice;
      std::string name;
      return capture_target(req, caller, &port_serial, &device, &name);
    }
    case LinkOp::kMonitor:
      return Reply{};
  }
  return failure(EINVAL, "Error: unknown request.");
}

control::Reply LinkService::add(const control::LinkRequest& req, const io::NetnsFd& caller,
                                int32_t nsid) {
  if (req.link.empty())
    return refusal(EINVAL, "a macvlan link needs a lower device (\"link DEVICE\")");
  io::LinkInfo lower;
  if (rtnl_.get_link(req.link, &lower, nsid) != 0) return cannot_find(req.link);
  io::LinkInfo clash;
  if (rtnl_.get_link(req.name, &clash, nsid) == 0) return failure(EEXIST);
  const ino_t here = caller.inode();

  // On top of one of our devices: attach to that device's lower.
  Port* port = find_device(here, lower.ifindex).port;
  if (port == nullptr) port = find_lower(here, lower.ifindex);
  if (port == nullptr && !ethernet(lower))
    return refusal(EINVAL, "the lower device must be an Ethernet device");
  if (Reply r = port_options_checked(port, req); r.error != 0) return r;

  // The whole request on a copy of the port first.
  core::Port next = port != nullptr ? port->core : core::Port(lower_state(lower), config_.limits);
  core::DeviceSpec spec;
  spec.name = req.name;
  spec.address = req.address;
  spec.mtu = req.mtu;
  // By default a device takes its lower's MTU; a TAP cannot go as high as a
  // lower may (65535): the highest it can, then.
  if (!spec.mtu && next.lower().mtu > io::TapDevice::kMaxMtu) spec.mtu = io::TapDevice::kMaxMtu;
  spec.mode = req.mode;
  spec.flags = req.flags.value_or(0);
  spec.bcqueuelen = req.bcqueuelen;
  spec.bclim = req.bclim;
  spec.macaddr = core::SourceListChange{req.macaddr_mode, req.macaddrs};
  spec.spoofchk = req.spoofchk.value_or(false);
  core::DeviceId id = core::kNoDevice;
  if (core::Status s = next.add_device(spec, rng_(), &id); !s.ok()) return from_status(s);
  if (req.up.value_or(false)) {
    core::DeviceChange up;
    up.up = true;
    if (core::Status s = next.change_device(id, up); !s.ok()) return from_status(s);
  }

  // The kernel objects. Nothing is committed until they all exist.
  std::unique_ptr<Port> fresh;
  if (port == nullptr) {
    fresh = std::make_unique<Port>(next);
    fresh->serial = next_serial_++;
    if (int rc = open_lower(*fresh, caller, lower.ifindex, lower.name); rc < 0) {
      release_namespace(fresh->lower_ns_inode);
      return failure(-rc);
    }
  }
  Port& p = port != nullptr ? *port : *fresh;
  auto dio = std::make_shared<DeviceIo>();
  dio->id = id;
  // A crash from here on may leave a TAP the next start must find: say so
  // first, with everything the device is to be (the start adopts it if the
  // TAP was made, and forgets the record if not).
  {
    DeviceRecord pending = record_of(*next.device(id));
    pending.name = req.name;
    pending.netns = here;
    pending.pending = true;
    journal_add(port_record_of(p), pending);  // a fresh port's fields are set by open_lower()
  }
  // Made right in the caller's namespace (run_in_netns() goes there): no
  // move, which would wait for an RCU grace period. The TAP's fds keep that
  // namespace alive; the NetnsWatch says when nothing else does
  // (on_orphaned()), and the device then goes as it would with the kernel.
  Device dev;
  dev.id = id;
  dev.ns_inode = here;
  dev.name = req.name;
  dev.pinned_ns = here;
  dev.io = dio;
  std::string why;
  const int made = io::run_in_netns(caller, [&]() -> int {
    if (const int e = io::TapDevice::create(caller, req.name, &dio->tap, dataplane_.workers());
        e < 0)
      return e;
    dev.ifindex = dio->tap.ifindex();
    steer(dio->tap, false);
    dio->tap.set_carrier(next.lower().carrier);
    // noqueue while the TAP is still down: bringing it up then attaches
    // that, instead of building a default qdisc per queue to replace.
    set_noqueue(caller, dev);
    return apply_device(*next.device(id), dev, nullptr, &why);
  });
  if (made < 0) {
    dio->tap.destroy();
    if (fresh) release_namespace(fresh->lower_ns_inode);
    save_later();  // the pending record names a TAP that is not there
    return kernel_refused(made, why);
  }
  hold_namespace(dev.pinned_ns);

  // Commit.
  p.core = std::move(next);
  mark(p);
  p.devices.emplace(id, std::move(dev));
  if (fresh) ports_.push_back(std::move(fresh));
  apply_lower_filter(p);
  // The pending record already holds all of it: the final one can wait.
  save_later();
  publish();
  return Reply{};
}

control::Reply LinkService::set(const control::LinkRequest& req, const io::NetnsFd& caller,
                                int32_t nsid) {
  Reply err;
  Found f = find_by_name(caller.inode(), nsid, req.name, &err);
  if (f.dev == nullptr) return err;
  Port& port = *f.port;
  Device& dev = *f.dev;
  core::DeviceChange c;
  c.mode = req.mode;
  c.flags = req.flags;
  c.bcqueuelen = req.bcqueuelen;
  c.bclim = req.bclim;
  c.macaddr = core::SourceListChange{req.macaddr_mode, req.macaddrs};
  c.spoofchk = req.spoofchk;
  c.address = req.address;
  c.mtu = req.mtu;
  c.up = req.up;
  const bool passthru_addr = req.address && port.core.device(dev.id)->mode == core::Mode::kPassthru;

  core::Port next = port.core;
  if (core::Status s = next.change_device(dev.id, c); !s.ok()) return from_status(s);
  io::LinkChange undo;
  std::string why;
  if (int rc = apply_device(*next.device(dev.id), dev, &undo, &why); rc < 0)
    return kernel_refused(rc, why);
  if (passthru_addr) {
    // Setting the passthru device's address sets the lower's.
    io::LinkChange lc;
    lc.mac = to_bytes(*req.address);
    std::string why;
    if (int rc = set_link_in(port.lower_ns, port.lower_ifindex, lc, &why); rc < 0) {
      set_link_in(dev.io->tap.current_netns(), dev.ifindex, undo, nullptr);
      return kernel_refused(rc, why);
    }
  }
  port.core = std::move(next);
  mark(port);
  apply_lower_filter(port);
  save();
  publish();
  return Reply{};
}

control::Reply LinkService::set_port_option(const control::LinkRequest& req,
                                            const io::NetnsFd& caller, int32_t nsid) {
  io::LinkInfo li;
  if (rtnl_.get_link(req.name, &li, nsid) != 0) return cannot_find(req.name);
  const Found f = find_device(caller.inode(), li.ifindex);
  Port* port = f.port != nullptr ? f.port : find_lower(caller.inode(), li.ifindex);
  if (port == nullptr) {
    return refusal(EOPNOTSUPP, "\"" + req.name +
                                   "\" is neither a umacvlan device nor the lower of one "
                                   "(hostaccess and macnat are options of a lower's port)");
  }
  if (Reply r = port_options_checked(port, req); r.error != 0) return r;
  control::LinkRequest rest = req;
  rest.hostaccess.reset();
  rest.macnat.reset();
  rest.macnat_ageing.reset();
  rest.type_macvlan = false;
  control::LinkRequest bare;
  bare.op = LinkOp::kSet;
  bare.name = req.name;
  const bool more = rest != bare;
  if (f.dev == nullptr && more)
    return refusal(EOPNOTSUPP, "on a lower, only hostaccess, macnat and macnat_ageing can be set");
  if (more) {
    control::LinkRequest dev_part = rest;
    dev_part.type_macvlan = req.type_macvlan;
    if (Reply r = set(dev_part, caller, nsid); r.error != 0) return r;
  }
  return set_port_options(*port, req);
}

control::Reply LinkService::port_options_checked(const Port* port,
                                                 const control::LinkRequest& req) {
  const bool macnat_now = port != nullptr && port->macnat != nullptr;
  if (req.macnat_ageing && !req.macnat.value_or(macnat_now))
    return refusal(EINVAL, "macnat_ageing needs macnat on");
  return Reply{};
}

control::Reply LinkService::set_port_options(Port& port, const control::LinkRequest& req) {
  if (req.hostaccess) {
    if (Reply r = set_hostaccess(port, *req.hostaccess); r.error != 0) return r;
  }
  if (req.macnat || req.macnat_ageing) return set_macnat(port, req.macnat, req.macnat_ageing);
  return Reply{};
}

control::Reply LinkService::del(const control::LinkRequest& req, const io::NetnsFd& caller,
                                int32_t nsid) {
  Reply err;
  Found f = find_by_name(caller.inode(), nsid, req.name, &err);
  if (f.dev == nullptr) return err;
  Port& port = *f.port;
  remove_device(port, f.dev->id, true);
  remove_port_if_empty(port);
  // A restart that still finds it in the file finds no TAP and drops it.
  save_later();
  return Reply{};
}

control::Reply LinkService::show(const control::LinkRequest& req, const io::NetnsFd& caller,
                                 int32_t nsid) {
  const ino_t here = caller.inode();
  Reply r;
  if (!req.name.empty()) {
    io::LinkInfo li;
    if (rtnl_.get_link(req.name, &li, nsid) != 0)
      return failure(ENODEV, "Device \"" + req.name + "\" does not exist.");
  }
  std::vector<std::pair<int, nlohmann::json>> rows;
  io::RtNetlink there;  // a socket in the caller's namespace, opened if needed
  for (auto& p : ports_) {
    for (auto& [id, d] : p->devices) {
      if (d.ns_inode != here) continue;
      if (!req.name.empty() && d.name != req.name) continue;
      io::LinkInfo li;
      if (rtnl_.get_link(d.ifindex, &li, nsid) != 0) continue;
      const std::string lower_name = p->lower_ns_inode == here ? p->lower_name : std::string();
      int32_t link_nsid = -1;
      std::string link_ns;
      if (lower_name.empty()) {
        link_nsid = nsid_seen_from(caller, nsid, p->lower_ns, &there);
        link_ns = io::netns_name(p->lower_ns_inode);
      }
      nlohmann::json j = link_json(li, lower_name, p->lower_ifindex, *p->core.device(id), p->core,
                                   Dataplane::device_counters(*d.io), link_nsid, link_ns);
      if (j.contains("linkinfo") && j["linkinfo"].contains("info_data")) {
        nlohmann::json& data = j["linkinfo"]["info_data"];
        if (p->host != nullptr) data["hostaccess"] = true;
        if (p->macnat != nullptr) {
          data["macnat"] = true;
          data["macnat_ageing"] = p->macnat->ageing;
        }
      }
      rows.emplace_back(li.ifindex, std::move(j));
    }
  }
  // `link show dev LOWER`: the lower of a port here.
  if (!req.name.empty() && rows.empty()) {
    io::LinkInfo li;
    if (rtnl_.get_link(req.name, &li, nsid) == 0) {
      if (const Port* p = find_lower(here, li.ifindex))
        rows.emplace_back(li.ifindex, lower_row(*p, li, caller));
    }
  }
  std::sort(rows.begin(), rows.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [idx, j] : rows) r.links.push_back(std::move(j));
  return r;
}

LinkService::Found LinkService::find_port_of(const control::LinkRequest& req,
                                             const io::NetnsFd& caller, int32_t nsid,
                                             Reply* error) {
  const ino_t here = caller.inode();
  if (!req.name.empty()) return find_by_name(here, nsid, req.name, error);
  io::LinkInfo li;
  if (req.link.empty() || rtnl_.get_link(req.link, &li, nsid) != 0) {
    *error = cannot_find(req.link);
    return {};
  }
  Found f;
  f.port = find_lower(here, li.ifindex);
  if (f.port == nullptr)
    *error = failure(ENOENT, "Error: no umacvlan device sits on \"" + req.link + "\".");
  return f;
}

control::Reply LinkService::capture_target(const control::LinkRequest& req,
                                           const io::NetnsFd& caller, std::uint64_t* port,
                                           core::DeviceId* device, std::string* name) {
  process_events();
  const int32_t nsid = nsid_of(caller);
  if (nsid == kNoNsid)
    return failure(EINVAL, "Error: cannot address the caller's network namespace.");
  Reply r;
  const Found f = find_port_of(req, caller, nsid, &r);
  if (f.port == nullptr) return r;
  *port = f.port->serial;
  *device = f.dev != nullptr ? f.dev->id : core::kNoDevice;
  *name = f.dev != nullptr ? f.dev->name : f.port->lower_name;
  return r;
}

bool LinkService::attach_capture(std::uint64_t port, std::shared_ptr<CaptureTap> tap) {
  for (auto& p : ports_) {
    if (p->serial != port) continue;
    p->capture = std::move(tap);
    // The workers take it before the client hears that the capture runs.
    dataplane_.wait_for(publish(), kReleaseTimeoutMs);
    return true;
  }
  return false;
}

const core::Port* LinkService::port_by_serial(std::uint64_t port, std::string* lower) const {
  for (const auto& p : ports_) {
    if (p->serial != port) continue;
    *lower = p->lower_name;
    return &p->core;
  }
  return nullptr;
}

std::string LinkService::device_name(std::uint64_t port, core::DeviceId id) const {
  for (const auto& p : ports_) {
    if (p->serial != port) continue;
    auto it = p->devices.find(id);
    return it != p->devices.end() ? it->second.name : std::string();
  }
  return {};
}

void LinkService::summary(std::vector<PortSummary>* ports, std::vector<LinkSummary>* links) const {
  for (const auto& p : ports_) {
    const core::LowerState& ls = p->core.lower();
    ports->push_back(
        PortSummary{p->serial, p->lower_name, p->lower_ns_inode, ls.carrier, ls.mtu, ls.mac,
                    p->io != nullptr ? Dataplane::port_counters(*p->io) : core::PortCounters{}});
    if (links == nullptr) continue;
    for (const auto& [id, d] : p->devices) {
      const core::Device* cd = p->core.device(id);
      if (cd == nullptr) continue;
      links->push_back(LinkSummary{p->serial, id, d.name, p->lower_name, d.ns_inode, d.ifindex,
                                   cd->mac, cd->mtu, cd->mode, cd->up});
    }
  }
}

control::Reply LinkService::port(const control::LinkRequest& req, const io::NetnsFd& caller,
                                 int32_t nsid) {
  const ino_t here = caller.inode();
  Reply r;
  Port* p = find_port_of(req, caller, nsid, &r).port;
  if (p == nullptr) return r;
  for (auto& [id, d] : p->devices) {
    io::LinkInfo li;
    // A device whose namespace we cannot read right now still counts for the
    // port's decisions: the port's view of it, with what the kernel last said.
    if (rtnl_.get_link(d.ifindex, &li, nsid_of_inode(d.ns_inode)) != 0) {
      li.ifindex = d.ifindex;
      li.name = d.name;
    }
    const core::Device& dev = *p->core.device(id);
    nlohmann::json j = link_json(li, p->lower_name, p->lower_ifindex, dev, p->core,
                                 Dataplane::device_counters(*d.io));
    nlohmann::json member = {{"here", d.ns_inode == here}};
    if (d.ns_inode != here) {
      if (const std::string ns = io::netns_name(d.ns_inode); !ns.empty()) member["netns"] = ns;
    }
    nlohmann::json groups = nlohmann::json::array();
    for (const auto& m : dev.multicast) groups.push_back(m.to_string());
    member["multicast"] = std::move(groups);
    // The core's own view of the flags it decides on (the kernel's flags may
    // lag a moment behind).
    member["promisc"] = dev.promisc;
    member["allmulti"] = dev.allmulti;
    j["port_member"] = std::move(member);
    r.links.push_back(std::move(j));
  }
  const core::LowerState& ls = p->core.lower();
  control::PortLower lower;
  lower.name = p->lower_name;
  lower.mac = ls.mac;
  lower.mtu = ls.mtu;
  lower.carrier = ls.carrier;
  lower.promisc = ls.promisc;
  lower.allmulti = ls.allmulti;
  lower.multicast = ls.multicast;
  r.lower = std::move(lower);
  return r;
}

int32_t LinkService::nsid_seen_from(const io::NetnsFd& caller, int32_t nsid,
                                    const io::NetnsFd& other, io::RtNetlink* there) {
  int32_t id = -1;
  if (rtnl_.find_nsid(other, &id, nsid) == 0 && id >= 0) return id;
  if (!there->valid() && io::RtNetlink::open(caller, there) < 0) return -1;
  if (there->get_nsid(other, &id) != 0) return -1;
  return id;
}

// ================================================================ kernel objects

int LinkService::open_lower(Port& port, const io::NetnsFd& ns, int ifindex,
                            const std::string& name) {
  port.lower_ns = ns.dup();
  port.lower_ns_inode = ns.inode();
  port.lower_ifindex = ifindex;
  port.lower_name = name;
  hold_namespace(port.lower_ns_inode);
  if (nsid_of(ns) == kNoNsid) return -EINVAL;
  auto io = std::make_shared<PortIo>();
  const std::size_t workers = dataplane_.workers();
  for (std::size_t w = 0; w < workers; ++w) {
    io::PacketLower ring;
    io::PacketLower::Options o;
    // Several workers share the lower's frames: as the steering program
    // says (by CPU, flows kept), or by flow hash without one.
    if (workers > 1) {
      o.fanout_group = static_cast<int>((::getpid() * 131 + port.serial) & 0xffff);
      o.fanout_prog = dataplane_.steering_prog();
    }
    if (int rc = io::PacketLower::open(ns, ifindex, &ring, o); rc < 0) return rc;
    io->rings.push_back(std::move(ring));
  }
  io::PacketLower filters;
  if (int rc = io::PacketLower::open(ns, ifindex, &filters, io::PacketLower::Options{false, -1});
      rc < 0)
    return rc;
  port.filters = std::move(filters);
  port.applied = core::LowerFilter{};
  port.io = std::move(io);
  const std::string table = "umacvlan_" + config_.instance + "_" + std::to_string(port.serial);
  if (int rc = io::StackFilter::open(ns, table, name, &port.stack_filter); rc < 0) {
    spdlog::warn("no nftables ingress filter on {} ({}): frames for devices also reach its stack",
                 name, port.stack_filter.last_error());
  }
  return 0;
}

int LinkService::with_rtnl_in(const io::NetnsFd& ns, const std::function<int(io::RtNetlink&)>& fn,
                              std::string* why) {
  int rc;
  if (ns.valid() && ns.inode() == home_inode_) {
    rc = fn(rtnl_);
    if (why != nullptr) *why = rtnl_.last_error();
    return rc;
  }
  io::RtNetlink there;
  rc = io::RtNetlink::open(ns, &there);
  if (rc == 0) rc = fn(there);
  if (why != nullptr) *why = there.last_error();
  return rc;
}

int LinkService::set_link_in(const io::NetnsFd& ns, int ifindex, const io::LinkChange& c,
                             std::string* why) {
  return with_rtnl_in(
      ns, [&](io::RtNetlink& r) { return r.set_link(ifindex, c); }, why);
}

void LinkService::set_noqueue(const io::NetnsFd& ns, const Device& dev) {
  std::string why;
  if (with_rtnl_in(
          ns, [&](io::RtNetlink& r) { return r.set_noqueue(dev.ifindex); }, &why) < 0)
    spdlog::warn("device {}: cannot set its qdisc to noqueue ({})", dev.name, why);
}

void LinkService::steer(io::TapDevice& tap, bool adopted) {
  const int prog = dataplane_.steering_prog();
  if (prog < 0 && !adopted) return;
  if (const int rc = tap.set_steering(prog); rc < 0)
    spdlog::warn("device {}: its queues stay chosen by flow ({})", tap.name(), std::strerror(-rc));
}

int LinkService::apply_device(const core::Device& want, Device& dev, io::LinkChange* undo,
                              std::string* why) {
  const int32_t nsid = nsid_of_inode(dev.ns_inode);
  io::LinkInfo li;
  if (int rc = rtnl_.get_link(dev.ifindex, &li, nsid); rc < 0) return rc;
  io::LinkChange c;
  io::LinkChange back;
  if (from_bytes(li.mac) != want.mac) {
    c.mac = to_bytes(want.mac);
    back.mac = li.mac;
  }
  if (li.mtu != want.mtu) {
    c.mtu = want.mtu;
    back.mtu = li.mtu;
  }
  if (((li.flags & IFF_UP) != 0) != want.up) {
    c.up = want.up;
    back.up = !want.up;
  }
  if (!c.mac && !c.mtu && !c.up) return 0;
  // Changes need a socket inside the device's namespace (netlink.h).
  const io::NetnsFd ns = dev.io->tap.current_netns();
  if (!ns.valid()) return errno == EBADFD ? -ENODEV : -errno;
  if (ns.inode() != dev.ns_inode) return -ENODEV;  // moving: its events follow
  const int rc = set_link_in(ns, dev.ifindex, c, why);
  if (rc == 0 && undo != nullptr) *undo = back;
  return rc;
}

int LinkService::apply_device(Port& port, Device& dev) {
  const core::Device* d = port.core.device(dev.id);
  return d == nullptr ? 0 : apply_device(*d, dev);
}

void LinkService::apply_lower_filter(Port& port) {
  const core::LowerFilter want = port.core.lower_filter();
  core::LowerFilter& have = port.applied;
  if (want == have) return;
  auto diff = [](const std::vector<core::MacAddress>& a, const std::vector<core::MacAddress>& b) {
    std::vector<core::MacAddress> out;
    std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
    return out;
  };
  io::PacketLower& f = port.filters;
  for (const auto& m : diff(have.unicast, want.unicast)) f.del_unicast(to_bytes(m));
  for (const auto& m : diff(want.unicast, have.unicast)) f.add_unicast(to_bytes(m));
  for (const auto& m : diff(have.multicast, want.multicast)) f.del_multicast(to_bytes(m));
  for (const auto& m : diff(want.multicast, have.multicast)) f.add_multicast(to_bytes(m));
  if (want.promisc != have.promisc) f.set_promisc(want.promisc);
  if (want.allmulti != have.allmulti) f.set_allmulti(want.allmulti);
  if (port.stack_filter.valid() && port.stack_filter.apply(stack_rules(want)) < 0)
    spdlog::warn("nftables: {}", port.stack_filter.last_error());
  have = want;
}

void LinkService::set_carriers(Port& port) {
  for (auto& [id, d] : port.devices) d.io->tap.set_carrier(port.core.lower().carrier);
}

// ================================================================ events

void LinkService::process_events() {
  std::vector<io::LinkEvent> events;
  const int rc = monitor_.read_events(&events);
  bool moved = false;
  std::set<ino_t> multicast;
  std::set<std::pair<ino_t, int>> changed_devices, changed_lowers;
  for (const io::LinkEvent& e : events) {
    const ino_t ns = inode_of_nsid(e.nsid);
    if (ns == 0) continue;  // a namespace we hold nothing in
    if (e.multicast) {
      multicast.insert(ns);
      continue;
    }
    if (e.deleted && e.link.ifindex == 0) {
      // That namespace died, and with it every device in it.
      spdlog::info("a network namespace (id {}) is gone, and the devices in it", e.nsid);
      id_by_ns_.erase(ns);
      ns_by_id_.erase(e.nsid);
      for (std::size_t i = 0; i < ports_.size();) {
        Port& p = *ports_[i];
        std::vector<core::DeviceId> gone;
        for (auto& [id, d] : p.devices) {
          if (d.ns_inode == ns) gone.push_back(id);
        }
        for (core::DeviceId id : gone) remove_device(p, id, false);
        const bool empty = p.devices.empty();
        if (empty) {
          remove_port_if_empty(p);
          continue;
        }
        ++i;
      }
      moved = true;
      continue;
    }
    // An event says what was true when it was sent; what we did since (a
    // request) may have changed it again. Deletions are acted on now; for
    // the rest, the device or lower is read afresh once, after the batch.
    if (Found f = find_device(ns, e.link.ifindex); f.dev != nullptr) {
      if (e.deleted) {
        relocate_device(*f.port, *f.dev);
        moved = true;
      } else {
        changed_devices.emplace(ns, e.link.ifindex);
      }
      continue;
    }
    if (Port* p = find_lower(ns, e.link.ifindex)) {
      if (!e.deleted) {
        changed_lowers.emplace(ns, e.link.ifindex);
      } else if (e.link.new_netnsid >= 0) {
        follow_lower(*p, e.link);
      } else {
        spdlog::info("lower {} deleted: removing its {} device(s)", p->lower_name,
                     p->devices.size());
        remove_port(*p, true);
      }
      moved = true;
    }
  }
  for (const auto& [ns, ifindex] : changed_devices) {
    Found f = find_device(ns, ifindex);
    if (f.dev == nullptr) continue;
    io::LinkInfo li;
    if (rtnl_.get_link(ifindex, &li, nsid_of_inode(ns)) != 0) {
      relocate_device(*f.port, *f.dev);
      moved = true;
      continue;
    }
    if (li.name != f.dev->name) moved = true;
    sync_device(*f.port, *f.dev, li);
  }
  for (const auto& [ns, ifindex] : changed_lowers) {
    Port* p = find_lower(ns, ifindex);
    io::LinkInfo li;
    if (p != nullptr && rtnl_.get_link(ifindex, &li, nsid_of_inode(ns)) == 0) sync_lower(*p, li);
  }
  if (rc == -ENOBUFS) {
    // Events were lost: look at everything once.
    spdlog::warn("rtnetlink events lost; re-reading every device and lower");
    for (std::size_t i = 0; i < ports_.size();) {
      Port& p = *ports_[i];
      io::LinkInfo li;
      if (rtnl_.get_link(p.lower_ifindex, &li, nsid_of_inode(p.lower_ns_inode)) != 0) {
        spdlog::warn("lower {} is gone: removing its {} device(s)", p.lower_name, p.devices.size());
        remove_port(p, true);
        continue;
      }
      sync_lower(p, li);
      std::vector<core::DeviceId> ids;
      for (auto& [id, d] : p.devices) ids.push_back(id);
      for (core::DeviceId id : ids) {
        auto it = p.devices.find(id);
        if (it != p.devices.end()) relocate_device(p, it->second);
      }
      if (p.devices.empty()) {
        remove_port_if_empty(p);
        continue;
      }
      ++i;
    }
    moved = true;
  }
  if (!multicast.empty()) read_multicast(&multicast);
  if (moved) save_later();
  publish_if_changed();
}

void LinkService::sync_device(Port& port, Device& dev, const io::LinkInfo& li) {
  dev.name = li.name;
  dev.ifindex = li.ifindex;
  const core::Device* d = port.core.device(dev.id);
  if (d == nullptr) return;
  core::DeviceChange c;
  const bool up = (li.flags & IFF_UP) != 0;
  if (up != d->up) c.up = up;
  if (li.has_mac && from_bytes(li.mac) != d->mac) c.address = from_bytes(li.mac);
  if (li.mtu != d->mtu) c.mtu = li.mtu;
  if ((li.promiscuity > 0) != d->promisc) c.promisc = li.promiscuity > 0;
  if ((li.allmulti > 0) != d->allmulti) c.allmulti = li.allmulti > 0;
  if (up && li.operstate == IF_OPER_UNKNOWN && port.core.lower().carrier) {
    // A TAP never reports an operstate of its own; a macvlan says UP.
    io::LinkChange oper;
    oper.operstate = IF_OPER_UP;
    set_link_in(dev.io->tap.current_netns(), li.ifindex, oper, nullptr);
  }
  if (!c.up && !c.address && !c.mtu && !c.promisc && !c.allmulti) return;
  if (core::Status s = port.core.change_device(dev.id, c); !s.ok()) {
    // Part of it is what the kernel's macvlan would have refused (say, up
    // with a MAC in use): take each part alone, then put the TAP back the
    // way the core has it.
    core::DeviceChange rest = c;
    rest.up.reset();
    rest.address.reset();
    rest.mtu.reset();
    (void)port.core.change_device(dev.id, rest);
    core::DeviceChange a, m, u;
    a.address = c.address;
    m.mtu = c.mtu;
    u.up = c.up;
    for (const core::DeviceChange* part : {&a, &m, &u})
      (void)port.core.change_device(dev.id, *part);
    apply_device(port, dev);
  }
  mark(port);
  apply_lower_filter(port);
}

void LinkService::relocate_device(Port& port, Device& dev) {
  const core::DeviceId id = dev.id;
  io::NetnsFd ns = dev.io->tap.current_netns();
  const int err = ns.valid() ? 0 : errno;
  if (err == EMFILE || err == ENFILE || err == ENOMEM) {
    // We cannot look now; that says nothing about the device.
    spdlog::warn("device {}: cannot look where it is ({}); trying again later", dev.name,
                 std::strerror(err));
    return;
  }
  std::string name;
  io::LinkInfo li;
  int32_t nsid = kNoNsid;
  if (ns.valid() && dev.io->tap.current_name(&name) == 0) nsid = nsid_of(ns);
  if (nsid == kNoNsid || rtnl_.get_link(name, &li, nsid) != 0) {
    // Deleted, or its namespace was.
    spdlog::info("device {} is gone", dev.name);
    remove_device(port, id, false);
    remove_port_if_empty(port);
    return;
  }
  if (ns.inode() != dev.ns_inode) set_noqueue(ns, dev);  // a move gives it the default back
  dev.ns_inode = ns.inode();
  sync_device(port, dev, li);
}

void LinkService::sync_lower(Port& port, const io::LinkInfo& li) {
  core::Port& p = port.core;
  if (li.name != port.lower_name) {
    // The ingress chain hooks the lower by name: hook it again.
    port.lower_name = li.name;
    io::StackFilter renamed;
    if (io::StackFilter::open(port.lower_ns, port.stack_filter.table(), li.name, &renamed) == 0) {
      port.stack_filter = std::move(renamed);
      port.stack_filter.apply(stack_rules(port.applied));
    }
  }
  bool changed = false;
  if (li.mtu != p.lower().mtu) {
    p.lower_mtu_changed(li.mtu);
    for (auto& [id, d] : port.devices) apply_device(port, d);
    changed = true;
  }
  const bool carrier = (li.flags & IFF_LOWER_UP) != 0;
  if (carrier != p.lower().carrier) {
    p.lower_carrier_changed(carrier);
    set_carriers(port);
    changed = true;
  }
  if (li.has_mac && from_bytes(li.mac) != p.lower().mac) {
    p.lower_mac_changed(from_bytes(li.mac));
    for (auto& [id, d] : port.devices) apply_device(port, d);
    changed = true;
  }
  if ((li.promiscuity > 0) != p.lower().promisc || (li.allmulti > 0) != p.lower().allmulti) {
    p.lower_flags_changed(li.promiscuity > 0, li.allmulti > 0);
    changed = true;
  }
  if (changed) mark(port);
  apply_lower_filter(port);
}

void LinkService::follow_lower(Port& port, const io::LinkInfo& gone) {
  const int32_t old_id = nsid_of_inode(port.lower_ns_inode);
  io::NetnsFd target;
  for (io::NetnsFd& ns : io::all_netns()) {
    if (ns.inode() == port.lower_ns_inode) continue;
    int32_t id = kNoNsid;
    if (rtnl_.find_nsid(ns, &id, old_id) == 0 && id == gone.new_netnsid) {
      target = std::move(ns);
      break;
    }
  }
  io::LinkInfo li;
  const int32_t new_id = target.valid() ? nsid_of(target) : kNoNsid;
  if (new_id == kNoNsid || rtnl_.get_link(gone.new_ifindex, &li, new_id) != 0) {
    spdlog::warn("lower {} moved to a namespace umacvlan cannot find; removing its {} device(s)",
                 port.lower_name, port.devices.size());
    remove_port(port, true);
    return;
  }
  spdlog::info("lower {} moved to another namespace (ifindex {}); the port follows it",
               port.lower_name, li.ifindex);
  // The old sockets go with the old view; the new ones come with the next.
  const ino_t old_ns = port.lower_ns_inode;
  port.stack_filter.remove();
  if (int rc = open_lower(port, target, li.ifindex, li.name); rc < 0) {
    spdlog::warn("lower {}: cannot attach in its new namespace ({}); removing its devices", li.name,
                 std::strerror(-rc));
    release_namespace(old_ns);
    remove_port(port, true);
    return;
  }
  release_namespace(old_ns);
  mark(port);
  sync_lower(port, li);
}

void LinkService::apply_multicast(Port& port, Device& dev,
                                  const std::vector<io::MacBytes>& groups) {
  const core::Device* d = port.core.device(dev.id);
  if (d == nullptr || !d->up) return;
  std::vector<core::MacAddress> g = to_core(groups);
  if (g == d->multicast) return;
  core::DeviceChange c;
  c.multicast = std::move(g);
  if (port.core.change_device(dev.id, c).ok()) {
    mark(port);
    apply_lower_filter(port);
  }
}

void LinkService::poll_multicast() {
  read_multicast(nullptr);
  publish_if_changed();
}

void LinkService::read_multicast(const std::set<ino_t>* only) {
  using Clock = std::chrono::steady_clock;
  const auto now = Clock::now();
  // Half a period of slack: the tick that comes one period after a read
  // finds `due` a little ahead (it counted from after the tick), and
  // without it every other tick would be skipped.
  const auto slack = std::chrono::milliseconds(kMcastPollMs / 2);
  // Nothing due: not even a walk over the devices (a thousand of them cost
  // as much as the reads themselves). Any change resets next_mcast_poll_.
  if (only == nullptr) {
    if (now + slack < next_mcast_poll_) return;
    next_mcast_poll_ = Clock::time_point::max();  // until a change resets it
  }
  // One read per namespace that holds an up device.
  std::map<ino_t, std::vector<std::pair<Port*, Device*>>> by_ns;
  std::set<ino_t> all_ns;
  for (auto& p : ports_) {
    for (auto& [id, d] : p->devices) {
      const core::Device* cd = p->core.device(id);
      if (cd == nullptr || !cd->up) continue;
      all_ns.insert(d.ns_inode);
      if (only == nullptr || only->count(d.ns_inode) != 0)
        by_ns[d.ns_inode].emplace_back(p.get(), &d);
    }
  }
  for (auto& [inode, devs] : by_ns) {
    McastPoll& poll = mcast_polls_[inode];
    // With many devices or many namespaces each is read less often, so that
    // all reads cost at most 1/kMcastPollCostFactor of a core (an event in
    // a namespace asks for its read at once, within its own budget).
    if (only == nullptr && now + slack < poll.due) continue;
    if (only != nullptr && now < poll.event_ok) {
      poll.due = std::min(poll.due, poll.event_ok);
      next_mcast_poll_ = std::min(next_mcast_poll_, poll.event_ok);
      continue;
    }
    io::NetnsFd ns = devs.front().second->io->tap.current_netns();
    if (!ns.valid() || ns.inode() != inode) continue;  // moving: its events will tell
    std::map<int, std::vector<io::MacBytes>> groups;
    // The CPU time, not the wall time: on a busy machine the read's thread
    // waits a tick to start, and that would stretch 250 ms to 2 s.
    std::chrono::nanoseconds cost{0};
    const int rc = io::read_dev_mcast_all(ns, &groups, &poll.last, &cost);
    poll.due = now + std::max<Clock::duration>(
                         std::chrono::milliseconds(kMcastPollMs),
                         cost * kMcastPollCostFactor * static_cast<long>(all_ns.size()));
    poll.event_ok = now + cost * kMcastEventCostFactor;
    if (rc != 0) continue;  // unreadable, or nothing changed
    static const std::vector<io::MacBytes> kNone;
    for (auto [p, d] : devs) {
      auto it = groups.find(d->ifindex);
      apply_multicast(*p, *d, it == groups.end() ? kNone : it->second);
    }
  }
  // A change during the pass (apply_multicast() marks its port) reset it:
  // the next pass then comes at the next tick.
  if (only != nullptr || next_mcast_poll_ != Clock::time_point::max()) return;
  // At least once a second all the same, for a change that did not mark.
  Clock::time_point next = now + std::chrono::milliseconds(4 * kMcastPollMs);
  for (const auto& [inode, devs] : by_ns) next = std::min(next, mcast_polls_[inode].due);
  next_mcast_poll_ = next;
}

// ================================================================ faults

void LinkService::on_orphaned(const std::vector<ino_t>& namespaces) {
  for (ino_t inode : namespaces) {
    for (std::size_t i = 0; i < ports_.size();) {
      Port& p = *ports_[i];
      if (p.lower_ns_inode == inode) {
        spdlog::info("the namespace of lower {} is gone: removing its {} device(s)", p.lower_name,
                     p.devices.size());
        remove_port(p, true);
        continue;
      }
      std::vector<core::DeviceId> doomed, rehome;
      for (auto& [id, d] : p.devices) {
        if (d.pinned_ns != inode) continue;
        (d.ns_inode == inode ? doomed : rehome).push_back(id);
      }
      for (core::DeviceId id : doomed) {
        spdlog::info("the namespace of device {} is gone: removing it", p.devices[id].name);
        remove_device(p, id, true);
      }
      for (core::DeviceId id : rehome) {
        // It moved on since it was re-adopted: attach from where it is now
        // and let go of the dead namespace.
        Device& d = p.devices[id];
        io::NetnsFd now = d.io->tap.current_netns();
        auto fresh = std::make_shared<DeviceIo>();
        fresh->id = id;
        fresh->counters = d.io->counters;
        if (!now.valid() ||
            io::TapDevice::open(now, d.name, &fresh->tap, dataplane_.workers(), true) < 0) {
          remove_device(p, id, false);
          continue;
        }
        steer(fresh->tap, true);
        fresh->tap.set_carrier(p.core.lower().carrier);
        release_namespace(d.pinned_ns);
        d.pinned_ns = now.inode();
        hold_namespace(d.pinned_ns);
        d.io = std::move(fresh);
        mark(p);
      }
      if (p.devices.empty()) {
        remove_port_if_empty(p);
        continue;
      }
      ++i;
    }
    // Whatever still held it is gone now.
    holds_.erase(inode);
    mcast_polls_.erase(inode);
    watch_.unwatch(inode);
  }
  save_later();
  publish_if_changed();
}

void LinkService::on_notices(const std::vector<Notice>& notices) {
  for (const Notice& n : notices) {
    Port* port = find_port_by_io(n.port);
    if (port == nullptr) continue;  // already gone
    if (n.kind == Notice::kTapFailed) {
      auto it = port->devices.find(n.device);
      if (it != port->devices.end()) relocate_device(*port, it->second);
      continue;
    }
    // The lower went down, away or to another namespace. Only rtnetlink
    // tells which (its event may come after the socket's error): the events
    // decide about the port; here only its state is read again.
    io::LinkInfo li;
    if (rtnl_.get_link(port->lower_ifindex, &li, nsid_of_inode(port->lower_ns_inode)) == 0)
      sync_lower(*port, li);
  }
  save_later();
  publish_if_changed();
}

// ================================================================ removal

void LinkService::remove_device(Port& port, core::DeviceId id, bool destroy_tap) {
  auto it = port.devices.find(id);
  if (it == port.devices.end()) return;
  forget_host_routes(port, id);
  forget_macnat(port, id);
  // LOWER.host deleted by hand: hostaccess is off.
  if (port.host != nullptr && port.host->device == id) disable_hostaccess(port, false);
  std::shared_ptr<DeviceIo> io = std::move(it->second.io);
  release_namespace(it->second.pinned_ns);
  port.devices.erase(it);
  port.core.remove_device(id);
  mark(port);
  apply_lower_filter(port);
  const std::uint64_t v = publish();
  // Only once no worker reads its fds any more may they close under us.
  const bool released = dataplane_.wait_for(v, kReleaseTimeoutMs);
  if (!destroy_tap) return;
  if (released) {
    io->tap.destroy();
  } else {
    io->tap.set_persist(false);  // gone when the last worker lets go
  }
}

void LinkService::remove_port(Port& port, bool destroy_taps) {
  auto it =
      std::find_if(ports_.begin(), ports_.end(), [&](const auto& p) { return p.get() == &port; });
  if (it == ports_.end()) return;
  std::unique_ptr<Port> doomed = std::move(*it);
  ports_.erase(it);
  dirty_ = true;
  const std::uint64_t v = publish();
  const bool released = dataplane_.wait_for(v, kReleaseTimeoutMs);
  for (auto& [id, d] : doomed->devices) {
    release_namespace(d.pinned_ns);
    if (!destroy_taps) continue;
    if (released) {
      d.io->tap.destroy();
    } else {
      d.io->tap.set_persist(false);
    }
  }
  if (doomed->core.lower().mac != doomed->core.lower_perm_mac()) {
    // The lower gets the MAC it had before a passthru device took it over.
    io::LinkChange lc;
    lc.mac = to_bytes(doomed->core.lower_perm_mac());
    set_link_in(doomed->lower_ns, doomed->lower_ifindex, lc, nullptr);
  }
  release_namespace(doomed->lower_ns_inode);
  // Its sockets, nftables table and namespace fd close with it.
}

void LinkService::remove_port_if_empty(Port& port) {
  if (port.devices.empty()) remove_port(port, false);
}

void LinkService::remove_everything() {
  while (!ports_.empty()) remove_port(*ports_.back(), true);
  if (!config_.state_path.empty()) remove_state(config_.state_path);
}

// ================================================================ state, view

DeviceRecord LinkService::record_of(const core::Device& cd) {
  DeviceRecord dr;
  dr.name = cd.name;
  dr.mac = cd.mac;
  dr.mode = cd.mode;
  dr.flags = cd.flags;
  dr.bcqueuelen = cd.bcqueuelen;
  dr.sources = cd.sources;
  dr.spoofchk = cd.spoofchk;
  dr.mtu = cd.mtu;
  dr.up = cd.up;
  return dr;
}

PortRecord LinkService::port_record_of(const Port& p) {
  PortRecord pr;
  pr.lower_name = p.lower_name;
  pr.lower_ifindex = p.lower_ifindex;
  pr.lower_netns = p.lower_ns_inode;
  pr.lower_perm_mac = p.core.lower_perm_mac();
  pr.bclim = p.core.bclim();
  pr.hostaccess = p.host != nullptr;
  pr.macnat = p.macnat != nullptr;
  if (p.macnat != nullptr) pr.macnat_ageing = p.macnat->ageing;
  return pr;
}

State LinkService::snapshot() const {
  State s;
  for (const auto& p : ports_) {
    PortRecord pr = port_record_of(*p);
    for (const auto& [id, d] : p->devices) {
      const core::Device* cd = p->core.device(id);
      if (cd == nullptr) continue;
      DeviceRecord dr = record_of(*cd);
      dr.name = d.name;
      dr.ifindex = d.ifindex;
      dr.netns = d.ns_inode;
      pr.devices.push_back(std::move(dr));
    }
    s.ports.push_back(std::move(pr));
  }
  return s;
}

void LinkService::save() {
  state_dirty_ = false;
  if (config_.state_path.empty()) return;
  std::string error;
  if (save_state(config_.state_path, snapshot(), &error) < 0) spdlog::warn("state: {}", error);
}

void LinkService::journal_add(PortRecord port, const DeviceRecord& pending) {
  if (config_.state_path.empty()) return;
  port.devices = {pending};
  std::string error;
  if (append_journal(config_.state_path, port, &error) < 0) spdlog::warn("state: {}", error);
}

void LinkService::flush_state() {
  if (state_dirty_) save();
}

void LinkService::publish_if_changed() {
  if (dirty_) publish();
}

void LinkService::metrics(MetricsSnapshot* out) const {
  // The names under /run/netns, read once per scrape.
  const std::map<ino_t, std::string> named = io::named_netns();
  auto netns_label = [&](ino_t inode) -> std::string {
    if (auto it = named.find(inode); it != named.end()) return it->second;
    return inode == home_inode_ ? std::string() : "net:[" + std::to_string(inode) + "]";
  };
  for (const auto& p : ports_) {
    MetricsSnapshot::Port mp;
    mp.port = p->lower_ns_inode == home_inode_
                  ? p->lower_name
                  : netns_label(p->lower_ns_inode) + "/" + p->lower_name;
    mp.devices = p->devices.size();
    mp.used_bcqueuelen = p->core.used_bcqueuelen();
    if (p->io != nullptr) mp.drops = Dataplane::port_counters(*p->io);
    for (const auto& [id, d] : p->devices) {
      const core::Device* cd = p->core.device(id);
      MetricsSnapshot::Device md;
      md.port = mp.port;
      md.device = d.name;
      md.netns = netns_label(d.ns_inode);
      md.mode = cd != nullptr ? std::string(core::to_string(cd->mode)) : std::string();
      if (d.io != nullptr) md.counters = Dataplane::device_counters(*d.io);
      out->devices.push_back(std::move(md));
    }
    out->ports.push_back(std::move(mp));
  }
}

std::uint64_t LinkService::publish() {
  dirty_ = false;
  auto view = std::make_shared<DataplaneView>();
  for (auto& p : ports_) {
    if (p->published == nullptr) p->published = std::make_shared<const core::Port>(p->core);
    PortView pv;
    pv.port = p->published;
    pv.io = p->io;
    pv.capture = p->capture;
    pv.learn = p->learn;
    if (p->macnat != nullptr) pv.macnat = p->macnat->view;
    pv.devices.resize(p->core.slot_count());
    for (auto& [id, d] : p->devices) {
      if (id < pv.devices.size()) pv.devices[id] = d.io;
    }
    view->ports.push_back(std::move(pv));
  }
  return dataplane_.publish(std::move(view));
}

}  // namespace umacvlan::daemon
