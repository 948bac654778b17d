#include "control/control_protocol.h"

#include <gtest/gtest.h>

#include <cctype>
#include <string>

namespace umacvlan::control {
namespace {

using core::MacAddress;
using nlohmann::json;

MacAddress mac(const char* text) {
  return *MacAddress::parse(text);
}

LinkRequest full_add() {
  LinkRequest r;
  r.op = LinkOp::kAdd;
  r.name = "m0";
  r.link = "eth0";
  r.address = mac("02:00:00:00:00:aa");
  r.mtu = 1400;
  r.up = true;
  r.type_macvlan = true;
  r.mode = core::Mode::kSource;
  r.flags = core::kFlagNoDst;
  r.bcqueuelen = 4294967295u;
  r.bclim = -2147483647 - 1;
  r.macaddr_mode = core::SourceOp::kSet;
  r.macaddrs = {mac("02:00:00:00:00:01"), mac("02:00:00:00:00:02")};
  r.spoofchk = true;
  r.hostaccess = true;
  r.macnat = true;
  r.macnat_ageing = 86400;
  return r;
}

LinkRequest round_trip(const LinkRequest& in) {
  LinkRequest out;
  std::string error;
  EXPECT_TRUE(from_json(to_json(in), &out, &error)) << error << "\n" << to_json(in).dump();
  return out;
}

TEST(ControlProtocol, FullRequestRoundTrips) {
  const LinkRequest r = full_add();
  EXPECT_EQ(round_trip(r), r);
}

TEST(ControlProtocol, EveryOpRoundTrips) {
  for (LinkOp op : {LinkOp::kAdd, LinkOp::kSet, LinkOp::kDelete, LinkOp::kShow, LinkOp::kPort,
                    LinkOp::kCapture}) {
    LinkRequest r;
    r.op = op;
    r.name = "m0";
    if (op == LinkOp::kAdd) r.link = "eth0";
    EXPECT_EQ(round_trip(r), r) << to_string(op);
  }
}

TEST(ControlProtocol, EveryModeAndMacaddrOpRoundTrips) {
  for (core::Mode m : {core::Mode::kPrivate, core::Mode::kVepa, core::Mode::kBridge,
                       core::Mode::kPassthru, core::Mode::kSource}) {
    LinkRequest r;
    r.op = LinkOp::kSet;
    r.name = "m0";
    r.mode = m;
    EXPECT_EQ(round_trip(r), r) << core::to_string(m);
  }
  for (core::SourceOp m :
       {core::SourceOp::kAdd, core::SourceOp::kDel, core::SourceOp::kSet, core::SourceOp::kFlush}) {
    LinkRequest r;
    r.op = LinkOp::kSet;
    r.name = "m0";
    r.macaddr_mode = m;
    if (m == core::SourceOp::kAdd || m == core::SourceOp::kDel)
      r.macaddrs = {mac("02:00:00:00:00:09")};
    EXPECT_EQ(round_trip(r), r) << to_string(m);
  }
}

TEST(ControlProtocol, PortQueryRoundTripsByDeviceOrLower) {
  LinkRequest by_device;
  by_device.op = LinkOp::kPort;
  by_device.name = "mva";
  EXPECT_EQ(to_json(by_device), json::parse(R"({"op":"port","name":"mva"})"));
  EXPECT_EQ(round_trip(by_device), by_device);
  LinkRequest by_lower;
  by_lower.op = LinkOp::kPort;
  by_lower.link = "eth0";
  EXPECT_EQ(to_json(by_lower), json::parse(R"({"op":"port","link":"eth0"})"));
  EXPECT_EQ(round_trip(by_lower), by_lower);
}

TEST(ControlProtocol, StreamsAreCaptureOfADeviceOrPortAndMonitor) {
  LinkRequest dev;
  dev.op = LinkOp::kCapture;
  dev.name = "mva";
  EXPECT_EQ(to_json(dev), json::parse(R"({"op":"capture","name":"mva"})"));
  EXPECT_EQ(round_trip(dev), dev);
  LinkRequest port;
  port.op = LinkOp::kCapture;
  port.link = "eth0";
  EXPECT_EQ(round_trip(port), port);
  LinkRequest monitor;
  monitor.op = LinkOp::kMonitor;
  EXPECT_EQ(to_json(monitor), json::parse(R"({"op":"monitor"})"));
  EXPECT_EQ(round_trip(monitor), monitor);
  EXPECT_TRUE(streaming(LinkOp::kCapture));
  EXPECT_TRUE(streaming(LinkOp::kMonitor));
  EXPECT_FALSE(streaming(LinkOp::kShow));
  LinkRequest out;
  std::string error;
  EXPECT_FALSE(from_json(json::parse(R"({"op":"capture"})"), &out, &error));
  EXPECT_EQ(error, "capture needs either \"name\" or \"link\"");
  EXPECT_FALSE(from_json(json::parse(R"({"op":"capture","name":"a","link":"b"})"), &out, &error));
}

TEST(ControlProtocol, ShowAllHasNoName) {
  LinkRequest r;  // op defaults to show
  const json j = to_json(r);
  EXPECT_EQ(j, json::parse(R"({"op":"show"})"));
  EXPECT_EQ(round_trip(r), r);
}

TEST(ControlProtocol, ZeroFlagsAndDownAreKept) {
  LinkRequest r;
  r.op = LinkOp::kSet;
  r.name = "m0";
  r.flags = 0;  // "flag null": present, zero
  r.up = false;
  const json j = to_json(r);
  EXPECT_EQ(j.at("flags"), 0);
  EXPECT_EQ(j.at("up"), false);
  EXPECT_EQ(round_trip(r), r);
}

TEST(ControlProtocol, WireFormatIsStable) {
  EXPECT_EQ(to_json(full_add()), json::parse(R"({
    "op":"add","name":"m0","link":"eth0","address":"02:00:00:00:00:aa","mtu":1400,"up":true,
    "type":"macvlan","mode":"source","flags":2,"bcqueuelen":4294967295,"bclim":-2147483648,"spoofchk":true,
    "hostaccess":true,"macnat":true,"macnat_ageing":86400,"macaddr":{"op":"set","addresses":["02:00:00:00:00:01","02:00:00:00:00:02"]}})"));
}

struct Malformed {
  const char* name;
  const char* json_text;
};

class MalformedRequest : public ::testing::TestWithParam<Malformed> {};

TEST_P(MalformedRequest, IsRefusedAndLeavesOutputAlone) {
  LinkRequest out = full_add();
  std::string error;
  EXPECT_FALSE(from_json(json::parse(GetParam().json_text), &out, &error)) << GetParam().name;
  EXPECT_FALSE(error.empty());
  EXPECT_EQ(out, full_add());
}

const Malformed kMalformed[] = {
    {"not an object", R"([])"},
    {"no op", R"({"name":"m0"})"},
    {"unknown op", R"({"op":"rename","name":"m0"})"},
    {"op not a string", R"({"op":1,"name":"m0"})"},
    {"unknown key", R"({"op":"show","colour":"red"})"},
    {"add without link", R"({"op":"add","name":"m0"})"},
    {"add without name", R"({"op":"add","link":"eth0"})"},
    {"set without name", R"({"op":"set"})"},
    {"delete without name", R"({"op":"delete"})"},
    {"port without name or link", R"({"op":"port"})"},
    {"port with name and link", R"({"op":"port","name":"mva","link":"eth0"})"},
    {"name not a string", R"({"op":"set","name":5})"},
    {"bad address", R"({"op":"set","name":"m0","address":"zz"})"},
    {"short address", R"({"op":"set","name":"m0","address":"02:00:00:00:00"})"},
    {"address not a string", R"({"op":"set","name":"m0","address":12})"},
    {"negative mtu", R"({"op":"set","name":"m0","mtu":-1})"},
    {"huge mtu", R"({"op":"set","name":"m0","mtu":4294967296})"},
    {"mtu as string", R"({"op":"set","name":"m0","mtu":"1500"})"},
    {"mtu as float", R"({"op":"set","name":"m0","mtu":1500.5})"},
    {"up as number", R"({"op":"set","name":"m0","up":1})"},
    {"spoofchk as string", R"({"op":"set","name":"m0","spoofchk":"on"})"},
    {"hostaccess as string", R"({"op":"set","name":"m0","hostaccess":"on"})"},
    {"macnat as string", R"({"op":"set","name":"m0","macnat":"on"})"},
    {"macnat_ageing zero", R"({"op":"set","name":"m0","macnat_ageing":0})"},
    {"macnat_ageing beyond a day", R"({"op":"set","name":"m0","macnat_ageing":86401})"},
    {"macnat_ageing as string", R"({"op":"set","name":"m0","macnat_ageing":"300"})"},
    {"other type", R"({"op":"set","name":"m0","type":"vlan"})"},
    {"unknown mode", R"({"op":"set","name":"m0","mode":"hub"})"},
    {"unknown flag bits", R"({"op":"set","name":"m0","flags":4})"},
    {"negative bcqueuelen", R"({"op":"set","name":"m0","bcqueuelen":-1})"},
    {"bclim too small", R"({"op":"set","name":"m0","bclim":-2147483649})"},
    {"bclim too large", R"({"op":"set","name":"m0","bclim":2147483648})"},
    {"bclim huge unsigned", R"({"op":"set","name":"m0","bclim":18446744073709551615})"},
    {"macaddr not an object", R"({"op":"set","name":"m0","macaddr":"flush"})"},
    {"macaddr unknown op", R"({"op":"set","name":"m0","macaddr":{"op":"zap"}})"},
    {"macaddr op none", R"({"op":"set","name":"m0","macaddr":{"op":"none"}})"},
    {"macaddr add without address", R"({"op":"set","name":"m0","macaddr":{"op":"add"}})"},
    {"macaddr del with two",
     R"({"op":"set","name":"m0","macaddr":{"op":"del","addresses":["02:00:00:00:00:01","02:00:00:00:00:02"]}})"},
    {"macaddr flush with address",
     R"({"op":"set","name":"m0","macaddr":{"op":"flush","addresses":["02:00:00:00:00:01"]}})"},
    {"macaddr bad address",
     R"({"op":"set","name":"m0","macaddr":{"op":"set","addresses":["02:00:00:00:00:01","x"]}})"},
    {"macaddr addresses not array",
     R"({"op":"set","name":"m0","macaddr":{"op":"set","addresses":"02:00:00:00:00:01"}})"},
    {"macaddr unknown key", R"({"op":"set","name":"m0","macaddr":{"op":"flush","all":true}})"},
};

INSTANTIATE_TEST_SUITE_P(Requests, MalformedRequest, ::testing::ValuesIn(kMalformed),
                         [](const auto& info) {
                           std::string n = info.param.name;
                           for (char& c : n) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return n;
                         });

TEST(ControlProtocol, ReplyRoundTrips) {
  Reply r;
  r.error = 19;
  r.message = "Cannot find device \"eth9\"";
  r.links = json::parse(R"([{"ifindex":4,"ifname":"m0"}])");
  Reply out;
  std::string error;
  ASSERT_TRUE(from_json(to_json(r), &out, &error)) << error;
  EXPECT_EQ(out.error, r.error);
  EXPECT_EQ(out.message, r.message);
  EXPECT_EQ(out.links, r.links);
}

PortLower sample_lower() {
  PortLower l;
  l.name = "eth0";
  l.mac = mac("02:00:00:00:00:00");
  l.mtu = 9000;
  l.carrier = false;
  l.promisc = true;
  l.allmulti = false;
  l.multicast = {mac("01:00:5e:00:00:01"), mac("33:33:00:00:00:01")};
  return l;
}

TEST(ControlProtocol, PortReplyRoundTripsWithItsLower) {
  Reply r;
  r.links = json::parse(R"([{"ifname":"mva","port_member":{"here":true,"multicast":[]}}])");
  r.lower = sample_lower();
  const json j = to_json(r);
  EXPECT_EQ(j.at("lower"), json::parse(R"({"ifname":"eth0","address":"02:00:00:00:00:00",
      "mtu":9000,"carrier":false,"promisc":true,"allmulti":false,
      "multicast":["01:00:5e:00:00:01","33:33:00:00:00:01"]})"));
  Reply out;
  std::string error;
  ASSERT_TRUE(from_json(j, &out, &error)) << error;
  ASSERT_TRUE(out.lower.has_value());
  EXPECT_EQ(*out.lower, sample_lower());
  EXPECT_EQ(out.links, r.links);
  EXPECT_FALSE(to_json(Reply{}).contains("lower"));
}

TEST(ControlProtocol, MalformedPortLowersAreRefused) {
  Reply with_lower;
  with_lower.lower = sample_lower();
  const json good = to_json(with_lower);
  auto with = [&](const char* key, json value) {
    json j = good;
    if (value.is_discarded()) {
      j["lower"].erase(key);
    } else {
      j["lower"][key] = std::move(value);
    }
    return j;
  };
  const json gone(json::value_t::discarded);
  const json cases[] = {
      with("ifname", gone),   with("ifname", ""),
      with("ifname", 3),      with("address", gone),
      with("address", "zz"),  with("mtu", gone),
      with("mtu", -1),        with("mtu", "1500"),
      with("carrier", gone),  with("promisc", 1),
      with("allmulti", "no"), with("multicast", gone),
      with("multicast", "x"), with("multicast", json::array({"01:00:5e:00:00"})),
      with("colour", "red"),
  };
  for (const json& j : cases) {
    Reply out;
    std::string error;
    EXPECT_FALSE(from_json(j, &out, &error)) << j.dump();
    EXPECT_FALSE(error.empty()) << j.dump();
    EXPECT_FALSE(out.lower.has_value());
  }
  json not_object = good;
  not_object["lower"] = json::array();
  Reply out;
  std::string error;
  EXPECT_FALSE(from_json(not_object, &out, &error));
}

TEST(ControlProtocol, ReplyDefaultsAreOptional) {
  Reply out;
  out.error = 5;
  std::string error;
  ASSERT_TRUE(from_json(json::parse(R"({"error":0})"), &out, &error)) << error;
  EXPECT_EQ(out.error, 0);
  EXPECT_TRUE(out.message.empty());
  EXPECT_EQ(out.links, json::array());
  EXPECT_EQ(to_json(Reply{}), json::parse(R"({"error":0,"links":[]})"));
}

TEST(ControlProtocol, MalformedRepliesAreRefused) {
  for (const char* text :
       {R"([])", R"({})", R"({"error":-1})", R"({"error":"EINVAL"})", R"({"error":0,"message":7})",
        R"({"error":0,"links":{}})", R"({"error":0,"links":[1]})", R"({"error":0,"extra":1})",
        R"({"error":100000})"}) {
    Reply out;
    std::string error;
    EXPECT_FALSE(from_json(json::parse(text), &out, &error)) << text;
    EXPECT_FALSE(error.empty()) << text;
  }
}

TEST(ControlProtocol, NamesOfEnums) {
  EXPECT_EQ(parse_link_op("delete"), LinkOp::kDelete);
  EXPECT_EQ(parse_link_op("del"), std::nullopt);
  EXPECT_EQ(parse_macaddr_mode("flush"), core::SourceOp::kFlush);
  EXPECT_EQ(parse_macaddr_mode("Flush"), std::nullopt);
  EXPECT_EQ(to_string(LinkOp::kShow), "show");
  EXPECT_EQ(to_string(LinkOp::kPort), "port");
  EXPECT_EQ(parse_link_op("port"), LinkOp::kPort);
  EXPECT_EQ(to_string(core::SourceOp::kDel), "del");
}

}  // namespace
}  // namespace umacvlan::control
