// The transmit decision (frames a device sends), one row per rule of
// shared/spec/macvlan-semantics.md "Frames sent by a device".
#include <gtest/gtest.h>

#include <functional>

#include "core/port_test_util.h"

namespace umacvlan::core::testing {
namespace {

struct Sib : PortHarness {
  Sib() {
    p = add("p", Mode::kPrivate, 1);
    v1 = add("v1", Mode::kVepa, 2);
    v2 = add("v2", Mode::kVepa, 3);
    b1 = add("b1", Mode::kBridge, 4);
    b2 = add("b2", Mode::kBridge, 5);
    b3 = add("b3", Mode::kBridge, 6, false);
    s = add("s", Mode::kSource, 7, true, 0, {kOutside});
  }
  DeviceId p, v1, v2, b1, b2, b3, s;
};

struct TxRow {
  const char* name;
  DeviceId Sib::*from;
  std::function<MacAddress(Sib&)> dst;
  std::set<std::string> expect;
  bool wire;
  std::uint16_t type = 0x0800;
  std::function<void(Sib&)> setup = nullptr;
  DropReason drop = DropReason::kNone;
};

class TransmitTable : public ::testing::TestWithParam<TxRow> {};

TEST_P(TransmitTable, Decides) {
  const TxRow& row = GetParam();
  Sib h;
  if (row.setup) row.setup(h);
  const DeviceId from = h.*row.from;
  Outcome o = h.tx(from, frame(row.dst(h), h.mac_of(from), row.type));
  EXPECT_EQ(o.devices, row.expect);
  EXPECT_EQ(o.to_wire, row.wire);
  EXPECT_FALSE(o.to_host);
  EXPECT_FALSE(o.queued);
  EXPECT_EQ(o.drop, row.drop) << to_string(o.drop);
}

auto dev(DeviceId Sib::*d) {
  return [d](Sib& h) { return h.mac_of(h.*d); };
}
auto fixed(MacAddress m) {
  return [m](Sib&) { return m; };
}

INSTANTIATE_TEST_SUITE_P(
    Bridge, TransmitTable,
    ::testing::Values(
        TxRow{"unicast_to_bridge_sibling_local", &Sib::b1, dev(&Sib::b2), names({"b2"}), false},
        TxRow{"unicast_to_bridge_sibling_reverse", &Sib::b2, dev(&Sib::b1), names({"b1"}), false},
        TxRow{"unicast_to_vepa_goes_out", &Sib::b1, dev(&Sib::v1), {}, true},
        TxRow{"unicast_to_private_goes_out", &Sib::b1, dev(&Sib::p), {}, true},
        TxRow{"unicast_to_source_goes_out", &Sib::b1, dev(&Sib::s), {}, true},
        TxRow{"unicast_to_down_bridge_goes_out", &Sib::b1, dev(&Sib::b3), {}, true},
        TxRow{"unicast_to_lower_goes_out", &Sib::b1, fixed(kLowerMac), {}, true},
        TxRow{"unicast_to_outside_goes_out", &Sib::b1, fixed(kOutside), {}, true},
        TxRow{"broadcast_to_bridges_and_out", &Sib::b1, fixed(kBcast), names({"b2"}), true},
        TxRow{"broadcast_skips_vepa_private_source", &Sib::b2, fixed(kBcast), names({"b1"}), true},
        TxRow{"group_to_subscribed_bridge", &Sib::b1, fixed(kGroup), names({"b2"}), true, 0x0800,
              [](Sib& h) { h.subscribe(h.b2, {kGroup}); }},
        TxRow{"group_unsubscribed_only_out", &Sib::b1, fixed(kGroup), {}, true},
        TxRow{"group_to_allmulti_bridge", &Sib::b1, fixed(kGroup2), names({"b2"}), true, 0x0800,
              [](Sib& h) {
                DeviceChange c;
                c.allmulti = true;
                ASSERT_TRUE(h.port().change_device(h.b2, c).ok());
              }},
        TxRow{"pause_only_out", &Sib::b1, fixed(mac("01:80:c2:00:00:01")), {}, true, 0x8808},
        TxRow{"broadcast_not_queued_even_with_zero_queue", &Sib::b1, fixed(kBcast), names({"b2"}),
              true, 0x0800,
              [](Sib& h) {
                for (DeviceId id : h.port().device_ids()) {
                  DeviceChange c;
                  c.bcqueuelen = 0;
                  ASSERT_TRUE(h.port().change_device(id, c).ok());
                }
              }},
        TxRow{"local_delivery_seen_by_source_list", &Sib::b1, dev(&Sib::b2), names({"b2", "s2"}),
              false, 0x0800,
              [](Sib& h) { h.add("s2", Mode::kSource, 8, true, 0, {h.mac_of(h.b1)}); }},
        TxRow{"local_delivery_stopped_by_nodst", &Sib::b1, dev(&Sib::b2), names({"s2"}), false,
              0x0800,
              [](Sib& h) { h.add("s2", Mode::kSource, 8, true, kFlagNoDst, {h.mac_of(h.b1)}); },
              DropReason::kNoDst}),
    [](const auto& info) { return info.param.name; });

INSTANTIATE_TEST_SUITE_P(
    OtherModes, TransmitTable,
    ::testing::Values(TxRow{"vepa_to_vepa_sibling_goes_out", &Sib::v1, dev(&Sib::v2), {}, true},
                      TxRow{"vepa_to_bridge_goes_out", &Sib::v1, dev(&Sib::b1), {}, true},
                      TxRow{"vepa_broadcast_only_out", &Sib::v1, fixed(kBcast), {}, true},
                      TxRow{"private_to_bridge_goes_out", &Sib::p, dev(&Sib::b1), {}, true},
                      TxRow{"private_broadcast_only_out", &Sib::p, fixed(kBcast), {}, true},
                      TxRow{"source_to_bridge_goes_out", &Sib::s, dev(&Sib::b1), {}, true},
                      TxRow{"source_broadcast_only_out", &Sib::s, fixed(kBcast), {}, true},
                      TxRow{"vepa_to_outside", &Sib::v2, fixed(kOutside), {}, true},
                      TxRow{"private_to_lower", &Sib::p, fixed(kLowerMac), {}, true}),
    [](const auto& info) { return info.param.name; });

TEST(Transmit, PassthruGoesOut) {
  PortHarness h;
  DeviceId pt = h.add("pt", Mode::kPassthru, 0);
  Outcome o = h.tx(pt, frame(kBcast, kLowerMac));
  EXPECT_TRUE(o.to_wire);
  EXPECT_TRUE(o.devices.empty());
}

TEST(Transmit, UnknownSenderDropped) {
  PortHarness h;
  Outcome o = h.tx(42, frame(kBcast, kOutside));
  EXPECT_EQ(o.drop, DropReason::kUnknownSender);
  EXPECT_FALSE(o.to_wire);
}

TEST(Transmit, RuntDropped) {
  PortHarness h;
  DeviceId b = h.add("b", Mode::kBridge, 1);
  h.batch().clear();
  std::vector<std::uint8_t> runt(10, 0xff);
  h.port().transmit(b, runt, h.batch());
  EXPECT_EQ(h.batch().back().drop, DropReason::kRunt);
  EXPECT_FALSE(h.batch().back().to_wire);
}

TEST(Transmit, ReflectedBroadcastOfBridgeReachesVepaAndTheDevice) {
  // A bridge device's broadcast: siblings in bridge mode got it on the way
  // out; if it comes back from the wire (a hairpin switch, or another host
  // sharing the MAC), vepa devices and the device itself take it (the
  // kernel's 2026 fix; 6.18 gave the device nothing).
  Sib h;
  EXPECT_EQ(h.tx(h.b1, frame(kBcast, h.mac_of(h.b1))).devices, names({"b2"}));
  EXPECT_EQ(h.rx(frame(kBcast, h.mac_of(h.b1))).devices, names({"v1", "v2", "b1"}));
}

TEST(Counters, RxAndTxAsIpShowsThem) {
  DeviceCounters c;
  count_rx(c, 100, false, true);
  count_rx(c, 60, true, true);
  count_rx(c, 60, true, false);
  count_tx(c, 70, true);
  count_tx(c, 70, false);
  EXPECT_EQ(c.rx_packets, 2u);
  EXPECT_EQ(c.rx_bytes, 160u);
  EXPECT_EQ(c.rx_multicast, 1u);
  EXPECT_EQ(c.rx_dropped, 1u);
  EXPECT_EQ(c.tx_packets, 1u);
  EXPECT_EQ(c.tx_bytes, 70u);
  EXPECT_EQ(c.tx_dropped, 1u);
}

TEST(Counters, DropsByReason) {
  PortCounters c;
  count_drop(c, DropReason::kBcQueueFull);
  count_drop(c, DropReason::kBcQueueFull);
  count_drop(c, DropReason::kNone);  // not a drop
  count_drop(c, DropReason::kRunt);
  EXPECT_EQ(c.lower_rx_dropped(), 2u);
  EXPECT_EQ(c.drops_for(DropReason::kRunt), 1u);
  EXPECT_EQ(c.drops_for(DropReason::kNone), 0u);
}

}  // namespace
}  // namespace umacvlan::core::testing

namespace umacvlan::core::testing {
namespace {

// spoofchk (umacvlan's, the kernel's macvlan has none): off by default.
TEST(Spoofchk, OffByDefaultForeignSourceForwarded) {
  PortHarness h;
  const DeviceId a = h.add("a", Mode::kBridge, 1);
  const DeviceId b = h.add("b", Mode::kBridge, 2);
  const Outcome o = h.tx(a, frame(h.mac_of(b), kOutside));
  EXPECT_EQ(o.devices, names({"b"}));
  EXPECT_EQ(o.drop, DropReason::kNone);
}

TEST(Spoofchk, OnDropsForeignSourceKeepsOwn) {
  PortHarness h;
  const DeviceId a = h.add("a", Mode::kBridge, 1);
  const DeviceId b = h.add("b", Mode::kBridge, 2);
  DeviceChange c;
  c.spoofchk = true;
  ASSERT_TRUE(h.port().change_device(a, c).ok());
  for (const MacAddress dst : {h.mac_of(b), kBcast, kOutside}) {
    const Outcome spoofed = h.tx(a, frame(dst, kOutside));
    EXPECT_EQ(spoofed.drop, DropReason::kSpoofed) << dst.to_string();
    EXPECT_TRUE(spoofed.devices.empty());
    EXPECT_FALSE(spoofed.to_wire);
  }
  EXPECT_EQ(h.tx(a, frame(h.mac_of(b), h.mac_of(a))).devices, names({"b"}));
  EXPECT_TRUE(h.tx(a, frame(kOutside, h.mac_of(a))).to_wire);
  // b is not checked.
  EXPECT_TRUE(h.tx(b, frame(kOutside, kOutside2)).to_wire);
}

}  // namespace
}  // namespace umacvlan::core::testing
