#include "cli/link_printer.h"

#include <gtest/gtest.h>

#include <string>

namespace umacvlan::cli {
namespace {

using nlohmann::json;

// Fixtures: `ip -j -d -s -s link show` of macvlan links on a 6.18 kernel
// (iproute2 6.1), and what `ip [-d] [-s] link show` printed for them
// (with -d, ip's lines go on past the macvlan part: "addrgenmode eui64
// numtxqueues ..."; we stop after the macvlan part).
const json kSourceLink = json::parse(R"([{"ifindex":48,"link":"v0","ifname":"m0",
  "flags":["BROADCAST","MULTICAST"],"mtu":1500,"qdisc":"noop","operstate":"DOWN",
  "linkmode":"DEFAULT","group":"default","txqlen":1000,"link_type":"ether",
  "address":"02:00:00:00:00:aa","broadcast":"ff:ff:ff:ff:ff:ff","promiscuity":0,"allmulti":0,
  "min_mtu":68,"max_mtu":65535,"linkinfo":{"info_kind":"macvlan","info_data":{"mode":"source",
  "nodst":true,"bcqueuelen":1000,"usedbcqueuelen":1000,"macaddr_count":2,
  "macaddr_data":["02:00:00:00:00:02","02:00:00:00:00:01"]}},"inet6_addr_gen_mode":"eui64",
  "num_tx_queues":1,"num_rx_queues":1,"gso_max_size":65536,"gso_max_segs":65535,
  "stats64":{"rx":{"bytes":0,"packets":0,"errors":0,"dropped":0,"over_errors":0,"multicast":0,
  "length_errors":0,"crc_errors":0,"frame_errors":0,"fifo_errors":0,"missed_errors":0},
  "tx":{"bytes":0,"packets":0,"errors":0,"dropped":0,"carrier_errors":0,"collisions":0,
  "aborted_errors":0,"fifo_errors":0,"window_errors":0,"heartbeat_errors":0,
  "carrier_changes":0}}}])");

const json kBusyLink = json::parse(R"([{"ifindex":38,"link":"v0","ifname":"m1",
  "flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1500,"qdisc":"noqueue",
  "operstate":"UP","linkmode":"DEFAULT","group":"default","txqlen":1000,"link_type":"ether",
  "address":"5a:df:06:1e:22:79","broadcast":"ff:ff:ff:ff:ff:ff","promiscuity":0,"allmulti":0,
  "min_mtu":68,"max_mtu":65535,"linkinfo":{"info_kind":"macvlan","info_data":{"mode":"bridge",
  "bcqueuelen":50,"usedbcqueuelen":1000}},
  "stats64":{"rx":{"bytes":16088521,"packets":242718,"errors":0,"dropped":0,"over_errors":0,
  "multicast":0,"length_errors":0,"crc_errors":0,"frame_errors":0,"fifo_errors":0,
  "missed_errors":0},"tx":{"bytes":16491836031,"packets":333787,"errors":0,"dropped":0,
  "carrier_errors":0,"collisions":0,"aborted_errors":0,"fifo_errors":0,"window_errors":0,
  "heartbeat_errors":0,"carrier_changes":2}}}])");

const json kPassthruLink = json::parse(R"([{"ifindex":10,"link":"v5","ifname":"p0",
  "flags":["BROADCAST","MULTICAST","M-DOWN"],"mtu":1500,"qdisc":"noop","operstate":"DOWN",
  "linkmode":"DEFAULT","group":"default","txqlen":1000,"link_type":"ether",
  "address":"de:ae:87:60:6e:3b","broadcast":"ff:ff:ff:ff:ff:ff","promiscuity":0,"allmulti":0,
  "min_mtu":68,"max_mtu":65535,"linkinfo":{"info_kind":"macvlan","info_data":{
  "mode":"passthru","nopromisc":true,"nodst":true,"bcqueuelen":1000,"usedbcqueuelen":1000}}}])");

// A port's lower as the daemon shows it (`-d link show dev wlan0`): an
// ordinary link row plus umacvlan's own "umacvlan_port".
const json kLowerLink = json::parse(R"([{"ifindex":2,"ifname":"wlan0",
  "flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1500,"qdisc":"noqueue",
  "operstate":"UP","linkmode":"DORMANT","group":"default","txqlen":1000,"link_type":"ether",
  "address":"02:00:00:00:00:0a","broadcast":"ff:ff:ff:ff:ff:ff","promiscuity":0,"allmulti":0,
  "min_mtu":256,"max_mtu":2304,"umacvlan_port":{"hostaccess":false,"macnat":true,
  "macnat_ageing":300,"macnat_max":4096,"macnat_table":[
  {"address":"10.0.0.2","dev":"mva","lladdr":"02:00:00:00:00:01","learned":"arp","age":12},
  {"address":"fe80::2","dev":"mvb","netns":"blue","lladdr":"02:00:00:00:00:02",
  "learned":"ndp","age":0}]},
  "stats64":{"rx":{"bytes":0,"packets":0,"errors":0,"dropped":0,"over_errors":0,"multicast":0},
  "tx":{"bytes":0,"packets":0,"errors":0,"dropped":0,"carrier_errors":0,"collisions":0}}}])");

const std::string kLowerLines =
    "2: wlan0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP mode DORMANT "
    "group default qlen 1000\n"
    "    link/ether 02:00:00:00:00:0a brd ff:ff:ff:ff:ff:ff";
const std::string kLowerDetails = " promiscuity 0  allmulti 0 minmtu 256 maxmtu 2304 \n";

const std::string kSourceLine1 =
    "48: m0@v0: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN mode DEFAULT group default "
    "qlen 1000\n";
const std::string kSourceLine2 = "    link/ether 02:00:00:00:00:aa brd ff:ff:ff:ff:ff:ff\n";
const std::string kSourceLine2Details =
    "    link/ether 02:00:00:00:00:aa brd ff:ff:ff:ff:ff:ff promiscuity 0  allmulti 0 minmtu 68 "
    "maxmtu 65535 \n";
const std::string kSourceMacvlanLine =
    "    macvlan mode source nodst bcqueuelen 1000 usedbcqueuelen 1000 remotes (2) "
    "02:00:00:00:00:02 02:00:00:00:00:01 \n";
const std::string kZeroStats =
    "    RX:  bytes packets errors dropped  missed   mcast           \n"
    "             0       0      0       0       0       0 \n"
    "    TX:  bytes packets errors dropped carrier collsns           \n"
    "             0       0      0       0       0       0 \n";

PrintOptions opts(bool details, int stats, bool as_json = false, bool pretty = false) {
  PrintOptions o;
  o.details = details;
  o.stats = stats;
  o.json = as_json;
  o.pretty = pretty;
  return o;
}

TEST(LinkPrinterText, Plain) {
  EXPECT_EQ(print_links(kSourceLink, opts(false, 0)), kSourceLine1 + kSourceLine2);
}

TEST(LinkPrinterText, Details) {
  EXPECT_EQ(print_links(kSourceLink, opts(true, 0)),
            kSourceLine1 + kSourceLine2Details + kSourceMacvlanLine);
}

TEST(LinkPrinterText, Stats) {
  EXPECT_EQ(print_links(kSourceLink, opts(false, 1)), kSourceLine1 + kSourceLine2 + kZeroStats);
}

TEST(LinkPrinterText, DetailsAndStats) {
  EXPECT_EQ(print_links(kSourceLink, opts(true, 1)),
            kSourceLine1 + kSourceLine2Details + kSourceMacvlanLine + kZeroStats);
}

TEST(LinkPrinterText, StatsTwiceAddsErrorRows) {
  EXPECT_EQ(print_links(kSourceLink, opts(false, 2)),
            kSourceLine1 + kSourceLine2 +
                "    RX:  bytes packets errors dropped  missed   mcast           \n"
                "             0       0      0       0       0       0 \n"
                "    RX errors:  length    crc   frame    fifo overrun\n"
                "                     0      0       0       0       0 \n"
                "    TX:  bytes packets errors dropped carrier collsns           \n"
                "             0       0      0       0       0       0 \n"
                "    TX errors: aborted   fifo  window heartbt transns\n"
                "                     0      0       0       0       0 \n");
}

TEST(LinkPrinterText, LongCountersWidenTheirColumnInEveryRow) {
  EXPECT_EQ(print_links(kBusyLink, opts(false, 2)),
            "38: m1@v0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP mode "
            "DEFAULT group default qlen 1000\n"
            "    link/ether 5a:df:06:1e:22:79 brd ff:ff:ff:ff:ff:ff\n"
            "    RX:   bytes packets errors dropped  missed   mcast           \n"
            "       16088521  242718      0       0       0       0 \n"
            "    RX errors:   length    crc   frame    fifo overrun\n"
            "                      0      0       0       0       0 \n"
            "    TX:   bytes packets errors dropped carrier collsns           \n"
            "    16491836031  333787      0       0       0       0 \n"
            "    TX errors:  aborted   fifo  window heartbt transns\n"
            "                      0      0       0       0       2 \n");
}

TEST(LinkPrinterText, WidePacketColumn) {
  json link = kBusyLink;
  link[0]["stats64"]["rx"]["packets"] = 123456789012ULL;
  const std::string text = print_links(link, opts(false, 1));
  EXPECT_NE(text.find("    RX:   bytes      packets errors"), std::string::npos) << text;
  EXPECT_NE(text.find("       16088521 123456789012      0"), std::string::npos) << text;
  EXPECT_NE(text.find("    16491836031       333787      0"), std::string::npos) << text;
}

TEST(LinkPrinterText, PassthruFlagsInIpOrder) {
  EXPECT_EQ(print_links(kPassthruLink, opts(true, 0)),
            "10: p0@v5: <BROADCAST,MULTICAST,M-DOWN> mtu 1500 qdisc noop state DOWN mode DEFAULT "
            "group default qlen 1000\n"
            "    link/ether de:ae:87:60:6e:3b brd ff:ff:ff:ff:ff:ff promiscuity 0  allmulti 0 "
            "minmtu 68 maxmtu 65535 \n"
            "    macvlan mode passthru nopromisc nodst bcqueuelen 1000 usedbcqueuelen 1000 \n");
}

TEST(LinkPrinterText, FalseFlagsAreNotPrinted) {
  json link = kPassthruLink;
  link[0]["linkinfo"]["info_data"]["nopromisc"] = false;
  link[0]["linkinfo"]["info_data"].erase("nodst");
  const std::string text = print_links(link, opts(true, 0));
  EXPECT_NE(text.find("    macvlan mode passthru bcqueuelen 1000 "), std::string::npos) << text;
}

TEST(LinkPrinterText, SpoofchkShownOnlyWhenOn) {
  json link = kPassthruLink;
  link[0]["linkinfo"]["info_data"]["spoofchk"] = true;
  EXPECT_NE(print_links(link, opts(true, 0)).find("nodst spoofchk on bcqueuelen"),
            std::string::npos);
  link[0]["linkinfo"]["info_data"]["spoofchk"] = false;
  EXPECT_EQ(print_links(link, opts(true, 0)).find("spoofchk"), std::string::npos);
}

TEST(LinkPrinterText, HostaccessShownOnlyWhenOn) {
  json link = kPassthruLink;
  link[0]["linkinfo"]["info_data"]["hostaccess"] = true;
  EXPECT_NE(print_links(link, opts(true, 0)).find("nodst hostaccess on bcqueuelen"),
            std::string::npos);
  link[0]["linkinfo"]["info_data"].erase("hostaccess");
  EXPECT_EQ(print_links(link, opts(true, 0)).find("hostaccess"), std::string::npos);
}

TEST(LinkPrinterText, MacnatShownOnlyWhenOnWithItsAgeing) {
  json link = kPassthruLink;
  link[0]["linkinfo"]["info_data"]["hostaccess"] = true;
  link[0]["linkinfo"]["info_data"]["macnat"] = true;
  link[0]["linkinfo"]["info_data"]["macnat_ageing"] = 300;
  EXPECT_EQ(print_links(link, opts(true, 0)),
            "10: p0@v5: <BROADCAST,MULTICAST,M-DOWN> mtu 1500 qdisc noop state DOWN mode DEFAULT "
            "group default qlen 1000\n"
            "    link/ether de:ae:87:60:6e:3b brd ff:ff:ff:ff:ff:ff promiscuity 0  allmulti 0 "
            "minmtu 68 maxmtu 65535 \n"
            "    macvlan mode passthru nopromisc nodst hostaccess on macnat on macnat_ageing 300 "
            "bcqueuelen 1000 usedbcqueuelen 1000 \n");
  EXPECT_EQ(print_links(link, opts(false, 0)).find("macnat"), std::string::npos);
  link[0]["linkinfo"]["info_data"]["macnat"] = false;
  EXPECT_EQ(print_links(link, opts(true, 0)).find("macnat"), std::string::npos);
  link[0]["linkinfo"]["info_data"].erase("macnat");
  link[0]["linkinfo"]["info_data"].erase("macnat_ageing");
  EXPECT_EQ(print_links(link, opts(true, 0)).find("macnat"), std::string::npos);
}

TEST(LinkPrinterText, LowerWithoutDetailsIsAnOrdinaryLink) {
  EXPECT_EQ(print_links(kLowerLink, opts(false, 0)), kLowerLines + "\n");
}

TEST(LinkPrinterText, LowerWithDetailsShowsItsPortAndMacnatTable) {
  EXPECT_EQ(print_links(kLowerLink, opts(true, 0)),
            kLowerLines + kLowerDetails +
                "    umacvlan port hostaccess off macnat on macnat_ageing 300 macnat_max 4096\n"
                "    macnat 10.0.0.2 dev mva lladdr 02:00:00:00:00:01 learned arp age 12s\n"
                "    macnat fe80::2 dev mvb netns blue lladdr 02:00:00:00:00:02 learned ndp "
                "age 0s\n");
}

TEST(LinkPrinterText, LowerPortLinesComeBeforeTheStatistics) {
  EXPECT_EQ(print_links(kLowerLink, opts(true, 1)),
            kLowerLines + kLowerDetails +
                "    umacvlan port hostaccess off macnat on macnat_ageing 300 macnat_max 4096\n"
                "    macnat 10.0.0.2 dev mva lladdr 02:00:00:00:00:01 learned arp age 12s\n"
                "    macnat fe80::2 dev mvb netns blue lladdr 02:00:00:00:00:02 learned ndp "
                "age 0s\n" +
                kZeroStats);
}

TEST(LinkPrinterText, LowerWithAnEmptyMacnatTable) {
  const std::string want = kLowerLines + kLowerDetails +
                           "    umacvlan port hostaccess off macnat on macnat_ageing 300 "
                           "macnat_max 4096\n";
  json link = kLowerLink;
  link[0]["umacvlan_port"]["macnat_table"] = json::array();
  EXPECT_EQ(print_links(link, opts(true, 0)), want);
  link[0]["umacvlan_port"].erase("macnat_table");
  EXPECT_EQ(print_links(link, opts(true, 0)), want);
}

TEST(LinkPrinterText, LowerWithMacnatOffSaysOnlyThat) {
  json link = kLowerLink;
  link[0]["umacvlan_port"] = json::parse(R"({"hostaccess":true,"macnat":false})");
  const std::string want =
      kLowerLines + kLowerDetails + "    umacvlan port hostaccess on macnat off\n";
  EXPECT_EQ(print_links(link, opts(true, 0)), want);
  // Whatever else came with it, the text says no more.
  link[0]["umacvlan_port"]["macnat_ageing"] = 300;
  link[0]["umacvlan_port"]["macnat_max"] = 4096;
  link[0]["umacvlan_port"]["macnat_table"] = kLowerLink[0]["umacvlan_port"]["macnat_table"];
  EXPECT_EQ(print_links(link, opts(true, 0)), want);
}

TEST(LinkPrinterText, OddUmacvlanPortIsPrintedAsItComes) {
  json link = kLowerLink;
  link[0]["umacvlan_port"] = json::parse(R"({"macnat":"yes","macnat_table":[1,"x"]})");
  EXPECT_EQ(print_links(link, opts(true, 0)),
            kLowerLines + kLowerDetails + "    umacvlan port macnat yes\n");
  link[0]["umacvlan_port"] = 7;
  EXPECT_EQ(print_links(link, opts(true, 0)), kLowerLines + kLowerDetails);
}

TEST(LinkPrinterText, BclimFollowsUsedBcQueueLen) {
  json link = kBusyLink;
  link[0]["linkinfo"]["info_data"]["bclim"] = -1;
  const std::string text = print_links(link, opts(true, 0));
  EXPECT_NE(text.find("    macvlan mode bridge bcqueuelen 50 usedbcqueuelen 1000 bclim -1 \n"),
            std::string::npos)
      << text;
}

TEST(LinkPrinterText, LowerInAnotherNamespace) {
  json link = kBusyLink;
  link[0].erase("link");
  link[0]["link_index"] = 3;
  link[0]["link_netnsid"] = 0;
  const std::string text = print_links(link, opts(false, 0));
  EXPECT_EQ(text,
            "38: m1@if3: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP mode "
            "DEFAULT group default qlen 1000\n"
            "    link/ether 5a:df:06:1e:22:79 brd ff:ff:ff:ff:ff:ff link-netnsid 0\n");
}

TEST(LinkPrinterText, NoLowerAtAll) {
  json link = kBusyLink;
  link[0].erase("link");
  EXPECT_EQ(print_links(link, opts(false, 0)).substr(0, 9), "38: m1: <");
}

TEST(LinkPrinterText, AbsentFieldsAreSkipped) {
  const json link = json::parse(R"([{"ifindex":7,"ifname":"m7","flags":[],"mtu":1400}])");
  EXPECT_EQ(print_links(link, opts(true, 2)), "7: m7: <> mtu 1400 \n    \n");
}

TEST(LinkPrinterText, DetailsWithoutLinkinfo) {
  json link = kBusyLink;
  link[0].erase("linkinfo");
  const std::string text = print_links(link, opts(true, 0));
  EXPECT_EQ(text.find("macvlan"), std::string::npos);
  EXPECT_EQ(text.back(), '\n');
  EXPECT_NE(text.find("maxmtu 65535 \n"), std::string::npos);
}

TEST(LinkPrinterText, SeveralLinksInOrder) {
  json links = kSourceLink;
  links.push_back(kBusyLink[0]);
  const std::string text = print_links(links, opts(false, 0));
  EXPECT_EQ(text.find("48: m0@v0"), 0u);
  EXPECT_NE(text.find("\n38: m1@v0"), std::string::npos);
}

TEST(LinkPrinterText, EmptyAndOddInput) {
  EXPECT_EQ(print_links(json::array(), opts(true, 2)), "");
  EXPECT_EQ(print_links(json::object(), opts(false, 0)), "");
  EXPECT_EQ(print_links(json::parse("[1, \"x\", null]"), opts(false, 0)), "");
}

TEST(LinkPrinterText, PrettyAloneChangesNothing) {
  EXPECT_EQ(print_links(kSourceLink, opts(true, 1, false, true)),
            print_links(kSourceLink, opts(true, 1)));
}

// ---------------------------------------------------------------- JSON

TEST(LinkPrinterJson, CompactKeepsIpKeysAndOrder) {
  EXPECT_EQ(print_links(kSourceLink, opts(false, 0, true)),
            R"([{"ifindex":48,"link":"v0","ifname":"m0","flags":["BROADCAST","MULTICAST"],)"
            R"("mtu":1500,"qdisc":"noop","operstate":"DOWN","linkmode":"DEFAULT",)"
            R"("group":"default","txqlen":1000,"link_type":"ether",)"
            R"("address":"02:00:00:00:00:aa","broadcast":"ff:ff:ff:ff:ff:ff"}])"
            "\n");
}

TEST(LinkPrinterJson, PrettyMatchesIpLayout) {
  EXPECT_EQ(print_links(kSourceLink, opts(true, 1, true, true)), R"([ {
        "ifindex": 48,
        "link": "v0",
        "ifname": "m0",
        "flags": [ "BROADCAST","MULTICAST" ],
        "mtu": 1500,
        "qdisc": "noop",
        "operstate": "DOWN",
        "linkmode": "DEFAULT",
        "group": "default",
        "txqlen": 1000,
        "link_type": "ether",
        "address": "02:00:00:00:00:aa",
        "broadcast": "ff:ff:ff:ff:ff:ff",
        "promiscuity": 0,
        "allmulti": 0,
        "min_mtu": 68,
        "max_mtu": 65535,
        "linkinfo": {
            "info_kind": "macvlan",
            "info_data": {
                "mode": "source",
                "nodst": true,
                "bcqueuelen": 1000,
                "usedbcqueuelen": 1000,
                "macaddr_count": 2,
                "macaddr_data": [ "02:00:00:00:00:02","02:00:00:00:00:01" ]
            }
        },
        "stats64": {
            "rx": {
                "bytes": 0,
                "packets": 0,
                "errors": 0,
                "dropped": 0,
                "over_errors": 0,
                "multicast": 0
            },
            "tx": {
                "bytes": 0,
                "packets": 0,
                "errors": 0,
                "dropped": 0,
                "carrier_errors": 0,
                "collisions": 0
            }
        }
    } ]
)");
}

TEST(LinkPrinterJson, PrettySeveralLinks) {
  json links = json::parse(R"([{"ifindex":1,"ifname":"a"},{"ifindex":2,"ifname":"b"}])");
  EXPECT_EQ(print_links(links, opts(false, 0, true, true)),
            "[ {\n        \"ifindex\": 1,\n        \"ifname\": \"a\"\n    },{\n"
            "        \"ifindex\": 2,\n        \"ifname\": \"b\"\n    } ]\n");
}

TEST(LinkPrinterJson, EmptyList) {
  EXPECT_EQ(print_links(json::array(), opts(false, 0, true)), "[]\n");
  EXPECT_EQ(print_links(json::array(), opts(false, 0, true, true)), "[ ]\n");
}

TEST(LinkPrinterJson, RoundTripWithEverything) {
  const std::string out = print_links(kSourceLink, opts(true, 2, true));
  json expected = kSourceLink;
  for (const char* unknown :
       {"inet6_addr_gen_mode", "num_tx_queues", "num_rx_queues", "gso_max_size", "gso_max_segs"}) {
    expected[0].erase(unknown);
  }
  EXPECT_EQ(json::parse(out), expected);
}

TEST(LinkPrinterJson, OptionsDropWhatTheyDoNotAskFor) {
  const json plain = json::parse(print_links(kSourceLink, opts(false, 0, true)));
  for (const char* key : {"promiscuity", "allmulti", "min_mtu", "max_mtu", "linkinfo", "stats64"}) {
    EXPECT_FALSE(plain[0].contains(key)) << key;
  }
  const json details = json::parse(print_links(kSourceLink, opts(true, 0, true)));
  EXPECT_TRUE(details[0].contains("linkinfo"));
  EXPECT_FALSE(details[0].contains("stats64"));
  const json stats1 = json::parse(print_links(kSourceLink, opts(false, 1, true)));
  EXPECT_FALSE(stats1[0].contains("linkinfo"));
  EXPECT_EQ(stats1[0]["stats64"]["rx"].size(), 6u);
  EXPECT_FALSE(stats1[0]["stats64"]["rx"].contains("missed_errors"));
  const json stats2 = json::parse(print_links(kSourceLink, opts(false, 2, true)));
  EXPECT_EQ(stats2[0]["stats64"]["rx"].size(), 11u);
  EXPECT_EQ(stats2[0]["stats64"]["tx"].size(), 11u);
}

TEST(LinkPrinterJson, LinkIndexTakesThePlaceOfLink) {
  json link = kBusyLink;
  link[0].erase("link");
  link[0]["link_index"] = 3;
  link[0]["link_netnsid"] = 0;
  const std::string out = print_links(link, opts(false, 0, true));
  EXPECT_EQ(out.substr(0, 44), R"([{"ifindex":38,"link_index":3,"ifname":"m1",)");
  EXPECT_NE(out.find(R"("broadcast":"ff:ff:ff:ff:ff:ff","link_netnsid":0})"), std::string::npos)
      << out;
}

TEST(LinkPrinterJson, BclimKeyInPlace) {
  json link = kBusyLink;
  link[0]["linkinfo"]["info_data"]["bclim"] = 5;
  const std::string out = print_links(link, opts(true, 0, true));
  EXPECT_NE(out.find(R"("usedbcqueuelen":1000,"bclim":5})"), std::string::npos) << out;
}

TEST(LinkPrinterJson, MacnatKeysInPlaceOnADevice) {
  json link = kBusyLink;
  link[0]["linkinfo"]["info_data"]["hostaccess"] = true;
  link[0]["linkinfo"]["info_data"]["macnat"] = true;
  link[0]["linkinfo"]["info_data"]["macnat_ageing"] = 60;
  const std::string out = print_links(link, opts(true, 0, true));
  EXPECT_NE(out.find(R"("mode":"bridge","hostaccess":true,"macnat":true,"macnat_ageing":60,)"
                     R"("bcqueuelen":50,)"),
            std::string::npos)
      << out;
}

TEST(LinkPrinterJson, LowerPassesItsPortThrough) {
  const std::string out = print_links(kLowerLink, opts(true, 0, true));
  EXPECT_NE(out.find(R"("max_mtu":2304,"umacvlan_port":{"hostaccess":false,"macnat":true,)"
                     R"("macnat_ageing":300,"macnat_max":4096,"macnat_table":[)"
                     R"({"address":"10.0.0.2","dev":"mva","lladdr":"02:00:00:00:00:01",)"
                     R"("learned":"arp","age":12},)"
                     R"({"address":"fe80::2","dev":"mvb","netns":"blue",)"
                     R"("lladdr":"02:00:00:00:00:02","learned":"ndp","age":0}]}}])"),
            std::string::npos)
      << out;
  json expected = kLowerLink;
  expected[0].erase("stats64");
  EXPECT_EQ(json::parse(out), expected);
  // Without -d, as linkinfo: not there.
  EXPECT_FALSE(
      json::parse(print_links(kLowerLink, opts(false, 0, true)))[0].contains("umacvlan_port"));
}

TEST(LinkPrinterJson, LowerWithMacnatOffKeepsWhatCame) {
  json link = kLowerLink;
  link[0]["umacvlan_port"]["macnat"] = false;
  link[0]["umacvlan_port"]["macnat_table"] = json::array();
  const json out = json::parse(print_links(link, opts(true, 1, true)));
  EXPECT_EQ(out[0]["umacvlan_port"], link[0]["umacvlan_port"]);
  EXPECT_TRUE(out[0].contains("stats64"));
}

TEST(LinkPrinterJson, LowerPretty) {
  json link = kLowerLink;
  link[0]["umacvlan_port"]["macnat_table"].erase(1);
  const std::string out = print_links(link, opts(true, 0, true, true));
  EXPECT_NE(out.find("        \"max_mtu\": 2304,\n"
                     "        \"umacvlan_port\": {\n"
                     "            \"hostaccess\": false,\n"
                     "            \"macnat\": true,\n"
                     "            \"macnat_ageing\": 300,\n"
                     "            \"macnat_max\": 4096,\n"
                     "            \"macnat_table\": [ {\n"
                     "                    \"address\": \"10.0.0.2\",\n"
                     "                    \"dev\": \"mva\",\n"
                     "                    \"lladdr\": \"02:00:00:00:00:01\",\n"
                     "                    \"learned\": \"arp\",\n"
                     "                    \"age\": 12\n"
                     "                } ]\n"
                     "        }\n"),
            std::string::npos)
      << out;
}

TEST(PrettyJson, NestedShapes) {
  nlohmann::ordered_json v = nlohmann::ordered_json::parse(R"({"a":[],"b":{},"c":[1,{"d":"x"}]})");
  EXPECT_EQ(to_pretty_json(v),
            "{\n    \"a\": [ ],\n    \"b\": {},\n    \"c\": [ 1,{\n            \"d\": \"x\"\n"
            "        } ]\n}");
}

TEST(PrettyJson, EscapesStrings) {
  nlohmann::ordered_json v = nlohmann::ordered_json::array({"a\"b\\c\n"});
  EXPECT_EQ(to_pretty_json(v), R"([ "a\"b\\c\n" ])");
}

}  // namespace
}  // namespace umacvlan::cli
