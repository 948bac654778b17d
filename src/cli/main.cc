// umacvlan: the command line, shaped like `ip`.
//
//   umacvlan [ OPTIONS ] link { add | set | delete | show | help } ...
//   umacvlan [ --socket PATH ] daemon [ --socket PATH ] [ --foreground ] [ --idle-exit SECONDS ]
//   umacvlan { help | -V }
//
// ip's global options come before the object, are single-dash words
// ("-details", "-json") that may also be written with two dashes, and "-s"
// counts; CLI11 would read "-details" as seven short flags, so these are a
// small table. The daemon's options are plain GNU long options: CLI11 reads
// those. Exit codes are ip's: 0 success, 1/255 for a command ip would not
// send (see link_parser.h), 2 when the daemon refuses a request (1 when it
// did not find the device: ip finds devices itself and exits 1 for that), 1
// when the daemon cannot be reached.
#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <variant>
#include <vector>

#include "cli/control_client.h"
#include "cli/link_parser.h"
#include "cli/link_printer.h"
#include "control/control_channel.h"
#include "daemon/daemon.h"
#include "daemon/dataplane.h"

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
  return "Usage: umacvlan [ OPTIONS ] link { COMMAND | help }\n"
         "       umacvlan daemon [ --socket PATH ] [ --state PATH ] [ --log-file PATH ] [ --netns "
         "PATH ]\n"
         "                       [ --workers N ] [ --tap-io auto|uring|syscalls ]\n"
         "                       [ --max-devices N ] [ --max-sources N ]\n"
         "                       [ --idle-exit SECONDS ] [ --cleanup ]\n"
         "       umacvlan help\n"
         "where  OPTIONS := { -V[ersion] | -s[tats] | -d[etails] | -j[son] | -p[retty] |\n"
         "                    -n[etns] NAME | --socket PATH | --no-start }\n"
         "       --socket PATH: the daemon's control socket (default $UMACVLAN_SOCKET, else\n"
         "                      " +
         std::string(control::kDefaultSocketPath) +
         ")\n"
         "       --no-start:    fail instead of starting the daemon when it is not running\n";
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

int run_daemon(std::vector<std::string> args, const GlobalOptions& global) {
  CLI::App app{"umacvlan daemon: creates the macvlan links and moves their frames", "daemon"};
  std::string socket = global.socket.value_or(control::default_socket_path());
  std::string state;
  std::string log_file;
  bool foreground = false;
  bool cleanup = false;
  int idle_exit_seconds = 0;
  // One dataplane thread per CPU: each reads its own queue of every TAP and
  // its own ring on the lower.
  std::size_t workers =
      std::clamp<std::size_t>(std::thread::hardware_concurrency(), 1, daemon::kMaxWorkers);
  core::PortLimits limits;
  app.add_option("--socket", socket, "control socket path")->capture_default_str();
  app.add_option("--state", state,
                 "state file (default: /var/lib/umacvlan/state.json for the default socket, "
                 "else NAME.state.json beside NAME.sock)");
  app.add_option("--log-file", log_file, "append the log to this file instead of stderr");
  std::string netns;
  if (const char* env = std::getenv("UMACVLAN_DAEMON_NETNS"); env != nullptr) netns = env;
  app.add_option("--netns", netns,
                 "network namespace to live in, as a path (default $UMACVLAN_DAEMON_NETNS, else "
                 "the host's: that of PID 1)");
  app.add_flag("--foreground", foreground,
               "accepted for scripts: the daemon always runs in the foreground");
  app.add_flag("--cleanup", cleanup,
               "remove every device this daemon made (and its state file), then exit");
  app.add_option("--workers", workers, "dataplane threads")
      ->check(CLI::Range(std::size_t{1}, daemon::kMaxWorkers))
      ->capture_default_str();
  std::string tap_io = "auto";
  app.add_option("--tap-io", tap_io,
                 "how workers read and write TAPs: uring (a burst per system call), syscalls "
                 "(one per frame), auto (uring where the kernel allows)")
      ->check(CLI::IsMember({"auto", "uring", "syscalls"}))
      ->capture_default_str();
  int poll_us = 0;
  app.add_option("--poll-us", poll_us,
                 "microseconds a worker keeps polling after its last frame before it sleeps "
                 "(lower latency under traffic, a busy core meanwhile; idle costs nothing)")
      ->check(CLI::Range(0, 1000000))
      ->capture_default_str();
  app.add_option("--max-devices", limits.max_devices, "devices per lower")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--max-sources", limits.max_sources, "source-list entries per device")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--idle-exit", idle_exit_seconds,
                 "exit after this many seconds without links or clients (0: never)")
      ->check(CLI::NonNegativeNumber);
  std::reverse(args.begin(), args.end());  // CLI11 takes its words last first
  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : kExitUsage;  // --help is not an error
  }
  if (!log_file.empty()) {
    try {
      spdlog::set_default_logger(spdlog::basic_logger_mt("umacvlan", log_file));
      spdlog::flush_on(spdlog::level::info);
    } catch (const spdlog::spdlog_ex& e) {
      write_out(stderr, fmt::format("Cannot log to \"{}\": {}\n", log_file, e.what()));
      return kExitUsage;
    }
  }
  daemon::Options options;
  options.socket_path = socket;
  options.state_path = state;
  options.netns = netns;
  options.idle_exit_seconds = idle_exit_seconds;
  options.workers = workers;
  options.poll_us = poll_us;
  options.tap_io = tap_io == "uring"      ? daemon::TapIo::kUring
                   : tap_io == "syscalls" ? daemon::TapIo::kSyscalls
                                          : daemon::TapIo::kAuto;
  options.limits = limits;
  options.cleanup = cleanup;
  return daemon::run(options);
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

  int netns_fd = -1;
  if (global.netns) {
    netns_fd = open_netns(*global.netns);
    if (netns_fd < 0) return kExitUsage;
  }
  control::Reply reply;
  std::string error;
  const int rc = call_daemon(request, &reply, !global.no_start, &error, netns_fd);
  if (netns_fd >= 0) ::close(netns_fd);
  if (rc < 0) {
    write_out(stderr, error + "\n");
    return kExitUnreachable;
  }
  if (reply.error != 0) {
    std::string message = reply.message.empty()
                              ? fmt::format("RTNETLINK answers: {}", std::strerror(reply.error))
                              : reply.message;
    if (message.empty() || message.back() != '\n') message += '\n';
    write_out(stderr, message);
    // ip looks names up itself and exits 1 when one is missing.
    return reply.error == ENODEV && !reply.message.empty() ? kExitSyntax : kExitRefused;
  }
  if (request.op == control::LinkOp::kShow)
    write_out(stdout, print_links(reply.links, global.print));
  return 0;
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
  if (global.help || object >= args.size() || args[object] == "help") {
    write_out(stderr, usage());
    return kExitUsage;
  }
  const std::vector<std::string> rest(args.begin() + static_cast<std::ptrdiff_t>(object) + 1,
                                      args.end());
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
