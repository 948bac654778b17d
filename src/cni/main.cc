// umacvlan-cni: the CNI plugin `umacvlan` (installed as /usr/lib/cni/umacvlan).
//
// A container runtime runs it with CNI_COMMAND and the network configuration
// on stdin (see cni_conf.h for what it reads). ADD asks the umacvlan daemon
// (started on demand, as the CLI does) for a device on the master, moves it
// into CNI_NETNS as CNI_IFNAME in one rtnetlink request, runs the IPAM plugin
// from CNI_PATH with the same stdin and environment, configures the
// addresses and routes it returned and prints the result. DEL runs IPAM DEL
// and removes the device; it succeeds when the namespace, the device or the
// master is already gone. CHECK, STATUS, GC and VERSION as the specification
// says. Errors are CNI error objects on stdout with exit status 1.
//
// The process is single-threaded and moves itself between the runtime's
// namespace and the container's with setns(); the IPAM plugin always runs
// from the runtime's namespace, as with the reference plugin.
#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <linux/if_addr.h>
#include <linux/nsfs.h>
#include <linux/rtnetlink.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <set>
#include <sstream>
#include <thread>

#include "cli/control_client.h"
#include "cni/cni_conf.h"
#include "io/frame_batch.h"
#include "io/netlink.h"
#include "io/netns.h"

extern char** environ;

namespace umacvlan::cni {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

// Thrown inside a command and turned into the error object at the top.
struct Failure {
  CniError error;
};

[[noreturn]] void fail(int code, std::string msg, std::string details = {}) {
  throw Failure{CniError{code, std::move(msg), std::move(details)}};
}

[[noreturn]] void fail(const CniError& e) {
  throw Failure{e};
}

std::string errno_text(int negative_errno) {
  return std::strerror(-negative_errno);
}

// ---------------------------------------------------------------------------
// Namespaces

io::NetnsFd open_netns_path(const std::string& path, int* err) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *err = -errno;
    return io::NetnsFd();
  }
  io::NetnsFd ns(fd);
  // A network namespace, not just any file.
  if (::ioctl(fd, NS_GET_NSTYPE) != CLONE_NEWNET) {
    *err = -EINVAL;
    return io::NetnsFd();
  }
  *err = 0;
  return ns;
}

// The process moves into a namespace for the lifetime of this object.
class InNetns {
 public:
  InNetns(const io::NetnsFd& to, const io::NetnsFd& back) : back_(back) {
    if (::setns(to.get(), CLONE_NEWNET) < 0) {
      fail(kErrIo, fmt::format("cannot enter a network namespace: {}", std::strerror(errno)));
    }
  }
  ~InNetns() { (void)::setns(back_.get(), CLONE_NEWNET); }
  InNetns(const InNetns&) = delete;
  InNetns& operator=(const InNetns&) = delete;

 private:
  const io::NetnsFd& back_;
};

io::RtNetlink open_rtnl(const io::NetnsFd& ns) {
  io::RtNetlink rt;
  if (const int rc = io::RtNetlink::open(ns, &rt); rc < 0) {
    fail(kErrIo, fmt::format("cannot open rtnetlink: {}", errno_text(rc)));
  }
  return rt;
}

void write_sysctl(const std::string& path, const std::string& value) {
  std::ofstream f(path);
  if (f) f << value;
}

// ---------------------------------------------------------------------------
// The daemon

control::Reply daemon_call(const control::LinkRequest& req, const io::NetnsFd& ns,
                           int unreachable_code = kErrTryAgainLater) {
  control::Reply reply;
  std::string error;
  const int rc = cli::call_daemon(req, &reply, /*allow_start=*/true, &error, ns.get());
  if (rc < 0) {
    fail(unreachable_code, "the umacvlan daemon cannot be reached", error);
  }
  return reply;
}

// The daemon's sentence for a refusal, on one line: umacvlan's own reason
// when the reply has one (the CLI prints ip's line first, then ours).
std::string reason_of(const control::Reply& reply) {
  std::string m = reply.message;
  if (const auto at = m.find("\numacvlan: "); at != std::string::npos) m = m.substr(at + 11);
  while (!m.empty() && (m.back() == '\n' || m.back() == '.')) m.pop_back();
  for (char& c : m) c = c == '\n' ? ' ' : c;
  return m.empty() ? std::strerror(reply.error) : m;
}

// The daemon's view of device `name` in namespace ns, or null when it has
// none there; *not_ours when a device of that name exists but is not a
// umacvlan device.
json daemon_show(const std::string& name, const io::NetnsFd& ns, bool* not_ours = nullptr) {
  control::LinkRequest req;
  req.op = control::LinkOp::kShow;
  req.name = name;
  const control::Reply reply = daemon_call(req, ns);
  if (not_ours != nullptr) *not_ours = reply.error == EOPNOTSUPP;
  if (reply.error != 0 || !reply.links.is_array() || reply.links.empty()) return nullptr;
  return reply.links[0];
}

// Removes device `name` from namespace ns through the daemon. Returns false
// when there is no umacvlan device of that name there.
bool daemon_delete(const std::string& name, const io::NetnsFd& ns) {
  control::LinkRequest req;
  req.op = control::LinkOp::kDelete;
  req.name = name;
  const control::Reply reply = daemon_call(req, ns);
  if (reply.error == 0) return true;
  if (reply.error == ENODEV || reply.error == EOPNOTSUPP) return false;
  fail(kErrInternal, fmt::format("cannot delete \"{}\": {}", name, reason_of(reply)));
}

// ---------------------------------------------------------------------------
// Delegated plugins (IPAM)

struct PluginRun {
  int status = 0;
  std::string out;
  std::string err;
};

std::string find_plugin(const std::string& type, const std::string& cni_path) {
  std::stringstream dirs(cni_path);
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (dir.empty()) continue;
    const std::string p = dir + "/" + type;
    struct stat st {};
    if (::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(p.c_str(), X_OK) == 0) {
      return p;
    }
  }
  return {};
}

// Runs a plugin with our environment, CNI_COMMAND replaced, and `input` on
// its stdin; collects its stdout and stderr.
PluginRun run_plugin(const std::string& exe, const std::string& command, const std::string& input,
                     const std::map<std::string, std::string>& overrides = {}) {
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) < 0 || ::pipe2(out, O_CLOEXEC) < 0 || ::pipe2(err, O_CLOEXEC) < 0) {
    fail(kErrIo, fmt::format("cannot run {}: {}", exe, std::strerror(errno)));
  }
  std::vector<std::string> env_store;
  std::map<std::string, std::string> set = overrides;
  set["CNI_COMMAND"] = command;
  for (char** e = environ; *e != nullptr; ++e) {
    const char* eq = std::strchr(*e, '=');
    if (eq == nullptr || set.count(std::string(*e, static_cast<std::size_t>(eq - *e))) == 0) {
      env_store.emplace_back(*e);
    }
  }
  for (const auto& [k, v] : set) env_store.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_store) envp.push_back(s.data());
  envp.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) fail(kErrIo, fmt::format("cannot run {}: {}", exe, std::strerror(errno)));
  if (pid == 0) {
    ::dup2(in[0], STDIN_FILENO);
    ::dup2(out[1], STDOUT_FILENO);
    ::dup2(err[1], STDERR_FILENO);
    char* argv[] = {const_cast<char*>(exe.c_str()), nullptr};
    ::execve(exe.c_str(), argv, envp.data());
    ::_exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  // Write stdin while draining both outputs (a plugin may answer before it
  // has read everything).
  PluginRun run;
  std::size_t written = 0;
  int fds_open = 2;
  bool in_open = true;
  if (input.empty()) {
    ::close(in[1]);
    in_open = false;
  }
  while (fds_open > 0 || in_open) {
    pollfd p[3];
    int n = 0;
    int out_i = -1, err_i = -1, in_i = -1;
    if (out[0] >= 0) {
      out_i = n;
      p[n++] = {out[0], POLLIN, 0};
    }
    if (err[0] >= 0) {
      err_i = n;
      p[n++] = {err[0], POLLIN, 0};
    }
    if (in_open) {
      in_i = n;
      p[n++] = {in[1], POLLOUT, 0};
    }
    if (::poll(p, static_cast<nfds_t>(n), -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    auto drain = [&](int idx, int* fd, std::string* to) {
      if (idx < 0 || p[idx].revents == 0) return;
      char buf[4096];
      const ssize_t r = ::read(*fd, buf, sizeof buf);
      if (r > 0) {
        to->append(buf, static_cast<std::size_t>(r));
      } else if (r == 0 || errno != EINTR) {
        ::close(*fd);
        *fd = -1;
        --fds_open;
      }
    };
    drain(out_i, &out[0], &run.out);
    drain(err_i, &err[0], &run.err);
    if (in_i >= 0 && p[in_i].revents != 0) {
      const ssize_t w = ::write(in[1], input.data() + written, input.size() - written);
      if (w > 0) written += static_cast<std::size_t>(w);
      if (w < 0 && errno != EINTR) written = input.size();
      if (written >= input.size()) {
        ::close(in[1]);
        in_open = false;
      }
    }
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  run.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return run;
}

struct Ipam {
  std::string type;
  std::string exe;
  std::string input;  // stdin for it: ours, or ours at an older cniVersion it speaks
  bool speaks_11 = false;
};

// Finds the IPAM plugin and, for a 1.1.0 configuration, what it speaks: a
// plugin that predates 1.1.0 (Debian's 1.1.1 plugins) gets the same
// configuration at the newest version it supports, so that a 1.1.0 network
// works with it.
Ipam prepare_ipam(const NetConf& conf, const CniEnv& env, const std::string& stdin_text) {
  Ipam ipam;
  ipam.type = conf.ipam_type;
  ipam.exe = find_plugin(conf.ipam_type, env.path);
  if (ipam.exe.empty()) {
    fail(kErrInvalidConfig, fmt::format("\"ipam.type\": failed to find plugin \"{}\" in path [{}]",
                                        conf.ipam_type, env.path));
  }
  ipam.input = stdin_text;
  ipam.speaks_11 = true;
  if (compare_versions(conf.cni_version, "1.1.0") >= 0) {
    const PluginRun v = run_plugin(ipam.exe, "VERSION", stdin_text);
    const json vj = json::parse(v.out, nullptr, false);
    std::string best;
    if (v.status == 0 && vj.is_object() && vj.contains("supportedVersions") &&
        vj["supportedVersions"].is_array()) {
      for (const auto& s : vj["supportedVersions"]) {
        if (!s.is_string()) continue;
        const std::string sv = s.get<std::string>();
        if (sv == conf.cni_version) {
          best = sv;
          break;
        }
        if (compare_versions(sv, conf.cni_version) < 0 && compare_versions(sv, "0.3.0") >= 0 &&
            (best.empty() || compare_versions(sv, best) > 0)) {
          best = sv;
        }
      }
    }
    if (!best.empty() && best != conf.cni_version) {
      json lowered = conf.raw;
      lowered["cniVersion"] = best;
      ipam.input = lowered.dump();
      ipam.speaks_11 = false;
    }
  }
  return ipam;
}

CniError plugin_error(const Ipam& ipam, const std::string& command, const PluginRun& run) {
  const json e = json::parse(run.out, nullptr, false);
  CniError ce;
  if (e.is_object() && e.contains("code") && e["code"].is_number_integer()) {
    ce.code = e["code"].get<int>();
    ce.msg = e.value("msg", std::string());
    ce.details = e.value("details", std::string());
  } else {
    ce.code = kErrInternal;
    ce.msg = fmt::format("netplugin failed: \"{}\"", run.err.empty() ? run.out : run.err);
  }
  if (ce.msg.empty()) ce.msg = fmt::format("IPAM plugin \"{}\" failed {}", ipam.type, command);
  return ce;
}

json ipam_exec(const Ipam& ipam, const std::string& command) {
  const PluginRun run = run_plugin(ipam.exe, command, ipam.input);
  if (run.status != 0) fail(plugin_error(ipam, command, run));
  if (command != "ADD") return nullptr;
  const json r = json::parse(run.out, nullptr, false);
  if (!r.is_object()) {
    fail(kErrDecoding, fmt::format("IPAM plugin \"{}\" printed no JSON result", ipam.type));
  }
  return r;
}

// ---------------------------------------------------------------------------
// Records of what ADD made, for GC: DIR/NETWORK/CONTAINERID-IFNAME.json

std::string state_dir() {
  const char* d = std::getenv("UMACVLAN_CNI_STATE_DIR");
  return d != nullptr && *d != '\0' ? d : "/var/lib/cni/umacvlan";
}

fs::path record_path(const std::string& network, const std::string& id, const std::string& ifname) {
  return fs::path(state_dir()) / network / (id + "-" + ifname + ".json");
}

void write_record(const NetConf& conf, const CniEnv& env, const std::string& mac) {
  std::error_code ec;
  const fs::path p = record_path(conf.name, env.container_id, env.ifname);
  fs::create_directories(p.parent_path(), ec);
  std::ofstream f(p);
  f << json{{"containerID", env.container_id},
            {"ifname", env.ifname},
            {"netns", env.netns},
            {"mac", mac}}
           .dump()
    << "\n";
}

void remove_record(const NetConf& conf, const CniEnv& env) {
  std::error_code ec;
  fs::remove(record_path(conf.name, env.container_id, env.ifname), ec);
}

// ---------------------------------------------------------------------------
// Master lookup

std::string default_route_interface(io::RtNetlink& rt) {
  std::vector<io::IpRoute> routes;
  if (const int rc = rt.list_routes(AF_UNSPEC, &routes); rc < 0) {
    fail(kErrIo, fmt::format("cannot list routes: {}", rt.last_error()));
  }
  for (const auto& r : routes) {
    if (r.table == RT_TABLE_MAIN && r.dst_prefix == 0 && r.type == RTN_UNICAST && r.ifindex > 0) {
      io::LinkInfo l;
      if (rt.get_link(r.ifindex, &l) == 0) return l.name;
    }
  }
  fail(kErrInvalidConfig,
       "\"master\" is not set and there is no default route interface to use instead");
}

// The master's name and MTU, in namespace ns.
io::LinkInfo resolve_master(NetConf* conf, const io::NetnsFd& ns) {
  io::RtNetlink rt = open_rtnl(ns);
  if (conf->master.empty()) conf->master = default_route_interface(rt);
  io::LinkInfo master;
  if (rt.get_link(conf->master, &master) < 0) {
    fail(kErrInvalidConfig,
         fmt::format("\"master\": failed to lookup master \"{}\": no such device{}", conf->master,
                     conf->link_in_container ? " in the container's namespace" : ""));
  }
  return master;
}

// ---------------------------------------------------------------------------
// Addresses and routes in the container (called inside its namespace)

bool parse_ip(int family, const std::string& text, std::array<uint8_t, 16>* out) {
  out->fill(0);
  return ::inet_pton(family == 4 ? AF_INET : AF_INET6, text.c_str(), out->data()) == 1;
}

void configure_iface(io::RtNetlink& rt, int ifindex, const std::string& ifname,
                     const std::vector<ResultIp>& ips, const std::vector<ResultRoute>& routes) {
  bool has_v6 = false;
  for (const auto& ip : ips) has_v6 |= ip.family == 6;
  if (has_v6) {
    write_sysctl("/proc/sys/net/ipv6/conf/" + ifname + "/disable_ipv6", "0");
    // Router advertisements must not add addresses the IPAM did not give.
    write_sysctl("/proc/sys/net/ipv6/conf/" + ifname + "/accept_ra", "0");
  }
  std::string v4gw, v6gw;
  for (const auto& ip : ips) {
    io::IpAddress a;
    a.family = ip.family == 4 ? AF_INET : AF_INET6;
    a.prefix = static_cast<uint8_t>(ip.prefix);
    a.ifindex = ifindex;
    parse_ip(ip.family, ip.address, &a.addr);
    if (const int rc = rt.add_address(a); rc < 0) {
      fail(kErrInternal, fmt::format("failed to add IP addr {}/{} to \"{}\": {}", ip.address,
                                     ip.prefix, ifname, rt.last_error()));
    }
    if (!ip.gateway.empty()) {
      if (ip.family == 4 && v4gw.empty()) v4gw = ip.gateway;
      if (ip.family == 6 && v6gw.empty()) v6gw = ip.gateway;
    }
  }
  io::LinkChange up;
  up.up = true;
  if (const int rc = rt.set_link(ifindex, up); rc < 0) {
    fail(kErrInternal, fmt::format("failed to set \"{}\" UP: {}", ifname, rt.last_error()));
  }
  // IPv6 routes need the address out of DAD first (as the reference waits).
  if (has_v6) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    for (;;) {
      std::vector<io::IpAddress> addrs;
      rt.list_addresses(AF_INET6, ifindex, &addrs);
      bool tentative = false;
      for (const auto& a : addrs) {
        tentative |= (a.flags & IFA_F_TENTATIVE) != 0 && (a.flags & IFA_F_DADFAILED) == 0;
      }
      if (!tentative || std::chrono::steady_clock::now() > deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  for (const auto& r : routes) {
    io::IpRoute route;
    route.family = r.family == 4 ? AF_INET : AF_INET6;
    route.dst_prefix = static_cast<uint8_t>(r.prefix);
    parse_ip(r.family, r.dst, &route.dst);
    const std::string gw = !r.gw.empty() ? r.gw : (r.family == 4 ? v4gw : v6gw);
    if (!gw.empty()) {
      route.has_gateway = true;
      parse_ip(r.family, gw, &route.gateway);
    }
    route.ifindex = ifindex;
    if (const int rc = rt.add_route(route); rc < 0) {
      fail(kErrInternal, fmt::format("failed to add route '{}/{} via {} dev {}': {}", r.dst,
                                     r.prefix, gw.empty() ? "<nil>" : gw, ifname, rt.last_error()));
    }
  }
}

// ---------------------------------------------------------------------------
// Commands

struct Context {
  CniEnv env;
  NetConf conf;
  std::string stdin_text;
  io::NetnsFd runtime_ns;
};

std::string random_name() {
  unsigned char b[4] = {};
  if (::getrandom(b, sizeof b, 0) != static_cast<ssize_t>(sizeof b)) {
    const auto t = std::chrono::steady_clock::now().time_since_epoch().count();
    std::memcpy(b, &t, sizeof b);
  }
  return fmt::format("umv{:02x}{:02x}{:02x}{:02x}", b[0], b[1], b[2], b[3]);
}

io::NetnsFd open_container_ns(const CniEnv& env) {
  int err = 0;
  io::NetnsFd ns = open_netns_path(env.netns, &err);
  if (!ns.valid()) {
    fail(kErrUnknownContainer,
         fmt::format("failed to open netns \"{}\": {}", env.netns, errno_text(err)));
  }
  return ns;
}

// Waits until the daemon sees device `name` in ns (it follows a move by
// rtnetlink events); the next request about it then finds it.
void wait_for_daemon(const std::string& name, const io::NetnsFd& ns) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (daemon_show(name, ns).is_null()) {
    if (std::chrono::steady_clock::now() > deadline) {
      fail(kErrTryAgainLater,
           fmt::format("the umacvlan daemon did not take \"{}\" in the container's namespace "
                       "within 10 s",
                       name));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

int cmd_add(Context& c) {
  NetConf& conf = c.conf;
  std::optional<core::MacAddress> mac;
  if (auto e = effective_mac(conf, c.env, &mac)) fail(*e);
  io::NetnsFd cont_ns = open_container_ns(c.env);
  const io::NetnsFd& master_ns = conf.link_in_container ? cont_ns : c.runtime_ns;
  const io::LinkInfo master = resolve_master(&conf, master_ns);
  if (conf.mtu > static_cast<int>(master.mtu)) {
    fail(kErrInvalidConfig,
         fmt::format("\"mtu\": invalid MTU {}, must be [0, master MTU({})]", conf.mtu, master.mtu));
  }
  // The container must not have the name already (the kernel would refuse
  // the move; say it plainly).
  {
    io::RtNetlink crt = open_rtnl(cont_ns);
    io::LinkInfo existing;
    if (crt.get_link(c.env.ifname, &existing) == 0) {
      fail(kErrInternal,
           fmt::format("container already has an interface named \"{}\"", c.env.ifname));
    }
  }
  Ipam ipam;
  if (!conf.ipam_type.empty()) ipam = prepare_ipam(conf, c.env, c.stdin_text);

  // 1. The device, under a temporary name beside the master.
  const std::string tmp = random_name();
  control::LinkRequest req;
  req.op = control::LinkOp::kAdd;
  req.name = tmp;
  req.link = conf.master;
  req.type_macvlan = true;
  req.mode = conf.mode;
  if (conf.mtu > 0) req.mtu = static_cast<std::uint32_t>(conf.mtu);
  if (mac) req.address = *mac;
  if (conf.bcqueuelen) req.bcqueuelen = *conf.bcqueuelen;
  const control::Reply added = daemon_call(req, master_ns);
  if (added.error != 0) {
    // The configuration was checked above: a refusal now is about the
    // port's state (a passthru device already there, a MAC in use) or its
    // limits (ENOSPC: try again once devices are gone).
    fail(added.error == ENOSPC ? kErrTryAgainLater : kErrInternal,
         fmt::format("failed to create the umacvlan device on \"{}\": {}", conf.master,
                     reason_of(added)));
  }
  bool device_made = true;
  bool in_container = false;
  bool ipam_done = false;
  try {
    // 2. Into the container as CNI_IFNAME, in one request.
    io::RtNetlink mrt = open_rtnl(master_ns);
    io::LinkInfo dev;
    if (mrt.get_link(tmp, &dev) < 0) {
      fail(kErrInternal, fmt::format("the new device \"{}\" vanished", tmp));
    }
    const int rc = conf.link_in_container ? mrt.rename_link(dev.ifindex, c.env.ifname)
                                          : mrt.move_link(dev.ifindex, cont_ns, c.env.ifname);
    if (rc < 0) {
      fail(kErrInternal, fmt::format("failed to move the device into the container as \"{}\": {}",
                                     c.env.ifname, mrt.last_error()));
    }
    in_container = true;
    wait_for_daemon(c.env.ifname, cont_ns);

    // 3. Addresses from the IPAM plugin, run from the runtime's namespace.
    json ipam_result;
    if (!conf.ipam_type.empty()) {
      ipam_result = ipam_exec(ipam, "ADD");
      ipam_done = true;
    }
    Interface iface;
    iface.name = c.env.ifname;
    iface.sandbox = c.env.netns;
    std::vector<ResultIp> ips;
    std::vector<ResultRoute> routes;
    if (!ipam_result.is_null()) {
      if (auto e = parse_result_ips(ipam_result, &ips, &routes)) fail(*e);
      if (ips.empty()) fail(kErrInternal, "IPAM plugin returned missing IP config");
    }
    {
      InNetns in(cont_ns, c.runtime_ns);
      io::RtNetlink crt = open_rtnl(cont_ns);
      io::LinkInfo l;
      if (crt.get_link(c.env.ifname, &l) < 0) {
        fail(kErrInternal, fmt::format("failed to find interface name \"{}\"", c.env.ifname));
      }
      iface.mac = io::mac_text(l.mac);
      write_sysctl("/proc/sys/net/ipv4/conf/" + c.env.ifname + "/arp_notify", "1");
      write_sysctl("/proc/sys/net/ipv6/conf/" + c.env.ifname + "/ndisc_notify", "1");
      configure_iface(crt, l.ifindex, c.env.ifname, ips, routes);
    }
    json result;
    if (auto e = make_result(conf.cni_version, iface, ipam_result, conf.dns, &result)) fail(*e);
    write_record(conf, c.env, iface.mac);
    std::cout << result.dump() << std::endl;
    return 0;
  } catch (const Failure&) {
    // Nothing stays behind: the addresses go back, the device goes.
    if (ipam_done) (void)run_plugin(ipam.exe, "DEL", ipam.input);
    if (device_made) {
      try {
        if (in_container) {
          if (!daemon_delete(c.env.ifname, cont_ns)) {
            // Not yet seen by the daemon in its new place: delete it there.
            io::RtNetlink crt = open_rtnl(cont_ns);
            io::LinkInfo l;
            if (crt.get_link(c.env.ifname, &l) == 0) crt.delete_link(l.ifindex);
          }
        } else if (!daemon_delete(tmp, master_ns) && !daemon_delete(tmp, cont_ns)) {
          // A refused rename may have left it in the container under its
          // temporary name, not yet seen there by the daemon.
          io::RtNetlink crt = open_rtnl(cont_ns);
          io::LinkInfo l;
          if (crt.get_link(tmp, &l) == 0) crt.delete_link(l.ifindex);
        }
      } catch (const Failure&) {
      }
    }
    throw;
  }
}

int cmd_del(Context& c) {
  const NetConf& conf = c.conf;
  if (!conf.ipam_type.empty()) {
    const Ipam ipam = prepare_ipam(conf, c.env, c.stdin_text);
    ipam_exec(ipam, "DEL");
  }
  if (!c.env.netns.empty()) {
    int err = 0;
    io::NetnsFd cont_ns = open_netns_path(c.env.netns, &err);
    // A namespace that is gone took the device with it.
    if (cont_ns.valid()) daemon_delete(c.env.ifname, cont_ns);
  }
  remove_record(conf, c.env);
  return 0;
}

bool has_address(const std::vector<io::IpAddress>& addrs, const ResultIp& ip) {
  std::array<uint8_t, 16> want{};
  parse_ip(ip.family, ip.address, &want);
  for (const auto& a : addrs) {
    if (a.family == (ip.family == 4 ? AF_INET : AF_INET6) && a.addr == want &&
        a.prefix == ip.prefix) {
      return true;
    }
  }
  return false;
}

bool has_route(const std::vector<io::IpRoute>& table, const ResultRoute& r) {
  std::array<uint8_t, 16> dst{}, gw{};
  parse_ip(r.family, r.dst, &dst);
  if (!r.gw.empty()) parse_ip(r.family, r.gw, &gw);
  for (const auto& t : table) {
    if (t.family != (r.family == 4 ? AF_INET : AF_INET6) || t.dst_prefix != r.prefix) continue;
    if (t.dst != dst) continue;
    if (!r.gw.empty() && (!t.has_gateway || t.gateway != gw)) continue;
    return true;
  }
  return false;
}

int cmd_check(Context& c) {
  NetConf& conf = c.conf;
  if (conf.prev_result.is_null()) fail(kErrInvalidConfig, "required prevResult missing");
  io::NetnsFd cont_ns = open_container_ns(c.env);
  if (!conf.ipam_type.empty()) {
    const Ipam ipam = prepare_ipam(conf, c.env, c.stdin_text);
    ipam_exec(ipam, "CHECK");
  }
  // Our interface in the previous result.
  const json& prev = conf.prev_result;
  int index = -1;
  std::string prev_mac;
  if (prev.contains("interfaces") && prev["interfaces"].is_array()) {
    for (std::size_t i = 0; i < prev["interfaces"].size(); ++i) {
      const json& f = prev["interfaces"][i];
      if (f.is_object() && f.value("name", "") == c.env.ifname &&
          f.value("sandbox", "") == c.env.netns) {
        index = static_cast<int>(i);
        prev_mac = f.value("mac", "");
      }
    }
  }
  if (index < 0) {
    fail(kErrInvalidConfig, fmt::format("prevResult has no interface \"{}\" in sandbox \"{}\"",
                                        c.env.ifname, c.env.netns));
  }
  resolve_master(&conf, conf.link_in_container ? cont_ns : c.runtime_ns);
  bool not_ours = false;
  const json dev = daemon_show(c.env.ifname, cont_ns, &not_ours);
  if (dev.is_null()) {
    fail(kErrInternal,
         not_ours ? fmt::format("error: Container interface {} not of type umacvlan", c.env.ifname)
                  : fmt::format("container Interface name in prevResult: {} not "
                                "found",
                                c.env.ifname));
  }
  const std::string mode = dev.value("/linkinfo/info_data/mode"_json_pointer, std::string());
  if (mode != conf.mode_text) {
    fail(kErrInternal, fmt::format("container macvlan mode {} does not match expected value: {}",
                                   mode, conf.mode_text));
  }
  const std::string mac = dev.value("address", std::string());
  if (!prev_mac.empty() && prev_mac != mac) {
    fail(kErrInternal, fmt::format("interface {} Mac {} doesn't match container Mac: {}",
                                   c.env.ifname, prev_mac, mac));
  }
  std::vector<ResultIp> ips;
  std::vector<ResultRoute> routes;
  if (auto e = parse_result_ips(prev, &ips, &routes)) fail(*e);
  io::RtNetlink crt = open_rtnl(cont_ns);
  io::LinkInfo l;
  if (crt.get_link(c.env.ifname, &l) < 0) {
    fail(kErrInternal,
         fmt::format("container Interface name in prevResult: {} not found", c.env.ifname));
  }
  std::vector<io::IpAddress> addrs;
  crt.list_addresses(AF_UNSPEC, l.ifindex, &addrs);
  for (const auto& ip : ips) {
    if (ip.interface && *ip.interface != index) continue;
    if (!has_address(addrs, ip)) {
      fail(kErrInternal,
           fmt::format("Interface {} has no address {}/{}", c.env.ifname, ip.address, ip.prefix));
    }
  }
  std::vector<io::IpRoute> table;
  crt.list_routes(AF_UNSPEC, &table);
  for (const auto& r : routes) {
    if (!has_route(table, r)) {
      fail(kErrInternal, fmt::format("Route to {}/{}{} not found in the container", r.dst, r.prefix,
                                     r.gw.empty() ? "" : " via " + r.gw));
    }
  }
  return 0;
}

int cmd_status(Context& c) {
  NetConf& conf = c.conf;
  control::LinkRequest req;
  req.op = control::LinkOp::kShow;
  const control::Reply reply = daemon_call(req, c.runtime_ns, kErrNotAvailable);
  if (reply.error != 0 && reply.error != ENODEV) {
    fail(kErrNotAvailable, "the umacvlan daemon does not answer requests", reply.message);
  }
  if (!conf.link_in_container) {
    try {
      resolve_master(&conf, c.runtime_ns);
    } catch (const Failure& f) {
      fail(kErrNotAvailable, f.error.msg);
    }
  }
  if (!conf.ipam_type.empty()) {
    const Ipam ipam = prepare_ipam(conf, c.env, c.stdin_text);
    if (ipam.speaks_11) ipam_exec(ipam, "STATUS");
  }
  return 0;
}

int cmd_gc(Context& c) {
  const NetConf& conf = c.conf;
  std::set<std::pair<std::string, std::string>> valid;
  if (conf.valid_attachments.is_array()) {
    for (const auto& a : conf.valid_attachments) {
      valid.emplace(a["containerID"].get<std::string>(), a.value("ifname", std::string()));
    }
  }
  auto is_valid = [&](const std::string& id, const std::string& ifname) {
    return valid.count({id, ifname}) != 0 || valid.count({id, ""}) != 0;
  };
  std::error_code ec;
  const fs::path dir = fs::path(state_dir()) / conf.name;
  std::vector<fs::path> stale;
  Ipam ipam;
  if (!conf.ipam_type.empty()) ipam = prepare_ipam(conf, c.env, c.stdin_text);
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    std::ifstream f(entry.path());
    const json r = json::parse(f, nullptr, false);
    if (!r.is_object()) {
      stale.push_back(entry.path());
      continue;
    }
    const std::string id = r.value("containerID", "");
    const std::string ifname = r.value("ifname", "");
    if (is_valid(id, ifname)) continue;
    int err = 0;
    io::NetnsFd ns = open_netns_path(r.value("netns", ""), &err);
    if (ns.valid()) {
      // Only a device that is still ours and still has the MAC we gave it.
      const json dev = daemon_show(ifname, ns);
      if (!dev.is_null() && dev.value("address", "") == r.value("mac", "")) {
        daemon_delete(ifname, ns);
      }
    }
    // An IPAM plugin that predates GC gets the DEL a runtime of its time
    // would have sent for this attachment.
    if (!conf.ipam_type.empty() && !ipam.speaks_11) {
      const PluginRun run = run_plugin(
          ipam.exe, "DEL", ipam.input,
          {{"CNI_CONTAINERID", id}, {"CNI_IFNAME", ifname}, {"CNI_NETNS", r.value("netns", "")}});
      if (run.status != 0) fail(plugin_error(ipam, "DEL", run));
    }
    stale.push_back(entry.path());
  }
  for (const auto& p : stale) fs::remove(p, ec);
  if (!conf.ipam_type.empty() && ipam.speaks_11) ipam_exec(ipam, "GC");
  return 0;
}

int run(const std::map<std::string, std::string>& envmap, const std::string& stdin_text) {
  std::string version;
  try {
    // The configuration's version, for the error object, before anything
    // else can fail.
    const json j = json::parse(stdin_text, nullptr, false);
    if (j.is_object() && j.contains("cniVersion") && j["cniVersion"].is_string()) {
      version = j["cniVersion"].get<std::string>();
    }
    Context c;
    if (auto e = parse_env(envmap, &c.env)) fail(*e);
    if (c.env.command == Command::kVersion) {
      std::cout << version_json(version).dump() << std::endl;
      return 0;
    }
    if (auto e = parse_netconf(stdin_text, c.env.command, &c.conf)) fail(*e);
    c.stdin_text = stdin_text;
    c.runtime_ns = io::current_netns();
    if (!c.runtime_ns.valid()) fail(kErrIo, "cannot open our own network namespace");
    switch (c.env.command) {
      case Command::kAdd:
        return cmd_add(c);
      case Command::kDel:
        return cmd_del(c);
      case Command::kCheck:
        return cmd_check(c);
      case Command::kStatus:
        return cmd_status(c);
      case Command::kGc:
        return cmd_gc(c);
      case Command::kVersion:
        break;
    }
    return 0;
  } catch (const Failure& f) {
    std::cout << to_json(f.error, version_supported(version) ? version : "").dump() << std::endl;
    return 1;
  } catch (const std::exception& e) {
    std::cout << to_json(CniError{kErrInternal, e.what(), {}}, "").dump() << std::endl;
    return 1;
  }
}

}  // namespace
}  // namespace umacvlan::cni

int main(int argc, char** argv) {
  if (argc > 1 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0 ||
                   std::strcmp(argv[1], "--version") == 0)) {
    std::cerr << "umacvlan CNI plugin " << UMACVLAN_VERSION
              << ": run by a container runtime with CNI_COMMAND=ADD|DEL|CHECK|VERSION|STATUS|GC\n"
                 "and the network configuration on stdin (\"type\": \"umacvlan\").\n"
                 "CNI protocol versions supported: 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0\n";
    return 0;
  }
  std::map<std::string, std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const char* eq = std::strchr(*e, '=');
    if (eq != nullptr)
      env.emplace(std::string(*e, static_cast<std::size_t>(eq - *e)), std::string(eq + 1));
  }
  std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  return umacvlan::cni::run(env, input);
}
