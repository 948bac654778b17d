// Files in a temporary directory; nothing else.
#include "daemon/state_store.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace umacvlan::daemon {
namespace {

namespace fs = std::filesystem;

core::MacAddress mac(const char* s) {
  return *core::MacAddress::parse(s);
}

State sample() {
  State s;
  PortRecord p;
  p.lower_name = "lower0";
  p.lower_ifindex = 2;
  p.lower_netns = 4026532001;
  p.lower_perm_mac = mac("02:77:00:00:00:02");
  p.bclim = -1;
  p.hostaccess = true;
  p.macnat = true;
  p.macnat_ageing = 60;
  DeviceRecord a;
  a.name = "mva";
  a.ifindex = 7;
  a.netns = 4026532002;
  a.mac = mac("02:00:00:00:00:0a");
  a.mode = core::Mode::kBridge;
  a.bcqueuelen = 5000;
  a.mtu = 1400;
  a.up = true;
  a.spoofchk = true;
  DeviceRecord s1 = a;
  s1.name = "src0";
  s1.mode = core::Mode::kSource;
  s1.flags = core::kFlagNoDst;
  s1.sources = {mac("02:00:00:00:aa:01"), mac("02:00:00:00:aa:02")};
  s1.pending = true;
  p.devices = {a, s1};
  s.ports = {p};
  return s;
}

class StateStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/umv-state-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/sub/state.json";
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string dir_, path_;
};

TEST_F(StateStoreTest, RoundTripsEveryField) {
  std::string error;
  ASSERT_EQ(save_state(path_, sample(), &error), 0) << error;
  EXPECT_FALSE(fs::exists(path_ + ".tmp"));
  EXPECT_EQ(fs::status(path_).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  State back;
  LoadResult result;
  ASSERT_EQ(load_state(path_, &back, &result, &error), 0) << error;
  EXPECT_EQ(result, LoadResult::kLoaded);
  EXPECT_EQ(back, sample());
}

// The file is written by hand: it must be exactly what json::dump() makes of
// it (keys sorted, compact, one line), for two ports, no devices, negative
// bclim, and names json has to escape.
TEST_F(StateStoreTest, WritesWhatJsonWouldWrite) {
  State s = sample();
  PortRecord empty;
  empty.lower_name = "lo\"we\\r";
  empty.lower_ifindex = 9;
  empty.bclim = -7;
  s.ports.push_back(empty);
  s.ports[0].devices[0].name =
      "a\"b\\c\x01"
      "d\xc3\xa9";
  std::string error;
  ASSERT_EQ(save_state(path_, s, &error), 0) << error;
  std::ifstream in(path_);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(), nlohmann::json::parse(text.str()).dump() + "\n");
  State back;
  LoadResult result;
  ASSERT_EQ(load_state(path_, &back, &result, &error), 0) << error;
  EXPECT_EQ(back, s);
}

// A name the kernel took that is not UTF-8 is saved (as U+FFFD), not thrown.
TEST_F(StateStoreTest, ANameThatIsNotUtf8IsSavedReplaced) {
  State s = sample();
  s.ports[0].devices[0].name = "bad\xff";
  std::string error;
  ASSERT_EQ(save_state(path_, s, &error), 0) << error;
  State back;
  LoadResult result;
  ASSERT_EQ(load_state(path_, &back, &result, &error), 0) << error;
  EXPECT_EQ(back.ports[0].devices[0].name, "bad\xef\xbf\xbd");
}

TEST_F(StateStoreTest, AMissingFileIsAnEmptyState) {
  State back = sample();
  LoadResult result;
  std::string error;
  ASSERT_EQ(load_state(path_, &back, &result, &error), 0);
  EXPECT_EQ(result, LoadResult::kMissing);
  EXPECT_TRUE(back.ports.empty());
}

TEST_F(StateStoreTest, ACorruptFileIsMovedAsideAndReported) {
  std::string error;
  ASSERT_EQ(save_state(path_, sample(), &error), 0);
  for (const std::string& bad :
       {std::string("{\"umacvlan_state\": 1, \"ports\": [{\"lower\": 3}]}"),
        std::string("not json at all"), std::string("{\"umacvlan_state\": 99, \"ports\": []}"),
        std::string("")}) {
    std::ofstream(path_) << bad;
    State back = sample();
    LoadResult result;
    ASSERT_EQ(load_state(path_, &back, &result, &error), 0) << bad;
    EXPECT_EQ(result, LoadResult::kCorrupt) << bad;
    EXPECT_TRUE(back.ports.empty());
    EXPECT_FALSE(fs::exists(path_)) << "moved aside";
    EXPECT_NE(error.find("moved to"), std::string::npos) << error;
    std::size_t aside = 0;
    for (const auto& e : fs::directory_iterator(dir_ + "/sub"))
      aside += e.path().filename().string().rfind("state.json.corrupt-", 0) == 0;
    EXPECT_GE(aside, 1u);
  }
}

TEST_F(StateStoreTest, SavesThePortOptions) {
  std::string error;
  ASSERT_EQ(save_state(path_, sample(), &error), 0) << error;
  std::ifstream in(path_);
  const auto j = nlohmann::json::parse(in);
  const auto& port = j.at("ports").at(0);
  EXPECT_EQ(port.at("hostaccess"), true);
  EXPECT_EQ(port.at("macnat"), true);
  EXPECT_EQ(port.at("macnat_ageing"), 60);
  // Off, the ageing is kept all the same.
  State off = sample();
  off.ports[0].macnat = false;
  off.ports[0].macnat_ageing = 86400;
  ASSERT_EQ(save_state(path_, off, &error), 0) << error;
  State back;
  LoadResult result;
  ASSERT_EQ(load_state(path_, &back, &result, &error), 0) << error;
  EXPECT_EQ(back, off);
}

// The file as sample() saves it, with edit applied to its port.
template <typename Edit>
std::string sample_file_with(const std::string& path, Edit edit) {
  std::string error;
  EXPECT_EQ(save_state(path, sample(), &error), 0) << error;
  std::ifstream in(path);
  auto j = nlohmann::json::parse(in);
  edit(j.at("ports").at(0));
  return j.dump();
}

TEST_F(StateStoreTest, AnOlderFileWithoutPortOptionsLoadsTheDefaults) {
  const std::string text = sample_file_with(path_, [](nlohmann::json& port) {
    port.erase("hostaccess");
    port.erase("macnat");
    port.erase("macnat_ageing");
  });
  std::ofstream(path_) << text;
  State back;
  LoadResult result;
  std::string error;
  ASSERT_EQ(load_state(path_, &back, &result, &error), 0) << error;
  ASSERT_EQ(result, LoadResult::kLoaded) << error;
  ASSERT_EQ(back.ports.size(), 1u);
  EXPECT_FALSE(back.ports[0].hostaccess);
  EXPECT_FALSE(back.ports[0].macnat);
  EXPECT_EQ(back.ports[0].macnat_ageing, control::kDefaultMacnatAgeing);
  EXPECT_EQ(back.ports[0].devices, sample().ports[0].devices);
}

TEST_F(StateStoreTest, ABadPortOptionIsACorruptFile) {
  const std::pair<const char*, nlohmann::json> cases[] = {
      {"hostaccess", "on"},    {"hostaccess", 1},       {"macnat", "on"},
      {"macnat", 1},           {"macnat", nullptr},     {"macnat_ageing", "300"},
      {"macnat_ageing", 0},    {"macnat_ageing", -1},   {"macnat_ageing", 86401},
      {"macnat_ageing", 60.5}, {"macnat_ageing", true},
  };
  for (const auto& [key, value] : cases) {
    const std::string text = sample_file_with(
        path_, [&, key = key, value = value](nlohmann::json& port) { port[key] = value; });
    std::ofstream(path_) << text;
    State back = sample();
    LoadResult result;
    std::string error;
    ASSERT_EQ(load_state(path_, &back, &result, &error), 0) << key << " " << value;
    EXPECT_EQ(result, LoadResult::kCorrupt) << key << " " << value;
    EXPECT_TRUE(back.ports.empty());
    EXPECT_NE(error.find("moved to"), std::string::npos) << error;
  }
  // The bounds themselves are fine.
  for (const int ageing : {1, 86400}) {
    const std::string text =
        sample_file_with(path_, [&](nlohmann::json& port) { port["macnat_ageing"] = ageing; });
    std::ofstream(path_) << text;
    State back;
    LoadResult result;
    std::string error;
    ASSERT_EQ(load_state(path_, &back, &result, &error), 0) << error;
    ASSERT_EQ(result, LoadResult::kLoaded) << error;
    EXPECT_EQ(back.ports[0].macnat_ageing, static_cast<std::uint32_t>(ageing));
  }
}

TEST_F(StateStoreTest, ASaveReplacesTheWholeFile) {
  std::string error;
  ASSERT_EQ(save_state(path_, sample(), &error), 0);
  ASSERT_EQ(save_state(path_, State{}, &error), 0);
  State back = sample();
  LoadResult result;
  ASSERT_EQ(load_state(path_, &back, &result, &error), 0);
  EXPECT_EQ(result, LoadResult::kLoaded);
  EXPECT_TRUE(back.ports.empty());
}

// The journal: the adds since the last save, a line each, merged in by load.
DeviceRecord added(const std::string& name) {
  DeviceRecord d;
  d.name = name;
  d.netns = 4026532002;
  d.mac = mac("02:00:00:00:00:0b");
  d.mode = core::Mode::kBridge;
  d.pending = true;
  return d;
}

// The port record with these devices (what the journal's lines add up to).
State with_devices(const PortRecord& port, const std::vector<std::string>& names) {
  PortRecord p = port;
  p.devices.clear();
  for (const std::string& n : names) p.devices.push_back(added(n));
  State s;
  s.ports = {p};
  return s;
}

// Appends one line per name.
void append(const std::string& path, const PortRecord& port,
            const std::vector<std::string>& names) {
  for (const std::string& n : names) {
    PortRecord p = port;
    p.devices = {added(n)};
    std::string error;
    ASSERT_EQ(append_journal(path, p, &error), 0) << error;
  }
}

TEST_F(StateStoreTest, AJournalAddsItsDevicesToTheirPort) {
  std::string error;
  const State file = sample();
  ASSERT_EQ(save_state(path_, file, &error), 0);
  // "mva" is in the file already (an add the file caught up with): kept once.
  append(path_, file.ports[0], {"mvb", "mva", "mvc"});
  EXPECT_TRUE(fs::exists(journal_path(path_)));
  State back;
  LoadResult result;
  ASSERT_EQ(load_state(path_, &back, &result, &error), 0);
  ASSERT_EQ(result, LoadResult::kLoaded);
  ASSERT_EQ(back.ports.size(), 1u);
  std::vector<std::string> names;
  for (const auto& d : back.ports[0].devices) names.push_back(d.name);
  EXPECT_EQ(names, (std::vector<std::string>{"mva", "src0", "mvb", "mvc"}));
  EXPECT_EQ(back.ports[0].devices[0], file.ports[0].devices[0]) << "the file's record wins";
  EXPECT_EQ(back.ports[0].devices[2], added("mvb"));
}

TEST_F(StateStoreTest, AJournalLineOfAnotherLowerAddsItsPort) {
  std::string error;
  ASSERT_EQ(save_state(path_, sample(), &error), 0);
  PortRecord other = sample().ports[0];
  other.lower_ifindex = 3;  // same name, another lower
  append(path_, other, {"mvx", "mvy"});
  State back;
  LoadResult result;
  ASSERT_EQ(load_state(path_, &back, &result, &error), 0);
  ASSERT_EQ(back.ports.size(), 2u);
  EXPECT_EQ(back.ports[0], sample().ports[0]);
  EXPECT_EQ(back.ports[1], with_devices(other, {"mvx", "mvy"}).ports[0]);
}

TEST_F(StateStoreTest, AJournalAloneIsLoaded) {
  append(path_, sample().ports[0], {"mvb"});
  State back;
  LoadResult result;
  std::string error;
  ASSERT_EQ(load_state(path_, &back, &result, &error), 0);
  EXPECT_EQ(result, LoadResult::kLoaded);
  EXPECT_EQ(back, with_devices(sample().ports[0], {"mvb"}));
}

TEST_F(StateStoreTest, ASaveRemovesTheJournal) {
  append(path_, sample().ports[0], {"mvb"});
  std::string error;
  ASSERT_EQ(save_state(path_, sample(), &error), 0);
  EXPECT_FALSE(fs::exists(journal_path(path_)));
  State back;
  LoadResult result;
  ASSERT_EQ(load_state(path_, &back, &result, &error), 0);
  EXPECT_EQ(back, sample());
}

// A crash in the middle of an append leaves a last line without its
// newline: that add never made its TAP nor answered, and is left out.
TEST_F(StateStoreTest, AnUnfinishedLastLineIsLeftOut) {
  append(path_, sample().ports[0], {"mvb"});
  std::ofstream(journal_path(path_), std::ios::app) << "{\"ports\":[{\"bclim\":0,\"dev";
  State back;
  LoadResult result;
  std::string error;
  ASSERT_EQ(load_state(path_, &back, &result, &error), 0);
  EXPECT_EQ(result, LoadResult::kLoaded);
  EXPECT_EQ(back, with_devices(sample().ports[0], {"mvb"}));
  EXPECT_TRUE(error.empty()) << error;
  EXPECT_TRUE(fs::exists(journal_path(path_))) << "not corrupt: left for the next save";
}

TEST_F(StateStoreTest, ACorruptJournalIsMovedAsideAndTheFileStands) {
  std::string error;
  ASSERT_EQ(save_state(path_, sample(), &error), 0);
  append(path_, sample().ports[0], {"mvb"});
  std::ofstream(journal_path(path_), std::ios::app) << "not a state\n";
  append(path_, sample().ports[0], {"mvc"});
  State back;
  LoadResult result;
  error.clear();
  ASSERT_EQ(load_state(path_, &back, &result, &error), 0);
  EXPECT_EQ(result, LoadResult::kLoaded);
  EXPECT_EQ(back, sample()) << "none of the journal";
  EXPECT_FALSE(fs::exists(journal_path(path_)));
  EXPECT_NE(error.find("not a valid journal (line 2:"), std::string::npos) << error;
}

TEST_F(StateStoreTest, AfterACorruptFileTheJournalIsLeftOut) {
  append(path_, sample().ports[0], {"mvb"});
  std::ofstream(path_) << "not json";
  State back = sample();
  LoadResult result;
  std::string error;
  ASSERT_EQ(load_state(path_, &back, &result, &error), 0);
  EXPECT_EQ(result, LoadResult::kCorrupt);
  EXPECT_TRUE(back.ports.empty());
}

TEST_F(StateStoreTest, RemoveStateRemovesTheFileAndItsJournal) {
  std::string error;
  ASSERT_EQ(save_state(path_, sample(), &error), 0);
  append(path_, sample().ports[0], {"mvb"});
  EXPECT_EQ(remove_state(path_), 0);
  EXPECT_FALSE(fs::exists(path_));
  EXPECT_FALSE(fs::exists(journal_path(path_)));
  EXPECT_EQ(remove_state(path_), 0) << "nothing there: nothing to do";
}

}  // namespace
}  // namespace umacvlan::daemon
