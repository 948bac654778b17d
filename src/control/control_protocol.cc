#include "control/control_protocol.h"

#include <algorithm>
#include <array>
#include <limits>
#include <utility>

namespace umacvlan::control {
namespace {

using nlohmann::json;

constexpr std::array<std::pair<LinkOp, std::string_view>, 7> kOps{{
    {LinkOp::kAdd, "add"},
    {LinkOp::kSet, "set"},
    {LinkOp::kDelete, "delete"},
    {LinkOp::kShow, "show"},
    {LinkOp::kPort, "port"},
    {LinkOp::kCapture, "capture"},
    {LinkOp::kMonitor, "monitor"},
}};

constexpr std::array<std::pair<core::SourceOp, std::string_view>, 5> kMacaddrModes{{
    {core::SourceOp::kNone, "none"},
    {core::SourceOp::kAdd, "add"},
    {core::SourceOp::kDel, "del"},
    {core::SourceOp::kSet, "set"},
    {core::SourceOp::kFlush, "flush"},
}};

constexpr std::string_view kRequestKeys[] = {
    "op",    "name",       "link",  "address",  "mtu",     "up",         "type",   "mode",
    "flags", "bcqueuelen", "bclim", "spoofchk", "macaddr", "hostaccess", "macnat", "macnat_ageing"};

bool fail(std::string* error, std::string text) {
  if (error != nullptr) *error = std::move(text);
  return false;
}

// Reads an integer member into [lo, hi]; absent members leave *out alone.
template <typename T>
bool read_integer(const json& object, std::string_view key, std::int64_t lo, std::int64_t hi,
                  std::optional<T>* out, std::string* error) {
  auto it = object.find(key);
  if (it == object.end()) return true;
  if (!it->is_number_integer()) {
    return fail(error, "\"" + std::string(key) + "\" must be an integer");
  }
  // Unsigned values above INT64_MAX are out of every range used here.
  if (it->is_number_unsigned() &&
      it->get<std::uint64_t>() >
          static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    return fail(error, "\"" + std::string(key) + "\" is out of range");
  }
  const std::int64_t v = it->get<std::int64_t>();
  if (v < lo || v > hi) return fail(error, "\"" + std::string(key) + "\" is out of range");
  *out = static_cast<T>(v);
  return true;
}

bool read_string(const json& object, std::string_view key, std::string* out, std::string* error) {
  auto it = object.find(key);
  if (it == object.end()) return true;
  if (!it->is_string()) return fail(error, "\"" + std::string(key) + "\" must be a string");
  *out = it->get<std::string>();
  return true;
}

bool read_mac(const json& value, std::string_view what, core::MacAddress* out, std::string* error) {
  if (!value.is_string()) return fail(error, std::string(what) + " must be a string");
  auto mac = core::MacAddress::parse(value.get<std::string>());
  if (!mac) {
    return fail(error,
                std::string(what) + " \"" + value.get<std::string>() + "\" is not a MAC address");
  }
  *out = *mac;
  return true;
}

bool read_macaddr(const json& value, LinkRequest* request, std::string* error) {
  if (!value.is_object()) return fail(error, "\"macaddr\" must be an object");
  for (const auto& [key, unused] : value.items()) {
    if (key != "op" && key != "addresses") {
      return fail(error, "unknown key \"macaddr." + key + "\"");
    }
  }
  auto op = value.find("op");
  if (op == value.end() || !op->is_string()) {
    return fail(error, "\"macaddr.op\" must be a string");
  }
  auto mode = parse_macaddr_mode(op->get<std::string>());
  if (!mode || *mode == core::SourceOp::kNone) {
    return fail(error, "unknown macaddr operation \"" + op->get<std::string>() + "\"");
  }
  std::vector<core::MacAddress> macs;
  auto addresses = value.find("addresses");
  if (addresses != value.end()) {
    if (!addresses->is_array()) return fail(error, "\"macaddr.addresses\" must be an array");
    for (const auto& entry : *addresses) {
      core::MacAddress mac;
      if (!read_mac(entry, "macaddr address", &mac, error)) return false;
      macs.push_back(mac);
    }
  }
  const bool one = *mode == core::SourceOp::kAdd || *mode == core::SourceOp::kDel;
  if (one && macs.size() != 1) {
    return fail(error, "macaddr " + std::string(to_string(*mode)) + " takes exactly one address");
  }
  if (*mode == core::SourceOp::kFlush && !macs.empty()) {
    return fail(error, "macaddr flush takes no address");
  }
  request->macaddr_mode = *mode;
  request->macaddrs = std::move(macs);
  return true;
}

bool read_bool(const json& object, std::string_view key, bool* out, std::string* error) {
  auto it = object.find(key);
  if (it == object.end() || !it->is_boolean()) {
    return fail(error, "\"" + std::string(key) + "\" must be true or false");
  }
  *out = it->get<bool>();
  return true;
}

bool read_port_lower(const json& value, PortLower* out, std::string* error) {
  if (!value.is_object()) return fail(error, "\"lower\" must be an object");
  constexpr std::string_view kKeys[] = {"ifname",  "address",  "mtu",      "carrier",
                                        "promisc", "allmulti", "multicast"};
  for (const auto& [key, unused] : value.items()) {
    bool known = false;
    for (auto k : kKeys) known = known || k == key;
    if (!known) return fail(error, "unknown key \"lower." + key + "\"");
  }
  PortLower l;
  auto name = value.find("ifname");
  if (name == value.end() || !name->is_string() || name->get<std::string>().empty()) {
    return fail(error, "\"lower.ifname\" must be a name");
  }
  l.name = name->get<std::string>();
  auto address = value.find("address");
  if (address == value.end()) return fail(error, "\"lower.address\" is missing");
  if (!read_mac(*address, "\"lower.address\"", &l.mac, error)) return false;
  std::optional<std::uint32_t> mtu;
  if (!read_integer(value, "mtu", 0, std::numeric_limits<std::uint32_t>::max(), &mtu, error)) {
    return false;
  }
  if (!mtu) return fail(error, "\"mtu\" is missing");
  l.mtu = *mtu;
  if (!read_bool(value, "carrier", &l.carrier, error) ||
      !read_bool(value, "promisc", &l.promisc, error) ||
      !read_bool(value, "allmulti", &l.allmulti, error)) {
    return false;
  }
  auto groups = value.find("multicast");
  if (groups == value.end() || !groups->is_array()) {
    return fail(error, "\"lower.multicast\" must be an array");
  }
  for (const auto& entry : *groups) {
    core::MacAddress mac;
    if (!read_mac(entry, "a lower multicast group", &mac, error)) return false;
    l.multicast.push_back(mac);
  }
  *out = std::move(l);
  return true;
}

}  // namespace

std::string host_device_name(const std::string& lower) {
  constexpr std::size_t kMaxName = 15;  // IFNAMSIZ - 1
  const std::string suffix = ".host";
  return lower.substr(0, std::min(lower.size(), kMaxName - suffix.size())) + suffix;
}

std::string_view to_string(LinkOp op) {
  for (const auto& [value, text] : kOps) {
    if (value == op) return text;
  }
  return "unknown";
}

std::optional<LinkOp> parse_link_op(std::string_view text) {
  for (const auto& [value, name] : kOps) {
    if (name == text) return value;
  }
  return std::nullopt;
}

std::string_view to_string(core::SourceOp mode) {
  for (const auto& [value, text] : kMacaddrModes) {
    if (value == mode) return text;
  }
  return "unknown";
}

std::optional<core::SourceOp> parse_macaddr_mode(std::string_view text) {
  for (const auto& [value, name] : kMacaddrModes) {
    if (name == text) return value;
  }
  return std::nullopt;
}

json to_json(const LinkRequest& request) {
  json j = json::object();
  j["op"] = to_string(request.op);
  if (!request.name.empty()) j["name"] = request.name;
  if (!request.link.empty()) j["link"] = request.link;
  if (request.address) j["address"] = request.address->to_string();
  if (request.mtu) j["mtu"] = *request.mtu;
  if (request.up) j["up"] = *request.up;
  if (request.type_macvlan) j["type"] = "macvlan";
  if (request.mode) j["mode"] = core::to_string(*request.mode);
  if (request.flags) j["flags"] = *request.flags;
  if (request.bcqueuelen) j["bcqueuelen"] = *request.bcqueuelen;
  if (request.bclim) j["bclim"] = *request.bclim;
  if (request.spoofchk) j["spoofchk"] = *request.spoofchk;
  if (request.hostaccess) j["hostaccess"] = *request.hostaccess;
  if (request.macnat) j["macnat"] = *request.macnat;
  if (request.macnat_ageing) j["macnat_ageing"] = *request.macnat_ageing;
  if (request.macaddr_mode != core::SourceOp::kNone) {
    json addresses = json::array();
    for (const auto& mac : request.macaddrs) addresses.push_back(mac.to_string());
    j["macaddr"] = {{"op", to_string(request.macaddr_mode)}, {"addresses", std::move(addresses)}};
  }
  return j;
}

bool from_json(const json& j, LinkRequest* out, std::string* error) {
  if (!j.is_object()) return fail(error, "a request must be a JSON object");
  for (const auto& [key, unused] : j.items()) {
    bool known = false;
    for (auto k : kRequestKeys) known = known || k == key;
    if (!known) return fail(error, "unknown request key \"" + key + "\"");
  }
  LinkRequest r;
  auto op = j.find("op");
  if (op == j.end() || !op->is_string()) return fail(error, "\"op\" must be a string");
  auto parsed_op = parse_link_op(op->get<std::string>());
  if (!parsed_op) return fail(error, "unknown op \"" + op->get<std::string>() + "\"");
  r.op = *parsed_op;

  if (!read_string(j, "name", &r.name, error)) return false;
  if (!read_string(j, "link", &r.link, error)) return false;
  if (auto it = j.find("address"); it != j.end()) {
    core::MacAddress mac;
    if (!read_mac(*it, "\"address\"", &mac, error)) return false;
    r.address = mac;
  }
  if (!read_integer(j, "mtu", 0, std::numeric_limits<std::uint32_t>::max(), &r.mtu, error)) {
    return false;
  }
  if (auto it = j.find("up"); it != j.end()) {
    if (!it->is_boolean()) return fail(error, "\"up\" must be true or false");
    r.up = it->get<bool>();
  }
  if (auto it = j.find("type"); it != j.end()) {
    if (!it->is_string() || it->get<std::string>() != "macvlan") {
      return fail(error, "\"type\" must be \"macvlan\"");
    }
    r.type_macvlan = true;
  }
  if (auto it = j.find("mode"); it != j.end()) {
    if (!it->is_string()) return fail(error, "\"mode\" must be a string");
    auto mode = core::parse_mode(it->get<std::string>());
    if (!mode) return fail(error, "unknown mode \"" + it->get<std::string>() + "\"");
    r.mode = mode;
  }
  if (!read_integer(j, "flags", 0, core::kFlagNoPromisc | core::kFlagNoDst, &r.flags, error)) {
    return false;
  }
  if (!read_integer(j, "bcqueuelen", 0, std::numeric_limits<std::uint32_t>::max(), &r.bcqueuelen,
                    error)) {
    return false;
  }
  if (!read_integer(j, "bclim", std::numeric_limits<std::int32_t>::min(),
                    std::numeric_limits<std::int32_t>::max(), &r.bclim, error)) {
    return false;
  }
  if (auto it = j.find("spoofchk"); it != j.end()) {
    if (!it->is_boolean()) return fail(error, "\"spoofchk\" must be true or false");
    r.spoofchk = it->get<bool>();
  }
  if (auto it = j.find("hostaccess"); it != j.end()) {
    if (!it->is_boolean()) return fail(error, "\"hostaccess\" must be true or false");
    r.hostaccess = it->get<bool>();
  }
  if (auto it = j.find("macnat"); it != j.end()) {
    if (!it->is_boolean()) return fail(error, "\"macnat\" must be true or false");
    r.macnat = it->get<bool>();
  }
  if (!read_integer(j, "macnat_ageing", kMinMacnatAgeing, kMaxMacnatAgeing, &r.macnat_ageing,
                    error)) {
    return false;
  }
  if (auto it = j.find("macaddr"); it != j.end()) {
    if (!read_macaddr(*it, &r, error)) return false;
  }
  if (r.op == LinkOp::kAdd && (r.name.empty() || r.link.empty())) {
    return fail(error, "add needs \"name\" and \"link\"");
  }
  if ((r.op == LinkOp::kSet || r.op == LinkOp::kDelete) && r.name.empty()) {
    return fail(error, std::string(to_string(r.op)) + " needs \"name\"");
  }
  if ((r.op == LinkOp::kPort || r.op == LinkOp::kCapture) && r.name.empty() == r.link.empty()) {
    return fail(error, std::string(to_string(r.op)) + " needs either \"name\" or \"link\"");
  }
  *out = std::move(r);
  return true;
}

json to_json(const Reply& reply) {
  json j = json::object();
  j["error"] = reply.error;
  if (!reply.message.empty()) j["message"] = reply.message;
  j["links"] = reply.links.is_array() ? reply.links : json::array();
  if (reply.lower) {
    const PortLower& l = *reply.lower;
    json groups = json::array();
    for (const auto& m : l.multicast) groups.push_back(m.to_string());
    j["lower"] = {{"ifname", l.name},
                  {"address", l.mac.to_string()},
                  {"mtu", l.mtu},
                  {"carrier", l.carrier},
                  {"promisc", l.promisc},
                  {"allmulti", l.allmulti},
                  {"multicast", std::move(groups)}};
  }
  return j;
}

bool from_json(const json& j, Reply* out, std::string* error) {
  if (!j.is_object()) return fail(error, "a reply must be a JSON object");
  for (const auto& [key, unused] : j.items()) {
    if (key != "error" && key != "message" && key != "links" && key != "lower") {
      return fail(error, "unknown reply key \"" + key + "\"");
    }
  }
  Reply r;
  std::optional<int> err;
  if (!j.contains("error")) return fail(error, "a reply needs \"error\"");
  if (!read_integer(j, "error", 0, 4095, &err, error)) return false;
  r.error = *err;
  if (!read_string(j, "message", &r.message, error)) return false;
  if (auto it = j.find("links"); it != j.end()) {
    if (!it->is_array()) return fail(error, "\"links\" must be an array");
    for (const auto& link : *it) {
      if (!link.is_object()) return fail(error, "each link must be a JSON object");
    }
    r.links = *it;
  }
  if (auto it = j.find("lower"); it != j.end()) {
    PortLower lower;
    if (!read_port_lower(*it, &lower, error)) return false;
    r.lower = std::move(lower);
  }
  *out = std::move(r);
  return true;
}

}  // namespace umacvlan::control
