// Monitor: the CLI's side of `umacvlan monitor`, the daemon's events as
// `ip monitor` shows the kernel's, one line each.
//
// Synopsis (the words after "monitor"; see monitor_usage()):
//   monitor [ all | OBJECT... ] [ -c COUNT ]
//     OBJECT := link | port | refused | drops     (default: all of them)
//     COUNT  := stop after COUNT shown events (0: never)
//
// The stream (the daemon's, after its successful reply; one JSON object a
// line, read through a LineSource):
//   {"type":"link","event":"added"|"changed"|"moved"|"removed","name","link",
//    "netns":NAME|null,"ifindex","address","mtu","mode","up"[,"changes":[..]]}
//   {"type":"port","event":"added"|"removed"|"carrier"|"changed","name",
//    "carrier","mtu","address"[,"changes":[..]]}
//   {"type":"refused","op":"add"|"set"|"del","name"[,"link"],"errno",
//    "error":"EADDRINUSE","message":SENTENCE}
//   {"type":"drops","port","seconds","drops":{REASON:COUNT,...}}
//   Other types ("time", ...) are never shown.
//
// Contract
// - parse_monitor_args() changes *out only when it succeeds (json is left
//   as it was: main sets it from the global -j). Errors are ip-shaped
//   sentences ending in '\n'.
// - format_event() is pure and total: any JSON value gives a line or "" (an
//   event it does not show); a missing or mistyped key leaves its part out,
//   never an exception.
// - run_monitor_stream() writes each shown event as one line (the text, or
//   with json the event as one compact JSON line, keys in the daemon's
//   order) and flushes it: scripts read it live through a pipe. Lines that
//   are not JSON objects with a string "type" are skipped and counted (one
//   line on err at the end). It stops after COUNT events, at the end of the
//   stream or when *stop is set (read between lines). Returns 0, or 1 when
//   the output cannot be written.
#pragma once

#include <atomic>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <vector>

#include "cli/capture.h"  // LineSource

namespace umacvlan::cli {

struct MonitorArgs {
  bool link = true;
  bool port = true;
  bool refused = true;
  bool drops = true;
  std::uint64_t count = 0;  // -c; 0 = unlimited
  bool json = false;        // the global -j (set by main)
};

// words: the words after "monitor". false with an ip-style message in *error
// (ending in '\n'); *out is then unchanged.
bool parse_monitor_args(const std::vector<std::string>& words, MonitorArgs* out,
                        std::string* error);
std::string monitor_usage();

// Whether args show events of this "type".
bool monitor_shows(const MonitorArgs& args, const std::string& type);

// One event as a line without its newline, "" for a type not shown:
//   [LINK] added mv0@eth0 mode bridge 02:00:00:00:00:01 mtu 1500 state DOWN netns ns1
//   [LINK] changed mv0@eth0: up address 02:00:00:00:00:09 (mtu 1500 state UP)
//   [LINK] moved mv0@eth0 to netns ns1      ("the daemon's netns" for null;
//     with an "old_name" key: moved mv0@eth0 to netns ns1 as eth1;
//     without one, a "name" change adds " (renamed)")
//   [LINK] Deleted mv0@eth0
//   [PORT] eth0 added | [PORT] eth0 removed | [PORT] eth0: carrier off
//   [PORT] eth0 changed: mtu 9000
//   [REFUSED] link add mv1 link eth0: MESSAGE (EADDRINUSE)
//   [DROPS] eth0: spoofed 12/s, no_subscriber 3/s   (largest first; per second
//     of "seconds", whole when within 0.05 of a whole number, else "1.5/s")
std::string format_event(const nlohmann::json& ev);

int run_monitor_stream(const MonitorArgs& args, const LineSource& source, std::ostream& out,
                       std::ostream& err, const std::atomic<bool>* stop);

}  // namespace umacvlan::cli
