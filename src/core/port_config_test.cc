// Creating, changing and deleting devices: one case per row of the spec's
// "Creating, changing, deleting" table, with the kernel's errno.
#include <gtest/gtest.h>

#include <functional>

#include "core/port_test_util.h"

namespace umacvlan::core::testing {
namespace {

DeviceSpec spec(const char* name, Mode mode, std::optional<MacAddress> addr = std::nullopt) {
  DeviceSpec s;
  s.name = name;
  s.mode = mode;
  s.address = addr;
  return s;
}

struct AddRow {
  const char* name;
  std::function<DeviceSpec()> make;
  int err;
  std::function<void(PortHarness&)> setup = nullptr;
};

class AddTable : public ::testing::TestWithParam<AddRow> {};

TEST_P(AddTable, ErrnoAndNothingChangedOnError) {
  const AddRow& row = GetParam();
  PortHarness h;
  if (row.setup) row.setup(h);
  const std::size_t before = h.port().device_count();
  DeviceId id = kNoDevice;
  Status s = h.port().add_device(row.make(), 7, &id);
  EXPECT_EQ(s.err, row.err) << s.message;
  if (row.err != 0) {
    EXPECT_FALSE(s.message.empty());
    EXPECT_EQ(h.port().device_count(), before);
  } else {
    EXPECT_EQ(h.port().device_count(), before + 1);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Create, AddTable,
    ::testing::Values(
        AddRow{"bridge_ok", [] { return spec("a", Mode::kBridge); }, 0},
        AddRow{"private_ok", [] { return spec("a", Mode::kPrivate); }, 0},
        AddRow{"vepa_ok", [] { return spec("a", Mode::kVepa); }, 0},
        AddRow{"source_ok", [] { return spec("a", Mode::kSource); }, 0},
        AddRow{"passthru_ok_on_empty_port", [] { return spec("a", Mode::kPassthru); }, 0},
        AddRow{"multicast_address_refused",
               [] { return spec("a", Mode::kBridge, mac("01:00:00:00:00:01")); }, EADDRNOTAVAIL},
        AddRow{"broadcast_address_refused", [] { return spec("a", Mode::kBridge, kBcast); },
               EADDRNOTAVAIL},
        AddRow{"zero_address_refused",
               [] { return spec("a", Mode::kBridge, mac("00:00:00:00:00:00")); }, EADDRNOTAVAIL},
        AddRow{"lower_mac_accepted_at_create", [] { return spec("a", Mode::kBridge, kLowerMac); },
               0},
        AddRow{"mtu_above_lower_refused",
               [] {
                 auto s = spec("a", Mode::kBridge);
                 s.mtu = 1501;
                 return s;
               },
               EINVAL},
        AddRow{"mtu_equal_lower_ok",
               [] {
                 auto s = spec("a", Mode::kBridge);
                 s.mtu = 1500;
                 return s;
               },
               0},
        AddRow{"mtu_below_68_refused",
               [] {
                 auto s = spec("a", Mode::kBridge);
                 s.mtu = 67;
                 return s;
               },
               EINVAL},
        AddRow{"mtu_68_ok",
               [] {
                 auto s = spec("a", Mode::kBridge);
                 s.mtu = 68;
                 return s;
               },
               0},
        AddRow{"passthru_on_port_with_devices_refused", [] { return spec("b", Mode::kPassthru); },
               EINVAL, [](PortHarness& h) { h.add("a", Mode::kBridge, 1, false); }},
        AddRow{"device_after_passthru_refused", [] { return spec("b", Mode::kBridge); }, EINVAL,
               [](PortHarness& h) { h.add("a", Mode::kPassthru, 0, false); }},
        AddRow{"second_passthru_refused", [] { return spec("b", Mode::kPassthru); }, EINVAL,
               [](PortHarness& h) { h.add("a", Mode::kPassthru, 0, false); }},
        AddRow{"nopromisc_without_passthru_refused",
               [] {
                 auto s = spec("a", Mode::kBridge);
                 s.flags = kFlagNoPromisc;
                 return s;
               },
               EINVAL},
        AddRow{"nopromisc_with_passthru_ok",
               [] {
                 auto s = spec("a", Mode::kPassthru);
                 s.flags = kFlagNoPromisc;
                 return s;
               },
               0},
        // The spec said iproute2 refuses this; the kernel (6.18) and iproute2
        // 6.1 accept it and show "mode vepa nodst". The kernel wins.
        AddRow{"nodst_without_source_accepted",
               [] {
                 auto s = spec("a", Mode::kVepa);
                 s.flags = kFlagNoDst;
                 return s;
               },
               0},
        AddRow{"nodst_with_source_ok",
               [] {
                 auto s = spec("a", Mode::kSource);
                 s.flags = kFlagNoDst;
                 return s;
               },
               0},
        AddRow{"unknown_flag_refused",
               [] {
                 auto s = spec("a", Mode::kSource);
                 s.flags = 4;
                 return s;
               },
               EINVAL},
        AddRow{"macaddr_on_bridge_refused",
               [] {
                 auto s = spec("a", Mode::kBridge);
                 s.macaddr = {SourceOp::kAdd, {kOutside}};
                 return s;
               },
               EINVAL},
        AddRow{"macaddr_on_default_mode_refused",
               [] {
                 DeviceSpec s;
                 s.name = "a";
                 s.macaddr = {SourceOp::kAdd, {kOutside}};
                 return s;
               },
               EINVAL},
        AddRow{"macaddr_on_source_ok",
               [] {
                 auto s = spec("a", Mode::kSource);
                 s.macaddr = {SourceOp::kAdd, {kOutside}};
                 return s;
               },
               0},
        AddRow{"multicast_macaddr_refused",
               [] {
                 auto s = spec("a", Mode::kSource);
                 s.macaddr = {SourceOp::kAdd, {kGroup}};
                 return s;
               },
               EADDRNOTAVAIL}),
    [](const auto& info) { return info.param.name; });

TEST(Create, DefaultsAreVepaRandomLocalMacLowerMtuDefaultQueue) {
  PortHarness h;
  DeviceSpec s;
  s.name = "a";
  DeviceId id;
  ASSERT_TRUE(h.port().add_device(s, 0xfffffffffffULL, &id).ok());
  const Device* d = h.port().device(id);
  EXPECT_EQ(d->mode, Mode::kVepa);
  EXPECT_TRUE(d->mac.is_valid_unicast());
  EXPECT_TRUE(d->mac.is_locally_administered());
  EXPECT_EQ(d->mtu, 1500u);
  EXPECT_FALSE(d->up);
  EXPECT_EQ(d->bcqueuelen, kDefaultBcQueueLen);
  EXPECT_EQ(h.port().used_bcqueuelen(), kDefaultBcQueueLen);
  EXPECT_EQ(h.port().bclim(), kDefaultBcCutoff);
}

TEST(Create, RandomMacComesFromTheGivenBits) {
  PortHarness h;
  DeviceSpec s;
  s.name = "a";
  DeviceId a, b;
  ASSERT_TRUE(h.port().add_device(s, 0x1111, &a).ok());
  s.name = "b";
  ASSERT_TRUE(h.port().add_device(s, 0x2222, &b).ok());
  EXPECT_NE(h.mac_of(a), h.mac_of(b));
  EXPECT_EQ(h.mac_of(a), MacAddress::random_local(0x1111));
}

TEST(Create, PassthruTakesTheLowerMac) {
  PortHarness h;
  DeviceSpec s = spec("pt", Mode::kPassthru, mac("02:00:00:00:00:42"));
  DeviceId id;
  ASSERT_TRUE(h.port().add_device(s, 0, &id).ok());
  EXPECT_EQ(h.mac_of(id), kLowerMac);
  EXPECT_TRUE(h.port().passthru());
}

TEST(Create, SourceListFromMacaddrSet) {
  PortHarness h;
  DeviceId id = h.add("s", Mode::kSource, 1, false, 0, {kOutside2, kOutside, kOutside});
  EXPECT_EQ(h.port().device(id)->sources, (std::vector<MacAddress>{kOutside, kOutside2}));
}

TEST(Create, BcqueuelenRequestAndBclim) {
  PortHarness h;
  DeviceSpec s = spec("a", Mode::kBridge);
  s.bcqueuelen = 5;
  s.bclim = -1;
  DeviceId a;
  ASSERT_TRUE(h.port().add_device(s, 1, &a).ok());
  EXPECT_EQ(h.port().used_bcqueuelen(), 5u);
  EXPECT_EQ(h.port().bclim(), -1);
}

// ---- changes ----

struct ChangeRow {
  const char* name;
  std::function<void(PortHarness&)> setup;  // makes "a" (and maybe others)
  std::function<DeviceChange(PortHarness&)> change;
  int err;
};

class ChangeTable : public ::testing::TestWithParam<ChangeRow> {};

struct Snap {
  std::vector<std::tuple<std::string, MacAddress, Mode, std::uint16_t, bool, std::uint32_t,
                         std::uint32_t, std::vector<MacAddress>, std::vector<MacAddress>>>
      devs;
  MacAddress lower_mac;
  std::uint32_t used;
  std::int32_t bclim;
  LowerFilter filter;
  bool operator==(const Snap&) const = default;
};

Snap snap(const Port& p) {
  Snap s;
  for (DeviceId id : p.device_ids()) {
    const Device* d = p.device(id);
    s.devs.emplace_back(d->name, d->mac, d->mode, d->flags, d->up, d->mtu, d->bcqueuelen,
                        d->sources, d->multicast);
  }
  s.lower_mac = p.lower().mac;
  s.used = p.used_bcqueuelen();
  s.bclim = p.bclim();
  s.filter = p.lower_filter();
  return s;
}

TEST_P(ChangeTable, ErrnoAndNothingChangedOnError) {
  const ChangeRow& row = GetParam();
  PortHarness h;
  row.setup(h);
  const DeviceId a = h.port().find("a");
  ASSERT_NE(a, kNoDevice);
  const Snap before = snap(h.port());
  Status s = h.port().change_device(a, row.change(h));
  EXPECT_EQ(s.err, row.err) << s.message;
  if (row.err != 0) {
    EXPECT_FALSE(s.message.empty());
    EXPECT_TRUE(snap(h.port()) == before) << "a refused change modified the port";
  }
}

auto make(Mode mode, bool up = false, std::uint16_t flags = 0) {
  return [=](PortHarness& h) { h.add("a", mode, 1, up, flags); };
}
auto with_other(Mode mode, bool a_up, bool other_up) {
  return [=](PortHarness& h) {
    h.add("a", mode, 1, a_up);
    h.add("other", Mode::kBridge, 2, other_up);
  };
}
DeviceChange up_change() {
  DeviceChange c;
  c.up = true;
  return c;
}
DeviceChange addr_change(MacAddress m) {
  DeviceChange c;
  c.address = m;
  return c;
}
const MacAddress kOtherMac = MacAddress::from_u64(0x020000000002ULL);

INSTANTIATE_TEST_SUITE_P(
    Change, ChangeTable,
    ::testing::Values(
        ChangeRow{"mode_bridge_to_vepa", make(Mode::kBridge),
                  [](PortHarness&) {
                    DeviceChange c;
                    c.mode = Mode::kVepa;
                    return c;
                  },
                  0},
        ChangeRow{"mode_to_passthru_refused", make(Mode::kBridge),
                  [](PortHarness&) {
                    DeviceChange c;
                    c.mode = Mode::kPassthru;
                    return c;
                  },
                  EINVAL},
        ChangeRow{"mode_from_passthru_refused",
                  [](PortHarness& h) { h.add("a", Mode::kPassthru, 0); },
                  [](PortHarness&) {
                    DeviceChange c;
                    c.mode = Mode::kBridge;
                    return c;
                  },
                  EINVAL},
        ChangeRow{"passthru_to_passthru_ok", [](PortHarness& h) { h.add("a", Mode::kPassthru, 0); },
                  [](PortHarness&) {
                    DeviceChange c;
                    c.mode = Mode::kPassthru;
                    c.flags = kFlagNoPromisc;
                    return c;
                  },
                  0},
        ChangeRow{"macaddr_on_bridge_refused", make(Mode::kBridge),
                  [](PortHarness&) {
                    DeviceChange c;
                    c.macaddr = {SourceOp::kAdd, {kOutside}};
                    return c;
                  },
                  EINVAL},
        ChangeRow{"macaddr_with_mode_source_ok", make(Mode::kBridge),
                  [](PortHarness&) {
                    DeviceChange c;
                    c.mode = Mode::kSource;
                    c.macaddr = {SourceOp::kAdd, {kOutside}};
                    return c;
                  },
                  0},
        ChangeRow{"macaddr_with_mode_leaving_source_refused", make(Mode::kSource),
                  [](PortHarness&) {
                    DeviceChange c;
                    c.mode = Mode::kBridge;
                    c.macaddr = {SourceOp::kFlush, {}};
                    return c;
                  },
                  EINVAL},
        ChangeRow{"nopromisc_on_bridge_refused", make(Mode::kBridge),
                  [](PortHarness&) {
                    DeviceChange c;
                    c.flags = kFlagNoPromisc;
                    return c;
                  },
                  EINVAL},
        ChangeRow{"nodst_on_source_ok", make(Mode::kSource),
                  [](PortHarness&) {
                    DeviceChange c;
                    c.flags = kFlagNoDst;
                    return c;
                  },
                  0},
        ChangeRow{"up_with_lower_mac_refused",
                  [](PortHarness& h) {
                    DeviceSpec s = spec("a", Mode::kBridge, kLowerMac);
                    DeviceId id;
                    ASSERT_TRUE(h.port().add_device(s, 0, &id).ok());
                  },
                  [](PortHarness&) { return up_change(); }, EADDRINUSE},
        ChangeRow{"up_with_mac_of_up_sibling_refused",
                  [](PortHarness& h) {
                    h.add("other", Mode::kBridge, 2, true);
                    DeviceSpec s = spec("a", Mode::kPrivate, kOtherMac);
                    DeviceId id;
                    ASSERT_TRUE(h.port().add_device(s, 0, &id).ok());
                  },
                  [](PortHarness&) { return up_change(); }, EADDRINUSE},
        ChangeRow{"up_with_mac_of_down_sibling_ok",
                  [](PortHarness& h) {
                    h.add("other", Mode::kBridge, 2, false);
                    DeviceSpec s = spec("a", Mode::kPrivate, kOtherMac);
                    DeviceId id;
                    ASSERT_TRUE(h.port().add_device(s, 0, &id).ok());
                  },
                  [](PortHarness&) { return up_change(); }, 0},
        ChangeRow{"passthru_up_with_lower_mac_ok",
                  [](PortHarness& h) { h.add("a", Mode::kPassthru, 0, false); },
                  [](PortHarness&) { return up_change(); }, 0},
        ChangeRow{"address_of_up_device_to_sibling_refused", with_other(Mode::kBridge, true, true),
                  [](PortHarness&) { return addr_change(kOtherMac); }, EADDRINUSE},
        ChangeRow{"address_of_down_device_to_up_sibling_refused",
                  with_other(Mode::kBridge, false, true),
                  [](PortHarness&) { return addr_change(kOtherMac); }, EADDRINUSE},
        ChangeRow{"address_to_down_sibling_ok", with_other(Mode::kBridge, true, false),
                  [](PortHarness&) { return addr_change(kOtherMac); }, 0},
        ChangeRow{"address_to_lower_mac_refused", make(Mode::kBridge),
                  [](PortHarness&) { return addr_change(kLowerMac); }, EADDRINUSE},
        ChangeRow{"address_to_own_mac_ok", make(Mode::kBridge, true),
                  [](PortHarness& h) { return addr_change(h.mac_of(h.port().find("a"))); }, 0},
        ChangeRow{"address_multicast_refused", make(Mode::kBridge),
                  [](PortHarness&) { return addr_change(kGroup); }, EADDRNOTAVAIL},
        ChangeRow{"address_zero_refused", make(Mode::kBridge),
                  [](PortHarness&) { return addr_change(mac("00:00:00:00:00:00")); },
                  EADDRNOTAVAIL},
        ChangeRow{"mtu_above_lower_refused", make(Mode::kBridge),
                  [](PortHarness&) {
                    DeviceChange c;
                    c.mtu = 9000;
                    return c;
                  },
                  EINVAL},
        ChangeRow{"mtu_below_minimum_refused", make(Mode::kBridge),
                  [](PortHarness&) {
                    DeviceChange c;
                    c.mtu = 60;
                    return c;
                  },
                  EINVAL},
        ChangeRow{"mtu_ok", make(Mode::kBridge),
                  [](PortHarness&) {
                    DeviceChange c;
                    c.mtu = 1400;
                    return c;
                  },
                  0},
        ChangeRow{"valid_mode_with_bad_mtu_changes_nothing", make(Mode::kSource),
                  [](PortHarness&) {
                    DeviceChange c;
                    c.mode = Mode::kBridge;
                    c.bcqueuelen = 3;
                    c.bclim = 9;
                    c.mtu = 9000;
                    return c;
                  },
                  EINVAL},
        ChangeRow{"valid_address_with_busy_up_changes_nothing",
                  [](PortHarness& h) {
                    h.add("other", Mode::kBridge, 2, true);
                    DeviceSpec s = spec("a", Mode::kPrivate, mac("02:00:00:00:00:09"));
                    DeviceId id;
                    ASSERT_TRUE(h.port().add_device(s, 0, &id).ok());
                  },
                  [](PortHarness&) {
                    DeviceChange c;
                    c.mtu = 1000;
                    c.address = kLowerMac;
                    c.up = true;
                    return c;
                  },
                  EADDRINUSE}),
    [](const auto& info) { return info.param.name; });

TEST(Change, LeavingSourceEmptiesTheListButKeepsFlags) {
  PortHarness h;
  DeviceId s = h.add("s", Mode::kSource, 1, true, kFlagNoDst, {kOutside});
  DeviceChange c;
  c.mode = Mode::kBridge;
  ASSERT_TRUE(h.port().change_device(s, c).ok());
  EXPECT_TRUE(h.port().device(s)->sources.empty());
  EXPECT_EQ(h.port().device(s)->flags, kFlagNoDst);  // as the kernel shows: "mode bridge nodst"
}

TEST(Change, MacaddrOps) {
  PortHarness h;
  DeviceId s = h.add("s", Mode::kSource, 1, true);
  auto apply = [&](SourceOp op, std::vector<MacAddress> a) {
    DeviceChange c;
    c.macaddr = {op, std::move(a)};
    ASSERT_TRUE(h.port().change_device(s, c).ok());
  };
  apply(SourceOp::kAdd, {kOutside});
  apply(SourceOp::kAdd, {kOutside});  // adding twice keeps one entry
  EXPECT_EQ(h.port().device(s)->sources.size(), 1u);
  apply(SourceOp::kDel, {kOutside2});  // deleting an absent entry is fine
  EXPECT_EQ(h.port().device(s)->sources.size(), 1u);
  apply(SourceOp::kSet, {kOutside2, mac("02:00:00:00:aa:03")});
  EXPECT_EQ(h.port().device(s)->sources,
            (std::vector<MacAddress>{kOutside2, mac("02:00:00:00:aa:03")}));
  apply(SourceOp::kDel, {kOutside2});
  EXPECT_EQ(h.port().device(s)->sources, (std::vector<MacAddress>{mac("02:00:00:00:aa:03")}));
  apply(SourceOp::kFlush, {});
  EXPECT_TRUE(h.port().device(s)->sources.empty());
  EXPECT_TRUE(h.rx(frame(kLowerMac, mac("02:00:00:00:aa:03"))).devices.empty());
}

TEST(Change, PassthruAddressSetsTheLowerMac) {
  PortHarness h;
  DeviceId pt = h.add("pt", Mode::kPassthru, 0);
  ASSERT_TRUE(h.port().change_device(pt, addr_change(mac("02:00:00:00:77:77"))).ok());
  EXPECT_EQ(h.port().lower().mac, mac("02:00:00:00:77:77"));
  EXPECT_EQ(h.port().lower_perm_mac(), kLowerMac);
}

TEST(Change, PassthruFollowsTheLowerMac) {
  PortHarness h;
  DeviceId pt = h.add("pt", Mode::kPassthru, 0);
  h.port().lower_mac_changed(mac("02:00:00:00:66:66"));
  EXPECT_EQ(h.mac_of(pt), mac("02:00:00:00:66:66"));
}

TEST(Change, NonPassthruDoesNotFollowTheLowerMac) {
  PortHarness h;
  DeviceId a = h.add("a", Mode::kBridge, 1);
  h.port().lower_mac_changed(mac("02:00:00:00:66:66"));
  EXPECT_EQ(h.mac_of(a), MacAddress::from_u64(0x020000000001ULL));
}

TEST(Change, BclimLastSetterWins) {
  PortHarness h;
  DeviceId a = h.add("a", Mode::kBridge, 1);
  DeviceId b = h.add("b", Mode::kBridge, 2);
  DeviceChange c;
  c.bclim = 5;
  ASSERT_TRUE(h.port().change_device(a, c).ok());
  c.bclim = -3;
  ASSERT_TRUE(h.port().change_device(b, c).ok());
  EXPECT_EQ(h.port().bclim(), -3);
}

TEST(Change, UsedBcqueuelenIsTheLargestRequest) {
  PortHarness h;
  DeviceId a = h.add("a", Mode::kBridge, 1);
  DeviceId b = h.add("b", Mode::kBridge, 2);
  DeviceChange c;
  c.bcqueuelen = 5;
  ASSERT_TRUE(h.port().change_device(b, c).ok());
  EXPECT_EQ(h.port().used_bcqueuelen(), 1000u);  // a still asks for the default
  c.bcqueuelen = 3;
  ASSERT_TRUE(h.port().change_device(a, c).ok());
  EXPECT_EQ(h.port().used_bcqueuelen(), 5u);
  h.port().remove_device(b);
  EXPECT_EQ(h.port().used_bcqueuelen(), 3u);
}

// ---- lower events ----

TEST(Lower, MtuDropLowersDevices) {
  PortHarness h;
  DeviceId a = h.add("a", Mode::kBridge, 1);
  DeviceId b = h.add("b", Mode::kBridge, 2);
  DeviceChange c;
  c.mtu = 1200;
  ASSERT_TRUE(h.port().change_device(b, c).ok());
  h.port().lower_mtu_changed(1300);
  EXPECT_EQ(h.port().device(a)->mtu, 1300u);
  EXPECT_EQ(h.port().device(b)->mtu, 1200u);
  h.port().lower_mtu_changed(9000);
  EXPECT_EQ(h.port().device(a)->mtu, 1300u);  // a raise does not raise devices
}

TEST(Lower, CarrierIsRecorded) {
  PortHarness h;
  h.port().lower_carrier_changed(false);
  EXPECT_FALSE(h.port().lower().carrier);
}

TEST(Lower, FilterListsUpDevices) {
  PortHarness h;
  DeviceId a = h.add("a", Mode::kBridge, 1);
  h.add("b", Mode::kVepa, 2, false);
  h.subscribe(a, {kGroup});
  LowerFilter f = h.port().lower_filter();
  EXPECT_EQ(f.unicast, (std::vector<MacAddress>{h.mac_of(a)}));
  EXPECT_EQ(f.multicast, (std::vector<MacAddress>{kGroup}));
  EXPECT_FALSE(f.promisc);
  EXPECT_FALSE(f.allmulti);
}

TEST(Lower, PassthruMakesLowerPromiscUnlessNopromisc) {
  PortHarness h;
  h.add("pt", Mode::kPassthru, 0);
  EXPECT_TRUE(h.port().lower_filter().promisc);
  EXPECT_TRUE(h.port().lower_filter().unicast.empty());
  PortHarness h2;
  h2.add("pt", Mode::kPassthru, 0, true, kFlagNoPromisc);
  EXPECT_FALSE(h2.port().lower_filter().promisc);
}

TEST(Lower, PromiscAndAllmultiDevicesPropagate) {
  PortHarness h;
  DeviceId a = h.add("a", Mode::kBridge, 1);
  DeviceChange c;
  c.promisc = true;
  c.allmulti = true;
  ASSERT_TRUE(h.port().change_device(a, c).ok());
  EXPECT_TRUE(h.port().lower_filter().promisc);
  EXPECT_TRUE(h.port().lower_filter().allmulti);
  h.set_up(a, false);
  EXPECT_FALSE(h.port().lower_filter().promisc);
}

// ---- delete ----

TEST(Delete, FreesTheMacAndTheSlot) {
  PortHarness h;
  DeviceId a = h.add("a", Mode::kBridge, 1);
  h.port().remove_device(a);
  EXPECT_EQ(h.port().device(a), nullptr);
  EXPECT_EQ(h.port().find("a"), kNoDevice);
  DeviceId b = h.add("b", Mode::kBridge, 1);
  EXPECT_EQ(b, a);  // slot reused
  EXPECT_TRUE(h.port().device(b)->up);
}

TEST(Delete, RemovingPassthruAllowsOthers) {
  PortHarness h;
  DeviceId pt = h.add("pt", Mode::kPassthru, 0);
  h.port().remove_device(pt);
  EXPECT_FALSE(h.port().passthru());
  h.add("a", Mode::kBridge, 1);
  EXPECT_EQ(h.port().device_count(), 1u);
}

TEST(Delete, RemovingSourceDeviceClearsItsEntries) {
  PortHarness h;
  DeviceId s = h.add("s", Mode::kSource, 1, true, kFlagNoDst, {kOutside});
  h.port().remove_device(s);
  EXPECT_TRUE(h.rx(frame(kLowerMac, kOutside)).to_host);
}

TEST(Delete, UnknownIdIsHarmless) {
  PortHarness h;
  h.port().remove_device(99);
  EXPECT_EQ(h.port().device_count(), 0u);
  EXPECT_EQ(h.port().change_device(99, up_change()).err, ENODEV);
}

}  // namespace
}  // namespace umacvlan::core::testing

namespace umacvlan::core::testing {
namespace {

// What the lower's own stack must not get: exactly what receive() consumes.
TEST(LowerFilterConsumed, MatchesWhatReceiveConsumes) {
  PortHarness h;
  DeviceId b = h.add("b", Mode::kBridge, 1);
  DeviceId p = h.add("p", Mode::kPrivate, 2);
  h.add("s", Mode::kSource, 3, true, kFlagNoDst, {kOutside});
  h.add("sd", Mode::kSource, 4, false, kFlagNoDst, {kOutside2});
  h.add("down", Mode::kVepa, 5, false);
  LowerFilter f = h.port().lower_filter();
  EXPECT_EQ(f.consumed_sources, (std::vector<MacAddress>{kOutside, kOutside2}));
  EXPECT_EQ(f.consumed_destinations, (std::vector<MacAddress>{h.mac_of(b), h.mac_of(p)}));
  EXPECT_EQ(f.consumed_multicast_sources,
            (std::vector<MacAddress>{h.mac_of(p), MacAddress::from_u64(0x020000000003ULL)}));
  EXPECT_FALSE(f.consumed_unicast);
  // Cross-check with the decisions themselves.
  EXPECT_FALSE(h.rx(frame(kLowerMac, kOutside2)).to_host);  // nodst (device down)
  EXPECT_FALSE(h.rx(frame(h.mac_of(b), mac("02:00:00:00:aa:09"))).to_host);
  EXPECT_FALSE(h.rx(frame(kBcast, h.mac_of(p))).to_host);
  EXPECT_TRUE(
      h.rx(frame(MacAddress::from_u64(0x020000000005ULL), mac("02:00:00:00:aa:09"))).to_host);
}

TEST(LowerFilterConsumed, PassthruConsumesEveryUnicast) {
  PortHarness h;
  DeviceId pt = h.add("pt", Mode::kPassthru, 0, false);
  EXPECT_TRUE(h.port().lower_filter().consumed_unicast);
  EXPECT_FALSE(h.rx(frame(mac("02:00:00:00:99:99"), kOutside)).to_host);
  h.port().remove_device(pt);
  EXPECT_FALSE(h.port().lower_filter().consumed_unicast);
}

}  // namespace
}  // namespace umacvlan::core::testing

namespace umacvlan::core::testing {
namespace {

// umacvlan's own limits: refused with ENOSPC, the port unchanged.
TEST(Limits, DevicesPerLower) {
  Port p(PortHarness::make_lower(true), PortLimits{2, 1024});
  DeviceSpec spec;
  DeviceId id;
  ASSERT_TRUE(p.add_device(spec, 1, &id).ok());
  ASSERT_TRUE(p.add_device(spec, 2, &id).ok());
  const Status s = p.add_device(spec, 3, &id);
  EXPECT_EQ(s.err, ENOSPC);
  EXPECT_NE(s.message.find("limit"), std::string::npos) << s.message;
  EXPECT_EQ(p.device_count(), 2u);
  p.remove_device(id);
  EXPECT_TRUE(p.add_device(spec, 4, &id).ok());
}

TEST(Limits, SourcesPerDeviceOnAddAndChange) {
  Port p(PortHarness::make_lower(true), PortLimits{4096, 2});
  const MacAddress a = mac("02:00:00:00:aa:01"), b = mac("02:00:00:00:aa:02"),
                   c = mac("02:00:00:00:aa:03");
  DeviceSpec spec;
  spec.mode = Mode::kSource;
  spec.macaddr = {SourceOp::kSet, {a, b, c}};
  DeviceId id;
  EXPECT_EQ(p.add_device(spec, 1, &id).err, ENOSPC);
  EXPECT_EQ(p.device_count(), 0u);
  spec.macaddr = {SourceOp::kSet, {a, b, a}};  // duplicates count once
  ASSERT_TRUE(p.add_device(spec, 1, &id).ok());
  DeviceChange ch;
  ch.macaddr = {SourceOp::kAdd, {c}};
  EXPECT_EQ(p.change_device(id, ch).err, ENOSPC);
  EXPECT_EQ(p.device(id)->sources, (std::vector<MacAddress>{a, b}));
  ch.macaddr = {SourceOp::kAdd, {b}};  // already there: still 2
  EXPECT_TRUE(p.change_device(id, ch).ok());
  ch.macaddr = {SourceOp::kDel, {a}};
  ASSERT_TRUE(p.change_device(id, ch).ok());
  ch.macaddr = {SourceOp::kAdd, {c}};
  EXPECT_TRUE(p.change_device(id, ch).ok());
  EXPECT_EQ(p.device(id)->sources, (std::vector<MacAddress>{b, c}));
}

}  // namespace
}  // namespace umacvlan::core::testing
