#include "cli/link_parser.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

namespace umacvlan::cli {
namespace {

using control::LinkOp;
using control::LinkRequest;
using core::MacAddress;
using core::Mode;
using core::SourceOp;

std::vector<std::string> words(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

MacAddress mac(const char* text) {
  return *MacAddress::parse(text);
}

std::string describe(const LinkCommand& c) {
  if (const auto* e = std::get_if<ParseError>(&c)) {
    return "ParseError{" + std::to_string(e->exit_code) + ", " + e->message + "}";
  }
  if (std::holds_alternative<HelpText>(c)) return "HelpText";
  return "LinkRequest " + control::to_json(std::get<LinkRequest>(c)).dump();
}

// ------------------------------------------------------------------ success

struct GoodCase {
  std::string line;  // words after "link"
  LinkRequest want;
};

LinkRequest add_base() {
  LinkRequest r;
  r.op = LinkOp::kAdd;
  r.name = "m0";
  r.link = "eth0";
  r.type_macvlan = true;
  return r;
}

template <typename F>
LinkRequest add_with(F f) {
  LinkRequest r = add_base();
  f(r);
  return r;
}

LinkRequest set_base() {
  LinkRequest r;
  r.op = LinkOp::kSet;
  r.name = "m0";
  return r;
}

template <typename F>
LinkRequest set_with(F f) {
  LinkRequest r = set_base();
  f(r);
  return r;
}

LinkRequest simple(LinkOp op, std::string name, bool type = false) {
  LinkRequest r;
  r.op = op;
  r.name = std::move(name);
  r.type_macvlan = type;
  return r;
}

void PrintTo(const GoodCase& c, std::ostream* os) {
  *os << "link " << c.line;
}

class GoodCommand : public ::testing::TestWithParam<GoodCase> {};

TEST_P(GoodCommand, ParsesToRequest) {
  const GoodCase& c = GetParam();
  const LinkCommand got = parse_link_command(words(c.line));
  ASSERT_TRUE(std::holds_alternative<LinkRequest>(got)) << c.line << " -> " << describe(got);
  EXPECT_EQ(std::get<LinkRequest>(got), c.want)
      << c.line << "\n got: " << describe(got) << "\nwant: " << control::to_json(c.want).dump();
}

const GoodCase kGoodCases[] = {
    {"add link eth0 name m0 type macvlan", add_base()},
    {"add name m0 link eth0 type macvlan", add_base()},
    {"add link eth0 dev m0 type macvlan", add_base()},
    {"add link eth0 m0 type macvlan", add_base()},
    {"add m0 link eth0 type macvlan", add_base()},
    {"add link eth1 link eth0 name m0 type macvlan", add_base()},  // last link wins, like ip
    {"add link eth0 name m0 type macvlan mode private",
     add_with([](LinkRequest& r) { r.mode = Mode::kPrivate; })},
    {"add link eth0 name m0 type macvlan mode vepa",
     add_with([](LinkRequest& r) { r.mode = Mode::kVepa; })},
    {"add link eth0 name m0 type macvlan mode bridge",
     add_with([](LinkRequest& r) { r.mode = Mode::kBridge; })},
    {"add link eth0 name m0 type macvlan mode passthru",
     add_with([](LinkRequest& r) { r.mode = Mode::kPassthru; })},
    {"add link eth0 name m0 type macvlan mode source",
     add_with([](LinkRequest& r) { r.mode = Mode::kSource; })},
    {"add link eth0 name m0 type macvlan mode bridge mode vepa",
     add_with([](LinkRequest& r) { r.mode = Mode::kVepa; })},
    {"add link eth0 name m0 type macvlan mode passthru nopromisc", add_with([](LinkRequest& r) {
       r.mode = Mode::kPassthru;
       r.flags = core::kFlagNoPromisc;
     })},
    {"add link eth0 name m0 type macvlan nopromisc mode passthru", add_with([](LinkRequest& r) {
       r.mode = Mode::kPassthru;
       r.flags = core::kFlagNoPromisc;
     })},
    {"add link eth0 name m0 type macvlan mode passthru flag nopromisc",
     add_with([](LinkRequest& r) {
       r.mode = Mode::kPassthru;
       r.flags = core::kFlagNoPromisc;
     })},
    {"add link eth0 name m0 type macvlan mode passthru nopromisc flag null",
     add_with([](LinkRequest& r) {
       r.mode = Mode::kPassthru;
       r.flags = core::kFlagNoPromisc;
     })},
    {"add link eth0 name m0 type macvlan flag null", add_with([](LinkRequest& r) { r.flags = 0; })},
    {"add link eth0 name m0 type macvlan mode source nodst", add_with([](LinkRequest& r) {
       r.mode = Mode::kSource;
       r.flags = core::kFlagNoDst;
     })},
    // Accepted outside source mode, as iproute2 6.1 and the kernel do.
    {"add link eth0 name m0 type macvlan mode bridge nodst", add_with([](LinkRequest& r) {
       r.mode = Mode::kBridge;
       r.flags = core::kFlagNoDst;
     })},
    {"add link eth0 name m0 type macvlan nodst",
     add_with([](LinkRequest& r) { r.flags = core::kFlagNoDst; })},
    {"add link eth0 name m0 type macvlan mode source flag nodst", add_with([](LinkRequest& r) {
       r.mode = Mode::kSource;
       r.flags = core::kFlagNoDst;
     })},
    {"add link eth0 name m0 type macvlan bcqueuelen 0",
     add_with([](LinkRequest& r) { r.bcqueuelen = 0; })},
    {"add link eth0 name m0 type macvlan bcqueuelen 4294967295",
     add_with([](LinkRequest& r) { r.bcqueuelen = 4294967295u; })},
    {"add link eth0 name m0 type macvlan bcqueuelen 0x10",
     add_with([](LinkRequest& r) { r.bcqueuelen = 16; })},
    {"add link eth0 name m0 type macvlan bcqueuelen 010",
     add_with([](LinkRequest& r) { r.bcqueuelen = 8; })},
    {"add link eth0 name m0 type macvlan bcqueuelen 5 bcqueuelen 6",
     add_with([](LinkRequest& r) { r.bcqueuelen = 6; })},
    {"add link eth0 name m0 type macvlan bclim -1", add_with([](LinkRequest& r) { r.bclim = -1; })},
    {"add link eth0 name m0 type macvlan bclim -2147483648",
     add_with([](LinkRequest& r) { r.bclim = -2147483647 - 1; })},
    {"add link eth0 name m0 type macvlan bclim 7", add_with([](LinkRequest& r) { r.bclim = 7; })},
    {"add link eth0 name m0 address 02:00:00:00:00:aa type macvlan",
     add_with([](LinkRequest& r) { r.address = mac("02:00:00:00:00:aa"); })},
    {"add link eth0 name m0 address 2:0:0:0:0:AA type macvlan",
     add_with([](LinkRequest& r) { r.address = mac("02:00:00:00:00:aa"); })},
    {"add link eth0 name m0 address 0x2:0:0:0:0:002 type macvlan",
     add_with([](LinkRequest& r) { r.address = mac("02:00:00:00:00:02"); })},
    {"add link eth0 name m0 address 02:00:00:00:00:01 address 02:00:00:00:00:02 type macvlan",
     add_with([](LinkRequest& r) { r.address = mac("02:00:00:00:00:02"); })},
    {"add link eth0 name m0 mtu 1400 type macvlan", add_with([](LinkRequest& r) { r.mtu = 1400; })},
    {"add link eth0 name m0 mtu 0x500 type macvlan",
     add_with([](LinkRequest& r) { r.mtu = 1280; })},
    {"add link eth0 name m0 mtu 68 type macvlan", add_with([](LinkRequest& r) { r.mtu = 68; })},
    {"add link eth0 name m0 mtu 65535 type macvlan",
     add_with([](LinkRequest& r) { r.mtu = 65535; })},
    {"add link eth0 name m0 up type macvlan", add_with([](LinkRequest& r) { r.up = true; })},
    {"add link eth0 name m0 down type macvlan", add_with([](LinkRequest& r) { r.up = false; })},
    {"add link eth0 name m0 up down type macvlan", add_with([](LinkRequest& r) { r.up = false; })},
    {"add link eth0 name 123456789012345 type macvlan",
     add_with([](LinkRequest& r) { r.name = "123456789012345"; })},
    {"add link eth0 name m0 type macvlan mode source macaddr add 02:00:00:00:00:01",
     add_with([](LinkRequest& r) {
       r.mode = Mode::kSource;
       r.macaddr_mode = core::SourceOp::kAdd;
       r.macaddrs = {mac("02:00:00:00:00:01")};
     })},
    {"add link eth0 name m0 type macvlan mode source macaddr del 02:00:00:00:00:01",
     add_with([](LinkRequest& r) {
       r.mode = Mode::kSource;
       r.macaddr_mode = core::SourceOp::kDel;
       r.macaddrs = {mac("02:00:00:00:00:01")};
     })},
    {"add link eth0 name m0 type macvlan mode source macaddr set", add_with([](LinkRequest& r) {
       r.mode = Mode::kSource;
       r.macaddr_mode = core::SourceOp::kSet;
     })},
    {"add link eth0 name m0 type macvlan mode source macaddr set 02:00:00:00:00:01 "
     "02:00:00:00:00:02",
     add_with([](LinkRequest& r) {
       r.mode = Mode::kSource;
       r.macaddr_mode = core::SourceOp::kSet;
       r.macaddrs = {mac("02:00:00:00:00:01"), mac("02:00:00:00:00:02")};
     })},
    // The list ends at the first word that is not an address.
    {"add link eth0 name m0 type macvlan macaddr set 02:00:00:00:00:01 mode source nodst",
     add_with([](LinkRequest& r) {
       r.mode = Mode::kSource;
       r.flags = core::kFlagNoDst;
       r.macaddr_mode = core::SourceOp::kSet;
       r.macaddrs = {mac("02:00:00:00:00:01")};
     })},
    {"add link eth0 name m0 type macvlan mode source macaddr flush", add_with([](LinkRequest& r) {
       r.mode = Mode::kSource;
       r.macaddr_mode = core::SourceOp::kFlush;
     })},
    // Only the last macaddr operation counts (iproute2 6.1 + kernel behaviour).
    {"add link eth0 name m0 type macvlan mode source macaddr add 02:00:00:00:00:01 macaddr add "
     "02:00:00:00:00:02",
     add_with([](LinkRequest& r) {
       r.mode = Mode::kSource;
       r.macaddr_mode = core::SourceOp::kAdd;
       r.macaddrs = {mac("02:00:00:00:00:02")};
     })},
    {"add link eth0 name m0 type macvlan mode source macaddr set 02:00:00:00:00:01 "
     "02:00:00:00:00:03 macaddr flush",
     add_with([](LinkRequest& r) {
       r.mode = Mode::kSource;
       r.macaddr_mode = core::SourceOp::kFlush;
     })},
    {"add link eth0 name m0 address 02:00:00:00:00:aa mtu 1400 up type macvlan mode bridge "
     "bcqueuelen 100 bclim 3",
     add_with([](LinkRequest& r) {
       r.address = mac("02:00:00:00:00:aa");
       r.mtu = 1400;
       r.up = true;
       r.mode = Mode::kBridge;
       r.bcqueuelen = 100;
       r.bclim = 3;
     })},
    {"add link eth0 name m0 type macvlan mode bridge macnat on", add_with([](LinkRequest& r) {
       r.mode = Mode::kBridge;
       r.macnat = true;
     })},
    {"add link eth0 name m0 type macvlan macnat on macnat_ageing 60", add_with([](LinkRequest& r) {
       r.macnat = true;
       r.macnat_ageing = 60;
     })},
    {"add link eth0 name m0 type macvlan macnat_ageing 60 macnat off",
     add_with([](LinkRequest& r) {
       r.macnat = false;
       r.macnat_ageing = 60;
     })},
    // Repeated, the last one wins (as bcqueuelen, spoofchk, hostaccess).
    {"add link eth0 name m0 type macvlan macnat on macnat off",
     add_with([](LinkRequest& r) { r.macnat = false; })},
    {"add link eth0 name m0 type macvlan macnat_ageing 10 macnat_ageing 20",
     add_with([](LinkRequest& r) { r.macnat_ageing = 20; })},
    {"set m0", set_base()},
    {"set dev m0", set_base()},
    {"set m0 up", set_with([](LinkRequest& r) { r.up = true; })},
    {"set dev m0 down", set_with([](LinkRequest& r) { r.up = false; })},
    {"set dev m0 up down", set_with([](LinkRequest& r) { r.up = false; })},
    {"set up dev m0", set_with([](LinkRequest& r) { r.up = true; })},
    {"set m0 mtu 1400", set_with([](LinkRequest& r) { r.mtu = 1400; })},
    {"set m0 address 02:00:00:00:00:bb",
     set_with([](LinkRequest& r) { r.address = mac("02:00:00:00:00:bb"); })},
    {"set m0 type macvlan", set_with([](LinkRequest& r) { r.type_macvlan = true; })},
    {"set m0 type macvlan mode bridge", set_with([](LinkRequest& r) {
       r.type_macvlan = true;
       r.mode = Mode::kBridge;
     })},
    {"set m0 type macvlan macaddr flush", set_with([](LinkRequest& r) {
       r.type_macvlan = true;
       r.macaddr_mode = core::SourceOp::kFlush;
     })},
    {"set m0 type macvlan bcqueuelen 10 bclim -1", set_with([](LinkRequest& r) {
       r.type_macvlan = true;
       r.bcqueuelen = 10;
       r.bclim = -1;
     })},
    {"set m0 up address 02:00:00:00:00:bb mtu 1300 type macvlan mode source nodst macaddr add "
     "02:00:00:00:00:01",
     set_with([](LinkRequest& r) {
       r.up = true;
       r.address = mac("02:00:00:00:00:bb");
       r.mtu = 1300;
       r.type_macvlan = true;
       r.mode = Mode::kSource;
       r.flags = core::kFlagNoDst;
       r.macaddr_mode = core::SourceOp::kAdd;
       r.macaddrs = {mac("02:00:00:00:00:01")};
     })},
    {"set m0 type macvlan macnat on", set_with([](LinkRequest& r) {
       r.type_macvlan = true;
       r.macnat = true;
     })},
    // macnat_ageing alone: the ageing of a port that has macnat on.
    {"set m0 type macvlan macnat_ageing 1", set_with([](LinkRequest& r) {
       r.type_macvlan = true;
       r.macnat_ageing = 1;
     })},
    {"set m0 type macvlan macnat_ageing 86400", set_with([](LinkRequest& r) {
       r.type_macvlan = true;
       r.macnat_ageing = 86400;
     })},
    {"set m0 type macvlan macnat_ageing 0x10", set_with([](LinkRequest& r) {
       r.type_macvlan = true;
       r.macnat_ageing = 16;
     })},
    {"set m0 type macvlan macnat off macnat_ageing 300 hostaccess on",
     set_with([](LinkRequest& r) {
       r.type_macvlan = true;
       r.macnat = false;
       r.macnat_ageing = 300;
       r.hostaccess = true;
     })},
    {"set dev aaaaaaaaaaaaaaaaaaaa up",
     [] {
       LinkRequest r = simple(LinkOp::kSet, "aaaaaaaaaaaaaaaaaaaa");
       r.up = true;
       return r;
     }()},
    {"del m0", simple(LinkOp::kDelete, "m0")},
    {"delete m0", simple(LinkOp::kDelete, "m0")},
    {"del dev m0", simple(LinkOp::kDelete, "m0")},
    {"del dev m0 type macvlan", simple(LinkOp::kDelete, "m0", true)},
    {"", simple(LinkOp::kShow, "")},
    {"show", simple(LinkOp::kShow, "")},
    {"list", simple(LinkOp::kShow, "")},
    {"lst", simple(LinkOp::kShow, "")},
    {"show m0", simple(LinkOp::kShow, "m0")},
    {"show dev m0", simple(LinkOp::kShow, "m0")},
    {"show type macvlan", simple(LinkOp::kShow, "", true)},
    {"show dev m0 type macvlan", simple(LinkOp::kShow, "m0", true)},
};

INSTANTIATE_TEST_SUITE_P(Grammar, GoodCommand, ::testing::ValuesIn(kGoodCases));

// ------------------------------------------------------------------- errors

struct BadCase {
  std::string line;
  int exit_code;
  std::string first_lines;  // the message before any usage text
  bool usage;               // followed by the macvlan usage text
};

void PrintTo(const BadCase& c, std::ostream* os) {
  *os << "link " << c.line;
}

class BadCommand : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadCommand, RefusedLikeIp) {
  const BadCase& c = GetParam();
  const LinkCommand got = parse_link_command(words(c.line));
  ASSERT_TRUE(std::holds_alternative<ParseError>(got)) << c.line << " -> " << describe(got);
  const ParseError& e = std::get<ParseError>(got);
  EXPECT_EQ(e.exit_code, c.exit_code) << c.line;
  EXPECT_EQ(e.message, c.first_lines + (c.usage ? macvlan_usage() : "")) << c.line;
}

const std::string kIncomplete = "Command line is not complete. Try option \"help\"\n";
const std::string kMode =
    "Error: argument of \"mode\" must be \"private\", \"vepa\", \"bridge\", \"passthru\" or "
    "\"source\", not ";
const std::string kEinval = "RTNETLINK answers: Invalid argument\n";
const std::string kEaddrnotavail = "RTNETLINK answers: Cannot assign requested address\n";
const std::string kMacnatAgeing =
    "Error: argument of \"macnat_ageing\" must be an integer [1-86400], not ";
const std::string kAdd = "add link eth0 name m0 ";
const std::string kMv = "add link eth0 name m0 type macvlan ";

const BadCase kBadCases[] = {
    // macvlan option values (ip exits 1)
    {kMv + "mode foo", 1, kMode + "\"foo\"\n", false},
    {kMv + "mode nodst", 1, kMode + "\"nodst\"\n", false},
    {kMv + "mode Bridge", 1, kMode + "\"Bridge\"\n", false},
    {kMv + "flag foo", 1,
     "Error: argument of \"flag\" must be \"nopromisc\", \"nodst\" or \"null\", not \"foo\"\n",
     false},
    {kMv + "bcqueuelen -1", 1,
     "Error: argument of \"bcqueuelen\" must be a positive integer [0-4294967295], not \"-1\"\n",
     false},
    {kMv + "bcqueuelen abc", 1,
     "Error: argument of \"bcqueuelen\" must be a positive integer [0-4294967295], not \"abc\"\n",
     false},
    {kMv + "bcqueuelen 4294967296", 1,
     "Error: argument of \"bcqueuelen\" must be a positive integer [0-4294967295], not "
     "\"4294967296\"\n",
     false},
    {kMv + "bclim x", 1,
     "Error: argument of \"bclim\" must be an integer [-2147483648-2147483647], not \"x\"\n",
     false},
    {kMv + "bclim 2147483648", 1,
     "Error: argument of \"bclim\" must be an integer [-2147483648-2147483647], not "
     "\"2147483648\"\n",
     false},
    {kMv + "macnat maybe", 1,
     "Error: argument of \"macnat\" must be \"on\" or \"off\", not \"maybe\"\n", false},
    {kMv + "macnat On", 1, "Error: argument of \"macnat\" must be \"on\" or \"off\", not \"On\"\n",
     false},
    {kMv + "macnat_ageing 0", 1, kMacnatAgeing + "\"0\"\n", false},
    {kMv + "macnat_ageing 86401", 1, kMacnatAgeing + "\"86401\"\n", false},
    {kMv + "macnat_ageing x", 1, kMacnatAgeing + "\"x\"\n", false},
    {kMv + "macnat_ageing -1", 1, kMacnatAgeing + "\"-1\"\n", false},
    {kMv + "macnat_ageing 60s", 1, kMacnatAgeing + "\"60s\"\n", false},
    {kMv + "macnat on macnat_ageing 4294967297", 1, kMacnatAgeing + "\"4294967297\"\n", false},
    {"set eth0 type macvlan macnat_ageing 0", 1, kMacnatAgeing + "\"0\"\n", false},
    {"set eth0 type macvlan macnat yes", 1,
     "Error: argument of \"macnat\" must be \"on\" or \"off\", not \"yes\"\n", false},
    {"set eth0 macnat on", 255, "Error: either \"dev\" is duplicate, or \"macnat\" is a garbage.\n",
     false},
    {kMv + "foo", 1, "macvlan: unknown option \"foo\"?\n", true},
    {kMv + "up", 1, "macvlan: unknown option \"up\"?\n", true},
    {kMv + "Mode bridge", 1, "macvlan: unknown option \"Mode\"?\n", true},
    {kMv + "mode passthru nopromisc extra", 1, "macvlan: unknown option \"extra\"?\n", true},
    {kMv + "help", 1, "", true},
    {kMv + "mode bridge nopromisc", 1, "macvlan: nopromisc flag only valid in passthru mode\n",
     true},
    {kMv + "nopromisc", 1, "macvlan: nopromisc flag only valid in passthru mode\n", true},
    {kMv + "flag nopromisc", 1, "macvlan: nopromisc flag only valid in passthru mode\n", true},
    {kMv + "mode source nopromisc", 1, "macvlan: nopromisc flag only valid in passthru mode\n",
     true},
    {kMv + "macaddr foo", 1, "", true},
    {kMv + "mode source macaddr add zz", 1, "\"zz\" is invalid lladdr.\n", false},
    {kMv + "mode source macaddr add 02-00-00-00-00-01", 1,
     "\"02-00-00-00-00-01\" is invalid lladdr.\n", false},
    {kMv + "mode source macaddr add 02:00:00:00:00", 1, "\"02:00:00:00:00\" is invalid lladdr.\n",
     false},
    {kMv + "mode source macaddr set zz", 1,
     "\"zz\" is invalid lladdr.\nmacvlan: unknown option \"zz\"?\n", true},
    {kMv + "mode source macaddr set 02:00:00:00:00 02:00:00:00:00:01", 1,
     "macvlan: unknown option \"02:00:00:00:00\"?\n", true},
    // addresses (ip's own check: exit 1)
    {kAdd + "address zz type macvlan", 1, "\"zz\" is invalid lladdr.\n", false},
    {kAdd + "address 02:zz:00:00:00:01 type macvlan", 1, "\"zz\" is invalid lladdr.\n", false},
    {kAdd + "address 02:100:00:00:00:01 type macvlan", 1, "\"100\" is invalid lladdr.\n", false},
    {kAdd + "address 02::00:00:00:01 type macvlan", 1, "\"\" is invalid lladdr.\n", false},
    {kAdd + "address 02:00:00:00:00:01: type macvlan", 1, "\"\" is invalid lladdr.\n", false},
    {kAdd + "address 02:00:00:00:00:-1 type macvlan", 1, "\"-1\" is invalid lladdr.\n", false},
    {"set m0 address zz", 1, "\"zz\" is invalid lladdr.\n", false},
    // incomplete commands (exit 255)
    {kMv + "mode", 255, kIncomplete, false},
    {kMv + "flag", 255, kIncomplete, false},
    {kMv + "bcqueuelen", 255, kIncomplete, false},
    {kMv + "bclim", 255, kIncomplete, false},
    {kMv + "macaddr", 255, kIncomplete, false},
    {kMv + "macnat", 255, kIncomplete, false},
    {kMv + "macnat_ageing", 255, kIncomplete, false},
    {kMv + "macnat on macnat_ageing", 255, kIncomplete, false},
    {"set eth0 type macvlan macnat", 255, kIncomplete, false},
    {kMv + "macaddr add", 255, kIncomplete, false},
    {kMv + "macaddr del", 255, kIncomplete, false},
    {kAdd + "type", 255, kIncomplete, false},
    {kAdd + "mtu", 255, kIncomplete, false},
    {kAdd + "address", 255, kIncomplete, false},
    {"add link", 255, kIncomplete, false},
    {"add link eth0 name", 255, kIncomplete, false},
    {"set dev", 255, kIncomplete, false},
    {"del dev", 255, kIncomplete, false},
    {"show dev", 255, kIncomplete, false},
    // generic words (exit 255)
    {kAdd + "mtu abc type macvlan", 255,
     "Error: argument \"abc\" is wrong: Invalid \"mtu\" value\n\n", false},
    {kAdd + "mtu 99999999999 type macvlan", 255,
     "Error: argument \"99999999999\" is wrong: Invalid \"mtu\" value\n\n", false},
    {"set m0 mtu abc", 255, "Error: argument \"abc\" is wrong: Invalid \"mtu\" value\n\n", false},
    {kAdd + "mtu 1400 mtu 1300 type macvlan", 255,
     "Error: duplicate \"mtu\": \"1300\" is the second value.\n", false},
    {"set m0 mtu 1400 mtu 1300", 255, "Error: duplicate \"mtu\": \"1300\" is the second value.\n",
     false},
    {"add link eth0 name m0 name m1 type macvlan", 255,
     "Error: duplicate \"name\": \"m1\" is the second value.\n", false},
    {"add link eth0 dev m0 name m1 type macvlan", 255,
     "both \"name\" and \"dev\" cannot be used when creating devices.\n", false},
    {"add link eth0 name m0 bogus type macvlan nopromisc", 255,
     "both \"name\" and \"dev\" cannot be used when creating devices.\n", false},
    {"add link eth0 dev m0 dev m1 type macvlan", 255,
     "Error: either \"dev\" is duplicate, or \"m1\" is a garbage.\n", false},
    {"add link eth0 m0 m1 type macvlan", 255,
     "Error: either \"dev\" is duplicate, or \"m1\" is a garbage.\n", false},
    {"add link eth0 name aaaaaaaaaaaaaaaa type macvlan", 255,
     "Error: argument \"aaaaaaaaaaaaaaaa\" is wrong: \"name\" not a valid ifname\n", false},
    {"add link eth0 name a/b type macvlan", 255,
     "Error: argument \"a/b\" is wrong: \"name\" not a valid ifname\n", false},
    {"add link eth0 dev a/b type macvlan", 255,
     "Error: argument \"a/b\" is wrong: \"dev\" not a valid ifname\n", false},
    {"add link eth0 a/b type macvlan", 255,
     "Error: argument \"a/b\" is wrong: \"dev\" not a valid ifname\n", false},
    {"set dev a/b up", 255, "Error: argument \"a/b\" is wrong: \"dev\" not a valid ifname\n",
     false},
    {"set m0 bogus", 255, "Error: either \"dev\" is duplicate, or \"bogus\" is a garbage.\n",
     false},
    {"set dev m0 dev m1", 255, "Error: either \"dev\" is duplicate, or \"m1\" is a garbage.\n",
     false},
    {"del m0 extra", 255, "Error: either \"dev\" is duplicate, or \"extra\" is a garbage.\n",
     false},
    {"show m0 extra", 255, "Error: either \"dev\" is duplicate, or \"extra\" is a garbage.\n",
     false},
    {"show dev m0 dev m1", 255, "Error: either \"dev\" is duplicate, or \"m1\" is a garbage.\n",
     false},
    {"set", 255, "Not enough information: \"dev\" argument is required.\n", false},
    {"set up", 255, "Not enough information: \"dev\" argument is required.\n", false},
    {"del", 255, "Not enough information: \"dev\" argument is required.\n", false},
    {"set m0 txqueuelen 5", 255,
     "Error: \"txqueuelen\" is not supported by umacvlan; see \"umacvlan link help\".\n", false},
    {"add link eth0 name m0 netns x type macvlan", 255,
     "Error: \"netns\" is not supported by umacvlan; see \"umacvlan link help\".\n", false},
    {"foo", 255, "Command \"foo\" is unknown, try \"umacvlan link help\".\n", false},
    {"ad link eth0 name m0 type macvlan", 255,
     "Command \"ad\" is unknown, try \"umacvlan link help\".\n", false},
    // the type
    {"add link eth0 name m0", 1,
     "Not enough information: \"type\" argument is required (umacvlan only creates links of "
     "\"type macvlan\")\n",
     false},
    {"add", 1,
     "Not enough information: \"type\" argument is required (umacvlan only creates links of "
     "\"type macvlan\")\n",
     false},
    {"add link eth0 name m0 type vlan id 5", 1,
     "Error: umacvlan only handles \"type macvlan\" links, not \"vlan\".\n", false},
    {"set m0 type macvtap", 1,
     "Error: umacvlan only handles \"type macvlan\" links, not \"macvtap\".\n", false},
    {"show type veth", 1, "Error: umacvlan only handles \"type macvlan\" links, not \"veth\".\n",
     false},
    // missing name / lower
    {"add link eth0 type macvlan", 255, "Not enough information: \"name\" argument is required.\n",
     false},
    // ip leaves it to the kernel: its first line, then umacvlan's reason.
    {"add name m0 type macvlan", 2,
     "RTNETLINK answers: Invalid argument\n"
     "umacvlan: a macvlan link needs a lower device (\"link DEVICE\").\n",
     false},
    // what the kernel would refuse (ip exits 2)
    {kAdd + "mtu 0 type macvlan", 2, "Error: mtu less than device minimum.\n", false},
    {kAdd + "mtu 67 type macvlan", 2, "Error: mtu less than device minimum.\n", false},
    {kAdd + "mtu -1 type macvlan", 2, "Error: mtu less than device minimum.\n", false},
    {kAdd + "mtu 70000 type macvlan", 2, "Error: mtu greater than device maximum.\n", false},
    {"set m0 mtu 10", 2, "Error: mtu less than device minimum.\n", false},
    {kAdd + "address 01:00:00:00:00:01 type macvlan", 2, kEaddrnotavail, false},
    {kAdd + "address 00:00:00:00:00:00 type macvlan", 2, kEaddrnotavail, false},
    {kAdd + "address ff:ff:ff:ff:ff:ff type macvlan", 2, kEaddrnotavail, false},
    {"set m0 address 01:00:5e:00:00:01", 2, kEaddrnotavail, false},
    {kAdd + "address 02:00:00:00:00 type macvlan", 2, kEinval, false},
    {kAdd + "address 02:00:00:00:00:01:03 type macvlan", 2, kEinval, false},
    {kAdd + "address 02-00-00-00-00-01 type macvlan", 2, kEinval, false},
    {kAdd + "address 01:00:00:00:00:01 mtu 12 type macvlan", 2, kEaddrnotavail, false},
    {kMv + "mode source macaddr add 01:00:00:00:00:01", 2, kEaddrnotavail, false},
    {kMv + "mode source macaddr del 01:00:00:00:00:01", 2, kEaddrnotavail, false},
    {kMv + "mode source macaddr set 02:00:00:00:00:01 00:00:00:00:00:00", 2, kEaddrnotavail, false},
    {kMv + "macaddr flush", 2, kEinval, false},
    {kMv + "macaddr set", 2, kEinval, false},
    {kMv + "mode bridge macaddr add 02:00:00:00:00:01", 2, kEinval, false},
    {"add link eth0 name a:b type macvlan", 2, kEinval, false},
    {"add link eth0 name . type macvlan", 2, kEinval, false},
    {"add link eth0 dev aaaaaaaaaaaaaaaaaaaa type macvlan", 2,
     "Error: Attribute failed policy validation.\n", false},
};

INSTANTIATE_TEST_SUITE_P(Grammar, BadCommand, ::testing::ValuesIn(kBadCases));

// --------------------------------------------------------------------- help

TEST(LinkHelp, MacvlanHelpGoesToStdout) {
  const LinkCommand got = parse_link_command(words("help macvlan"));
  ASSERT_TRUE(std::holds_alternative<HelpText>(got));
  EXPECT_EQ(std::get<HelpText>(got).text, macvlan_usage());
}

TEST(LinkHelp, LinkHelpIsAnErrorExitLikeIp) {
  for (const char* line : {"help", "help vlan", "add help", "set m0 help"}) {
    const LinkCommand got = parse_link_command(words(line));
    ASSERT_TRUE(std::holds_alternative<ParseError>(got)) << line;
    EXPECT_EQ(std::get<ParseError>(got).exit_code, 255) << line;
    EXPECT_EQ(std::get<ParseError>(got).message, link_usage()) << line;
  }
}

TEST(LinkHelp, UsageTextsNameEveryKeyword) {
  const std::string link = link_usage();
  for (const char* k : {"add", "set", "delete", "del", "show", "list", "lst", "link", "name", "dev",
                        "address", "mtu", "up", "down", "type macvlan", "help"}) {
    EXPECT_NE(link.find(k), std::string::npos) << k;
  }
  const std::string mv = macvlan_usage();
  for (const char* k : {"mode", "private", "vepa", "bridge", "passthru", "source", "flag", "null",
                        "nopromisc", "nodst", "bcqueuelen", "bclim", "macaddr", "add", "del", "set",
                        "flush", "[0-4294967295]", "spoofchk"}) {
    EXPECT_NE(mv.find(k), std::string::npos) << k;
  }
  for (const char* k :
       {"hostaccess { on | off }", "macnat { on | off }", "macnat_ageing SECONDS", "[1-86400]"}) {
    EXPECT_NE(mv.find(k), std::string::npos) << k;
  }
  EXPECT_EQ(mv.back(), '\n');
  EXPECT_EQ(link.back(), '\n');
}

TEST(LinkParser, EveryErrorMessageEndsInNewline) {
  for (const BadCase& c : kBadCases) {
    const LinkCommand got = parse_link_command(words(c.line));
    ASSERT_TRUE(std::holds_alternative<ParseError>(got)) << c.line;
    const std::string& m = std::get<ParseError>(got).message;
    ASSERT_FALSE(m.empty()) << c.line;
    EXPECT_EQ(m.back(), '\n') << c.line;
  }
}

TEST(LinkParser, WordsWithBlanksAreJudgedWhole) {
  // The shell can pass words with spaces: ip refuses them as names.
  const LinkCommand got =
      parse_link_command({"add", "link", "eth0", "name", "a b", "type", "macvlan"});
  ASSERT_TRUE(std::holds_alternative<ParseError>(got));
  EXPECT_EQ(std::get<ParseError>(got).message,
            "Error: argument \"a b\" is wrong: \"name\" not a valid ifname\n");
  const LinkCommand empty = parse_link_command({"del", ""});
  ASSERT_TRUE(std::holds_alternative<ParseError>(empty));
  EXPECT_EQ(std::get<ParseError>(empty).exit_code, 255);
  // show looks names up without judging them (ip: Device "a b" does not exist.).
  const LinkCommand show = parse_link_command({"show", "a b"});
  ASSERT_TRUE(std::holds_alternative<LinkRequest>(show));
  EXPECT_EQ(std::get<LinkRequest>(show).name, "a b");
}

TEST(LinkParser, EmptyWordAfterASourceListIsReportedTwiceLikeIp) {
  const LinkCommand got =
      parse_link_command({"add", "link", "eth0", "name", "m0", "type", "macvlan", "mode", "source",
                          "macaddr", "set", "02:00:00:00:00:01", ""});
  ASSERT_TRUE(std::holds_alternative<ParseError>(got)) << describe(got);
  EXPECT_EQ(std::get<ParseError>(got).message,
            "\"\" is invalid lladdr.\nmacvlan: unknown option \"\"?\n" + macvlan_usage());
}

TEST(LinkParser, OverlongAddressPartIsInvalid) {
  for (const char* part : {"fffffffff", "-fffffffff", "100000000"}) {
    const std::string address = std::string("02:00:00:00:00:") + part;
    const LinkCommand got = parse_link_command(
        {"add", "link", "eth0", "name", "m0", "address", address, "type", "macvlan"});
    ASSERT_TRUE(std::holds_alternative<ParseError>(got)) << part;
    EXPECT_EQ(std::get<ParseError>(got).message,
              "\"" + std::string(part) + "\" is invalid lladdr.\n");
  }
}

TEST(LinkParser, RenameIsNotSupported) {
  const LinkCommand got = parse_link_command(words("set m0 name m9"));
  ASSERT_TRUE(std::holds_alternative<ParseError>(got));
  EXPECT_EQ(std::get<ParseError>(got).message,
            "Error: \"name\" is not supported by umacvlan; see \"umacvlan link help\".\n");
}

TEST(LinkParser, AnEmptyLowerNameIsNoDevice) {
  // Found by the CLI fuzzer: the daemon's decoder refused what the parser let through.
  const LinkCommand got = parse_link_command({"add", "link", "", "name", "m0", "type", "macvlan"});
  ASSERT_TRUE(std::holds_alternative<ParseError>(got)) << describe(got);
  EXPECT_EQ(std::get<ParseError>(got).message, "Cannot find device \"\"\n");
  EXPECT_EQ(std::get<ParseError>(got).exit_code, 1);
}

TEST(LinkParser, SpoofchkTakesOnOrOff) {
  for (const auto& [word, want] : {std::pair{"on", true}, std::pair{"off", false}}) {
    const LinkCommand got =
        parse_link_command(words(std::string("set m0 type macvlan spoofchk ") + word));
    ASSERT_TRUE(std::holds_alternative<LinkRequest>(got)) << describe(got);
    EXPECT_EQ(std::get<LinkRequest>(got).spoofchk, want);
  }
  const LinkCommand none = parse_link_command(words("set m0 type macvlan mode bridge"));
  ASSERT_TRUE(std::holds_alternative<LinkRequest>(none));
  EXPECT_FALSE(std::get<LinkRequest>(none).spoofchk.has_value());
  const LinkCommand bad = parse_link_command(words("set m0 type macvlan spoofchk yes"));
  ASSERT_TRUE(std::holds_alternative<ParseError>(bad));
  EXPECT_EQ(std::get<ParseError>(bad).message,
            "Error: argument of \"spoofchk\" must be \"on\" or \"off\", not \"yes\"\n");
  EXPECT_EQ(std::get<ParseError>(bad).exit_code, 1);
}

TEST(LinkParser, HostaccessTakesOnOrOffOnALowerOrAnAdd) {
  for (const auto& [word, want] : {std::pair{"on", true}, std::pair{"off", false}}) {
    const LinkCommand got =
        parse_link_command(words(std::string("set dev eth0 type macvlan hostaccess ") + word));
    ASSERT_TRUE(std::holds_alternative<LinkRequest>(got)) << describe(got);
    EXPECT_EQ(std::get<LinkRequest>(got).name, "eth0");
    EXPECT_EQ(std::get<LinkRequest>(got).hostaccess, want);
  }
  const LinkCommand add =
      parse_link_command(words("add link eth0 name m0 type macvlan mode bridge hostaccess on"));
  ASSERT_TRUE(std::holds_alternative<LinkRequest>(add)) << describe(add);
  EXPECT_EQ(std::get<LinkRequest>(add).hostaccess, true);
  const LinkCommand none = parse_link_command(words("set m0 type macvlan mode bridge"));
  ASSERT_TRUE(std::holds_alternative<LinkRequest>(none));
  EXPECT_FALSE(std::get<LinkRequest>(none).hostaccess.has_value());
  const LinkCommand bad = parse_link_command(words("set eth0 type macvlan hostaccess 1"));
  ASSERT_TRUE(std::holds_alternative<ParseError>(bad));
  EXPECT_EQ(std::get<ParseError>(bad).message,
            "Error: argument of \"hostaccess\" must be \"on\" or \"off\", not \"1\"\n");
}

TEST(LinkParser, MacnatTakesOnOrOffOnALowerOrAnAdd) {
  for (const auto& [word, want] : {std::pair{"on", true}, std::pair{"off", false}}) {
    const LinkCommand got =
        parse_link_command(words(std::string("set dev eth0 type macvlan macnat ") + word));
    ASSERT_TRUE(std::holds_alternative<LinkRequest>(got)) << describe(got);
    EXPECT_EQ(std::get<LinkRequest>(got).name, "eth0");
    EXPECT_EQ(std::get<LinkRequest>(got).macnat, want);
    EXPECT_FALSE(std::get<LinkRequest>(got).macnat_ageing.has_value());
  }
  const LinkCommand add = parse_link_command(
      words("add link eth0 name m0 type macvlan mode bridge macnat on macnat_ageing 120"));
  ASSERT_TRUE(std::holds_alternative<LinkRequest>(add)) << describe(add);
  EXPECT_EQ(std::get<LinkRequest>(add).macnat, true);
  EXPECT_EQ(std::get<LinkRequest>(add).macnat_ageing, 120u);
  const LinkCommand none = parse_link_command(words("set m0 type macvlan mode bridge"));
  ASSERT_TRUE(std::holds_alternative<LinkRequest>(none));
  EXPECT_FALSE(std::get<LinkRequest>(none).macnat.has_value());
  EXPECT_FALSE(std::get<LinkRequest>(none).macnat_ageing.has_value());
  const LinkCommand bad = parse_link_command(words("set eth0 type macvlan macnat 1"));
  ASSERT_TRUE(std::holds_alternative<ParseError>(bad));
  EXPECT_EQ(std::get<ParseError>(bad).message,
            "Error: argument of \"macnat\" must be \"on\" or \"off\", not \"1\"\n");
}

TEST(LinkParser, MacnatAgeingAloneChangesTheAgeingOnALower) {
  const LinkCommand got = parse_link_command(words("set dev eth0 type macvlan macnat_ageing 30"));
  ASSERT_TRUE(std::holds_alternative<LinkRequest>(got)) << describe(got);
  const LinkRequest& r = std::get<LinkRequest>(got);
  EXPECT_EQ(r.op, LinkOp::kSet);
  EXPECT_EQ(r.name, "eth0");
  EXPECT_TRUE(r.type_macvlan);
  EXPECT_FALSE(r.macnat.has_value());
  EXPECT_EQ(r.macnat_ageing, 30u);
  // The bounds come from the control protocol, which the daemon checks again.
  for (const std::uint32_t edge : {control::kMinMacnatAgeing, control::kMaxMacnatAgeing}) {
    const LinkCommand e =
        parse_link_command(words("set eth0 type macvlan macnat_ageing " + std::to_string(edge)));
    ASSERT_TRUE(std::holds_alternative<LinkRequest>(e)) << describe(e);
    EXPECT_EQ(std::get<LinkRequest>(e).macnat_ageing, edge);
  }
}

TEST(LinkParser, LeadingBlankInAddressPartIsAccepted) {
  // ip reads each part like scanf("%x").
  const LinkCommand got = parse_link_command(
      {"add", "link", "eth0", "name", "m0", "address", " 2:00:00:00:00:01", "type", "macvlan"});
  ASSERT_TRUE(std::holds_alternative<LinkRequest>(got)) << describe(got);
  EXPECT_EQ(std::get<LinkRequest>(got).address, mac("02:00:00:00:00:01"));
}

}  // namespace
}  // namespace umacvlan::cli
