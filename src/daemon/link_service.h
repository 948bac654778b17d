// LinkService: the control path. Turns `link add/set/del/show` requests into
// core::Port decisions and then into kernel objects (TAP devices, AF_PACKET
// sockets, nftables sets), keeps the ports in step with what users do to the
// devices and lowers with plain `ip`, and hands every change to the data path
// as a newly published view.
//
// Contract
// - handle() validates a request whole (names resolved in the caller's
//   namespace, then the core's rules on a copy of the port) before it
//   changes anything, then changes the kernel, and commits the copy only if
//   the kernel agreed: a refused request, by the core or by the kernel,
//   returns the errno and sentence and leaves every port, device and kernel
//   object as it was.
// - Event-driven: on_link_events() applies what rtnetlink reports (the
//   monitor listens in every namespace that holds a device or a lower: each
//   gets an id here), at a cost that follows the events, not the number of
//   devices. Device moved to another namespace, renamed, up/down, address,
//   MTU, promisc/allmulti; lower MTU, carrier, address, renamed, moved to
//   another namespace (the port follows it, as the kernel's does), deleted
//   (its devices go). A change the kernel's macvlan would have refused
//   (`ip link set X up` with a MAC in use) is undone on the TAP.
//   poll_multicast() reads link-layer multicast lists, which raise no event,
//   once per namespace that holds an up device.
// - Lifetime: devices outlive the daemon. Every change is saved in the state
//   file before it is acknowledged (a `link add` is written before its TAP
//   is made, so a crash leaves nothing unknown); start() re-adopts what the
//   file names (see state_store.h) and removes the nftables tables a
//   crashed run left.
//   The daemon's references in other namespaces (a lower's sockets, a
//   re-adopted TAP) are reported to the NetnsWatch; on_orphaned() drops
//   them when nobody else holds the namespace, as the kernel would have
//   destroyed it with the lower or the devices in it.
// - Owns the ports. Never blocks on the data path; only `link del` and port
//   removal wait (bounded) for the workers to let go of a device.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "control/control_protocol.h"
#include "core/ip_table.h"
#include "core/port.h"
#include "daemon/dataplane.h"
#include "daemon/state_store.h"
#include "io/netlink.h"
#include "io/netns.h"
#include "io/netns_watch.h"
#include "io/packet_lower.h"
#include "io/stack_filter.h"

namespace umacvlan::daemon {

struct MetricsSnapshot;

// What `umacvlan monitor` compares from one moment to the next.
struct PortSummary {
  std::uint64_t port = 0;  // serial: stable for the port's life, never reused
  std::string name;        // the lower's
  ino_t ns = 0;
  bool carrier = true;
  std::uint32_t mtu = 0;
  core::MacAddress mac;
  core::PortCounters drops;  // so far, by reason
};
struct LinkSummary {
  std::uint64_t port = 0;
  core::DeviceId id = core::kNoDevice;
  std::string name;
  std::string lower;
  ino_t ns = 0;
  int ifindex = 0;
  core::MacAddress mac;
  std::uint32_t mtu = 0;
  core::Mode mode = core::Mode::kVepa;
  bool up = false;
};

struct LinkServiceConfig {
  std::string state_path;  // empty: no state file (tests)
  // Names this daemon's nftables tables (umacvlan_<instance>_N), so that a
  // start removes its own stale ones and no other daemon's.
  std::string instance;
  core::PortLimits limits;
};

// A refusal as ip prints it: "RTNETLINK answers: <strerror>", then, on a
// line of its own, "umacvlan: <why>." (nothing when why is empty).
control::Reply refusal(int err, const std::string& why);

class LinkService {
 public:
  LinkService(LinkServiceConfig config, Dataplane& dataplane, io::NetnsWatch& watch);
  ~LinkService();

  // Opens the netlink sockets, re-adopts what the state file names and
  // cleans up leftovers; publishes the first view. 0 or -errno.
  int start();

  control::Reply handle(const control::LinkRequest& req, const io::NetnsFd& caller);

  // The rtnetlink monitor, for the caller's epoll; process_events() reads it.
  int monitor_fd() const { return monitor_.fd(); }
  void process_events();
  void poll_multicast();
  void on_orphaned(const std::vector<ino_t>& namespaces);
  void on_notices(const std::vector<Notice>& notices);

  // Removes every device and port and the state file (`daemon --cleanup`).
  void remove_everything();
  // Writes the state file if save_later() asked for it (the loop's tick, and
  // before the daemon stops).
  void flush_state();

  std::size_t device_count() const;
  std::size_t port_count() const { return ports_.size(); }
  // Devices start() re-adopted from the state file.
  std::size_t readopted_count() const { return readopted_; }
  // ---- streams (capture_service.h, monitor_service.h)
  // `capture dev NAME` / `capture port LOWER` as the caller names them: the
  // port's serial, the device (kNoDevice: the whole port) and its name (or
  // the lower's); an error reply (and nothing set) when there is none.
  control::Reply capture_target(const control::LinkRequest& req, const io::NetnsFd& caller,
                                std::uint64_t* port, core::DeviceId* device, std::string* name);
  // Publishes port with tap (null: without one); false when it is gone.
  bool attach_capture(std::uint64_t port, std::shared_ptr<CaptureTap> tap);
  // The port's decisions as they stand and its lower's name; null when gone.
  const core::Port* port_by_serial(std::uint64_t port, std::string* lower) const;
  // A device's name where it lives; empty when it is gone.
  std::string device_name(std::uint64_t port, core::DeviceId id) const;
  std::size_t max_devices() const { return config_.limits.max_devices; }

  // ---- port options: hostaccess (host_access.cc), macnat (mac_nat.cc)
  // Learns the devices' addresses from the frames the ports with hostaccess
  // or macnat copied off the data path: keeps hostaccess's host routes in
  // step (and its proxy entries with the lower's IPv6 addresses), and
  // macnat's published table (ageing out what is silent). The loop calls it
  // every 10 ms while port_options_active().
  void port_options_tick();
  bool port_options_active() const;
  // The ports and, unless links is null, their devices.
  void summary(std::vector<PortSummary>* ports, std::vector<LinkSummary>* links) const;

  // Every device's and port's counters with their names, for a scrape
  // (metrics.h): the devices and ports of *out.
  void metrics(MetricsSnapshot* out) const;

 private:
  struct Device {
    core::DeviceId id = core::kNoDevice;
    std::shared_ptr<DeviceIo> io;
    ino_t ns_inode = 0;   // where it lives now
    int ifindex = 0;      // there
    std::string name;     // there
    ino_t pinned_ns = 0;  // where its TAP fds were opened (and are kept alive)
  };
  // A port's hostaccess (host_access.cc).
  struct HostAccess {
    core::DeviceId device = core::kNoDevice;  // LOWER.host
    int ifindex = 0;                          // in the lower's namespace
    std::string name;
    core::IpTable learned{core::IpTable::kDefaultMaxEntries, 0};  // no ageing
    std::set<std::array<std::uint8_t, 16>> proxied;
    std::chrono::steady_clock::time_point next_sync;
  };
  // A port's macnat (mac_nat.cc).
  struct MacNat {
    explicit MacNat(std::uint32_t ageing_s)
        : ageing(ageing_s), learned(core::IpTable::kDefaultMaxEntries, ageing_s * 1000ULL) {}
    std::uint32_t ageing;  // seconds
    core::IpTable learned;
    std::shared_ptr<MacNatView> view;  // as published (the workers stamp it)
    std::chrono::steady_clock::time_point next_age;
  };
  struct Port {
    std::uint64_t serial = 0;
    core::Port core;                              // the truth; published as a copy
    std::shared_ptr<const core::Port> published;  // null: changed since
    std::shared_ptr<PortIo> io;
    io::PacketLower filters;  // membership-only socket on the lower
    io::StackFilter stack_filter;
    io::NetnsFd lower_ns;
    ino_t lower_ns_inode = 0;
    int lower_ifindex = 0;
    std::string lower_name;
    core::LowerFilter applied;
    std::map<core::DeviceId, Device> devices;
    std::shared_ptr<CaptureTap> capture;  // while a capture runs
    std::unique_ptr<HostAccess> host;     // hostaccess on
    std::unique_ptr<MacNat> macnat;       // macnat on
    // While hostaccess or macnat is on: the frames they learn from.
    std::shared_ptr<CaptureTap> learn;

    explicit Port(core::Port p) : core(std::move(p)) {}
  };

  // ---- requests
  control::Reply add(const control::LinkRequest& req, const io::NetnsFd& caller, int32_t nsid);
  control::Reply set(const control::LinkRequest& req, const io::NetnsFd& caller, int32_t nsid);
  control::Reply del(const control::LinkRequest& req, const io::NetnsFd& caller, int32_t nsid);
  control::Reply show(const control::LinkRequest& req, const io::NetnsFd& caller, int32_t nsid);
  // `explain`: the whole port of a device or lower of the caller's, every
  // device wherever it lives.
  control::Reply port(const control::LinkRequest& req, const io::NetnsFd& caller, int32_t nsid);
  // The id the caller's namespace (id nsid in ours) has for `other`,
  // assigned there when it has none, as the kernel does when it reports a
  // link's namespace; -1 when it cannot be had. `there` is a socket in the
  // caller's namespace, opened the first time one is needed.
  int32_t nsid_seen_from(const io::NetnsFd& caller, int32_t nsid, const io::NetnsFd& other,
                         io::RtNetlink* there);

  // ---- port options
  // Creates or drops the port's learn tap as hostaccess or macnat need it.
  void update_learn_tap(Port& port);
  // The device of port whose MAC is mac (but except), for a DHCP ack's chaddr.
  std::optional<core::DeviceId> device_with_mac(const Port& port, core::MacAddress mac,
                                                core::DeviceId except = core::kNoDevice) const;
  // ---- hostaccess (host_access.cc)
  control::Reply set_hostaccess(Port& port, bool on);
  void hostaccess_learn(Port& port, const CaptureRecord& r, std::uint64_t now_ms);
  void hostaccess_tick(Port& port);
  // Drops the port's hostaccess; with remove_device_too, LOWER.host too
  // (its routes and proxy entries go with it).
  void disable_hostaccess(Port& port, bool remove_device_too);
  void host_route(Port& port, const core::IpEntry& e, bool add);
  void sync_host_proxies(Port& port);
  void forget_host_routes(Port& port, core::DeviceId id);
  // Drops what device id no longer has (a new address replaced an old one).
  void prune_host_routes(Port& port, core::DeviceId id);
  // `link set NAME ... hostaccess X macnat Y macnat_ageing N`: NAME a
  // device (its other changes first) or the lower of a port.
  control::Reply set_port_option(const control::LinkRequest& req, const io::NetnsFd& caller,
                                 int32_t nsid);
  // The port options of req (hostaccess, macnat, macnat_ageing) as a whole,
  // before anything changes: a refusal, or an empty Reply. port is null when
  // the request makes the port (a `link add` on a new lower).
  static control::Reply port_options_checked(const Port* port, const control::LinkRequest& req);
  // The port options of req, once port_options_checked() let them pass and
  // the device part is done.
  control::Reply set_port_options(Port& port, const control::LinkRequest& req);
  // ---- macnat (mac_nat.cc)
  // ageing only with macnat on (now or by this call): port_options_checked().
  control::Reply set_macnat(Port& port, std::optional<bool> on,
                            std::optional<std::uint32_t> ageing);
  void macnat_learn(Port& port, const CaptureRecord& r, std::uint64_t now_ms);
  // Folds the workers' stamps into the table, ages it, republishes it.
  void macnat_tick(Port& port, std::uint64_t now_ms);
  void forget_macnat(Port& port, core::DeviceId id);
  // Builds the published table from what was learned (keeping the newer
  // stamps of the old one); the caller publishes.
  void rebuild_macnat_view(Port& port);
  // `link show dev LOWER`: the lower of a port, with its options and table.
  nlohmann::json lower_row(const Port& port, const io::LinkInfo& li,
                           const io::NetnsFd& caller) const;

  // ---- lookup
  struct Found {
    Port* port = nullptr;
    Device* dev = nullptr;
  };
  Found find_device(ino_t ns, int ifindex);
  Found find_by_name(ino_t ns, int32_t nsid, const std::string& name, control::Reply* error);
  // The port of `name` (a device; dev set too) or of `link` (a lower).
  Found find_port_of(const control::LinkRequest& req, const io::NetnsFd& caller, int32_t nsid,
                     control::Reply* error);
  Port* find_port_by_io(const PortIo* io);
  Port* find_lower(ino_t ns, int ifindex);

  // ---- namespaces
  // The id of ns here (assigning one), remembered with its inode.
  int32_t nsid_of(const io::NetnsFd& ns);
  int32_t nsid_of_inode(ino_t inode) const;  // -2 when unknown
  ino_t inode_of_nsid(int32_t nsid) const;   // 0 when unknown
  void hold_namespace(ino_t inode);
  void release_namespace(ino_t inode);

  // ---- kernel objects
  int open_lower(Port& port, const io::NetnsFd& ns, int ifindex, const std::string& name);
  // Pushes the core's view of a device to its TAP (address, MTU, up).
  // Runs fn with a netlink socket of namespace ns (ours when ns is home,
  // else one opened there for the call). fn's result; its sentence in *why.
  int with_rtnl_in(const io::NetnsFd& ns, const std::function<int(io::RtNetlink&)>& fn,
                   std::string* why);
  // Changes a link of namespace ns through a socket opened there. 0 or
  // -errno, the kernel's sentence in *why.
  int set_link_in(const io::NetnsFd& ns, int ifindex, const io::LinkChange& c, std::string* why);
  // A macvlan's qdisc: noqueue (logged when it cannot be set).
  void set_noqueue(const io::NetnsFd& ns, const Device& dev);
  // Gives a TAP the dataplane's steering program (a failure is logged: TUN
  // then chooses its queues by flow). adopted: a TAP an earlier daemon
  // served, whose program (if any) is taken off when we have none.
  void steer(io::TapDevice& tap, bool adopted);
  // undo (when given) gets what puts the TAP back as it was.
  int apply_device(const core::Device& want, Device& dev, io::LinkChange* undo = nullptr,
                   std::string* why = nullptr);
  int apply_device(Port& port, Device& dev);
  void apply_lower_filter(Port& port);
  void set_carriers(Port& port);
  // A device's kernel state (from an event or a query) into the core.
  void sync_device(Port& port, Device& dev, const io::LinkInfo& li);
  void sync_lower(Port& port, const io::LinkInfo& li);
  void relocate_device(Port& port, Device& dev);
  void follow_lower(Port& port, const io::LinkInfo& gone);
  void apply_multicast(Port& port, Device& dev, const std::vector<io::MacBytes>& groups);
  // Reads the multicast lists of the namespaces in *only (all when null).
  void read_multicast(const std::set<ino_t>* only);

  // ---- removal
  void remove_device(Port& port, core::DeviceId id, bool destroy_tap);
  void remove_port(Port& port, bool destroy_taps);
  void remove_port_if_empty(Port& port);

  // ---- state and publication
  static DeviceRecord record_of(const core::Device& d);
  // The port's own fields, no devices.
  static PortRecord port_record_of(const Port& p);
  State snapshot() const;
  // Writes the state file now (before a reply that must survive a crash).
  void save();
  // Writes it at the next flush_state(): for what a restart finds out from
  // the kernel anyway (a device gone, moved, renamed).
  void save_later() { state_dirty_ = true; }
  // Before a `link add` makes its TAP: its record, pending, is appended to
  // the journal (with its port's, devices left out), and the whole state
  // waits for the next save().
  void journal_add(PortRecord port, const DeviceRecord& pending);
  std::uint64_t publish();
  void publish_if_changed();
  void mark(Port& port) {
    port.published.reset();
    dirty_ = true;
    next_mcast_poll_ = {};  // a device may have come up, or moved
  }

  // ---- start
  void adopt(const State& state);
  void adopt_port(const PortRecord& rec, const std::vector<io::NetnsFd>& spaces);
  void clean_leftovers(const State& state);

  LinkServiceConfig config_;
  Dataplane& dataplane_;
  io::NetnsWatch& watch_;
  io::NetnsFd home_;
  ino_t home_inode_ = 0;
  io::RtNetlink rtnl_;  // in the daemon's namespace; others through their ids
  io::LinkMonitor monitor_;
  std::map<int32_t, ino_t> ns_by_id_;
  std::map<ino_t, int32_t> id_by_ns_;
  std::map<ino_t, int> holds_;  // references we keep in each namespace
  // The last read of each namespace's multicast lists, and when the next is due.
  struct McastPoll {
    std::string last;
    std::chrono::steady_clock::time_point due;
    // An event reads at once from this time on; before it, the read waits
    // for the tick (due is brought forward to it).
    std::chrono::steady_clock::time_point event_ok;
  };
  std::map<ino_t, McastPoll> mcast_polls_;
  // The earliest `due` of the last full pass; reset by any change (mark()).
  std::chrono::steady_clock::time_point next_mcast_poll_{};
  std::vector<std::unique_ptr<Port>> ports_;
  bool dirty_ = true;  // something changed since the last publish()
  bool state_dirty_ = false;
  std::uint64_t next_serial_ = 1;
  std::size_t readopted_ = 0;
  std::uint32_t tap_seq_ = 0;
  std::mt19937_64 rng_;
};

}  // namespace umacvlan::daemon
