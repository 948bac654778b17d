// Needs root. Every test works in network namespaces of its own
// (`ip netns add umv-nl-PID-N`), removed again in the fixture's TearDown,
// also when the test fails; iproute2 is only ever run with `-n` of those.
#include "io/netlink.h"

#include <gtest/gtest.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/io_test_util.h"

namespace umacvlan::io {
namespace {

using Mac = std::array<uint8_t, 6>;

using testing::capture;
using testing::sh;

std::string mac_str(const Mac& m) {
  char s[18];
  std::snprintf(s, sizeof(s), "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
  return s;
}

// One namespace with IPv6 on (the tests look for its groups), deleted when
// this goes away.
struct TestNetns : testing::ScopedNetns {
  TestNetns() : ScopedNetns(/*ipv6=*/true) {}
};

class RtNetlinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root";
    ASSERT_TRUE(a_.ok());
    ASSERT_EQ(a_.ip("link add vA type veth peer name vB"), 0);
    ns_ = a_.open();
    ASSERT_TRUE(ns_.valid());
    ASSERT_EQ(RtNetlink::open(ns_, &rtnl_), 0);
  }
  TestNetns a_;
  NetnsFd ns_;
  RtNetlink rtnl_;
};

TEST_F(RtNetlinkTest, GetLinkByNameAndIndex) {
  const auto want = a_.link("vA");
  ASSERT_FALSE(want.is_null());
  LinkInfo l;
  ASSERT_EQ(rtnl_.get_link("vA", &l), 0) << rtnl_.last_error();
  EXPECT_EQ(l.name, "vA");
  EXPECT_EQ(l.ifindex, want["ifindex"].get<int>());
  EXPECT_TRUE(l.has_mac);
  EXPECT_EQ(mac_str(l.mac), want["address"].get<std::string>());
  EXPECT_EQ(l.mtu, 1500u);
  EXPECT_EQ(l.min_mtu, want["min_mtu"].get<uint32_t>());
  EXPECT_EQ(l.max_mtu, want["max_mtu"].get<uint32_t>());
  EXPECT_EQ(l.kind, "veth");
  EXPECT_EQ(l.type, ARPHRD_ETHER);
  EXPECT_TRUE(l.flags & IFF_BROADCAST);
  EXPECT_TRUE(l.flags & IFF_MULTICAST);
  EXPECT_FALSE(l.flags & IFF_UP);
  EXPECT_EQ(l.link_ifindex, a_.ifindex("vB")) << "IFLA_LINK of a veth is its peer";
  EXPECT_EQ(l.link_netnsid, -1);
  EXPECT_EQ(l.txqlen, 1000u);
  EXPECT_EQ(l.qdisc, want["qdisc"].get<std::string>());
  EXPECT_EQ(l.master, 0);

  LinkInfo by_index;
  ASSERT_EQ(rtnl_.get_link(l.ifindex, &by_index), 0) << rtnl_.last_error();
  EXPECT_EQ(by_index.name, "vA");
  EXPECT_EQ(by_index.mac, l.mac);
  EXPECT_EQ(by_index.mtu, l.mtu);
  EXPECT_EQ(by_index.kind, "veth");
  EXPECT_EQ(by_index.flags, l.flags);

  LinkInfo lo;
  ASSERT_EQ(rtnl_.get_link("lo", &lo), 0);
  EXPECT_EQ(lo.ifindex, 1);
  EXPECT_TRUE(lo.flags & IFF_LOOPBACK);
  EXPECT_EQ(lo.type, ARPHRD_LOOPBACK);
  EXPECT_EQ(lo.kind, "");
}

TEST_F(RtNetlinkTest, GetLinkOfMissingDeviceIsEnodev) {
  LinkInfo l;
  l.name = "untouched";
  EXPECT_EQ(rtnl_.get_link("nosuchdev0", &l), -ENODEV);
  EXPECT_EQ(rtnl_.get_link(9999, &l), -ENODEV);
  EXPECT_EQ(l.name, "untouched");
  EXPECT_EQ(rtnl_.get_link("", &l), -EINVAL);
  EXPECT_EQ(rtnl_.get_link(0, &l), -EINVAL);
}

TEST_F(RtNetlinkTest, GetLinkByAlternativeName) {
  const std::string alt = "an-alternative-name-longer-than-ifnamsiz";
  ASSERT_EQ(a_.ip("link property add dev vA altname " + alt), 0);
  LinkInfo l;
  ASSERT_EQ(rtnl_.get_link(alt, &l), 0) << rtnl_.last_error();
  EXPECT_EQ(l.name, "vA");
  EXPECT_EQ(rtnl_.get_link(alt + "-not", &l), -ENODEV);
  EXPECT_EQ(rtnl_.get_link(std::string(200, 'x'), &l), -EINVAL);
}

// IFLA_LINK_NETNSID: the peer lives elsewhere, under the id this namespace
// has for that one (the kernel assigns it when the pair is made).
TEST_F(RtNetlinkTest, VethPeerInAnotherNamespaceHasLinkNetnsid) {
  TestNetns b;
  ASSERT_TRUE(b.ok());
  ASSERT_EQ(a_.ip("link add xA type veth peer name xB netns " + b.name()), 0);
  LinkInfo l;
  ASSERT_EQ(rtnl_.get_link("xA", &l), 0);
  int32_t id = -1;
  ASSERT_EQ(rtnl_.get_nsid(b.open(), &id), 0);
  EXPECT_GE(id, 0);
  EXPECT_EQ(l.link_netnsid, id);
  EXPECT_EQ(l.link_ifindex, b.ifindex("xB"));
}

TEST_F(RtNetlinkTest, AliasAndMasterAreReported) {
  ASSERT_EQ(a_.ip("link add br0 type bridge"), 0);
  ASSERT_EQ(a_.ip("link set vA master br0 alias 'the uplink'"), 0);
  LinkInfo l;
  ASSERT_EQ(rtnl_.get_link("vA", &l), 0);
  EXPECT_EQ(l.alias, "the uplink");
  EXPECT_EQ(l.master, a_.ifindex("br0"));
  LinkInfo br;
  ASSERT_EQ(rtnl_.get_link("br0", &br), 0);
  EXPECT_EQ(br.kind, "bridge");
}

TEST_F(RtNetlinkTest, SetLinkUpMtuMacReadsBack) {
  const int idx = a_.ifindex("vA");
  const Mac mac{0x02, 0x12, 0x34, 0x56, 0x78, 0x9a};
  LinkChange c;
  c.up = true;
  c.mtu = 9000;
  c.mac = mac;
  ASSERT_EQ(rtnl_.set_link(idx, c), 0) << rtnl_.last_error();

  LinkInfo l;
  ASSERT_EQ(rtnl_.get_link(idx, &l), 0);
  EXPECT_TRUE(l.flags & IFF_UP);
  EXPECT_EQ(l.mtu, 9000u);
  EXPECT_EQ(l.mac, mac);
  const auto j = a_.link("vA");
  EXPECT_EQ(j["mtu"].get<uint32_t>(), 9000u);
  EXPECT_EQ(j["address"].get<std::string>(), "02:12:34:56:78:9a");

  LinkChange down;
  down.up = false;
  ASSERT_EQ(rtnl_.set_link(idx, down), 0);
  ASSERT_EQ(rtnl_.get_link(idx, &l), 0);
  EXPECT_FALSE(l.flags & IFF_UP);
  EXPECT_EQ(l.mtu, 9000u) << "fields not in the change stay";
  EXPECT_EQ(l.mac, mac);
}

TEST_F(RtNetlinkTest, SetLinkMtuAboveMaxIsEinvalAndChangesNothing) {
  const int idx = a_.ifindex("vA");
  LinkInfo before;
  ASSERT_EQ(rtnl_.get_link(idx, &before), 0);
  ASSERT_GT(before.max_mtu, 0u);
  LinkChange c;
  c.mtu = before.max_mtu + 1;
  c.mac = Mac{0x02, 0, 0, 0, 0x11, 0x11};
  c.up = true;
  EXPECT_EQ(rtnl_.set_link(idx, c), -EINVAL);
  EXPECT_FALSE(rtnl_.last_error().empty());
  const auto j = a_.link("vA");
  EXPECT_EQ(j["mtu"].get<uint32_t>(), before.mtu);
  EXPECT_EQ(j["address"].get<std::string>(), mac_str(before.mac));
  EXPECT_EQ(j["operstate"].get<std::string>(), "DOWN");

  LinkChange low;
  low.mtu = 10;
  EXPECT_EQ(rtnl_.set_link(idx, low), -EINVAL);
  EXPECT_EQ(a_.link("vA")["mtu"].get<uint32_t>(), before.mtu);
}

// The kernel sets the address, then fails on the MTU (a macvlan may not
// exceed its lower's): set_link puts the address back.
TEST_F(RtNetlinkTest, SetLinkRefusedByDriverRestoresAddress) {
  ASSERT_EQ(a_.ip("link add mv0 link vA type macvlan mode bridge"), 0);
  const int idx = a_.ifindex("mv0");
  LinkInfo before;
  ASSERT_EQ(rtnl_.get_link(idx, &before), 0);
  ASSERT_EQ(before.kind, "macvlan");
  ASSERT_EQ(before.link_ifindex, a_.ifindex("vA"));
  LinkChange c;
  c.mac = Mac{0x02, 0, 0, 0, 0x33, 0x33};
  c.mtu = 2000;  // within max_mtu, above the lower's 1500
  ASSERT_LE(*c.mtu, before.max_mtu);
  EXPECT_EQ(rtnl_.set_link(idx, c), -EINVAL);
  const auto j = a_.link("mv0");
  EXPECT_EQ(j["address"].get<std::string>(), mac_str(before.mac));
  EXPECT_EQ(j["mtu"].get<uint32_t>(), before.mtu);
}

TEST_F(RtNetlinkTest, SetLinkReturnsKernelErrno) {
  const int idx = a_.ifindex("vA");
  LinkChange c;
  c.mac = Mac{0x01, 0, 0x5e, 0, 0, 0x01};  // multicast: not a device address
  EXPECT_EQ(rtnl_.set_link(idx, c), -EADDRNOTAVAIL);
  EXPECT_FALSE(rtnl_.last_error().empty());
  LinkChange up;
  up.up = true;
  EXPECT_EQ(rtnl_.set_link(9999, up), -ENODEV);
}

TEST_F(RtNetlinkTest, ListLinksMatchesIproute2) {
  std::vector<LinkInfo> links;
  ASSERT_EQ(rtnl_.list_links(&links), 0) << rtnl_.last_error();
  EXPECT_EQ(links.size(), 3u);  // lo, vA, vB
  EXPECT_EQ(links.size(), a_.link_count());
  ASSERT_EQ(a_.ip("link add vC type veth peer name vD"), 0);
  ASSERT_EQ(rtnl_.list_links(&links), 0);
  ASSERT_EQ(links.size(), 5u);
  std::vector<std::string> names;
  for (const auto& l : links) names.push_back(l.name);
  std::vector<std::string> want;
  for (const auto& l : nlohmann::json::parse(capture("ip -n " + a_.name() + " -j link show"))) {
    want.push_back(l["ifname"].get<std::string>());
  }
  EXPECT_EQ(names, want);
}

TEST_F(RtNetlinkTest, DeleteLink) {
  const int idx = a_.ifindex("vA");
  ASSERT_EQ(rtnl_.delete_link(idx), 0) << rtnl_.last_error();
  EXPECT_TRUE(a_.link("vA").is_null());
  EXPECT_TRUE(a_.link("vB").is_null()) << "a veth goes with its peer";
  EXPECT_EQ(rtnl_.delete_link(idx), -ENODEV);
  EXPECT_EQ(rtnl_.delete_link(1), -EOPNOTSUPP) << "lo cannot be deleted";
}

TEST_F(RtNetlinkTest, MoveLinkRenamesInTheSameRequest) {
  TestNetns b;
  ASSERT_TRUE(b.ok());
  // The target already has a vA: a move without the rename would clash.
  ASSERT_EQ(b.ip("link add vA type veth peer name vZ"), 0);
  NetnsFd bns = b.open();
  const int idx = a_.ifindex("vA");
  ASSERT_EQ(rtnl_.move_link(idx, bns, "eth0"), 0) << rtnl_.last_error();
  EXPECT_TRUE(a_.link("vA").is_null());
  EXPECT_FALSE(b.link("eth0").is_null());
  EXPECT_FALSE(b.link("vA").is_null());
  // A name that exists there is refused, but 6.18 has moved the device
  // already, under its old name (callers clean up in both places).
  const int idx_b = a_.ifindex("vB");
  EXPECT_EQ(rtnl_.move_link(idx_b, bns, "vA"), -EEXIST);
  EXPECT_TRUE(!a_.link("vB").is_null() || !b.link("vB").is_null());
  EXPECT_EQ(rtnl_.move_link(idx_b, NetnsFd(), "x"), -EBADF);
}

TEST_F(RtNetlinkTest, RenameLink) {
  ASSERT_EQ(rtnl_.rename_link(a_.ifindex("vA"), "vC"), 0) << rtnl_.last_error();
  EXPECT_FALSE(a_.link("vC").is_null());
  EXPECT_EQ(rtnl_.rename_link(a_.ifindex("vC"), "vB"), -EEXIST);
  EXPECT_EQ(rtnl_.rename_link(a_.ifindex("vC"), "much-too-long-name"), -EINVAL);
}

TEST_F(RtNetlinkTest, AddressesAndRoutesMatchIproute2) {
  const int idx = a_.ifindex("vA");
  ASSERT_EQ(a_.ip("link set vB up"), 0);
  LinkChange up;
  up.up = true;
  ASSERT_EQ(rtnl_.set_link(idx, up), 0);
  IpAddress v4;
  v4.family = AF_INET;
  v4.addr = {10, 9, 0, 2};
  v4.prefix = 24;
  v4.ifindex = idx;
  ASSERT_EQ(rtnl_.add_address(v4), 0) << rtnl_.last_error();
  EXPECT_EQ(rtnl_.add_address(v4), -EEXIST);
  IpAddress v6;
  v6.family = AF_INET6;
  v6.addr = {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
  v6.prefix = 64;
  v6.ifindex = idx;
  ASSERT_EQ(rtnl_.add_address(v6), 0) << rtnl_.last_error();
  const std::string shown = capture("ip -n " + a_.name() + " addr show dev vA");
  EXPECT_NE(shown.find("inet 10.9.0.2/24 brd 10.9.0.255"), std::string::npos) << shown;
  EXPECT_NE(shown.find("inet6 fd00::2/64"), std::string::npos) << shown;
  std::vector<IpAddress> addrs;
  ASSERT_GE(rtnl_.list_addresses(AF_UNSPEC, idx, &addrs), 2);
  int found = 0;
  for (const auto& a : addrs) {
    EXPECT_EQ(a.ifindex, idx);
    if (a.family == AF_INET && a.addr == v4.addr && a.prefix == 24) ++found;
    if (a.family == AF_INET6 && a.addr == v6.addr && a.prefix == 64) ++found;
  }
  EXPECT_EQ(found, 2);
  ASSERT_EQ(rtnl_.list_addresses(AF_INET, idx, &addrs), 1);

  IpRoute r;
  r.family = AF_INET;
  r.dst = {10, 20, 0, 0};
  r.dst_prefix = 16;
  r.has_gateway = true;
  r.gateway = {10, 9, 0, 1};
  r.ifindex = idx;
  ASSERT_EQ(rtnl_.add_route(r), 0) << rtnl_.last_error();
  IpRoute def;
  def.family = AF_INET;
  def.has_gateway = true;
  def.gateway = {10, 9, 0, 1};
  def.ifindex = idx;
  ASSERT_EQ(rtnl_.add_route(def), 0) << rtnl_.last_error();
  const std::string routes = capture("ip -n " + a_.name() + " route show");
  EXPECT_NE(routes.find("10.20.0.0/16 via 10.9.0.1 dev vA"), std::string::npos) << routes;
  EXPECT_NE(routes.find("default via 10.9.0.1 dev vA"), std::string::npos) << routes;
  std::vector<IpRoute> table;
  ASSERT_GT(rtnl_.list_routes(AF_INET, &table), 0);
  bool saw_default = false, saw_net = false;
  for (const auto& t : table) {
    if (t.table != RT_TABLE_MAIN) continue;
    saw_default |=
        t.dst_prefix == 0 && t.has_gateway && t.gateway == def.gateway && t.ifindex == idx;
    saw_net |= t.dst_prefix == 16 && t.dst == r.dst;
  }
  EXPECT_TRUE(saw_default);
  EXPECT_TRUE(saw_net);
  IpRoute bad = r;
  bad.gateway = {192, 168, 99, 1};  // not on any link
  bad.dst = {10, 30, 0, 0};
  EXPECT_EQ(rtnl_.add_route(bad), -ENETUNREACH);
}

TEST_F(RtNetlinkTest, GetNsidAssignsOnceAndOwnNamespaceIsMinusOne) {
  TestNetns b;
  ASSERT_TRUE(b.ok());
  const NetnsFd nb = b.open();
  EXPECT_EQ(capture("ip -n " + a_.name() + " netns list-id"), "") << "no ids before";
  int32_t id = -7;
  ASSERT_EQ(rtnl_.get_nsid(nb, &id), 0) << rtnl_.last_error();
  EXPECT_GE(id, 0);
  EXPECT_NE(capture("ip -n " + a_.name() + " netns list-id")
                .find("nsid " + std::to_string(id) + " (iproute2 netns name: " + b.name() + ")"),
            std::string::npos);
  int32_t again = -7;
  ASSERT_EQ(rtnl_.get_nsid(nb, &again), 0);
  EXPECT_EQ(again, id);
  int32_t self = -7;
  ASSERT_EQ(rtnl_.get_nsid(ns_, &self), 0);
  EXPECT_EQ(self, -1);
}

// Checked against the thread's namespace, not the process's: the same
// ifindex in two namespaces with different groups.
TEST_F(RtNetlinkTest, DevMcastShowsGroupsOfTheDeviceInItsNamespace) {
  ASSERT_EQ(a_.ip("link set vA up"), 0);
  ASSERT_EQ(a_.ip("maddr add 01:00:5e:01:02:03 dev vA"), 0);
  const int idx = a_.ifindex("vA");
  std::vector<Mac> groups;
  ASSERT_EQ(read_dev_mcast(ns_, idx, &groups), 0);
  auto has = [](const std::vector<Mac>& v, const Mac& m) {
    return std::find(v.begin(), v.end(), m) != v.end();
  };
  EXPECT_TRUE(has(groups, Mac{0x01, 0x00, 0x5e, 0x00, 0x00, 0x01}));
  EXPECT_TRUE(has(groups, Mac{0x33, 0x33, 0x00, 0x00, 0x00, 0x01}));
  EXPECT_TRUE(has(groups, Mac{0x01, 0x00, 0x5e, 0x01, 0x02, 0x03}));

  TestNetns b;
  ASSERT_TRUE(b.ok());
  ASSERT_EQ(b.ip("link add vA type veth peer name vB"), 0);
  ASSERT_EQ(b.ifindex("vA"), idx) << "same ifindex in both namespaces, by construction";
  ASSERT_EQ(b.ip("link set vA up"), 0);
  ASSERT_EQ(b.ip("maddr add 01:00:5e:04:05:06 dev vA"), 0);
  std::vector<Mac> in_b;
  ASSERT_EQ(read_dev_mcast(b.open(), idx, &in_b), 0);
  EXPECT_TRUE(has(in_b, Mac{0x01, 0x00, 0x5e, 0x04, 0x05, 0x06}));
  EXPECT_FALSE(has(in_b, Mac{0x01, 0x00, 0x5e, 0x01, 0x02, 0x03}));
  ASSERT_EQ(read_dev_mcast(ns_, idx, &groups), 0);
  EXPECT_FALSE(has(groups, Mac{0x01, 0x00, 0x5e, 0x04, 0x05, 0x06}));

  ASSERT_EQ(a_.ip("maddr del 01:00:5e:01:02:03 dev vA"), 0);
  ASSERT_EQ(read_dev_mcast(ns_, idx, &groups), 0);
  EXPECT_FALSE(has(groups, Mac{0x01, 0x00, 0x5e, 0x01, 0x02, 0x03}));
  EXPECT_TRUE(has(groups, Mac{0x01, 0x00, 0x5e, 0x00, 0x00, 0x01}));

  EXPECT_EQ(read_dev_mcast(ns_, 9999, &groups), -ENODEV);
}

// All devices in one read; an unchanged file is not parsed again; the CPU
// time is reported whether or not the thread had to enter the namespace.
TEST_F(RtNetlinkTest, DevMcastAllReadsEveryDeviceAndReportsItsCpuTime) {
  const ino_t home = current_netns_inode();
  ASSERT_EQ(a_.ip("link set vA up"), 0);
  ASSERT_EQ(a_.ip("maddr add 01:00:5e:01:02:03 dev vA"), 0);
  const int idx = a_.ifindex("vA");
  std::map<int, std::vector<Mac>> all;
  std::string last;
  std::chrono::nanoseconds cpu{-1};
  ASSERT_EQ(read_dev_mcast_all(ns_, &all, &last, &cpu), 0);
  ASSERT_EQ(all.count(idx), 1u);
  EXPECT_NE(std::find(all[idx].begin(), all[idx].end(), Mac{0x01, 0x00, 0x5e, 0x01, 0x02, 0x03}),
            all[idx].end());
  EXPECT_GT(cpu.count(), 0);

  all.clear();
  cpu = std::chrono::nanoseconds{-1};
  EXPECT_EQ(read_dev_mcast_all(ns_, &all, &last, &cpu), 1) << "nothing changed";
  EXPECT_TRUE(all.empty());
  EXPECT_GT(cpu.count(), 0);

  ASSERT_EQ(a_.ip("maddr del 01:00:5e:01:02:03 dev vA"), 0);
  ASSERT_EQ(read_dev_mcast_all(ns_, &all, &last), 0);
  EXPECT_EQ(std::find(all[idx].begin(), all[idx].end(), Mac{0x01, 0x00, 0x5e, 0x01, 0x02, 0x03}),
            all[idx].end());

  // The thread is back in its own namespace after reading another's.
  EXPECT_EQ(current_netns_inode(), home);
  // This thread's own namespace: no setns(), the cost is still there.
  cpu = std::chrono::nanoseconds{-1};
  ASSERT_GE(read_dev_mcast_all(current_netns(), &all, nullptr, &cpu), 0);
  EXPECT_GT(cpu.count(), 0);
}

// ---------------------------------------------------------------- monitor

class LinkMonitorTest : public RtNetlinkTest {
 protected:
  void SetUp() override {
    RtNetlinkTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    ASSERT_EQ(LinkMonitor::open(ns_, &monitor_), 0);
    ASSERT_GE(monitor_.fd(), 0);
  }

  // Reads events until one matches or timeout passes; the match, or nullptr.
  std::unique_ptr<LinkEvent> wait_for(const std::function<bool(const LinkEvent&)>& match,
                                      std::chrono::milliseconds timeout = std::chrono::seconds(3)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::vector<LinkEvent> events;
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{monitor_.fd(), POLLIN, 0};
      ::poll(&p, 1, 50);
      const int n = monitor_.read_events(&events);
      EXPECT_GE(n, 0);
      if (n < 0) return nullptr;
      EXPECT_EQ(static_cast<std::size_t>(n), events.size());
      for (const auto& e : events) {
        if (match(e)) return std::make_unique<LinkEvent>(e);
      }
    }
    return nullptr;
  }

  LinkMonitor monitor_;
};

TEST_F(LinkMonitorTest, SeesLinkUpAndDeletion) {
  const int idx = a_.ifindex("vA");
  std::vector<LinkEvent> events;
  EXPECT_EQ(monitor_.read_events(&events), 0) << "nothing happened yet";
  ASSERT_EQ(a_.ip("link set vA up"), 0);
  auto up = wait_for([&](const LinkEvent& e) {
    return !e.deleted && e.link.ifindex == idx && (e.link.flags & IFF_UP);
  });
  ASSERT_NE(up, nullptr);
  EXPECT_EQ(up->nsid, -1);
  EXPECT_EQ(up->link.name, "vA");
  EXPECT_EQ(up->link.kind, "veth");

  ASSERT_EQ(a_.ip("link set vA mtu 4000"), 0);
  auto mtu =
      wait_for([&](const LinkEvent& e) { return e.link.ifindex == idx && e.link.mtu == 4000; });
  EXPECT_NE(mtu, nullptr);

  ASSERT_EQ(a_.ip("link del vA"), 0);
  auto del = wait_for([&](const LinkEvent& e) { return e.deleted && e.link.ifindex == idx; });
  ASSERT_NE(del, nullptr);
  EXPECT_EQ(del->link.name, "vA");
  EXPECT_EQ(del->nsid, -1);
}

TEST_F(LinkMonitorTest, EventFromSecondNamespaceCarriesItsNsid) {
  TestNetns b;
  ASSERT_TRUE(b.ok());
  ASSERT_EQ(b.ip("link add bA type veth peer name bB"), 0);
  const int idx = b.ifindex("bA");
  int32_t id = -1;
  ASSERT_EQ(rtnl_.get_nsid(b.open(), &id), 0) << rtnl_.last_error();
  ASSERT_GE(id, 0);
  ASSERT_EQ(b.ip("link set bA up"), 0);
  auto ev =
      wait_for([&](const LinkEvent& e) { return e.link.name == "bA" && (e.link.flags & IFF_UP); });
  ASSERT_NE(ev, nullptr);
  EXPECT_EQ(ev->nsid, id);
  EXPECT_EQ(ev->link.ifindex, idx) << "the ifindex in its own namespace";
  EXPECT_FALSE(ev->deleted);

  ASSERT_EQ(b.ip("link del bA"), 0);
  auto del = wait_for([&](const LinkEvent& e) { return e.deleted && e.link.name == "bA"; });
  ASSERT_NE(del, nullptr);
  EXPECT_EQ(del->nsid, id);
}

// set_link() refuses an out-of-range MTU before the kernel would have set
// the address, so no listener (the daemon's own monitor) sees it change.
TEST_F(LinkMonitorTest, RefusedSetLinkShowsNoTransientChange) {
  const int idx = a_.ifindex("vA");
  LinkInfo before;
  ASSERT_EQ(rtnl_.get_link(idx, &before), 0);
  LinkChange c;
  c.mac = Mac{0x02, 0, 0, 0, 0x44, 0x44};
  c.mtu = before.max_mtu + 1;
  EXPECT_EQ(rtnl_.set_link(idx, c), -EINVAL);
  // A change that is always announced (an alias is only while up) marks the end.
  ASSERT_EQ(a_.ip("link set vA mtu 1400"), 0);
  std::vector<LinkEvent> seen;
  auto marker = wait_for([&](const LinkEvent& e) {
    seen.push_back(e);
    return e.link.ifindex == idx && e.link.mtu == 1400;
  });
  ASSERT_NE(marker, nullptr);
  for (const auto& e : seen) {
    if (e.link.ifindex == idx) {
      EXPECT_EQ(mac_str(e.link.mac), mac_str(before.mac));
    }
  }
}

// Kernel behaviour get_nsid() exists for: without an id, nothing is heard.
TEST_F(LinkMonitorTest, NamespaceWithoutIdIsNotHeard) {
  TestNetns b;
  ASSERT_TRUE(b.ok());
  ASSERT_EQ(b.ip("link add bA type veth peer name bB"), 0);
  ASSERT_EQ(b.ip("link set bA up"), 0);
  EXPECT_EQ(wait_for([](const LinkEvent& e) { return e.link.name == "bA"; },
                     std::chrono::milliseconds(300)),
            nullptr);
  int32_t id = -1;
  ASSERT_EQ(rtnl_.get_nsid(b.open(), &id), 0);
  ASSERT_EQ(b.ip("link set bA down"), 0);
  EXPECT_NE(wait_for([](const LinkEvent& e) { return e.link.name == "bA"; }), nullptr);
}

// A namespace may hold an id for itself; its own events are still -1. (6.18
// with upstream 88b126b39f97 no longer tags local events at all; older
// kernels tag them with that id, which the monitor folds back to -1.)
TEST_F(LinkMonitorTest, OwnNamespaceWithAnIdOfItsOwnIsStillMinusOne) {
  ASSERT_EQ(a_.ip("netns set " + a_.name() + " 7"), 0);
  ASSERT_NE(capture("ip -n " + a_.name() + " netns list-id").find("nsid 7"), std::string::npos);
  ASSERT_EQ(a_.ip("link set vA up"), 0);
  auto ev =
      wait_for([](const LinkEvent& e) { return e.link.name == "vA" && (e.link.flags & IFF_UP); });
  ASSERT_NE(ev, nullptr);
  EXPECT_EQ(ev->nsid, -1);
}

// The devices of a dying namespace send no RTM_DELLINK to other namespaces;
// the monitor reports the namespace itself as gone.
TEST_F(LinkMonitorTest, DeadNamespaceIsReported) {
  auto b = std::make_unique<TestNetns>();
  ASSERT_TRUE(b->ok());
  ASSERT_EQ(b->ip("link add bA type veth peer name bB"), 0);
  int32_t id = -1;
  ASSERT_EQ(rtnl_.get_nsid(b->open(), &id), 0);
  ASSERT_GE(id, 0);
  b.reset();  // ip netns del
  std::vector<LinkEvent> seen;
  auto gone = wait_for([&](const LinkEvent& e) {
    seen.push_back(e);
    return e.deleted && e.nsid == id && e.link.ifindex == 0;
  });
  ASSERT_NE(gone, nullptr);
  for (const auto& e : seen) {
    EXPECT_FALSE(e.deleted && e.link.name == "bA") << "kernel now sends RTM_DELLINK: revisit";
  }
}

TEST_F(LinkMonitorTest, OverrunIsReportedAsEnobufs) {
  const int tiny = 1;  // the kernel rounds it up to its minimum
  ASSERT_EQ(::setsockopt(monitor_.fd(), SOL_SOCKET, SO_RCVBUF, &tiny, sizeof(tiny)), 0);
  for (int i = 0; i < 10; ++i) {
    ASSERT_EQ(a_.ip(std::string("link set vA ") + (i % 2 == 0 ? "up" : "down")), 0);
  }
  std::vector<LinkEvent> events;
  EXPECT_EQ(monitor_.read_events(&events), -ENOBUFS);
  // Then it goes on: the next state change is read normally.
  int n = 0;
  while ((n = monitor_.read_events(&events)) > 0) {
  }
  EXPECT_EQ(n, 0);
  ASSERT_EQ(a_.ip("link set vA mtu 1400"), 0);
  EXPECT_NE(wait_for([](const LinkEvent& e) { return e.link.name == "vA" && e.link.mtu == 1400; }),
            nullptr);
}

}  // namespace
}  // namespace umacvlan::io
