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

// What the device's stack may hand us: partial checksums and TCP
// super-frames (IPv4, IPv6, with ECN). UDP stays segmented by the stack.
constexpr unsigned kOffloads = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;

// Opens /dev/net/tun in the calling thread's namespace and attaches it to the
// TAP `name` there (creating it), with virtio-net headers and the offloads.
// extra_flags: e.g. IFF_TUN_EXCL. The actual name is written back to
// *actual. Returns the fd or -errno.
int open_tap_here(const std::string& name, int extra_flags, std::string* actual) {
  const int fd = ::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return -errno;
  struct ifreq ifr {};
  copy_name(ifr, name);
  ifr.ifr_flags = static_cast<short>(
      static_cast<std::uint16_t>(IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | extra_flags));
  int hdr_size = sizeof(VnetHeader);
  if (::ioctl(fd, TUNSETIFF, &ifr) != 0 || ::ioctl(fd, TUNSETVNETHDRSZ, &hdr_size) != 0 ||
      ::ioctl(fd, TUNSETOFFLOAD, static_cast<unsigned long>(kOffloads)) != 0) {
    const int err = errno;
    // A device this call created vanishes with the fd: it is not persistent yet.
    ::close(fd);
    return -err;
  }
  *actual = ifr.ifr_name;
  return fd;
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

// Turns persistence off (so closing removes a device we made) and closes fd.
void discard_tap(int fd) {
  ::ioctl(fd, TUNSETPERSIST, 0UL);
  ::close(fd);
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

TapDevice::TapDevice(TapDevice&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)),
      name_(std::move(o.name_)),
      ifindex_(std::exchange(o.ifindex_, 0)) {}

TapDevice& TapDevice::operator=(TapDevice&& o) noexcept {
  if (this != &o) {
    close_fd();
    fd_ = std::exchange(o.fd_, -1);
    name_ = std::move(o.name_);
    ifindex_ = std::exchange(o.ifindex_, 0);
  }
  return *this;
}

TapDevice::~TapDevice() {
  close_fd();
}

void TapDevice::close_fd() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

int TapDevice::open(const NetnsFd& ns, const std::string& name, TapDevice* out) {
  if (out == nullptr || !valid_name(name)) return -EINVAL;
  int fd = -1;
  int ifindex = 0;
  std::string actual;
  const int rc = run_in_netns(ns, [&]() -> int {
    fd = open_tap_here(name, 0, &actual);
    if (fd < 0) return fd;
    // Look the index up before making the device persistent, so that a
    // failure leaves a device we just created to vanish with the fd.
    ifindex = ifindex_here(actual);
    if (ifindex < 0) return ifindex;
    return ::ioctl(fd, TUNSETPERSIST, 1UL) == 0 ? 0 : -errno;
  });
  if (rc != 0) {
    if (fd >= 0) ::close(fd);
    return rc;
  }
  *out = TapDevice(fd, std::move(actual), ifindex);
  return 0;
}

int TapDevice::create_and_move(const NetnsFd& home, const NetnsFd& target, const std::string& name,
                               TapDevice* out) {
  if (out == nullptr || !valid_name(name) || name.find('%') != std::string::npos) return -EINVAL;
  if (!home.valid() || !target.valid()) return -EBADF;
  // Validate before creating anything: the name must be free in target.
  const int existing = run_in_netns(target, [&] { return ifindex_here(name); });
  if (existing > 0) return -EEXIST;
  if (existing != -ENODEV) return existing;

  int fd = -1;
  std::string actual;
  const int rc = run_in_netns(home, [&]() -> int {
    // Under its final name if that is free here, so the move needs no rename
    // and fails atomically if the name got taken in target meanwhile;
    // otherwise under a temporary one, renamed as it moves.
    fd = open_tap_here(name, IFF_TUN_EXCL, &actual);
    if (fd == -EBUSY) fd = open_tap_here("umvtmp%d", IFF_TUN_EXCL, &actual);
    if (fd < 0) return fd;
    const int ifindex = ifindex_here(actual);
    if (ifindex < 0) return ifindex;
    if (::ioctl(fd, TUNSETPERSIST, 1UL) != 0) return -errno;
    return move_link_here(ifindex, target.get(), name);
  });
  if (rc != 0) {
    if (fd >= 0) discard_tap(fd);
    return rc;
  }
  TapDevice dev(fd, name, 0);
  const int ifindex = dev.current_ifindex();
  if (ifindex < 0) {
    dev.destroy();
    return ifindex;
  }
  dev.ifindex_ = ifindex;
  *out = std::move(dev);
  return 0;
}

NetnsFd TapDevice::current_netns() const {
  if (fd_ < 0) return NetnsFd();
  return NetnsFd(::ioctl(fd_, TUNGETDEVNETNS));
}

int TapDevice::current_name(std::string* out) const {
  if (fd_ < 0) return -EBADF;
  struct ifreq ifr {};
  if (::ioctl(fd_, TUNGETIFF, &ifr) != 0) return -errno;
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
  if (fd_ < 0) return -EBADF;
  int value = on ? 1 : 0;
  return ::ioctl(fd_, TUNSETCARRIER, &value) == 0 ? 0 : -errno;
}

int TapDevice::set_persist(bool on) {
  if (fd_ < 0) return -EBADF;
  return ::ioctl(fd_, TUNSETPERSIST, on ? 1UL : 0UL) == 0 ? 0 : -errno;
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

int TapDevice::read_burst(FrameBatch& batch) {
  batch.clear();
  if (fd_ < 0) return -EBADF;
  // Bounded so that a stream of oversize frames cannot keep us here forever.
  for (std::size_t attempts = 0; !batch.full() && attempts < 2 * kBatchSize; ++attempts) {
    const std::span<std::uint8_t> slot = batch.slot(batch.count);
    // tun copies what fits and drops the rest silently, so read into the slot
    // plus one spare byte: a frame that reaches the spare did not fit.
    VnetHeader vnet;
    std::uint8_t spare;
    struct iovec iov[3] = {{&vnet, sizeof(vnet)}, {slot.data(), slot.size()}, {&spare, 1}};
    const ssize_t n = ::readv(fd_, iov, 3);
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

int TapDevice::write(const VnetHeader& vnet, std::span<const std::uint8_t> frame) {
  if (fd_ < 0) return -EBADF;
  if (frame.size() < kEthHeaderSize) return -EINVAL;
  struct iovec iov[2] = {{const_cast<VnetHeader*>(&vnet), sizeof(vnet)},
                         {const_cast<std::uint8_t*>(frame.data()), frame.size()}};
  for (;;) {
    const ssize_t n = ::writev(fd_, iov, 2);
    if (n >= 0) return static_cast<std::size_t>(n) == sizeof(vnet) + frame.size() ? 0 : -EIO;
    if (errno != EINTR) return -errno;
  }
}

int TapDevice::destroy() {
  if (fd_ < 0) return 0;
  int rc = set_persist(false);
  if (rc == -EBADFD) rc = 0;  // already gone with its namespace
  close_fd();
  name_.clear();
  ifindex_ = 0;
  return rc;
}

}  // namespace umacvlan::io
