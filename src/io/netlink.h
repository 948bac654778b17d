// rtnetlink (NETLINK_ROUTE) through libmnl: read, change and delete links,
// map namespaces to namespace ids, watch link events of every namespace, and
// read a device's link-layer multicast list.
//
// Contract:
// - RtNetlink owns one blocking NETLINK_ROUTE socket created inside the
//   namespace given to open(); every request acts in that namespace, whatever
//   the calling thread's namespace is. LinkMonitor owns one non-blocking
//   NETLINK_ROUTE socket, created the same way, subscribed to RTNLGRP_LINK and
//   RTNLGRP_NSID with NETLINK_LISTEN_ALL_NSID. Both are move-only; destroying or
//   moving-from one closes only its socket. *out of open() is replaced only on
//   success. Neither is thread-safe: one thread at a time per object.
// - Every call returns 0 (or a count) on success and a negative errno on
//   failure, the kernel's own errno when the kernel refused the request;
//   last_error() then holds the kernel's extended-ack sentence (or ours).
//   Nothing throws, nothing logs. A request waits at most kRequestTimeoutMs
//   for its answer (-ETIMEDOUT).
// - set_link() is all or nothing: the MTU is checked against the device's
//   range before anything is sent, and if the kernel still refuses after it
//   applied part of the change (it sets the address before the MTU, the MTU
//   before the flags), the parts already applied are put back (listeners then
//   see both the change and its undoing).
// - Namespace ids (nsid) are those of the socket's own namespace: the id under
//   which *this* namespace knows the other one. The own namespace is always -1.
//   The kernel delivers events of another namespace to a NETLINK_LISTEN_ALL_NSID
//   socket only while that namespace has an id here, hence get_nsid() assigns
//   one when there is none.
// - Values inside a LinkInfo (ifindex, link_ifindex, link_netnsid, master) are
//   those of the namespace the device lives in: for an event from another
//   namespace, IFLA_LINK_NETNSID is an id in *that* namespace's table.
// - Never: changes a device it was not asked to, or moves the calling thread
//   into another namespace for longer than a call (run_in_netns()). LinkMonitor never waits
//   for events; the only request it makes is one local RTM_GETNSID the first
//   time it sees a namespace id.
#pragma once

#include <sys/types.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/netns.h"

struct mnl_socket;
struct nlmsghdr;

namespace umacvlan::io {

// What RTM_NEWLINK says about one device.
struct LinkInfo {
  int ifindex = 0;
  std::string name;
  std::array<uint8_t, 6> mac{};
  bool has_mac = false;  // IFLA_ADDRESS present and 6 bytes long
  uint32_t mtu = 0;
  uint32_t min_mtu = 0;  // 0 when the kernel does not report it
  uint32_t max_mtu = 0;  // 0: no maximum (or not reported)
  // IFF_* (IFF_UP, IFF_LOWER_UP, IFF_LOOPBACK, ...). IFF_PROMISC and
  // IFF_ALLMULTI here are only what userspace asked for (`ip link set promisc
  // on`); promiscuity/allmulti below count every user, the kernel's included.
  uint32_t flags = 0;
  uint8_t operstate = 0;      // IF_OPER_*
  uint16_t type = 0;          // ARPHRD_*
  std::string kind;           // IFLA_INFO_KIND: "veth", "macvlan", "tun", ...; empty if none
  int link_ifindex = 0;       // IFLA_LINK: the lower or the veth peer; 0 if none
  int32_t link_netnsid = -1;  // IFLA_LINK_NETNSID: where link_ifindex lives; -1 same ns
  std::string qdisc;
  uint32_t txqlen = 0;
  int promiscuity = 0;  // promiscuity count (IFLA_PROMISCUITY)
  int allmulti = 0;     // allmulti count (IFLA_ALLMULTI, kernels 6.6+; else 0)
  std::string alias;    // IFLA_IFALIAS
  int master = 0;       // IFLA_MASTER: bridge/bond ifindex, 0 if none
  // RTM_DELLINK of a device that moved to another namespace: that namespace
  // (an id of the namespace the event came from) and its index there.
  int32_t new_netnsid = -1;
  int new_ifindex = 0;
  // A tun/tap device (kind "tun"): its IFLA_INFO_DATA.
  struct Tun {
    bool tap = false;          // IFLA_TUN_TYPE is IFF_TAP
    bool vnet_hdr = false;     // IFLA_TUN_VNET_HDR
    bool multi_queue = false;  // IFLA_TUN_MULTI_QUEUE
    bool persist = false;      // IFLA_TUN_PERSIST
    uint32_t queues = 0;       // IFLA_TUN_NUM_QUEUES: fds attached now
  };
  std::optional<Tun> tun;
};

// The parts of a device set_link() may change; unset fields stay as they are.
// An interface address (RTM_NEWADDR) or a route (RTM_NEWROUTE, main table),
// IPv4 or IPv6: `addr` holds 4 or 16 bytes in network order.
struct IpAddress {
  int family = 0;  // AF_INET or AF_INET6
  std::array<uint8_t, 16> addr{};
  uint8_t prefix = 0;
  int ifindex = 0;
  uint32_t flags = 0;  // IFA_F_* (IFA_FLAGS when present): tentative, dadfailed, ...
  uint8_t scope = 0;
  friend bool operator==(const IpAddress&, const IpAddress&) = default;
};

struct IpRoute {
  int family = 0;
  std::array<uint8_t, 16> dst{};  // all zero with dst_prefix 0: the default route
  uint8_t dst_prefix = 0;
  bool has_gateway = false;
  std::array<uint8_t, 16> gateway{};
  int ifindex = 0;  // RTA_OIF (0 for a multipath route)
  uint32_t table = 0;
  uint8_t type = 0;  // RTN_UNICAST, ...
};

struct LinkChange {
  std::optional<bool> up;
  std::optional<std::array<uint8_t, 6>> mac;
  std::optional<uint32_t> mtu;
  // IFLA_OPERSTATE (IF_OPER_*): a device whose driver never reports one (a
  // TAP stays "UNKNOWN") can be moved to IF_OPER_UP by userspace.
  std::optional<uint8_t> operstate;
};

class LinkMonitor;

// Closes a libmnl socket (the deleter of the sockets below).
struct MnlSocketClose {
  void operator()(mnl_socket* nl) const;
};
using MnlSocket = std::unique_ptr<mnl_socket, MnlSocketClose>;

class RtNetlink {
 public:
  static constexpr int kRequestTimeoutMs = 5000;
  // The namespace argument of get_link(): the socket's own namespace, or the
  // id (as get_nsid() gives it) of another one, which the kernel then reads
  // (IFLA_TARGET_NETNSID) without this thread or socket entering it. Only
  // reads take one: on RTM_SETLINK the kernel ignores the attribute and acts
  // in the socket's own namespace (checked on 6.18), so a change to a device
  // elsewhere needs a socket opened there.
  static constexpr int32_t kOwnNamespace = -1;

  RtNetlink() = default;

  // Opens a NETLINK_ROUTE socket inside ns.
  static int open(const NetnsFd& ns, RtNetlink* out);

  bool valid() const { return nl_ != nullptr; }

  // One device by name (alternative names work too) or by index. -ENODEV if
  // there is none, -EINVAL for an empty or over-long name or an index <= 0.
  int get_link(const std::string& name, LinkInfo* out, int32_t nsid = kOwnNamespace);
  int get_link(int ifindex, LinkInfo* out, int32_t nsid = kOwnNamespace);
  // Every device of the namespace (RTM_GETLINK dump), in ifindex order.
  int list_links(std::vector<LinkInfo>* out);
  // Applies c to the device (RTM_SETLINK), all or nothing (see above).
  // -ENODEV, -EINVAL (MTU out of range), -EADDRNOTAVAIL (multicast or zero
  // address), -EADDRINUSE, -EBUSY, ... as the kernel says.
  int set_link(int ifindex, const LinkChange& c);
  // RTM_DELLINK. -ENODEV if there is no such device, -EOPNOTSUPP for devices
  // that cannot be deleted (lo, physical ones).
  int delete_link(int ifindex);
  // Replaces the device's root qdisc with noqueue (RTM_NEWQDISC), as a
  // macvlan has: frames go straight to the driver. A device moved to
  // another namespace gets its default qdisc back.
  int set_noqueue(int ifindex);
  // Moves the device to namespace `to` and, when new_name is not empty,
  // renames it there in the same request (no clash with a name in either
  // namespace on the way). When the new name is taken there the kernel
  // (6.18) answers EEXIST but may have moved the device under its old name.
  int move_link(int ifindex, const NetnsFd& to, const std::string& new_name);
  int rename_link(int ifindex, const std::string& new_name);
  // Addresses of one device (ifindex > 0) or of all (0), of one family or
  // both (AF_UNSPEC).
  int list_addresses(int family, int ifindex, std::vector<IpAddress>* out);
  int add_address(const IpAddress& a);
  // Routes of the main table (unicast, local and the rest; callers filter).
  int list_routes(int family, std::vector<IpRoute>* out);
  // Adds a route to the main table (NLM_F_CREATE | NLM_F_APPEND, as `ip route
  // append`, so that an equal-cost second gateway is kept).
  int add_route(const IpRoute& r);
  // A host route of umacvlan's own (protocol static, scope link, main
  // table): made or moved to r's device (NLM_F_REPLACE), or deleted (only
  // a route that matches family, destination, prefix and device).
  int replace_route(const IpRoute& r);
  int delete_route(const IpRoute& r);
  // An IPv6 proxy neighbour (`ip -6 neigh add proxy ADDR dev IFINDEX`):
  // the device answers neighbour solicitations for addr (with proxy_ndp on).
  int add_neigh_proxy(int ifindex, const std::array<uint8_t, 16>& addr);
  // The id under which this socket's namespace knows `other`; assigns one
  // (RTM_NEWNSID) if it has none yet. -1 (and 0 returned) when `other` is this
  // socket's own namespace.
  int get_nsid(const NetnsFd& other, int32_t* nsid);
  // The same without assigning: -1 in *nsid when `other` has no id here.
  // With seen_from (an id of ours), the id the namespace seen_from uses for
  // `other` (NETNSA_TARGET_NSID), -1 when it has none.
  int find_nsid(const NetnsFd& other, int32_t* nsid, int32_t seen_from = kOwnNamespace);

  // The kernel's extended-ack message for the last failed call, or our own
  // sentence when we refused before asking; empty after a success.
  const std::string& last_error() const { return error_; }

 private:
  friend class LinkMonitor;

  // Sends req (seq and flags are filled in here) and feeds
  // every answer message carrying our seq to on_msg, until the ack, the
  // error or NLMSG_DONE. on_msg returns 0 or -errno (which stops it).
  template <typename Fn>
  int transact(nlmsghdr* req, Fn&& on_msg);
  int get_link_by(int ifindex, const std::string& name, LinkInfo* out, int32_t nsid);
  int send_setlink(int ifindex, const LinkChange& c);
  // RTM_GETNSID only: no assignment, no special case for the own namespace.
  int query_nsid(const NetnsFd& other, int32_t* nsid, int32_t seen_from = kOwnNamespace);
  int fail(int err, std::string message);

  MnlSocket nl_;
  uint32_t portid_ = 0;
  uint32_t seq_ = 0;
  ino_t ns_inode_ = 0;
  std::vector<char> buf_;  // receive buffer, sized once in open()
  std::string error_;
};

struct LinkEvent {
  bool deleted = false;  // RTM_DELLINK (the device is gone or left the namespace)
  // RTM_NEWMULTICAST/RTM_DELMULTICAST (kernels 6.13+): an IPv4 or IPv6 group
  // was joined or left on link.ifindex (nothing else of link is set), so its
  // link-layer multicast list may have changed.
  bool multicast = false;
  int32_t nsid = -1;  // namespace the event happened in; -1: the monitor's own
  LinkInfo link;
};

class LinkMonitor {
 public:
  LinkMonitor() = default;

  // Opens the monitor socket inside ns (whose events then carry nsid -1),
  // subscribed to link, namespace-id and (where the kernel has them) IPv4 and
  // IPv6 multicast-address events.
  static int open(const NetnsFd& ns, LinkMonitor* out);

  bool valid() const { return nl_ != nullptr; }
  // Readable when events are queued (for epoll/poll).
  int fd() const;

  // Replaces *out with every link event queued now and returns how many, 0
  // if none. -ENOBUFS when the kernel dropped events (socket overrun, or an
  // event too large for our buffer): the caller must resync with
  // RtNetlink::list_links(); events read before the overrun are still in *out.
  // Also reports, as a LinkEvent with deleted set, an empty link (ifindex 0,
  // no name) and the nsid of the namespace, that a namespace this one had an
  // id for has died: all its devices are gone, and their own RTM_DELLINKs are
  // not delivered (see netlink.cc). The id may then be reused for another.
  int read_events(std::vector<LinkEvent>* out);

 private:
  // Maps an nsid from a message's NETLINK_LISTEN_ALL_NSID cmsg to ours: -1 for
  // the monitor's own namespace, which may have an id of its own.
  int32_t normalize_nsid(int32_t nsid);

  MnlSocket nl_;
  RtNetlink ctl_;  // same namespace: asks which nsid, if any, it has for itself
  NetnsFd self_;
  int32_t self_nsid_ = -1;
  std::vector<int32_t> other_nsids_;  // ids known not to be our own
  std::vector<char> buf_;
};

// The link-layer multicast list of device ifindex in namespace ns (what
// `ip maddr show dev X` lists as "link"): /proc/thread-self/net/dev_mcast read
// inside ns (run_in_netns()). -ENODEV if ns has no such device; an empty
// list for a device without groups.
int read_dev_mcast(const NetnsFd& ns, int ifindex, std::vector<std::array<uint8_t, 6>>* out);
// The same for every device of ns at once, by ifindex (devices without
// groups are absent): one read of dev_mcast. When previous is given and the
// file reads exactly as *previous did, *out is left alone and 1 returned
// (nothing changed; parsing skipped); *previous then holds what was read.
// When cpu is given it receives the CPU time the call used (the calling
// thread's): unlike the wall time, it does not grow while the thread waits
// for a busy CPU.
int read_dev_mcast_all(const NetnsFd& ns, std::map<int, std::vector<std::array<uint8_t, 6>>>* out,
                       std::string* previous = nullptr, std::chrono::nanoseconds* cpu = nullptr);

}  // namespace umacvlan::io
