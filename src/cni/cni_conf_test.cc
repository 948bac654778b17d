#include "cni/cni_conf.h"

#include <gtest/gtest.h>

namespace umacvlan::cni {
namespace {

using nlohmann::json;

std::map<std::string, std::string> add_env() {
  return {{"CNI_COMMAND", "ADD"},
          {"CNI_CONTAINERID", "c1"},
          {"CNI_NETNS", "/run/netns/c1"},
          {"CNI_IFNAME", "eth0"},
          {"CNI_PATH", "/usr/lib/cni"}};
}

json base_conf() {
  return {{"cniVersion", "1.0.0"},
          {"name", "net1"},
          {"type", "umacvlan"},
          {"master", "eth0"},
          {"ipam", json::object()}};
}

std::optional<CniError> parse(const json& j, Command c, NetConf* out) {
  return parse_netconf(j.dump(), c, out);
}

TEST(CniEnv, AddNeedsContainerNetnsIfnameAndPath) {
  CniEnv env;
  EXPECT_FALSE(parse_env(add_env(), &env));
  EXPECT_EQ(env.command, Command::kAdd);
  EXPECT_EQ(env.ifname, "eth0");
  auto m = add_env();
  m.erase("CNI_NETNS");
  m.erase("CNI_PATH");
  const auto e = parse_env(m, &env);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code, kErrInvalidEnvironment);
  EXPECT_EQ(e->msg, "required env variables [CNI_NETNS CNI_PATH] missing");
}

TEST(CniEnv, DelWithoutNetnsIsFine) {
  auto m = add_env();
  m["CNI_COMMAND"] = "DEL";
  m.erase("CNI_NETNS");
  CniEnv env;
  EXPECT_FALSE(parse_env(m, &env));
  EXPECT_EQ(env.command, Command::kDel);
}

TEST(CniEnv, VersionNeedsNothingElse) {
  CniEnv env;
  EXPECT_FALSE(parse_env({{"CNI_COMMAND", "VERSION"}}, &env));
}

TEST(CniEnv, RejectsUnknownCommandBadIfnameAndBadArgs) {
  CniEnv env;
  auto m = add_env();
  m["CNI_COMMAND"] = "FROB";
  EXPECT_EQ(parse_env(m, &env)->code, kErrInvalidEnvironment);
  m = add_env();
  m["CNI_IFNAME"] = "a/b";
  EXPECT_EQ(parse_env(m, &env)->code, kErrInvalidEnvironment);
  m = add_env();
  m["CNI_IFNAME"] = "sixteen-chars-xx";
  EXPECT_EQ(parse_env(m, &env)->code, kErrInvalidEnvironment);
  m = add_env();
  m["CNI_ARGS"] = "IgnoreUnknown=1;nonsense";
  const auto e = parse_env(m, &env);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code, kErrInvalidEnvironment);
  EXPECT_NE(e->msg.find("nonsense"), std::string::npos);
}

TEST(CniArgs, SplitsPairs) {
  std::map<std::string, std::string> kv;
  EXPECT_FALSE(parse_cni_args("IgnoreUnknown=1;MAC=02:00:00:00:00:01;K8S_POD_NAME=a=b", &kv));
  EXPECT_EQ(kv.size(), 3u);
  EXPECT_EQ(kv["MAC"], "02:00:00:00:00:01");
  EXPECT_EQ(kv["K8S_POD_NAME"], "a=b");
  EXPECT_FALSE(parse_cni_args("", &kv));
  EXPECT_TRUE(kv.empty());
}

TEST(Versions, CompareAndSupport) {
  EXPECT_LT(compare_versions("0.3.1", "0.4.0"), 0);
  EXPECT_EQ(compare_versions("1.0.0", "1.0.0"), 0);
  EXPECT_GT(compare_versions("1.1.0", "1.0.0"), 0);
  EXPECT_GT(compare_versions("0.10.0", "0.4.0"), 0);
  EXPECT_TRUE(version_supported("0.3.0"));
  EXPECT_TRUE(version_supported("1.1.0"));
  EXPECT_FALSE(version_supported("0.2.0"));
  EXPECT_FALSE(version_supported("9.9.9"));
}

TEST(NetConf, DefaultsAreTheReferencePlugins) {
  NetConf c;
  ASSERT_FALSE(parse(base_conf(), Command::kAdd, &c));
  EXPECT_EQ(c.mode, core::Mode::kBridge);
  EXPECT_EQ(c.mode_text, "bridge");
  EXPECT_EQ(c.mtu, 0);
  EXPECT_TRUE(c.ipam_type.empty());
  EXPECT_FALSE(c.link_in_container);
  EXPECT_TRUE(c.stable_mac);
  EXPECT_EQ(c.dns, json::object());
}

TEST(NetConf, ReadsEveryField) {
  json j = base_conf();
  j["mode"] = "source";
  j["mtu"] = 1400;
  j["mac"] = "02-AA-bb-cc-dd-ee";
  j["linkInContainer"] = true;
  j["bcqueuelen"] = 2000;
  j["ipam"] = {{"type", "host-local"}, {"subnet", "10.0.0.0/24"}};
  j["dns"] = {{"nameservers", {"10.0.0.1"}}};
  j["runtimeConfig"] = {{"mac", "02:00:00:00:00:09"}};
  j["unknownKey"] = 5;
  NetConf c;
  ASSERT_FALSE(parse(j, Command::kAdd, &c));
  EXPECT_EQ(c.mode, core::Mode::kSource);
  EXPECT_EQ(c.mtu, 1400);
  EXPECT_TRUE(c.link_in_container);
  EXPECT_EQ(c.bcqueuelen, 2000u);
  EXPECT_EQ(c.ipam_type, "host-local");
  EXPECT_EQ(c.runtime_mac, "02:00:00:00:00:09");
  EXPECT_EQ(c.dns["nameservers"][0], "10.0.0.1");
}

TEST(NetConf, EachBadFieldIsNamed) {
  struct Case {
    json patch;
    int code;
    std::string word;
  };
  const std::vector<Case> cases = {
      {{{"mode", "hairpin"}}, kErrInvalidConfig, "\"mode\""},
      {{{"mtu", -1}}, kErrInvalidConfig, "\"mtu\""},
      {{{"mtu", "1500"}}, kErrInvalidConfig, "\"mtu\""},
      {{{"mac", "02:00:00:00:00"}}, kErrInvalidConfig, "\"mac\""},
      {{{"mac", "01:00:5e:00:00:01"}}, kErrInvalidConfig, "\"mac\""},
      {{{"master", 7}}, kErrInvalidConfig, "\"master\""},
      {{{"master", "a/b"}}, kErrInvalidConfig, "\"master\""},
      {{{"linkInContainer", "yes"}}, kErrInvalidConfig, "\"linkInContainer\""},
      {{{"bcqueuelen", -3}}, kErrInvalidConfig, "\"bcqueuelen\""},
      {{{"ipam", "host-local"}}, kErrInvalidConfig, "\"ipam\""},
      {{{"ipam", {{"type", "../x"}}}}, kErrInvalidConfig, "\"ipam.type\""},
      {{{"name", ""}}, kErrInvalidConfig, "network name"},
      {{{"name", "a b"}}, kErrInvalidConfig, "network name"},
      {{{"cniVersion", "9.9.9"}}, kErrIncompatibleVersion, "incompatible"},
      {{{"cniVersion", "0.2.0"}}, kErrIncompatibleVersion, "incompatible"},
  };
  for (const auto& k : cases) {
    json j = base_conf();
    j.merge_patch(k.patch);
    NetConf c;
    const auto e = parse(j, Command::kAdd, &c);
    ASSERT_TRUE(e) << k.patch.dump();
    EXPECT_EQ(e->code, k.code) << k.patch.dump();
    EXPECT_NE(e->msg.find(k.word), std::string::npos) << k.patch.dump() << ": " << e->msg;
  }
}

TEST(NetConf, IpamIsRequiredForAddOnly) {
  json j = base_conf();
  j.erase("ipam");
  NetConf c;
  const auto e = parse(j, Command::kAdd, &c);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code, kErrInvalidConfig);
  EXPECT_NE(e->msg.find("ipam"), std::string::npos);
  EXPECT_FALSE(parse(j, Command::kDel, &c));
}

TEST(NetConf, NotJsonIsADecodingError) {
  NetConf c;
  const auto e = parse_netconf("{\"name\":", Command::kAdd, &c);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code, kErrDecoding);
}

TEST(NetConf, StatusAndGcNeed110CheckNeeds040) {
  NetConf c;
  json j = base_conf();
  EXPECT_EQ(parse(j, Command::kStatus, &c)->code, kErrIncompatibleVersion);
  EXPECT_EQ(parse(j, Command::kGc, &c)->code, kErrIncompatibleVersion);
  j["cniVersion"] = "1.1.0";
  EXPECT_FALSE(parse(j, Command::kStatus, &c));
  EXPECT_FALSE(parse(j, Command::kGc, &c));
  j["cniVersion"] = "0.3.1";
  EXPECT_EQ(parse(j, Command::kCheck, &c)->code, kErrIncompatibleVersion);
  j["cniVersion"] = "0.4.0";
  EXPECT_FALSE(parse(j, Command::kCheck, &c));
}

TEST(NetConf, ValidAttachmentsNeedContainerIds) {
  json j = base_conf();
  j["cniVersion"] = "1.1.0";
  j["cni.dev/valid-attachments"] = json::array({{{"containerID", "a"}, {"ifname", "eth0"}}});
  NetConf c;
  EXPECT_FALSE(parse(j, Command::kGc, &c));
  EXPECT_EQ(c.valid_attachments.size(), 1u);
  j["cni.dev/valid-attachments"] = json::array({{{"ifname", "eth0"}}});
  EXPECT_EQ(parse(j, Command::kGc, &c)->code, kErrInvalidConfig);
}

TEST(Mac, PrecedenceRuntimeConfigThenArgsThenConf) {
  CniEnv env;
  ASSERT_FALSE(parse_env(add_env(), &env));
  json j = base_conf();
  j["mac"] = "02:00:00:00:00:01";
  j["runtimeConfig"] = {{"mac", "02:00:00:00:00:03"}};
  env.args = "IgnoreUnknown=1;MAC=02:00:00:00:00:02";
  NetConf c;
  ASSERT_FALSE(parse(j, Command::kAdd, &c));
  std::optional<core::MacAddress> m;
  ASSERT_FALSE(effective_mac(c, env, &m));
  EXPECT_EQ(m->to_string(), "02:00:00:00:00:03");
  c.runtime_mac.clear();
  ASSERT_FALSE(effective_mac(c, env, &m));
  EXPECT_EQ(m->to_string(), "02:00:00:00:00:02");
  env.args.clear();
  ASSERT_FALSE(effective_mac(c, env, &m));
  EXPECT_EQ(m->to_string(), "02:00:00:00:00:01");
}

TEST(Mac, BadMacFromArgsIsAnEnvironmentError) {
  CniEnv env;
  ASSERT_FALSE(parse_env(add_env(), &env));
  env.args = "MAC=zz";
  NetConf c;
  ASSERT_FALSE(parse(base_conf(), Command::kAdd, &c));
  std::optional<core::MacAddress> m;
  const auto e = effective_mac(c, env, &m);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code, kErrInvalidEnvironment);
}

TEST(Mac, StableAcrossCallsAndDistinctPerContainer) {
  CniEnv env;
  ASSERT_FALSE(parse_env(add_env(), &env));
  NetConf c;
  ASSERT_FALSE(parse(base_conf(), Command::kAdd, &c));
  std::optional<core::MacAddress> a, b, other;
  ASSERT_FALSE(effective_mac(c, env, &a));
  ASSERT_FALSE(effective_mac(c, env, &b));
  ASSERT_TRUE(a);
  EXPECT_EQ(*a, *b);
  EXPECT_TRUE(a->is_valid_unicast());
  EXPECT_TRUE(a->is_locally_administered());
  env.container_id = "c2";
  ASSERT_FALSE(effective_mac(c, env, &other));
  EXPECT_NE(*a, *other);
  // A pod keeps its MAC when its sandbox (container ID) changes.
  env.args = "K8S_POD_NAMESPACE=ns;K8S_POD_NAME=web-0";
  std::optional<core::MacAddress> p1, p2;
  ASSERT_FALSE(effective_mac(c, env, &p1));
  env.container_id = "c3";
  ASSERT_FALSE(effective_mac(c, env, &p2));
  EXPECT_EQ(*p1, *p2);
  // Off: the daemon picks one at random, as the kernel does.
  c.stable_mac = false;
  std::optional<core::MacAddress> none;
  ASSERT_FALSE(effective_mac(c, env, &none));
  EXPECT_FALSE(none);
}

TEST(Mac, PassthruTakesTheMastersMac) {
  CniEnv env;
  ASSERT_FALSE(parse_env(add_env(), &env));
  json j = base_conf();
  j["mode"] = "passthru";
  NetConf c;
  ASSERT_FALSE(parse(j, Command::kAdd, &c));
  std::optional<core::MacAddress> m;
  ASSERT_FALSE(effective_mac(c, env, &m));
  EXPECT_FALSE(m);
}

json host_local_result(const std::string& v) {
  json r = {{"cniVersion", v},
            {"ips",
             {{{"address", "10.0.0.2/24"}, {"gateway", "10.0.0.1"}},
              {{"address", "fd00::2/64"}, {"gateway", "fd00::1"}}}},
            {"routes", {{{"dst", "0.0.0.0/0"}}}},
            {"dns", json::object()}};
  if (compare_versions(v, "1.0.0") < 0) {
    r["ips"][0]["version"] = "4";
    r["ips"][1]["version"] = "6";
  }
  return r;
}

TEST(Result, VersionFieldOnlyBefore100) {
  const Interface iface{"eth0", "02:00:00:00:00:01", "/run/netns/c1"};
  for (const std::string v : {"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}) {
    json out;
    // The IPAM plugin may answer in another version (an older one for 1.1.0).
    ASSERT_FALSE(make_result(v, iface, host_local_result(v == "1.1.0" ? "1.0.0" : v),
                             {{"nameservers", {"10.0.0.1"}}}, &out));
    EXPECT_EQ(out["cniVersion"], v);
    ASSERT_EQ(out["interfaces"].size(), 1u);
    EXPECT_EQ(out["interfaces"][0]["sandbox"], "/run/netns/c1");
    ASSERT_EQ(out["ips"].size(), 2u);
    for (const auto& ip : out["ips"]) {
      EXPECT_EQ(ip["interface"], 0);
      EXPECT_EQ(ip.contains("version"), compare_versions(v, "1.0.0") < 0) << v;
    }
    EXPECT_EQ(out["ips"][1].value("version", "6"), "6");
    EXPECT_EQ(out["routes"].size(), 1u);
    EXPECT_EQ(out["dns"]["nameservers"][0], "10.0.0.1");
  }
}

TEST(Result, LayerTwoHasTheInterfaceOnly) {
  json out;
  ASSERT_FALSE(
      make_result("1.0.0", {"eth0", "02:00:00:00:00:01", "/x"}, nullptr, json::object(), &out));
  EXPECT_FALSE(out.contains("ips"));
  EXPECT_FALSE(out.contains("routes"));
  EXPECT_EQ(out["dns"], json::object());
}

TEST(Result, NoAddressFromIpamIsAnError) {
  json out;
  const auto e =
      make_result("1.0.0", {"eth0", "m", "/x"}, {{"cniVersion", "1.0.0"}}, json::object(), &out);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->msg, "IPAM plugin returned missing IP config");
}

TEST(Result, ParsesIpsAndRoutesAndRefusesGarbage) {
  std::vector<ResultIp> ips;
  std::vector<ResultRoute> routes;
  ASSERT_FALSE(parse_result_ips(host_local_result("0.4.0"), &ips, &routes));
  ASSERT_EQ(ips.size(), 2u);
  EXPECT_EQ(ips[0].family, 4);
  EXPECT_EQ(ips[0].address, "10.0.0.2");
  EXPECT_EQ(ips[0].prefix, 24);
  EXPECT_EQ(ips[1].family, 6);
  EXPECT_EQ(ips[1].gateway, "fd00::1");
  ASSERT_EQ(routes.size(), 1u);
  EXPECT_EQ(routes[0].prefix, 0);
  EXPECT_TRUE(parse_result_ips({{"ips", {{{"address", "10.0.0.300/24"}}}}}, &ips, &routes));
  EXPECT_TRUE(parse_result_ips({{"ips", {{{"address", "10.0.0.3/33"}}}}}, &ips, &routes));
  EXPECT_TRUE(parse_result_ips({{"ips", {{{"address", "10.0.0.3/24"}, {"gateway", "fd00::1"}}}}},
                               &ips, &routes));
  EXPECT_TRUE(parse_result_ips({{"routes", {{{"dst", "x"}}}}}, &ips, &routes));
}

TEST(ErrorJson, CarriesCodeMsgAndVersion) {
  const json j = to_json(CniError{kErrInvalidConfig, "bad", "why"}, "0.4.0");
  EXPECT_EQ(j["cniVersion"], "0.4.0");
  EXPECT_EQ(j["code"], 7);
  EXPECT_EQ(j["msg"], "bad");
  EXPECT_EQ(j["details"], "why");
  EXPECT_FALSE(to_json(CniError{1, "x", ""}, "").contains("details"));
}

TEST(VersionJson, ListsEverySupportedVersion) {
  const json j = version_json("0.4.0");
  EXPECT_EQ(j["cniVersion"], "0.4.0");
  EXPECT_EQ(j["supportedVersions"].size(), 5u);
  EXPECT_EQ(version_json("")["cniVersion"], "1.1.0");
}

}  // namespace
}  // namespace umacvlan::cni
