// ConfigFile: the declarative configuration of umacvlan devices
// (/etc/umacvlan/umacvlan.toml), and `umacvlan config {check|apply|dump}`.
//
// Synopsis:
//   umacvlan config check [FILE]     validate FILE, change nothing
//   umacvlan config apply [FILE]     make the running devices match FILE
//   umacvlan config dump             print the running devices as a FILE
//   (FILE: default $UMACVLAN_CONFIG, else /etc/umacvlan/umacvlan.toml;
//    `--socket PATH` may also follow the command)
//
// The file (TOML): one [[device]] table per device, nothing else.
//   [[device]]
//   name = "mv0"          required: the device's name
//   lower = "eth0"        required: its lower, looked up in lower_netns
//   lower_netns = "red"   the lower's namespace: a name under /run/netns or
//                         a path; default: the CLI's own (for the daemon's
//                         reload, the daemon's namespace)
//   netns = "blue"        where the device lives (made beside its lower,
//                         then moved there); default: its lower's
//   mode = "bridge"       private|vepa|bridge|passthru|source; default vepa
//   mac = "02:00:00:00:00:01"   default: one the daemon picks
//   mtu = 1400            default: the lower's
//   up = true             default true
//   bcqueuelen = 1000     default: the daemon's
//   nopromisc = false     passthru only
//   nodst = false         source only
//   spoofchk = false      umacvlan's own
//   source = ["02:..."]   source mode only: the whole source list
//   hostaccess = true     umacvlan's own, of the lower's port: its
//                         LOWER.host reaches the port's bridge devices
//   macnat = true         umacvlan's own, of the lower's port: frames leave
//                         with the lower's MAC (Wi-Fi stations)
//   macnat_ageing = 300   the port's MAC NAT ageing, seconds, 1..86400
// hostaccess, macnat and macnat_ageing are settings of the port: devices of
// one lower that give one agree on it; unset leaves the port as it is.
// A device is known by its name and namespace; two tables for one device
// are an error. Keys not set are not managed: what the running device has
// for them stays (except up, nopromisc, nodst, spoofchk and source, whose
// defaults are managed like any value).
//
// Contract: parse_config() reads the whole text and reports the first
// problem with its line and column (toml++'s source positions) and a
// sentence; it never stops at the first device. plan() compares a parsed
// file with the running devices (as the daemon's `link show -d` JSON) and
// the devices the previous apply made, and returns what to do, device by
// device: nothing for a device that matches, one `link set` request with
// only the differences, an add, or a delete; plan_ports() does the same for
// the ports' settings. dump_config() writes running devices as a file that
// parse_config() accepts. All of these are pure: no I/O, no globals.
// run_config() is the I/O: it reads the file, asks the daemon
// (control_client.h), moves devices between namespaces with `ip`, keeps the
// record of what it made (record_path()) and prints one line per device and
// one per changed port setting ("set LOWER: macnat on"). An invalid file,
// or a namespace that cannot be opened, changes nothing.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "control/control_protocol.h"
#include "core/mac_address.h"
#include "core/mode.h"

namespace umacvlan::cli {

inline constexpr const char* kDefaultConfigPath = "/etc/umacvlan/umacvlan.toml";

struct DeviceSpec {
  std::string name;
  std::string lower;
  std::string lower_netns;  // as written; "" = the CLI's own
  std::string netns;        // as written; "" = with its lower
  core::Mode mode = core::Mode::kVepa;
  std::optional<core::MacAddress> mac;
  std::optional<std::uint32_t> mtu;
  bool up = true;
  std::optional<std::uint32_t> bcqueuelen;
  bool nopromisc = false;
  bool nodst = false;
  bool spoofchk = false;
  // The port of its lower (umacvlan's own, see `link help macvlan`): on or
  // off, the ageing in seconds; unset leaves the port as it is.
  std::optional<bool> hostaccess;
  std::optional<bool> macnat;
  std::optional<std::uint32_t> macnat_ageing;  // seconds
  std::vector<core::MacAddress> sources;
  int line = 0;  // of its [[device]] table
  int column = 0;

  // Where the device lives: netns, else lower_netns; "" = the CLI's own.
  std::string home() const { return netns.empty() ? lower_netns : netns; }
};

struct ConfigFile {
  std::vector<DeviceSpec> devices;
};

struct ConfigError {
  int line = 0;
  int column = 0;
  std::string reason;
};

// $UMACVLAN_CONFIG when set and not empty, else kDefaultConfigPath.
std::string default_config_path();

// The path a namespace reference opens: "" stays "" (our own), a word is
// /run/netns/WORD, anything with a '/' is itself.
std::string netns_path(const std::string& reference);

std::variant<ConfigFile, ConfigError> parse_config(std::string_view text, std::string_view path);
// "FILE:LINE:COLUMN: reason\n"
std::string format_error(std::string_view path, const ConfigError& error);

// A running device as `link show -d` reports it (link_printer.h's JSON).
struct RunningDevice {
  std::string name;
  int ifindex = 0;
  std::string lower;  // "" when the lower is in another namespace (link_index)
  int lower_ifindex = 0;
  std::string lower_netns;  // its name under /run/netns, when ip printed one
  core::Mode mode = core::Mode::kVepa;
  core::MacAddress mac;
  std::uint32_t mtu = 1500;
  bool up = false;
  std::uint32_t bcqueuelen = 0;
  bool nopromisc = false;
  bool nodst = false;
  bool spoofchk = false;
  // Its port's (shown for every device of the port); the ageing only
  // means something while macnat is on.
  bool hostaccess = false;
  bool macnat = false;
  std::uint32_t macnat_ageing = control::kDefaultMacnatAgeing;
  std::vector<core::MacAddress> sources;
};

// nullopt for an object that is not a macvlan link.
std::optional<RunningDevice> running_from_json(const nlohmann::json& link);

// A device the previous apply made: its name and home() as written.
struct Made {
  std::string name;
  std::string netns;
  friend bool operator==(const Made&, const Made&) = default;
  friend auto operator<=>(const Made&, const Made&) = default;
};

struct Action {
  enum class Kind { kUnchanged, kAdd, kSet, kReplace, kDelete };
  Kind kind = Kind::kUnchanged;
  std::string name;
  std::string netns;  // where it lives (home() as written)
  // kAdd/kReplace: the `link add` (sent in the lower's namespace, without
  // `up` when it moves afterwards); kSet: the `link set`; kDelete: the
  // `link del`.
  control::LinkRequest request;
  std::string what;                  // kSet: "mtu 1400, up"; kReplace: why
  const DeviceSpec* spec = nullptr;  // kAdd/kSet/kReplace/kUnchanged
};

// running: each device of the file that exists, by its index in
// file.devices. made: the record of the previous apply. The deletes come
// first (a removed name may be reused), then the devices in file order.
std::vector<Action> plan(const ConfigFile& file,
                         const std::map<std::size_t, RunningDevice>& running,
                         const std::vector<Made>& made);

// The `link add` (up only when up and no move follows) and the `link set`
// that turns `have` into `want` (nullopt when nothing differs; *what lists
// the differences).
control::LinkRequest add_request(const DeviceSpec& want);
std::optional<control::LinkRequest> set_request(const DeviceSpec& want, const RunningDevice& have,
                                                std::string* what);

// A port whose settings in the file (hostaccess, macnat, macnat_ageing)
// differ from what its running devices show. Each request is a `link set`
// on the lower, sent in the lower's namespace once the devices are in place:
// one for hostaccess, one for macnat (it carries macnat, and macnat_ageing
// when the file gives one that differs and macnat stays or turns on).
struct PortAction {
  std::string lower;
  std::string lower_netns;  // as written
  control::LinkRequest request;
  std::vector<std::string> what;  // one line each: "hostaccess on", "macnat_ageing 60"
};
// Ports in (lower's namespace path, lower) order; nothing for a port that
// matches or that the file leaves as it is.
std::vector<PortAction> plan_ports(const ConfigFile& file,
                                   const std::map<std::size_t, RunningDevice>& running);

// The record of an apply, as JSON: {"devices": [{"name", "netns"}, ...]}.
nlohmann::json made_to_json(const std::vector<Made>& made);
std::vector<Made> made_from_json(const nlohmann::json& json);
// Beside the daemon's state file: /var/lib/umacvlan/config.json for the
// default socket, NAME.config.json beside any other NAME.sock.
std::string record_path(const std::string& socket_path);

// A running device with where it lives, for dump_config().
struct DumpedDevice {
  RunningDevice device;
  std::string netns;        // "" = the CLI's own, else a name under /run/netns
  std::string lower;        // resolved name of its lower
  std::string lower_netns;  // "" = with the device
};
std::string dump_config(const std::vector<DumpedDevice>& devices);

// `umacvlan config ...`; args: the words after "config". Exit status: 0,
// 1 for an invalid file (nothing changed) or an unreachable daemon, 2 when
// the daemon refused a change (the others are still made), 255 for a bad
// command.
int run_config(const std::vector<std::string>& args, bool allow_start);

// `umacvlan reload`: SIGHUP to the daemon serving the socket (the peer of a
// connection to it, SO_PEERCRED); the daemon applies its config file (see
// daemon.h) and logs what it did. Prints where to look. 0, or 1 when no
// daemon answers or it cannot be signalled.
int run_reload(const std::vector<std::string>& args);

}  // namespace umacvlan::cli
