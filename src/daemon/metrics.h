// Metrics: the daemon's counters as Prometheus text over HTTP
// (`umacvlan-daemon --metrics ADDR:PORT`, GET /metrics; off by default).
//
//   MetricsSnapshot   plain values: every device's and port's counters with
//                     their names, the workers', the control requests', the
//                     start time. The control thread fills one (LinkService::
//                     metrics() plus what daemon.cc knows); it owns nothing.
//   render_metrics()  a snapshot as the text exposition format (version
//                     0.0.4): one HELP and one TYPE line per family, label
//                     values escaped. Pure formatting, no I/O.
//   MetricsServer     cpp-httplib on a thread of its own (two pool threads).
//
// Why a snapshot handed over, and not a view the HTTP thread reads itself:
// the names a scrape needs (a device's current name and namespace, the
// lower's) live in the control thread's LinkService, not in the published
// DataplaneView (the core's copy keeps the name a device was made with; a
// rename with plain `ip` changes only the LinkService's), and the control
// requests are counted on the control thread. Reading them from another
// thread would need locks on the control path; publishing a second table
// would make every rename a publication. Instead the HTTP thread asks:
//
//   HTTP thread                              control thread (daemon loop)
//   GET /metrics: queue a promise, ──eventfd──► fd() readable: serve(take)
//   wait on it at most wait_ms                 takes ONE snapshot for all
//   rendered text, 200 ◄──────────────────── waiting scrapes, fulfils them
//   or 503 after wait_ms (a control thread busy longer, e.g. with a burst
//   of `link add`s; a daemon stopping)
//
// Contract
// - The HTTP threads touch nothing but this object's queue and the
//   snapshots handed to them (shared, immutable). The control thread never
//   waits for them: serve() takes the queue under a mutex that only guards
//   a vector push/swap. No data-path worker is ever involved: the counters
//   are the per-worker slots read with relaxed loads, as `link show` reads
//   them (Dataplane::device_counters()).
// - Bounds: at most kMaxWaiting scrapes wait at once (more: 503 at once);
//   requests other than GET /metrics get 404; a body over 4 KiB is refused.
// - open() binds before it returns (0 or -errno, with a sentence in *why),
//   so a port in use is an error at start; SO_REUSEPORT is not set, so a
//   second daemon never shares the port. The destructor answers whoever
//   waits with 503, stops the server and joins its threads.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/port.h"
#include "daemon/dataplane.h"
#include "io/owned_fd.h"

namespace httplib {
class Server;
}

namespace umacvlan::daemon {

class ControlServer;
class LinkService;

struct MetricsSnapshot {
  struct Device {
    // The lower's name; NETNS/NAME when the lower lives outside the
    // daemon's namespace (two lowers may share a name there).
    std::string port;
    std::string device;  // its name in its namespace
    // Its namespace: the name under /run/netns, else "" for the daemon's
    // own, else "net:[INODE]" (devices in two containers are often both
    // eth0).
    std::string netns;
    std::string mode;
    core::DeviceCounters counters;
  };
  struct Port {
    std::string port;  // as Device::port
    std::size_t devices = 0;
    std::uint32_t used_bcqueuelen = 0;  // the broadcast queue's length now
    core::PortCounters drops;
  };
  // Control requests by how they were answered (see control_server.h).
  struct Control {
    std::uint64_t ok = 0;
    std::uint64_t refused = 0;  // the rules, the kernel or the peer check said no
    std::uint64_t error = 0;    // malformed, too large, timed out, internal error
  };

  std::vector<Device> devices;
  std::vector<Port> ports;
  std::vector<WorkerCounters> workers;  // by worker index
  Control control;
  double start_time_seconds = 0;  // Unix time of this daemon's start
  std::size_t readopted_devices = 0;
};

// Control thread: a snapshot of the daemon now (start_time: Unix seconds).
MetricsSnapshot take_metrics(const LinkService& links, const Dataplane& dataplane,
                             const ControlServer& server, double start_time);

// The text exposition format of s.
std::string render_metrics(const MetricsSnapshot& s);
// A label value as the format wants it: \ " and newline escaped.
std::string escape_label_value(std::string_view v);

// Where to listen: `--metrics HOST:PORT`, `[V6]:PORT` or `:PORT` (127.0.0.1).
struct MetricsAddress {
  std::string host;
  int port = 0;  // 0: any free port (tests; the parser refuses it)
  // http://HOST:PORT/metrics (an IPv6 HOST in brackets)
  std::string url() const;
};
// false with a sentence that echoes text when it is not one of those.
bool parse_metrics_address(std::string_view text, MetricsAddress* out, std::string* why);

class MetricsServer {
 public:
  using Take = std::function<MetricsSnapshot()>;

  static constexpr int kDefaultWaitMs = 2000;
  static constexpr std::size_t kMaxWaiting = 16;

  MetricsServer();
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // Binds at and starts the HTTP thread. 0 or -errno (*why: a sentence).
  int open(const MetricsAddress& at, std::string* why, int wait_ms = kDefaultWaitMs);
  int port() const { return port_; }  // the bound port (useful with port 0)

  // Readable (EPOLLIN) while scrapes wait for a snapshot.
  int fd() const { return event_.get(); }
  // Control thread: if scrapes wait, take() once and hand the result to all.
  void serve(const Take& take);

 private:
  using Pending = std::promise<std::shared_ptr<const MetricsSnapshot>>;

  // HTTP thread: the snapshot, or null after wait_ms_ or while closing.
  std::shared_ptr<const MetricsSnapshot> ask();

  std::unique_ptr<httplib::Server> http_;
  std::thread thread_;
  std::atomic<bool> listening_done_{false};  // the HTTP thread's listen returned
  io::OwnedFd event_;
  int port_ = 0;
  int wait_ms_ = kDefaultWaitMs;
  std::mutex mutex_;
  std::vector<Pending> waiting_;
  bool closing_ = false;
};

}  // namespace umacvlan::daemon
