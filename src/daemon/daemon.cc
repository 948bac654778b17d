#include "daemon/daemon.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "daemon/control_channel.h"
#include "daemon/control_protocol.h"
#include "daemon/dataplane.h"
#include "daemon/link_service.h"
#include "io/netlink.h"

namespace umacvlan::daemon {
namespace {

// How often the kernel's view of devices and lowers is re-read even without
// a netlink event: multicast list changes raise no event, and devices in
// namespaces without an nsid here send none.
constexpr long kResyncMillis = 200;

class Epoll : public FdWatcher {
 public:
  Epoll() : fd_(::epoll_create1(EPOLL_CLOEXEC)) {}
  ~Epoll() override { ::close(fd_); }
  void watch(int fd, FdTag* tag) override {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = tag;
    ::epoll_ctl(fd_, EPOLL_CTL_ADD, fd, &ev);
  }
  void unwatch(int fd) override { ::epoll_ctl(fd_, EPOLL_CTL_DEL, fd, nullptr); }
  int fd() const { return fd_; }

 private:
  int fd_;
};

// Tags for the loop's own fds (never dereferenced as FdTag).
FdTag kListenTag{FdTag::kLower, nullptr, 1};
FdTag kMonitorTag{FdTag::kLower, nullptr, 2};
FdTag kTimerTag{FdTag::kLower, nullptr, 3};
FdTag kSignalTag{FdTag::kLower, nullptr, 4};

void serve_client(int client, LinkService& links) {
  timeval tv{2, 0};
  ::setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  control::Reply reply;
  if (!control::peer_allowed(client)) {
    reply.error = EPERM;
    reply.message = "Error: umacvlan needs root or CAP_NET_ADMIN.";
    control::send_message(client, control::to_json(reply));
    return;
  }
  nlohmann::json msg;
  int ns_fd = -1;
  if (control::recv_message(client, &msg, &ns_fd) != 0) return;
  io::NetnsFd caller(ns_fd);
  control::LinkRequest req;
  std::string why;
  if (!caller.valid()) {
    reply.error = EINVAL;
    reply.message = "Error: request without the caller's network namespace.";
  } else if (!control::from_json(msg, &req, &why)) {
    reply.error = EINVAL;
    reply.message = "Error: malformed request: " + why + ".";
  } else {
    reply = links.handle(req, caller);
  }
  control::send_message(client, control::to_json(reply));
}

}  // namespace

int run(const Options& options) {
  ::signal(SIGPIPE, SIG_IGN);
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  ::sigprocmask(SIG_BLOCK, &mask, nullptr);
  const int sfd = ::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);

  const int listen_fd = control::listen_unix(options.socket_path);
  if (listen_fd < 0) {
    spdlog::error("cannot listen on {}: {}", options.socket_path, std::strerror(-listen_fd));
    return 1;
  }
  Epoll ep;
  LinkService links(ep);
  Dataplane dataplane;

  io::LinkMonitor monitor;
  const bool have_monitor = io::LinkMonitor::open(io::current_netns(), &monitor) == 0;
  const int tfd = ::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
  itimerspec its{};
  its.it_interval.tv_nsec = kResyncMillis * 1000000L;
  its.it_value = its.it_interval;
  ::timerfd_settime(tfd, 0, &its, nullptr);

  ep.watch(listen_fd, &kListenTag);
  if (have_monitor) ep.watch(monitor.fd(), &kMonitorTag);
  ep.watch(tfd, &kTimerTag);
  ep.watch(sfd, &kSignalTag);
  spdlog::info("umacvlan daemon listening on {}", options.socket_path);

  int idle_ticks = 0;
  std::vector<io::LinkEvent> events;
  bool running = true;
  epoll_event evs[64];
  while (running) {
    const int n = ::epoll_wait(ep.fd(), evs, 64, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      spdlog::error("epoll_wait: {}", std::strerror(errno));
      break;
    }
    bool resync = false;
    for (int i = 0; i < n; ++i) {
      FdTag* tag = static_cast<FdTag*>(evs[i].data.ptr);
      if (tag == &kListenTag) {
        const int client = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (client >= 0) {
          serve_client(client, links);
          ::close(client);
          idle_ticks = 0;
        }
        // A request may have removed fds later in this batch of events.
        break;
      } else if (tag == &kMonitorTag) {
        events.clear();
        monitor.read_events(&events);
        resync = true;
      } else if (tag == &kTimerTag) {
        std::uint64_t ticks;
        (void)!::read(tfd, &ticks, sizeof ticks);
        resync = true;
        if (options.idle_exit_seconds > 0 && links.device_count() == 0 &&
            ++idle_ticks * kResyncMillis > options.idle_exit_seconds * 1000L)
          running = false;
      } else if (tag == &kSignalTag) {
        signalfd_siginfo si;
        (void)!::read(sfd, &si, sizeof si);
        running = false;
      } else if (tag->kind == FdTag::kLower) {
        if (dataplane.on_lower_readable(*tag->port) < 0) {
          // The lower went down or away: clear the socket error so the loop
          // does not spin, and let the resync decide what it means.
          tag->port->lower.pending_error();
          resync = true;
        }
      } else {
        PortRuntime& port = *tag->port;
        auto it = port.devices.find(tag->device);
        if (it == port.devices.end()) continue;
        const int r = dataplane.on_tap_readable(port, it->second);
        if (r < 0 && r != -EAGAIN && r != -EINTR) {
          // The device was deleted, or its namespace was.
          links.device_failed(port, tag->device);
          break;  // fds later in this batch may be gone
        }
      }
    }
    if (resync) links.resync();
  }
  spdlog::info("umacvlan daemon stopping; removing {} device(s)", links.device_count());
  links.remove_all();
  ::close(listen_fd);
  ::unlink(options.socket_path.c_str());
  ::close(tfd);
  ::close(sfd);
  return 0;
}

}  // namespace umacvlan::daemon
