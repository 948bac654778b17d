#include "cli/monitor.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "cli/stream_test_util.h"

namespace umacvlan::cli {
namespace {

using nlohmann::json;
using Words = std::vector<std::string>;

std::string event(const char* text) {
  return format_event(json::parse(text));
}

// ---------------------------------------------------------------- arguments

TEST(MonitorArgs, NothingOrAllShowsEverything) {
  for (const Words& words : {Words{}, Words{"all"}, Words{"link", "all"}}) {
    MonitorArgs a;
    a.link = a.port = a.refused = a.drops = false;
    std::string error;
    ASSERT_TRUE(parse_monitor_args(words, &a, &error)) << error;
    EXPECT_TRUE(a.link && a.port && a.refused && a.drops);
    EXPECT_EQ(a.count, 0u);
  }
}

TEST(MonitorArgs, ObjectsChooseTheEventsAndCountStops) {
  MonitorArgs a;
  std::string error;
  ASSERT_TRUE(parse_monitor_args({"link", "drops", "-c", "5"}, &a, &error)) << error;
  EXPECT_TRUE(a.link);
  EXPECT_FALSE(a.port);
  EXPECT_FALSE(a.refused);
  EXPECT_TRUE(a.drops);
  EXPECT_EQ(a.count, 5u);
  ASSERT_TRUE(parse_monitor_args({"-c", "0", "refused", "refused"}, &a, &error)) << error;
  EXPECT_FALSE(a.link);
  EXPECT_TRUE(a.refused);
  EXPECT_EQ(a.count, 0u);
  ASSERT_TRUE(parse_monitor_args({"port"}, &a, &error)) << error;
  EXPECT_TRUE(a.port);
  EXPECT_FALSE(a.link || a.refused || a.drops);
  EXPECT_TRUE(monitor_shows(a, "port"));
  EXPECT_FALSE(monitor_shows(a, "link"));
  EXPECT_FALSE(monitor_shows(a, "time"));
}

TEST(MonitorArgs, KeepsTheJsonFlagMainSet) {
  MonitorArgs a;
  a.json = true;
  std::string error;
  ASSERT_TRUE(parse_monitor_args({"link"}, &a, &error)) << error;
  EXPECT_TRUE(a.json);
}

TEST(MonitorArgs, EveryWrongArgumentHasItsMessageAndChangesNothing) {
  const std::vector<std::pair<Words, std::string>> cases = {
      {{"links"},
       "Error: argument \"links\" is wrong: what to monitor is all, link, port, refused or drops, "
       "and -c COUNT\n"},
      {{"link", "-j"},
       "Error: argument \"-j\" is wrong: what to monitor is all, link, port, refused or drops, "
       "and -c COUNT\n"},
      {{"-c"}, "Command line is not complete. Try \"umacvlan monitor help\".\n"},
      {{"-c", "x"}, "Error: argument \"x\" is wrong: COUNT must be a non-negative integer\n"},
      {{"-c", "-1"}, "Error: argument \"-1\" is wrong: COUNT must be a non-negative integer\n"},
      {{"-c", "99999999999999999999"},
       "Error: argument \"99999999999999999999\" is wrong: COUNT must be a non-negative "
       "integer\n"},
      {{"-c", "1", "-c", "2"}, "Error: either \"-c\" is duplicate, or \"2\" is a garbage.\n"},
  };
  for (const auto& [words, want] : cases) {
    MonitorArgs a;
    a.port = false;
    a.count = 7;
    std::string error;
    EXPECT_FALSE(parse_monitor_args(words, &a, &error)) << fmt::format("{}", fmt::join(words, " "));
    EXPECT_EQ(error, want);
    EXPECT_FALSE(a.port);
    EXPECT_TRUE(a.link);
    EXPECT_EQ(a.count, 7u);
  }
  EXPECT_EQ(
      monitor_usage().rfind("Usage: umacvlan [ -j ] monitor [ all | OBJECT... ] [ -c COUNT ]\n", 0),
      0u);
}

// --------------------------------------------------------------- formatting

TEST(MonitorFormat, LinkAddedAndDeleted) {
  EXPECT_EQ(event(R"({"type":"link","event":"added","name":"mv0","link":"eth0","netns":null,)"
                  R"("ifindex":5,"address":"02:00:00:00:00:01","mtu":1500,"mode":"bridge",)"
                  R"("up":false})"),
            "[LINK] added mv0@eth0 mode bridge 02:00:00:00:00:01 mtu 1500 state DOWN");
  EXPECT_EQ(event(R"({"type":"link","event":"added","name":"mv0","link":"eth0","netns":"ns1",)"
                  R"("ifindex":5,"address":"02:00:00:00:00:01","mtu":1500,"mode":"vepa",)"
                  R"("up":true})"),
            "[LINK] added mv0@eth0 mode vepa 02:00:00:00:00:01 mtu 1500 state UP netns ns1");
  EXPECT_EQ(event(R"({"type":"link","event":"added","name":"mv0","link":"eth0",)"
                  R"("netns":"net:[4026532290]","mtu":1500,"up":true})"),
            "[LINK] added mv0@eth0 mtu 1500 state UP netns net:[4026532290]");
  EXPECT_EQ(event(R"({"type":"link","event":"removed","name":"mv0","link":"eth0","netns":null,)"
                  R"("ifindex":5,"address":"02:00:00:00:00:01","mtu":1500,"mode":"bridge",)"
                  R"("up":true})"),
            "[LINK] Deleted mv0@eth0");
  EXPECT_EQ(event(R"({"type":"link","event":"removed","name":"mv0"})"), "[LINK] Deleted mv0");
}

TEST(MonitorFormat, LinkChanged) {
  EXPECT_EQ(event(R"({"type":"link","event":"changed","name":"mv0","link":"eth0","netns":null,)"
                  R"("ifindex":5,"address":"02:00:00:00:00:09","mtu":1500,"mode":"bridge",)"
                  R"("up":true,"changes":["up","address"]})"),
            "[LINK] changed mv0@eth0: up address 02:00:00:00:00:09 (mtu 1500 state UP)");
  EXPECT_EQ(event(R"({"type":"link","event":"changed","name":"mv5","link":"eth0","mtu":9000,)"
                  R"("mode":"vepa","up":false,"changes":["name","mtu","mode","up"]})"),
            "[LINK] changed mv5@eth0: name mv5 mtu 9000 mode vepa down (mtu 9000 state DOWN)");
  EXPECT_EQ(event(R"({"type":"link","event":"changed","name":"mv0","link":"eth0","mtu":1500,)"
                  R"("up":true,"changes":["promisc"]})"),
            "[LINK] changed mv0@eth0: promisc (mtu 1500 state UP)");
  EXPECT_EQ(event(R"({"type":"link","event":"changed","name":"mv0","link":"eth0","mtu":1500,)"
                  R"("up":true})"),
            "[LINK] changed mv0@eth0 (mtu 1500 state UP)");
}

TEST(MonitorFormat, LinkMoved) {
  EXPECT_EQ(event(R"({"type":"link","event":"moved","name":"mv0","link":"eth0","netns":"ns1",)"
                  R"("ifindex":7,"mtu":1500,"up":false,"changes":["netns","ifindex"]})"),
            "[LINK] moved mv0@eth0 to netns ns1");
  EXPECT_EQ(event(R"({"type":"link","event":"moved","name":"mv0","link":"eth0","netns":null,)"
                  R"("changes":["netns"]})"),
            "[LINK] moved mv0@eth0 to the daemon's netns");
  EXPECT_EQ(event(R"({"type":"link","event":"moved","name":"eth1","link":"eth0","netns":"ns1",)"
                  R"("changes":["netns","name","ifindex"]})"),
            "[LINK] moved eth1@eth0 to netns ns1 (renamed)");
  EXPECT_EQ(event(R"({"type":"link","event":"moved","name":"eth1","old_name":"mv0",)"
                  R"("link":"eth0","netns":"ns1","changes":["netns","name"]})"),
            "[LINK] moved mv0@eth0 to netns ns1 as eth1");
}

TEST(MonitorFormat, Port) {
  EXPECT_EQ(event(R"({"type":"port","event":"added","name":"eth0","carrier":true,"mtu":1500,)"
                  R"("address":"02:00:00:00:00:aa"})"),
            "[PORT] eth0 added");
  EXPECT_EQ(event(R"({"type":"port","event":"removed","name":"eth0"})"), "[PORT] eth0 removed");
  EXPECT_EQ(event(R"({"type":"port","event":"carrier","name":"eth0","carrier":false})"),
            "[PORT] eth0: carrier off");
  EXPECT_EQ(event(R"({"type":"port","event":"carrier","name":"eth0","carrier":true})"),
            "[PORT] eth0: carrier on");
  EXPECT_EQ(event(R"({"type":"port","event":"changed","name":"eth0","carrier":true,"mtu":9000,)"
                  R"("address":"02:00:00:00:00:bb","changes":["mtu","address"]})"),
            "[PORT] eth0 changed: mtu 9000 address 02:00:00:00:00:bb");
  EXPECT_EQ(event(R"({"type":"port","event":"changed","name":"eth0"})"), "[PORT] eth0 changed");
}

TEST(MonitorFormat, Refused) {
  EXPECT_EQ(
      event(R"({"type":"refused","op":"add","name":"mv1","link":"eth0","errno":98,)"
            R"("error":"EADDRINUSE","message":"Error: 02:00:00:00:00:01 is mv0's address."})"),
      "[REFUSED] link add mv1 link eth0: 02:00:00:00:00:01 is mv0's address. (EADDRINUSE)");
  EXPECT_EQ(event(R"({"type":"refused","op":"del","name":"mv9","errno":19,"error":"ENODEV",)"
                  R"("message":"Cannot find device \"mv9\""})"),
            "[REFUSED] link del mv9: Cannot find device \"mv9\" (ENODEV)");
  EXPECT_EQ(event(R"({"type":"refused","op":"set","name":"mv1","errno":1})"),
            "[REFUSED] link set mv1: Operation not permitted (errno 1)");
  EXPECT_EQ(event(R"({"type":"refused","op":"set","name":"mv1","message":"two\nlines\n"})"),
            "[REFUSED] link set mv1: two lines");
}

TEST(MonitorFormat, DropsPerSecondLargestFirst) {
  EXPECT_EQ(event(R"({"type":"drops","port":"eth0","seconds":1,)"
                  R"("drops":{"no_subscriber":3,"spoofed":12}})"),
            "[DROPS] eth0: spoofed 12/s, no_subscriber 3/s");
  EXPECT_EQ(event(R"({"type":"drops","port":"eth0","seconds":1.002,)"
                  R"("drops":{"pause":1,"bc_queue_full":1}})"),
            "[DROPS] eth0: bc_queue_full 1/s, pause 1/s");
  EXPECT_EQ(event(R"({"type":"drops","port":"eth0","seconds":2.0,"drops":{"spoofed":3}})"),
            "[DROPS] eth0: spoofed 1.5/s");
  EXPECT_EQ(event(R"({"type":"drops","port":"eth0","seconds":0,"drops":{"runt":"x"}})"),
            "[DROPS] eth0: none");
}

TEST(MonitorFormat, OtherTypesAndOddValuesAreNotShownOrLeftOut) {
  EXPECT_EQ(event(R"({"type":"time","time":1700000000000000000})"), "");
  EXPECT_EQ(event(R"({"type":"later","name":"x"})"), "");
  EXPECT_EQ(event(R"({"event":"added"})"), "");
  EXPECT_EQ(event(R"([1,2,3])"), "");
  EXPECT_EQ(event(R"("link")"), "");
  EXPECT_EQ(event(R"({"type":"link","name":5,"event":["x"],"up":"yes","changes":"up"})"),
            "[LINK] event 5");
  EXPECT_EQ(event(R"({"type":"link","event":"added"})"), "[LINK] added ?");
  EXPECT_EQ(event(R"({"type":"port"})"), "[PORT] ? event");
  EXPECT_EQ(event(R"({"type":"refused"})"), "[REFUSED] link ? ?: refused");
  EXPECT_EQ(event(R"({"type":"drops","drops":[1]})"), "[DROPS] ?: none");
}

// ------------------------------------------------------------------ streams

// Counts the flushes of the stream that writes into it.
class CountingBuf : public std::stringbuf {
 public:
  int syncs = 0;

 protected:
  int sync() override {
    ++syncs;
    return std::stringbuf::sync();
  }
};

const std::vector<std::string> kEvents = {
    R"({"type":"port","event":"added","name":"eth0","carrier":true,"mtu":1500,)"
    R"("address":"02:00:00:00:00:aa"})",
    R"({"type":"time","time":1})",
    R"({"type":"link","event":"added","name":"mv0","link":"eth0","netns":null,"ifindex":5,)"
    R"("address":"02:00:00:00:00:01","mtu":1500,"mode":"bridge","up":false})",
    R"({"type":"refused","op":"add","name":"mv1","link":"eth0","errno":17,"error":"EEXIST",)"
    R"("message":"RTNETLINK answers: File exists"})",
    R"({"type":"drops","port":"eth0","seconds":1.0,"drops":{"spoofed":2}})",
    R"({"type":"link","event":"removed","name":"mv0","link":"eth0","netns":null,"ifindex":5,)"
    R"("address":"02:00:00:00:00:01","mtu":1500,"mode":"bridge","up":false})",
};

TEST(MonitorStream, EveryEventAsTextFlushedLineByLine) {
  Lines in;
  in.lines = kEvents;
  CountingBuf buf;
  std::ostream out(&buf);
  std::ostringstream err;
  EXPECT_EQ(run_monitor_stream(MonitorArgs{}, in.source(), out, err, nullptr), 0);
  EXPECT_EQ(buf.str(),
            "[PORT] eth0 added\n"
            "[LINK] added mv0@eth0 mode bridge 02:00:00:00:00:01 mtu 1500 state DOWN\n"
            "[REFUSED] link add mv1 link eth0: RTNETLINK answers: File exists (EEXIST)\n"
            "[DROPS] eth0: spoofed 2/s\n"
            "[LINK] Deleted mv0@eth0\n");
  EXPECT_EQ(buf.syncs, 5);
  EXPECT_EQ(err.str(), "");
}

TEST(MonitorStream, ObjectsFilterAndCountStops) {
  Lines in;
  in.lines = kEvents;
  MonitorArgs args;
  std::string error;
  ASSERT_TRUE(parse_monitor_args({"link", "drops", "-c", "2"}, &args, &error)) << error;
  std::ostringstream out;
  std::ostringstream err;
  EXPECT_EQ(run_monitor_stream(args, in.source(), out, err, nullptr), 0);
  EXPECT_EQ(out.str(),
            "[LINK] added mv0@eth0 mode bridge 02:00:00:00:00:01 mtu 1500 state DOWN\n"
            "[DROPS] eth0: spoofed 2/s\n");
  EXPECT_EQ(in.next, 5u);  // stopped at the second shown event
}

TEST(MonitorStream, JsonEchoesShownEventsCompactInTheDaemonsOrder) {
  Lines in;
  in.lines = {R"({"type": "port", "event": "carrier", "name": "eth0", "carrier": false})",
              R"({"type":"time","time":1})", kEvents[2]};
  MonitorArgs args;
  args.json = true;
  args.link = false;
  std::ostringstream out;
  std::ostringstream err;
  EXPECT_EQ(run_monitor_stream(args, in.source(), out, err, nullptr), 0);
  EXPECT_EQ(out.str(),
            "{\"type\":\"port\",\"event\":\"carrier\",\"name\":\"eth0\",\"carrier\":false}\n");
}

TEST(MonitorStream, MalformedLinesAreSkippedAndCounted) {
  Lines in;
  in.lines = {"garbage", "", "{}", R"({"type":1})", "[]", kEvents[0]};
  std::ostringstream out;
  std::ostringstream err;
  EXPECT_EQ(run_monitor_stream(MonitorArgs{}, in.source(), out, err, nullptr), 0);
  EXPECT_EQ(out.str(), "[PORT] eth0 added\n");
  EXPECT_EQ(err.str(), "5 malformed events skipped\n");
}

TEST(MonitorStream, StopIsReadBetweenLines) {
  std::atomic<bool> stop{false};
  std::size_t reads = 0;
  const LineSource source = [&](std::string* line) {
    ++reads;
    *line = kEvents[0];
    if (reads == 2) stop = true;
    return true;
  };
  std::ostringstream out;
  std::ostringstream err;
  EXPECT_EQ(run_monitor_stream(MonitorArgs{}, source, out, err, &stop), 0);
  EXPECT_EQ(reads, 2u);
  EXPECT_EQ(out.str(), "[PORT] eth0 added\n[PORT] eth0 added\n");
}

TEST(MonitorStream, AClosedOutputIsAnError) {
  Lines in;
  in.lines = kEvents;
  std::ostringstream out;
  out.setstate(std::ios::badbit);
  std::ostringstream err;
  EXPECT_EQ(run_monitor_stream(MonitorArgs{}, in.source(), out, err, nullptr), 1);
  EXPECT_EQ(err.str(), "Error: cannot write the events to the output.\n");
  EXPECT_EQ(in.next, 1u);
}

}  // namespace
}  // namespace umacvlan::cli
