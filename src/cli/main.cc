// umacvlan: the command line, shaped like `ip`.
//
//   umacvlan [ OPTIONS ] link { add | set | delete | show | help } ...
//   umacvlan [ --socket PATH ] daemon [ DAEMON OPTIONS ]   (runs umacvlan-daemon)
//   umacvlan [ -j ] explain ...   where a frame goes and why (explain.h)
//   umacvlan [ -j ] lab ...       a lab of namespaces that shows it live (lab.h)
//   umacvlan config { check | apply | dump } ...   the config file (config_file.h)
//   umacvlan reload               the daemon applies its config file again
//   umacvlan capture { dev NAME | port LOWER } [ -w FILE ] [ -c N ] [ FILTER ]
//                                 frames and the port's decisions (capture.h)
//   umacvlan [ -j ] monitor [ link | port | refused | drops ] [ -c N ]
//                                 events as they happen (monitor.h)
//   umacvlan { help [TOPIC] | -V }
//
// ip's global options come before the object, are single-dash words
// ("-details", "-json") that may also be written with two dashes, and "-s"
// counts; CLI11 would read "-details" as seven short flags, so these are a
// small table. The daemon is a program of its own (umacvlan-daemon, in the
// same directory), which `umacvlan daemon` runs. Exit codes are ip's: 0
// success, 1/255 for a command ip would not send (see link_parser.h), 2 when
// the daemon refuses a request (1 when it did not find the device: ip finds
// devices itself and exits 1 for that), 1 when the daemon cannot be reached.
#include <fcntl.h>
#include <fmt/format.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include "cli/capture.h"
#include "cli/config_file.h"
#include "cli/control_client.h"
#include "cli/explain.h"
#include "cli/help_topics.h"
#include "cli/lab.h"
#include "cli/link_parser.h"
#include "cli/link_printer.h"
#include "cli/monitor.h"
#include "control/control_channel.h"

#ifndef UMACVLAN_VERSION
#define UMACVLAN_VERSION "unknown"
#endif

namespace umacvlan::cli {
namespace {

constexpr int kExitUnreachable = 1;

struct GlobalOptions {
  PrintOptions print;
  bool no_start = false;
  bool version = false;
  bool help = false;
  std::optional<std::string> socket;
  std::optional<std::string> netns;
};

struct GlobalOption {
  std::string_view short_name;
  std::string_view long_name;
  bool takes_value;
  void (*apply)(GlobalOptions&, const std::string& value);
};

constexpr GlobalOption kGlobalOptions[] = {
    {"-d", "-details", false, [](GlobalOptions& o, const std::string&) { o.print.details = true; }},
    {"-s", "-stats", false, [](GlobalOptions& o, const std::string&) { ++o.print.stats; }},
    {"", "-statistics", false, [](GlobalOptions& o, const std::string&) { ++o.print.stats; }},
    {"-j", "-json", false, [](GlobalOptions& o, const std::string&) { o.print.json = true; }},
    {"-p", "-pretty", false, [](GlobalOptions& o, const std::string&) { o.print.pretty = true; }},
    {"-n", "-netns", true, [](GlobalOptions& o, const std::string& v) { o.netns = v; }},
    {"-V", "-Version", false, [](GlobalOptions& o, const std::string&) { o.version = true; }},
    {"-h", "-help", false, [](GlobalOptions& o, const std::string&) { o.help = true; }},
    {"", "-no-start", false, [](GlobalOptions& o, const std::string&) { o.no_start = true; }},
    {"", "-socket", true, [](GlobalOptions& o, const std::string& v) { o.socket = v; }},
};

std::string usage() {
  // "or:" lines and an "Options:" list: help2man turns this into the man
  // page's SYNOPSIS and OPTIONS as it stands.
  return "Usage: umacvlan [ OPTIONS ] link { COMMAND | help }\n"
         "  or:  umacvlan [ -j [ -p ] ] explain [ --port SPEC ] FROM to TO\n"
         "  or:  umacvlan [ -j [ -p ] ] lab [ --mode MODE ]... [ --with-kernel ] [ --keep | --down "
         "] "
         "[ --no-drawbacks ] [ --svg FILE ]\n"
         "  or:  umacvlan config { check [ FILE ] | apply [ FILE ] | dump }\n"
         "  or:  umacvlan reload\n"
         "  or:  umacvlan capture { dev NAME | port LOWER } [ -w FILE ] [ -c COUNT ] [ FILTER ]\n"
         "  or:  umacvlan [ -j ] monitor [ all | link | port | refused | drops ]... "
         "[ -c COUNT ]\n"
         "  or:  umacvlan daemon [ --socket PATH ] [ --state PATH ] [ --log-file PATH ] "
         "[ --netns PATH ] [ --workers N ] [ --tap-io auto|uring|syscalls ] [ --poll-us N ] "
         "[ --steer adaptive|flow ] "
         "[ --max-devices N ] [ --max-sources N ] [ --idle-exit SECONDS ] [ --cleanup ] "
         "[ --metrics [HOST]:PORT ] [ --config FILE ]\n"
         "  or:  umacvlan help [ TOPIC ]\n"
         "\n"
         "Options (before the object; one dash or two, as with ip):\n"
         "  -V, -Version        print the version\n"
         "  -s, -stats          show statistics (twice: more of them)\n"
         "  -d, -details        show details (mode, flags, source lists)\n"
         "  -j, -json           print JSON\n"
         "  -p, -pretty         indent the JSON\n"
         "  -n, -netns NAME     act in network namespace NAME (/run/netns/NAME, or a path)\n"
         "  --socket PATH       the daemon's control socket (default $UMACVLAN_SOCKET, else " +
         std::string(control::kDefaultSocketPath) +
         ")\n"
         "  --no-start          fail instead of starting the daemon when it is not running\n"
         "  -h, -help           print this help\n";
}

void write_out(FILE* stream, std::string_view text) {
  std::fwrite(text.data(), 1, text.size(), stream);
}

// Reads the options before the object; returns the index of the object word,
// or an exit code.
std::variant<std::size_t, int> parse_global_options(const std::vector<std::string>& args,
                                                    GlobalOptions* o) {
  std::size_t i = 0;
  while (i < args.size() && args[i].size() > 1 && args[i][0] == '-') {
    std::string word = args[i];
    std::optional<std::string> inline_value;
    // ip reads "--json" as "-json".
    if (word.rfind("--", 0) == 0) {
      word.erase(0, 1);
      if (auto eq = word.find('='); eq != std::string::npos) {
        inline_value = word.substr(eq + 1);
        word.resize(eq);
      }
    }
    const GlobalOption* found = nullptr;
    for (const GlobalOption& option : kGlobalOptions) {
      if (word == option.long_name || (!option.short_name.empty() && word == option.short_name)) {
        found = &option;
      }
    }
    if (found == nullptr || (inline_value && !found->takes_value)) {
      write_out(stderr,
                fmt::format("Option \"{}\" is unknown, try \"umacvlan -help\".\n", args[i]));
      return kExitUsage;
    }
    std::string value;
    if (found->takes_value) {
      if (inline_value) {
        value = *inline_value;
      } else if (i + 1 < args.size()) {
        value = args[++i];
      } else {
        write_out(stderr, "Command line is not complete. Try option \"help\"\n");
        return kExitUsage;
      }
    }
    found->apply(*o, value);
    ++i;
  }
  return i;
}

// `umacvlan daemon ...` is the daemon's own program, umacvlan-daemon, beside
// this one: the command line stays small and quick to start.
int run_daemon(const std::vector<std::string>& args, const GlobalOptions& global) {
  const std::string exe = daemon_program();
  std::vector<std::string> words{exe};
  if (global.socket) {
    words.push_back("--socket");
    words.push_back(*global.socket);
  }
  words.insert(words.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& w : words) argv.push_back(w.data());
  argv.push_back(nullptr);
  ::execvp(exe.c_str(), argv.data());
  write_out(stderr,
            fmt::format("Cannot run the umacvlan daemon \"{}\": {}\n", exe, std::strerror(errno)));
  return kExitUnreachable;
}

int open_netns(const std::string& name) {
  const std::string path = name.find('/') == std::string::npos ? "/run/netns/" + name : name;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    write_out(stderr, fmt::format("Cannot open network namespace \"{}\": {}\n", name,
                                  std::strerror(errno)));
  }
  return fd;
}

// Sends request to the daemon (from namespace -n NAME when given) and, when
// it cannot be reached or refuses, says so as ip would. 0 with *reply
// filled (and, for a stream, its connection in *stream_fd), else the exit
// code.
int ask_daemon(const control::LinkRequest& request, const GlobalOptions& global,
               control::Reply* reply, int* stream_fd = nullptr) {
  int netns_fd = -1;
  if (global.netns) {
    netns_fd = open_netns(*global.netns);
    if (netns_fd < 0) return kExitUsage;
  }
  std::string error;
  const int rc = call_daemon(request, reply, !global.no_start, &error, netns_fd, stream_fd);
  if (netns_fd >= 0) ::close(netns_fd);
  if (rc < 0) {
    write_out(stderr, error + "\n");
    return kExitUnreachable;
  }
  if (reply->error != 0) {
    std::string message = reply->message.empty()
                              ? fmt::format("RTNETLINK answers: {}", std::strerror(reply->error))
                              : reply->message;
    if (message.empty() || message.back() != '\n') message += '\n';
    write_out(stderr, message);
    // ip looks names up itself and exits 1 when one is missing.
    return reply->error == ENODEV && !reply->message.empty() ? kExitSyntax : kExitRefused;
  }
  return 0;
}

int run_link(const std::vector<std::string>& args, const GlobalOptions& global) {
  const LinkCommand command = parse_link_command(args);
  if (const auto* e = std::get_if<ParseError>(&command)) {
    write_out(stderr, e->message);
    return e->exit_code;
  }
  if (const auto* help = std::get_if<HelpText>(&command)) {
    write_out(stdout, help->text);
    return 0;
  }
  const auto& request = std::get<control::LinkRequest>(command);
  control::Reply reply;
  if (const int code = ask_daemon(request, global, &reply); code != 0) return code;
  if (request.op == control::LinkOp::kShow)
    write_out(stdout, print_links(reply.links, global.print));
  return 0;
}

// Set by SIGINT/SIGTERM while a capture or monitor runs: the stream ends
// and the summary is still printed.
std::atomic<bool> g_stop{false};

void on_stop_signal(int) {
  g_stop.store(true);
}

// Opens a stream (capture, monitor) with request; on success, runs consume
// with the stream's lines until it ends, Ctrl-C, or consume is done.
template <typename Consume>
int run_stream(const control::LinkRequest& request, const GlobalOptions& global,
               Consume&& consume) {
  control::Reply reply;
  int fd = -1;
  if (const int code = ask_daemon(request, global, &reply, &fd); code != 0) return code;
  // Interrupted reads return (no SA_RESTART), so the loop sees g_stop.
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  std::string buffer;
  const LineSource lines = [&](std::string* line) {
    for (;;) {
      if (const auto nl = buffer.find('\n'); nl != std::string::npos) {
        line->assign(buffer, 0, nl);
        buffer.erase(0, nl + 1);
        return true;
      }
      if (g_stop.load()) return false;
      char chunk[65536];
      const ssize_t n = ::read(fd, chunk, sizeof chunk);
      if (n > 0) {
        buffer.append(chunk, static_cast<std::size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        return false;
      }
    }
  };
  const int code = consume(lines);
  ::close(fd);
  return code;
}

// `capture ...` and `monitor ...`: "help", or the words parsed whole (an
// error changes nothing: no request is sent), then the stream.
template <typename Args, typename Stream>
int run_stream_command(const std::vector<std::string>& words, const GlobalOptions& global,
                       std::string (*usage)(),
                       bool (*parse)(const std::vector<std::string>&, Args*, std::string*),
                       control::LinkOp op, Stream&& stream) {
  if (words.size() == 1 && words[0] == "help") {
    write_out(stdout, usage());
    return 0;
  }
  Args args;
  std::string error;
  if (!parse(words, &args, &error)) {
    write_out(stderr, error);
    return kExitSyntax;
  }
  args.json = global.print.json;
  control::LinkRequest req;
  req.op = op;
  if constexpr (std::is_same_v<Args, CaptureArgs>)
    (args.kind == CaptureArgs::kDev ? req.name : req.link) = args.name;
  return run_stream(req, global, [&](const LineSource& lines) {
    return stream(args, lines, std::cout, std::cerr, &g_stop);
  });
}

// `umacvlan help [TOPIC]`; `help --man` prints the topics as help2man
// sections (the build makes the man page from them).
int run_help(const std::vector<std::string>& args) {
  if (args.empty()) {
    write_out(stdout, usage() + "\n" + topics_summary());
    return 0;
  }
  if (args.size() == 1 && args[0] == "--man") {
    write_out(stdout, topics_for_man());
    return 0;
  }
  if (args.size() == 1) {
    if (const auto text = topic_text(args[0])) {
      write_out(stdout, *text);
      return 0;
    }
  }
  write_out(stderr, fmt::format("Error: argument \"{}\" is wrong: no such help topic\n{}", args[0],
                                topics_summary()));
  return kExitSyntax;
}

int run(const std::vector<std::string>& args) {
  GlobalOptions global;
  const auto parsed = parse_global_options(args, &global);
  if (const int* exit_code = std::get_if<int>(&parsed)) return *exit_code;
  const std::size_t object = std::get<std::size_t>(parsed);
  if (global.version) {
    write_out(stdout, "umacvlan utility, " UMACVLAN_VERSION "\n");
    return 0;
  }
  if (global.socket) ::setenv("UMACVLAN_SOCKET", global.socket->c_str(), 1);
  // `umacvlan --help` and `umacvlan help` answer on stdout and succeed (what
  // help2man and users expect); no object at all is a usage error, as with ip.
  if (global.help) {
    write_out(stdout, usage() + "\n" + topics_summary());
    return 0;
  }
  if (object >= args.size()) {
    write_out(stderr, usage());
    return kExitUsage;
  }
  const std::vector<std::string> rest(args.begin() + static_cast<std::ptrdiff_t>(object) + 1,
                                      args.end());
  if (args[object] == "help") return run_help(rest);
  if (args[object] == "explain") {
    // explain asks about devices in its own namespace: enter NAME's first.
    if (global.netns) {
      const int fd = open_netns(*global.netns);
      if (fd < 0) return kExitUsage;
      const int rc = ::setns(fd, CLONE_NEWNET);
      ::close(fd);
      if (rc < 0) {
        write_out(stderr, fmt::format("Cannot enter network namespace \"{}\": {}\n", *global.netns,
                                      std::strerror(errno)));
        return kExitUsage;
      }
    }
    return run_explain(rest, global.print.json, global.print.pretty);
  }
  if (args[object] == "lab") return run_lab(rest, global.print.json, global.print.pretty);
  if (args[object] == "config") return run_config(rest, !global.no_start);
  if (args[object] == "reload") return run_reload(rest);
  if (args[object] == "capture") {
    return run_stream_command<CaptureArgs>(
        rest, global, capture_usage, parse_capture_args, control::LinkOp::kCapture,
        [](const CaptureArgs& a, const LineSource& l, std::ostream& o, std::ostream& e,
           const std::atomic<bool>* stop) { return run_capture_stream(a, l, o, e, stop); });
  }
  if (args[object] == "monitor") {
    return run_stream_command<MonitorArgs>(rest, global, monitor_usage, parse_monitor_args,
                                           control::LinkOp::kMonitor, run_monitor_stream);
  }
  if (args[object] == "link") return run_link(rest, global);
  if (args[object] == "daemon") return run_daemon(rest, global);
  write_out(stderr,
            fmt::format("Object \"{}\" is unknown, try \"umacvlan help\".\n", args[object]));
  return kExitSyntax;
}

}  // namespace
}  // namespace umacvlan::cli

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + (argc > 0 ? 1 : 0), argv + argc);
  const int rc = umacvlan::cli::run(args);
  std::fflush(stdout);
  return rc;
}
