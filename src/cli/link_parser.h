// LinkParser: the `ip link` grammar for macvlan links, turned into one
// control::LinkRequest.
//
// Synopsis (the words after "link"; see link_usage() and macvlan_usage()):
//   add link LOWER [name] NAME [address LLADDR] [mtu MTU] [up|down]
//       type macvlan [MACVLAN_OPTS]
//   set [dev] NAME [up|down] [address LLADDR] [mtu MTU] [type macvlan [MACVLAN_OPTS]]
//   { delete | del } [dev] NAME
//   { show | list | lst } [[dev] NAME] [type macvlan]     (no words: show)
//   help [macvlan]
//
// Contract: keywords are exact matches and behave as in iproute2 6.1: the
// same argument forms (LLADDR as ip reads it, numbers in C notation: 0x10,
// 010), the same last-one-wins and duplicate rules, and where ip has a
// message for a mistake, the same message and exit code. The whole command
// is checked before a request comes back, including what the kernel would
// refuse from the words alone (MTU limits, multicast addresses, a source
// list on a device that is not in source mode, ...), reported as ip reports
// the kernel's answer. What needs the system's state (does LOWER exist, is
// the MTU above the lower's) is the daemon's to check. No I/O, no globals.
//
// Exit codes follow ip: 1 for a bad value of a macvlan option or an address
// (ip's "return -1" paths), 255 for ip's exit(-1) paths (incomplete command,
// `Error: argument "X" is wrong: ...`, duplicates, garbage), 2 for what ip
// would only learn from the kernel (it prints "RTNETLINK answers: ..." or
// the kernel's own "Error: ..." line).
#pragma once

#include <string>
#include <variant>
#include <vector>

#include "control/control_protocol.h"

namespace umacvlan::cli {

inline constexpr int kExitSyntax = 1;
inline constexpr int kExitRefused = 2;
inline constexpr int kExitUsage = 255;

// A command that must not go to the daemon. message is the complete text for
// stderr: every line, usage text included, ends in '\n'.
struct ParseError {
  int exit_code = kExitSyntax;
  std::string message;
};

// Text asked for with `link help macvlan`: printed on stdout, exit 0.
struct HelpText {
  std::string text;
};

using LinkCommand = std::variant<control::LinkRequest, HelpText, ParseError>;

// args: the words after "link".
LinkCommand parse_link_command(const std::vector<std::string>& args);

// `umacvlan link help` and `umacvlan link help macvlan`.
std::string link_usage();
std::string macvlan_usage();

}  // namespace umacvlan::cli
