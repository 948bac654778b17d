#include "cli/config_file.h"

#include <gtest/gtest.h>

#include <string>
#include <variant>

namespace umacvlan::cli {
namespace {

using core::MacAddress;
using core::Mode;

ConfigFile parse_ok(const std::string& text) {
  auto r = parse_config(text, "t.toml");
  if (const auto* e = std::get_if<ConfigError>(&r)) {
    ADD_FAILURE() << format_error("t.toml", *e);
    return {};
  }
  return std::get<ConfigFile>(r);
}

ConfigError parse_bad(const std::string& text) {
  auto r = parse_config(text, "t.toml");
  if (!std::holds_alternative<ConfigError>(r)) {
    ADD_FAILURE() << "accepted:\n" << text;
    return {};
  }
  return std::get<ConfigError>(r);
}

constexpr const char* kThree = R"([[device]]
name = "mv0"
lower = "eth0"
lower_netns = "red"
netns = "blue"
mode = "bridge"
mac = "02:00:00:00:00:01"
mtu = 1400
up = true
bcqueuelen = 100
spoofchk = true

[[device]]
name = "mv1"
lower = "eth0"

[[device]]
name = "src0"
lower = "eth1"
mode = "source"
nodst = true
source = ["02:00:00:00:00:0a", "02:00:00:00:00:0b"]
)";

TEST(ConfigFile, ReadsEveryKey) {
  const ConfigFile f = parse_ok(kThree);
  ASSERT_EQ(f.devices.size(), 3u);
  const DeviceSpec& a = f.devices[0];
  EXPECT_EQ(a.name, "mv0");
  EXPECT_EQ(a.lower, "eth0");
  EXPECT_EQ(a.lower_netns, "red");
  EXPECT_EQ(a.netns, "blue");
  EXPECT_EQ(a.home(), "blue");
  EXPECT_EQ(a.mode, Mode::kBridge);
  EXPECT_EQ(a.mac, MacAddress::parse("02:00:00:00:00:01"));
  EXPECT_EQ(a.mtu, 1400u);
  EXPECT_TRUE(a.up);
  EXPECT_EQ(a.bcqueuelen, 100u);
  EXPECT_TRUE(a.spoofchk);
  EXPECT_EQ(a.line, 1);
  const DeviceSpec& b = f.devices[1];
  EXPECT_EQ(b.mode, Mode::kVepa);  // ip's default
  EXPECT_TRUE(b.up);
  EXPECT_FALSE(b.mac);
  EXPECT_EQ(b.home(), "");
  EXPECT_EQ(b.line, 13);
  EXPECT_EQ(f.devices[2].sources.size(), 2u);
  EXPECT_TRUE(f.devices[2].nodst);
}

TEST(ConfigFile, HostaccessIsOneSettingOfAPort) {
  const ConfigFile f = parse_ok(R"([[device]]
name = "mv0"
lower = "eth0"
hostaccess = true

[[device]]
name = "mv1"
lower = "eth0"

[[device]]
name = "mv2"
lower = "eth0"
hostaccess = true
)");
  EXPECT_EQ(f.devices[0].hostaccess, true);
  EXPECT_FALSE(f.devices[1].hostaccess.has_value());  // the port as it is
  const ConfigError e = parse_bad(R"([[device]]
name = "mv0"
lower = "eth0"
hostaccess = true

[[device]]
name = "mv1"
lower = "eth0"
hostaccess = false
)");
  EXPECT_EQ(e.line, 6);
  EXPECT_EQ(e.reason,
            "device \"mv1\" sets hostaccess off on lower \"eth0\", device \"mv0\" on line 1 sets "
            "it on: it is one setting of the port");
  // Two lowers may differ.
  parse_ok(R"([[device]]
name = "mv0"
lower = "eth0"
hostaccess = true

[[device]]
name = "mv1"
lower = "eth1"
hostaccess = false
)");
}

TEST(ConfigFile, MacnatIsOneSettingOfAPort) {
  const ConfigFile f = parse_ok(R"([[device]]
name = "mv0"
lower = "eth0"
macnat = true
macnat_ageing = 60

[[device]]
name = "mv1"
lower = "eth0"

[[device]]
name = "mv2"
lower = "eth0"
macnat = true

[[device]]
name = "mv3"
lower = "eth1"
macnat = false
macnat_ageing = 1

[[device]]
name = "mv4"
lower = "eth2"
macnat_ageing = 86400
)");
  ASSERT_EQ(f.devices.size(), 5u);
  EXPECT_EQ(f.devices[0].macnat, true);
  EXPECT_EQ(f.devices[0].macnat_ageing, 60u);
  EXPECT_FALSE(f.devices[1].macnat.has_value());  // the port as it is
  EXPECT_FALSE(f.devices[1].macnat_ageing.has_value());
  EXPECT_EQ(f.devices[2].macnat, true);
  EXPECT_FALSE(f.devices[2].macnat_ageing.has_value());  // mv0 gives it
  EXPECT_EQ(f.devices[3].macnat, false);
  EXPECT_EQ(f.devices[3].macnat_ageing, 1u);
  EXPECT_FALSE(f.devices[4].macnat.has_value());
  EXPECT_EQ(f.devices[4].macnat_ageing, 86400u);

  ConfigError e = parse_bad(R"([[device]]
name = "mv0"
lower = "eth0"
macnat = true

[[device]]
name = "mv1"
lower = "eth0"
macnat = false
)");
  EXPECT_EQ(e.line, 6);
  EXPECT_EQ(e.column, 1);
  EXPECT_EQ(e.reason,
            "device \"mv1\" sets macnat off on lower \"eth0\", device \"mv0\" on line 1 sets it "
            "on: it is one setting of the port");
  e = parse_bad(R"([[device]]
name = "mv0"
lower = "eth0"
macnat = true
macnat_ageing = 60

[[device]]
name = "mv1"
lower = "eth0"
macnat_ageing = 120
)");
  EXPECT_EQ(e.line, 7);
  EXPECT_EQ(e.reason,
            "device \"mv1\" sets macnat_ageing 120 on lower \"eth0\", device \"mv0\" on line 1 "
            "sets it 60: it is one setting of the port");
  // One lower in two namespaces is two ports.
  parse_ok(R"([[device]]
name = "mv0"
lower = "eth0"
macnat = true
macnat_ageing = 60

[[device]]
name = "mv1"
lower = "eth0"
lower_netns = "red"
macnat = false
macnat_ageing = 120
)");
}

TEST(ConfigFile, EmptyFileHasNoDevices) {
  EXPECT_TRUE(parse_ok("# nothing yet\n").devices.empty());
}

TEST(ConfigFile, WrongModeNamesItsLineAndColumn) {
  const ConfigError e = parse_bad(R"([[device]]
name = "mv0"
lower = "eth0"
mode = "bridge"

[[device]]
name = "mv1"
lower = "eth0"
mode = "bridged"
)");
  EXPECT_EQ(e.line, 9);
  EXPECT_EQ(e.column, 8);
  EXPECT_NE(e.reason.find("not \"bridged\""), std::string::npos) << e.reason;
  EXPECT_EQ(format_error("f.toml", e).rfind("f.toml:9:8: ", 0), 0u);
}

TEST(ConfigFile, SyntaxErrorHasAPosition) {
  const ConfigError e = parse_bad("[[device]]\nname = \"mv0\nlower = \"eth0\"\n");
  EXPECT_EQ(e.line, 2);
  EXPECT_GT(e.column, 0);
}

TEST(ConfigFile, RefusesWhatIsWrong) {
  struct Case {
    const char* text;
    int line;
    const char* says;
  };
  const Case cases[] = {
      {"[[device]]\nname = \"a\"\nlower = \"e\"\ncolour = 1\n", 4, "unknown key \"colour\""},
      {"[[device]]\nname = \"a\"\nlower = \"e\"\ncolour = 1\n", 4,
       "hostaccess, macnat, macnat_ageing, source)"},
      {"[[device]]\nname = \"a\"\nlower = \"e\"\nhostaccess = \"on\"\n", 4,
       "\"hostaccess\" must be true or false, not a string"},
      {"[[device]]\nname = \"a\"\nlower = \"e\"\nmacnat = 1\n", 4,
       "\"macnat\" must be true or false, not an integer"},
      {"[[device]]\nname = \"a\"\nlower = \"e\"\nmacnat_ageing = \"300\"\n", 4,
       "\"macnat_ageing\" must be an integer, not a string"},
      {"[[device]]\nname = \"a\"\nlower = \"e\"\nmacnat_ageing = 300.0\n", 4,
       "\"macnat_ageing\" must be an integer, not a float"},
      {"[[device]]\nname = \"a\"\nlower = \"e\"\nmacnat_ageing = 0\n", 4,
       "\"macnat_ageing\" must be in [1, 86400] (seconds), not 0"},
      {"[[device]]\nname = \"a\"\nlower = \"e\"\nmacnat_ageing = 86401\n", 4,
       "\"macnat_ageing\" must be in [1, 86400] (seconds), not 86401"},
      {"[[device]]\nname = \"a\"\nlower = \"e\"\nmacnat_ageing = -5\n", 4, "not -5"},
      {"title = \"x\"\n", 1, "unknown key \"title\""},
      {"[device]\nname = \"a\"\nlower = \"e\"\n", 1, "[[device]]"},
      {"[[device]]\nname = \"a\"\nlower = \"e\"\nmtu = \"1400\"\n", 4,
       "\"mtu\" must be an integer"},
      {"[[device]]\nname = \"a\"\nlower = \"e\"\nup = 1\n", 4, "\"up\" must be true or false"},
      {"[[device]]\nname = \"a\"\nlower = \"e\"\nmtu = 67\n", 4, "\"mtu\" must be in [68, 65535]"},
      {"[[device]]\nname = \"a\"\nlower = \"e\"\nmac = \"02:00:00:00:00\"\n", 4, "not a MAC"},
      {"[[device]]\nname = \"a\"\nlower = \"e\"\nmac = \"01:00:5e:00:00:01\"\n", 4,
       "not a unicast"},
      {"[[device]]\nname = \"a\"\nlower = \"e\"\nbcqueuelen = -1\n", 4, "bcqueuelen"},
      {"[[device]]\nname = \"abcdefghijklmnop\"\nlower = \"e\"\n", 2, "not a valid interface"},
      {"[[device]]\nname = \"a/b\"\nlower = \"e\"\n", 2, "not a valid interface"},
      {"[[device]]\nlower = \"e\"\n", 1, "no \"name\""},
      {"[[device]]\nname = \"a\"\n", 1, "no \"lower\""},
      {"[[device]]\nname = \"a\"\nlower = \"e\"\nmode = \"bridge\"\nsource = []\n", 5,
       "only for mode \"source\""},
      {"[[device]]\nname = \"a\"\nlower = \"e\"\nnopromisc = true\n", 4,
       "only for mode \"passthru\""},
      {"[[device]]\nname = \"a\"\nlower = \"e\"\nmode = \"source\"\n"
       "source = [\"02:00:00:00:00:01\", \"02:00:00:00:00:01\"]\n",
       5, "twice"},
      {"[[device]]\nname = \"a\"\nlower = \"e\"\nmode = \"source\"\nsource = [1]\n", 5,
       "MAC address in quotes"},
      {"[[device]]\nname = \"a\"\nlower = \"e\"\n[[device]]\nname = \"a\"\nlower = \"f\"\n", 4,
       "already defined on line 1"},
      {"[[device]]\nname = \"a\"\nlower = \"e\"\nnetns = \"x\"\n"
       "[[device]]\nname = \"a\"\nlower = \"f\"\nlower_netns = \"/run/netns/x\"\n",
       5, "in namespace"},
      {"[[device]]\nname = \"a\"\nlower = \"e\"\nname = \"b\"\n", 4, ""},  // TOML: duplicate key
  };
  for (const Case& c : cases) {
    const ConfigError e = parse_bad(c.text);
    EXPECT_EQ(e.line, c.line) << c.text << e.reason;
    EXPECT_NE(e.reason.find(c.says), std::string::npos) << c.text << "\n-> " << e.reason;
  }
}

TEST(ConfigFile, BadMacnatAgeingNamesItsValue) {
  const ConfigError e = parse_bad("[[device]]\nname = \"a\"\nlower = \"e\"\nmacnat_ageing = 0\n");
  EXPECT_EQ(format_error("f.toml", e),
            "f.toml:4:17: \"macnat_ageing\" must be in [1, 86400] (seconds), not 0\n");
}

TEST(ConfigFile, SameNameInTwoNamespacesIsFine) {
  EXPECT_EQ(parse_ok("[[device]]\nname = \"a\"\nlower = \"e\"\nnetns = \"x\"\n"
                     "[[device]]\nname = \"a\"\nlower = \"e\"\nnetns = \"y\"\n")
                .devices.size(),
            2u);
}

TEST(ConfigFile, NetnsPath) {
  EXPECT_EQ(netns_path(""), "");
  EXPECT_EQ(netns_path("blue"), "/run/netns/blue");
  EXPECT_EQ(netns_path("/proc/1/ns/net"), "/proc/1/ns/net");
}

RunningDevice running_like(const DeviceSpec& d) {
  RunningDevice r;
  r.name = d.name;
  r.lower = d.lower;
  r.mode = d.mode;
  r.mac = d.mac.value_or(*MacAddress::parse("02:aa:00:00:00:01"));
  r.mtu = d.mtu.value_or(1500);
  r.up = d.up;
  r.bcqueuelen = d.bcqueuelen.value_or(1000);
  r.nopromisc = d.nopromisc;
  r.nodst = d.nodst;
  r.spoofchk = d.spoofchk;
  r.sources = d.sources;
  return r;
}

TEST(ConfigPlan, MatchingDevicesAreLeftAlone) {
  const ConfigFile f = parse_ok(kThree);
  std::map<std::size_t, RunningDevice> running;
  for (std::size_t i = 0; i < f.devices.size(); ++i) running[i] = running_like(f.devices[i]);
  // The source list in another order is the same list.
  std::swap(running[2].sources[0], running[2].sources[1]);
  for (const Action& a : plan(f, running, {})) EXPECT_EQ(a.kind, Action::Kind::kUnchanged);
}

TEST(ConfigPlan, OneChangeIsOneSetWithOnlyThatChange) {
  const ConfigFile f = parse_ok(kThree);
  std::map<std::size_t, RunningDevice> running;
  for (std::size_t i = 0; i < f.devices.size(); ++i) running[i] = running_like(f.devices[i]);
  running[0].mtu = 1500;
  const auto actions = plan(f, running, {});
  ASSERT_EQ(actions.size(), 3u);
  EXPECT_EQ(actions[0].kind, Action::Kind::kSet);
  EXPECT_EQ(actions[0].what, "mtu 1400");
  control::LinkRequest want;
  want.op = control::LinkOp::kSet;
  want.name = "mv0";
  want.mtu = 1400;
  EXPECT_EQ(actions[0].request, want);
  EXPECT_EQ(actions[1].kind, Action::Kind::kUnchanged);
  EXPECT_EQ(actions[2].kind, Action::Kind::kUnchanged);
}

TEST(ConfigPlan, SetCarriesMacvlanOptionsAsTheParserWould) {
  const ConfigFile f = parse_ok(kThree);
  RunningDevice have = running_like(f.devices[2]);
  have.mode = Mode::kBridge;
  have.nodst = false;
  have.sources.clear();
  have.up = false;
  std::string what;
  auto r = set_request(f.devices[2], have, &what);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->type_macvlan);
  EXPECT_EQ(r->mode, Mode::kSource);
  EXPECT_EQ(r->flags, core::kFlagNoDst);
  EXPECT_EQ(r->macaddr_mode, core::SourceOp::kSet);
  EXPECT_EQ(r->macaddrs, f.devices[2].sources);
  EXPECT_EQ(r->up, true);
  EXPECT_FALSE(r->mtu);
  EXPECT_EQ(what, "mode source, flags nodst, source (2 address(es)), up");
}

TEST(ConfigPlan, UnsetKeysAreNotManaged) {
  const ConfigFile f = parse_ok(kThree);
  RunningDevice have = running_like(f.devices[1]);
  have.mtu = 9000;
  have.bcqueuelen = 5;
  have.mac = *MacAddress::parse("02:12:34:56:78:9a");
  std::string what;
  EXPECT_FALSE(set_request(f.devices[1], have, &what)) << what;
}

TEST(ConfigPlan, MissingDevicesAreAddedAndForgottenOnesDeleted) {
  const ConfigFile f = parse_ok(kThree);
  std::map<std::size_t, RunningDevice> running;
  running[1] = running_like(f.devices[1]);
  running[2] = running_like(f.devices[2]);
  const std::vector<Made> made = {{"mv1", ""}, {"old", "blue"}, {"mv0", "/run/netns/blue"}};
  const auto actions = plan(f, running, made);
  ASSERT_EQ(actions.size(), 4u);
  EXPECT_EQ(actions[0].kind, Action::Kind::kDelete);
  EXPECT_EQ(actions[0].name, "old");
  EXPECT_EQ(actions[0].netns, "blue");
  EXPECT_EQ(actions[0].request.op, control::LinkOp::kDelete);
  EXPECT_EQ(actions[1].kind, Action::Kind::kAdd);
  EXPECT_EQ(actions[1].name, "mv0");
  const control::LinkRequest& add = actions[1].request;
  EXPECT_EQ(add.op, control::LinkOp::kAdd);
  EXPECT_EQ(add.link, "eth0");
  EXPECT_EQ(add.mode, Mode::kBridge);
  EXPECT_EQ(add.mtu, 1400u);
  EXPECT_EQ(add.bcqueuelen, 100u);
  EXPECT_EQ(add.spoofchk, true);
  EXPECT_FALSE(add.up);  // it moves to blue first
  EXPECT_EQ(actions[2].kind, Action::Kind::kUnchanged);
  EXPECT_EQ(actions[3].kind, Action::Kind::kUnchanged);
}

TEST(ConfigPlan, AddWithoutMoveComesUpAtOnce) {
  const ConfigFile f = parse_ok(kThree);
  const control::LinkRequest r = add_request(f.devices[2]);
  EXPECT_EQ(r.up, true);
  EXPECT_EQ(r.macaddr_mode, core::SourceOp::kSet);
  EXPECT_EQ(r.flags, core::kFlagNoDst);
}

TEST(ConfigPlan, NewLowerOrPassthruIsAReplace) {
  const ConfigFile f = parse_ok(kThree);
  std::map<std::size_t, RunningDevice> running;
  running[1] = running_like(f.devices[1]);
  running[1].lower = "eth7";
  auto actions = plan(f, running, {});
  EXPECT_EQ(actions[1].kind, Action::Kind::kReplace);
  EXPECT_EQ(actions[1].what, "lower eth0 (was eth7)");
  running[1] = running_like(f.devices[1]);
  running[1].mode = Mode::kPassthru;
  actions = plan(f, running, {});
  EXPECT_EQ(actions[1].kind, Action::Kind::kReplace);
  // An unknown lower (shown by index only) is not a difference.
  running[1] = running_like(f.devices[1]);
  running[1].lower = "";
  actions = plan(f, running, {});
  EXPECT_EQ(actions[1].kind, Action::Kind::kUnchanged);
}

// A running device of lower, nothing else set (its port's settings off).
RunningDevice running_on(const std::string& name, const std::string& lower) {
  RunningDevice r;
  r.name = name;
  r.lower = lower;
  return r;
}

control::LinkRequest port_set(const std::string& lower) {
  control::LinkRequest r;
  r.op = control::LinkOp::kSet;
  r.name = lower;
  r.type_macvlan = true;
  return r;
}

constexpr const char* kPorts = R"([[device]]
name = "mv0"
lower = "eth0"
hostaccess = true
macnat = true
macnat_ageing = 60

[[device]]
name = "mv1"
lower = "eth0"

[[device]]
name = "mv2"
lower = "eth1"
lower_netns = "red"
macnat = false
)";

TEST(ConfigPorts, NewPortsGetWhatTheFileSays) {
  const ConfigFile f = parse_ok(kPorts);
  // Nothing runs yet: eth0 gets hostaccess and macnat with its ageing; eth1
  // is already off.
  const auto actions = plan_ports(f, {});
  ASSERT_EQ(actions.size(), 2u);
  EXPECT_EQ(actions[0].lower, "eth0");
  EXPECT_EQ(actions[0].lower_netns, "");
  control::LinkRequest want = port_set("eth0");
  want.hostaccess = true;
  EXPECT_EQ(actions[0].request, want);
  EXPECT_EQ(actions[0].what, std::vector<std::string>{"hostaccess on"});
  want = port_set("eth0");
  want.macnat = true;
  want.macnat_ageing = 60;
  EXPECT_EQ(actions[1].request, want);
  EXPECT_EQ(actions[1].what, (std::vector<std::string>{"macnat on", "macnat_ageing 60"}));
}

TEST(ConfigPorts, PortsAsTheFileSaysAreLeftAlone) {
  const ConfigFile f = parse_ok(kPorts);
  std::map<std::size_t, RunningDevice> running{{0, running_on("mv0", "eth0")},
                                               {1, running_on("mv1", "eth0")},
                                               {2, running_on("mv2", "eth1")}};
  for (int i : {0, 1}) {
    running[i].hostaccess = true;
    running[i].macnat = true;
    running[i].macnat_ageing = 60;
  }
  EXPECT_TRUE(plan_ports(f, running).empty());
  // Any device of the port shows its settings.
  running.erase(0);
  EXPECT_TRUE(plan_ports(f, running).empty());
}

TEST(ConfigPorts, OnlyWhatDiffers) {
  const ConfigFile f = parse_ok(kPorts);
  std::map<std::size_t, RunningDevice> running{{0, running_on("mv0", "eth0")},
                                               {2, running_on("mv2", "eth1")}};
  running[0].hostaccess = true;
  running[0].macnat = true;
  running[0].macnat_ageing = 300;
  running[2].macnat = true;
  const auto actions = plan_ports(f, running);
  ASSERT_EQ(actions.size(), 2u);
  // The ageing alone, with macnat as it stays.
  control::LinkRequest want = port_set("eth0");
  want.macnat = true;
  want.macnat_ageing = 60;
  EXPECT_EQ(actions[0].request, want);
  EXPECT_EQ(actions[0].what, std::vector<std::string>{"macnat_ageing 60"});
  // Sent in the lower's namespace.
  EXPECT_EQ(actions[1].lower, "eth1");
  EXPECT_EQ(actions[1].lower_netns, "red");
  want = port_set("eth1");
  want.macnat = false;
  EXPECT_EQ(actions[1].request, want);
  EXPECT_EQ(actions[1].what, std::vector<std::string>{"macnat off"});
}

TEST(ConfigPorts, HostaccessOffAndUnsetSettingsAreLeftToThePort) {
  const ConfigFile f = parse_ok(R"([[device]]
name = "mv0"
lower = "eth0"
hostaccess = false
macnat_ageing = 90

[[device]]
name = "mv1"
lower = "eth1"
macnat_ageing = 90
)");
  std::map<std::size_t, RunningDevice> running{{0, running_on("mv0", "eth0")},
                                               {1, running_on("mv1", "eth1")}};
  running[0].hostaccess = true;
  running[0].macnat = true;  // the file leaves macnat as it is: on
  running[1].macnat = false;
  const auto actions = plan_ports(f, running);
  ASSERT_EQ(actions.size(), 2u) << "eth1: no ageing for a port without macnat";
  control::LinkRequest want = port_set("eth0");
  want.hostaccess = false;
  EXPECT_EQ(actions[0].request, want);
  EXPECT_EQ(actions[0].what, std::vector<std::string>{"hostaccess off"});
  want = port_set("eth0");
  want.macnat = true;
  want.macnat_ageing = 90;
  EXPECT_EQ(actions[1].request, want);
  EXPECT_EQ(actions[1].what, std::vector<std::string>{"macnat_ageing 90"});
}

TEST(ConfigPorts, TurningMacnatOnWithoutAnAgeingLeavesTheDaemonsOwn) {
  const ConfigFile f = parse_ok("[[device]]\nname = \"mv0\"\nlower = \"eth0\"\nmacnat = true\n");
  const auto actions = plan_ports(f, {{0, running_on("mv0", "eth0")}});
  ASSERT_EQ(actions.size(), 1u);
  control::LinkRequest want = port_set("eth0");
  want.macnat = true;
  EXPECT_EQ(actions[0].request, want);
  EXPECT_EQ(actions[0].what, std::vector<std::string>{"macnat on"});
  // Device plans do not carry port settings.
  for (const Action& a : plan(f, {}, {})) {
    EXPECT_FALSE(a.request.macnat);
    EXPECT_FALSE(a.request.macnat_ageing);
  }
}

TEST(ConfigRunning, FromShowJson) {
  const auto j = nlohmann::json::parse(R"({
    "ifindex": 7, "link_index": 3, "ifname": "mv0", "flags": ["BROADCAST","MULTICAST","UP"],
    "mtu": 1400, "address": "02:00:00:00:00:01", "link_netnsid": 0, "link_netns": "red",
    "linkinfo": {"info_kind": "macvlan", "info_data": {"mode": "source", "nodst": true,
      "bcqueuelen": 1000, "usedbcqueuelen": 1000, "bclim": 1, "macaddr_count": 1,
      "macaddr_data": ["02:00:00:00:00:0a"]}}})");
  const auto r = running_from_json(j);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->name, "mv0");
  EXPECT_EQ(r->ifindex, 7);
  EXPECT_EQ(r->lower, "");
  EXPECT_EQ(r->lower_ifindex, 3);
  EXPECT_EQ(r->lower_netns, "red");
  EXPECT_EQ(r->mode, Mode::kSource);
  EXPECT_EQ(r->mtu, 1400u);
  EXPECT_TRUE(r->up);
  EXPECT_TRUE(r->nodst);
  EXPECT_FALSE(r->spoofchk);
  ASSERT_EQ(r->sources.size(), 1u);
  EXPECT_FALSE(r->hostaccess);
  EXPECT_FALSE(r->macnat);
  EXPECT_EQ(r->macnat_ageing, control::kDefaultMacnatAgeing);
  EXPECT_FALSE(running_from_json(nlohmann::json::parse(R"({"ifname": "eth0"})")));
}

TEST(ConfigRunning, PortSettingsFromShowJson) {
  const auto r = running_from_json(nlohmann::json::parse(R"({
    "ifindex": 8, "ifname": "mv1", "link": "eth0", "flags": ["UP"], "mtu": 1500,
    "address": "02:00:00:00:00:02", "linkinfo": {"info_kind": "macvlan", "info_data": {
      "mode": "bridge", "hostaccess": true, "macnat": true, "macnat_ageing": 60}}})"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->lower, "eth0");
  EXPECT_TRUE(r->hostaccess);
  EXPECT_TRUE(r->macnat);
  EXPECT_EQ(r->macnat_ageing, 60u);
}

TEST(ConfigRecord, RoundTripAndPath) {
  const std::vector<Made> made = {{"a", ""}, {"b", "blue"}};
  EXPECT_EQ(made_from_json(made_to_json(made)), made);
  EXPECT_TRUE(made_from_json(nlohmann::json::parse("[1]")).empty());
  EXPECT_EQ(record_path("/run/umacvlan/umacvlan.sock"), "/var/lib/umacvlan/config.json");
  EXPECT_EQ(record_path("/tmp/x/test.sock"), "/tmp/x/test.config.json");
}

TEST(ConfigDump, ParsesBackToTheSameDevices) {
  DumpedDevice a;
  a.device.name = "mv0";
  a.device.mode = Mode::kSource;
  a.device.mac = *MacAddress::parse("02:00:00:00:00:01");
  a.device.mtu = 1400;
  a.device.up = true;
  a.device.bcqueuelen = 1000;
  a.device.nodst = true;
  a.device.sources = {*MacAddress::parse("02:00:00:00:00:0a")};
  a.netns = "blue";
  a.lower = "eth0";
  a.lower_netns = "red";
  DumpedDevice b;
  b.device.name = "mv1";
  b.device.mode = Mode::kPassthru;
  b.device.nopromisc = true;
  b.device.mac = *MacAddress::parse("02:00:00:00:00:02");
  b.lower = "eth1";
  const std::string text = dump_config({a, b});
  const ConfigFile f = parse_ok(text);
  ASSERT_EQ(f.devices.size(), 2u) << text;
  EXPECT_EQ(f.devices[0].netns, "blue");
  EXPECT_EQ(f.devices[0].lower_netns, "red");
  EXPECT_EQ(f.devices[0].sources, a.device.sources);
  EXPECT_FALSE(f.devices[1].up);
  EXPECT_TRUE(f.devices[1].nopromisc);
  // What a dump writes, an apply finds unchanged.
  std::map<std::size_t, RunningDevice> running{{0, a.device}, {1, b.device}};
  running[0].lower = "eth0";
  running[1].lower = "eth1";
  for (const Action& act : plan(f, running, {})) {
    EXPECT_EQ(act.kind, Action::Kind::kUnchanged) << act.name << ": " << act.what;
  }
}

TEST(ConfigDump, WritesThePortSettingsOfItsDevices) {
  DumpedDevice a;
  a.device.name = "mv0";
  a.device.mode = Mode::kBridge;
  a.device.mac = *MacAddress::parse("02:00:00:00:00:01");
  a.device.mtu = 1500;
  a.device.hostaccess = true;
  a.device.macnat = true;
  a.device.macnat_ageing = 60;
  a.lower = "eth0";
  DumpedDevice b = a;
  b.device.name = "mv1";
  b.device.mac = *MacAddress::parse("02:00:00:00:00:02");
  DumpedDevice c;
  c.device.name = "mv2";
  c.device.mac = *MacAddress::parse("02:00:00:00:00:03");
  c.device.mtu = 1500;
  c.device.macnat_ageing = 60;  // without macnat, not the file's
  c.lower = "eth1";
  const std::string text = dump_config({a, b, c});
  EXPECT_NE(text.find("name = \"mv0\"\nlower = \"eth0\"\nmode = \"bridge\"\n"
                      "mac = \"02:00:00:00:00:01\"\nmtu = 1500\nup = false\nbcqueuelen = 0\n"
                      "hostaccess = true\nmacnat = true\nmacnat_ageing = 60\n"),
            std::string::npos)
      << text;
  const ConfigFile f = parse_ok(text);
  ASSERT_EQ(f.devices.size(), 3u) << text;
  EXPECT_EQ(f.devices[0].hostaccess, true);
  EXPECT_EQ(f.devices[0].macnat, true);
  EXPECT_EQ(f.devices[0].macnat_ageing, 60u);
  EXPECT_EQ(f.devices[1].macnat, true);
  EXPECT_EQ(f.devices[1].macnat_ageing, 60u);
  EXPECT_FALSE(f.devices[2].macnat);
  EXPECT_FALSE(f.devices[2].macnat_ageing);
  EXPECT_FALSE(f.devices[2].hostaccess);
  // What a dump writes, an apply finds unchanged, ports too.
  std::map<std::size_t, RunningDevice> running{{0, a.device}, {1, b.device}, {2, c.device}};
  running[0].lower = running[1].lower = "eth0";
  running[2].lower = "eth1";
  EXPECT_TRUE(plan_ports(f, running).empty());
}

}  // namespace
}  // namespace umacvlan::cli
