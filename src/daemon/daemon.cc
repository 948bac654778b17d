#include "daemon/daemon.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sched.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "control/control_channel.h"
#include "daemon/capture_service.h"
#include "daemon/config_applier.h"
#include "daemon/control_server.h"
#include "daemon/dataplane.h"
#include "daemon/link_service.h"
#include "daemon/metrics.h"
#include "daemon/monitor_service.h"
#include "daemon/service_manager.h"
#include "io/netns.h"
#include "io/netns_watch.h"
#include "io/owned_fd.h"

namespace umacvlan::daemon {
namespace {

// Link-layer multicast lists raise no event: they are read this often, one
// read per namespace that holds an up device.
constexpr long kTickMillis = 250;
// How often namespace liveness is checked without a trigger (a process that
// left a namespace with setns() raises none).
constexpr int kLivenessTicks = 20;
// `umacvlan monitor` reports drops by reason this often (ticks).
constexpr int kDropTicks = 4;

// Names this daemon's nftables tables (umacvlan_<instance>_N): 8 hex
// digits of the state file's path, so that daemons on different sockets
// never take each other's.
std::string instance_of(const std::string& state_path) {
  std::uint32_t h = 2166136261u;
  for (unsigned char c : state_path) h = (h ^ c) * 16777619u;
  char buf[9];
  std::snprintf(buf, sizeof buf, "%08x", h);
  return buf;
}

enum Tag : std::uint64_t {
  kServer,
  kMonitor,
  kWatch,
  kNotices,
  kTimer,
  kSignal,
  kWatchdog,
  kMetrics,
  kConfigOutput,
  kConfigExit
};

std::string status_of(const LinkService& links) {
  return fmt::format("{} device(s) on {} lower(s)", links.device_count(), links.port_count());
}

}  // namespace

int run(const Options& options) {
  ServiceManager manager;
  const double started =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  // Before any thread exists: every thread and socket starts from here.
  {
    const std::string path = options.netns.empty() ? "/proc/1/ns/net" : options.netns;
    io::NetnsFd home(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    // Already there (a service manager started it in the host's namespace):
    // no setns(), which would need CAP_SYS_ADMIN for nothing.
    const bool there = home.valid() && home.inode() == io::current_netns_inode();
    if (!there && (!home.valid() || ::setns(home.get(), CLONE_NEWNET) != 0)) {
      if (!options.netns.empty()) {
        const int err = errno;
        spdlog::error("cannot enter the network namespace {}: {}", path, std::strerror(err));
        manager.failed(err, fmt::format("cannot enter the network namespace {}", path));
        return 1;
      }
      spdlog::warn("cannot enter the host's network namespace ({}); staying in our own",
                   std::strerror(errno));
    }
  }
  ::signal(SIGPIPE, SIG_IGN);
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  // Blocked before any thread starts, so every thread inherits the mask and
  // only the signalfd sees them.
  ::pthread_sigmask(SIG_BLOCK, &mask, nullptr);
  io::OwnedFd sfd(::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));

  const std::string state_path = options.state_path.empty()
                                     ? control::default_state_path(options.socket_path)
                                     : options.state_path;
  // Under a service manager's watchdog, an idle worker still turns every
  // beat, so that its heartbeat tells a stuck worker from an idle one.
  Dataplane dataplane(options.workers, options.tap_io, options.poll_us, manager.beat_ms(),
                      options.steer);
  io::NetnsWatch watch;
  if (int rc = io::NetnsWatch::open(&watch); rc < 0) {
    spdlog::error("cannot watch namespaces: {}", std::strerror(-rc));
    manager.failed(-rc, "cannot watch namespaces");
    return 1;
  }
  LinkServiceConfig config;
  config.state_path = state_path;
  config.instance = instance_of(state_path);
  config.limits = options.limits;
  LinkService links(config, dataplane, watch);

  ControlServer server;
  MonitorService monitors(links, server);
  CaptureService captures(links, server, dataplane.workers());
  const int listened = ControlServer::open(
      options.socket_path,
      [&](const control::LinkRequest& req, const io::NetnsFd& caller) {
        control::Reply reply = links.handle(req, caller);
        monitors.refused(req, reply);
        return reply;
      },
      &server);
  server.set_stream_handlers(
      [&](ControlServer::StreamId id, const control::LinkRequest& req, const io::NetnsFd& caller) {
        if (req.op == control::LinkOp::kCapture) {
          captures.open(id, req, caller);
        } else {
          monitors.open(id);
        }
      },
      [&](ControlServer::StreamId id) {
        captures.closed(id);
        monitors.closed(id);
      });
  if (listened < 0) {
    spdlog::error("cannot listen on {}: {}{}", options.socket_path, std::strerror(-listened),
                  listened == -EADDRINUSE ? " (another umacvlan daemon serves it)" : "");
    manager.failed(-listened, fmt::format("cannot listen on {}", options.socket_path));
    return 1;
  }
  if (int rc = links.start(); rc < 0) {
    // EPERM here is a capability the service manager did not give.
    spdlog::error("cannot start: {}{}", std::strerror(-rc),
                  rc == -EPERM
                      ? " (the daemon needs CAP_NET_ADMIN, CAP_NET_RAW, CAP_NET_BROADCAST, "
                        "CAP_SYS_ADMIN, CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH)"
                      : "");
    manager.failed(-rc, "cannot start: cannot open rtnetlink");
    return 1;
  }
  if (options.cleanup) {
    spdlog::info("cleanup: removing {} device(s) and the state file {}", links.device_count(),
                 state_path);
    links.remove_everything();
    return 0;
  }
  // --metrics: scrapes wait (bounded) for this loop to take a snapshot.
  MetricsServer metrics;
  if (!options.metrics.empty()) {
    MetricsAddress at;
    std::string why;
    const int rc =
        parse_metrics_address(options.metrics, &at, &why) ? metrics.open(at, &why) : -EINVAL;
    if (rc < 0) {
      spdlog::error("{}", why);
      manager.failed(-rc, why);
      return 1;
    }
    spdlog::info("metrics on {}", at.url());
  }

  io::OwnedFd tfd(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
  itimerspec its{};
  its.it_interval.tv_nsec = kTickMillis * 1000000L;
  its.it_value = its.it_interval;
  ::timerfd_settime(tfd.get(), 0, &its, nullptr);

  io::OwnedFd ep(::epoll_create1(EPOLL_CLOEXEC));
  auto watch_fd = [&](int fd, Tag tag) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = tag;
    ::epoll_ctl(ep.get(), EPOLL_CTL_ADD, fd, &ev);
  };
  watch_fd(server.fd(), kServer);
  watch_fd(links.monitor_fd(), kMonitor);
  watch_fd(watch.fd(), kWatch);
  watch_fd(dataplane.notice_fd(), kNotices);
  watch_fd(tfd.get(), kTimer);
  watch_fd(sfd.get(), kSignal);
  if (metrics.fd() >= 0) watch_fd(metrics.fd(), kMetrics);
  // The watchdog's own timer: the loop pings only from here, so a loop
  // stuck anywhere else never pings.
  io::OwnedFd wdfd;
  if (manager.watchdog_usec() > 0) {
    wdfd.reset(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
    itimerspec beat{};
    beat.it_interval.tv_sec = manager.beat_ms() / 1000;
    beat.it_interval.tv_nsec = (manager.beat_ms() % 1000) * 1000000L;
    beat.it_value = beat.it_interval;
    ::timerfd_settime(wdfd.get(), 0, &beat, nullptr);
    watch_fd(wdfd.get(), kWatchdog);
  }
  spdlog::info("umacvlan daemon listening on {} ({} worker(s), state {}{})", options.socket_path,
               dataplane.workers(), state_path,
               manager.watchdog_usec() > 0
                   ? fmt::format(", watchdog {} ms", manager.watchdog_usec() / 1000)
                   : "");
  manager.ready(status_of(links));
  // The config file: once now that we listen, again on every SIGHUP.
  ConfigApplier config_apply(
      options.config_path, options.socket_path,
      [&](int fd, std::uint64_t tag) { watch_fd(fd, static_cast<Tag>(tag)); }, kConfigOutput,
      kConfigExit);
  config_apply.start("start");

  long idle_ms = 0;
  int ticks = 0;
  bool running = true;
  epoll_event evs[16];
  while (running) {
    int timeout = server.next_timeout_ms();
    // A capture drains its queues this often.
    if ((captures.active() || links.port_options_active()) &&
        (timeout < 0 || timeout > CaptureService::kDrainMs))
      timeout = CaptureService::kDrainMs;
    const int n = ::epoll_wait(ep.get(), evs, 16, timeout);
    if (n < 0 && errno != EINTR) {
      spdlog::error("epoll_wait: {}", std::strerror(errno));
      break;
    }
    server.process();  // also expires deadlines when epoll_wait timed out
    for (int i = 0; i < n; ++i) {
      switch (evs[i].data.u64) {
        case kServer:
          break;  // served above
        case kMonitor:
          links.process_events();
          break;
        case kWatch:
          if (auto gone = watch.scan(); !gone.empty()) links.on_orphaned(gone);
          break;
        case kNotices:
          links.on_notices(dataplane.take_notices());
          break;
        case kTimer: {
          std::uint64_t expirations = 0;
          (void)!::read(tfd.get(), &expirations, sizeof expirations);
          links.poll_multicast();
          links.flush_state();
          if (++ticks % kLivenessTicks == 0) {
            if (auto gone = watch.scan(); !gone.empty()) links.on_orphaned(gone);
          }
          const bool idle = links.device_count() == 0 && server.clients() == 0;
          idle_ms = idle ? idle_ms + kTickMillis : 0;
          if (options.idle_exit_seconds > 0 && idle_ms > options.idle_exit_seconds * 1000L)
            running = false;
          manager.status(status_of(links));
          if (config_apply.running_without_pidfd()) config_apply.on_exit();
          if (ticks % kDropTicks == 0) monitors.drops();
          break;
        }
        case kWatchdog: {
          std::uint64_t expirations = 0;
          (void)!::read(wdfd.get(), &expirations, sizeof expirations);
          manager.watchdog(dataplane);
          break;
        }
        case kMetrics:
          metrics.serve([&] { return take_metrics(links, dataplane, server, started); });
          break;
        case kConfigOutput:
          config_apply.on_output();
          break;
        case kConfigExit:
          config_apply.on_exit();
          break;
        case kSignal: {
          signalfd_siginfo si;
          if (::read(sfd.get(), &si, sizeof si) != sizeof si) break;
          if (si.ssi_signo == SIGHUP) {
            config_apply.start("SIGHUP");
            break;
          }
          spdlog::info(
              "umacvlan daemon stopping on signal {}; {} device(s) stay for the next start",
              si.ssi_signo, links.device_count());
          links.flush_state();
          running = false;
          break;
        }
      }
    }
    if (captures.active()) captures.tick();
    if (links.port_options_active()) links.port_options_tick();
    if (monitors.active()) monitors.update();
  }
  manager.stopping(
      fmt::format("stopping: {} device(s) stay for the next start", links.device_count()));
  return 0;
}

}  // namespace umacvlan::daemon
