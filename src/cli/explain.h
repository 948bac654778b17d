// Explain: `umacvlan explain`, where one frame goes on a macvlan port and
// which rule decided each part, in words.
//
// Synopsis (the words after "explain"; see explain_usage()):
//   explain [--port 'SPEC'] [lower LOWER] FROM [src MAC] to TO
//     FROM := dev NAME | from dev NAME | from outside | from host
//     TO   := MAC | DEVNAME | broadcast | GROUPMAC | outside | host
//     SPEC := DEV [DEV ...]
//     DEV  := NAME:MODE[,nopromisc][,nodst][,down][,mac=MAC][,src=MAC+MAC...]
//             [,group=MAC+MAC...][,promisc][,allmulti][,spoofchk]
//
// Contract
// - The decision is the core's: explain() builds a core::Port from a
//   PortModel with the port's own control calls (add_device, change_device)
//   and asks Port::receive() ("from outside") or Port::transmit() ("dev
//   NAME") what becomes of one frame. This file only puts the Verdict, its
//   Targets (core::Reason) and its DropReason into words; it never decides
//   who gets a frame itself. "from host" has no call in the core, because
//   the kernel's lower sends its own frames without passing the port: the
//   frame goes to the wire only, and what a reflecting switch would bring
//   back is asked of Port::receive(). Every frame that goes out the wire
//   gets that "if the switch reflects it" answer too.
// - With --port the model comes from SPEC: devices up unless `down`, MACs
//   02:00:00:00:00:0N in order (N from 1; a passthru device has the
//   lower's), the lower "lower" (or LOWER) with 02:00:00:00:00:00, no
//   unicast filter (as a veth), no groups joined unless `group=`. Without
//   it, run_explain() asks the daemon for the running port
//   (control::LinkOp::kPort) and reads the model from its reply.
// - A frame from outside has the source 02:00:00:00:ff:02, "outside" as a
//   destination is 02:00:00:00:ff:01 (the next free ones when a device
//   has them); `src MAC` sets the source.
// - Parsing, modelling and rendering are pure: no I/O, no globals. Errors
//   are ip-shaped sentences ("Error: argument "x" is wrong: ...") ending in
//   '\n'. run_explain() is the only part that talks to the daemon and
//   writes to stdout/stderr; it returns the exit code (0, or 1 with nothing
//   on stdout).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "cli/link_parser.h"
#include "control/control_protocol.h"
#include "core/mac_address.h"
#include "core/mode.h"
#include "core/port.h"

namespace umacvlan::cli {

// One device of the port to explain, as its `link add`/`link set` left it.
struct ModelDevice {
  std::string name;
  core::Mode mode = core::Mode::kVepa;
  std::uint16_t flags = 0;  // core::kFlagNoPromisc, core::kFlagNoDst
  core::MacAddress mac;
  bool up = true;
  bool promisc = false;
  bool allmulti = false;
  bool spoofchk = false;
  std::vector<core::MacAddress> sources;    // source mode
  std::vector<core::MacAddress> multicast;  // groups joined
  std::optional<std::uint32_t> bcqueuelen;
  std::optional<std::int32_t> bclim;
  bool here = true;   // in the caller's namespace (what `dev NAME` names)
  std::string netns;  // its namespace's name, when elsewhere and it has one
};

struct PortModel {
  core::LowerState lower;
  std::vector<ModelDevice> devices;
};

enum class SenderKind { kDevice, kOutside, kHost };
struct Sender {
  SenderKind kind = SenderKind::kOutside;
  std::string device;                   // kDevice
  std::optional<core::MacAddress> src;  // `src MAC`
};

enum class DestinationKind { kMac, kName, kBroadcast, kOutside, kHost };
struct Destination {
  DestinationKind kind = DestinationKind::kBroadcast;
  std::string word;      // as typed
  core::MacAddress mac;  // kMac
};

struct ExplainCommand {
  Sender from;
  Destination to;
  std::optional<std::string> port_spec;  // --port
  std::string lower;                     // `lower LOWER`
};

struct ExplainHelp {
  std::string text;
};

using ExplainParse = std::variant<ExplainCommand, ExplainHelp, ParseError>;

// args: the words after "explain".
ExplainParse parse_explain_command(const std::vector<std::string>& args);
std::string explain_usage();

// SPEC of --port; lower_name names the lower ("lower" when empty).
std::variant<PortModel, ParseError> parse_port_spec(std::string_view spec,
                                                    const std::string& lower_name = {});

// The model of a daemon's reply to a kPort request. false with a sentence
// in *error when the reply does not describe a port.
bool port_from_reply(const control::Reply& reply, PortModel* out, std::string* error);

// One place the frame reaches. kind: "device", "wire" or "stack"; to: the
// device's name, "wire" or "stack". reason: a core::Reason for devices
// ("unicast", "source_copy", "reflect", "flood"), otherwise a word for the
// rule ("bridge_multicast", "not_a_bridge_sibling", "sent_out", "host",
// "no_device_mac", "source_mode_mac", "multicast").
struct Delivery {
  std::string to;
  std::string kind;
  std::string reason;
  std::string text;
  bool queued = false;  // a flood copy through the broadcast queue
  std::string netns;    // a device elsewhere, when its namespace has a name
};

struct Dropped {
  std::string reason;  // core::to_string(DropReason)
  std::string text;
};

// What one core decision says.
struct Outcome {
  std::vector<Delivery> deliveries;  // devices in the core's order, then wire, stack
  std::string no_wire;               // why not, when the wire does not get it
  std::string no_stack;              // why not, when the lower's stack does not get it
  std::string no_device = "none";    // the devices line when no device gets it
  std::optional<Dropped> dropped;
};

struct Explanation {
  std::string from;       // the device's name, "outside" or "host"
  std::string from_text;  // "device mva (bridge)", "outside (the wire on eth0)", ...
  core::MacAddress src;
  core::MacAddress dst;
  std::string dst_is;    // "device", "broadcast", "multicast" or "unknown unicast"
  std::string dst_text;  // "02:00:00:00:00:02 (mvb)"
  Outcome outcome;
  // When the frame goes out the wire: what Port::receive() makes of it if
  // the switch sends it back (hairpin / reflective relay).
  std::optional<Outcome> if_reflected;
};

// nullopt with an ip-shaped message in *error when the model is not a port
// the core accepts, or FROM/TO name no device of it.
std::optional<Explanation> explain(const PortModel& model, const Sender& from,
                                   const Destination& to, std::string* error);

// Text: "frame: ..." then one line per destination; JSON: see to_json().
std::string render_text(const Explanation& e);
// {"frame":{"from","src","dst","dst_is"[,"dst_dev"]}, "deliveries":[{"to",
// "kind","reason","text"[,"queued"][,"netns"]}], "dropped": null | {"reason",
// "text"}[, "if_reflected": {"deliveries", "dropped"}]}
nlohmann::ordered_json to_json(const Explanation& e);

// `umacvlan [-j [-p]] explain ...`: prints and returns the exit code.
int run_explain(const std::vector<std::string>& args, bool json, bool pretty);

}  // namespace umacvlan::cli
