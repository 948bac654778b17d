#include "cni/cni_conf.h"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <charconv>

namespace umacvlan::cni {
namespace {

CniError err(int code, std::string msg, std::string details = {}) {
  return CniError{code, std::move(msg), std::move(details)};
}

std::string_view json_type(const nlohmann::json& j) {
  if (j.is_string()) return "a string";
  if (j.is_boolean()) return "a boolean";
  if (j.is_number()) return "a number";
  if (j.is_object()) return "an object";
  if (j.is_array()) return "an array";
  return "null";
}

CniError wrong_type(std::string_view field, std::string_view want, const nlohmann::json& got) {
  return err(kErrInvalidConfig,
             fmt::format("invalid network configuration: \"{}\" must be {}, not {}", field, want,
                         json_type(got)));
}

// Reads an optional string field; null counts as absent, as Go's decoder does.
std::optional<CniError> get_string(const nlohmann::json& j, std::string_view key,
                                   std::string* out) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) return wrong_type(key, "a string", *it);
  *out = it->get<std::string>();
  return std::nullopt;
}

std::optional<CniError> get_bool(const nlohmann::json& j, std::string_view key, bool* out) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (!it->is_boolean()) return wrong_type(key, "true or false", *it);
  *out = it->get<bool>();
  return std::nullopt;
}

bool parse_version(std::string_view v, std::array<int, 3>* out) {
  std::array<int, 3> parts{};
  std::size_t i = 0;
  for (int& part : parts) {
    const char* begin = v.data() + i;
    const char* end = v.data() + v.size();
    auto [p, ec] = std::from_chars(begin, end, part);
    if (ec != std::errc() || p == begin) return false;
    i = static_cast<std::size_t>(p - v.data());
    if (&part != &parts.back()) {
      if (i >= v.size() || v[i] != '.') return false;
      ++i;
    }
  }
  if (i != v.size()) return false;
  *out = parts;
  return true;
}

std::optional<core::MacAddress> parse_mac_text(std::string text) {
  // Go's net.ParseMAC also takes dashes.
  std::replace(text.begin(), text.end(), '-', ':');
  std::transform(text.begin(), text.end(), text.begin(), [](char c) {
    return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  });
  return core::MacAddress::parse(text);
}

// "A/N" → family, address text, prefix; false when it is not an IP prefix.
bool split_prefix(const std::string& text, int* family, std::string* addr, int* prefix) {
  const auto slash = text.find('/');
  if (slash == std::string::npos) return false;
  const std::string a = text.substr(0, slash);
  const std::string_view p = std::string_view(text).substr(slash + 1);
  int n = -1;
  auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), n);
  if (ec != std::errc() || end != p.data() + p.size() || p.empty()) return false;
  std::array<unsigned char, 16> buf{};
  if (::inet_pton(AF_INET, a.c_str(), buf.data()) == 1) {
    *family = 4;
  } else if (::inet_pton(AF_INET6, a.c_str(), buf.data()) == 1) {
    *family = 6;
  } else {
    return false;
  }
  if (n < 0 || n > (*family == 4 ? 32 : 128)) return false;
  *addr = a;
  *prefix = n;
  return true;
}

int ip_family(const std::string& text) {
  std::array<unsigned char, 16> buf{};
  if (::inet_pton(AF_INET, text.c_str(), buf.data()) == 1) return 4;
  if (::inet_pton(AF_INET6, text.c_str(), buf.data()) == 1) return 6;
  return 0;
}

// FNV-1a, 64 bits: stable across builds and machines (std::hash is not).
std::uint64_t fnv1a(std::string_view s, std::uint64_t h = 0xcbf29ce484222325ULL) {
  for (const char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ULL;
  }
  return h;
}

}  // namespace

std::optional<Command> parse_command(std::string_view text) {
  if (text == "ADD") return Command::kAdd;
  if (text == "DEL") return Command::kDel;
  if (text == "CHECK") return Command::kCheck;
  if (text == "VERSION") return Command::kVersion;
  if (text == "STATUS") return Command::kStatus;
  if (text == "GC") return Command::kGc;
  return std::nullopt;
}

std::string_view to_string(Command c) {
  switch (c) {
    case Command::kAdd:
      return "ADD";
    case Command::kDel:
      return "DEL";
    case Command::kCheck:
      return "CHECK";
    case Command::kVersion:
      return "VERSION";
    case Command::kStatus:
      return "STATUS";
    case Command::kGc:
      return "GC";
  }
  return "?";
}

std::optional<CniError> parse_env(const std::map<std::string, std::string>& env, CniEnv* out) {
  auto get = [&](const char* key) -> std::string {
    const auto it = env.find(key);
    return it == env.end() ? std::string() : it->second;
  };
  const std::string command = get("CNI_COMMAND");
  if (command.empty()) {
    return err(kErrInvalidEnvironment, "required env variables [CNI_COMMAND] missing");
  }
  const auto cmd = parse_command(command);
  if (!cmd) {
    return err(
        kErrInvalidEnvironment,
        fmt::format("unknown CNI_COMMAND: {} (ADD, DEL, CHECK, VERSION, STATUS or GC)", command));
  }
  CniEnv e;
  e.command = *cmd;
  e.container_id = get("CNI_CONTAINERID");
  e.netns = get("CNI_NETNS");
  e.ifname = get("CNI_IFNAME");
  e.args = get("CNI_ARGS");
  e.path = get("CNI_PATH");
  // What each command needs, as the specification lists it.
  std::vector<std::string> missing;
  const bool attach =
      e.command == Command::kAdd || e.command == Command::kDel || e.command == Command::kCheck;
  if (attach) {
    if (e.container_id.empty()) missing.emplace_back("CNI_CONTAINERID");
    if (e.netns.empty() && e.command != Command::kDel) missing.emplace_back("CNI_NETNS");
    if (e.ifname.empty()) missing.emplace_back("CNI_IFNAME");
  }
  if (e.command != Command::kVersion && e.path.empty()) missing.emplace_back("CNI_PATH");
  if (!missing.empty()) {
    std::string list;
    for (const auto& m : missing) list += (list.empty() ? "" : " ") + m;
    return err(kErrInvalidEnvironment, fmt::format("required env variables [{}] missing", list));
  }
  if (attach) {
    if (e.ifname.size() >= 16 || e.ifname == "." || e.ifname == ".." ||
        e.ifname.find_first_of("/: \t\n") != std::string::npos) {
      return err(kErrInvalidEnvironment,
                 fmt::format("CNI_IFNAME \"{}\" is not a valid interface name", e.ifname));
    }
    for (const char c : e.container_id) {
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-')) {
        return err(kErrInvalidEnvironment,
                   fmt::format("CNI_CONTAINERID \"{}\" has a character other than letters, "
                               "digits, _ . -",
                               e.container_id));
      }
    }
  }
  std::map<std::string, std::string> kv;
  if (auto e2 = parse_cni_args(e.args, &kv)) return e2;
  *out = std::move(e);
  return std::nullopt;
}

std::optional<CniError> parse_cni_args(std::string_view args,
                                       std::map<std::string, std::string>* out) {
  std::map<std::string, std::string> kv;
  std::size_t start = 0;
  while (start <= args.size() && !args.empty()) {
    const std::size_t end = std::min(args.find(';', start), args.size());
    const std::string_view pair = args.substr(start, end - start);
    const auto eq = pair.find('=');
    if (eq == std::string_view::npos || eq == 0) {
      return err(kErrInvalidEnvironment,
                 fmt::format("CNI_ARGS: \"{}\" is not KEY=VALUE", std::string(pair)));
    }
    kv[std::string(pair.substr(0, eq))] = std::string(pair.substr(eq + 1));
    start = end + 1;
  }
  *out = std::move(kv);
  return std::nullopt;
}

int compare_versions(std::string_view a, std::string_view b) {
  std::array<int, 3> va{}, vb{};
  if (!parse_version(a, &va)) va = {0, 0, 0};
  if (!parse_version(b, &vb)) vb = {0, 0, 0};
  return va < vb ? -1 : va > vb ? 1 : 0;
}

bool version_supported(std::string_view v) {
  return std::find(kSupportedVersions.begin(), kSupportedVersions.end(), v) !=
         kSupportedVersions.end();
}

std::optional<CniError> parse_netconf(std::string_view stdin_text, Command command, NetConf* out) {
  nlohmann::json j = nlohmann::json::parse(stdin_text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return err(kErrDecoding, "error unmarshalling the network configuration",
               j.is_discarded() ? "stdin is not JSON" : "stdin is not a JSON object");
  }
  NetConf c;
  c.raw = j;
  if (auto e = get_string(j, "cniVersion", &c.cni_version)) return e;
  if (command == Command::kVersion) {
    *out = std::move(c);
    return std::nullopt;
  }
  if (c.cni_version.empty()) c.cni_version = "0.1.0";  // what libcni assumes
  if (!version_supported(c.cni_version)) {
    return err(kErrIncompatibleVersion, "incompatible CNI versions",
               fmt::format("config is \"{}\", plugin supports [{}]", c.cni_version,
                           fmt::join(kSupportedVersions, " ")));
  }
  const bool needs_11 = command == Command::kStatus || command == Command::kGc;
  if (needs_11 && compare_versions(c.cni_version, "1.1.0") < 0) {
    return err(kErrIncompatibleVersion,
               fmt::format("{} needs cniVersion 1.1.0 or later, the configuration has {}",
                           to_string(command), c.cni_version));
  }
  if (command == Command::kCheck && compare_versions(c.cni_version, "0.4.0") < 0) {
    return err(kErrIncompatibleVersion,
               fmt::format("config version does not allow CHECK (cniVersion {})", c.cni_version));
  }
  if (auto e = get_string(j, "name", &c.name)) return e;
  if (c.name.empty()) return err(kErrInvalidConfig, "missing network name");
  for (const char ch : c.name) {
    if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '.' || ch == '-')) {
      return err(kErrInvalidConfig,
                 fmt::format("invalid network name \"{}\": letters, digits, _ . - only", c.name));
    }
  }
  if (auto e = get_string(j, "type", &c.type)) return e;
  if (auto e = get_string(j, "master", &c.master)) return e;
  if (c.master.size() >= 16 || c.master.find_first_of("/: ") != std::string::npos) {
    return err(kErrInvalidConfig,
               fmt::format("\"master\": \"{}\" is not a valid interface name", c.master));
  }
  if (auto e = get_string(j, "mode", &c.mode_text)) return e;
  if (c.mode_text.empty()) c.mode_text = "bridge";
  const auto mode = core::parse_mode(c.mode_text);
  if (!mode) {
    return err(kErrInvalidConfig,
               fmt::format("\"mode\": unknown macvlan mode \"{}\" (bridge, private, vepa, "
                           "passthru or source)",
                           c.mode_text));
  }
  c.mode = *mode;
  if (const auto it = j.find("mtu"); it != j.end() && !it->is_null()) {
    if (!it->is_number_integer()) return wrong_type("mtu", "an integer", *it);
    const auto v = it->get<std::int64_t>();
    if (v < 0 || v > 65535) {
      return err(kErrInvalidConfig,
                 fmt::format("\"mtu\": invalid MTU {}, must be [0, master MTU]", v));
    }
    c.mtu = static_cast<int>(v);
  }
  if (auto e = get_string(j, "mac", &c.mac)) return e;
  if (auto e = get_bool(j, "linkInContainer", &c.link_in_container)) return e;
  if (auto e = get_bool(j, "stableMac", &c.stable_mac)) return e;
  if (const auto it = j.find("bcqueuelen"); it != j.end() && !it->is_null()) {
    if (!it->is_number_integer()) return wrong_type("bcqueuelen", "an integer", *it);
    const auto v = it->get<std::int64_t>();
    if (v < 0 || v > 0xffffffffLL) {
      return err(kErrInvalidConfig, fmt::format("\"bcqueuelen\": {} is out of range", v));
    }
    c.bcqueuelen = static_cast<std::uint32_t>(v);
  }
  if (const auto it = j.find("ipam"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) return wrong_type("ipam", "an object", *it);
    if (auto e = get_string(*it, "type", &c.ipam_type)) {
      e->msg = "invalid network configuration: \"ipam.type\" must be a string";
      return e;
    }
    if (c.ipam_type.find('/') != std::string::npos) {
      return err(
          kErrInvalidConfig,
          fmt::format("\"ipam.type\": \"{}\" must be a plugin name, not a path", c.ipam_type));
    }
  } else if (command == Command::kAdd) {
    return err(kErrInvalidConfig,
               "missing \"ipam\": give the IPAM plugin, or \"ipam\": {} for layer 2 only");
  }
  if (const auto it = j.find("dns"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) return wrong_type("dns", "an object", *it);
    c.dns = *it;
  }
  if (const auto it = j.find("runtimeConfig"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) return wrong_type("runtimeConfig", "an object", *it);
    if (auto e = get_string(*it, "mac", &c.runtime_mac)) {
      e->msg = "invalid network configuration: \"runtimeConfig.mac\" must be a string";
      return e;
    }
  }
  if (const auto it = j.find("prevResult"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) return wrong_type("prevResult", "an object", *it);
    c.prev_result = *it;
  }
  if (const auto it = j.find("cni.dev/valid-attachments"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) return wrong_type("cni.dev/valid-attachments", "an array", *it);
    for (const auto& a : *it) {
      if (!a.is_object() || !a.contains("containerID") || !a["containerID"].is_string()) {
        return err(kErrInvalidConfig,
                   "invalid network configuration: each of \"cni.dev/valid-attachments\" "
                   "needs a \"containerID\" string");
      }
    }
    c.valid_attachments = *it;
  }
  // The configuration's own MAC is checked here; CNI_ARGS and runtimeConfig
  // by effective_mac().
  if (!c.mac.empty()) {
    const auto m = parse_mac_text(c.mac);
    if (!m || !m->is_valid_unicast()) {
      return err(kErrInvalidConfig, fmt::format("\"mac\": \"{}\" is not a unicast MAC address "
                                                "(xx:xx:xx:xx:xx:xx, not multicast, not zero)",
                                                c.mac));
    }
  }
  *out = std::move(c);
  return std::nullopt;
}

core::MacAddress stable_mac(std::string_view network, std::string_view owner,
                            std::string_view ifname) {
  std::uint64_t h = fnv1a(network);
  h = fnv1a("\x1f", h);
  h = fnv1a(owner, h);
  h = fnv1a("\x1f", h);
  h = fnv1a(ifname, h);
  // Locally administered, unicast: the first octet is x2, x6, xA or xE.
  std::uint64_t v = h & 0xffffffffffffULL;
  v = (v & ~(0x01ULL << 40)) | (0x02ULL << 40);
  return core::MacAddress::from_u64(v);
}

std::optional<CniError> effective_mac(const NetConf& conf, const CniEnv& env,
                                      std::optional<core::MacAddress>* out) {
  std::map<std::string, std::string> args;
  if (auto e = parse_cni_args(env.args, &args)) return e;
  auto check = [](const std::string& text, int code, std::string_view where,
                  std::optional<core::MacAddress>* m) -> std::optional<CniError> {
    const auto parsed = parse_mac_text(text);
    if (!parsed || !parsed->is_valid_unicast()) {
      return err(code, fmt::format("{}: \"{}\" is not a unicast MAC address "
                                   "(xx:xx:xx:xx:xx:xx, not multicast, not zero)",
                                   where, text));
    }
    *m = parsed;
    return std::nullopt;
  };
  std::optional<core::MacAddress> m;
  if (!conf.runtime_mac.empty()) {
    if (auto e = check(conf.runtime_mac, kErrInvalidConfig, "\"runtimeConfig.mac\"", &m)) return e;
  } else if (const auto it = args.find("MAC"); it != args.end() && !it->second.empty()) {
    if (auto e = check(it->second, kErrInvalidEnvironment, "CNI_ARGS MAC", &m)) return e;
  } else if (!conf.mac.empty()) {
    if (auto e = check(conf.mac, kErrInvalidConfig, "\"mac\"", &m)) return e;
  } else if (conf.stable_mac && conf.mode != core::Mode::kPassthru) {
    // passthru takes the master's MAC, as the kernel's does.
    const auto ns = args.find("K8S_POD_NAMESPACE");
    const auto pod = args.find("K8S_POD_NAME");
    const std::string owner = (ns != args.end() && pod != args.end() && !pod->second.empty())
                                  ? "pod:" + ns->second + "/" + pod->second
                                  : "container:" + env.container_id;
    m = stable_mac(conf.name, owner, env.ifname);
  }
  *out = m;
  return std::nullopt;
}

std::optional<CniError> parse_result_ips(const nlohmann::json& result, std::vector<ResultIp>* ips,
                                         std::vector<ResultRoute>* routes) {
  std::vector<ResultIp> out_ips;
  std::vector<ResultRoute> out_routes;
  if (!result.is_object()) return err(kErrDecoding, "the result is not a JSON object");
  if (const auto it = result.find("ips"); it != result.end() && !it->is_null()) {
    if (!it->is_array()) return err(kErrDecoding, "\"ips\" of the result is not an array");
    for (const auto& ip : *it) {
      if (!ip.is_object() || !ip.contains("address") || !ip["address"].is_string()) {
        return err(kErrDecoding, "an entry of \"ips\" has no \"address\" string");
      }
      ResultIp r;
      if (!split_prefix(ip["address"].get<std::string>(), &r.family, &r.address, &r.prefix)) {
        return err(kErrDecoding, fmt::format("\"ips\": \"{}\" is not an address with a prefix",
                                             ip["address"].get<std::string>()));
      }
      if (const auto g = ip.find("gateway"); g != ip.end() && g->is_string()) {
        r.gateway = g->get<std::string>();
        if (!r.gateway.empty() && ip_family(r.gateway) != r.family) {
          return err(kErrDecoding, fmt::format("\"ips\": gateway \"{}\" is not an IPv{} address",
                                               r.gateway, r.family));
        }
      }
      if (const auto i = ip.find("interface"); i != ip.end() && i->is_number_integer()) {
        r.interface = i->get<int>();
      }
      out_ips.push_back(r);
    }
  }
  if (const auto it = result.find("routes"); it != result.end() && !it->is_null()) {
    if (!it->is_array()) return err(kErrDecoding, "\"routes\" of the result is not an array");
    for (const auto& rt : *it) {
      if (!rt.is_object() || !rt.contains("dst") || !rt["dst"].is_string()) {
        return err(kErrDecoding, "an entry of \"routes\" has no \"dst\" string");
      }
      ResultRoute r;
      if (!split_prefix(rt["dst"].get<std::string>(), &r.family, &r.dst, &r.prefix)) {
        return err(kErrDecoding,
                   fmt::format("\"routes\": \"{}\" is not a prefix", rt["dst"].get<std::string>()));
      }
      if (const auto g = rt.find("gw"); g != rt.end() && g->is_string()) {
        r.gw = g->get<std::string>();
        if (!r.gw.empty() && ip_family(r.gw) != r.family) {
          return err(kErrDecoding,
                     fmt::format("\"routes\": gw \"{}\" is not an IPv{} address", r.gw, r.family));
        }
      }
      out_routes.push_back(r);
    }
  }
  *ips = std::move(out_ips);
  *routes = std::move(out_routes);
  return std::nullopt;
}

std::optional<CniError> make_result(const std::string& version, const Interface& iface,
                                    const nlohmann::json& ipam_result, const nlohmann::json& dns,
                                    nlohmann::json* out) {
  nlohmann::json r = nlohmann::json::object();
  r["cniVersion"] = version;
  r["interfaces"] = nlohmann::json::array(
      {{{"name", iface.name}, {"mac", iface.mac}, {"sandbox", iface.sandbox}}});
  const bool with_version = compare_versions(version, "1.0.0") < 0;
  if (!ipam_result.is_null()) {
    std::vector<ResultIp> ips;
    std::vector<ResultRoute> routes;
    if (auto e = parse_result_ips(ipam_result, &ips, &routes)) {
      e->msg = "the IPAM plugin's result: " + e->msg;
      return e;
    }
    if (ips.empty()) return err(kErrInternal, "IPAM plugin returned missing IP config");
    nlohmann::json out_ips = nlohmann::json::array();
    for (auto ip : ipam_result["ips"]) {
      const std::string addr = ip["address"].get<std::string>();
      const bool v6 = addr.find(':') != std::string::npos;
      ip["interface"] = 0;  // every address is on our one interface
      if (with_version) {
        ip["version"] = v6 ? "6" : "4";
      } else {
        ip.erase("version");
      }
      out_ips.push_back(ip);
    }
    r["ips"] = out_ips;
    if (const auto it = ipam_result.find("routes");
        it != ipam_result.end() && it->is_array() && !it->empty()) {
      r["routes"] = *it;
    }
  }
  r["dns"] = dns.is_object() ? dns : nlohmann::json::object();
  *out = std::move(r);
  return std::nullopt;
}

nlohmann::json to_json(const CniError& e, std::string_view version) {
  nlohmann::json j = {
      {"cniVersion", version.empty() ? std::string(kLatestVersion) : std::string(version)},
      {"code", e.code},
      {"msg", e.msg}};
  if (!e.details.empty()) j["details"] = e.details;
  return j;
}

nlohmann::json version_json(std::string_view version) {
  const std::string v = version.empty() || !version_supported(version) ? std::string(kLatestVersion)
                                                                       : std::string(version);
  return {{"cniVersion", v}, {"supportedVersions", kSupportedVersions}};
}

}  // namespace umacvlan::cni
