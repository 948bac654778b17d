// TapDevice: one umacvlan device as a Linux TAP (IFF_TAP | IFF_NO_PI |
// IFF_VNET_HDR), the "upper" side of the data path: frames the device's stack
// sends are read here, frames for the device are written here.
//
// Offloads: every frame crosses the fd behind a 10-byte virtio-net header
// (VnetHeader), and the TAP offers the device's stack checksum and TCP
// segmentation offload (TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN),
// so a TCP send arrives as one GSO super-frame of up to 64 KiB with a partial
// checksum instead of one MTU-sized frame per read. Writing such a frame with
// its header hands it to the receiving stack whole; the kernel segments or
// checksums it only where something on the way needs that. Every attach
// (open(), create_and_move()) sets the same flags and offloads: TUNSETIFF on
// an existing persistent TAP replaces the previous attach's flags.
//
// Contract: a TapDevice owns one non-blocking, close-on-exec fd of
// /dev/net/tun attached to a persistent TAP. Destroying or moving-from a
// TapDevice closes only the fd: the persistent device stays (a restarted
// daemon re-attaches with open()); destroy() is what removes the device.
// Every call returns 0 (or a count) on success and a negative errno on
// failure; nothing throws, nothing logs. read_burst() and write() do no
// allocation and no system call besides readv()/writev(); the control calls
// (set_*, current_*) may start a helper thread to act inside the namespace the
// device lives in now, which may no longer be the one it was created in.
//
// Namespaces: the kernel ties the fd to the namespace /dev/net/tun was opened
// in and keeps that namespace alive while the fd is open. open() opens it in
// the device's namespace, so that namespace cannot die while we hold the fd
// (`ip netns del` only unmounts it). create_and_move() opens it in a "home"
// namespace (the daemon's) and moves the new device into the target one, so
// deleting the target destroys the device, and the fd then fails with
// -EBADFD: the signal to drop the device from its port.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <utility>

#include "io/frame_batch.h"
#include "io/netns.h"

struct ifreq;

namespace umacvlan::io {

class TapDevice {
 public:
  TapDevice() = default;
  TapDevice(TapDevice&& o) noexcept;
  TapDevice& operator=(TapDevice&& o) noexcept;
  TapDevice(const TapDevice&) = delete;
  TapDevice& operator=(const TapDevice&) = delete;
  ~TapDevice();

  // Opens /dev/net/tun inside ns and attaches to the TAP called name there,
  // creating it if there is none; makes it persistent. name may be a pattern
  // such as "umv%d" (the kernel picks the number; name() tells the result).
  // -EINVAL for an empty or too long name or an existing non-TAP device of
  // that name, -EBUSY if another fd is attached to it. *out is replaced only
  // on success.
  static int open(const NetnsFd& ns, const std::string& name, TapDevice* out);

  // Creates a new persistent TAP from inside home and moves it into target
  // under name with one netlink request (RTM_NEWLINK, IFLA_NET_NS_FD): the fd
  // then pins home, not target. The device is made under name itself when
  // home has no such device, else under a temporary "umvtmpN" renamed as it
  // moves. -EINVAL for a bad name or a pattern, -EEXIST if target already has
  // a device called name; on any failure the half-made device is removed and
  // *out is left alone. ifindex() is then the index in target.
  static int create_and_move(const NetnsFd& home, const NetnsFd& target, const std::string& name,
                             TapDevice* out);

  bool valid() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  // Name and ifindex when opened (in the namespace it was opened/moved into).
  const std::string& name() const { return name_; }
  int ifindex() const { return ifindex_; }

  // The namespace the device lives in now, whoever moved it there (invalid
  // NetnsFd if the device is gone).
  NetnsFd current_netns() const;
  // The device's name and ifindex in that namespace now, or -errno.
  int current_name(std::string* out) const;
  int current_ifindex() const;

  int set_carrier(bool on);  // TUNSETCARRIER
  int set_persist(bool on);  // TUNSETPERSIST

  // Performed in the device's current namespace.
  int set_mac(const MacBytes& mac);
  int set_mtu(std::uint32_t mtu);
  int set_up(bool up);

  // Reads frames until the batch is full or none is pending (EAGAIN). The
  // batch is cleared first; batch.vnet[i] gets frame i's virtio-net header.
  // Returns batch.count (0 when nothing is pending), or -errno if the very
  // first read fails for another reason: -EBADFD once the device is gone. If
  // a later read fails, the frames already read are returned and the error
  // comes back on the next call. A GSO frame needs a slot of 64 KiB and more.
  int read_burst(FrameBatch& batch);
  // Writes one frame with its virtio-net header (vnet as read_burst() or
  // PacketLower::receive_burst() gave it; all zero for a plain frame). 0, or
  // -errno: -EIO when the device is down, -EBADFD when it is gone, -EINVAL
  // for a frame shorter than an Ethernet header or a header the kernel
  // refuses.
  int write(const VnetHeader& vnet, std::span<const std::uint8_t> frame);
  int write(std::span<const std::uint8_t> frame) { return write(VnetHeader{}, frame); }

  // Turns persistence off and closes the fd: the kernel removes the device.
  // 0 also when the device was already gone.
  int destroy();

 private:
  TapDevice(int fd, std::string name, int ifindex)
      : fd_(fd), name_(std::move(name)), ifindex_(ifindex) {}
  // Runs fn(sock, ifr) inside the device's current namespace, with sock an
  // AF_INET datagram socket opened there and ifr naming the device as it is
  // called there now. Returns fn's result or -errno.
  int in_current_netns(const std::function<int(int sock, struct ifreq& ifr)>& fn) const;
  void close_fd();

  int fd_ = -1;
  std::string name_;
  int ifindex_ = 0;
};

}  // namespace umacvlan::io
