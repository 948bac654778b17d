// The receive decision (frames arriving from the lower), one row per rule of
// shared/spec/macvlan-semantics.md "Frames arriving from the lower".
#include <gtest/gtest.h>

#include <functional>

#include "core/port_test_util.h"

namespace umacvlan::core::testing {
namespace {

// The standard port: one device of each kind, all up except "down".
//   p private 01, v1 vepa 02, v2 vepa 03, b1 bridge 04, b2 bridge 05,
//   s source 06 (sources: kOutside), down bridge 07 (down).
struct Mixed : PortHarness {
  Mixed() {
    p = add("p", Mode::kPrivate, 1);
    v1 = add("v1", Mode::kVepa, 2);
    v2 = add("v2", Mode::kVepa, 3);
    b1 = add("b1", Mode::kBridge, 4);
    b2 = add("b2", Mode::kBridge, 5);
    s = add("s", Mode::kSource, 6, true, 0, {kOutside});
    dn = add("down", Mode::kBridge, 7, false);
  }
  DeviceId p, v1, v2, b1, b2, s, dn;
};

struct RxRow {
  const char* name;
  std::function<std::vector<std::uint8_t>(Mixed&)> make;
  std::set<std::string> expect;
  bool host;
  DropReason drop = DropReason::kNone;
  std::function<void(Mixed&)> setup = nullptr;
};

class ReceiveTable : public ::testing::TestWithParam<RxRow> {};

TEST_P(ReceiveTable, Decides) {
  const RxRow& row = GetParam();
  Mixed m;
  if (row.setup) row.setup(m);
  Outcome o = m.rx(row.make(m));
  EXPECT_EQ(o.devices, row.expect);
  EXPECT_EQ(o.to_host, row.host);
  EXPECT_FALSE(o.to_wire);
  EXPECT_EQ(o.drop, row.drop) << to_string(o.drop);
}

auto to(DeviceId Mixed::*d, MacAddress src = kOutside2) {
  return [d, src](Mixed& m) { return frame(m.mac_of(m.*d), src); };
}
auto from(DeviceId Mixed::*d, MacAddress dst = kBcast) {
  return [d, dst](Mixed& m) { return frame(dst, m.mac_of(m.*d)); };
}
auto raw(MacAddress dst, MacAddress src, std::uint16_t type = 0x0800) {
  return [=](Mixed&) { return frame(dst, src, type); };
}
void subscribe_v1(Mixed& m) {
  m.subscribe(m.v1, {kGroup});
}
void subscribe_v1_b1(Mixed& m) {
  m.subscribe(m.v1, {kGroup});
  m.subscribe(m.b1, {kGroup});
}
const std::set<std::string> kAllFlood = names({"p", "v1", "v2", "b1", "b2"});

INSTANTIATE_TEST_SUITE_P(
    Unicast, ReceiveTable,
    ::testing::Values(
        RxRow{"to_private", to(&Mixed::p), names({"p"}), false},
        RxRow{"to_vepa", to(&Mixed::v1), names({"v1"}), false},
        RxRow{"to_vepa2", to(&Mixed::v2), names({"v2"}), false},
        RxRow{"to_bridge", to(&Mixed::b1), names({"b1"}), false},
        RxRow{"to_bridge2", to(&Mixed::b2), names({"b2"}), false},
        RxRow{"to_source_device_mac_goes_to_host", to(&Mixed::s), {}, true},
        RxRow{"to_down_device_goes_to_host", to(&Mixed::dn), {}, true},
        RxRow{"to_lower_goes_to_host", raw(kLowerMac, kOutside2), {}, true},
        RxRow{"to_unknown_goes_to_host", raw(mac("02:99:00:00:00:01"), kOutside2), {}, true},
        RxRow{"source_copy_and_lookup", to(&Mixed::p, kOutside), names({"s", "p"}), false},
        RxRow{"source_copy_and_host", raw(kLowerMac, kOutside), names({"s"}), true},
        RxRow{"source_copy_of_frame_to_source_mac", to(&Mixed::s, kOutside), names({"s"}), true},
        RxRow{"from_own_device_unicast_to_sibling",
              [](Mixed& m) { return frame(m.mac_of(m.b2), m.mac_of(m.p)); }, names({"b2"}), false},
        RxRow{"private_gets_reflected_unicast",
              [](Mixed& m) { return frame(m.mac_of(m.p), m.mac_of(m.v1)); }, names({"p"}), false},
        RxRow{"vlan_tagged_unicast",
              [](Mixed& m) {
                auto f = frame(m.mac_of(m.v1), kOutside2, 0x8100, 50);
                f[16] = 0x08;
                return f;
              },
              names({"v1"}), false},
        RxRow{"runt",
              [](Mixed&) { return std::vector<std::uint8_t>(13, 0); },
              {},
              false,
              DropReason::kRunt},
        RxRow{"empty",
              [](Mixed&) { return std::vector<std::uint8_t>(); },
              {},
              false,
              DropReason::kRunt},
        RxRow{"oversize",
              [](Mixed&) { return std::vector<std::uint8_t>(kMaxFrameSize + 1, 2); },
              {},
              false,
              DropReason::kOversize},
        RxRow{"after_device_goes_down",
              to(&Mixed::b1),
              {},
              true,
              DropReason::kNone,
              [](Mixed& m) { m.set_up(m.b1, false); }},
        RxRow{"after_device_removed",
              raw(mac("02:00:00:00:00:03"), kOutside2),
              {},
              true,
              DropReason::kNone,
              [](Mixed& m) { m.port().remove_device(m.v2); }},
        RxRow{"after_mac_change_old_mac_is_host",
              raw(mac("02:00:00:00:00:02"), kOutside2),
              {},
              true,
              DropReason::kNone,
              [](Mixed& m) {
                DeviceChange c;
                c.address = mac("02:00:00:00:01:02");
                ASSERT_TRUE(m.port().change_device(m.v1, c).ok());
              }},
        RxRow{"after_mac_change_new_mac", raw(mac("02:00:00:00:01:02"), kOutside2), names({"v1"}),
              false, DropReason::kNone,
              [](Mixed& m) {
                DeviceChange c;
                c.address = mac("02:00:00:00:01:02");
                ASSERT_TRUE(m.port().change_device(m.v1, c).ok());
              }}),
    [](const auto& info) { return info.param.name; });

INSTANTIATE_TEST_SUITE_P(
    Multicast, ReceiveTable,
    ::testing::Values(
        RxRow{"broadcast_from_outside_floods_all_but_source", raw(kBcast, kOutside2), kAllFlood,
              true},
        RxRow{"broadcast_from_listed_source_adds_copy", raw(kBcast, kOutside),
              names({"s", "p", "v1", "v2", "b1", "b2"}), true},
        RxRow{"broadcast_from_private_reflects_only", from(&Mixed::p), names({"p"}), false},
        RxRow{"broadcast_from_source_device_reflects_only", from(&Mixed::s), names({"s"}), false},
        RxRow{"broadcast_from_vepa_to_vepa_and_bridge", from(&Mixed::v1),
              names({"v2", "b1", "b2"}), true},
        RxRow{"broadcast_from_vepa2", from(&Mixed::v2), names({"v1", "b1", "b2"}), true},
        // Bridge siblings saw it on the way out; the device itself gets it
        // (a shared VRRP MAC: the kernel's 2026 fix).
        RxRow{"broadcast_from_bridge_to_vepa_and_itself", from(&Mixed::b1),
              names({"v1", "v2", "b1"}), true},
        RxRow{"broadcast_from_down_device_is_outside", from(&Mixed::dn), kAllFlood, true},
        RxRow{"broadcast_from_lower_mac_is_outside", raw(kBcast, kLowerMac), kAllFlood, true},
        RxRow{"pause_is_never_flooded", raw(mac("01:80:c2:00:00:01"), kOutside2, 0x8808), {},
              true, DropReason::kPause},
        RxRow{"pause_to_broadcast_is_never_flooded", raw(kBcast, kOutside2, 0x8808), {}, true,
              DropReason::kPause},
        RxRow{"unsubscribed_group_dropped_by_port", raw(kGroup, kOutside2), {}, true,
              DropReason::kNoSubscriber},
        RxRow{"group_with_one_subscriber", raw(kGroup, kOutside2), names({"v1"}), true,
              DropReason::kNone, subscribe_v1},
        RxRow{"group_with_two_subscribers", raw(kGroup, kOutside2), names({"v1", "b1"}), true,
              DropReason::kNone, subscribe_v1_b1},
        RxRow{"group_from_vepa_skips_sender", from(&Mixed::v1, kGroup), names({"b1"}), true,
              DropReason::kNone, subscribe_v1_b1},
        RxRow{"group_from_bridge_to_vepa_subscribers_and_itself", from(&Mixed::b1, kGroup),
              names({"v1", "b1"}), true, DropReason::kNone, subscribe_v1_b1},
        RxRow{"group_from_bridge_not_to_itself_unsubscribed", from(&Mixed::b1, kGroup),
              names({"v1"}), true, DropReason::kNone, subscribe_v1},
        RxRow{"shared_mac_group_to_allmulti_bridge_device", from(&Mixed::b2, kGroup2),
              names({"b2"}), true, DropReason::kNone,
              [](Mixed& m) {
                DeviceChange c;
                c.allmulti = true;
                ASSERT_TRUE(m.port().change_device(m.b2, c).ok());
              }},
        RxRow{"other_group_not_delivered", raw(kGroup2, kOutside2), {}, true,
              DropReason::kNoSubscriber, subscribe_v1_b1},
        RxRow{"lower_own_group_passes_port_but_no_device", raw(kGroup2, kOutside2), {}, true,
              DropReason::kNone, [](Mixed& m) { m.port().lower_multicast_changed({kGroup2}); }},
        RxRow{"allmulti_device_gets_every_group", raw(kGroup2, kOutside2), names({"v2"}), true,
              DropReason::kNone,
              [](Mixed& m) {
                DeviceChange c;
                c.allmulti = true;
                ASSERT_TRUE(m.port().change_device(m.v2, c).ok());
              }},
        RxRow{"promisc_device_gets_every_group", raw(kGroup2, kOutside2), names({"b2"}), true,
              DropReason::kNone,
              [](Mixed& m) {
                DeviceChange c;
                c.promisc = true;
                ASSERT_TRUE(m.port().change_device(m.b2, c).ok());
              }},
        RxRow{"promisc_lower_passes_all_groups_to_subscribers", raw(kGroup, kOutside2),
              names({"v1"}), true, DropReason::kNone,
              [](Mixed& m) {
                m.port().lower_flags_changed(true, false);
                m.subscribe(m.v1, {kGroup});
              }},
        RxRow{"down_subscriber_does_not_count", raw(kGroup, kOutside2), {}, true,
              DropReason::kNoSubscriber,
              [](Mixed& m) {
                m.subscribe(m.dn, {kGroup});
              }},
        RxRow{"bcqueuelen_zero_drops_broadcast", raw(kBcast, kOutside2), {}, true,
              DropReason::kBcQueueFull,
              [](Mixed& m) {
                for (DeviceId id : m.port().device_ids()) {
                  DeviceChange c;
                  c.bcqueuelen = 0;
                  ASSERT_TRUE(m.port().change_device(id, c).ok());
                }
              }},
        RxRow{"bcqueuelen_zero_but_group_inline", raw(kGroup, kOutside2), names({"v1"}), true,
              DropReason::kNone,
              [](Mixed& m) {
                for (DeviceId id : m.port().device_ids()) {
                  DeviceChange c;
                  c.bcqueuelen = 0;
                  ASSERT_TRUE(m.port().change_device(id, c).ok());
                }
                m.subscribe(m.v1, {kGroup});
              }},
        RxRow{"bclim_minus_one_never_queues", raw(kBcast, kOutside2), kAllFlood, true,
              DropReason::kNone,
              [](Mixed& m) {
                DeviceChange c;
                c.bclim = -1;
                c.bcqueuelen = 0;
                ASSERT_TRUE(m.port().change_device(m.p, c).ok());
                for (DeviceId id : m.port().device_ids()) {
                  DeviceChange q;
                  q.bcqueuelen = 0;
                  ASSERT_TRUE(m.port().change_device(id, q).ok());
                }
              }},
        RxRow{"nodst_stops_broadcast", raw(kBcast, kOutside), names({"s", "nd"}), false,
              DropReason::kNoDst,
              [](Mixed& m) { m.add("nd", Mode::kSource, 8, true, kFlagNoDst, {kOutside}); }},
        RxRow{"nodst_down_still_stops_broadcast", raw(kBcast, kOutside), names({"s"}), false,
              DropReason::kNoDst,
              [](Mixed& m) { m.add("nd", Mode::kSource, 8, false, kFlagNoDst, {kOutside}); }},
        RxRow{"nodst_other_source_unaffected", raw(kBcast, kOutside2), kAllFlood, true,
              DropReason::kNone,
              [](Mixed& m) { m.add("nd", Mode::kSource, 8, true, kFlagNoDst, {kOutside}); }},
        RxRow{"nodst_stops_unicast", to(&Mixed::p, kOutside), names({"s", "nd"}), false,
              DropReason::kNoDst,
              [](Mixed& m) { m.add("nd", Mode::kSource, 8, true, kFlagNoDst, {kOutside}); }},
        RxRow{"nodst_stops_unicast_to_host", raw(kLowerMac, kOutside), names({"s", "nd"}), false,
              DropReason::kNoDst,
              [](Mixed& m) { m.add("nd", Mode::kSource, 8, true, kFlagNoDst, {kOutside}); }},
        RxRow{"down_source_device_no_copy", raw(kLowerMac, kOutside), {}, true, DropReason::kNone,
              [](Mixed& m) { m.set_up(m.s, false); }},
        RxRow{"source_list_emptied_by_mode_change", raw(kLowerMac, kOutside), {}, true,
              DropReason::kNone,
              [](Mixed& m) {
                DeviceChange c;
                c.mode = Mode::kBridge;
                ASSERT_TRUE(m.port().change_device(m.s, c).ok());
              }}),
    [](const auto& info) { return info.param.name; });

TEST(ReceiveQueue, BroadcastIsQueuedGroupWithOneSubscriberIsNot) {
  Mixed m;
  m.subscribe(m.v1, {kGroup});
  EXPECT_TRUE(m.rx(frame(kBcast, kOutside2)).queued);
  EXPECT_FALSE(m.rx(frame(kGroup, kOutside2)).queued);
  m.subscribe(m.b1, {kGroup});
  EXPECT_TRUE(m.rx(frame(kGroup, kOutside2)).queued);  // 2 subscribers > bclim 1
}

TEST(ReceiveQueue, BclimRaisesTheCutoff) {
  Mixed m;
  m.subscribe(m.v1, {kGroup});
  m.subscribe(m.b1, {kGroup});
  DeviceChange c;
  c.bclim = 2;
  ASSERT_TRUE(m.port().change_device(m.v2, c).ok());
  EXPECT_FALSE(m.rx(frame(kGroup, kOutside2)).queued);
  EXPECT_EQ(m.port().bclim(), 2);
}

TEST(ReceiveQueue, OverflowWithinABurstDropsAndCountsOnLower) {
  Mixed m;
  for (DeviceId id : m.port().device_ids()) {
    DeviceChange c;
    c.bcqueuelen = 2;
    ASSERT_TRUE(m.port().change_device(id, c).ok());
  }
  ASSERT_EQ(m.port().used_bcqueuelen(), 2u);
  DecisionBatch& b = m.batch();
  b.clear();
  const auto f = frame(kBcast, kOutside2);
  for (int i = 0; i < 3; ++i) m.port().receive(f, b);
  EXPECT_TRUE(b[0].queued);
  EXPECT_TRUE(b[1].queued);
  EXPECT_EQ(b[2].drop, DropReason::kBcQueueFull);
  EXPECT_EQ(b[2].count, 0u);
  EXPECT_TRUE(b[2].to_host);
  // A new burst: the queue has drained.
  b.clear();
  m.port().receive(f, b);
  EXPECT_TRUE(b[0].queued);
}

TEST(ReceiveQueue, UnicastAndInlineGroupsDoNotUseTheQueue) {
  Mixed m;
  for (DeviceId id : m.port().device_ids()) {
    DeviceChange c;
    c.bcqueuelen = 1;
    ASSERT_TRUE(m.port().change_device(id, c).ok());
  }
  m.subscribe(m.v1, {kGroup});
  DecisionBatch& b = m.batch();
  b.clear();
  m.port().receive(frame(m.mac_of(m.v1), kOutside2), b);
  m.port().receive(frame(kGroup, kOutside2), b);
  m.port().receive(frame(kBcast, kOutside2), b);
  m.port().receive(frame(kBcast, kOutside2), b);
  EXPECT_FALSE(b[0].queued);
  EXPECT_FALSE(b[1].queued);
  EXPECT_TRUE(b[2].queued);
  EXPECT_EQ(b[3].drop, DropReason::kBcQueueFull);
}

TEST(ReceiveReasons, TargetsCarryWhy) {
  Mixed m;
  m.batch().clear();
  m.port().receive(frame(kBcast, kOutside), m.batch());
  const Verdict& v = m.batch().back();
  int source = 0, flood = 0;
  for (const Target& t : m.batch().targets(v)) {
    if (t.reason == Reason::kSourceCopy) ++source;
    if (t.reason == Reason::kFlood) ++flood;
  }
  EXPECT_EQ(source, 1);
  EXPECT_EQ(flood, 5);
}

TEST(ReceiveReasons, ReflectIsMarked) {
  Mixed m;
  m.batch().clear();
  m.port().receive(frame(kBcast, m.mac_of(m.p)), m.batch());
  auto t = m.batch().targets(m.batch().back());
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].reason, Reason::kReflect);
}

// Passthru: the one device takes every unicast frame, whatever D is.
struct Passthru : PortHarness {
  Passthru() { pt = add("pt", Mode::kPassthru, 0); }
  DeviceId pt;
};

TEST(ReceivePassthru, TakesEveryUnicast) {
  Passthru h;
  EXPECT_EQ(h.rx(frame(kLowerMac, kOutside)).devices, names({"pt"}));
  EXPECT_EQ(h.rx(frame(mac("02:12:34:56:78:9a"), kOutside)).devices, names({"pt"}));
  EXPECT_FALSE(h.rx(frame(kLowerMac, kOutside)).to_host);
}

TEST(ReceivePassthru, DeviceDownDropsUnicast) {
  Passthru h;
  h.set_up(h.pt, false);
  Outcome o = h.rx(frame(kLowerMac, kOutside));
  EXPECT_TRUE(o.devices.empty());
  EXPECT_EQ(o.drop, DropReason::kPassthruDown);
  EXPECT_FALSE(o.to_host);
}

TEST(ReceivePassthru, BroadcastFloodsToPassthru) {
  Passthru h;
  Outcome o = h.rx(frame(kBcast, kOutside));
  EXPECT_EQ(o.devices, names({"pt"}));
  EXPECT_TRUE(o.to_host);
}

TEST(ReceivePassthru, OwnBroadcastReflectsOnly) {
  Passthru h;
  Outcome o = h.rx(frame(kBcast, kLowerMac));
  EXPECT_EQ(o.devices, names({"pt"}));
  EXPECT_FALSE(o.to_host);
}

TEST(ReceivePassthru, PromiscuousLowerPassesEveryGroup) {
  Passthru h;
  // passthru without nopromisc makes the lower promiscuous: the port takes
  // every group, the device still filters by its own list.
  h.subscribe(h.pt, {kGroup});
  EXPECT_EQ(h.rx(frame(kGroup, kOutside)).devices, names({"pt"}));
  EXPECT_EQ(h.rx(frame(kGroup2, kOutside)).drop, DropReason::kNone);
}

TEST(ReceiveNoFilterLower, VethLikeLowerTakesEveryGroup) {
  PortHarness h(/*unicast_filter=*/false);
  DeviceId a = h.add("a", Mode::kBridge, 1);
  (void)a;
  Outcome o = h.rx(frame(kGroup, kOutside));
  EXPECT_EQ(o.drop, DropReason::kNone);  // the lower went promiscuous
  EXPECT_TRUE(o.devices.empty());        // but a never joined the group
  EXPECT_TRUE(o.queued);
}

TEST(ReceiveSource, TwoSourceDevicesBothGetCopies) {
  PortHarness h;
  h.add("s1", Mode::kSource, 1, true, 0, {kOutside});
  h.add("s2", Mode::kSource, 2, true, 0, {kOutside, kOutside2});
  EXPECT_EQ(h.rx(frame(kLowerMac, kOutside)).devices, names({"s1", "s2"}));
  EXPECT_EQ(h.rx(frame(kLowerMac, kOutside2)).devices, names({"s2"}));
}

TEST(ReceiveSource, SourceDevicesNeverGetFloods) {
  PortHarness h;
  DeviceId s = h.add("s1", Mode::kSource, 1, true, 0, {kOutside});
  DeviceChange c;
  c.allmulti = true;
  ASSERT_TRUE(h.port().change_device(s, c).ok());
  EXPECT_TRUE(h.rx(frame(kBcast, kOutside2)).devices.empty());
}

}  // namespace
}  // namespace umacvlan::core::testing
