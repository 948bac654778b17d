// LinkService: the control path. Turns `link add/set/del/show` requests into
// core::Port decisions and then into kernel objects (TAP devices, AF_PACKET
// sockets), and keeps the ports in step with what users do to the devices
// and lowers with plain `ip`.
//
// Contract
// - handle() validates a request whole — names resolved in the caller's
//   namespace, then the core's rules — before it changes anything; a refused
//   request returns the errno and sentence of the kernel's answer and leaves
//   every port, device and kernel object as it was.
// - resync() reads the kernel's view of every device (wherever it lives now)
//   and every lower, and applies it: up/down, address, MTU, promisc/allmulti,
//   multicast lists; devices that vanished (deleted, or their namespace
//   deleted) leave their port; a deleted lower takes its devices with it;
//   lower MTU and carrier changes reach the devices. A change the kernel's
//   macvlan would have refused (e.g. `ip link set X up` with a MAC in use) is
//   reverted on the TAP.
// - Owns the ports. Tells the event loop which fds to watch through the
//   FdWatcher it is given; never blocks on the data path.
#pragma once

#include <functional>
#include <memory>
#include <random>
#include <vector>

#include "daemon/control_protocol.h"
#include "daemon/runtime.h"
#include "io/netns.h"

namespace umacvlan::daemon {

class FdWatcher {
 public:
  virtual ~FdWatcher() = default;
  virtual void watch(int fd, FdTag* tag) = 0;
  virtual void unwatch(int fd) = 0;
};

class LinkService {
 public:
  explicit LinkService(FdWatcher& watcher);
  ~LinkService();

  control::Reply handle(const control::LinkRequest& req, const io::NetnsFd& caller);
  void resync();
  // A device's TAP reported an error: drop it from its port.
  void device_failed(PortRuntime& port, core::DeviceId id);
  // Removes every device (daemon shutdown).
  void remove_all();

  std::size_t device_count() const;
  const std::vector<std::unique_ptr<PortRuntime>>& ports() const { return ports_; }

 private:
  struct Found {
    PortRuntime* port = nullptr;
    DeviceRuntime* dev = nullptr;
  };
  Found find_device(ino_t ns_inode, int ifindex);
  Found find_by_name(const io::NetnsFd& caller, io::RtNetlink& rtnl, const std::string& name,
                     control::Reply* error);

  control::Reply add(const control::LinkRequest& req, const io::NetnsFd& caller,
                     io::RtNetlink& rtnl);
  control::Reply set(const control::LinkRequest& req, const io::NetnsFd& caller,
                     io::RtNetlink& rtnl);
  control::Reply del(const control::LinkRequest& req, const io::NetnsFd& caller,
                     io::RtNetlink& rtnl);
  control::Reply show(const control::LinkRequest& req, const io::NetnsFd& caller,
                      io::RtNetlink& rtnl);

  void remove_device(PortRuntime& port, core::DeviceId id, bool destroy_tap);
  void remove_port_if_empty(PortRuntime& port);
  // Brings the kernel objects in line with the core after a change.
  void apply_lower_filter(PortRuntime& port);
  void apply_device(PortRuntime& port, DeviceRuntime& dev);
  bool resync_device(PortRuntime& port, DeviceRuntime& dev);
  bool resync_lower(PortRuntime& port);

  FdWatcher& watcher_;
  io::NetnsFd home_;  // the daemon's own namespace
  std::vector<std::unique_ptr<PortRuntime>> ports_;
  std::mt19937_64 rng_;
};

}  // namespace umacvlan::daemon
