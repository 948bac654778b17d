#include "daemon/link_json.h"

#include <linux/if.h>

#include <algorithm>
#include <vector>

namespace umacvlan::daemon {
namespace {

// The kernel lists a source device's addresses by walking its 256-bucket
// hash table: bucket by bucket, where an address's bucket is the top 8 bits
// of (its six bytes read little-endian, shifted up 16) times the 64-bit
// golden ratio. ip prints them in that order, and so do we. (Within one
// bucket the kernel lists the newest first; umacvlan does not keep the
// order of addition and lists those by address.)
std::vector<core::MacAddress> in_kernel_dump_order(std::vector<core::MacAddress> macs) {
  auto bucket = [](const core::MacAddress& m) {
    std::uint64_t v = 0;
    for (int i = 5; i >= 0; --i) v = (v << 8) | m.octets()[static_cast<std::size_t>(i)];
    return static_cast<unsigned>(((v << 16) * 0x61C8864680B583EBULL) >> 56);
  };
  std::stable_sort(macs.begin(), macs.end(), [&](const auto& a, const auto& b) {
    const unsigned ba = bucket(a), bb = bucket(b);
    return ba != bb ? ba < bb : b < a;
  });
  return macs;
}

// The order and names iproute2 prints interface flags in.
struct FlagName {
  unsigned bit;
  const char* name;
};
constexpr FlagName kFlags[] = {
    {IFF_LOOPBACK, "LOOPBACK"},   {IFF_BROADCAST, "BROADCAST"},   {IFF_POINTOPOINT, "POINTOPOINT"},
    {IFF_MULTICAST, "MULTICAST"}, {IFF_NOARP, "NOARP"},           {IFF_ALLMULTI, "ALLMULTI"},
    {IFF_PROMISC, "PROMISC"},     {IFF_MASTER, "MASTER"},         {IFF_SLAVE, "SLAVE"},
    {IFF_DEBUG, "DEBUG"},         {IFF_DYNAMIC, "DYNAMIC"},       {IFF_AUTOMEDIA, "AUTOMEDIA"},
    {IFF_PORTSEL, "PORTSEL"},     {IFF_NOTRAILERS, "NOTRAILERS"}, {IFF_UP, "UP"},
    {IFF_LOWER_UP, "LOWER_UP"},   {IFF_DORMANT, "DORMANT"},       {IFF_ECHO, "ECHO"},
};

// flags' names in ip's order, after NO-CARRIER when up without carrier.
nlohmann::json flag_names(unsigned flags, bool no_carrier) {
  nlohmann::json fl = nlohmann::json::array();
  if (no_carrier) fl.push_back("NO-CARRIER");
  for (const auto& f : kFlags) {
    if (flags & f.bit) fl.push_back(f.name);
  }
  return fl;
}

}  // namespace

nlohmann::json link_json(const io::LinkInfo& k, const std::string& lower_name, int lower_ifindex,
                         const core::Device& dev, const core::Port& port,
                         const core::DeviceCounters& c, int32_t link_netnsid,
                         const std::string& link_netns) {
  using nlohmann::json;
  // Flags and state as a macvlan shows them: up/down from the device, carrier
  // from the lower.
  unsigned flags = k.flags & ~(IFF_LOWER_UP | IFF_UP | IFF_RUNNING);
  if (dev.up) flags |= IFF_UP;
  const bool carrier = port.lower().carrier;
  if (dev.up && carrier) flags |= IFF_LOWER_UP;
  json fl = flag_names(flags, dev.up && !carrier);
  if (!carrier) fl.push_back("M-DOWN");

  json j;
  j["ifindex"] = k.ifindex;
  if (!lower_name.empty()) {
    j["link"] = lower_name;
  } else {
    j["link_index"] = lower_ifindex;
  }
  j["ifname"] = k.name;
  j["flags"] = fl;
  j["mtu"] = dev.mtu;
  j["qdisc"] = k.qdisc.empty() ? "noqueue" : k.qdisc;
  j["operstate"] = !dev.up ? "DOWN" : (carrier ? "UP" : "LOWERLAYERDOWN");
  j["linkmode"] = "DEFAULT";
  j["group"] = "default";
  j["txqlen"] = k.txqlen;
  j["link_type"] = "ether";
  j["address"] = dev.mac.to_string();
  j["broadcast"] = "ff:ff:ff:ff:ff:ff";
  if (lower_name.empty() && link_netnsid >= 0) {
    j["link_netnsid"] = link_netnsid;
    if (!link_netns.empty()) j["link_netns"] = link_netns;
  }
  j["promiscuity"] = k.promiscuity;
  j["allmulti"] = k.allmulti;
  j["min_mtu"] = core::kMinMtu;
  j["max_mtu"] = k.max_mtu ? k.max_mtu : 65535u;

  json data;
  data["mode"] = std::string(core::to_string(dev.mode));
  if (dev.nopromisc()) data["nopromisc"] = true;
  if (dev.nodst()) data["nodst"] = true;
  // umacvlan's own (the kernel's macvlan has none): shown only when on.
  if (dev.spoofchk) data["spoofchk"] = true;
  data["bcqueuelen"] = dev.bcqueuelen;
  data["usedbcqueuelen"] = port.used_bcqueuelen();
  data["bclim"] = port.bclim();
  if (dev.mode == core::Mode::kSource) {
    data["macaddr_count"] = dev.sources.size();
    json list = json::array();
    for (const auto& m : in_kernel_dump_order(dev.sources)) list.push_back(m.to_string());
    if (!dev.sources.empty()) data["macaddr_data"] = list;
  }
  j["linkinfo"] = {{"info_kind", "macvlan"}, {"info_data", data}};

  j["stats64"] = {
      {"rx",
       {{"bytes", c.rx_bytes},
        {"packets", c.rx_packets},
        {"errors", 0},
        {"dropped", c.rx_dropped},
        {"over_errors", 0},
        {"multicast", c.rx_multicast}}},
      {"tx",
       {{"bytes", c.tx_bytes},
        {"packets", c.tx_packets},
        {"errors", 0},
        {"dropped", c.tx_dropped},
        {"carrier_errors", 0},
        {"collisions", 0}}},
  };
  return j;
}

nlohmann::json plain_link_json(const io::LinkInfo& k) {
  static constexpr const char* kOperstates[] = {"UNKNOWN", "NOTPRESENT", "DOWN", "LOWERLAYERDOWN",
                                                "TESTING", "DORMANT",    "UP"};
  nlohmann::json j;
  j["ifindex"] = k.ifindex;
  j["ifname"] = k.name;
  j["flags"] = flag_names(k.flags, (k.flags & IFF_UP) != 0 && (k.flags & IFF_LOWER_UP) == 0);
  j["mtu"] = k.mtu;
  j["qdisc"] = k.qdisc.empty() ? "noqueue" : k.qdisc;
  j["operstate"] = k.operstate < std::size(kOperstates) ? kOperstates[k.operstate] : "UNKNOWN";
  j["linkmode"] = "DEFAULT";
  j["group"] = "default";
  j["txqlen"] = k.txqlen;
  j["link_type"] = "ether";
  j["address"] = core::MacAddress::from_bytes(k.mac.data()).to_string();
  j["broadcast"] = "ff:ff:ff:ff:ff:ff";
  j["promiscuity"] = k.promiscuity;
  j["allmulti"] = k.allmulti;
  if (k.min_mtu != 0) j["min_mtu"] = k.min_mtu;
  if (k.max_mtu != 0) j["max_mtu"] = k.max_mtu;
  return j;
}

}  // namespace umacvlan::daemon
