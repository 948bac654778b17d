// Lab: `umacvlan lab` — teach macvlan by running it.
//
//   umacvlan [ -j [ -p ] ] lab [ --mode MODE ]... [ --with-kernel ] [ --no-drawbacks ]
//                              [ --keep ] [ --svg FILE ]
//   umacvlan lab --down
//   MODE := { private | vepa | bridge | passthru | source }
//
// Builds a lab of network namespaces named umvlab-<id>-*: "host" holds the
// lower (lower0, a veth) and the lab's own umacvlan daemon, "switch" a Linux
// bridge (br0; its port swp0 faces lower0 and can hairpin), "outside" a host
// on the bridge, and one namespace per device. For each mode, without and
// with hairpin, it sends probe frames (device -> sibling, device -> outside,
// outside -> device, a broadcast from a device and from outside, the lower's
// own stack -> its device) and records who received each one, from packet
// sockets in every namespace and the switch marking what it sends toward
// lower0; pings give reachability. The paths printed are derived from those
// observations, never from a table of expectations. --with-kernel runs the
// same probes against the kernel's macvlan in the same lab. A "drawbacks"
// section shows the usual limits of macvlan live, each with its workaround.
//
// Contract: needs root. Touches nothing outside its namespaces (and its run
// directory, kLabRunDir/<id>); removes everything at the end, on failure and
// on SIGINT/SIGTERM, unless --keep (then kLabRunDir/current names the lab for
// `lab --down`). Child processes are run with argument vectors, never
// through a shell. Exit status: 0 when everything ran (kernel and umacvlan
// may differ: that is shown, not an error), 1 for a usage error (iproute2's
// `Error: argument "X" is wrong: ...`), 2 when the lab could not be built.
//
// The pure parts (option parsing, paths from observations, the text, SVG and
// JSON renderings) are declared here for the tests; they do no I/O.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace umacvlan::cli {

inline constexpr int kLabExitOk = 0;
inline constexpr int kLabExitUsage = 1;
inline constexpr int kLabExitBuild = 2;
inline constexpr const char* kLabRunDir = "/run/umacvlan-lab";

// The words after "lab"; json and pretty are the global -j and -p.
int run_lab(const std::vector<std::string>& args, bool json, bool pretty);

// ------------------------------------------------------------------ options

struct LabOptions {
  std::vector<std::string> modes;  // in the order given, no duplicates; default all five
  bool keep = false;
  bool down = false;
  bool with_kernel = false;
  bool drawbacks = true;
  std::optional<std::string> svg_file;
  bool help = false;
};

struct LabUsageError {
  std::string message;  // complete stderr text, ending in '\n'
};

std::variant<LabOptions, LabUsageError> parse_lab_options(const std::vector<std::string>& args);
std::string lab_usage();

// ------------------------------------------------------------- observations

// One device of the lab (ours or the kernel's: both get the same name, MAC
// and address, one after the other).
struct LabDevice {
  std::string name;  // "mva"
  std::string mode;  // "bridge", ...
  std::string mac;
  std::string ip;                        // without prefix length
  std::vector<std::string> source_macs;  // mode source: its list
};

// Who got one copy of a probe frame. who: a device's name, "outside", or
// "stack" (the lower's own stack). via_switch: the copy carries the switch's
// mark (it came back in through lower0) rather than straight from the port.
struct Reception {
  std::string who;
  bool via_switch = false;
  int copies = 1;
};

// What really happened to one probe frame with one implementation.
struct Observation {
  bool ran = false;
  std::vector<Reception> receptions;
  bool wire = false;     // the switch got it from lower0
  bool hairpin = false;  // the switch sent it back toward lower0
  std::optional<bool> reachable;
  std::string note;  // why it did not run, if it did not
};

struct ProbeResult {
  std::string probe;  // "dev>sibling", "dev>outside", "outside>dev", "dev>bcast", ...
  std::string title;  // "device → sibling"
  std::string from;   // "mva", "outside", "lower0"
  std::string to;     // "mvb", "outside", "broadcast"
  std::string dst_mac;
  Observation umacvlan;
  std::optional<Observation> kernel;
  // Set when umacvlan and the kernel differ in a way umacvlan means to (see
  // classify_difference()); empty otherwise.
  std::string known_difference;
};

struct HairpinRun {
  bool hairpin = false;
  std::vector<ProbeResult> probes;
};

struct ModeResult {
  std::string mode;
  std::vector<LabDevice> devices;
  std::vector<HairpinRun> runs;
  std::string error;  // set when the mode could not be set up
};

struct DrawbackResult {
  std::string id;                  // "a" .. "e"
  std::string title;               // one line
  std::vector<std::string> lines;  // what was run and what it showed
};

struct LabReport {
  std::string id;
  bool with_kernel = false;
  std::vector<ModeResult> modes;
  std::vector<DrawbackResult> drawbacks;
  double seconds = 0;
};

// The names in received_by: devices (in order of first reception), then
// "outside", "wire", "stack".
std::vector<std::string> received_by(const Observation& o);

// The path lines of one probe, from the observation alone, e.g.
//   "mva ─▶ port ─▶ mvb"
//   "mva ─▶ lower0 ─▶ switch ─▶ (hairpin) ─▶ lower0 ─▶ mvb"
//   "mva ─▶ lower0 ─▶ switch ─▶ outside"
//   "✗ dropped"
std::vector<std::string> probe_paths(const ProbeResult& probe, const Observation& o);

// Whether two observations say the same (receivers, copies, the way they
// came, the wire, reachability).
bool same_observation(const Observation& a, const Observation& b);

// When umacvlan and the kernel differ only where umacvlan follows a newer
// kernel on purpose (README, "Where umacvlan follows a newer kernel": a
// bridge-mode device gets its own broadcast back from a hairpin switch;
// 6.18 drops it), a sentence saying so; else empty. devices: the mode's.
std::string classify_difference(const ProbeResult& probe, const std::vector<LabDevice>& devices);

// The box-drawing picture of one mode's topology.
std::string render_topology(const ModeResult& mode);

// One mode as text: picture, per hairpin setting the probes with their paths
// and the reachability table (both columns with --with-kernel, "!" where
// they differ).
std::string render_mode_text(const ModeResult& mode, bool with_kernel);
std::string render_header(const LabReport& report);
std::string render_drawback(const DrawbackResult& d);
std::string render_summary(const LabReport& report);  // differences, time
// All of it: header, modes, drawbacks, summary (run_lab prints the same
// pieces as they become ready).
std::string render_text(const LabReport& report);

nlohmann::ordered_json report_json(const LabReport& report);

// An SVG document of the same pictures and paths.
std::string render_svg(const LabReport& report);

}  // namespace umacvlan::cli
