// ControlProtocol: the request and reply that cross the control socket
// between the umacvlan CLI and the daemon.
//
// Contract: a LinkRequest is one parsed `link add|set|delete|show` command,
// already validated by the CLI's parser (the daemon validates again against
// its state), or a `port` query (`umacvlan explain`): the whole port of the
// device `name`, or of the lower `link` (exactly one of the two), both named
// in the caller's namespace; or a stream: `capture` of one device (`name`)
// or of a whole port (`link`, the lower), or `monitor`. to_json() writes only the fields that are
// set, with stable key names; from_json() is strict: it refuses unknown keys, unknown ops and
// modes, values of the wrong JSON type or out of range and addresses that are
// not "xx:xx:xx:xx:xx:xx", reporting one sentence in *error and leaving *out
// untouched. A Reply carries a positive errno (0 = success), the sentence to
// show the user and, for show, the links as iproute2-shaped JSON objects
// (the keys of `ip -j -d -s link show`); for port, every device of the port
// wherever it lives (each link with umacvlan's own "port_member" object, see
// Reply) and the lower's state. No I/O: framing lives in
// control_channel.h.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/mac_address.h"
#include "core/mode.h"

namespace umacvlan::control {

enum class LinkOp { kAdd, kSet, kDelete, kShow, kPort, kCapture, kMonitor };

// Streams: after a successful reply to kCapture or kMonitor the daemon keeps
// the connection and sends one JSON object per line until either side
// closes it (see daemon/capture.h and daemon/monitor.h for the lines).
inline bool streaming(LinkOp op) {
  return op == LinkOp::kCapture || op == LinkOp::kMonitor;
}

struct LinkRequest {
  LinkOp op = LinkOp::kShow;
  std::string name;  // add: the new NAME; set/del/show/port: the device (show: empty = all)
  std::string link;  // add: the LOWER device; port: the lower (instead of name)
  std::optional<core::MacAddress> address;
  std::optional<std::uint32_t> mtu;
  std::optional<bool> up;     // true = up, false = down, nullopt = unchanged
  bool type_macvlan = false;  // "type macvlan" was given
  std::optional<core::Mode> mode;
  // Only when nopromisc/nodst/"flag X" was given; the kernel's
  // IFLA_MACVLAN_FLAGS value (core::kFlagNoPromisc | core::kFlagNoDst).
  std::optional<std::uint16_t> flags;
  std::optional<std::uint32_t> bcqueuelen;
  std::optional<std::int32_t> bclim;
  // umacvlan's own: drop frames a device sends with a source MAC not its own.
  std::optional<bool> spoofchk;
  // umacvlan's own, for the whole port: the lower's stack reaches the
  // port's bridge devices (set on a device or on the lower itself).
  std::optional<bool> hostaccess;
  // umacvlan's own, for the whole port: frames leave the lower with its MAC
  // as their source (Wi-Fi stations), and those arriving for it go to the
  // device owning their destination IP, learned with this ageing (seconds,
  // kMinMacnatAgeing..kMaxMacnatAgeing).
  std::optional<bool> macnat;
  std::optional<std::uint32_t> macnat_ageing;
  core::SourceOp macaddr_mode = core::SourceOp::kNone;
  std::vector<core::MacAddress> macaddrs;  // add/del: exactly one; set: any; flush: none

  friend bool operator==(const LinkRequest&, const LinkRequest&) = default;
};

// The lower of a port as the port sees it (core::LowerState, less what the
// daemon cannot know). JSON: {"ifname", "address", "mtu", "carrier",
// "promisc", "allmulti", "multicast": [MAC...]}, every key required.
struct PortLower {
  std::string name;
  core::MacAddress mac;
  std::uint32_t mtu = 1500;
  bool carrier = true;
  bool promisc = false;   // the lower's own, set by others
  bool allmulti = false;  // the lower's own, set by others
  std::vector<core::MacAddress> multicast;

  friend bool operator==(const PortLower&, const PortLower&) = default;
};

struct Reply {
  int error = 0;        // positive errno, 0 = success
  std::string message;  // a sentence for the user; may be empty
  // show: iproute2-shaped link objects. port: the same for every device of
  // the port, each with a "port_member" object of umacvlan's own:
  // {"here": the device is in the caller's namespace, "netns": its name
  // under /run/netns when it has one, "multicast": [its link-layer groups],
  // "promisc", "allmulti": as the port decides on them}.
  nlohmann::json links = nlohmann::json::array();
  std::optional<PortLower> lower;  // port only
};

inline constexpr std::uint32_t kDefaultMacnatAgeing = 300;
inline constexpr std::uint32_t kMinMacnatAgeing = 1;
inline constexpr std::uint32_t kMaxMacnatAgeing = 86400;

// The device a port with hostaccess on has in its lower's namespace:
// LOWER.host, the lower's name cut so that the whole fits 15 characters.
std::string host_device_name(const std::string& lower);

std::string_view to_string(LinkOp op);
std::optional<LinkOp> parse_link_op(std::string_view text);
std::string_view to_string(core::SourceOp mode);
std::optional<core::SourceOp> parse_macaddr_mode(std::string_view text);

nlohmann::json to_json(const LinkRequest& request);
bool from_json(const nlohmann::json& json, LinkRequest* out, std::string* error);

nlohmann::json to_json(const Reply& reply);
bool from_json(const nlohmann::json& json, Reply* out, std::string* error);

}  // namespace umacvlan::control
