#include "cli/help_topics.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

namespace umacvlan::cli {
namespace {

struct Topic {
  std::string_view name;
  std::string_view man_section;  // the help2man section the topic goes to
  std::string_view summary;
  std::string_view text;
};

constexpr Topic kTopics[] = {
    {"modes", "MODES", "the five modes in one table",
     R"(A macvlan port sorts frames between the devices of one lower by MAC. What a
device may reach depends on its mode:

  mode      a sibling on the same lower        outside hosts  floods
  private   no: its broadcasts (ARP) blocked   yes            yes
  vepa      only if the switch hairpins        yes            yes
  bridge    yes, inside the port               yes            yes
  passthru  none: the only device, owns lower  yes            yes
  source    via a hairpin; by sender MAC       yes            no

The lower's own network stack never reaches its devices directly, in any
mode: its frames go out the wire and come back only if the switch reflects
them. "umacvlan help MODE" tells more about each; "umacvlan explain" shows
where one frame goes and why; "umacvlan lab" runs all of it.
)"},
    {"private", "MODES", "devices that never talk to each other",
     R"(private: a device talks to outside hosts only. Unicast to a sibling goes out
the wire; if the switch reflects it back (hairpin), the port still delivers
it, because the destination is the sibling's MAC. What private really blocks
is broadcast and multicast from a sibling: the port recognises its own
devices' frames coming back and returns them to the sender only. So ARP
between siblings fails, and with it ordinary IP, while a reflected unicast
with a static neighbour entry gets through.
)"},
    {"vepa", "MODES", "every frame goes to the switch (the default mode)",
     R"(vepa (Virtual Ethernet Port Aggregator; the kernel's default when no mode is
given): every frame a device sends goes out the wire, even for a sibling.
Siblings reach each other only when the adjacent switch sends frames back
out the port they came in (802.1Qbg reflective relay, "hairpin" on a Linux
bridge). Broadcasts from a vepa device reach its vepa and bridge siblings.
)"},
    {"bridge", "MODES", "siblings talk directly, inside the port",
     R"(bridge: a frame for a sibling in bridge mode is delivered inside the port,
without touching the wire; everything else goes out. Broadcasts reach the
other bridge devices at once and the vepa devices too. This is what most
users want, and what the CNI plugin defaults to.
)"},
    {"passthru", "MODES", "one device takes over the lower",
     R"(passthru: a single device owns the whole lower: it takes the lower's MAC
(setting its MAC sets the lower's), gets every frame, and the lower is put
in promiscuous mode unless "nopromisc" is given. No other device may be
added to the port while it exists, and the mode cannot be changed to or
from passthru.
)"},
    {"source", "MODES", "devices that receive by sender MAC",
     R"(source: a device receives the frames whose SOURCE MAC is on its list
("macaddr add|del|set|flush"), as copies, in addition to the normal
delivery. It takes nothing by destination: unicast for its own MAC goes to
the lower's own stack, as with the kernel, and it never gets floods. It
sends everything out the wire. With "nodst" a frame whose sender is on a
nodst device's list is delivered to the source devices only: not to the
destination device, not to the lower's own stack.
)"},
    {"explain", "EXPLAIN", "where one frame goes, and why",
     R"(umacvlan [-j] explain [--port 'SPEC'] FROM to TO
  FROM := dev NAME | from outside | from host    TO := MAC | DEVICE | broadcast
                                                       | GROUP | outside
Prints where a frame goes (devices, the lower's stack, the wire, or dropped)
and the rule that decided each part, from the forwarding core's own
decision: against the running port of the device (or "lower LOWER" for a
frame from outside), or a port described on the command line, e.g.
  umacvlan explain --port 'mva:bridge mvb:private' dev mva to mvb
)"},
    {"lab", "LAB", "a lab of namespaces that shows every mode live",
     R"(umacvlan [-j] lab [--mode MODE]... [--with-kernel] [--keep | --down]
                   [--no-drawbacks] [--svg FILE]
Builds a lab of network namespaces (a lower on a veth, a switch that can
hairpin, an outside host, devices in their own namespaces; nothing outside
is touched), sends probes and shows the path each frame took and a
reachability table, with the kernel's macvlan beside it with --with-kernel,
then the well-known drawbacks and their workarounds. --keep leaves the lab
running and says how to enter it; "umacvlan lab --down" removes it.
)"},
    {"cni", "CNI PLUGIN", "the CNI plugin for container runtimes",
     R"(/usr/lib/cni/umacvlan is a CNI plugin that takes the reference macvlan
plugin's configuration with "type": "umacvlan": master, mode, mtu, mac,
linkInContainer, bcqueuelen, ipam, the mac capability and MAC= in CNI_ARGS.
It makes its devices through the daemon, keeps a container's MAC the same
across DEL and ADD ("stableMac", on by default), and its DEL succeeds when
the namespace, the device or the master is already gone.
)"},
    {"daemon", "DAEMON", "the daemon that runs the data path",
     R"(umacvlan-daemon serves every device (a TAP device) and the lowers (AF_PACKET).
The CLI and the CNI plugin start it on demand; "umacvlan daemon" runs it in
the foreground (for systemd). Devices outlive it: every change is written
to /var/lib/umacvlan/state.json (a link add to its journal, state.json.adds,
folded in at the next tick) before it is acknowledged, and a new daemon
re-adopts them. "umacvlan daemon --cleanup" removes them all.
)"},
    {"config", "CONFIG FILE", "declare devices in a file: config check, apply, dump",
     R"(umacvlan config {check|apply} [FILE], umacvlan config dump, umacvlan reload
FILE (TOML; default $UMACVLAN_CONFIG, else /etc/umacvlan/umacvlan.toml) holds
one [[device]] table per device: name, lower (required), lower_netns, netns
(a name under /run/netns or a path; default: the CLI's own, and the lower's),
mode, mac, mtu, up (default true), bcqueuelen, nopromisc, nodst, spoofchk,
hostaccess (its lower's port; see "link help macvlan"), macnat (its lower's
port: frames leave the lower with the lower's MAC, for Wi-Fi lowers; see
"link help macvlan"), macnat_ageing (seconds, 1-86400), source (a list of
MACs). "check" reports the first mistake as FILE:LINE:COL.
"apply" changes only what differs: one "link set" per changed device, an add
(then a move to netns) per missing one, a delete for a device an earlier
apply made that the file no longer names; an invalid file changes nothing.
"dump" prints the running devices as a file. The daemon applies its file
(--config) when it starts and on SIGHUP; "umacvlan reload" sends that.
)"},
    {"capture", "CAPTURE", "frames of a device or a port, and what the port decided",
     R"(umacvlan capture { dev NAME | port LOWER } [-w FILE] [-c COUNT] [FILTER]
"dev NAME" shows what the device sent (out) and what the port gave it (in);
"port LOWER" every frame the port handled, from the lower or a device. Each
text line ends with the port's decision: the devices that got a copy and why
(unicast, flood, source list, reflected), "stack" (the lower's own), "wire",
or why it was dropped. -w FILE writes a pcap file for tcpdump or Wireshark
("-": standard output); FILTER is a pcap-filter(7) expression. Frames are
cut at 2048 bytes (the file keeps their length). Copies go through a bounded
queue: a capture never slows the data path, and what it could not keep is
counted in the summary ("dropped by umacvlan"). No capture, no cost.
)"},
    {"monitor", "MONITOR", "events as they happen, like ip monitor",
     R"(umacvlan [-j] monitor [all | link | port | refused | drops]... [-c COUNT]
One line per event: a device added, changed (name, address, mtu, mode, up),
moved to another namespace or removed, whoever did it (umacvlan, ip, a
namespace that died); a lower's carrier and changes; a request the daemon
refused, with its reason; and, once a second while they occur, the frames
each port dropped, by reason. -j prints each event as one JSON object.
)"},
};

const Topic* find(std::string_view name) {
  for (const Topic& t : kTopics) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

}  // namespace

std::vector<std::string_view> topic_names() {
  std::vector<std::string_view> names;
  for (const Topic& t : kTopics) names.push_back(t.name);
  return names;
}

std::optional<std::string> topic_text(std::string_view topic) {
  const Topic* t = find(topic);
  if (t == nullptr) return std::nullopt;
  return std::string(t->text);
}

std::string topics_summary() {
  std::string out = "Topics (umacvlan help TOPIC):\n";
  for (const Topic& t : kTopics) out += fmt::format("  {:<10}{}\n", t.name, t.summary);
  return out;
}

std::string topics_for_man() {
  std::string out;
  std::string_view section;
  for (const Topic& t : kTopics) {
    if (t.man_section != section) {
      section = t.man_section;
      out += fmt::format("[{}]\n", section);
    }
    if (section == "MODES") out += fmt::format(".SS {}\n", t.name);
    // Preformatted, so tables and grammar keep their columns.
    out += ".nf\n";
    for (std::size_t i = 0; i < t.text.size();) {
      const std::size_t end = std::min(t.text.find('\n', i), t.text.size());
      std::string line;
      for (const char c : t.text.substr(i, end - i))
        line += c == '\\' ? std::string("\\e") : std::string(1, c);
      // A leading dot or quote would be a roff request.
      if (!line.empty() && (line[0] == '.' || line[0] == '\'')) line.insert(0, "\\&");
      out += line + "\n";
      i = end + 1;
    }
    out += ".fi\n";
  }
  return out;
}

}  // namespace umacvlan::cli
