#include "cli/link_printer.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

namespace umacvlan::cli {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;

// Where a print call goes: both outputs (ip's PRINT_ANY), JSON only, text only.
enum class To { kAny, kJson, kText };

std::string scalar_text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  return v.dump(-1, ' ', false, json::error_handler_t::replace);
}

const json* member(const json& object, std::string_view key) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

// Collects text and a JSON document from the same calls.
class Printer {
 public:
  explicit Printer(bool json) : json_(json) { stack_.push_back(&root_); }

  bool json() const { return json_; }

  void text(std::string_view s) {
    if (!json_) text_ += s;
  }

  // text_format has one "{}" for the value.
  void value(To to, std::string_view key, std::string_view text_format, const nlohmann::json& v) {
    if (json_ && to != To::kText) add(key, ordered_json(v));
    if (!json_ && to != To::kJson) text_ += fmt::format(fmt::runtime(text_format), scalar_text(v));
  }

  // Prints `key` from `object` when it is there.
  void member_value(To to, const nlohmann::json& object, std::string_view key,
                    std::string_view text_format) {
    if (const auto* v = member(object, key)) value(to, key, text_format, *v);
  }

  void begin_object(std::string_view key = {}) { begin(key, ordered_json::object()); }
  void begin_array(std::string_view key) { begin(key, ordered_json::array()); }
  void end() {
    if (json_) stack_.pop_back();
  }

  std::string finish(bool pretty) const {
    if (!json_) return text_;
    return (pretty ? to_pretty_json(root_)
                   : root_.dump(-1, ' ', false, ordered_json::error_handler_t::replace)) +
           "\n";
  }

 private:
  void begin(std::string_view key, ordered_json empty) {
    if (!json_) return;
    stack_.push_back(add(key, std::move(empty)));
  }

  // Adds to the innermost open object (under key) or array (key ignored).
  ordered_json* add(std::string_view key, ordered_json v) {
    ordered_json& top = *stack_.back();
    if (top.is_array()) {
      top.push_back(std::move(v));
      return &top.back();
    }
    ordered_json& slot = top[std::string(key)];
    slot = std::move(v);
    return &slot;
  }

  bool json_;
  std::string text_;
  ordered_json root_ = ordered_json::array();
  // Innermost open container last; only the path from the root is held, and
  // a container only grows while it is the innermost, so the pointers stay valid.
  std::vector<ordered_json*> stack_;
};

// ------------------------------------------------------------- statistics

struct Counter {
  std::string_view key;
  std::string_view label;
};

constexpr std::size_t kColumns = 6;
// Widths of the value columns when the numbers are short; longer numbers
// widen their column in every row of the table, as in ip.
constexpr std::array<std::size_t, kColumns> kMinWidths{10, 7, 6, 7, 7, 7};

// The text columns. ip's text shows rx "missed" where its JSON has
// "over_errors" in the same place; the error rows start at column 1.
constexpr std::array<Counter, kColumns> kRxText{{{"bytes", "bytes"},
                                                 {"packets", "packets"},
                                                 {"errors", "errors"},
                                                 {"dropped", "dropped"},
                                                 {"missed_errors", "missed"},
                                                 {"multicast", "mcast"}}};
constexpr std::array<Counter, kColumns - 1> kRxErrorText{{{"length_errors", "length"},
                                                          {"crc_errors", "crc"},
                                                          {"frame_errors", "frame"},
                                                          {"fifo_errors", "fifo"},
                                                          {"over_errors", "overrun"}}};
constexpr std::array<Counter, kColumns> kTxText{{{"bytes", "bytes"},
                                                 {"packets", "packets"},
                                                 {"errors", "errors"},
                                                 {"dropped", "dropped"},
                                                 {"carrier_errors", "carrier"},
                                                 {"collisions", "collsns"}}};
constexpr std::array<Counter, kColumns - 1> kTxErrorText{{{"aborted_errors", "aborted"},
                                                          {"fifo_errors", "fifo"},
                                                          {"window_errors", "window"},
                                                          {"heartbeat_errors", "heartbt"},
                                                          {"carrier_changes", "transns"}}};

// The JSON keys, in ip's order: `-s` prints the first six, `-s -s` all.
constexpr std::string_view kRxJson[] = {
    "bytes",         "packets",    "errors",       "dropped",     "over_errors",  "multicast",
    "length_errors", "crc_errors", "frame_errors", "fifo_errors", "missed_errors"};
constexpr std::string_view kTxJson[] = {
    "bytes",          "packets",          "errors",         "dropped",
    "carrier_errors", "collisions",       "aborted_errors", "fifo_errors",
    "window_errors",  "heartbeat_errors", "carrier_changes"};
constexpr std::size_t kBasicCounters = 6;

std::string counter(const json& dir, std::string_view key) {
  const json* v = member(dir, key);
  return v == nullptr ? "0" : scalar_text(*v);
}

std::string right(std::string_view s, std::size_t width) {
  return fmt::format("{:>{}}", s, width);
}

void print_stats_text(Printer& p, const json& stats, int level) {
  const json* rx_ptr = member(stats, "rx");
  const json* tx_ptr = member(stats, "tx");
  const json empty = json::object();
  const json& rx = rx_ptr != nullptr ? *rx_ptr : empty;
  const json& tx = tx_ptr != nullptr ? *tx_ptr : empty;
  const bool errors = level > 1;

  std::array<std::size_t, kColumns> w = kMinWidths;
  for (std::size_t i = 0; i < kColumns; ++i) {
    w[i] = std::max({w[i], counter(rx, kRxText[i].key).size(), counter(tx, kTxText[i].key).size()});
    if (errors && i > 0) {
      w[i] = std::max({w[i], counter(rx, kRxErrorText[i - 1].key).size(),
                       counter(tx, kTxErrorText[i - 1].key).size()});
    }
  }

  auto table = [&](std::string_view name, const json& dir, const auto& cols) {
    std::string header = fmt::format("    {}: {}", name, right(cols[0].label, w[0] - 4));
    std::string values = "    " + right(counter(dir, cols[0].key), w[0]);
    for (std::size_t i = 1; i < kColumns; ++i) {
      header += " " + right(cols[i].label, w[i]);
      values += " " + right(counter(dir, cols[i].key), w[i]);
    }
    // ip leaves room for its optional "nohandler"/"otherhost" columns.
    p.text(header + std::string(11, ' ') + "\n" + values + " \n");
  };
  auto error_table = [&](std::string_view name, const json& dir, const auto& cols) {
    std::string header = "    " + fmt::format("{:<{}}", name, w[0]);
    std::string values = "    " + std::string(w[0], ' ');
    for (std::size_t i = 1; i < kColumns; ++i) {
      header += " " + right(cols[i - 1].label, w[i]);
      values += " " + right(counter(dir, cols[i - 1].key), w[i]);
    }
    p.text(header + "\n" + values + " \n");
  };

  table("RX", rx, kRxText);
  if (errors) error_table("RX errors:", rx, kRxErrorText);
  table("TX", tx, kTxText);
  if (errors) error_table("TX errors:", tx, kTxErrorText);
}

void print_stats(Printer& p, const json& stats, int level) {
  if (!p.json()) {
    print_stats_text(p, stats, level);
    return;
  }
  const std::size_t count = level > 1 ? std::size(kRxJson) : kBasicCounters;
  p.begin_object("stats64");
  auto direction = [&](std::string_view name, const std::string_view* keys) {
    const json* dir = member(stats, name);
    if (dir == nullptr) return;
    p.begin_object(name);
    for (std::size_t i = 0; i < count; ++i) p.member_value(To::kJson, *dir, keys[i], "");
    p.end();
  };
  direction("rx", kRxJson);
  direction("tx", kTxJson);
  p.end();
}

// --------------------------------------------------------------- macvlan

void print_macvlan(Printer& p, const json& linkinfo) {
  p.begin_object("linkinfo");
  p.text("\n    ");
  p.member_value(To::kAny, linkinfo, "info_kind", "{} ");
  if (const json* data = member(linkinfo, "info_data"); data != nullptr && data->is_object()) {
    p.begin_object("info_data");
    p.member_value(To::kAny, *data, "mode", "mode {} ");
    if (const json* v = member(*data, "nopromisc"); v != nullptr && *v == true) {
      p.value(To::kAny, "nopromisc", "nopromisc ", true);
    }
    if (const json* v = member(*data, "nodst"); v != nullptr && *v == true) {
      p.value(To::kAny, "nodst", "nodst ", true);
    }
    if (const json* v = member(*data, "spoofchk"); v != nullptr && *v == true) {
      p.value(To::kAny, "spoofchk", "spoofchk on ", true);
    }
    if (const json* v = member(*data, "hostaccess"); v != nullptr && *v == true) {
      p.value(To::kAny, "hostaccess", "hostaccess on ", true);
    }
    if (const json* v = member(*data, "macnat"); v != nullptr && *v == true) {
      p.value(To::kAny, "macnat", "macnat on ", true);
      p.member_value(To::kAny, *data, "macnat_ageing", "macnat_ageing {} ");
    }
    p.member_value(To::kAny, *data, "bcqueuelen", "bcqueuelen {} ");
    p.member_value(To::kAny, *data, "usedbcqueuelen", "usedbcqueuelen {} ");
    // ip 6.1 does not print bclim: shown only when it is not the default 1.
    if (const json* v = member(*data, "bclim"); v != nullptr && !(v->is_number() && *v == 1)) {
      p.member_value(To::kAny, *data, "bclim", "bclim {} ");
    }
    p.member_value(To::kAny, *data, "macaddr_count", "remotes ({}) ");
    if (const json* macs = member(*data, "macaddr_data"); macs != nullptr && macs->is_array()) {
      p.begin_array("macaddr_data");
      for (const json& mac : *macs) p.value(To::kAny, "", "{} ", mac);
      p.end();
    }
    p.end();
  }
  p.end();
}

// ------------------------------------------------------------------ port

// A port option: true/false in JSON, " KEY on|off" in text.
void print_on_off(Printer& p, const json& object, std::string_view key) {
  const json* v = member(object, key);
  if (v == nullptr) return;
  p.value(To::kJson, key, "", *v);
  const std::string text = v->is_boolean() ? (*v == true ? "on" : "off") : scalar_text(*v);
  p.text(fmt::format(" {} {}", key, text));
}

// A lower's "umacvlan_port": one line with the port's options, then, with
// macnat on, one line per address it learned, in the daemon's order. With
// macnat off the text says only that (its ageing and table mean nothing
// then); JSON keeps whatever came.
void print_port(Printer& p, const json& port) {
  p.begin_object("umacvlan_port");
  p.text("\n    umacvlan port");
  print_on_off(p, port, "hostaccess");
  print_on_off(p, port, "macnat");
  const json* macnat = member(port, "macnat");
  const bool on = macnat != nullptr && *macnat == true;
  const To when_on = on ? To::kAny : To::kJson;
  p.member_value(when_on, port, "macnat_ageing", " macnat_ageing {}");
  p.member_value(when_on, port, "macnat_max", " macnat_max {}");
  if (const json* table = member(port, "macnat_table"); table != nullptr && table->is_array()) {
    p.begin_array("macnat_table");
    for (const json& entry : *table) {
      if (!entry.is_object()) continue;
      p.begin_object();
      if (on) p.text("\n    macnat");
      p.member_value(when_on, entry, "address", " {}");
      p.member_value(when_on, entry, "dev", " dev {}");
      p.member_value(when_on, entry, "netns", " netns {}");
      p.member_value(when_on, entry, "lladdr", " lladdr {}");
      p.member_value(when_on, entry, "learned", " learned {}");
      p.member_value(when_on, entry, "age", " age {}s");
      p.end();
    }
    p.end();
  }
  p.end();
}

// ------------------------------------------------------------------ link

void print_link(Printer& p, const json& link, const PrintOptions& o) {
  p.begin_object();
  p.member_value(To::kAny, link, "ifindex", "{}: ");
  p.member_value(To::kJson, link, "link", "");
  p.member_value(To::kJson, link, "link_index", "");
  p.member_value(To::kAny, link, "ifname", "{}");
  if (const json* lower = member(link, "link")) {
    p.text("@" + scalar_text(*lower));
  } else if (const json* index = member(link, "link_index")) {
    p.text("@if" + scalar_text(*index));
  }
  p.text(": ");
  if (const json* flags = member(link, "flags"); flags != nullptr && flags->is_array()) {
    p.begin_array("flags");
    p.text("<");
    bool first = true;
    for (const json& flag : *flags) {
      p.value(To::kAny, "", first ? "{}" : ",{}", flag);
      first = false;
    }
    p.text("> ");
    p.end();
  }
  p.member_value(To::kAny, link, "mtu", "mtu {} ");
  p.member_value(To::kAny, link, "qdisc", "qdisc {} ");
  p.member_value(To::kAny, link, "operstate", "state {} ");
  p.member_value(To::kAny, link, "linkmode", "mode {} ");
  p.member_value(To::kAny, link, "group", "group {} ");
  p.member_value(To::kAny, link, "txqlen", "qlen {}");
  p.text("\n    ");
  p.member_value(To::kAny, link, "link_type", "link/{}");
  p.member_value(To::kAny, link, "address", " {}");
  p.member_value(To::kAny, link, "broadcast", " brd {}");
  // ip: the id in JSON; in text the namespace's name when it has one.
  p.member_value(To::kJson, link, "link_netnsid", "");
  if (const json* name = member(link, "link_netns"); name != nullptr) {
    p.text(" link-netns " + scalar_text(*name));
  } else {
    p.member_value(To::kText, link, "link_netnsid", " link-netnsid {}");
  }
  if (o.details) {
    p.member_value(To::kAny, link, "promiscuity", " promiscuity {} ");
    p.member_value(To::kAny, link, "allmulti", " allmulti {} ");
    p.member_value(To::kAny, link, "min_mtu", "minmtu {} ");
    p.member_value(To::kAny, link, "max_mtu", "maxmtu {} ");
    if (const json* linkinfo = member(link, "linkinfo"); linkinfo != nullptr) {
      print_macvlan(p, *linkinfo);
    }
    if (const json* port = member(link, "umacvlan_port"); port != nullptr && port->is_object()) {
      print_port(p, *port);
    }
  }
  p.text("\n");
  if (o.stats > 0) {
    if (const json* stats = member(link, "stats64"); stats != nullptr) {
      print_stats(p, *stats, o.stats);
    }
  }
  p.end();
}

void write_pretty(const ordered_json& v, int depth, std::string& out) {
  auto indent = [&out](int level) { out.append(static_cast<std::size_t>(level) * 4, ' '); };
  if (v.is_object()) {
    if (v.empty()) {
      out += "{}";
      return;
    }
    out += "{\n";
    bool first = true;
    for (const auto& [key, item] : v.items()) {
      if (!first) out += ",\n";
      first = false;
      indent(depth + 1);
      out += ordered_json(key).dump(-1, ' ', false, ordered_json::error_handler_t::replace);
      out += ": ";
      write_pretty(item, depth + 1, out);
    }
    out += "\n";
    indent(depth);
    out += "}";
  } else if (v.is_array()) {
    if (v.empty()) {
      out += "[ ]";
      return;
    }
    out += "[ ";
    bool first = true;
    for (const auto& item : v) {
      if (!first) out += ",";
      first = false;
      write_pretty(item, depth + 1, out);
    }
    out += " ]";
  } else {
    out += v.dump(-1, ' ', false, ordered_json::error_handler_t::replace);
  }
}

}  // namespace

std::string to_pretty_json(const ordered_json& value) {
  std::string out;
  write_pretty(value, 0, out);
  return out;
}

std::string print_links(const json& links, const PrintOptions& options) {
  Printer p(options.json);
  if (links.is_array()) {
    for (const json& link : links) {
      if (link.is_object()) print_link(p, link, options);
    }
  }
  return p.finish(options.pretty);
}

}  // namespace umacvlan::cli
