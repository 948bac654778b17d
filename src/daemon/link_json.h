// link_json(): one macvlan device as iproute2 prints it with `ip -j -d -s
// link show`: the kernel's view of the TAP (index, flags, MTU, qdisc) merged
// with the port's view (mode, flags, queue, source list, spoofchk) and the
// dataplane's counters.
//
// Contract: pure formatting, no I/O; the keys are iproute2's, so the CLI's
// one printer serves text and JSON. lower_name is empty when the lower lives
// in another namespace (then "link_index" carries its index, as ip prints
// "NAME@ifN").
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "core/port.h"
#include "io/netlink.h"

namespace umacvlan::daemon {

// When the lower lives elsewhere, link_netnsid is the id the caller's
// namespace has for the lower's (ip's "link_netnsid") and link_netns its name
// under /run/netns if it has one (ip's text "link-netns NAME"; not a key of
// ip's JSON: the printer shows it in text only).
nlohmann::json link_json(const io::LinkInfo& kernel, const std::string& lower_name,
                         int lower_ifindex, const core::Device& dev, const core::Port& port,
                         const core::DeviceCounters& counters, int32_t link_netnsid = -1,
                         const std::string& link_netns = {});

// Any other Ethernet link (a lower) as `ip -j -d link show` prints its
// common part: flags, state and addresses from the kernel's view alone.
nlohmann::json plain_link_json(const io::LinkInfo& kernel);

}  // namespace umacvlan::daemon
