// TapDevice: one umacvlan device as a Linux TAP (IFF_TAP | IFF_NO_PI |
// IFF_VNET_HDR), the "upper" side of the data path: frames the device's stack
// sends are read here, frames for the device are written here.
//
// Offloads: every frame crosses the fd behind a 10-byte virtio-net header
// (VnetHeader), and the TAP offers the device's stack checksum, TCP
// segmentation offload (TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN)
// and UDP segmentation offload (TUN_F_USO4 | TUN_F_USO6, on Linux 6.2 and
// later; an older kernel's TAP goes without), so a TCP send, or a UDP_SEGMENT
// send of many datagrams, arrives as one GSO super-frame of up to 64 KiB with
// a partial checksum instead of one MTU-sized frame per read. Writing such a frame with
// its header hands it to the receiving stack whole; the kernel segments or
// checksums it only where something on the way needs that. Every attach
// (open(), create_and_move()) sets the same flags and offloads: TUNSETIFF on
// an existing persistent TAP replaces the previous attach's flags.
//
// Queues: every TAP is made multi-queue (IFF_MULTI_QUEUE), so that each
// dataplane worker reads and writes a queue fd of its own; the device's
// stack spreads what it sends over the queues by flow, so one flow's frames
// stay in order on one queue. Queue 0 is the one the single-queue calls
// (fd(), read_burst(batch), write(vnet, frame)) use.
//
// Contract: a TapDevice owns its queue fds (non-blocking, close-on-exec, of
// /dev/net/tun) attached to one persistent TAP. Destroying or moving-from a
// TapDevice closes only the fds: the persistent device stays (a restarted
// daemon re-attaches with open()); destroy() is what removes the device.
// Every call returns 0 (or a count) on success and a negative errno on
// failure; nothing throws, nothing logs. read_burst() and write() do no
// allocation and no system call besides readv()/writev(); the control calls
// (set_*, current_*) may enter, for the call, the namespace the device lives
// in now (run_in_netns()), which may no longer be the one it was created in.
//
// Namespaces: the kernel ties each fd to the namespace /dev/net/tun was
// opened in and keeps that namespace alive while the fd is open. open()
// opens them in the device's namespace, so that namespace cannot die while we
// hold them (`ip netns del` only unmounts it; the daemon watches for that,
// see netns_watch.h). create_and_move() opens them in a "home" namespace (the
// daemon's) and moves the new device into the target one, so deleting the
// target destroys the device, and the fds then fail with -EBADFD: the signal
// to drop the device from its port.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "io/frame_batch.h"
#include "io/netns.h"
#include "io/owned_fd.h"

struct ifreq;

namespace umacvlan::io {

class TapDevice {
 public:
  static constexpr std::size_t kMaxQueues = 16;
  // The largest MTU a TAP takes (the kernel's tun max_mtu: 65535 minus an
  // Ethernet header); a macvlan takes up to its lower's.
  static constexpr std::uint32_t kMaxMtu = 65521;

  TapDevice() = default;

  // Opens `queues` fds of /dev/net/tun inside ns and attaches them to the
  // TAP called name there, creating it if there is none; makes it
  // persistent. name may be a pattern such as "umv%d" (the kernel picks the
  // number; name() tells the result). -EINVAL for an empty or too long name,
  // a queue count of 0 or above kMaxQueues, or an existing device of that
  // name that is not a multi-queue TAP with virtio-net headers; -EBUSY if
  // some fd is already attached to it (another daemon serves it). *out is
  // replaced only on success.
  // With take_attached, a device that has fds attached already is taken as
  // well (the daemon re-attaching its own device from another namespace).
  static int open(const NetnsFd& ns, const std::string& name, TapDevice* out,
                  std::size_t queues = 1, bool take_attached = false);

  // Creates a new persistent TAP with `queues` queues inside ns, called
  // name (or after a pattern such as "umv%d": the kernel picks the number).
  // The fds pin ns. -EEXIST when ns has a device of that name, -EINVAL for a
  // bad name or queue count.
  static int create(const NetnsFd& ns, const std::string& name, TapDevice* out,
                    std::size_t queues = 1);
  // Moves the device into target and renames it to name there, in one
  // netlink request (RTM_NEWLINK, IFLA_NET_NS_FD): atomic, -EEXIST if target
  // has a device of that name already (the device then stays where it was).
  // name() and ifindex() are then those in target.
  int move_to(const NetnsFd& target, const std::string& name);

  // create() under a temporary "umvtmpN", then move_to(target, name): the
  // fds pin home, not target. -EINVAL for a bad name, a pattern or a bad
  // queue count, -EEXIST if target already has a device called name; on any
  // failure the half-made device is removed and *out is left alone.
  static int create_and_move(const NetnsFd& home, const NetnsFd& target, const std::string& name,
                             TapDevice* out, std::size_t queues = 1);

  bool valid() const { return !queues_.empty(); }
  std::size_t queue_count() const { return queues_.size(); }
  // Queue q's fd (q < queue_count()), for epoll; -1 past the end.
  int fd(std::size_t q = 0) const { return q < queues_.size() ? queues_[q].get() : -1; }
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
  // The eBPF program that picks the queue for each frame the device sends
  // (TUNSETSTEERINGEBPF, io/steering.h); -1 goes back to TUN's own choice.
  int set_steering(int prog_fd);

  // Performed in the device's current namespace (ioctls; the daemon itself
  // changes devices over rtnetlink).
  int set_mac(const MacBytes& mac);
  int set_mtu(std::uint32_t mtu);
  int set_up(bool up);

  // Reads frames from queue q until the batch is full or none is pending
  // (EAGAIN). The batch is cleared first; batch.vnet[i] gets frame i's
  // virtio-net header. Returns batch.count (0 when nothing is pending), or
  // -errno if the very first read fails for another reason: -EBADFD once the
  // device is gone. If a later read fails, the frames already read are
  // returned and the error comes back on the next call. A GSO frame needs a
  // slot of 64 KiB and more. At most max_frames frames are read (the
  // batch's capacity when larger).
  int read_burst(std::size_t q, FrameBatch& batch, std::size_t max_frames = kBatchSize);
  int read_burst(FrameBatch& batch) { return read_burst(0, batch); }
  // Writes one frame with its virtio-net header through queue q (vnet as
  // read_burst() or PacketLower::receive_burst() gave it; all zero for a
  // plain frame). 0, or -errno: -EIO when the device is down, -EBADFD when it
  // is gone, -EINVAL for a frame shorter than an Ethernet header or a header
  // the kernel refuses.
  int write(std::size_t q, const VnetHeader& vnet, std::span<const std::uint8_t> frame);
  int write(const VnetHeader& vnet, std::span<const std::uint8_t> frame) {
    return write(0, vnet, frame);
  }
  int write(std::span<const std::uint8_t> frame) { return write(0, VnetHeader{}, frame); }

  // Turns persistence off and closes the fds: the kernel removes the device.
  // 0 also when the device was already gone.
  int destroy();

 private:
  TapDevice(std::vector<OwnedFd> queues, std::string name, int ifindex)
      : queues_(std::move(queues)), name_(std::move(name)), ifindex_(ifindex) {}
  // Runs fn(sock, ifr) inside the device's current namespace, with sock an
  // AF_INET datagram socket opened there and ifr naming the device as it is
  // called there now. Returns fn's result or -errno.
  int in_current_netns(const std::function<int(int sock, struct ifreq& ifr)>& fn) const;

  std::vector<OwnedFd> queues_;
  std::string name_;
  int ifindex_ = 0;
};

}  // namespace umacvlan::io
