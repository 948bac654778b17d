#include "cli/lab.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace umacvlan::cli {
namespace {

LabOptions parse_ok(const std::vector<std::string>& args) {
  auto r = parse_lab_options(args);
  EXPECT_TRUE(std::holds_alternative<LabOptions>(r));
  return std::get<LabOptions>(r);
}

std::string parse_error(const std::vector<std::string>& args) {
  auto r = parse_lab_options(args);
  EXPECT_TRUE(std::holds_alternative<LabUsageError>(r));
  return std::holds_alternative<LabUsageError>(r) ? std::get<LabUsageError>(r).message : "";
}

TEST(LabOptions, DefaultsToAllFiveModesWithDrawbacks) {
  const auto o = parse_ok({});
  EXPECT_EQ(o.modes, (std::vector<std::string>{"private", "vepa", "bridge", "passthru", "source"}));
  EXPECT_TRUE(o.drawbacks);
  EXPECT_FALSE(o.keep || o.down || o.with_kernel || o.help);
}

TEST(LabOptions, ModesInOrderWithoutDuplicates) {
  const auto o = parse_ok({"--mode", "bridge", "--mode=private", "--mode", "bridge"});
  EXPECT_EQ(o.modes, (std::vector<std::string>{"bridge", "private"}));
}

TEST(LabOptions, Flags) {
  const auto o = parse_ok({"--with-kernel", "--no-drawbacks", "--keep", "--svg", "/tmp/x.svg"});
  EXPECT_TRUE(o.with_kernel);
  EXPECT_FALSE(o.drawbacks);
  EXPECT_TRUE(o.keep);
  ASSERT_TRUE(o.svg_file);
  EXPECT_EQ(*o.svg_file, "/tmp/x.svg");
  EXPECT_TRUE(parse_ok({"--down"}).down);
  EXPECT_TRUE(parse_ok({"help"}).help);
}

TEST(LabOptions, ErrorsAreIproute2Shaped) {
  EXPECT_EQ(parse_error({"--mode", "bogus"}),
            "Error: argument \"bogus\" is wrong: mode must be private, vepa, bridge, passthru or "
            "source\n");
  EXPECT_EQ(parse_error({"--mode"}), "Command line is not complete. Try option \"help\"\n");
  EXPECT_EQ(parse_error({"--svg"}), "Command line is not complete. Try option \"help\"\n");
  EXPECT_EQ(parse_error({"--frobnicate"}).rfind("Error: argument \"--frobnicate\" is wrong: ", 0),
            0u);
  EXPECT_EQ(parse_error({"--keep=1"}).rfind("Error: argument \"--keep=1\" is wrong: ", 0), 0u);
  EXPECT_EQ(parse_error({"--down", "--keep"}),
            "Error: argument \"--down\" is wrong: --down takes no other option\n");
}

ProbeResult probe(const std::string& from, const std::string& to) {
  ProbeResult p;
  p.probe = "x";
  p.title = "t";
  p.from = from;
  p.to = to;
  p.dst_mac = "02:77:00:00:01:0b";
  return p;
}

Observation seen(std::vector<Reception> r, bool wire, bool hairpin) {
  Observation o;
  o.ran = true;
  o.receptions = std::move(r);
  o.wire = wire;
  o.hairpin = hairpin;
  o.reachable = true;
  return o;
}

TEST(LabPaths, DeliveredInsideThePort) {
  const auto p = probe("mva", "mvb");
  EXPECT_EQ(probe_paths(p, seen({{"mvb", false, 1}}, false, false)),
            (std::vector<std::string>{"mva ─▶ port ─▶ mvb"}));
}

TEST(LabPaths, ReflectedByTheSwitch) {
  const auto p = probe("mva", "mvb");
  EXPECT_EQ(probe_paths(p, seen({{"mvb", true, 1}}, true, true)),
            (std::vector<std::string>{"mva ─▶ lower0 ─▶ switch ─▶ (hairpin) ─▶ lower0 ─▶ mvb"}));
}

TEST(LabPaths, DroppedWithoutHairpin) {
  const auto p = probe("mva", "mvb");
  EXPECT_EQ(probe_paths(p, seen({}, true, false)),
            (std::vector<std::string>{"mva ─▶ lower0 ─▶ switch ─▶ ✗ dropped (not sent back)"}));
  EXPECT_EQ(probe_paths(p, seen({}, false, false)), (std::vector<std::string>{"mva ─▶ ✗ dropped"}));
}

TEST(LabPaths, ReflectedButNobodyTookIt) {
  const auto p = probe("mva", "mvb");
  EXPECT_EQ(
      probe_paths(p, seen({}, true, true)),
      (std::vector<std::string>{"mva ─▶ lower0 ─▶ switch ─▶ (hairpin) ─▶ lower0 ─▶ ✗ dropped"}));
}

TEST(LabPaths, BroadcastFansOut) {
  const auto p = probe("mva", "mvb");
  const auto o = seen({{"mvb", false, 1}, {"outside", false, 1}, {"stack", true, 1}}, true, true);
  EXPECT_EQ(probe_paths(p, o), (std::vector<std::string>{
                                   "mva ─▶ port ─▶ mvb",
                                   "mva ─▶ lower0 ─▶ switch ─▶ outside",
                                   "mva ─▶ lower0 ─▶ switch ─▶ (hairpin) ─▶ lower0 ─▶ lower0 stack",
                               }));
  EXPECT_EQ(received_by(o), (std::vector<std::string>{"mvb", "outside", "wire", "stack"}));
}

TEST(LabPaths, FromOutsideAndCopies) {
  const auto p = probe("outside", "mvb");
  EXPECT_EQ(probe_paths(p, seen({{"mva", true, 1}, {"mvb", true, 2}}, false, true)),
            (std::vector<std::string>{"outside ─▶ switch ─▶ lower0 ─▶ mva",
                                      "outside ─▶ switch ─▶ lower0 ─▶ mvb (×2)"}));
  EXPECT_EQ(probe_paths(p, seen({}, false, false)),
            (std::vector<std::string>{"outside ─▶ switch ─▶ ✗ dropped"}));
}

TEST(LabPaths, FromTheHostStack) {
  const auto p = probe("lower0", "mva");
  EXPECT_EQ(
      probe_paths(p, seen({}, true, false)),
      (std::vector<std::string>{"lower0 stack ─▶ lower0 ─▶ switch ─▶ ✗ dropped (not sent back)"}));
}

TEST(LabPaths, NotRun) {
  Observation o;
  o.note = "no sibling";
  EXPECT_EQ(probe_paths(probe("mva", "mvb"), o),
            (std::vector<std::string>{"(not run: no sibling)"}));
}

ModeResult sample_mode(bool differ) {
  ModeResult m;
  m.mode = "bridge";
  m.devices = {{"mva", "bridge", "02:77:00:00:01:0a", "10.77.0.11", {}},
               {"mvb", "bridge", "02:77:00:00:01:0b", "10.77.0.12", {}}};
  for (bool h : {false, true}) {
    HairpinRun r;
    r.hairpin = h;
    ProbeResult p = probe("mva", "mvb");
    p.probe = "dev>sibling";
    p.title = "device → sibling";
    p.umacvlan = seen({{"mvb", false, 1}}, false, false);
    p.kernel = p.umacvlan;
    if (differ && h) {
      p.kernel = seen({}, true, false);
      p.kernel->reachable = false;
    }
    r.probes.push_back(p);
    m.runs.push_back(r);
  }
  return m;
}

TEST(LabRender, TopologyNamesEveryPart) {
  const std::string t = render_topology(sample_mode(false));
  for (const char* part :
       {"outside", "switch", "lower0", "mva  bridge", "mvb  bridge", "10.77.0.12", "┌", "┴"})
    EXPECT_NE(t.find(part), std::string::npos) << part << "\n" << t;
}

TEST(LabRender, TableMarksDifferences) {
  const std::string same = render_mode_text(sample_mode(false), true);
  EXPECT_NE(same.find("both      mva ─▶ port ─▶ mvb"), std::string::npos) << same;
  EXPECT_EQ(same.find("! kernel"), std::string::npos) << same;
  EXPECT_EQ(same.find(" !\n"), std::string::npos) << same;
  const std::string diff = render_mode_text(sample_mode(true), true);
  EXPECT_NE(diff.find("! kernel    mva ─▶ lower0 ─▶ switch"), std::string::npos) << diff;
  EXPECT_NE(diff.find("yes / no !"), std::string::npos) << diff;
}

TEST(LabRender, JsonHasBothColumns) {
  LabReport r;
  r.id = "abc123";
  r.with_kernel = true;
  r.modes.push_back(sample_mode(true));
  const auto j = report_json(r);
  const auto& p = j["modes"][0]["hairpin"][1]["probes"][0];
  EXPECT_EQ(p["probe"], "dev>sibling");
  EXPECT_EQ(p["from"], "mva");
  EXPECT_EQ(p["to"], "mvb");
  EXPECT_EQ(p["dst_mac"], "02:77:00:00:01:0b");
  EXPECT_EQ(p["received_by"], nlohmann::ordered_json::array({"mvb"}));
  EXPECT_EQ(p["reachable"], true);
  EXPECT_EQ(p["kernel"]["received_by"], nlohmann::ordered_json::array({"wire"}));
  EXPECT_EQ(p["kernel"]["reachable"], false);
  EXPECT_EQ(j["modes"][0]["hairpin"][1]["hairpin"], true);
}

TEST(LabDifference, OwnBroadcastBackFromHairpinIsKnown) {
  const std::vector<LabDevice> bridge{{"mva", "bridge", "m", "i", {}},
                                      {"mvb", "bridge", "m", "i", {}}};
  ProbeResult p = probe("mva", "mvb");
  p.dst_mac = "ff:ff:ff:ff:ff:ff";
  p.kernel = seen({{"mvb", false, 1}, {"outside", false, 1}}, true, true);
  p.umacvlan = seen({{"mva", true, 1}, {"mvb", false, 1}, {"outside", false, 1}}, true, true);
  EXPECT_NE(classify_difference(p, bridge), "");
  // Not for a unicast, another mode, or any further difference.
  auto vepa = bridge;
  vepa[0].mode = "vepa";
  EXPECT_EQ(classify_difference(p, vepa), "");
  ProbeResult more = p;
  more.umacvlan.receptions.push_back({"stack", true, 1});
  EXPECT_EQ(classify_difference(more, bridge), "");
  ProbeResult uni = p;
  uni.dst_mac = "02:77:00:00:01:0b";
  EXPECT_EQ(classify_difference(uni, bridge), "");
  ProbeResult same = p;
  same.umacvlan = *p.kernel;
  EXPECT_EQ(classify_difference(same, bridge), "");
}

TEST(LabRender, KnownDifferenceIsMarkedApart) {
  ModeResult m = sample_mode(true);
  m.runs[1].probes[0].known_difference = "on purpose";
  const std::string text = render_mode_text(m, true);
  EXPECT_NE(text.find("≈ kernel"), std::string::npos) << text;
  EXPECT_NE(text.find("yes / no ≈"), std::string::npos) << text;
  EXPECT_EQ(text.find("! kernel"), std::string::npos) << text;
  LabReport r;
  r.with_kernel = true;
  r.modes.push_back(m);
  EXPECT_NE(render_summary(r).find("the same on every probe (1 known, marked ≈)"),
            std::string::npos);
  EXPECT_EQ(report_json(r)["modes"][0]["hairpin"][1]["probes"][0]["known_difference"],
            "on purpose");
}

TEST(LabRender, SvgIsOneEscapedDocument) {
  LabReport r;
  r.id = "abc123";
  r.modes.push_back(sample_mode(true));
  r.drawbacks.push_back({"a", "a <b> & c", {"x"}});
  const std::string svg = render_svg(r);
  EXPECT_EQ(svg.rfind("<?xml", 0), 0u);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  EXPECT_NE(svg.find("a &lt;b&gt; &amp; c"), std::string::npos);
  EXPECT_NE(svg.find("mva ─▶ port ─▶ mvb"), std::string::npos);
  EXPECT_EQ(svg.find("<b>"), std::string::npos);
}

}  // namespace
}  // namespace umacvlan::cli
