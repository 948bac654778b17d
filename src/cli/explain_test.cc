#include "cli/explain.h"

#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

namespace umacvlan::cli {
namespace {

using core::MacAddress;
using nlohmann::json;
using Names = std::vector<std::string>;

// The port the mode cases run on: two bridge devices, a vepa, a private and
// a source device (02:00:00:00:00:01 .. 05).
const char* kPort = "mva:bridge mvb:bridge mvc:vepa mvd:private mvs:source,src=02:00:00:00:00:99";

std::vector<std::string> words_of(const std::string& text) {
  std::vector<std::string> words;
  std::istringstream in(text);
  for (std::string w; in >> w;) words.push_back(w);
  return words;
}

std::optional<Explanation> try_run(const std::string& spec, const std::string& command,
                                   std::string* error) {
  std::vector<std::string> words{"--port", spec};
  for (auto& w : words_of(command)) words.push_back(w);
  const ExplainParse parsed = parse_explain_command(words);
  if (const auto* e = std::get_if<ParseError>(&parsed)) {
    *error = e->message;
    return std::nullopt;
  }
  const auto& cmd = std::get<ExplainCommand>(parsed);
  auto model = parse_port_spec(*cmd.port_spec, cmd.lower);
  if (const auto* e = std::get_if<ParseError>(&model)) {
    *error = e->message;
    return std::nullopt;
  }
  return explain(std::get<PortModel>(model), cmd.from, cmd.to, error);
}

Explanation run(const std::string& spec, const std::string& command) {
  std::string error;
  auto e = try_run(spec, command, &error);
  EXPECT_TRUE(e.has_value()) << command << ": " << error;
  return e.value_or(Explanation{});
}

Names to(const Outcome& o) {
  Names n;
  for (const Delivery& d : o.deliveries) n.push_back(d.to);
  return n;
}

const Delivery& delivery(const Outcome& o, const std::string& name) {
  static const Delivery kNone{};
  for (const Delivery& d : o.deliveries) {
    if (d.to == name) return d;
  }
  ADD_FAILURE() << "no delivery to " << name;
  return kNone;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// ---------------------------------------------------------------- bridge

TEST(ExplainBridge, DeviceToSiblingIsDeliveredInsideThePort) {
  const Explanation e = run(kPort, "dev mva to mvb");
  EXPECT_EQ(to(e.outcome), (Names{"mvb"}));
  EXPECT_EQ(delivery(e.outcome, "mvb").reason, "unicast");
  EXPECT_FALSE(e.outcome.dropped);
  EXPECT_FALSE(e.if_reflected) << "nothing went out the wire";
  EXPECT_EQ(render_text(e),
            "frame: from device mva (bridge) to 02:00:00:00:00:02 (mvb)\n"
            "  mvb      gets it: unicast to its MAC; both are bridge devices, so the port "
            "delivers it directly\n"
            "  wire     no: delivered inside the port, it does not go out the lower\n"
            "  stack    no: delivered between bridge devices inside the port\n");
}

TEST(ExplainBridge, DeviceToVepaSiblingGoesOutTheWire) {
  const Explanation e = run(kPort, "dev mva to mvc");
  EXPECT_EQ(to(e.outcome), (Names{"wire"}));
  EXPECT_EQ(delivery(e.outcome, "wire").reason, "not_a_bridge_sibling");
  ASSERT_TRUE(e.if_reflected);
  EXPECT_EQ(to(*e.if_reflected), (Names{"mvc"}));
}

TEST(ExplainBridge, DeviceToOutsideGoesOutTheWire) {
  const Explanation e = run(kPort, "dev mva to outside");
  EXPECT_EQ(e.dst, *MacAddress::parse("02:00:00:00:ff:01"));
  EXPECT_EQ(e.dst_is, "unknown unicast");
  EXPECT_EQ(to(e.outcome), (Names{"wire"}));
  ASSERT_TRUE(e.if_reflected);
  EXPECT_EQ(to(*e.if_reflected), (Names{"stack"}));
}

TEST(ExplainBridge, DeviceBroadcastReachesBridgeSiblingsAndTheWire) {
  const Explanation e = run(kPort, "dev mva to broadcast");
  EXPECT_EQ(to(e.outcome), (Names{"mvb", "wire"}));
  EXPECT_EQ(delivery(e.outcome, "mvb").reason, "flood");
  EXPECT_EQ(delivery(e.outcome, "wire").reason, "bridge_multicast");
  EXPECT_EQ(e.outcome.no_stack,
            "what a device sends never reaches the lower's own stack; only a reflecting switch "
            "brings it back");
  // Reflected: the vepa devices, and the sender itself (the 2026 fix).
  ASSERT_TRUE(e.if_reflected);
  EXPECT_EQ(to(*e.if_reflected), (Names{"mvc", "mva", "stack"}));
  EXPECT_TRUE(delivery(*e.if_reflected, "mvc").queued);
}

TEST(ExplainBridge, DeviceToTheLowersMacGoesOutTheWire) {
  const Explanation e = run(kPort, "dev mva to host");
  EXPECT_EQ(e.dst, *MacAddress::parse("02:00:00:00:00:00"));
  EXPECT_EQ(to(e.outcome), (Names{"wire"}));
  EXPECT_TRUE(contains(delivery(e.outcome, "wire").text, "cannot reach each other"));
}

// ---------------------------------------------------------------- vepa

TEST(ExplainVepa, DeviceToSiblingNeedsAHairpin) {
  const Explanation e = run(kPort, "dev mvc to mvb");
  EXPECT_EQ(to(e.outcome), (Names{"wire"}));
  EXPECT_EQ(delivery(e.outcome, "wire").reason, "sent_out");
  ASSERT_TRUE(e.if_reflected);
  EXPECT_EQ(to(*e.if_reflected), (Names{"mvb"}));
  EXPECT_EQ(e.if_reflected->no_stack,
            "the port takes frames for its devices' MACs; the lower's stack does not get them");
}

TEST(ExplainVepa, ReflectedBroadcastReachesVepaAndBridgeDevicesButNotTheSender) {
  const Explanation e = run(kPort, "dev mvc to broadcast");
  EXPECT_EQ(to(e.outcome), (Names{"wire"}));
  ASSERT_TRUE(e.if_reflected);
  EXPECT_EQ(to(*e.if_reflected), (Names{"mva", "mvb", "stack"}));
  EXPECT_TRUE(contains(delivery(*e.if_reflected, "mva").text, "vepa device mvc"));
}

// ---------------------------------------------------------------- private

TEST(ExplainPrivate, OwnBroadcastComesBackToTheSenderOnly) {
  const Explanation e = run(kPort, "dev mvd to broadcast");
  EXPECT_EQ(to(e.outcome), (Names{"wire"}));
  ASSERT_TRUE(e.if_reflected);
  EXPECT_EQ(to(*e.if_reflected), (Names{"mvd"}));
  EXPECT_EQ(delivery(*e.if_reflected, "mvd").reason, "reflect");
}

TEST(ExplainPrivate, ReflectedUnicastIsDeliveredByItsMac) {
  const Explanation e = run(kPort, "dev mvd to mvc");
  ASSERT_TRUE(e.if_reflected);
  EXPECT_EQ(to(*e.if_reflected), (Names{"mvc"}));
}

TEST(ExplainPrivate, OutsideToDevice) {
  const Explanation e = run(kPort, "from outside to mvd");
  EXPECT_EQ(e.dst_is, "device");
  EXPECT_EQ(to(e.outcome), (Names{"mvd"}));
  EXPECT_EQ(e.outcome.no_wire, "it came from the wire");
  EXPECT_FALSE(e.if_reflected);
}

// ---------------------------------------------------------------- passthru

TEST(ExplainPassthru, TheDeviceGetsEveryUnicast) {
  const Explanation e = run("mvp:passthru", "from outside to outside");
  EXPECT_EQ(to(e.outcome), (Names{"mvp"}));
  EXPECT_TRUE(contains(delivery(e.outcome, "mvp").text, "passthru"));
}

TEST(ExplainPassthru, TheDeviceHasTheLowersMac) {
  const Explanation e = run("mvp:passthru", "from outside to mvp");
  EXPECT_EQ(e.dst, *MacAddress::parse("02:00:00:00:00:00"));
  EXPECT_EQ(to(e.outcome), (Names{"mvp"}));
}

TEST(ExplainPassthru, DeviceSendsEverythingOutTheWire) {
  const Explanation e = run("mvp:passthru,nopromisc", "dev mvp to broadcast");
  EXPECT_EQ(to(e.outcome), (Names{"wire"}));
  ASSERT_TRUE(e.if_reflected);
  EXPECT_EQ(to(*e.if_reflected), (Names{"mvp"}));
  EXPECT_EQ(delivery(*e.if_reflected, "mvp").reason, "reflect");
}

TEST(ExplainPassthru, BroadcastFromOutside) {
  const Explanation e = run("mvp:passthru", "from outside to broadcast");
  EXPECT_EQ(to(e.outcome), (Names{"mvp", "stack"}));
}

TEST(ExplainPassthru, DownDeviceDropsUnicast) {
  const Explanation e = run("mvp:passthru,down", "from outside to outside");
  EXPECT_TRUE(to(e.outcome).empty());
  ASSERT_TRUE(e.outcome.dropped);
  EXPECT_EQ(e.outcome.dropped->reason, "passthru_down");
  EXPECT_TRUE(
      contains(render_text(e), "  dropped: the port is in passthru mode and its device is down\n"));
}

// ---------------------------------------------------------------- source

TEST(ExplainSource, ListedSourceGetsACopyBesidesTheFlood) {
  const Explanation e = run(kPort, "from outside src 02:00:00:00:00:99 to broadcast");
  EXPECT_EQ(to(e.outcome), (Names{"mvs", "mva", "mvb", "mvc", "mvd", "stack"}));
  EXPECT_EQ(delivery(e.outcome, "mvs").reason, "source_copy");
  EXPECT_FALSE(delivery(e.outcome, "mvs").queued);
}

TEST(ExplainSource, ListedSourceUnicastAlsoReachesTheStack) {
  const Explanation e = run(kPort, "from outside src 02:00:00:00:00:99 to outside");
  EXPECT_EQ(to(e.outcome), (Names{"mvs", "stack"}));
}

TEST(ExplainSource, UnlistedSourceNeverReachesASourceDevice) {
  const Explanation e = run(kPort, "from outside to broadcast");
  EXPECT_EQ(to(e.outcome), (Names{"mva", "mvb", "mvc", "mvd", "stack"}));
  EXPECT_EQ(e.src, *MacAddress::parse("02:00:00:00:ff:02"));
}

TEST(ExplainSource, ItsOwnMacIsNotLookedUp) {
  const Explanation e = run(kPort, "from outside to mvs");
  EXPECT_EQ(to(e.outcome), (Names{"stack"}));
  EXPECT_EQ(delivery(e.outcome, "stack").reason, "source_mode_mac");
}

TEST(ExplainSource, NodstConsumesTheFrame) {
  const Explanation e = run("mva:bridge mvs:source,nodst,src=02:00:00:00:00:99",
                            "from outside src 02:00:00:00:00:99 to broadcast");
  EXPECT_EQ(to(e.outcome), (Names{"mvs"}));
  ASSERT_TRUE(e.outcome.dropped);
  EXPECT_EQ(e.outcome.dropped->reason, "nodst");
  EXPECT_EQ(e.outcome.no_stack, "nodst: the port consumes it");
  EXPECT_TRUE(contains(e.outcome.dropped->text, "source device mvs lists 02:00:00:00:00:99"));
}

TEST(ExplainSource, NodstConsumesEvenWhileTheDeviceIsDown) {
  const Explanation e = run("mva:bridge mvs:source,nodst,down,src=02:00:00:00:00:99",
                            "from outside src 02:00:00:00:00:99 to mva");
  EXPECT_TRUE(to(e.outcome).empty());
  ASSERT_TRUE(e.outcome.dropped);
  EXPECT_EQ(e.outcome.dropped->reason, "nodst");
  EXPECT_TRUE(contains(e.outcome.dropped->text, "even while it is down"));
}

TEST(ExplainSource, DeviceSendsOutTheWire) {
  const Explanation e = run(kPort, "dev mvs to mva");
  EXPECT_EQ(to(e.outcome), (Names{"wire"}));
  ASSERT_TRUE(e.if_reflected);
  EXPECT_EQ(to(*e.if_reflected), (Names{"mva"}));
}

// ---------------------------------------------------------------- groups, host, spoofchk

TEST(ExplainMulticast, OnlyMembersOfTheGroupGetIt) {
  const Explanation e = run("mva:bridge,group=01:00:5e:00:00:fb mvb:vepa mvc:private,allmulti",
                            "from outside to 01:00:5e:00:00:fb");
  EXPECT_EQ(e.dst_is, "multicast");
  EXPECT_EQ(to(e.outcome), (Names{"mva", "mvc", "stack"}));
  EXPECT_TRUE(contains(delivery(e.outcome, "mva").text, "joined"));
  EXPECT_TRUE(contains(delivery(e.outcome, "mvc").text, "allmulticast"));
}

TEST(ExplainMulticast, AGroupNobodyJoinedReachesTheStackOnly) {
  const Explanation e = run(kPort, "from outside to 01:00:5e:00:00:fb");
  EXPECT_EQ(to(e.outcome), (Names{"stack"}));
  EXPECT_EQ(e.outcome.no_device,
            "none: no device the flood reaches joined group 01:00:5e:00:00:fb");
}

TEST(ExplainHost, HostFramesLeaveByTheWireOnly) {
  const Explanation e = run(kPort, "from host to mvb");
  EXPECT_EQ(e.from, "host");
  EXPECT_EQ(e.src, *MacAddress::parse("02:00:00:00:00:00"));
  EXPECT_EQ(to(e.outcome), (Names{"wire"}));
  EXPECT_EQ(delivery(e.outcome, "wire").reason, "host");
  EXPECT_EQ(e.outcome.no_stack, "it is the sender");
  ASSERT_TRUE(e.if_reflected);
  EXPECT_EQ(to(*e.if_reflected), (Names{"mvb"}));
}

TEST(ExplainSpoofchk, AForeignSourceIsDropped) {
  const Explanation e =
      run("mva:bridge,spoofchk mvb:bridge", "dev mva src 02:00:00:00:00:77 to mvb");
  EXPECT_TRUE(to(e.outcome).empty());
  ASSERT_TRUE(e.outcome.dropped);
  EXPECT_EQ(e.outcome.dropped->reason, "spoofed");
  EXPECT_EQ(e.outcome.no_wire, "dropped before it left");
}

// ---------------------------------------------------------------- JSON

TEST(ExplainJson, HasTheAgreedShape) {
  const json j = to_json(run(kPort, "from dev mva to mvb"));
  EXPECT_EQ(j, json::parse(R"({
    "frame":{"from":"mva","src":"02:00:00:00:00:01","dst":"02:00:00:00:00:02","dst_is":"device"},
    "deliveries":[{"to":"mvb","kind":"device","reason":"unicast",
      "text":"unicast to its MAC; both are bridge devices, so the port delivers it directly"}],
    "dropped":null})"));
  const json d = to_json(run("mva:bridge mvs:source,nodst,src=02:00:00:00:00:99",
                             "from outside src 02:00:00:00:00:99 to broadcast"));
  EXPECT_EQ(d.at("dropped").at("reason"), "nodst");
  EXPECT_EQ(d.at("deliveries").size(), 1u);
  const json w = to_json(run(kPort, "dev mvc to broadcast"));
  EXPECT_EQ(w.at("deliveries").at(0).at("to"), "wire");
  EXPECT_EQ(w.at("deliveries").at(0).at("kind"), "wire");
  EXPECT_EQ(w.at("if_reflected").at("deliveries").size(), 3u);
  EXPECT_EQ(w.at("if_reflected").at("dropped"), nullptr);
}

// ---------------------------------------------------------------- grammar

TEST(ExplainGrammar, FromWordsAreEquivalent) {
  EXPECT_EQ(to(run(kPort, "dev mva to mvb").outcome),
            to(run(kPort, "from dev mva to mvb").outcome));
  EXPECT_EQ(to(run(kPort, "to mvb dev mva").outcome), (Names{"mvb"}));
  EXPECT_EQ(run(kPort, "from outside to 02:00:00:00:00:02").dst_is, "device");
}

TEST(ExplainGrammar, DefaultMacsFollowTheOrder) {
  auto m = parse_port_spec("a:vepa b:bridge,mac=02:00:00:00:aa:bb c:private", "eth0");
  ASSERT_TRUE(std::holds_alternative<PortModel>(m));
  const PortModel& p = std::get<PortModel>(m);
  EXPECT_EQ(p.lower.name, "eth0");
  EXPECT_EQ(p.lower.mac, *MacAddress::parse("02:00:00:00:00:00"));
  ASSERT_EQ(p.devices.size(), 3u);
  EXPECT_EQ(p.devices[0].mac, *MacAddress::parse("02:00:00:00:00:01"));
  EXPECT_EQ(p.devices[1].mac, *MacAddress::parse("02:00:00:00:aa:bb"));
  EXPECT_EQ(p.devices[2].mac, *MacAddress::parse("02:00:00:00:00:03"));
  EXPECT_TRUE(p.devices[2].up);
}

struct BadCommand {
  const char* spec;
  const char* command;
  const char* message;
};

class ExplainErrors : public ::testing::TestWithParam<BadCommand> {};

TEST_P(ExplainErrors, AreIpShapedSentences) {
  std::string error;
  EXPECT_FALSE(try_run(GetParam().spec, GetParam().command, &error).has_value());
  EXPECT_EQ(error, GetParam().message);
}

const BadCommand kBad[] = {
    {"mva:bridge", "dev mva", "Command line is not complete. Try \"umacvlan explain help\".\n"},
    {"mva:bridge", "to mva", "Command line is not complete. Try \"umacvlan explain help\".\n"},
    {"mva:bridge", "dev mva to", "Command line is not complete. Try \"umacvlan explain help\".\n"},
    {"mva:bridge", "dev mva from outside to mva",
     "Error: either \"from\" is duplicate, or \"outside\" is a garbage.\n"},
    {"mva:bridge", "dev mva to mva to broadcast",
     "Error: either \"to\" is duplicate, or \"broadcast\" is a garbage.\n"},
    {"mva:bridge", "from inside to mva",
     "Error: argument \"inside\" is wrong: FROM := dev NAME | from outside | from host\n"},
    {"mva:bridge", "dev mva to mva please",
     "Error: argument \"please\" is wrong: expected \"dev\", \"from\", \"to\", \"src\", \"lower\" "
     "or \"--port\"; try \"umacvlan explain help\"\n"},
    {"mva:bridge", "dev mva src 01:00:5e:00:00:01 to mva",
     "Error: argument \"01:00:5e:00:00:01\" is wrong: a source MAC is a unicast address "
     "(xx:xx:xx:xx:xx:xx)\n"},
    {"mva:hub", "dev mva to outside",
     "Error: argument \"mva:hub\" is wrong: mode \"hub\" is not private, vepa, bridge, passthru or "
     "source\n"},
    {"mva", "dev mva to outside",
     "Error: argument \"mva\" is wrong: a device is NAME:MODE[,OPTION...]\n"},
    {"mva:bridge,src=02:00:00:00:00:99", "dev mva to outside",
     "Error: argument \"mva:bridge,src=02:00:00:00:00:99\" is wrong: src= is for a device in "
     "source mode\n"},
    {"mva:bridge,nopromisc", "dev mva to outside",
     "Error: argument \"mva:bridge,nopromisc\" is wrong: nopromisc is for a device in passthru "
     "mode\n"},
    {"mva:bridge mva:vepa", "dev mva to outside",
     "Error: argument \"mva:vepa\" is wrong: device \"mva\" is named twice\n"},
    {"mva:bridge", "dev mvz to outside",
     "Error: argument \"mvz\" is wrong: no device of that name on the port of lower.\n"},
    {"mva:bridge", "dev mva to mvz",
     "Error: argument \"mvz\" is wrong: no device of that name on the port of lower; TO := MAC | "
     "DEVNAME | broadcast | GROUPMAC | outside | host.\n"},
    {"mva:bridge,down mvb:bridge", "dev mva to mvb",
     "Error: argument \"mva\" is wrong: the device is down, and a device that is down sends "
     "nothing.\n"},
    {"mvp:passthru mva:bridge", "dev mva to outside",
     "Error: device \"mva\" cannot be on this port: the lower already has a passthru device; no "
     "other device can be added.\n"},
    {"mva:bridge,mac=02:00:00:00:00:07 mvb:bridge,mac=02:00:00:00:00:07", "dev mva to outside",
     "Error: device \"mvb\" cannot be on this port: address 02:00:00:00:00:07 is already in use "
     "on this lower; cannot bring mvb up.\n"},
};

INSTANTIATE_TEST_SUITE_P(Commands, ExplainErrors, ::testing::ValuesIn(kBad));

TEST(ExplainGrammar, WithoutPortTheLowerIsNeededForOutsideAndHost) {
  for (const char* from : {"outside", "host"}) {
    const ExplainParse p = parse_explain_command({"from", from, "to", "broadcast"});
    ASSERT_TRUE(std::holds_alternative<ParseError>(p)) << from;
    EXPECT_EQ(std::get<ParseError>(p).exit_code, 1);
    EXPECT_EQ(std::get<ParseError>(p).message,
              std::string("Error: argument \"") + from +
                  "\" is wrong: without --port, \"lower LOWER\" names the port to explain\n");
  }
  const ExplainParse ok =
      parse_explain_command({"lower", "eth0", "from", "outside", "to", "broadcast"});
  ASSERT_TRUE(std::holds_alternative<ExplainCommand>(ok));
  EXPECT_EQ(std::get<ExplainCommand>(ok).lower, "eth0");
  EXPECT_FALSE(std::get<ExplainCommand>(ok).port_spec);
  EXPECT_TRUE(std::holds_alternative<ExplainHelp>(parse_explain_command({"help"})));
}

// ---------------------------------------------------------------- the daemon's reply

TEST(ExplainReply, ThePortComesFromTheLinkObjects) {
  control::Reply reply;
  reply.links = json::parse(R"([
    {"ifindex":7,"link":"eth0","ifname":"mva","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],
     "address":"02:00:00:00:00:0a","linkinfo":{"info_kind":"macvlan","info_data":{"mode":"bridge",
     "bcqueuelen":1000,"usedbcqueuelen":1000,"bclim":1}},
     "port_member":{"here":true,"multicast":["01:00:5e:00:00:fb"],"promisc":false,"allmulti":false}},
    {"ifindex":3,"link":"eth0","ifname":"mva","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],
     "address":"02:00:00:00:00:0b","linkinfo":{"info_kind":"macvlan","info_data":{"mode":"bridge",
     "bcqueuelen":1000,"usedbcqueuelen":1000,"bclim":1}},
     "port_member":{"here":false,"netns":"pod1","multicast":[],"promisc":false,"allmulti":false}},
    {"ifindex":9,"link":"eth0","ifname":"mvs","flags":["BROADCAST","MULTICAST"],
     "address":"02:00:00:00:00:0c","linkinfo":{"info_kind":"macvlan","info_data":{"mode":"source",
     "nodst":true,"bcqueuelen":1000,"usedbcqueuelen":1000,"bclim":1,"macaddr_count":1,
     "macaddr_data":["02:00:00:00:00:99"]}},
     "port_member":{"here":false,"multicast":[],"promisc":false,"allmulti":false}}])");
  control::PortLower lower;
  lower.name = "eth0";
  lower.mac = *MacAddress::parse("02:00:00:00:00:ee");
  reply.lower = lower;
  PortModel m;
  std::string error;
  ASSERT_TRUE(port_from_reply(reply, &m, &error)) << error;
  ASSERT_EQ(m.devices.size(), 3u);
  EXPECT_EQ(m.lower.name, "eth0");
  EXPECT_TRUE(m.devices[0].up);
  EXPECT_FALSE(m.devices[2].up);
  EXPECT_EQ(m.devices[2].flags, core::kFlagNoDst);
  EXPECT_EQ(m.devices[2].sources.size(), 1u);
  EXPECT_EQ(m.devices[1].netns, "pod1");

  // `dev mva` is the caller's own; the other mva answers in its namespace's name.
  Sender from{SenderKind::kDevice, "mva", std::nullopt};
  auto e = explain(m, from, Destination{DestinationKind::kBroadcast, "broadcast", {}}, &error);
  ASSERT_TRUE(e) << error;
  EXPECT_EQ(e->src, *MacAddress::parse("02:00:00:00:00:0a"));
  EXPECT_EQ(to(e->outcome), (Names{"mva", "wire"}));
  EXPECT_EQ(e->outcome.deliveries[0].netns, "pod1");
  EXPECT_TRUE(contains(render_text(*e), "[in netns pod1]"));

  // The down nodst source device still consumes what it lists.
  Sender outside{SenderKind::kOutside, "", MacAddress::parse("02:00:00:00:00:99")};
  e = explain(m, outside,
              Destination{DestinationKind::kMac, "", *MacAddress::parse("01:00:5e:00:00:fb")},
              &error);
  ASSERT_TRUE(e) << error;
  ASSERT_TRUE(e->outcome.dropped);
  EXPECT_EQ(e->outcome.dropped->reason, "nodst");

  // Without the source list entry, the group member gets it.
  outside.src.reset();
  e = explain(m, outside,
              Destination{DestinationKind::kMac, "", *MacAddress::parse("01:00:5e:00:00:fb")},
              &error);
  ASSERT_TRUE(e) << error;
  EXPECT_EQ(to(e->outcome), (Names{"mva", "stack"}));
  EXPECT_TRUE(e->outcome.deliveries[0].netns.empty());

  control::Reply show_reply;  // a reply to show: no lower
  EXPECT_FALSE(port_from_reply(show_reply, &m, &error));
  EXPECT_FALSE(error.empty());
}

}  // namespace
}  // namespace umacvlan::cli
