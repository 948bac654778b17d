#include "daemon/daemon.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "control/control_channel.h"
#include "daemon/control_server.h"
#include "daemon/dataplane.h"
#include "daemon/link_service.h"
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

enum Tag : std::uint64_t { kServer, kMonitor, kWatch, kNotices, kTimer, kSignal };

}  // namespace

int run(const Options& options) {
  // Before any thread exists: every thread and socket starts from here.
  {
    const std::string path = options.netns.empty() ? "/proc/1/ns/net" : options.netns;
    io::NetnsFd home(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!home.valid() || ::setns(home.get(), CLONE_NEWNET) != 0) {
      if (!options.netns.empty()) {
        spdlog::error("cannot enter the network namespace {}: {}", path, std::strerror(errno));
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
  Dataplane dataplane(options.workers, options.tap_io, options.poll_us);
  io::NetnsWatch watch;
  if (int rc = io::NetnsWatch::open(&watch); rc < 0) {
    spdlog::error("cannot watch namespaces: {}", std::strerror(-rc));
    return 1;
  }
  LinkServiceConfig config;
  config.state_path = state_path;
  config.instance = instance_of(state_path);
  config.limits = options.limits;
  LinkService links(config, dataplane, watch);

  ControlServer server;
  const int listened = ControlServer::open(
      options.socket_path,
      [&](const control::LinkRequest& req, const io::NetnsFd& caller) {
        return links.handle(req, caller);
      },
      &server);
  if (listened < 0) {
    spdlog::error("cannot listen on {}: {}{}", options.socket_path, std::strerror(-listened),
                  listened == -EADDRINUSE ? " (another umacvlan daemon serves it)" : "");
    return 1;
  }
  if (int rc = links.start(); rc < 0) {
    spdlog::error("cannot start: {}", std::strerror(-rc));
    return 1;
  }
  if (options.cleanup) {
    spdlog::info("cleanup: removing {} device(s) and the state file {}", links.device_count(),
                 state_path);
    links.remove_everything();
    return 0;
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
  spdlog::info("umacvlan daemon listening on {} ({} worker(s), state {})", options.socket_path,
               dataplane.workers(), state_path);

  long idle_ms = 0;
  int ticks = 0;
  bool running = true;
  epoll_event evs[16];
  while (running) {
    const int n = ::epoll_wait(ep.get(), evs, 16, server.next_timeout_ms());
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
          break;
        }
        case kSignal: {
          signalfd_siginfo si;
          (void)!::read(sfd.get(), &si, sizeof si);
          spdlog::info(
              "umacvlan daemon stopping on signal {}; {} device(s) stay for the next start",
              si.ssi_signo, links.device_count());
          links.flush_state();
          running = false;
          break;
        }
      }
    }
  }
  return 0;
}

}  // namespace umacvlan::daemon
