#include "cli/config_file.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <utility>

#include "cli/control_client.h"
#include "cli/link_parser.h"
#include "control/control_channel.h"

namespace umacvlan::cli {
namespace {

constexpr std::size_t kIfNameSize = 16;  // IFNAMSIZ, NUL included
constexpr std::int64_t kMinMtu = 68;
constexpr std::int64_t kMaxMtu = 65535;

enum class Type { kString, kInteger, kBoolean, kMacList };

struct Key {
  std::string_view name;
  Type type;
};

// Every key a [[device]] table may hold.
constexpr Key kKeys[] = {
    {"name", Type::kString},        {"lower", Type::kString},
    {"lower_netns", Type::kString}, {"netns", Type::kString},
    {"mode", Type::kString},        {"mac", Type::kString},
    {"mtu", Type::kInteger},        {"up", Type::kBoolean},
    {"bcqueuelen", Type::kInteger}, {"nopromisc", Type::kBoolean},
    {"nodst", Type::kBoolean},      {"spoofchk", Type::kBoolean},
    {"source", Type::kMacList},     {"hostaccess", Type::kBoolean},
    {"macnat", Type::kBoolean},     {"macnat_ageing", Type::kInteger},
};

std::string_view type_name(Type t) {
  switch (t) {
    case Type::kString:
      return "a string";
    case Type::kInteger:
      return "an integer";
    case Type::kBoolean:
      return "true or false";
    case Type::kMacList:
      return "an array of MAC addresses";
  }
  return "?";
}

std::string_view node_type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::table:
      return "a table";
    default:
      return "a date or time";
  }
}

ConfigError at(const toml::source_region& where, std::string reason) {
  return {static_cast<int>(where.begin.line), static_cast<int>(where.begin.column),
          std::move(reason)};
}

// The kernel's dev_valid_name() plus ip's check (no ':' either: the kernel
// refuses it for a new link).
bool valid_ifname(std::string_view name) {
  if (name.empty() || name.size() >= kIfNameSize || name == "." || name == "..") return false;
  for (char c : name) {
    if (c == '/' || c == ':' || std::isspace(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

std::optional<ConfigError> read_mac(const toml::node& n, std::string_view what,
                                    core::MacAddress* out) {
  const auto* s = n.as_string();
  if (s == nullptr) {
    return at(n.source(),
              fmt::format("{} must be a MAC address in quotes, not {}", what, node_type_name(n)));
  }
  auto mac = core::MacAddress::parse(s->get());
  if (!mac) {
    return at(n.source(),
              fmt::format("{} \"{}\" is not a MAC address (xx:xx:xx:xx:xx:xx)", what, s->get()));
  }
  if (!mac->is_valid_unicast()) {
    return at(n.source(), fmt::format("{} \"{}\" is not a unicast address", what, s->get()));
  }
  *out = *mac;
  return std::nullopt;
}

// One [[device]] table into *d.
std::optional<ConfigError> read_device(const toml::table& t, DeviceSpec* d) {
  d->line = static_cast<int>(t.source().begin.line);
  d->column = static_cast<int>(t.source().begin.column);
  const toml::node* source_node = nullptr;
  const toml::node* nopromisc_node = nullptr;
  for (auto&& [key, value] : t) {
    const Key* known = nullptr;
    for (const Key& k : kKeys) {
      if (k.name == key.str()) known = &k;
    }
    if (known == nullptr) {
      return at(
          key.source(),
          fmt::format("unknown key \"{}\" (a device knows name, lower, lower_netns, netns, "
                      "mode, mac, mtu, up, bcqueuelen, nopromisc, nodst, spoofchk, hostaccess, "
                      "macnat, macnat_ageing, source)",
                      key.str()));
    }
    const bool type_ok = known->type == Type::kString    ? value.is_string()
                         : known->type == Type::kInteger ? value.is_integer()
                         : known->type == Type::kBoolean ? value.is_boolean()
                                                         : value.is_array();
    if (!type_ok) {
      return at(value.source(), fmt::format("\"{}\" must be {}, not {}", key.str(),
                                            type_name(known->type), node_type_name(value)));
    }
    const std::string_view k = key.str();
    if (k == "name" || k == "lower") {
      const std::string& s = value.as_string()->get();
      if (!valid_ifname(s)) {
        return at(value.source(),
                  fmt::format("\"{}\" is not a valid interface name (1 to {} characters, no '/', "
                              "':' or blanks)",
                              s, kIfNameSize - 1));
      }
      (k == "name" ? d->name : d->lower) = s;
    } else if (k == "lower_netns" || k == "netns") {
      const std::string& s = value.as_string()->get();
      if (s.find('/') == std::string::npos && (s == "." || s == "..")) {
        return at(value.source(), fmt::format("\"{}\" is not a namespace name", s));
      }
      (k == "netns" ? d->netns : d->lower_netns) = s;
    } else if (k == "mode") {
      const std::string& s = value.as_string()->get();
      auto mode = core::parse_mode(s);
      if (!mode) {
        return at(value.source(), fmt::format("\"mode\" must be \"private\", \"vepa\", \"bridge\", "
                                              "\"passthru\" or \"source\", not \"{}\"",
                                              s));
      }
      d->mode = *mode;
    } else if (k == "mac") {
      core::MacAddress mac;
      if (auto e = read_mac(value, "\"mac\"", &mac)) return e;
      d->mac = mac;
    } else if (k == "mtu") {
      const std::int64_t v = value.as_integer()->get();
      if (v < kMinMtu || v > kMaxMtu) {
        return at(value.source(),
                  fmt::format("\"mtu\" must be in [{}, {}], not {}", kMinMtu, kMaxMtu, v));
      }
      d->mtu = static_cast<std::uint32_t>(v);
    } else if (k == "bcqueuelen") {
      const std::int64_t v = value.as_integer()->get();
      if (v < 0 || v > std::numeric_limits<std::uint32_t>::max()) {
        return at(value.source(),
                  fmt::format("\"bcqueuelen\" must be in [0, 4294967295], not {}", v));
      }
      d->bcqueuelen = static_cast<std::uint32_t>(v);
    } else if (k == "up") {
      d->up = value.as_boolean()->get();
    } else if (k == "nopromisc") {
      d->nopromisc = value.as_boolean()->get();
      nopromisc_node = &value;
    } else if (k == "nodst") {
      d->nodst = value.as_boolean()->get();
    } else if (k == "spoofchk") {
      d->spoofchk = value.as_boolean()->get();
    } else if (k == "hostaccess") {
      d->hostaccess = value.as_boolean()->get();
    } else if (k == "macnat") {
      d->macnat = value.as_boolean()->get();
    } else if (k == "macnat_ageing") {
      const std::int64_t v = value.as_integer()->get();
      if (v < control::kMinMacnatAgeing || v > control::kMaxMacnatAgeing) {
        return at(value.source(),
                  fmt::format("\"macnat_ageing\" must be in [{}, {}] (seconds), not {}",
                              control::kMinMacnatAgeing, control::kMaxMacnatAgeing, v));
      }
      d->macnat_ageing = static_cast<std::uint32_t>(v);
    } else if (k == "source") {
      source_node = &value;
      std::set<core::MacAddress> seen;
      for (const toml::node& entry : *value.as_array()) {
        core::MacAddress mac;
        if (auto e = read_mac(entry, "a \"source\" entry", &mac)) return e;
        if (!seen.insert(mac).second) {
          return at(entry.source(), fmt::format("\"source\" lists {} twice", mac.to_string()));
        }
        d->sources.push_back(mac);
      }
    }
  }
  const toml::source_region& here = t.source();
  if (d->name.empty()) return at(here, "this device has no \"name\"");
  if (d->lower.empty()) {
    return at(here, fmt::format("device \"{}\" has no \"lower\"", d->name));
  }
  // The combinations the kernel (and link_parser.h) refuse.
  if (source_node != nullptr && d->mode != core::Mode::kSource) {
    return at(source_node->source(),
              fmt::format("\"source\" is only for mode \"source\" (device \"{}\" is {})", d->name,
                          core::to_string(d->mode)));
  }
  if (d->nopromisc && d->mode != core::Mode::kPassthru) {
    return at(nopromisc_node->source(),
              fmt::format("\"nopromisc\" is only for mode \"passthru\" (device \"{}\" is {})",
                          d->name, core::to_string(d->mode)));
  }
  return std::nullopt;
}

std::string flags_text(bool nopromisc, bool nodst) {
  std::string s;
  if (nopromisc) s += "nopromisc";
  if (nodst) s += s.empty() ? "nodst" : " nodst";
  return s.empty() ? "none" : s;
}

std::uint16_t flags_of(bool nopromisc, bool nodst) {
  return static_cast<std::uint16_t>((nopromisc ? core::kFlagNoPromisc : 0) |
                                    (nodst ? core::kFlagNoDst : 0));
}

std::string_view on_off(bool on) {
  return on ? "on" : "off";
}

// A setting of the port (hostaccess, macnat, macnat_ageing): devices of one
// lower that both give it agree. said(d): the value d gives, as text, or
// nullopt when d leaves it to the others.
template <typename Said>
std::optional<ConfigError> port_disagreement(const ConfigFile& file, std::string_view key,
                                             Said said) {
  std::map<std::pair<std::string, std::string>, std::pair<const DeviceSpec*, std::string>> first;
  for (const DeviceSpec& d : file.devices) {
    const std::optional<std::string> value = said(d);
    if (!value) continue;
    auto [it, fresh] =
        first.emplace(std::pair(netns_path(d.lower_netns), d.lower), std::pair(&d, *value));
    const auto& [other, other_value] = it->second;
    if (!fresh && other_value != *value) {
      return ConfigError{
          d.line, d.column,
          fmt::format("device \"{}\" sets {} {} on lower \"{}\", device "
                      "\"{}\" on line {} sets it {}: it is one setting of the port",
                      d.name, key, *value, d.lower, other->name, other->line, other_value)};
    }
  }
  return std::nullopt;
}

std::string toml_string(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

}  // namespace

std::string default_config_path() {
  const char* env = std::getenv("UMACVLAN_CONFIG");
  return env != nullptr && *env != '\0' ? env : kDefaultConfigPath;
}

std::string netns_path(const std::string& reference) {
  if (reference.empty() || reference.find('/') != std::string::npos) return reference;
  return "/run/netns/" + reference;
}

std::variant<ConfigFile, ConfigError> parse_config(std::string_view text, std::string_view path) {
  toml::table root;
  try {
    root = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    return at(e.source(), std::string(e.description()));
  }
  ConfigFile file;
  for (auto&& [key, value] : root) {
    if (key.str() != "device") {
      return at(key.source(), fmt::format("unknown key \"{}\" (the file holds [[device]] tables "
                                          "only)",
                                          key.str()));
    }
    const toml::array* devices = value.as_array();
    if (devices == nullptr) {
      return at(value.source(), "devices are written [[device]] (an array of tables)");
    }
    for (const toml::node& entry : *devices) {
      const toml::table* t = entry.as_table();
      if (t == nullptr) {
        return at(entry.source(), "devices are written [[device]] (an array of tables)");
      }
      DeviceSpec d;
      if (auto e = read_device(*t, &d)) return *e;
      file.devices.push_back(std::move(d));
    }
  }
  // hostaccess and macnat belong to the port: the devices of one lower agree.
  if (auto e = port_disagreement(file, "hostaccess", [](const DeviceSpec& d) {
        return d.hostaccess ? std::optional<std::string>(on_off(*d.hostaccess)) : std::nullopt;
      })) {
    return *e;
  }
  if (auto e = port_disagreement(file, "macnat", [](const DeviceSpec& d) {
        return d.macnat ? std::optional<std::string>(on_off(*d.macnat)) : std::nullopt;
      })) {
    return *e;
  }
  if (auto e = port_disagreement(file, "macnat_ageing", [](const DeviceSpec& d) {
        return d.macnat_ageing ? std::optional(std::to_string(*d.macnat_ageing)) : std::nullopt;
      })) {
    return *e;
  }
  // A device is its name in its namespace.
  std::map<std::pair<std::string, std::string>, const DeviceSpec*> seen;
  for (const DeviceSpec& d : file.devices) {
    auto [it, fresh] = seen.emplace(std::pair(netns_path(d.home()), d.name), &d);
    if (!fresh) {
      return ConfigError{d.line, d.column,
                         fmt::format("device \"{}\"{} is already defined on line {}", d.name,
                                     d.home().empty() ? "" : " in namespace \"" + d.home() + "\"",
                                     it->second->line)};
    }
  }
  return file;
}

std::string format_error(std::string_view path, const ConfigError& e) {
  return fmt::format("{}:{}:{}: {}\n", path, e.line, e.column, e.reason);
}

std::optional<RunningDevice> running_from_json(const nlohmann::json& j) {
  if (!j.is_object()) return std::nullopt;
  const auto info = j.find("linkinfo");
  if (info == j.end() || info->value("info_kind", "") != "macvlan") return std::nullopt;
  const nlohmann::json data = info->value("info_data", nlohmann::json::object());
  RunningDevice r;
  r.name = j.value("ifname", "");
  r.ifindex = j.value("ifindex", 0);
  r.lower = j.value("link", "");
  r.lower_ifindex = j.value("link_index", 0);
  r.lower_netns = j.value("link_netns", "");
  r.mode = core::parse_mode(data.value("mode", "vepa")).value_or(core::Mode::kVepa);
  if (auto mac = core::MacAddress::parse(j.value("address", ""))) r.mac = *mac;
  r.mtu = j.value("mtu", 1500u);
  if (const auto flags = j.find("flags"); flags != j.end() && flags->is_array()) {
    r.up = std::find(flags->begin(), flags->end(), "UP") != flags->end();
  }
  r.bcqueuelen = data.value("bcqueuelen", 0u);
  r.nopromisc = data.value("nopromisc", false);
  r.nodst = data.value("nodst", false);
  r.spoofchk = data.value("spoofchk", false);
  r.hostaccess = data.value("hostaccess", false);
  r.macnat = data.value("macnat", false);
  r.macnat_ageing = data.value("macnat_ageing", control::kDefaultMacnatAgeing);
  if (const auto list = data.find("macaddr_data"); list != data.end() && list->is_array()) {
    for (const auto& m : *list) {
      if (auto mac = core::MacAddress::parse(m.is_string() ? m.get<std::string>() : "")) {
        r.sources.push_back(*mac);
      }
    }
  }
  return r;
}

control::LinkRequest add_request(const DeviceSpec& want) {
  control::LinkRequest r;
  r.op = control::LinkOp::kAdd;
  r.name = want.name;
  r.link = want.lower;
  r.address = want.mac;
  r.mtu = want.mtu;
  // A device that moves afterwards comes up where it lands.
  const bool moves = !want.netns.empty() && netns_path(want.netns) != netns_path(want.lower_netns);
  if (want.up && !moves) r.up = true;
  r.type_macvlan = true;
  r.mode = want.mode;
  if (want.nopromisc || want.nodst) r.flags = flags_of(want.nopromisc, want.nodst);
  r.bcqueuelen = want.bcqueuelen;
  if (want.spoofchk) r.spoofchk = true;
  if (want.mode == core::Mode::kSource && !want.sources.empty()) {
    r.macaddr_mode = core::SourceOp::kSet;
    r.macaddrs = want.sources;
  }
  return r;
}

std::optional<control::LinkRequest> set_request(const DeviceSpec& want, const RunningDevice& have,
                                                std::string* what) {
  control::LinkRequest r;
  r.op = control::LinkOp::kSet;
  r.name = want.name;
  std::vector<std::string> changes;
  if (want.mode != have.mode) {
    r.mode = want.mode;
    changes.push_back(fmt::format("mode {}", core::to_string(want.mode)));
  }
  if (want.nopromisc != have.nopromisc || want.nodst != have.nodst) {
    r.flags = flags_of(want.nopromisc, want.nodst);
    changes.push_back(fmt::format("flags {}", flags_text(want.nopromisc, want.nodst)));
  }
  if (want.bcqueuelen && *want.bcqueuelen != have.bcqueuelen) {
    r.bcqueuelen = want.bcqueuelen;
    changes.push_back(fmt::format("bcqueuelen {}", *want.bcqueuelen));
  }
  if (want.spoofchk != have.spoofchk) {
    r.spoofchk = want.spoofchk;
    changes.push_back(fmt::format("spoofchk {}", want.spoofchk ? "on" : "off"));
  }
  if (want.mode == core::Mode::kSource) {
    std::vector<core::MacAddress> a = want.sources, b = have.sources;
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    if (a != b) {
      r.macaddr_mode = a.empty() ? core::SourceOp::kFlush : core::SourceOp::kSet;
      r.macaddrs = want.sources;
      changes.push_back(fmt::format("source ({} address(es))", a.size()));
    }
  }
  r.type_macvlan =
      r.mode || r.flags || r.bcqueuelen || r.spoofchk || r.macaddr_mode != core::SourceOp::kNone;
  if (want.mac && *want.mac != have.mac) {
    r.address = want.mac;
    changes.push_back(fmt::format("address {}", want.mac->to_string()));
  }
  if (want.mtu && *want.mtu != have.mtu) {
    r.mtu = want.mtu;
    changes.push_back(fmt::format("mtu {}", *want.mtu));
  }
  if (want.up != have.up) {
    r.up = want.up;
    changes.push_back(want.up ? "up" : "down");
  }
  if (changes.empty()) return std::nullopt;
  if (what != nullptr) {
    what->clear();
    for (const std::string& c : changes) *what += (what->empty() ? "" : ", ") + c;
  }
  return r;
}

std::vector<Action> plan(const ConfigFile& file,
                         const std::map<std::size_t, RunningDevice>& running,
                         const std::vector<Made>& made) {
  std::vector<Action> actions;
  std::set<std::pair<std::string, std::string>> named;
  for (const DeviceSpec& d : file.devices) named.emplace(netns_path(d.home()), d.name);
  for (const Made& m : made) {
    if (named.count({netns_path(m.netns), m.name}) != 0) continue;
    Action a;
    a.kind = Action::Kind::kDelete;
    a.name = m.name;
    a.netns = m.netns;
    a.request.op = control::LinkOp::kDelete;
    a.request.name = m.name;
    actions.push_back(std::move(a));
  }
  for (std::size_t i = 0; i < file.devices.size(); ++i) {
    const DeviceSpec& want = file.devices[i];
    Action a;
    a.name = want.name;
    a.netns = want.home();
    a.spec = &want;
    const auto it = running.find(i);
    if (it == running.end()) {
      a.kind = Action::Kind::kAdd;
      a.request = add_request(want);
      actions.push_back(std::move(a));
      continue;
    }
    const RunningDevice& have = it->second;
    // What `link set` cannot change: the lower, and a mode to or from
    // passthru (the kernel refuses both); the device is made anew.
    std::string replace_why;
    if (!have.lower.empty() && have.lower != want.lower) {
      replace_why = fmt::format("lower {} (was {})", want.lower, have.lower);
    } else if (have.mode != want.mode &&
               (have.mode == core::Mode::kPassthru || want.mode == core::Mode::kPassthru)) {
      replace_why =
          fmt::format("mode {} (was {})", core::to_string(want.mode), core::to_string(have.mode));
    }
    if (!replace_why.empty()) {
      a.kind = Action::Kind::kReplace;
      a.request = add_request(want);
      a.what = replace_why;
    } else if (auto set = set_request(want, have, &a.what)) {
      a.kind = Action::Kind::kSet;
      a.request = std::move(*set);
    } else {
      a.kind = Action::Kind::kUnchanged;
    }
    actions.push_back(std::move(a));
  }
  return actions;
}

std::vector<PortAction> plan_ports(const ConfigFile& file,
                                   const std::map<std::size_t, RunningDevice>& running) {
  // What the file says of each port, and what its running devices show.
  struct Port {
    const DeviceSpec* first = nullptr;
    std::optional<bool> hostaccess;
    std::optional<bool> macnat;
    std::optional<std::uint32_t> macnat_ageing;
    bool hostaccess_on = false;
    bool macnat_on = false;
    std::uint32_t macnat_ageing_now = control::kDefaultMacnatAgeing;
  };
  std::map<std::pair<std::string, std::string>, Port> ports;
  for (const DeviceSpec& d : file.devices) {
    if (!d.hostaccess && !d.macnat && !d.macnat_ageing) continue;
    Port& p = ports[std::pair(netns_path(d.lower_netns), d.lower)];
    if (p.first == nullptr) p.first = &d;
    if (d.hostaccess) p.hostaccess = d.hostaccess;
    if (d.macnat) p.macnat = d.macnat;
    if (d.macnat_ageing) p.macnat_ageing = d.macnat_ageing;
  }
  for (const auto& [i, r] : running) {
    const DeviceSpec& f = file.devices[i];
    const auto it = ports.find(std::pair(netns_path(f.lower_netns), f.lower));
    if (it == ports.end()) continue;
    Port& p = it->second;
    if (r.hostaccess) p.hostaccess_on = true;
    if (r.macnat) {
      p.macnat_on = true;
      p.macnat_ageing_now = r.macnat_ageing;
    }
  }
  std::vector<PortAction> actions;
  for (const auto& [key, p] : ports) {
    PortAction a;
    a.lower = p.first->lower;
    a.lower_netns = p.first->lower_netns;
    a.request.op = control::LinkOp::kSet;
    a.request.name = a.lower;
    a.request.type_macvlan = true;
    if (p.hostaccess && *p.hostaccess != p.hostaccess_on) {
      PortAction h = a;
      h.request.hostaccess = *p.hostaccess;
      h.what.push_back(fmt::format("hostaccess {}", on_off(*p.hostaccess)));
      actions.push_back(std::move(h));
    }
    const bool macnat = p.macnat.value_or(p.macnat_on);
    const bool turns = macnat != p.macnat_on;
    // Shown only while macnat is on: when it turns on, the file's ageing
    // goes with it.
    const bool ageing =
        p.macnat_ageing && macnat && (!p.macnat_on || *p.macnat_ageing != p.macnat_ageing_now);
    if (turns || ageing) {
      a.request.macnat = macnat;
      if (turns) a.what.push_back(fmt::format("macnat {}", on_off(macnat)));
      if (ageing) {
        a.request.macnat_ageing = p.macnat_ageing;
        a.what.push_back(fmt::format("macnat_ageing {}", *p.macnat_ageing));
      }
      actions.push_back(std::move(a));
    }
  }
  return actions;
}

nlohmann::json made_to_json(const std::vector<Made>& made) {
  nlohmann::json list = nlohmann::json::array();
  for (const Made& m : made) list.push_back({{"name", m.name}, {"netns", m.netns}});
  return {{"devices", list}};
}

std::vector<Made> made_from_json(const nlohmann::json& json) {
  std::vector<Made> out;
  if (!json.is_object()) return out;
  const auto list = json.find("devices");
  if (list == json.end() || !list->is_array()) return out;
  for (const auto& e : *list) {
    if (!e.is_object() || !e.contains("name") || !e["name"].is_string()) continue;
    Made m;
    m.name = e["name"].get<std::string>();
    if (e.contains("netns") && e["netns"].is_string()) m.netns = e["netns"].get<std::string>();
    out.push_back(std::move(m));
  }
  return out;
}

std::string record_path(const std::string& socket_path) {
  std::string state = control::default_state_path(socket_path);
  const std::string suffix = "state.json";
  if (state.size() >= suffix.size() &&
      state.compare(state.size() - suffix.size(), suffix.size(), suffix) == 0) {
    state.replace(state.size() - suffix.size(), suffix.size(), "config.json");
    return state;
  }
  return state + ".config.json";
}

std::string dump_config(const std::vector<DumpedDevice>& devices) {
  std::string out = "# umacvlan devices as they run (umacvlan config dump)\n";
  for (const DumpedDevice& d : devices) {
    const RunningDevice& r = d.device;
    out += "\n[[device]]\n";
    out += "name = " + toml_string(r.name) + "\n";
    out += "lower = " + toml_string(d.lower) + "\n";
    if (!d.lower_netns.empty()) out += "lower_netns = " + toml_string(d.lower_netns) + "\n";
    if (!d.netns.empty() && d.netns != d.lower_netns) {
      out += "netns = " + toml_string(d.netns) + "\n";
    }
    out += fmt::format("mode = \"{}\"\n", core::to_string(r.mode));
    out += fmt::format("mac = \"{}\"\n", r.mac.to_string());
    out += fmt::format("mtu = {}\n", r.mtu);
    out += fmt::format("up = {}\n", r.up ? "true" : "false");
    out += fmt::format("bcqueuelen = {}\n", r.bcqueuelen);
    if (r.nopromisc && r.mode == core::Mode::kPassthru) out += "nopromisc = true\n";
    if (r.nodst) out += "nodst = true\n";
    if (r.spoofchk) out += "spoofchk = true\n";
    if (r.hostaccess) out += "hostaccess = true\n";
    if (r.macnat) out += fmt::format("macnat = true\nmacnat_ageing = {}\n", r.macnat_ageing);
    if (r.mode == core::Mode::kSource) {
      out += "source = [";
      for (std::size_t i = 0; i < r.sources.size(); ++i) {
        out += fmt::format("{}\"{}\"", i == 0 ? "" : ", ", r.sources[i].to_string());
      }
      out += "]\n";
    }
  }
  return out;
}

}  // namespace umacvlan::cli

// ===================================================================== I/O
// Everything below reads files, asks the daemon and runs `ip`.

namespace umacvlan::cli {
namespace {

void out(std::string_view text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

void err(std::string_view text) {
  std::fwrite(text.data(), 1, text.size(), stderr);
}

bool read_file(const std::string& path, std::string* text, std::string* why) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *why = std::strerror(errno);
    return false;
  }
  std::ostringstream s;
  s << in.rdbuf();
  *text = s.str();
  return true;
}

// An open namespace fd, closed with it.
class Netns {
 public:
  Netns() = default;
  explicit Netns(int fd) : fd_(fd) {}
  Netns(Netns&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Netns& operator=(Netns&& o) noexcept {
    std::swap(fd_, o.fd_);
    return *this;
  }
  ~Netns() {
    if (fd_ >= 0) ::close(fd_);
  }
  int fd() const { return fd_; }
  ino_t inode() const {
    struct stat st {};
    return fd_ >= 0 && ::fstat(fd_, &st) == 0 ? st.st_ino : 0;
  }

 private:
  int fd_ = -1;
};

// "" is our own namespace.
Netns open_netns_ref(const std::string& reference, std::string* why) {
  const std::string path = reference.empty() ? "/proc/thread-self/ns/net" : netns_path(reference);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    *why = fmt::format("Cannot open network namespace \"{}\": {}", reference, std::strerror(errno));
  return Netns(fd);
}

// The name of ifindex in namespace ns ("" when there is none).
std::string name_in(const Netns& ns, int ifindex) {
  Netns own(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
  if (own.fd() < 0 || ::setns(ns.fd(), CLONE_NEWNET) != 0) return "";
  char name[IF_NAMESIZE] = {};
  const bool found = ::if_indextoname(static_cast<unsigned>(ifindex), name) != nullptr;
  (void)::setns(own.fd(), CLONE_NEWNET);
  return found ? name : "";
}

// Whether a link called name exists in ns.
bool exists_in(const Netns& ns, const std::string& name) {
  Netns own(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
  if (own.fd() < 0 || ::setns(ns.fd(), CLONE_NEWNET) != 0) return false;
  const bool found = ::if_nametoindex(name.c_str()) != 0;
  (void)::setns(own.fd(), CLONE_NEWNET);
  return found;
}

struct Call {
  int rc = 0;  // call_daemon's
  control::Reply reply;
  std::string error;  // call_daemon's sentence
};

Call ask(const control::LinkRequest& request, const Netns& ns, bool allow_start) {
  Call c;
  c.rc = call_daemon(request, &c.reply, allow_start, &c.error, ns.fd());
  return c;
}

// The sentence of a failed call (no trailing newline).
std::string failure_of(const Call& c) {
  std::string m = c.rc < 0 ? c.error
                  : c.reply.message.empty()
                      ? fmt::format("RTNETLINK answers: {}", std::strerror(c.reply.error))
                      : c.reply.message;
  while (!m.empty() && m.back() == '\n') m.pop_back();
  for (char& ch : m) {
    if (ch == '\n') ch = ' ';
  }
  return m;
}

bool failed(const Call& c) {
  return c.rc < 0 || c.reply.error != 0;
}

// `ip link set dev NAME netns TARGET`, run in namespace from.
int move_device(const std::string& name, const Netns& from, const Netns& to, std::string* why) {
  const pid_t child = ::fork();
  if (child < 0) {
    *why = std::strerror(errno);
    return -1;
  }
  if (child == 0) {
    if (::setns(from.fd(), CLONE_NEWNET) != 0) ::_exit(126);
    // ip opens TARGET by path: the descriptor we hold, not a name.
    const int target = ::dup(to.fd());
    const std::string path = fmt::format("/proc/self/fd/{}", target);
    const char* argv[] = {"ip", "link", "set", "dev", name.c_str(), "netns", path.c_str(), nullptr};
    ::execvp("ip", const_cast<char* const*>(argv));
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
  *why = fmt::format("\"ip link set dev {} netns ...\" failed (status {})", name,
                     WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  return -1;
}

// The record of the previous apply; empty when there is none.
std::vector<Made> read_record(const std::string& path) {
  std::string text, why;
  if (!read_file(path, &text, &why)) return {};
  try {
    return made_from_json(nlohmann::json::parse(text));
  } catch (const nlohmann::json::exception&) {
    return {};
  }
}

int write_record(const std::string& path, const std::vector<Made>& made, std::string* why) {
  const std::string tmp = path + ".tmp";
  const std::string text = made_to_json(made).dump(2) + "\n";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0 || ::write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size()) ||
      ::fsync(fd) != 0 || ::close(fd) != 0 || ::rename(tmp.c_str(), path.c_str()) != 0) {
    *why = fmt::format("cannot write {}: {}", path, std::strerror(errno));
    return -1;
  }
  return 0;
}

void make_parent(const std::string& path) {
  const std::size_t slash = path.find_last_of('/');
  if (slash == std::string::npos || slash == 0) return;
  const std::string dir = path.substr(0, slash);
  make_parent(dir);
  ::mkdir(dir.c_str(), 0755);
}

// The namespaces a dump reads: ours ("") and every /run/netns name, each once.
std::vector<std::pair<std::string, Netns>> all_namespaces() {
  std::vector<std::pair<std::string, Netns>> spaces;
  std::string why;
  spaces.emplace_back("", open_netns_ref("", &why));
  std::set<ino_t> seen{spaces.front().second.inode()};
  std::vector<std::string> names;
  if (DIR* dir = ::opendir("/run/netns"); dir != nullptr) {
    while (const dirent* e = ::readdir(dir)) {
      if (e->d_name[0] != '.') names.emplace_back(e->d_name);
    }
    ::closedir(dir);
  }
  std::sort(names.begin(), names.end());
  for (const std::string& n : names) {
    Netns ns = open_netns_ref(n, &why);
    if (ns.fd() < 0 || !seen.insert(ns.inode()).second) continue;
    spaces.emplace_back(n, std::move(ns));
  }
  return spaces;
}

// Reads and validates FILE whole; prints why not and returns nullopt when
// it cannot (for apply, also that nothing changed).
std::optional<ConfigFile> load_config(const std::string& path, bool applying) {
  std::string text, why;
  if (!read_file(path, &text, &why)) {
    err(fmt::format("{}: cannot read: {}\n", path, why));
    return std::nullopt;
  }
  auto parsed = parse_config(text, path);
  if (const auto* e = std::get_if<ConfigError>(&parsed)) {
    err(format_error(path, *e));
    if (applying) err(fmt::format("{}: nothing changed\n", path));
    return std::nullopt;
  }
  return std::get<ConfigFile>(std::move(parsed));
}

int config_check(const std::string& path) {
  const auto file = load_config(path, /*applying=*/false);
  if (!file) return kExitSyntax;
  const std::size_t n = file->devices.size();
  out(fmt::format("{}: ok ({} device{})\n", path, n, n == 1 ? "" : "s"));
  return 0;
}

int config_apply(const std::string& path, bool allow_start) {
  const auto loaded = load_config(path, /*applying=*/true);
  if (!loaded) return kExitSyntax;
  const ConfigFile& file = *loaded;
  std::string why;

  // One apply at a time per socket (the daemon's reload and a user's).
  const std::string record = record_path(control::default_socket_path());
  make_parent(record);
  const int lock = ::open((record + ".lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock >= 0) ::flock(lock, LOCK_EX);

  // Every namespace the file names must open before anything changes.
  std::map<std::string, Netns> spaces;
  auto space = [&](const std::string& ref) -> const Netns* {
    const std::string key = netns_path(ref);
    auto it = spaces.find(key);
    if (it == spaces.end()) {
      Netns ns = open_netns_ref(ref, &why);
      if (ns.fd() < 0) return nullptr;
      it = spaces.emplace(key, std::move(ns)).first;
    }
    return &it->second;
  };
  for (const DeviceSpec& d : file.devices) {
    if (space(d.lower_netns) == nullptr || space(d.home()) == nullptr) {
      err(fmt::format("{}:{}:{}: device \"{}\": {}\n{}: nothing changed\n", path, d.line, d.column,
                      d.name, why, path));
      if (lock >= 0) ::close(lock);
      return kExitSyntax;
    }
  }

  // What runs now.
  std::map<std::size_t, RunningDevice> running;
  for (std::size_t i = 0; i < file.devices.size(); ++i) {
    const DeviceSpec& d = file.devices[i];
    control::LinkRequest show;
    show.op = control::LinkOp::kShow;
    show.name = d.name;
    const Call c = ask(show, *space(d.home()), allow_start);
    if (c.rc < 0) {
      err(c.error + "\n");
      if (lock >= 0) ::close(lock);
      return kExitSyntax;
    }
    if (c.reply.error != 0) continue;  // no such device there
    // The name is taken there by a device the daemon does not serve.
    auto have = c.reply.links.empty() ? std::nullopt : running_from_json(c.reply.links.front());
    if (!have) {
      err(fmt::format("{}:{}:{}: \"{}\" exists and is not a umacvlan device; nothing changed\n",
                      path, d.line, d.column, d.name));
      if (lock >= 0) ::close(lock);
      return kExitSyntax;
    }
    // A lower in another namespace is shown by index: name it there.
    if (have->lower.empty() && have->lower_ifindex > 0) {
      have->lower = name_in(*space(d.lower_netns), have->lower_ifindex);
    }
    running.emplace(i, std::move(*have));
  }

  const std::vector<Made> previous = read_record(record);
  const std::vector<Action> actions = plan(file, running, previous);
  // What the kernel would refuse half way, checked before the first change:
  // a lower that does not exist, a name taken beside the lower (where a
  // device is made before it moves to its netns).
  for (const Action& a : actions) {
    if (a.kind != Action::Kind::kAdd && a.kind != Action::Kind::kReplace) continue;
    const DeviceSpec& d = *a.spec;
    const Netns& lower_ns = *space(d.lower_netns);
    std::string problem;
    if (!exists_in(lower_ns, d.lower)) {
      problem = fmt::format("its lower \"{}\" does not exist{}", d.lower,
                            d.lower_netns.empty() ? "" : " in " + d.lower_netns);
    } else if (lower_ns.inode() != space(d.home())->inode() && exists_in(lower_ns, d.name)) {
      problem = fmt::format("\"{}\" is taken beside its lower{}, where it would be made", d.name,
                            d.lower_netns.empty() ? "" : " (in " + d.lower_netns + ")");
    }
    if (!problem.empty()) {
      err(fmt::format("{}:{}:{}: device \"{}\": {}\n{}: nothing changed\n", path, d.line, d.column,
                      d.name, problem, path));
      if (lock >= 0) ::close(lock);
      return kExitSyntax;
    }
  }
  std::set<Made> made;
  int rc = 0;
  auto refused = [&](const std::string& name, const std::string& sentence) {
    err(fmt::format("umacvlan: {}: {}\n", name, sentence));
    rc = kExitRefused;
  };
  // The add of a device, its move and its `up`; false when refused.
  auto add = [&](const Action& a) {
    const DeviceSpec& d = *a.spec;
    const Netns& lower_ns = *space(d.lower_netns);
    const Netns& home = *space(d.home());
    Call c = ask(a.request, lower_ns, allow_start);
    if (failed(c)) {
      refused(d.name, failure_of(c));
      return false;
    }
    if (lower_ns.inode() != home.inode()) {
      std::string why_move;
      if (move_device(d.name, lower_ns, home, &why_move) != 0) {
        // Not left behind beside its lower, where no apply would find it.
        control::LinkRequest del;
        del.op = control::LinkOp::kDelete;
        del.name = d.name;
        (void)ask(del, lower_ns, allow_start);
        refused(d.name, why_move);
        return false;
      }
      if (d.up) {
        control::LinkRequest up;
        up.op = control::LinkOp::kSet;
        up.name = d.name;
        up.up = true;
        c = ask(up, home, allow_start);
        if (failed(c)) {
          refused(d.name, failure_of(c));
          return false;
        }
      }
    }
    return true;
  };
  for (const Action& a : actions) {
    switch (a.kind) {
      case Action::Kind::kDelete: {
        std::string ignored;
        Netns ns = open_netns_ref(a.netns, &ignored);
        if (ns.fd() < 0) {
          out(fmt::format("del {}: its namespace is gone\n", a.name));
          break;
        }
        const Call c = ask(a.request, ns, allow_start);
        if (failed(c) && c.reply.error != ENODEV) {
          refused(a.name, failure_of(c));
          made.insert({a.name, a.netns});  // still ours: try again next time
          break;
        }
        out(fmt::format("del {}\n", a.name));
        break;
      }
      case Action::Kind::kUnchanged:
        out(fmt::format("unchanged {}\n", a.name));
        made.insert({a.name, a.netns});
        break;
      case Action::Kind::kSet: {
        const Call c = ask(a.request, *space(a.netns), allow_start);
        made.insert({a.name, a.netns});
        if (failed(c)) {
          refused(a.name, failure_of(c));
          break;
        }
        out(fmt::format("set {}: {}\n", a.name, a.what));
        break;
      }
      case Action::Kind::kReplace: {
        control::LinkRequest del;
        del.op = control::LinkOp::kDelete;
        del.name = a.name;
        const Call c = ask(del, *space(a.netns), allow_start);
        made.insert({a.name, a.netns});
        if (failed(c)) {
          refused(a.name, failure_of(c));
          break;
        }
        if (add(a)) out(fmt::format("replace {}: {}\n", a.name, a.what));
        break;
      }
      case Action::Kind::kAdd:
        if (add(a)) {
          made.insert({a.name, a.netns});
          out(fmt::format("add {}\n", a.name));
        }
        break;
    }
  }
  // The ports' settings, once their devices are in place: only where the
  // file says and it differs from what runs.
  for (const PortAction& p : plan_ports(file, running)) {
    const Call c = ask(p.request, *space(p.lower_netns), allow_start);
    if (failed(c)) {
      refused(p.lower, failure_of(c));
      continue;
    }
    for (const std::string& w : p.what) out(fmt::format("set {}: {}\n", p.lower, w));
  }
  if (write_record(record, std::vector<Made>(made.begin(), made.end()), &why) != 0) {
    err(fmt::format("umacvlan: {}\n", why));
    rc = kExitRefused;
  }
  if (lock >= 0) ::close(lock);
  return rc;
}

int config_dump(bool allow_start) {
  std::vector<DumpedDevice> devices;
  auto spaces = all_namespaces();
  std::map<std::string, const Netns*> by_name;
  for (auto& [name, ns] : spaces) by_name[name] = &ns;
  for (auto& [name, ns] : spaces) {
    if (ns.fd() < 0) continue;
    control::LinkRequest show;
    show.op = control::LinkOp::kShow;
    const Call c = ask(show, ns, allow_start);
    if (failed(c)) {
      err(fmt::format("umacvlan: {}\n", failure_of(c)));
      return c.rc < 0 ? kExitSyntax : kExitRefused;
    }
    for (const auto& link : c.reply.links) {
      auto r = running_from_json(link);
      if (!r) continue;
      // A port's host device comes with its hostaccess, not from the file.
      if (r->hostaccess && !r->lower.empty() && r->name == control::host_device_name(r->lower))
        continue;
      DumpedDevice d;
      d.device = *r;
      d.netns = name;
      if (!r->lower.empty()) {
        d.lower = r->lower;
        d.lower_netns = name;
      } else {
        // ip names the lower's namespace when it has a name; without one it
        // is ours (the only other one a dump can reach).
        d.lower_netns = r->lower_netns;
        auto it = by_name.find(r->lower_netns);
        d.lower = it == by_name.end() ? "" : name_in(*it->second, r->lower_ifindex);
        // netns "" would mean "with its lower": name ours by path.
        if (d.netns.empty()) d.netns = "/proc/self/ns/net";
      }
      if (d.lower.empty()) {
        err(fmt::format("umacvlan: {}: cannot name its lower (ifindex {}); left out\n", r->name,
                        r->lower_ifindex));
        continue;
      }
      devices.push_back(std::move(d));
    }
  }
  out(dump_config(devices));
  return 0;
}

std::string config_usage() {
  return "Usage: umacvlan config check [ FILE ]\n"
         "       umacvlan config apply [ FILE ]\n"
         "       umacvlan config dump\n"
         "FILE: default $UMACVLAN_CONFIG, else " +
         std::string(kDefaultConfigPath) + " (see \"umacvlan help config\")\n";
}

}  // namespace

int run_config(const std::vector<std::string>& args, bool allow_start) {
  std::vector<std::string> words;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--socket" || args[i] == "-socket") {
      if (i + 1 >= args.size()) {
        err("Command line is not complete. Try option \"help\"\n");
        return kExitUsage;
      }
      ::setenv("UMACVLAN_SOCKET", args[++i].c_str(), 1);
    } else if (args[i].rfind("--socket=", 0) == 0) {
      ::setenv("UMACVLAN_SOCKET", args[i].substr(9).c_str(), 1);
    } else {
      words.push_back(args[i]);
    }
  }
  if (words.empty() || words[0] == "help") {
    (words.empty() ? err : out)(config_usage());
    return words.empty() ? kExitUsage : 0;
  }
  const std::string& command = words[0];
  if ((command == "check" || command == "apply") && words.size() <= 2) {
    const std::string path = words.size() == 2 ? words[1] : default_config_path();
    return command == "check" ? config_check(path) : config_apply(path, allow_start);
  }
  if (command == "dump" && words.size() == 1) return config_dump(allow_start);
  if (command != "check" && command != "apply" && command != "dump") {
    err(fmt::format("Command \"{}\" is unknown, try \"umacvlan config help\".\n", command));
  } else {
    err(fmt::format("Error: argument \"{}\" is wrong: too many arguments\n{}", words.back(),
                    config_usage()));
  }
  return kExitUsage;
}

}  // namespace umacvlan::cli

namespace umacvlan::cli {

int run_reload(const std::vector<std::string>& args) {
  if (!args.empty()) {
    err(fmt::format("Error: argument \"{}\" is wrong: \"umacvlan reload\" takes none\n", args[0]));
    return kExitUsage;
  }
  const std::string socket = control::default_socket_path();
  const int fd = control::connect_unix(socket);
  if (fd < 0) {
    err(fmt::format("Cannot reach the umacvlan daemon at \"{}\": {}.\n", socket,
                    std::strerror(-fd)));
    return kExitSyntax;
  }
  ucred peer{};
  socklen_t len = sizeof peer;
  const int rc = ::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &len);
  ::close(fd);
  if (rc != 0 || peer.pid <= 0) {
    err(fmt::format("Cannot tell which process serves \"{}\": {}.\n", socket,
                    std::strerror(errno)));
    return kExitSyntax;
  }
  if (::kill(peer.pid, SIGHUP) != 0) {
    err(fmt::format("Cannot signal the umacvlan daemon (pid {}): {}.\n", peer.pid,
                    std::strerror(errno)));
    return kExitSyntax;
  }
  out(
      fmt::format("umacvlan daemon (pid {}) on {}: reloading its config file; what it did is in "
                  "its log ({}, or the journal under systemd)\n",
                  peer.pid, socket, control::default_log_path(socket)));
  return 0;
}

}  // namespace umacvlan::cli
