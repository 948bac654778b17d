#include "io/tap_device.h"

#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/if_tun.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <utility>

#include "io/netlink.h"

namespace umacvlan::io {
namespace {

constexpr std::size_t kEthHeaderSize = 14;

bool valid_name(const std::string& name) {
  return !name.empty() && name.size() < IFNAMSIZ && name.find('/') == std::string::npos &&
         name.find_first_of(" \t\n:") == std::string::npos;
}

void copy_name(struct ifreq& ifr, const std::string& name) {
  std::memset(ifr.ifr_name, 0, sizeof(ifr.ifr_name));
  std::memcpy(ifr.ifr_name, name.data(), std::min(name.size(), sizeof(ifr.ifr_name) - 1));
}

// What the device's stack may hand us: partial checksums, TCP super-frames
// (IPv4, IPv6, with ECN) and UDP ones (a UDP_SEGMENT send, as QUIC stacks
// make them: TUN_F_USO4 | TUN_F_USO6, Linux 6.2+, where the kernel takes
// only both together; Debian's 6.1 headers lack the names).
constexpr unsigned kTunUso4 = 0x20;
constexpr unsigned kTunUso6 = 0x40;
constexpr unsigned kOffloadsTcp = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;
constexpr unsigned kOffloads = kOffloadsTcp | kTunUso4 | kTunUso6;

// TUNSETOFFLOAD with UDP segmentation, or without it on a kernel that
// refuses bits it does not know (before 6.2: EINVAL). 0 or -errno.
int set_offloads(int fd) {
  if (::ioctl(fd, TUNSETOFFLOAD, static_cast<unsigned long>(kOffloads)) == 0) return 0;
  if (errno == EINVAL && ::ioctl(fd, TUNSETOFFLOAD, static_cast<unsigned long>(kOffloadsTcp)) == 0)
    return 0;
  return -errno;
}

constexpr int kTapFlags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE;

// Opens /dev/net/tun in the calling thread's namespace and attaches it to the
// TAP `name` there (creating it), with virtio-net headers and the offloads.
// extra_flags: e.g. IFF_TUN_EXCL. The actual name is written back to
// *actual. Returns the fd or -errno.
int open_tap_here(const std::string& name, int extra_flags, std::string* actual) {
  const int fd = ::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return -errno;
  struct ifreq ifr {};
  copy_name(ifr, name);
  ifr.ifr_flags = static_cast<short>(static_cast<std::uint16_t>(kTapFlags | extra_flags));
  int hdr_size = sizeof(VnetHeader);
  const int err = ::ioctl(fd, TUNSETIFF, &ifr) != 0 || ::ioctl(fd, TUNSETVNETHDRSZ, &hdr_size) != 0
                      ? -errno
                      : set_offloads(fd);
  if (err != 0) {
    // A device this call created vanishes with the fd: it is not persistent yet.
    ::close(fd);
    return err;
  }
  *actual = ifr.ifr_name;
  return fd;
}

// Attaches queues 1.. of the TAP `name` in the calling thread's namespace
// (queue 0 is attached already) to *fds. 0 or -errno.
int attach_more_queues(const std::string& name, std::size_t queues, std::vector<OwnedFd>* fds) {
  while (fds->size() < queues) {
    std::string same;
    const int fd = open_tap_here(name, 0, &same);
    if (fd < 0) return fd;
    fds->emplace_back(fd);
  }
  return 0;
}

// SIOCGIFINDEX for name in the calling thread's namespace; ifindex or -errno.
int ifindex_here(const std::string& name) {
  const int sock = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) return -errno;
  struct ifreq ifr {};
  copy_name(ifr, name);
  const int rc = ::ioctl(sock, SIOCGIFINDEX, &ifr) == 0 ? ifr.ifr_ifindex : -errno;
  ::close(sock);
  return rc;
}

// Turns persistence off (so closing removes a device we made) and closes the fds.
void discard_tap(std::vector<OwnedFd>& fds) {
  if (!fds.empty()) ::ioctl(fds.front().get(), TUNSETPERSIST, 0UL);
  fds.clear();
}

bool valid_queue_count(std::size_t queues) {
  return queues >= 1 && queues <= TapDevice::kMaxQueues;
}

// RTM_NEWLINK on ifindex (in the calling thread's namespace): move it into the
// namespace target_fd and name it name there. 0 or -errno.
int move_link_here(int ifindex, int target_fd, const std::string& name) {
  struct mnl_socket* nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
  if (nl == nullptr) return -errno;
  int rc = 0;
  if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) != 0) {
    rc = -errno;
    mnl_socket_close(nl);
    return rc;
  }
  std::array<char, 8192> buf{};  // ample for one request and its ack
  struct nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = RTM_NEWLINK;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  const unsigned seq = 1;
  nlh->nlmsg_seq = seq;
  auto* ifi =
      static_cast<struct ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(struct ifinfomsg)));
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = ifindex;
  mnl_attr_put_u32(nlh, IFLA_NET_NS_FD, static_cast<std::uint32_t>(target_fd));
  mnl_attr_put_strz(nlh, IFLA_IFNAME, name.c_str());

  const unsigned portid = mnl_socket_get_portid(nl);
  if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
    rc = -errno;
  } else {
    const ssize_t n = mnl_socket_recvfrom(nl, buf.data(), buf.size());
    if (n < 0) {
      rc = -errno;
    } else if (mnl_cb_run(buf.data(), static_cast<size_t>(n), seq, portid, nullptr, nullptr) < 0) {
      rc = -errno;
    }
  }
  mnl_socket_close(nl);
  return rc;
}

}  // namespace

int TapDevice::open(const NetnsFd& ns, const std::string& name, TapDevice* out, std::size_t queues,
                    bool take_attached) {
  if (out == nullptr || !valid_name(name) || !valid_queue_count(queues)) return -EINVAL;
  std::vector<OwnedFd> fds;
  int ifindex = 0;
  std::string actual;
  const int rc = run_in_netns(ns, [&]() -> int {
    if (name.find('%') == std::string::npos) {
      // An existing device must be ours to take: a multi-queue TAP with
      // headers that no one serves now.
      RtNetlink rtnl;
      if (const int e = RtNetlink::open(ns, &rtnl); e < 0) return e;
      LinkInfo li;
      if (rtnl.get_link(name, &li) == 0) {
        if (!li.tun || !li.tun->tap || !li.tun->multi_queue || !li.tun->vnet_hdr) return -EINVAL;
        if (li.tun->queues > 0 && !take_attached) return -EBUSY;
      }
    }
    const int fd = open_tap_here(name, 0, &actual);
    if (fd < 0) return fd;
    fds.emplace_back(fd);
    // Look the index up before making the device persistent, so that a
    // failure leaves a device we just created to vanish with the fd.
    ifindex = ifindex_here(actual);
    if (ifindex < 0) return ifindex;
    if (const int e = attach_more_queues(actual, queues, &fds); e < 0) return e;
    return ::ioctl(fds.front().get(), TUNSETPERSIST, 1UL) == 0 ? 0 : -errno;
  });
  if (rc != 0) return rc;
  *out = TapDevice(std::move(fds), std::move(actual), ifindex);
  return 0;
}

int TapDevice::create(const NetnsFd& ns, const std::string& name, TapDevice* out,
                      std::size_t queues) {
  if (out == nullptr || !valid_name(name) || !valid_queue_count(queues)) return -EINVAL;
  std::vector<OwnedFd> fds;
  std::string actual;
  int ifindex = 0;
  const int rc = run_in_netns(ns, [&]() -> int {
    const int fd = open_tap_here(name, IFF_TUN_EXCL, &actual);
    if (fd == -EBUSY) return -EEXIST;  // IFF_TUN_EXCL: the name is taken
    if (fd < 0) return fd;
    fds.emplace_back(fd);
    ifindex = ifindex_here(actual);
    if (ifindex < 0) return ifindex;
    if (const int e = attach_more_queues(actual, queues, &fds); e < 0) return e;
    return ::ioctl(fd, TUNSETPERSIST, 1UL) == 0 ? 0 : -errno;
  });
  if (rc != 0) {
    discard_tap(fds);
    return rc;
  }
  *out = TapDevice(std::move(fds), std::move(actual), ifindex);
  return 0;
}

int TapDevice::move_to(const NetnsFd& target, const std::string& name) {
  if (!valid()) return -EBADF;
  if (!valid_name(name) || name.find('%') != std::string::npos) return -EINVAL;
  const NetnsFd here = current_netns();
  if (!here.valid()) return -errno;
  std::string now;
  if (const int rc = current_name(&now); rc < 0) return rc;
  const int rc = run_in_netns(here, [&]() -> int {
    const int ifindex = ifindex_here(now);
    if (ifindex < 0) return ifindex;
    return move_link_here(ifindex, target.get(), name);
  });
  if (rc < 0) return rc;
  name_ = name;
  const int ifindex = current_ifindex();
  if (ifindex < 0) return ifindex;
  ifindex_ = ifindex;
  return 0;
}

int TapDevice::create_and_move(const NetnsFd& home, const NetnsFd& target, const std::string& name,
                               TapDevice* out, std::size_t queues) {
  if (out == nullptr || !valid_name(name) || name.find('%') != std::string::npos ||
      !valid_queue_count(queues))
    return -EINVAL;
  if (!home.valid() || !target.valid()) return -EBADF;
  // Validate before creating anything: the name must be free in target.
  const int existing = run_in_netns(target, [&] { return ifindex_here(name); });
  if (existing > 0) return -EEXIST;
  if (existing != -ENODEV) return existing;
  TapDevice dev;
  if (const int rc = create(home, "umvtmp%d", &dev, queues); rc < 0) return rc;
  if (const int rc = dev.move_to(target, name); rc < 0) {
    dev.destroy();
    return rc;
  }
  *out = std::move(dev);
  return 0;
}

NetnsFd TapDevice::current_netns() const {
  if (!valid()) return NetnsFd();
  return NetnsFd(::ioctl(fd(), TUNGETDEVNETNS));
}

int TapDevice::current_name(std::string* out) const {
  if (!valid()) return -EBADF;
  struct ifreq ifr {};
  if (::ioctl(fd(), TUNGETIFF, &ifr) != 0) return -errno;
  *out = ifr.ifr_name;
  return 0;
}

int TapDevice::current_ifindex() const {
  return in_current_netns([](int sock, struct ifreq& ifr) {
    return ::ioctl(sock, SIOCGIFINDEX, &ifr) == 0 ? ifr.ifr_ifindex : -errno;
  });
}

int TapDevice::in_current_netns(const std::function<int(int, struct ifreq&)>& fn) const {
  std::string name;
  if (const int rc = current_name(&name); rc != 0) return rc;
  const NetnsFd ns = current_netns();
  if (!ns.valid()) return -errno;
  return run_in_netns(ns, [&]() -> int {
    const int sock = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0) return -errno;
    struct ifreq ifr {};
    copy_name(ifr, name);
    const int rc = fn(sock, ifr);
    ::close(sock);
    return rc;
  });
}

int TapDevice::set_carrier(bool on) {
  if (!valid()) return -EBADF;
  int value = on ? 1 : 0;
  return ::ioctl(fd(), TUNSETCARRIER, &value) == 0 ? 0 : -errno;
}

int TapDevice::set_persist(bool on) {
  if (!valid()) return -EBADF;
  return ::ioctl(fd(), TUNSETPERSIST, on ? 1UL : 0UL) == 0 ? 0 : -errno;
}

int TapDevice::set_steering(int prog_fd) {
  if (!valid()) return -EBADF;
  int prog = prog_fd;
  return ::ioctl(fd(), TUNSETSTEERINGEBPF, &prog) == 0 ? 0 : -errno;
}

int TapDevice::set_mac(const MacBytes& mac) {
  if ((mac[0] & 0x01) != 0 || mac == MacBytes{}) return -EINVAL;
  return in_current_netns([&](int sock, struct ifreq& ifr) {
    ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
    std::memcpy(ifr.ifr_hwaddr.sa_data, mac.data(), mac.size());
    return ::ioctl(sock, SIOCSIFHWADDR, &ifr) == 0 ? 0 : -errno;
  });
}

int TapDevice::set_mtu(std::uint32_t mtu) {
  if (mtu > static_cast<std::uint32_t>(INT32_MAX)) return -EINVAL;
  return in_current_netns([&](int sock, struct ifreq& ifr) {
    ifr.ifr_mtu = static_cast<int>(mtu);
    return ::ioctl(sock, SIOCSIFMTU, &ifr) == 0 ? 0 : -errno;
  });
}

int TapDevice::set_up(bool up) {
  return in_current_netns([&](int sock, struct ifreq& ifr) {
    if (::ioctl(sock, SIOCGIFFLAGS, &ifr) != 0) return -errno;
    const bool is_up = (ifr.ifr_flags & IFF_UP) != 0;
    if (is_up == up) return 0;
    ifr.ifr_flags = static_cast<short>(up ? (ifr.ifr_flags | IFF_UP) : (ifr.ifr_flags & ~IFF_UP));
    return ::ioctl(sock, SIOCSIFFLAGS, &ifr) == 0 ? 0 : -errno;
  });
}

int TapDevice::read_burst(std::size_t q, FrameBatch& batch, std::size_t max_frames) {
  batch.clear();
  const int qfd = fd(q);
  if (qfd < 0) return -EBADF;
  // Bounded so that a stream of oversize frames cannot keep us here forever.
  const std::size_t limit = std::min(max_frames, FrameBatch::capacity());
  for (std::size_t attempts = 0; batch.count < limit && !batch.full() && attempts < 2 * kBatchSize;
       ++attempts) {
    // tun copies what fits and drops the rest silently, so read into the slot
    // and its spare byte: a frame that reaches the spare did not fit.
    const std::span<std::uint8_t> room = batch.next_slot();
    const std::span<std::uint8_t> slot = room.first(batch.slot_size());
    VnetHeader vnet;
    struct iovec iov[2] = {{&vnet, sizeof(vnet)}, {room.data(), room.size()}};
    const ssize_t n = ::readv(qfd, iov, 2);
    if (n < 0) {
      const int err = errno;
      if (err == EINTR) continue;
      if (err == EAGAIN || err == EWOULDBLOCK) break;
      if (batch.count == 0) return -err;
      break;
    }
    if (static_cast<std::size_t>(n) < sizeof(vnet)) continue;  // never sent by tun
    const std::size_t len = static_cast<std::size_t>(n) - sizeof(vnet);
    if (len > slot.size()) {
      ++batch.dropped_oversize;
      continue;
    }
    batch.commit(len, vnet);
  }
  return static_cast<int>(batch.count);
}

int TapDevice::write(std::size_t q, const VnetHeader& vnet, std::span<const std::uint8_t> frame) {
  const int qfd = fd(q);
  if (qfd < 0) return -EBADF;
  if (frame.size() < kEthHeaderSize) return -EINVAL;
  struct iovec iov[2] = {{const_cast<VnetHeader*>(&vnet), sizeof(vnet)},
                         {const_cast<std::uint8_t*>(frame.data()), frame.size()}};
  for (;;) {
    const ssize_t n = ::writev(qfd, iov, 2);
    if (n >= 0) return static_cast<std::size_t>(n) == sizeof(vnet) + frame.size() ? 0 : -EIO;
    if (errno != EINTR) return -errno;
  }
}

int TapDevice::destroy() {
  if (!valid()) return 0;
  int rc = set_persist(false);
  if (rc == -EBADFD) rc = 0;  // already gone with its namespace
  queues_.clear();
  name_.clear();
  ifindex_ = 0;
  return rc;
}

}  // namespace umacvlan::io
