#include "cli/monitor.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <optional>
#include <utility>

namespace umacvlan::cli {
namespace {

using nlohmann::json;

std::string wrong_argument(std::string_view arg, std::string_view why) {
  return fmt::format("Error: argument \"{}\" is wrong: {}\n", arg, why);
}

bool parse_count(std::string_view text, std::uint64_t* out) {
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size()) return false;
  *out = v;
  return true;
}

// The text of ev[key]: a string as it is, a number or boolean as JSON
// writes it, "" for anything else or nothing.
std::string text_of(const json& ev, const char* key) {
  if (!ev.is_object()) return "";
  const auto it = ev.find(key);
  if (it == ev.end()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_number() || it->is_boolean()) return it->dump();
  return "";
}

// ev[key] as a boolean; nullopt when it is not one.
std::optional<bool> bool_of(const json& ev, const char* key) {
  const auto it = ev.find(key);
  if (it == ev.end() || !it->is_boolean()) return std::nullopt;
  return it->get<bool>();
}

std::vector<std::string> changes_of(const json& ev) {
  std::vector<std::string> changes;
  const auto it = ev.find("changes");
  if (it == ev.end() || !it->is_array()) return changes;
  for (const json& c : *it) {
    if (c.is_string()) changes.push_back(c.get<std::string>());
  }
  return changes;
}

// "mv0@eth0", or "mv0" without a link.
std::string link_name(const json& ev) {
  std::string name = text_of(ev, "name");
  if (name.empty()) name = "?";
  const std::string link = text_of(ev, "link");
  return link.empty() ? name : fmt::format("{}@{}", name, link);
}

std::string netns_words(const json& ev) {
  const std::string netns = text_of(ev, "netns");
  return netns.empty() ? "the daemon's netns" : fmt::format("netns {}", netns);
}

// " key value" for a present key.
void append(std::string* s, std::string_view word, const std::string& value) {
  if (!value.empty()) *s += fmt::format(" {} {}", word, value);
}

std::string state_of(const json& ev) {
  const auto up = bool_of(ev, "up");
  return up ? (*up ? "UP" : "DOWN") : "";
}

// One changed field with its new value: "up", "mtu 9000", "netns ns1", ...
std::string describe_change(const json& ev, const std::string& change) {
  if (change == "up") {
    const auto up = bool_of(ev, "up");
    return up ? (*up ? "up" : "down") : "up/down";
  }
  if (change == "carrier") {
    const auto carrier = bool_of(ev, "carrier");
    return carrier ? (*carrier ? "carrier on" : "carrier off") : "carrier";
  }
  if (change == "netns") return netns_words(ev);
  if (change == "address" || change == "mtu" || change == "mode" || change == "name" ||
      change == "ifindex") {
    const std::string value = text_of(ev, change.c_str());
    return value.empty() ? change : fmt::format("{} {}", change, value);
  }
  return change;
}

std::string describe_changes(const json& ev) {
  std::vector<std::string> words;
  for (const std::string& c : changes_of(ev)) words.push_back(describe_change(ev, c));
  return fmt::format("{}", fmt::join(words, " "));
}

std::string format_link(const json& ev) {
  const std::string event = text_of(ev, "event");
  const std::string name = link_name(ev);
  if (event == "added") {
    std::string s = fmt::format("[LINK] added {}", name);
    append(&s, "mode", text_of(ev, "mode"));
    if (const std::string address = text_of(ev, "address"); !address.empty()) s += " " + address;
    append(&s, "mtu", text_of(ev, "mtu"));
    append(&s, "state", state_of(ev));
    append(&s, "netns", text_of(ev, "netns"));
    return s;
  }
  if (event == "changed") {
    std::string state;
    append(&state, "mtu", text_of(ev, "mtu"));
    append(&state, "state", state_of(ev));
    const std::string changes = describe_changes(ev);
    std::string s = fmt::format("[LINK] changed {}", name);
    if (!changes.empty()) s += ": " + changes;
    if (!state.empty()) s += fmt::format(" ({})", state.substr(1));
    return s;
  }
  if (event == "moved") {
    const std::string old_name = text_of(ev, "old_name");
    const std::string link = text_of(ev, "link");
    if (!old_name.empty() && old_name != text_of(ev, "name")) {
      return fmt::format("[LINK] moved {}{} to {} as {}", old_name, link.empty() ? "" : "@" + link,
                         netns_words(ev), text_of(ev, "name"));
    }
    // Without the old name, a rename that came with the move is only said.
    const std::vector<std::string> changes = changes_of(ev);
    const bool renamed = std::find(changes.begin(), changes.end(), "name") != changes.end();
    return fmt::format("[LINK] moved {} to {}{}", name, netns_words(ev),
                       renamed ? " (renamed)" : "");
  }
  if (event == "removed") return fmt::format("[LINK] Deleted {}", name);
  return fmt::format("[LINK] {} {}", event.empty() ? "event" : event, name);
}

std::string format_port(const json& ev) {
  const std::string event = text_of(ev, "event");
  std::string name = text_of(ev, "name");
  if (name.empty()) name = "?";
  if (event == "added" || event == "removed") return fmt::format("[PORT] {} {}", name, event);
  if (event == "carrier") {
    const auto carrier = bool_of(ev, "carrier");
    return fmt::format("[PORT] {}: carrier {}", name, carrier ? (*carrier ? "on" : "off") : "?");
  }
  if (event == "changed") {
    const std::string changes = describe_changes(ev);
    return changes.empty() ? fmt::format("[PORT] {} changed", name)
                           : fmt::format("[PORT] {} changed: {}", name, changes);
  }
  return fmt::format("[PORT] {} {}", name, event.empty() ? "event" : event);
}

std::string format_refused(const json& ev) {
  std::string op = text_of(ev, "op");
  if (op.empty()) op = "?";
  std::string name = text_of(ev, "name");
  if (name.empty()) name = "?";
  std::string s = fmt::format("[REFUSED] link {} {}", op, name);
  if (const std::string link = text_of(ev, "link"); !link.empty()) s += " link " + link;
  std::string message = text_of(ev, "message");
  // The daemon's sentences are ip's ("Error: ..."): the tag says it already.
  if (message.rfind("Error: ", 0) == 0) message.erase(0, 7);
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
  const std::string errno_text = text_of(ev, "errno");
  if (message.empty()) {
    const auto it = ev.find("errno");
    message = it != ev.end() && it->is_number_integer() && it->get<std::int64_t>() > 0 &&
                      it->get<std::int64_t>() < 4096
                  ? std::strerror(static_cast<int>(it->get<std::int64_t>()))
                  : "refused";
  }
  s += ": " + message;
  if (const std::string error = text_of(ev, "error"); !error.empty()) {
    s += fmt::format(" ({})", error);
  } else if (!errno_text.empty()) {
    s += fmt::format(" (errno {})", errno_text);
  }
  return s;
}

// A count over `seconds` as a rate: "12/s", "1.5/s" (whole numbers when
// the interval was about a second, as the daemon's are).
std::string rate(std::uint64_t count, double seconds) {
  const double r = static_cast<double>(count) / seconds;
  const double whole = std::round(r);
  if (std::fabs(r - whole) < 0.05) return fmt::format("{}/s", static_cast<std::uint64_t>(whole));
  return fmt::format("{:.1f}/s", r);
}

std::string format_drops(const json& ev) {
  std::string port = text_of(ev, "port");
  if (port.empty()) port = "?";
  double seconds = 1;
  if (const auto it = ev.find("seconds"); it != ev.end() && it->is_number()) {
    const double s = it->get<double>();
    if (s > 0 && std::isfinite(s)) seconds = s;
  }
  std::vector<std::pair<std::string, std::uint64_t>> counts;
  if (const auto it = ev.find("drops"); it != ev.end() && it->is_object()) {
    for (const auto& [reason, count] : it->items()) {
      if (count.is_number_unsigned()) counts.emplace_back(reason, count.get<std::uint64_t>());
    }
  }
  // The largest first: that is what to look at.
  std::sort(counts.begin(), counts.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  std::vector<std::string> parts;
  for (const auto& [reason, count] : counts) {
    parts.push_back(fmt::format("{} {}", reason, rate(count, seconds)));
  }
  if (parts.empty()) parts.push_back("none");
  return fmt::format("[DROPS] {}: {}", port, fmt::join(parts, ", "));
}

}  // namespace

bool parse_monitor_args(const std::vector<std::string>& words, MonitorArgs* out,
                        std::string* error) {
  MonitorArgs a;
  a.json = out->json;
  bool all = false;
  bool any = false;
  bool have_count = false;
  a.link = a.port = a.refused = a.drops = false;
  for (std::size_t i = 0; i < words.size(); ++i) {
    const std::string& w = words[i];
    if (w == "all") {
      all = true;
    } else if (w == "link") {
      a.link = any = true;
    } else if (w == "port") {
      a.port = any = true;
    } else if (w == "refused") {
      a.refused = any = true;
    } else if (w == "drops") {
      a.drops = any = true;
    } else if (w == "-c") {
      if (i + 1 >= words.size()) {
        *error = "Command line is not complete. Try \"umacvlan monitor help\".\n";
        return false;
      }
      if (have_count) {
        *error = fmt::format("Error: either \"-c\" is duplicate, or \"{}\" is a garbage.\n",
                             words[i + 1]);
        return false;
      }
      if (!parse_count(words[i + 1], &a.count)) {
        *error = wrong_argument(words[i + 1], "COUNT must be a non-negative integer");
        return false;
      }
      have_count = true;
      ++i;
    } else {
      *error =
          wrong_argument(w, "what to monitor is all, link, port, refused or drops, and -c COUNT");
      return false;
    }
  }
  if (all || !any) a.link = a.port = a.refused = a.drops = true;
  *out = a;
  return true;
}

std::string monitor_usage() {
  return "Usage: umacvlan [ -j ] monitor [ all | OBJECT... ] [ -c COUNT ]\n"
         "where  OBJECT := link | port | refused | drops\n"
         "       COUNT  := stop after COUNT events (0: never)\n";
}

bool monitor_shows(const MonitorArgs& args, const std::string& type) {
  if (type == "link") return args.link;
  if (type == "port") return args.port;
  if (type == "refused") return args.refused;
  if (type == "drops") return args.drops;
  return false;
}

std::string format_event(const json& ev) {
  if (!ev.is_object()) return "";
  const std::string type = text_of(ev, "type");
  std::string line;
  if (type == "link") {
    line = format_link(ev);
  } else if (type == "port") {
    line = format_port(ev);
  } else if (type == "refused") {
    line = format_refused(ev);
  } else if (type == "drops") {
    line = format_drops(ev);
  }
  // One event, one line, whatever the strings hold.
  std::replace_if(
      line.begin(), line.end(), [](char c) { return c == '\n' || c == '\r'; }, ' ');
  return line;
}

int run_monitor_stream(const MonitorArgs& args, const LineSource& source, std::ostream& out,
                       std::ostream& err, const std::atomic<bool>* stop) {
  std::uint64_t shown = 0;
  std::uint64_t malformed = 0;
  std::string line;
  while (stop == nullptr || !stop->load(std::memory_order_relaxed)) {
    if (!source(&line)) break;
    const nlohmann::ordered_json ev = nlohmann::ordered_json::parse(line, nullptr, false);
    const auto type = ev.is_object() ? ev.find("type") : ev.end();
    if (ev.is_discarded() || !ev.is_object() || type == ev.end() || !type->is_string()) {
      ++malformed;
      continue;
    }
    if (!monitor_shows(args, type->get<std::string>())) continue;
    const std::string text =
        args.json ? ev.dump(-1, ' ', false, json::error_handler_t::replace) : format_event(ev);
    if (text.empty()) continue;
    out << text << '\n';
    if (!out.flush()) {
      err << "Error: cannot write the events to the output.\n" << std::flush;
      return 1;
    }
    if (++shown == args.count) break;
  }
  if (malformed != 0) {
    err << fmt::format("{} malformed {} skipped\n", malformed, malformed == 1 ? "event" : "events")
        << std::flush;
  }
  return 0;
}

}  // namespace umacvlan::cli
