#include "cli/explain.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <span>

#include "cli/control_client.h"
#include "cli/link_printer.h"
#include "core/frame.h"

namespace umacvlan::cli {
namespace {

using core::MacAddress;
using core::Mode;

constexpr std::uint64_t kDefaultDeviceMac = 0x020000000000ULL;  // + N
constexpr std::uint64_t kOutsideDst = 0x02000000ff01ULL;
constexpr std::uint64_t kOutsideSrc = 0x02000000ff02ULL;
constexpr std::size_t kMinFrame = 60;

// ---------------------------------------------------------------- parsing

ParseError wrong_argument(std::string_view arg, std::string_view why) {
  return {kExitSyntax, fmt::format("Error: argument \"{}\" is wrong: {}\n", arg, why)};
}

ParseError duplicate(std::string_view what, std::string_view word) {
  return {kExitSyntax,
          fmt::format("Error: either \"{}\" is duplicate, or \"{}\" is a garbage.\n", what, word)};
}

ParseError incomplete() {
  return {kExitSyntax, "Command line is not complete. Try \"umacvlan explain help\".\n"};
}

std::vector<std::string_view> split(std::string_view text, char sep) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (true) {
    const std::size_t end = text.find(sep, start);
    parts.push_back(text.substr(start, end == std::string_view::npos ? end : end - start));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return parts;
}

// "MAC+MAC..." of src= and group=.
std::optional<std::vector<MacAddress>> parse_mac_list(std::string_view text) {
  std::vector<MacAddress> macs;
  for (std::string_view part : split(text, '+')) {
    auto mac = MacAddress::parse(part);
    if (!mac) return std::nullopt;
    macs.push_back(*mac);
  }
  return macs;
}

// A device of SPEC: NAME:MODE[,option...].
std::variant<ModelDevice, ParseError> parse_spec_device(std::string_view word, std::size_t n) {
  const std::size_t colon = word.find(':');
  if (colon == std::string_view::npos || colon == 0)
    return wrong_argument(word, "a device is NAME:MODE[,OPTION...]");
  ModelDevice d;
  d.name = std::string(word.substr(0, colon));
  if (d.name.size() >= 16) return wrong_argument(word, "a device name has at most 15 characters");
  d.mac = MacAddress::from_u64(kDefaultDeviceMac + n);
  const std::vector<std::string_view> options = split(word.substr(colon + 1), ',');
  auto mode = core::parse_mode(options[0]);
  if (!mode) {
    return wrong_argument(word, fmt::format("mode \"{}\" is not private, vepa, bridge, passthru "
                                            "or source",
                                            options[0]));
  }
  d.mode = *mode;
  for (std::size_t i = 1; i < options.size(); ++i) {
    const std::string_view o = options[i];
    const std::size_t eq = o.find('=');
    const std::string_view key = o.substr(0, eq);
    const std::string_view value = eq == std::string_view::npos ? "" : o.substr(eq + 1);
    if (eq == std::string_view::npos) {
      if (o == "nopromisc") {
        d.flags |= core::kFlagNoPromisc;
      } else if (o == "nodst") {
        d.flags |= core::kFlagNoDst;
      } else if (o == "down") {
        d.up = false;
      } else if (o == "promisc") {
        d.promisc = true;
      } else if (o == "allmulti") {
        d.allmulti = true;
      } else if (o == "spoofchk") {
        d.spoofchk = true;
      } else {
        return wrong_argument(word,
                              fmt::format("unknown option \"{}\"; OPTION := nopromisc | nodst "
                                          "| down | promisc | allmulti | spoofchk | mac=MAC "
                                          "| src=MAC+MAC... | group=MAC+MAC...",
                                          o));
      }
    } else if (key == "mac") {
      auto mac = MacAddress::parse(value);
      if (!mac || !mac->is_valid_unicast())
        return wrong_argument(word, fmt::format("\"{}\" is not a unicast MAC address", value));
      d.mac = *mac;
    } else if (key == "src") {
      auto macs = parse_mac_list(value);
      if (!macs) return wrong_argument(word, "src= takes MAC addresses joined by \"+\"");
      if (d.mode != Mode::kSource)
        return wrong_argument(word, "src= is for a device in source mode");
      d.sources = std::move(*macs);
    } else if (key == "group") {
      auto macs = parse_mac_list(value);
      if (!macs || std::any_of(macs->begin(), macs->end(),
                               [](const MacAddress& m) { return !m.is_multicast(); }))
        return wrong_argument(word, "group= takes multicast MAC addresses joined by \"+\"");
      d.multicast = std::move(*macs);
    } else {
      return wrong_argument(word, fmt::format("unknown option \"{}\"", key));
    }
  }
  if (d.mode != Mode::kPassthru && (d.flags & core::kFlagNoPromisc) != 0)
    return wrong_argument(word, "nopromisc is for a device in passthru mode");
  return d;
}

// ---------------------------------------------------------------- the port

const ModelDevice* find_device(const PortModel& m, std::string_view name) {
  for (const ModelDevice& d : m.devices) {
    if (d.name == name) return &d;
  }
  return nullptr;
}

const ModelDevice* device_with_mac(const PortModel& m, MacAddress mac) {
  // An up device first: that is the one the port's table holds.
  for (const ModelDevice& d : m.devices) {
    if (d.up && d.mac == mac) return &d;
  }
  for (const ModelDevice& d : m.devices) {
    if (d.mac == mac) return &d;
  }
  return nullptr;
}

// ids[i]: the DeviceId of m.devices[i] (names may repeat across namespaces).
bool port_of_model(const PortModel& m, core::Port* out, std::vector<core::DeviceId>* ids,
                   std::string* error) {
  core::Port port(m.lower);
  for (const ModelDevice& d : m.devices) {
    core::DeviceSpec spec;
    spec.name = d.name;
    if (d.mode != Mode::kPassthru) spec.address = d.mac;
    spec.mode = d.mode;
    spec.flags = d.flags;
    spec.bcqueuelen = d.bcqueuelen;
    spec.bclim = d.bclim;
    spec.spoofchk = d.spoofchk;
    if (d.mode == Mode::kSource && !d.sources.empty())
      spec.macaddr = core::SourceListChange{core::SourceOp::kSet, d.sources};
    core::DeviceId id = core::kNoDevice;
    core::Status s = port.add_device(spec, 0, &id);
    if (s.ok()) {
      core::DeviceChange c;
      c.up = d.up;
      c.promisc = d.promisc;
      c.allmulti = d.allmulti;
      c.multicast = d.multicast;
      s = port.change_device(id, c);
    }
    if (!s.ok()) {
      *error = fmt::format("Error: device \"{}\" cannot be on this port: {}.\n", d.name, s.message);
      return false;
    }
    ids->push_back(id);
  }
  *out = std::move(port);
  return true;
}

MacAddress free_mac(const PortModel& m, std::uint64_t start) {
  std::uint64_t v = start;
  while (device_with_mac(m, MacAddress::from_u64(v)) != nullptr ||
         MacAddress::from_u64(v) == m.lower.mac)
    ++v;
  return MacAddress::from_u64(v);
}

std::array<std::uint8_t, kMinFrame> frame_bytes(MacAddress dst, MacAddress src) {
  std::array<std::uint8_t, kMinFrame> b{};
  std::copy(dst.octets().begin(), dst.octets().end(), b.begin());
  std::copy(src.octets().begin(), src.octets().end(), b.begin() + 6);
  b[12] = core::kEthertypeIpv4 >> 8;
  b[13] = core::kEthertypeIpv4 & 0xff;
  return b;
}

// ---------------------------------------------------------------- words

std::string device_label(const core::Device& d) {
  return fmt::format("{} ({})", d.name, core::to_string(d.mode));
}

// Which way the core was asked.
struct Context {
  const PortModel& model;
  const core::Port& port;
  const std::vector<core::DeviceId>& ids;
  SenderKind sender;         // for a reflection: kOutside
  const core::Device* from;  // the sending device (transmit only)
  bool reflected = false;    // the frame came back from the wire
  MacAddress src;
  MacAddress dst;
};

// Who a flood from the wire with source S goes to, as the core chose.
std::string flood_origin(const Context& c, const core::Device& target) {
  const ModelDevice* s = device_with_mac(c.model, c.src);
  if (c.from != nullptr) {
    return fmt::format(
        "{} is a bridge device, so its group frames go straight to the other up "
        "bridge devices",
        c.from->name);
  }
  if (s == nullptr || !s->up)
    return "from the wire, group frames go to every up private, vepa, bridge and passthru device";
  if (s->mode == Mode::kVepa) {
    return fmt::format(
        "it comes from vepa device {} through the wire: every other up vepa and "
        "bridge device gets it",
        s->name);
  }
  if (s->name == target.name) {
    return "its own MAC is the source: from the wire that is another host sharing its MAC (VRRP), "
           "delivered as kernels since the 2026 fix do";
  }
  return fmt::format(
      "it comes from bridge device {} through the wire: vepa devices get it (bridge "
      "devices had it when it was sent)",
      s->name);
}

std::string target_text(const Context& c, const core::Target& t) {
  const core::Device& d = *c.port.device(t.device);
  switch (t.reason) {
    case core::Reason::kUnicast:
      if (c.port.passthru())
        return "the port is in passthru mode: its one device gets every unicast frame";
      if (c.from != nullptr) {
        return "unicast to its MAC; both are bridge devices, so the port delivers it directly";
      }
      return "unicast to its MAC";
    case core::Reason::kSourceCopy:
      return fmt::format("the source {} is on its source list (source mode){}", c.src.to_string(),
                         d.nodst() ? "; nodst: the port keeps the frame from everyone else" : "");
    case core::Reason::kReflect:
      return fmt::format(
          "its own multicast came back from the wire; a {} device gets its own "
          "group frames back, and nobody else does",
          core::to_string(d.mode));
    case core::Reason::kFlood: {
      std::string what;
      if (c.dst.is_broadcast()) {
        what = "broadcast";
      } else if (d.promisc) {
        what = "multicast, and the device is promiscuous";
      } else if (d.allmulti) {
        what = "multicast, and the device is allmulticast";
      } else {
        what = fmt::format("multicast to group {}, which it joined", c.dst.to_string());
      }
      return what + "; " + flood_origin(c, d);
    }
  }
  return "";
}

std::string drop_text(const Context& c, core::DropReason r) {
  switch (r) {
    case core::DropReason::kNoDst:
      for (const ModelDevice& d : c.model.devices) {
        if ((d.flags & core::kFlagNoDst) != 0 && d.mode == Mode::kSource &&
            std::find(d.sources.begin(), d.sources.end(), c.src) != d.sources.end()) {
          return fmt::format(
              "source device {} lists {} with nodst{}: the port consumes the frame; "
              "nobody else gets it, not even the lower's own stack",
              d.name, c.src.to_string(), d.up ? "" : " (even while it is down)");
        }
      }
      return "a nodst source device lists the source: nobody else gets it";
    case core::DropReason::kPassthruDown:
      return "the port is in passthru mode and its device is down";
    case core::DropReason::kBcQueueFull:
      return fmt::format(
          "the broadcast queue is full (usedbcqueuelen {}): the devices' copies are "
          "dropped and counted as rx_dropped on the lower",
          c.port.used_bcqueuelen());
    case core::DropReason::kNoSubscriber:
      return fmt::format("no device on the port joined group {}, so no device gets a copy",
                         c.dst.to_string());
    case core::DropReason::kPause:
      return "PAUSE frames are never flooded";
    case core::DropReason::kSpoofed:
      return fmt::format("spoofchk is on and the source {} is not the device's own MAC",
                         c.src.to_string());
    case core::DropReason::kUnknownSender:
      return "the port has no such sending device";
    case core::DropReason::kRunt:
      return "the frame is shorter than an Ethernet header";
    case core::DropReason::kOversize:
      return "the frame is longer than umacvlan takes";
    default:
      return std::string(core::to_string(r));
  }
}

void wire_words(const Context& c, const core::Verdict& v, Outcome* o) {
  if (!v.to_wire) {
    if (c.sender == SenderKind::kOutside) {
      o->no_wire = "it came from the wire";
    } else if (v.drop != core::DropReason::kNone) {
      o->no_wire = "dropped before it left";
    } else {
      o->no_wire = "delivered inside the port, it does not go out the lower";
    }
    return;
  }
  Delivery w{"wire", "wire", "", "", false, ""};
  const core::Device& f = *c.from;
  if (f.mode == Mode::kBridge && c.dst.is_multicast()) {
    w.reason = "bridge_multicast";
    w.text = "a bridge device's group frames also go out the lower";
  } else if (f.mode == Mode::kBridge) {
    w.reason = "not_a_bridge_sibling";
    w.text = c.dst == c.port.lower().mac
                 ? "the lower's own MAC is no device of the port: out the lower (the lower's "
                   "stack and its devices cannot reach each other)"
                 : "not the MAC of an up bridge device of the port, so out the lower";
  } else {
    w.reason = "sent_out";
    w.text = fmt::format("a {} device sends everything out the lower; the switch decides",
                         core::to_string(f.mode));
  }
  o->deliveries.push_back(std::move(w));
}

void stack_words(const Context& c, const core::Verdict& v, Outcome* o) {
  if (v.to_host) {
    Delivery s{"stack", "stack", "", "", false, ""};
    if (c.dst.is_multicast()) {
      s.reason = "multicast";
      s.text = "the lower's own stack gets every group frame the port does not stop";
    } else if (const ModelDevice* d = device_with_mac(c.model, c.dst);
               d != nullptr && d->up && d->mode == Mode::kSource) {
      s.reason = "source_mode_mac";
      s.text = fmt::format(
          "{} is in source mode, which takes nothing by destination; the lower's "
          "own stack gets it",
          d->name);
    } else {
      s.reason = "no_device_mac";
      s.text = "no up device has this MAC, so the lower's own stack gets it";
    }
    o->deliveries.push_back(std::move(s));
    return;
  }
  if (c.sender == SenderKind::kDevice) {
    o->no_stack = v.to_wire ? "what a device sends never reaches the lower's own stack; only a "
                              "reflecting switch brings it back"
                            : "delivered between bridge devices inside the port";
  } else if (v.drop == core::DropReason::kNoDst) {
    o->no_stack = "nodst: the port consumes it";
  } else if (v.drop != core::DropReason::kNone) {
    o->no_stack = "dropped";
  } else if (c.dst.is_multicast()) {
    o->no_stack = "a device's own multicast reflected back goes to that device only";
  } else {
    o->no_stack =
        "the port takes frames for its devices' MACs; the lower's stack does not get them";
  }
}

Outcome outcome_of(const Context& c, const core::DecisionBatch& batch) {
  const core::Verdict& v = batch.back();
  Outcome o;
  for (const core::Target& t : batch.targets(v)) {
    const core::Device& d = *c.port.device(t.device);
    Delivery dv;
    dv.to = d.name;
    dv.kind = "device";
    dv.reason = std::string(core::to_string(t.reason));
    dv.text = target_text(c, t);
    dv.queued = v.queued && t.reason == core::Reason::kFlood;
    if (dv.queued) dv.text += " (through the broadcast queue)";
    for (std::size_t i = 0; i < c.ids.size(); ++i) {
      if (c.ids[i] == t.device && !c.model.devices[i].here) dv.netns = c.model.devices[i].netns;
    }
    o.deliveries.push_back(std::move(dv));
  }
  if (c.sender == SenderKind::kDevice) {
    wire_words(c, v, &o);
  } else {
    o.no_wire = c.reflected ? "it came back from the wire" : "it came from the wire";
  }
  stack_words(c, v, &o);
  if (v.drop != core::DropReason::kNone) {
    o.dropped = Dropped{std::string(core::to_string(v.drop)), drop_text(c, v.drop)};
  }
  if (v.count == 0 && c.dst.is_multicast() && !c.dst.is_broadcast() &&
      (v.to_host || c.from != nullptr)) {
    o.no_device =
        fmt::format("none: no device the flood reaches joined group {}", c.dst.to_string());
  }
  return o;
}

Outcome receive_outcome(const PortModel& m, const core::Port& port,
                        const std::vector<core::DeviceId>& ids, MacAddress src, MacAddress dst,
                        bool reflected) {
  core::DecisionBatch batch;
  const auto bytes = frame_bytes(dst, src);
  port.receive(bytes, batch);
  const Context c{m, port, ids, SenderKind::kOutside, nullptr, reflected, src, dst};
  return outcome_of(c, batch);
}

// ---------------------------------------------------------------- rendering

std::string line(std::string_view indent, std::string_view to, std::size_t width,
                 std::string_view text) {
  return fmt::format("{}{:<{}} {}\n", indent, to, width, text);
}

std::string render_outcome(const Outcome& o, std::string_view indent, bool with_wire) {
  std::size_t width = 8;
  for (const Delivery& d : o.deliveries) width = std::max(width, d.to.size());
  std::string out;
  auto has = [&](std::string_view kind) {
    return std::any_of(o.deliveries.begin(), o.deliveries.end(),
                       [&](const Delivery& d) { return d.kind == kind; });
  };
  for (const Delivery& d : o.deliveries) {
    if (d.kind != "device") continue;
    std::string text = "gets it: " + d.text;
    if (!d.netns.empty()) text += fmt::format(" [in netns {}]", d.netns);
    out += line(indent, d.to, width, text);
  }
  if (!has("device") && !o.dropped) out += line(indent, "devices", width, o.no_device);
  for (std::string_view kind : {"wire", "stack"}) {
    if (kind == "wire" && !with_wire) continue;
    const std::string& no = kind == "wire" ? o.no_wire : o.no_stack;
    auto it = std::find_if(o.deliveries.begin(), o.deliveries.end(),
                           [&](const Delivery& d) { return d.kind == kind; });
    if (it != o.deliveries.end()) {
      out += line(indent, kind, width, "gets it: " + it->text);
    } else {
      out += line(indent, kind, width, no.empty() ? "no" : "no: " + no);
    }
  }
  if (o.dropped) out += fmt::format("{}dropped: {}\n", indent, o.dropped->text);
  return out;
}

nlohmann::ordered_json outcome_json(const Outcome& o) {
  nlohmann::ordered_json j;
  j["deliveries"] = nlohmann::ordered_json::array();
  for (const Delivery& d : o.deliveries) {
    nlohmann::ordered_json e;
    e["to"] = d.to;
    e["kind"] = d.kind;
    e["reason"] = d.reason;
    e["text"] = d.text;
    if (d.queued) e["queued"] = true;
    if (!d.netns.empty()) e["netns"] = d.netns;
    j["deliveries"].push_back(std::move(e));
  }
  if (o.dropped) {
    j["dropped"] = {{"reason", o.dropped->reason}, {"text", o.dropped->text}};
  } else {
    j["dropped"] = nullptr;
  }
  return j;
}

// ---------------------------------------------------------------- the reply

std::optional<MacAddress> mac_member(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return std::nullopt;
  return MacAddress::parse(it->get<std::string>());
}

bool has_flag(const nlohmann::json& link, std::string_view flag) {
  auto it = link.find("flags");
  if (it == link.end() || !it->is_array()) return false;
  return std::any_of(it->begin(), it->end(),
                     [&](const nlohmann::json& f) { return f.is_string() && f == flag; });
}

bool read_macs(const nlohmann::json& parent, const char* key, std::vector<MacAddress>* out) {
  auto it = parent.find(key);
  if (it == parent.end()) return true;
  if (!it->is_array()) return false;
  for (const auto& e : *it) {
    if (!e.is_string()) return false;
    auto mac = MacAddress::parse(e.get<std::string>());
    if (!mac) return false;
    out->push_back(*mac);
  }
  return true;
}

bool device_of_link(const nlohmann::json& link, ModelDevice* d, std::string* error) {
  auto bad = [&](std::string_view why) {
    *error = fmt::format("the daemon's reply is not understood: {}", why);
    return false;
  };
  if (!link.is_object()) return bad("a link is not an object");
  auto name = link.find("ifname");
  if (name == link.end() || !name->is_string()) return bad("a link has no \"ifname\"");
  d->name = name->get<std::string>();
  auto mac = mac_member(link, "address");
  if (!mac) return bad("link " + d->name + " has no \"address\"");
  d->mac = *mac;
  d->up = has_flag(link, "UP");
  const nlohmann::json* data = nullptr;
  if (auto li = link.find("linkinfo"); li != link.end() && li->is_object()) {
    if (auto id = li->find("info_data"); id != li->end() && id->is_object()) data = &*id;
  }
  if (data == nullptr) return bad("link " + d->name + " has no \"linkinfo.info_data\"");
  auto mode = data->find("mode");
  if (mode == data->end() || !mode->is_string() || !core::parse_mode(mode->get<std::string>()))
    return bad("link " + d->name + " has no macvlan mode");
  d->mode = *core::parse_mode(mode->get<std::string>());
  auto flag = [&](const char* key) {
    auto it = data->find(key);
    return it != data->end() && it->is_boolean() && it->get<bool>();
  };
  if (flag("nopromisc")) d->flags |= core::kFlagNoPromisc;
  if (flag("nodst")) d->flags |= core::kFlagNoDst;
  d->spoofchk = flag("spoofchk");
  if (auto it = data->find("bcqueuelen"); it != data->end() && it->is_number_unsigned())
    d->bcqueuelen = it->get<std::uint32_t>();
  if (auto it = data->find("bclim"); it != data->end() && it->is_number_integer())
    d->bclim = it->get<std::int32_t>();
  if (!read_macs(*data, "macaddr_data", &d->sources))
    return bad("link " + d->name + " has a bad source list");
  d->promisc = has_flag(link, "PROMISC");
  d->allmulti = has_flag(link, "ALLMULTI");
  if (auto m = link.find("port_member"); m != link.end() && m->is_object()) {
    if (auto it = m->find("here"); it != m->end() && it->is_boolean()) d->here = it->get<bool>();
    if (auto it = m->find("netns"); it != m->end() && it->is_string())
      d->netns = it->get<std::string>();
    if (auto it = m->find("promisc"); it != m->end() && it->is_boolean())
      d->promisc = it->get<bool>();
    if (auto it = m->find("allmulti"); it != m->end() && it->is_boolean())
      d->allmulti = it->get<bool>();
    if (!read_macs(*m, "multicast", &d->multicast))
      return bad("link " + d->name + " has a bad multicast list");
  }
  return true;
}

}  // namespace

// ---------------------------------------------------------------- public

std::string explain_usage() {
  return "Usage: umacvlan [-j [-p]] explain [--port 'SPEC'] [lower LOWER] FROM [src MAC] to TO\n"
         "       umacvlan explain help\n"
         "FROM := dev NAME | from dev NAME | from outside | from host\n"
         "TO   := MAC | DEVNAME | broadcast | GROUPMAC | outside | host\n"
         "SPEC := DEV [DEV ...]\n"
         "DEV  := NAME:MODE[,nopromisc][,nodst][,down][,mac=MAC][,src=MAC+MAC...]\n"
         "        [,group=MAC+MAC...][,promisc][,allmulti][,spoofchk]\n"
         "MODE := private | vepa | bridge | passthru | source\n"
         "Without --port, the running port of device NAME (or of LOWER) is asked of the daemon;\n"
         "\"from outside\" and \"from host\" then need \"lower LOWER\".\n";
}

ExplainParse parse_explain_command(const std::vector<std::string>& args) {
  ExplainCommand cmd;
  bool have_from = false;
  bool have_to = false;
  bool have_lower = false;
  auto next = [&](std::size_t& i) -> const std::string* {
    return i + 1 < args.size() ? &args[++i] : nullptr;
  };
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& w = args[i];
    if (w == "help") return ExplainHelp{explain_usage()};
    if (w == "--port") {
      const std::string* v = next(i);
      if (v == nullptr) return incomplete();
      if (cmd.port_spec) return duplicate("--port", *v);
      cmd.port_spec = *v;
    } else if (w == "lower") {
      const std::string* v = next(i);
      if (v == nullptr) return incomplete();
      if (have_lower) return duplicate("lower", *v);
      if (v->empty() || v->size() >= 16) return wrong_argument(*v, "not a device name");
      cmd.lower = *v;
      have_lower = true;
    } else if (w == "dev" || w == "from") {
      const std::string* v = next(i);
      if (v == nullptr) return incomplete();
      if (have_from) return duplicate("from", *v);
      have_from = true;
      if (w == "from" && *v == "outside") {
        cmd.from.kind = SenderKind::kOutside;
      } else if (w == "from" && *v == "host") {
        cmd.from.kind = SenderKind::kHost;
      } else if (w == "from" && *v != "dev") {
        return wrong_argument(*v, "FROM := dev NAME | from outside | from host");
      } else {
        const std::string* name = w == "from" ? next(i) : v;
        if (name == nullptr) return incomplete();
        if (name->empty() || name->size() >= 16) return wrong_argument(*name, "not a device name");
        cmd.from.kind = SenderKind::kDevice;
        cmd.from.device = *name;
      }
    } else if (w == "src") {
      const std::string* v = next(i);
      if (v == nullptr) return incomplete();
      if (cmd.from.src) return duplicate("src", *v);
      auto mac = MacAddress::parse(*v);
      if (!mac || !mac->is_valid_unicast())
        return wrong_argument(*v, "a source MAC is a unicast address (xx:xx:xx:xx:xx:xx)");
      cmd.from.src = *mac;
    } else if (w == "to") {
      const std::string* v = next(i);
      if (v == nullptr) return incomplete();
      if (have_to) return duplicate("to", *v);
      have_to = true;
      cmd.to.word = *v;
      if (*v == "broadcast") {
        cmd.to.kind = DestinationKind::kBroadcast;
        cmd.to.mac = MacAddress::broadcast();
      } else if (*v == "outside") {
        cmd.to.kind = DestinationKind::kOutside;
      } else if (*v == "host") {
        cmd.to.kind = DestinationKind::kHost;
      } else if (auto mac = MacAddress::parse(*v)) {
        if (mac->is_zero()) return wrong_argument(*v, "00:00:00:00:00:00 is no destination");
        cmd.to.kind = DestinationKind::kMac;
        cmd.to.mac = *mac;
      } else if (v->find(':') != std::string::npos && v->size() > 15) {
        return wrong_argument(*v, "not a MAC address (xx:xx:xx:xx:xx:xx)");
      } else if (v->empty() || v->size() >= 16) {
        return wrong_argument(*v, "TO := MAC | DEVNAME | broadcast | GROUPMAC | outside | host");
      } else {
        cmd.to.kind = DestinationKind::kName;
      }
    } else {
      return wrong_argument(w,
                            "expected \"dev\", \"from\", \"to\", \"src\", \"lower\" or "
                            "\"--port\"; try \"umacvlan explain help\"");
    }
  }
  if (!have_from || !have_to) return incomplete();
  if (!cmd.port_spec && cmd.from.kind != SenderKind::kDevice && cmd.lower.empty()) {
    return wrong_argument(cmd.from.kind == SenderKind::kHost ? "host" : "outside",
                          "without --port, \"lower LOWER\" names the port to explain");
  }
  return cmd;
}

std::variant<PortModel, ParseError> parse_port_spec(std::string_view spec,
                                                    const std::string& lower_name) {
  PortModel m;
  m.lower.name = lower_name.empty() ? "lower" : lower_name;
  m.lower.mac = MacAddress::from_u64(kDefaultDeviceMac);
  std::size_t n = 0;
  std::size_t i = 0;
  while (i < spec.size()) {
    if (spec[i] == ' ' || spec[i] == '\t') {
      ++i;
      continue;
    }
    std::size_t end = i;
    while (end < spec.size() && spec[end] != ' ' && spec[end] != '\t') ++end;
    const std::string_view word = spec.substr(i, end - i);
    i = end;
    auto d = parse_spec_device(word, ++n);
    if (auto* e = std::get_if<ParseError>(&d)) return *e;
    ModelDevice& dev = std::get<ModelDevice>(d);
    if (find_device(m, dev.name) != nullptr)
      return wrong_argument(word, fmt::format("device \"{}\" is named twice", dev.name));
    // The kernel gives a passthru device the lower's MAC; mac= sets both.
    if (dev.mode == Mode::kPassthru) {
      if (word.find(",mac=") != std::string_view::npos) {
        m.lower.mac = dev.mac;
      } else {
        dev.mac = m.lower.mac;
      }
    }
    m.devices.push_back(std::move(dev));
  }
  if (m.devices.empty()) return wrong_argument(spec, "SPEC names no device: DEV [DEV ...]");
  return m;
}

bool port_from_reply(const control::Reply& reply, PortModel* out, std::string* error) {
  if (!reply.lower) {
    *error = "the daemon's reply names no lower device (is the daemon older than this program?)";
    return false;
  }
  PortModel m;
  m.lower.name = reply.lower->name;
  m.lower.mac = reply.lower->mac;
  m.lower.mtu = reply.lower->mtu;
  m.lower.carrier = reply.lower->carrier;
  m.lower.promisc = reply.lower->promisc;
  m.lower.allmulti = reply.lower->allmulti;
  m.lower.multicast = reply.lower->multicast;
  if (!reply.links.is_array() || reply.links.empty()) {
    *error = "the daemon's reply has no device of the port";
    return false;
  }
  for (const auto& link : reply.links) {
    ModelDevice d;
    if (!device_of_link(link, &d, error)) return false;
    m.devices.push_back(std::move(d));
  }
  *out = std::move(m);
  return true;
}

std::optional<Explanation> explain(const PortModel& model, const Sender& from,
                                   const Destination& to, std::string* error) {
  core::Port port(model.lower);
  std::vector<core::DeviceId> ids;
  if (!port_of_model(model, &port, &ids, error)) return std::nullopt;

  Explanation e;
  const core::Device* sender = nullptr;
  core::DeviceId sender_id = core::kNoDevice;
  switch (from.kind) {
    case SenderKind::kDevice: {
      // The caller's own device of that name first, as `ip` would find it.
      std::size_t md = model.devices.size();
      for (std::size_t i = 0; i < model.devices.size(); ++i) {
        const ModelDevice& d = model.devices[i];
        if (d.name != from.device) continue;
        if (md == model.devices.size() || (!model.devices[md].here && d.here)) md = i;
      }
      sender_id = md < ids.size() ? ids[md] : core::kNoDevice;
      if (sender_id == core::kNoDevice) {
        *error = fmt::format(
            "Error: argument \"{}\" is wrong: no device of that name on the port "
            "of {}.\n",
            from.device, model.lower.name);
        return std::nullopt;
      }
      sender = port.device(sender_id);
      if (!sender->up) {
        *error = fmt::format(
            "Error: argument \"{}\" is wrong: the device is down, and a device "
            "that is down sends nothing.\n",
            from.device);
        return std::nullopt;
      }
      e.from = sender->name;
      e.from_text = "device " + device_label(*sender);
      e.src = from.src.value_or(sender->mac);
      break;
    }
    case SenderKind::kOutside:
      e.from = "outside";
      e.from_text = fmt::format("outside (the wire, into {})", model.lower.name);
      e.src = from.src.value_or(free_mac(model, kOutsideSrc));
      break;
    case SenderKind::kHost:
      e.from = "host";
      e.from_text = fmt::format("host (the own stack of {})", model.lower.name);
      e.src = from.src.value_or(model.lower.mac);
      break;
  }

  const ModelDevice* dst_dev = nullptr;
  switch (to.kind) {
    case DestinationKind::kBroadcast:
      e.dst = MacAddress::broadcast();
      break;
    case DestinationKind::kOutside:
      e.dst = free_mac(model, kOutsideDst);
      break;
    case DestinationKind::kHost:
      e.dst = model.lower.mac;
      break;
    case DestinationKind::kMac:
      e.dst = to.mac;
      break;
    case DestinationKind::kName:
      dst_dev = find_device(model, to.word);
      if (dst_dev == nullptr) {
        *error = fmt::format(
            "Error: argument \"{}\" is wrong: no device of that name on the port "
            "of {}; TO := MAC | DEVNAME | broadcast | GROUPMAC | outside | host.\n",
            to.word, model.lower.name);
        return std::nullopt;
      }
      e.dst = dst_dev->mac;
      break;
  }
  if (dst_dev == nullptr && e.dst.is_unicast()) dst_dev = device_with_mac(model, e.dst);
  std::string note;
  if (e.dst.is_broadcast()) {
    e.dst_is = "broadcast";
    note = "broadcast";
  } else if (e.dst.is_multicast()) {
    e.dst_is = "multicast";
    note = "a multicast group";
  } else if (dst_dev != nullptr) {
    e.dst_is = "device";
    note = dst_dev->name + (dst_dev->up ? "" : ", down");
  } else {
    e.dst_is = "unknown unicast";
    note = e.dst == model.lower.mac
               ? fmt::format("the own MAC of {}, on no device", model.lower.name)
               : "a MAC on no device of the port";
  }
  e.dst_text = fmt::format("{} ({})", e.dst.to_string(), note);

  const auto bytes = frame_bytes(e.dst, e.src);
  switch (from.kind) {
    case SenderKind::kDevice: {
      core::DecisionBatch batch;
      port.transmit(sender_id, bytes, batch);
      const Context c{model, port, ids, SenderKind::kDevice, sender, false, e.src, e.dst};
      e.outcome = outcome_of(c, batch);
      if (batch.back().to_wire)
        e.if_reflected = receive_outcome(model, port, ids, e.src, e.dst, true);
      break;
    }
    case SenderKind::kOutside:
      e.outcome = receive_outcome(model, port, ids, e.src, e.dst, false);
      break;
    case SenderKind::kHost: {
      // The kernel's lower transmits its own frames without passing the port:
      // no core call decides them.
      Outcome o;
      o.deliveries.push_back(Delivery{"wire", "wire", "host",
                                      fmt::format("the own stack of {} sends it out {}; it never "
                                                  "passes the port, so no device sees it",
                                                  model.lower.name, model.lower.name),
                                      false, ""});
      o.no_stack = "it is the sender";
      e.outcome = std::move(o);
      e.if_reflected = receive_outcome(model, port, ids, e.src, e.dst, true);
      break;
    }
  }
  return e;
}

std::string render_text(const Explanation& e) {
  std::string out = fmt::format("frame: from {} to {}\n", e.from_text, e.dst_text);
  out += render_outcome(e.outcome, "  ", true);
  if (e.if_reflected) {
    out += "  if the switch reflects it (hairpin), it comes back from the wire:\n";
    out += render_outcome(*e.if_reflected, "    ", false);
  }
  return out;
}

nlohmann::ordered_json to_json(const Explanation& e) {
  nlohmann::ordered_json j;
  nlohmann::ordered_json frame;
  frame["from"] = e.from;
  frame["src"] = e.src.to_string();
  frame["dst"] = e.dst.to_string();
  frame["dst_is"] = e.dst_is;
  j["frame"] = std::move(frame);
  nlohmann::ordered_json o = outcome_json(e.outcome);
  j["deliveries"] = std::move(o["deliveries"]);
  j["dropped"] = std::move(o["dropped"]);
  if (e.if_reflected) j["if_reflected"] = outcome_json(*e.if_reflected);
  return j;
}

int run_explain(const std::vector<std::string>& args, bool json, bool pretty) {
  auto fail = [](const std::string& message) {
    std::string m = message;
    if (m.empty() || m.back() != '\n') m += '\n';
    std::fwrite(m.data(), 1, m.size(), stderr);
    return kExitSyntax;
  };
  const ExplainParse parsed = parse_explain_command(args);
  if (const auto* e = std::get_if<ParseError>(&parsed)) return fail(e->message);
  if (const auto* h = std::get_if<ExplainHelp>(&parsed)) {
    std::fwrite(h->text.data(), 1, h->text.size(), stdout);
    return 0;
  }
  const auto& cmd = std::get<ExplainCommand>(parsed);

  PortModel model;
  if (cmd.port_spec) {
    auto m = parse_port_spec(*cmd.port_spec, cmd.lower);
    if (const auto* e = std::get_if<ParseError>(&m)) return fail(e->message);
    model = std::move(std::get<PortModel>(m));
  } else {
    control::LinkRequest req;
    req.op = control::LinkOp::kPort;
    if (cmd.from.kind == SenderKind::kDevice) {
      req.name = cmd.from.device;
    } else {
      req.link = cmd.lower;
    }
    control::Reply reply;
    std::string error;
    if (call_daemon(req, &reply, false, &error) < 0) return fail(error);
    if (reply.error != 0) {
      return fail(reply.message.empty()
                      ? fmt::format("Error: the daemon refused: {}.", std::strerror(reply.error))
                      : reply.message);
    }
    if (!port_from_reply(reply, &model, &error)) return fail("Error: " + error + ".");
    if (!cmd.lower.empty() && cmd.lower != model.lower.name) {
      return fail(fmt::format("Error: argument \"{}\" is wrong: device \"{}\" sits on \"{}\".",
                              cmd.lower, cmd.from.device, model.lower.name));
    }
  }
  std::string error;
  const auto e = explain(model, cmd.from, cmd.to, &error);
  if (!e) return fail(error);
  std::string out;
  if (json) {
    out = pretty ? to_pretty_json(to_json(*e)) : to_json(*e).dump() + "\n";
    if (!out.empty() && out.back() != '\n') out += '\n';
  } else {
    out = render_text(*e);
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

}  // namespace umacvlan::cli
