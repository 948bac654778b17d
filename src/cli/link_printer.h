// LinkPrinter: `ip link show` output for the links a daemon reply carries,
// as text or JSON from the same print calls (iproute2's print_* style).
//
// Input: an array of link objects with the keys of `ip -j -d -s link show`
// (ifindex, link or link_index, ifname, flags, mtu, qdisc, operstate,
// linkmode, group, txqlen, link_type, address, broadcast, link_netnsid,
// promiscuity, allmulti, min_mtu, max_mtu, linkinfo{info_kind, info_data{
// mode, nopromisc, nodst, spoofchk, hostaccess, macnat, macnat_ageing,
// bcqueuelen, usedbcqueuelen, bclim, macaddr_count, macaddr_data}},
// stats64{rx{...}, tx{...}}). The row of a port's lower has no link and no
// linkinfo but umacvlan's own umacvlan_port{hostaccess, macnat,
// macnat_ageing, macnat_max, macnat_table[{address, dev, netns, lladdr,
// learned, age}]}, printed after the detail line as "umacvlan port ..." and
// one "macnat ADDRESS dev DEV ..." line per entry.
//
// Contract: only what is present and asked for is printed: linkinfo,
// umacvlan_port, promiscuity, allmulti, min_mtu and max_mtu need
// `details`; stats64 needs `stats` (level 1: ip's six counters each way;
// level 2 adds the error breakdown). Text reproduces ip's layout (including its column widths and
// trailing blanks); JSON has ip's key order, compact as `ip -j` or indented
// as `ip -j -p`, ending in a newline. Keys the printer does not know are
// dropped. Returns the text; never writes anywhere, never throws on odd
// input (elements that are not objects are skipped, values of a wrong type
// are printed as they come).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace umacvlan::cli {

struct PrintOptions {
  bool details = false;  // -d
  int stats = 0;         // -s, once per -s
  bool json = false;     // -j
  bool pretty = false;   // -p (JSON only)
};

std::string print_links(const nlohmann::json& links, const PrintOptions& options);

// iproute2's `-j -p` layout: four spaces per level, arrays of scalars on one
// line ("[ "a","b" ]"), "},{" between objects of an array.
std::string to_pretty_json(const nlohmann::ordered_json& value);

}  // namespace umacvlan::cli
