// CniConf: what the CNI plugin `umacvlan` reads and writes, as pure
// functions: the environment (CNI_*), the network configuration on stdin,
// the result it prints, its error objects and the versions it speaks.
//
// Contract:
// - Nothing here does I/O: callers pass the environment and stdin in and
//   print what comes out. Every parse either fills *out whole or returns a
//   CniError naming the bad field, leaving *out untouched.
// - Versions: the plugin speaks 0.3.0, 0.3.1, 0.4.0, 1.0.0 and 1.1.0
//   (kSupportedVersions); a configuration of any other version is refused
//   with code 1. STATUS and GC exist from 1.1.0 on; CHECK from 0.4.0 on.
// - The configuration is the reference macvlan plugin's (master, mode, mtu,
//   mac, linkInContainer, bcqueuelen, ipam, dns, runtimeConfig.mac) plus
//   umacvlan's own `stableMac` (default true) and mode "source". Unknown keys
//   are ignored, as CNI plugins do; a known key of the wrong JSON type is
//   refused (code 7).
// - effective_mac(): runtimeConfig.mac, else MAC= in CNI_ARGS, else the
//   configuration's mac (the reference's precedence), else, with stableMac,
//   stable_mac() of the network, the pod (K8S_POD_NAMESPACE/K8S_POD_NAME in
//   CNI_ARGS) or else the container ID, and the interface name: the same
//   container gets the same MAC after DEL and ADD.
// - make_result() writes the result JSON of the requested version from the
//   IPAM plugin's (any version 0.3.0 and later): the interface as index 0,
//   every IP on it, "version" on each IP only before 1.0.0, the
//   configuration's dns.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/mac_address.h"
#include "core/mode.h"

namespace umacvlan::cni {

// The CNI specification's error codes.
enum ErrorCode : int {
  kErrIncompatibleVersion = 1,
  kErrUnsupportedField = 2,
  kErrUnknownContainer = 3,
  kErrInvalidEnvironment = 4,
  kErrIo = 5,
  kErrDecoding = 6,
  kErrInvalidConfig = 7,
  kErrTryAgainLater = 11,
  kErrNotAvailable = 50,
  kErrLimitedConnectivity = 51,
  kErrInternal = 999,
};

struct CniError {
  int code = kErrInternal;
  std::string msg;
  std::string details;
};

inline const std::vector<std::string> kSupportedVersions = {"0.3.0", "0.3.1", "0.4.0", "1.0.0",
                                                            "1.1.0"};
inline constexpr std::string_view kLatestVersion = "1.1.0";

enum class Command { kAdd, kDel, kCheck, kVersion, kStatus, kGc };
std::optional<Command> parse_command(std::string_view text);
std::string_view to_string(Command c);

// CNI_* from the environment (a map so that tests need no real one).
struct CniEnv {
  Command command = Command::kVersion;
  std::string container_id;
  std::string netns;
  std::string ifname;
  std::string args;  // CNI_ARGS: "K1=V1;K2=V2"
  std::string path;  // CNI_PATH: "dir1:dir2"
};
std::optional<CniError> parse_env(const std::map<std::string, std::string>& env, CniEnv* out);

// CNI_ARGS as key/value pairs; malformed pairs are an error (code 4).
std::optional<CniError> parse_cni_args(std::string_view args,
                                       std::map<std::string, std::string>* out);

// Negative, equal or positive as a is older, the same or newer than b
// ("X.Y.Z"; an unparsable version sorts as 0.0.0).
int compare_versions(std::string_view a, std::string_view b);
bool version_supported(std::string_view v);

struct NetConf {
  std::string cni_version;
  std::string name;
  std::string type;
  std::string master;  // empty: the interface of the default route
  core::Mode mode = core::Mode::kBridge;
  std::string mode_text = "bridge";
  int mtu = 0;  // 0: the kernel's choice (the master's)
  std::string mac;
  bool link_in_container = false;
  std::optional<std::uint32_t> bcqueuelen;
  bool stable_mac = true;
  std::string ipam_type;  // empty: no IPAM (layer 2 only)
  nlohmann::json dns = nlohmann::json::object();
  std::string runtime_mac;
  nlohmann::json prev_result;        // null when absent
  nlohmann::json valid_attachments;  // GC: cni.dev/valid-attachments (null when absent)
  nlohmann::json raw;                // the whole configuration as given
};

// Parses and validates stdin for `command` (VERSION needs only cniVersion;
// DEL does not validate what a DEL cannot use, such as the MTU against the
// master, which the caller checks for ADD and CHECK).
std::optional<CniError> parse_netconf(std::string_view stdin_text, Command command, NetConf* out);

// The MAC the device gets, or nullopt for the daemon's random choice; an
// invalid MAC from any source is a CniError (code 7 from the
// configuration, 4 from CNI_ARGS).
std::optional<CniError> effective_mac(const NetConf& conf, const CniEnv& env,
                                      std::optional<core::MacAddress>* out);
core::MacAddress stable_mac(std::string_view network, std::string_view owner,
                            std::string_view ifname);

// A CNI interface entry of the result.
struct Interface {
  std::string name;
  std::string mac;
  std::string sandbox;
};

// The result of `version` from the IPAM plugin's result (null for none).
std::optional<CniError> make_result(const std::string& version, const Interface& iface,
                                    const nlohmann::json& ipam_result, const nlohmann::json& dns,
                                    nlohmann::json* out);

// An IP of a result: "10.0.0.2/24" split; family 4 or 6.
struct ResultIp {
  int family = 0;
  std::string address;  // without the prefix
  int prefix = 0;
  std::string gateway;  // empty if none
  std::optional<int> interface;
};
struct ResultRoute {
  int family = 0;
  std::string dst;  // without the prefix
  int prefix = 0;
  std::string gw;  // empty if none
};
std::optional<CniError> parse_result_ips(const nlohmann::json& result, std::vector<ResultIp>* ips,
                                         std::vector<ResultRoute>* routes);

nlohmann::json to_json(const CniError& e, std::string_view version);
nlohmann::json version_json(std::string_view version);

}  // namespace umacvlan::cni
