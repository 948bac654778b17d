// The daemon's live state: each port (one per lower) with its core::Port, the
// AF_PACKET socket on the lower, and the TAP device behind every macvlan
// device.
//
// Contract: plain structs, owned by LinkService (ports_ holds them by
// unique_ptr, so their addresses are stable while they live: the event loop
// keys fds on those addresses). The core::Port is the only source of truth
// for forwarding; the io objects only carry out what it decided. No logic
// here beyond small accessors.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "core/port.h"
#include "io/netlink.h"
#include "io/netns.h"
#include "io/packet_lower.h"
#include "io/stack_filter.h"
#include "io/tap_device.h"

namespace umacvlan::daemon {

struct PortRuntime;

// What the event loop registered an fd for.
struct FdTag {
  enum Kind : std::uint8_t { kLower, kTap } kind;
  PortRuntime* port;
  core::DeviceId device;
};

struct DeviceRuntime {
  core::DeviceId id = core::kNoDevice;
  io::TapDevice tap;
  // Where the device lives now (it may have been moved with `ip link set
  // NAME netns X`): only the inode number and the index, never an fd or a
  // socket there, which would keep the namespace alive after `ip netns del`
  // and with it the device.
  ino_t ns_inode = 0;
  int ifindex = 0;
  std::string name;
  std::unique_ptr<FdTag> tag;
};

struct PortRuntime {
  io::NetnsFd lower_ns;
  ino_t lower_ns_inode = 0;
  int lower_ifindex = 0;
  std::string lower_name;  // follows renames
  io::RtNetlink lower_rtnl;
  io::PacketLower lower;
  io::StackFilter stack_filter;  // what the port consumes never reaches the lower's stack
  core::Port port;
  // The filters programmed on the lower so far.
  core::LowerFilter applied;
  std::map<core::DeviceId, DeviceRuntime> devices;
  std::unique_ptr<FdTag> tag;

  explicit PortRuntime(core::LowerState l) : port(std::move(l)) {}
};

inline io::MacBytes to_bytes(core::MacAddress m) {
  return m.octets();
}
inline core::MacAddress from_bytes(const io::MacBytes& b) {
  return core::MacAddress(b);
}

}  // namespace umacvlan::daemon
