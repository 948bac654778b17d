// Helpers for the core's tests: frames built from MACs, and a port with
// named devices whose decisions come back as plain sets of names.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "core/port.h"

namespace umacvlan::core::testing {

inline MacAddress mac(const char* s) {
  return *MacAddress::parse(s);
}

inline const MacAddress kLowerMac = mac("02:00:00:00:00:ee");
inline const MacAddress kOutside = mac("02:00:00:00:aa:01");
inline const MacAddress kOutside2 = mac("02:00:00:00:aa:02");
inline const MacAddress kBcast = MacAddress::broadcast();
inline const MacAddress kGroup = mac("01:00:5e:00:00:fb");
inline const MacAddress kGroup2 = mac("33:33:00:00:00:01");

inline std::vector<std::uint8_t> frame(MacAddress dst, MacAddress src, std::uint16_t type = 0x0800,
                                       std::size_t payload = 46) {
  std::vector<std::uint8_t> f(14 + payload, 0);
  for (int i = 0; i < 6; ++i) {
    f[i] = dst.octets()[i];
    f[6 + i] = src.octets()[i];
  }
  f[12] = type >> 8;
  f[13] = type & 0xff;
  return f;
}

struct Outcome {
  std::set<std::string> devices;  // who got a copy
  bool to_host = false;
  bool to_wire = false;
  bool queued = false;
  DropReason drop = DropReason::kNone;
};

class PortHarness {
 public:
  explicit PortHarness(bool unicast_filter = true) : port_(make_lower(unicast_filter)) {}

  static LowerState make_lower(bool unicast_filter) {
    LowerState l;
    l.name = "lower0";
    l.mac = kLowerMac;
    l.mtu = 1500;
    l.unicast_filter = unicast_filter;
    return l;
  }

  // Adds a device with MAC 02:00:00:00:00:NN and brings it up (unless up=false).
  DeviceId add(const std::string& name, Mode mode, std::uint8_t nn, bool up = true,
               std::uint16_t flags = 0, std::vector<MacAddress> sources = {}) {
    DeviceSpec s;
    s.name = name;
    s.mode = mode;
    s.flags = flags;
    if (mode != Mode::kPassthru) s.address = MacAddress::from_u64(0x020000000000ULL | nn);
    if (!sources.empty()) s.macaddr = {SourceOp::kSet, sources};
    DeviceId id = kNoDevice;
    Status st = port_.add_device(s, 0x1234, &id);
    EXPECT_TRUE(st.ok()) << st.message;
    if (up) set_up(id, true);
    return id;
  }
  void set_up(DeviceId id, bool up) {
    DeviceChange c;
    c.up = up;
    Status st = port_.change_device(id, c);
    EXPECT_TRUE(st.ok()) << st.message;
  }
  void subscribe(DeviceId id, std::vector<MacAddress> groups) {
    DeviceChange c;
    c.multicast = std::move(groups);
    ASSERT_TRUE(port_.change_device(id, c).ok());
  }
  MacAddress mac_of(DeviceId id) const { return port_.device(id)->mac; }

  Outcome outcome(const Verdict& v) {
    Outcome o;
    for (const Target& t : batch_.targets(v)) o.devices.insert(port_.device(t.device)->name);
    o.to_host = v.to_host;
    o.to_wire = v.to_wire;
    o.queued = v.queued;
    o.drop = v.drop;
    return o;
  }
  Outcome rx(const std::vector<std::uint8_t>& f) {
    batch_.clear();
    port_.receive(f, batch_);
    return outcome(batch_.back());
  }
  Outcome tx(DeviceId from, const std::vector<std::uint8_t>& f) {
    batch_.clear();
    port_.transmit(from, f, batch_);
    return outcome(batch_.back());
  }

  Port& port() { return port_; }
  DecisionBatch& batch() { return batch_; }

 private:
  Port port_;
  DecisionBatch batch_;
};

inline std::set<std::string> names(std::initializer_list<const char*> l) {
  return std::set<std::string>(l.begin(), l.end());
}

}  // namespace umacvlan::core::testing
