#include "io/netlink.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/if_tun.h>
#include <linux/neighbour.h>
#include <linux/net_namespace.h>
#include <linux/netlink.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <utility>

#include "core/mac_address.h"
#include "io/frame_batch.h"

// What the kernel does (checked on 6.18, see netlink_test.cc):
// - A NETLINK_LISTEN_ALL_NSID socket gets events of other namespaces only
//   while its own namespace has an nsid for them (do_one_broadcast() checks
//   peernet_has_id()); each such message carries a SOL_NETLINK /
//   NETLINK_LISTEN_ALL_NSID cmsg with that id. Events of the socket's own
//   namespace carry no cmsg. Kernels without upstream commit 88b126b39f97
//   ("net: netlink: dont set nsid on local notifications", in the 2026 stable
//   updates; the 6.18.44 here behaves so) tag them with the id the namespace may hold for
//   itself (`ip netns set SELF N`), and kernels without 70f8592ee905 may
//   attach a cmsg of -1: normalize_nsid() folds both back to -1.
// - When a namespace dies, its id is removed from every table (RTM_DELNSID on
//   RTNLGRP_NSID) before its devices are unregistered, so their RTM_DELLINKs
//   never reach other namespaces: the monitor turns the RTM_DELNSID into the
//   "namespace gone" event.
// - /proc/net is a link to /proc/self/net, and "self" is the thread-group
//   leader: a thread that setns()'d elsewhere still reads the main
//   thread's namespace there. /proc/thread-self/net follows the thread.
// - do_setlink() applies IFLA_ADDRESS, then IFLA_MTU, then the flags, and does
//   not undo the earlier ones when a later one fails.

namespace umacvlan::io {
namespace {

constexpr std::size_t kRecvBufferSize = 64 * 1024;
constexpr std::size_t kRequestSize = 512;
constexpr int kMonitorRcvBuf = 4 << 20;
constexpr int kDumpAttempts = 5;
constexpr std::size_t kAltNameSize = 128;  // ALTIFNAMSIZ, from <linux/if.h>
// Linux 6.13's multicast-address notifications; the 6.1 headers lack them.
constexpr int kGroupIpv4Mcaddr = 37;    // RTNLGRP_IPV4_MCADDR
constexpr int kGroupIpv6Mcaddr = 38;    // RTNLGRP_IPV6_MCADDR
constexpr uint16_t kNewMulticast = 56;  // RTM_NEWMULTICAST
constexpr uint16_t kDelMulticast = 57;  // RTM_DELMULTICAST

// Creates the socket inside ns (a socket belongs to the namespace of the
// thread that created it) and binds it to a kernel-chosen port id.
int open_route_socket(const NetnsFd& ns, int flags, MnlSocket* out) {
  mnl_socket* nl = nullptr;
  const int rc = run_in_netns(ns, [&] {
    nl = mnl_socket_open2(NETLINK_ROUTE, flags);
    return nl == nullptr ? -errno : 0;
  });
  if (rc < 0) {
    if (nl != nullptr) mnl_socket_close(nl);
    return rc;
  }
  if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
    const int err = -errno;
    mnl_socket_close(nl);
    return err;
  }
  out->reset(nl);
  return 0;
}

int set_nl_opt(mnl_socket* nl, int opt, int value) {
  return mnl_socket_setsockopt(nl, opt, &value, sizeof(value)) < 0 ? -errno : 0;
}

bool get_u32(const nlattr* a, uint32_t* v) {
  if (mnl_attr_validate(a, MNL_TYPE_U32) < 0) return false;
  *v = mnl_attr_get_u32(a);
  return true;
}

// Strings are NUL-terminated by the kernel; strnlen guards against one that is not.
std::string get_str(const nlattr* a) {
  const auto* p = static_cast<const char*>(mnl_attr_get_payload(a));
  return std::string(p, ::strnlen(p, mnl_attr_get_payload_len(a)));
}

int tun_attr(const nlattr* a, void* data) {
  auto* t = static_cast<LinkInfo::Tun*>(data);
  const bool u8 = mnl_attr_validate(a, MNL_TYPE_U8) == 0;
  switch (mnl_attr_get_type(a)) {
    case IFLA_TUN_TYPE:
      if (u8) t->tap = mnl_attr_get_u8(a) == IFF_TAP;
      break;
    case IFLA_TUN_VNET_HDR:
      if (u8) t->vnet_hdr = mnl_attr_get_u8(a) != 0;
      break;
    case IFLA_TUN_MULTI_QUEUE:
      if (u8) t->multi_queue = mnl_attr_get_u8(a) != 0;
      break;
    case IFLA_TUN_PERSIST:
      if (u8) t->persist = mnl_attr_get_u8(a) != 0;
      break;
    case IFLA_TUN_NUM_QUEUES:
      get_u32(a, &t->queues);
      break;
    default:
      break;
  }
  return MNL_CB_OK;
}

int linkinfo_attr(const nlattr* a, void* data) {
  auto* l = static_cast<LinkInfo*>(data);
  if (mnl_attr_get_type(a) == IFLA_INFO_KIND) l->kind = get_str(a);
  // The kernel puts the kind before the data.
  if (mnl_attr_get_type(a) == IFLA_INFO_DATA && l->kind == "tun") {
    LinkInfo::Tun t;
    mnl_attr_parse_nested(a, tun_attr, &t);
    l->tun = t;
  }
  return MNL_CB_OK;
}

int link_attr(const nlattr* a, void* data) {
  auto* l = static_cast<LinkInfo*>(data);
  uint32_t v = 0;
  switch (mnl_attr_get_type(a)) {
    case IFLA_IFNAME:
      l->name = get_str(a);
      break;
    case IFLA_ADDRESS:
      if (mnl_attr_get_payload_len(a) == l->mac.size()) {
        std::memcpy(l->mac.data(), mnl_attr_get_payload(a), l->mac.size());
        l->has_mac = true;
      }
      break;
    case IFLA_MTU:
      if (get_u32(a, &v)) l->mtu = v;
      break;
    case IFLA_MIN_MTU:
      if (get_u32(a, &v)) l->min_mtu = v;
      break;
    case IFLA_MAX_MTU:
      if (get_u32(a, &v)) l->max_mtu = v;
      break;
    case IFLA_OPERSTATE:
      if (mnl_attr_validate(a, MNL_TYPE_U8) == 0) l->operstate = mnl_attr_get_u8(a);
      break;
    case IFLA_LINKINFO:
      mnl_attr_parse_nested(a, linkinfo_attr, l);
      break;
    case IFLA_LINK:
      if (get_u32(a, &v)) l->link_ifindex = static_cast<int>(v);
      break;
    case IFLA_LINK_NETNSID:
      if (get_u32(a, &v)) l->link_netnsid = static_cast<int32_t>(v);
      break;
    case IFLA_QDISC:
      l->qdisc = get_str(a);
      break;
    case IFLA_TXQLEN:
      if (get_u32(a, &v)) l->txqlen = v;
      break;
    case IFLA_PROMISCUITY:
      if (get_u32(a, &v)) l->promiscuity = static_cast<int>(v);
      break;
    case IFLA_ALLMULTI:
      if (get_u32(a, &v)) l->allmulti = static_cast<int>(v);
      break;
    case IFLA_IFALIAS:
      l->alias = get_str(a);
      break;
    case IFLA_MASTER:
      if (get_u32(a, &v)) l->master = static_cast<int>(v);
      break;
    case IFLA_NEW_NETNSID:
      if (get_u32(a, &v)) l->new_netnsid = static_cast<int32_t>(v);
      break;
    case IFLA_NEW_IFINDEX:
      if (get_u32(a, &v)) l->new_ifindex = static_cast<int>(v);
      break;
    default:
      break;
  }
  return MNL_CB_OK;
}

// RTM_NEWLINK / RTM_DELLINK -> LinkInfo.
int parse_link(const nlmsghdr* nlh, LinkInfo* out) {
  if (mnl_nlmsg_get_payload_len(nlh) < sizeof(ifinfomsg)) return -EPROTO;
  const auto* ifi = static_cast<const ifinfomsg*>(mnl_nlmsg_get_payload(nlh));
  LinkInfo l;
  l.ifindex = ifi->ifi_index;
  l.flags = ifi->ifi_flags;
  l.type = ifi->ifi_type;
  mnl_attr_parse(nlh, sizeof(*ifi), link_attr, &l);
  *out = std::move(l);
  return 0;
}

int nsid_attr(const nlattr* a, void* data) {
  if (mnl_attr_get_type(a) == NETNSA_NSID && mnl_attr_validate(a, MNL_TYPE_U32) == 0) {
    *static_cast<int32_t*>(data) = static_cast<int32_t>(mnl_attr_get_u32(a));
  }
  return MNL_CB_OK;
}

// NETNSA_NSID of an RTM_NEWNSID / RTM_DELNSID message, -1 if absent.
int32_t parse_nsid(const nlmsghdr* nlh) {
  int32_t id = -1;
  if (mnl_nlmsg_get_payload_len(nlh) >= sizeof(rtgenmsg)) {
    mnl_attr_parse(nlh, sizeof(rtgenmsg), nsid_attr, &id);
  }
  return id;
}

int extack_attr(const nlattr* a, void* data) {
  if (mnl_attr_get_type(a) == NLMSGERR_ATTR_MSG) *static_cast<std::string*>(data) = get_str(a);
  return MNL_CB_OK;
}

// The error of an NLMSG_ERROR (0 for an ack) and its extended-ack message.
int parse_error(const nlmsghdr* nlh, std::string* message) {
  const std::size_t len = mnl_nlmsg_get_payload_len(nlh);
  if (len < sizeof(nlmsgerr)) return -EPROTO;
  const auto* e = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
  if (e->error != 0 && (nlh->nlmsg_flags & NLM_F_ACK_TLVS) != 0) {
    // The TLVs follow the echoed request, which NETLINK_CAP_ACK cuts to its header.
    std::size_t off = sizeof(nlmsgerr);
    if ((nlh->nlmsg_flags & NLM_F_CAPPED) == 0 && e->msg.nlmsg_len > sizeof(nlmsghdr)) {
      off += e->msg.nlmsg_len - sizeof(nlmsghdr);
    }
    if (off < len) mnl_attr_parse(nlh, off, extack_attr, message);
  }
  return e->error;
}

nlmsghdr* start_request(char* buf, uint16_t type) {
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = type;
  return nlh;
}

ifinfomsg* put_ifinfo(nlmsghdr* nlh, int ifindex) {
  auto* ifi = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = ifindex;
  return ifi;
}

void put_target(nlmsghdr* nlh, int32_t nsid) {
  if (nsid >= 0) mnl_attr_put_u32(nlh, IFLA_TARGET_NETNSID, static_cast<uint32_t>(nsid));
}

}  // namespace

// ---------------------------------------------------------------- RtNetlink

void MnlSocketClose::operator()(mnl_socket* nl) const {
  mnl_socket_close(nl);
}

int RtNetlink::open(const NetnsFd& ns, RtNetlink* out) {
  if (!ns.valid()) return -EBADF;
  RtNetlink r;
  if (int rc = open_route_socket(ns, SOCK_CLOEXEC, &r.nl_); rc < 0) return rc;
  // Ask for the kernel's error sentences, and not for a copy of our request in them.
  set_nl_opt(r.nl_.get(), NETLINK_EXT_ACK, 1);
  set_nl_opt(r.nl_.get(), NETLINK_CAP_ACK, 1);
  const timeval tv{kRequestTimeoutMs / 1000, (kRequestTimeoutMs % 1000) * 1000};
  if (::setsockopt(mnl_socket_get_fd(r.nl_.get()), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0) {
    return -errno;
  }
  r.portid_ = mnl_socket_get_portid(r.nl_.get());
  r.ns_inode_ = ns.inode();
  r.buf_.resize(kRecvBufferSize);
  *out = std::move(r);
  return 0;
}

int RtNetlink::fail(int err, std::string message) {
  error_ = std::move(message);
  return err;
}

template <typename Fn>
int RtNetlink::transact(nlmsghdr* req, Fn&& on_msg) {
  if (nl_ == nullptr) return fail(-EBADF, "netlink socket is not open");
  error_.clear();
  const uint32_t seq = ++seq_;
  req->nlmsg_seq = seq;
  req->nlmsg_flags |= NLM_F_REQUEST;
  // Dumps end with NLMSG_DONE; everything else with an ack or an error.
  if ((req->nlmsg_flags & NLM_F_DUMP) != NLM_F_DUMP) req->nlmsg_flags |= NLM_F_ACK;
  if (mnl_socket_sendto(nl_.get(), req, req->nlmsg_len) < 0) {
    const int err = -errno;
    return fail(err, std::string("cannot send to rtnetlink: ") + std::strerror(-err));
  }
  int result = 0;
  bool interrupted = false;
  for (;;) {
    const ssize_t n = mnl_socket_recvfrom(nl_.get(), buf_.data(), buf_.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        return fail(-ETIMEDOUT, "no answer from the kernel to an rtnetlink request");
      }
      const int err = -errno;
      return fail(err, std::string("cannot receive from rtnetlink: ") + std::strerror(-err));
    }
    int len = static_cast<int>(n);
    for (auto* m = reinterpret_cast<const nlmsghdr*>(buf_.data()); mnl_nlmsg_ok(m, len);
         m = mnl_nlmsg_next(m, &len)) {
      // A late answer to an earlier request that timed out.
      if (m->nlmsg_seq != seq || !mnl_nlmsg_portid_ok(m, portid_)) continue;
      if ((m->nlmsg_flags & NLM_F_DUMP_INTR) != 0) interrupted = true;
      if (m->nlmsg_type == NLMSG_ERROR) {
        std::string message;
        const int err = parse_error(m, &message);
        if (err < 0) {
          return fail(err, message.empty() ? std::string(std::strerror(-err)) : message);
        }
        return result;
      }
      if (m->nlmsg_type == NLMSG_DONE) {
        if (mnl_nlmsg_get_payload_len(m) >= sizeof(int)) {
          int err = 0;
          std::memcpy(&err, mnl_nlmsg_get_payload(m), sizeof(err));
          if (err < 0) return fail(err, std::strerror(-err));
        }
        if (interrupted && result == 0) return -EINTR;
        return result;
      }
      if (m->nlmsg_type < NLMSG_MIN_TYPE) continue;
      // After a failure keep reading to the end, so that nothing of this
      // answer is left for the next request.
      if (result == 0) result = on_msg(m);
    }
  }
}

int RtNetlink::get_link_by(int ifindex, const std::string& name, LinkInfo* out, int32_t nsid) {
  char buf[kRequestSize];
  nlmsghdr* nlh = start_request(buf, RTM_GETLINK);
  put_ifinfo(nlh, ifindex);
  put_target(nlh, nsid);
  if (!name.empty()) {
    mnl_attr_put_strz(nlh, name.size() < IFNAMSIZ ? IFLA_IFNAME : IFLA_ALT_IFNAME, name.c_str());
  }
  mnl_attr_put_u32(nlh, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
  LinkInfo l;
  bool got = false;
  const int rc = transact(nlh, [&](const nlmsghdr* m) {
    if (m->nlmsg_type != RTM_NEWLINK) return 0;
    const int r = parse_link(m, &l);
    got = r == 0;
    return r;
  });
  if (rc < 0) return rc;
  if (!got) return fail(-EPROTO, "the kernel acknowledged RTM_GETLINK without a link");
  *out = std::move(l);
  return 0;
}

int RtNetlink::get_link(const std::string& name, LinkInfo* out, int32_t nsid) {
  if (name.empty()) return fail(-EINVAL, "empty device name");
  if (name.size() >= kAltNameSize) {
    return fail(-EINVAL, "device name \"" + name + "\" is longer than " +
                             std::to_string(kAltNameSize - 1) + " characters");
  }
  return get_link_by(0, name, out, nsid);
}

int RtNetlink::get_link(int ifindex, LinkInfo* out, int32_t nsid) {
  if (ifindex <= 0) return fail(-EINVAL, "ifindex " + std::to_string(ifindex) + " is not positive");
  return get_link_by(ifindex, std::string(), out, nsid);
}

int RtNetlink::list_links(std::vector<LinkInfo>* out) {
  for (int attempt = 1;; ++attempt) {
    char buf[kRequestSize];
    nlmsghdr* nlh = start_request(buf, RTM_GETLINK);
    nlh->nlmsg_flags = NLM_F_DUMP;
    put_ifinfo(nlh, 0);
    mnl_attr_put_u32(nlh, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
    std::vector<LinkInfo> links;
    const int rc = transact(nlh, [&](const nlmsghdr* m) {
      if (m->nlmsg_type != RTM_NEWLINK) return 0;
      LinkInfo l;
      if (const int r = parse_link(m, &l); r < 0) return r;
      links.push_back(std::move(l));
      return 0;
    });
    // -EINTR: the list changed while the kernel was dumping it; ask again.
    if (rc == -EINTR && attempt < kDumpAttempts) continue;
    if (rc == -EINTR) return fail(rc, "the link list kept changing while being read");
    if (rc < 0) return rc;
    *out = std::move(links);
    return 0;
  }
}

int RtNetlink::send_setlink(int ifindex, const LinkChange& c) {
  char buf[kRequestSize];
  nlmsghdr* nlh = start_request(buf, RTM_SETLINK);
  ifinfomsg* ifi = put_ifinfo(nlh, ifindex);
  if (c.up) {
    ifi->ifi_change = IFF_UP;
    ifi->ifi_flags = *c.up ? IFF_UP : 0;
  }
  if (c.mac) mnl_attr_put(nlh, IFLA_ADDRESS, c.mac->size(), c.mac->data());
  if (c.mtu) mnl_attr_put_u32(nlh, IFLA_MTU, *c.mtu);
  if (c.operstate) mnl_attr_put_u8(nlh, IFLA_OPERSTATE, *c.operstate);
  return transact(nlh, [](const nlmsghdr*) { return 0; });
}

int RtNetlink::set_link(int ifindex, const LinkChange& c) {
  LinkInfo before;
  if (const int rc = get_link(ifindex, &before); rc < 0) return rc;
  // The kernel's own check (dev_validate_mtu), made before anything changes:
  // the kernel would make it only after it had already set the address.
  if (c.mtu && *c.mtu < before.min_mtu) {
    return fail(-EINVAL, "mtu " + std::to_string(*c.mtu) + " is less than the minimum " +
                             std::to_string(before.min_mtu) + " of " + before.name);
  }
  if (c.mtu && before.max_mtu != 0 && *c.mtu > before.max_mtu) {
    return fail(-EINVAL, "mtu " + std::to_string(*c.mtu) + " is greater than the maximum " +
                             std::to_string(before.max_mtu) + " of " + before.name);
  }
  if (!c.up && !c.mac && !c.mtu && !c.operstate) return 0;
  const int rc = send_setlink(ifindex, c);
  if (rc == 0 || (!c.mac && !c.mtu)) return rc;
  // The driver may still refuse (a macvlan's MTU above its lower's) after the
  // address was set: put back whatever already changed.
  std::string why = std::move(error_);
  LinkInfo after;
  if (get_link(ifindex, &after) == 0) {
    LinkChange undo;
    if (c.mac && before.has_mac && after.mac != before.mac) undo.mac = before.mac;
    if (c.mtu && after.mtu != before.mtu) undo.mtu = before.mtu;
    if (undo.mac || undo.mtu) {
      if (send_setlink(ifindex, undo) < 0) {
        why += "; could not restore the previous address " + mac_text(before.mac) + " / mtu " +
               std::to_string(before.mtu);
      }
    }
  }
  return fail(rc, std::move(why));
}

int RtNetlink::delete_link(int ifindex) {
  if (ifindex <= 0) return fail(-EINVAL, "ifindex " + std::to_string(ifindex) + " is not positive");
  char buf[kRequestSize];
  nlmsghdr* nlh = start_request(buf, RTM_DELLINK);
  put_ifinfo(nlh, ifindex);
  return transact(nlh, [](const nlmsghdr*) { return 0; });
}

int RtNetlink::set_noqueue(int ifindex) {
  if (ifindex <= 0) return fail(-EINVAL, "ifindex " + std::to_string(ifindex) + " is not positive");
  char buf[kRequestSize];
  nlmsghdr* nlh = start_request(buf, RTM_NEWQDISC);
  nlh->nlmsg_flags = NLM_F_CREATE | NLM_F_REPLACE;
  auto* tc = static_cast<tcmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(tcmsg)));
  tc->tcm_family = AF_UNSPEC;
  tc->tcm_ifindex = ifindex;
  tc->tcm_handle = 0;
  tc->tcm_parent = TC_H_ROOT;
  mnl_attr_put_strz(nlh, TCA_KIND, "noqueue");
  return transact(nlh, [](const nlmsghdr*) { return 0; });
}

int RtNetlink::move_link(int ifindex, const NetnsFd& to, const std::string& new_name) {
  if (ifindex <= 0) return fail(-EINVAL, "ifindex " + std::to_string(ifindex) + " is not positive");
  if (!to.valid()) return fail(-EBADF, "no namespace to move the device to");
  if (new_name.size() >= IFNAMSIZ) return fail(-EINVAL, "name \"" + new_name + "\" is too long");
  char buf[kRequestSize];
  nlmsghdr* nlh = start_request(buf, RTM_NEWLINK);
  put_ifinfo(nlh, ifindex);
  mnl_attr_put_u32(nlh, IFLA_NET_NS_FD, static_cast<uint32_t>(to.get()));
  if (!new_name.empty()) mnl_attr_put_strz(nlh, IFLA_IFNAME, new_name.c_str());
  return transact(nlh, [](const nlmsghdr*) { return 0; });
}

int RtNetlink::rename_link(int ifindex, const std::string& new_name) {
  if (ifindex <= 0) return fail(-EINVAL, "ifindex " + std::to_string(ifindex) + " is not positive");
  if (new_name.empty() || new_name.size() >= IFNAMSIZ) {
    return fail(-EINVAL, "\"" + new_name + "\" is not a valid device name");
  }
  char buf[kRequestSize];
  nlmsghdr* nlh = start_request(buf, RTM_NEWLINK);
  put_ifinfo(nlh, ifindex);
  mnl_attr_put_strz(nlh, IFLA_IFNAME, new_name.c_str());
  return transact(nlh, [](const nlmsghdr*) { return 0; });
}

namespace {

std::size_t family_len(int family) {
  return family == AF_INET ? 4 : family == AF_INET6 ? 16 : 0;
}

struct AddrAttrs {
  const nlattr* local = nullptr;
  const nlattr* address = nullptr;
  uint32_t flags = 0;
  bool has_flags = false;
};

int addr_attr(const nlattr* a, void* data) {
  auto* out = static_cast<AddrAttrs*>(data);
  switch (mnl_attr_get_type(a)) {
    case IFA_LOCAL:
      out->local = a;
      break;
    case IFA_ADDRESS:
      out->address = a;
      break;
    case IFA_FLAGS:
      if (mnl_attr_validate(a, MNL_TYPE_U32) == 0) {
        out->flags = mnl_attr_get_u32(a);
        out->has_flags = true;
      }
      break;
    default:
      break;
  }
  return MNL_CB_OK;
}

struct RouteAttrs {
  const nlattr* dst = nullptr;
  const nlattr* gateway = nullptr;
  uint32_t oif = 0;
  uint32_t table = 0;
};

int route_attr(const nlattr* a, void* data) {
  auto* out = static_cast<RouteAttrs*>(data);
  switch (mnl_attr_get_type(a)) {
    case RTA_DST:
      out->dst = a;
      break;
    case RTA_GATEWAY:
      out->gateway = a;
      break;
    case RTA_OIF:
      get_u32(a, &out->oif);
      break;
    case RTA_TABLE:
      get_u32(a, &out->table);
      break;
    default:
      break;
  }
  return MNL_CB_OK;
}

bool copy_ip(const nlattr* a, int family, std::array<uint8_t, 16>* out) {
  const std::size_t n = family_len(family);
  if (a == nullptr || n == 0 || mnl_attr_get_payload_len(a) != n) return false;
  out->fill(0);
  std::memcpy(out->data(), mnl_attr_get_payload(a), n);
  return true;
}

}  // namespace

int RtNetlink::list_addresses(int family, int ifindex, std::vector<IpAddress>* out) {
  char buf[kRequestSize];
  nlmsghdr* nlh = start_request(buf, RTM_GETADDR);
  nlh->nlmsg_flags = NLM_F_DUMP;
  auto* ifa = static_cast<ifaddrmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifaddrmsg)));
  ifa->ifa_family = static_cast<uint8_t>(family);
  std::vector<IpAddress> found;
  const int rc = transact(nlh, [&](const nlmsghdr* m) {
    if (m->nlmsg_type != RTM_NEWADDR || mnl_nlmsg_get_payload_len(m) < sizeof(ifaddrmsg)) return 0;
    const auto* msg = static_cast<const ifaddrmsg*>(mnl_nlmsg_get_payload(m));
    if (ifindex > 0 && static_cast<int>(msg->ifa_index) != ifindex) return 0;
    if (family != AF_UNSPEC && msg->ifa_family != family) return 0;
    AddrAttrs attrs;
    mnl_attr_parse(m, sizeof(*msg), addr_attr, &attrs);
    IpAddress a;
    a.family = msg->ifa_family;
    a.prefix = msg->ifa_prefixlen;
    a.ifindex = static_cast<int>(msg->ifa_index);
    a.scope = msg->ifa_scope;
    a.flags = attrs.has_flags ? attrs.flags : msg->ifa_flags;
    // IPv4: IFA_LOCAL is the address (IFA_ADDRESS the peer on point-to-point).
    if (!copy_ip(attrs.local != nullptr ? attrs.local : attrs.address, a.family, &a.addr)) return 0;
    found.push_back(a);
    return 0;
  });
  if (rc < 0) return rc;
  *out = std::move(found);
  return static_cast<int>(out->size());
}

int RtNetlink::add_address(const IpAddress& a) {
  const std::size_t n = family_len(a.family);
  if (n == 0 || a.ifindex <= 0) return fail(-EINVAL, "not an IPv4 or IPv6 address of a device");
  char buf[kRequestSize];
  nlmsghdr* nlh = start_request(buf, RTM_NEWADDR);
  nlh->nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
  auto* ifa = static_cast<ifaddrmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifaddrmsg)));
  ifa->ifa_family = static_cast<uint8_t>(a.family);
  ifa->ifa_prefixlen = a.prefix;
  ifa->ifa_index = static_cast<uint32_t>(a.ifindex);
  ifa->ifa_scope = RT_SCOPE_UNIVERSE;
  mnl_attr_put(nlh, IFA_LOCAL, n, a.addr.data());
  mnl_attr_put(nlh, IFA_ADDRESS, n, a.addr.data());
  if (a.family == AF_INET && a.prefix < 31) {
    // The broadcast address, as `ip addr add A/N brd +` and the CNI
    // plugins (netlink.AddrAdd) set it.
    uint32_t ip = 0;
    std::memcpy(&ip, a.addr.data(), 4);
    const uint32_t host_mask = a.prefix == 0 ? 0xffffffffu : (0xffffffffu >> a.prefix);
    const uint32_t brd = ip | htonl(host_mask);
    mnl_attr_put(nlh, IFA_BROADCAST, 4, &brd);
  }
  return transact(nlh, [](const nlmsghdr*) { return 0; });
}

int RtNetlink::list_routes(int family, std::vector<IpRoute>* out) {
  char buf[kRequestSize];
  nlmsghdr* nlh = start_request(buf, RTM_GETROUTE);
  nlh->nlmsg_flags = NLM_F_DUMP;
  auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(rtmsg)));
  rtm->rtm_family = static_cast<uint8_t>(family);
  std::vector<IpRoute> found;
  const int rc = transact(nlh, [&](const nlmsghdr* m) {
    if (m->nlmsg_type != RTM_NEWROUTE || mnl_nlmsg_get_payload_len(m) < sizeof(rtmsg)) return 0;
    const auto* msg = static_cast<const rtmsg*>(mnl_nlmsg_get_payload(m));
    if (family != AF_UNSPEC && msg->rtm_family != family) return 0;
    RouteAttrs attrs;
    attrs.table = msg->rtm_table;
    mnl_attr_parse(m, sizeof(*msg), route_attr, &attrs);
    IpRoute r;
    r.family = msg->rtm_family;
    r.dst_prefix = msg->rtm_dst_len;
    r.type = msg->rtm_type;
    r.table = attrs.table;
    r.ifindex = static_cast<int>(attrs.oif);
    if (attrs.dst != nullptr && !copy_ip(attrs.dst, r.family, &r.dst)) return 0;
    r.has_gateway = copy_ip(attrs.gateway, r.family, &r.gateway);
    found.push_back(r);
    return 0;
  });
  if (rc < 0) return rc;
  *out = std::move(found);
  return static_cast<int>(out->size());
}

int RtNetlink::add_route(const IpRoute& r) {
  const std::size_t n = family_len(r.family);
  if (n == 0) return fail(-EINVAL, "not an IPv4 or IPv6 route");
  char buf[kRequestSize];
  nlmsghdr* nlh = start_request(buf, RTM_NEWROUTE);
  nlh->nlmsg_flags = NLM_F_CREATE | NLM_F_APPEND;
  auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(rtmsg)));
  rtm->rtm_family = static_cast<uint8_t>(r.family);
  rtm->rtm_dst_len = r.dst_prefix;
  rtm->rtm_table = RT_TABLE_MAIN;
  rtm->rtm_protocol = RTPROT_BOOT;
  rtm->rtm_type = RTN_UNICAST;
  rtm->rtm_scope = r.has_gateway ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK;
  if (r.dst_prefix > 0) mnl_attr_put(nlh, RTA_DST, n, r.dst.data());
  if (r.has_gateway) mnl_attr_put(nlh, RTA_GATEWAY, n, r.gateway.data());
  if (r.ifindex > 0) mnl_attr_put_u32(nlh, RTA_OIF, static_cast<uint32_t>(r.ifindex));
  return transact(nlh, [](const nlmsghdr*) { return 0; });
}

namespace {

void put_host_route(nlmsghdr* nlh, const IpRoute& r, std::size_t n) {
  auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(rtmsg)));
  rtm->rtm_family = static_cast<uint8_t>(r.family);
  rtm->rtm_dst_len = r.dst_prefix;
  rtm->rtm_table = RT_TABLE_MAIN;
  rtm->rtm_protocol = RTPROT_STATIC;
  rtm->rtm_type = RTN_UNICAST;
  rtm->rtm_scope = RT_SCOPE_LINK;
  mnl_attr_put(nlh, RTA_DST, n, r.dst.data());
  if (r.ifindex > 0) mnl_attr_put_u32(nlh, RTA_OIF, static_cast<uint32_t>(r.ifindex));
}

}  // namespace

int RtNetlink::replace_route(const IpRoute& r) {
  const std::size_t n = family_len(r.family);
  if (n == 0) return fail(-EINVAL, "not an IPv4 or IPv6 route");
  char buf[kRequestSize];
  nlmsghdr* nlh = start_request(buf, RTM_NEWROUTE);
  nlh->nlmsg_flags = NLM_F_CREATE | NLM_F_REPLACE;
  put_host_route(nlh, r, n);
  return transact(nlh, [](const nlmsghdr*) { return 0; });
}

int RtNetlink::delete_route(const IpRoute& r) {
  const std::size_t n = family_len(r.family);
  if (n == 0) return fail(-EINVAL, "not an IPv4 or IPv6 route");
  char buf[kRequestSize];
  nlmsghdr* nlh = start_request(buf, RTM_DELROUTE);
  nlh->nlmsg_flags = 0;
  put_host_route(nlh, r, n);
  return transact(nlh, [](const nlmsghdr*) { return 0; });
}

int RtNetlink::add_neigh_proxy(int ifindex, const std::array<uint8_t, 16>& addr) {
  char buf[kRequestSize];
  nlmsghdr* nlh = start_request(buf, RTM_NEWNEIGH);
  nlh->nlmsg_flags = NLM_F_CREATE | NLM_F_REPLACE;
  auto* ndm = static_cast<ndmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ndmsg)));
  ndm->ndm_family = AF_INET6;
  ndm->ndm_ifindex = ifindex;
  ndm->ndm_flags = NTF_PROXY;
  ndm->ndm_state = NUD_PERMANENT;
  mnl_attr_put(nlh, NDA_DST, addr.size(), addr.data());
  return transact(nlh, [](const nlmsghdr*) { return 0; });
}

int RtNetlink::query_nsid(const NetnsFd& other, int32_t* nsid, int32_t seen_from) {
  char buf[kRequestSize];
  nlmsghdr* nlh = start_request(buf, RTM_GETNSID);
  auto* g = static_cast<rtgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(rtgenmsg)));
  g->rtgen_family = AF_UNSPEC;
  mnl_attr_put_u32(nlh, NETNSA_FD, static_cast<uint32_t>(other.get()));
  if (seen_from >= 0) mnl_attr_put_u32(nlh, NETNSA_TARGET_NSID, static_cast<uint32_t>(seen_from));
  int32_t id = -1;
  const int rc = transact(nlh, [&](const nlmsghdr* m) {
    if (m->nlmsg_type == RTM_NEWNSID) id = parse_nsid(m);
    return 0;
  });
  if (rc < 0) return rc;
  *nsid = id;
  return 0;
}

int RtNetlink::find_nsid(const NetnsFd& other, int32_t* nsid, int32_t seen_from) {
  if (!other.valid()) return fail(-EBADF, "no namespace fd");
  if (seen_from < 0 && other.inode() == ns_inode_) {
    *nsid = -1;
    return 0;
  }
  return query_nsid(other, nsid, seen_from);
}

int RtNetlink::get_nsid(const NetnsFd& other, int32_t* nsid) {
  if (!other.valid()) return fail(-EBADF, "no namespace fd");
  if (other.inode() == ns_inode_) {
    *nsid = -1;
    return 0;
  }
  int32_t id = -1;
  if (const int rc = query_nsid(other, &id); rc < 0) return rc;
  if (id < 0) {
    char buf[kRequestSize];
    nlmsghdr* nlh = start_request(buf, RTM_NEWNSID);
    auto* g = static_cast<rtgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(rtgenmsg)));
    g->rtgen_family = AF_UNSPEC;
    mnl_attr_put_u32(nlh, NETNSA_FD, static_cast<uint32_t>(other.get()));
    const int32_t any = NETNSA_NSID_NOT_ASSIGNED;  // the kernel picks the lowest free id
    mnl_attr_put(nlh, NETNSA_NSID, sizeof(any), &any);
    const int rc = transact(nlh, [](const nlmsghdr*) { return 0; });
    // -EEXIST: someone else assigned one in the meantime, which is as good.
    if (rc < 0 && rc != -EEXIST) return rc;
    if (const int rc2 = query_nsid(other, &id); rc2 < 0) return rc2;
    if (id < 0) return fail(-ENOENT, "the kernel assigned no id to the namespace");
  }
  *nsid = id;
  return 0;
}

// -------------------------------------------------------------- LinkMonitor

int LinkMonitor::fd() const {
  return nl_ == nullptr ? -1 : mnl_socket_get_fd(nl_.get());
}

int LinkMonitor::open(const NetnsFd& ns, LinkMonitor* out) {
  if (!ns.valid()) return -EBADF;
  LinkMonitor m;
  if (int rc = open_route_socket(ns, SOCK_CLOEXEC | SOCK_NONBLOCK, &m.nl_); rc < 0) return rc;
  // All-namespaces first, so that no event between the two is missed.
  if (int rc = set_nl_opt(m.nl_.get(), NETLINK_LISTEN_ALL_NSID, 1); rc < 0) return rc;
  if (int rc = set_nl_opt(m.nl_.get(), NETLINK_ADD_MEMBERSHIP, RTNLGRP_LINK); rc < 0) return rc;
  if (int rc = set_nl_opt(m.nl_.get(), NETLINK_ADD_MEMBERSHIP, RTNLGRP_NSID); rc < 0) return rc;
  // Group joins and leaves (6.13+); older kernels refuse the groups, and the
  // caller's periodic read of dev_mcast covers them alone.
  set_nl_opt(m.nl_.get(), NETLINK_ADD_MEMBERSHIP, kGroupIpv4Mcaddr);
  set_nl_opt(m.nl_.get(), NETLINK_ADD_MEMBERSHIP, kGroupIpv6Mcaddr);
  // A burst of events (a namespace full of devices going away) must not
  // overrun us; root may exceed rmem_max.
  const int sfd = mnl_socket_get_fd(m.nl_.get());
  if (::setsockopt(sfd, SOL_SOCKET, SO_RCVBUFFORCE, &kMonitorRcvBuf, sizeof(int)) < 0) {
    ::setsockopt(sfd, SOL_SOCKET, SO_RCVBUF, &kMonitorRcvBuf, sizeof(int));
  }
  if (int rc = RtNetlink::open(ns, &m.ctl_); rc < 0) return rc;
  m.self_ = ns.dup();
  if (!m.self_.valid()) return -errno;
  int32_t id = -1;
  if (m.ctl_.query_nsid(m.self_, &id) == 0) m.self_nsid_ = id;
  m.buf_.resize(kRecvBufferSize);
  *out = std::move(m);
  return 0;
}

int32_t LinkMonitor::normalize_nsid(int32_t nsid) {
  if (nsid < 0 || nsid == self_nsid_) return -1;
  if (std::find(other_nsids_.begin(), other_nsids_.end(), nsid) != other_nsids_.end()) return nsid;
  // An id not seen before: the namespace may have given itself one since.
  int32_t self = -1;
  if (ctl_.query_nsid(self_, &self) == 0) self_nsid_ = self;
  if (nsid == self_nsid_) return -1;
  other_nsids_.push_back(nsid);
  return nsid;
}

int LinkMonitor::read_events(std::vector<LinkEvent>* out) {
  out->clear();
  if (nl_ == nullptr) return -EBADF;
  for (;;) {
    sockaddr_nl from{};
    iovec iov{buf_.data(), buf_.size()};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    msghdr msg{};
    msg.msg_name = &from;
    msg.msg_namelen = sizeof(from);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    const ssize_t n = ::recvmsg(mnl_socket_get_fd(nl_.get()), &msg, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return static_cast<int>(out->size());
      return -errno;  // -ENOBUFS: the kernel dropped events for us
    }
    // A message cut short is a lost event, as good as an overrun.
    if ((msg.msg_flags & MSG_TRUNC) != 0) return -ENOBUFS;
    if (from.nl_pid != 0) continue;  // only the kernel speaks here
    int32_t nsid = -1;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == SOL_NETLINK && c->cmsg_type == NETLINK_LISTEN_ALL_NSID &&
          c->cmsg_len >= CMSG_LEN(sizeof(int))) {
        int v = -1;
        std::memcpy(&v, CMSG_DATA(c), sizeof(v));
        nsid = v;
      }
    }
    nsid = normalize_nsid(nsid);
    int len = static_cast<int>(n);
    for (auto* m = reinterpret_cast<const nlmsghdr*>(buf_.data()); mnl_nlmsg_ok(m, len);
         m = mnl_nlmsg_next(m, &len)) {
      if (m->nlmsg_type == RTM_NEWLINK || m->nlmsg_type == RTM_DELLINK) {
        LinkEvent e;
        e.deleted = m->nlmsg_type == RTM_DELLINK;
        e.nsid = nsid;
        if (parse_link(m, &e.link) == 0) out->push_back(std::move(e));
      } else if (m->nlmsg_type == kNewMulticast || m->nlmsg_type == kDelMulticast) {
        if (mnl_nlmsg_get_payload_len(m) < sizeof(ifaddrmsg)) continue;
        LinkEvent e;
        e.multicast = true;
        e.nsid = nsid;
        e.link.ifindex =
            static_cast<int>(static_cast<const ifaddrmsg*>(mnl_nlmsg_get_payload(m))->ifa_index);
        out->push_back(std::move(e));
      } else if (m->nlmsg_type == RTM_DELNSID && nsid == -1) {
        // Our table lost an id: that namespace is gone, and with it its devices.
        LinkEvent e;
        e.deleted = true;
        e.nsid = parse_nsid(m);
        if (e.nsid < 0) continue;
        std::erase(other_nsids_, e.nsid);
        out->push_back(std::move(e));
      }
    }
  }
}

// ------------------------------------------------------------ dev_mcast

namespace {

std::chrono::nanoseconds thread_cpu_time() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

int read_dev_mcast_all_untimed(const NetnsFd& ns,
                               std::map<int, std::vector<std::array<uint8_t, 6>>>* out,
                               std::string* previous) {
  std::string text;
  const int rc = run_in_netns(ns, [&] {
    // Not /proc/net: that follows the thread-group leader, not this thread.
    const int fd = ::open("/proc/thread-self/net/dev_mcast", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    char buf[64 * 1024];
    for (;;) {
      const ssize_t n = ::read(fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      text.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return 0;
  });
  if (rc < 0) return rc;
  if (previous != nullptr) {
    if (text == *previous) return 1;
    *previous = text;
  }
  // "ifindex name users static-users hexaddress", one group a line.
  std::map<int, std::vector<std::array<uint8_t, 6>>> groups;
  std::size_t at = 0;
  while (at < text.size()) {
    std::size_t end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(at, end - at);
    at = end + 1;
    int index = 0;
    char hex[64];
    if (std::sscanf(line.c_str(), "%d %*s %*d %*d %63s", &index, hex) != 2) continue;
    std::array<uint8_t, 6> mac{};  // "01005e000001" -> 01:00:5e:00:00:01
    if (core::decode_hex(hex, mac)) groups[index].push_back(mac);
  }
  *out = std::move(groups);
  return 0;
}

}  // namespace

int read_dev_mcast_all(const NetnsFd& ns, std::map<int, std::vector<std::array<uint8_t, 6>>>* out,
                       std::string* previous, std::chrono::nanoseconds* cpu) {
  const std::chrono::nanoseconds start = thread_cpu_time();
  const int rc = read_dev_mcast_all_untimed(ns, out, previous);
  if (cpu != nullptr) *cpu = thread_cpu_time() - start;
  return rc;
}

int read_dev_mcast(const NetnsFd& ns, int ifindex, std::vector<std::array<uint8_t, 6>>* out) {
  if (ifindex <= 0) return -EINVAL;
  const int known = run_in_netns(ns, [&] {
    char name[IF_NAMESIZE];
    if (::if_indextoname(static_cast<unsigned>(ifindex), name) != nullptr) return 0;
    return errno == ENXIO ? -ENODEV : -errno;
  });
  if (known < 0) return known;
  std::map<int, std::vector<std::array<uint8_t, 6>>> all;
  if (const int rc = read_dev_mcast_all(ns, &all); rc < 0) return rc;
  const auto it = all.find(ifindex);
  *out = it != all.end() ? std::move(it->second) : std::vector<std::array<uint8_t, 6>>{};
  return 0;
}

}  // namespace umacvlan::io
