#include "cli/control_client.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "control/control_channel.h"

namespace umacvlan::cli {
namespace {

constexpr auto kConnectRetry = std::chrono::milliseconds(20);

std::string errno_text(int negative_errno) {
  return std::strerror(-negative_errno);
}

// Double fork: the daemon is reparented at once, so it is never our zombie
// and outlives us.
int start_daemon(const std::string& socket_path) {
  // Everything exec needs is built before fork().
  const std::string exe = daemon_program();
  const std::string log = control::default_log_path(socket_path);
  const char* argv[] = {exe.c_str(),  "--socket",  socket_path.c_str(),
                        "--log-file", log.c_str(), nullptr};
  const pid_t child = ::fork();
  if (child < 0) return -errno;
  if (child == 0) {
    ::setsid();
    const pid_t daemon = ::fork();
    if (daemon != 0) ::_exit(daemon < 0 ? 1 : 0);
    const int null = ::open("/dev/null", O_RDWR);
    if (null >= 0) {
      ::dup2(null, STDIN_FILENO);
      ::dup2(null, STDOUT_FILENO);
      ::dup2(null, STDERR_FILENO);
    }
    // Whatever the caller left open (a pipe of a test harness, say) must not
    // stay open for the daemon's lifetime.
    ::close_range(STDERR_FILENO + 1, ~0U, 0);
    // A caller run by a service manager (a CNI plugin under containerd, say)
    // must not hand its notification socket to the daemon it starts.
    ::unsetenv("NOTIFY_SOCKET");
    ::unsetenv("WATCHDOG_USEC");
    ::unsetenv("WATCHDOG_PID");
    ::execvp(exe.c_str(), const_cast<char* const*>(argv));
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -ECHILD;
}

bool nobody_listens(int rc) {
  return rc == -ENOENT || rc == -ECONNREFUSED;
}

int connect_or_start(const std::string& path, bool allow_start, std::string* error) {
  int fd = control::connect_unix(path);
  if (fd >= 0) return fd;
  if (fd == -EACCES || fd == -EPERM) {
    *error = fmt::format(
        "Error: umacvlan needs root or CAP_NET_ADMIN: permission denied on the daemon's control "
        "socket \"{}\".",
        path);
    return fd;
  }
  if (!nobody_listens(fd) || !allow_start) {
    *error = fmt::format("Cannot reach the umacvlan daemon at \"{}\": {}.", path, errno_text(fd));
    if (nobody_listens(fd)) {
      *error += " Start it with \"umacvlan daemon\", or leave out --no-start.";
    }
    return fd;
  }
  if (int rc = start_daemon(path); rc < 0) {
    *error = fmt::format("Cannot start the umacvlan daemon: {}.", errno_text(rc));
    return rc;
  }
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(kStartTimeoutMs);
  for (;;) {
    fd = control::connect_unix(path);
    if (fd >= 0) return fd;
    if (!nobody_listens(fd) || std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(kConnectRetry);
  }
  *error = fmt::format(
      "Started the umacvlan daemon, but it does not answer at \"{}\": {}. Run \"umacvlan daemon "
      "--foreground --socket {}\" to see why.",
      path, errno_text(fd), path);
  return fd;
}

}  // namespace

std::string daemon_program() {
  char self[4096];
  const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n > 0) {
    std::string dir(self, static_cast<std::size_t>(n));
    dir = dir.substr(0, dir.find_last_of('/') + 1);
    // Beside this program (the build, /usr/sbin), or, for the CNI plugin in
    // PREFIX/lib/cni, in PREFIX/sbin.
    for (const char* rel : {"umacvlan-daemon", "../../sbin/umacvlan-daemon"}) {
      const std::string path = dir + rel;
      if (::access(path.c_str(), X_OK) == 0) return path;
    }
  }
  return "umacvlan-daemon";
}

int call_daemon(const control::LinkRequest& request, control::Reply* out, bool allow_start,
                std::string* error, int netns_fd, int* stream_fd) {
  std::string scratch;
  if (error == nullptr) error = &scratch;
  const std::string path = control::default_socket_path();

  int own_netns = -1;
  if (netns_fd < 0) {
    own_netns = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (own_netns < 0) {
      const int e = -errno;
      *error = fmt::format("Cannot open our network namespace: {}.", errno_text(e));
      return e;
    }
    netns_fd = own_netns;
  }
  const int fd = connect_or_start(path, allow_start, error);
  if (fd < 0) {
    if (own_netns >= 0) ::close(own_netns);
    return fd;
  }

  timeval timeout{kReplyTimeoutSeconds, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));

  int rc = control::send_message(fd, control::to_json(request), netns_fd);
  if (own_netns >= 0) ::close(own_netns);
  // The daemon may answer (a refusal) and close before reading all of the
  // request: its answer is still there to read.
  const bool maybe_answered = rc == -EPIPE || rc == -ECONNRESET;
  if (rc < 0 && !maybe_answered) {
    *error = fmt::format("Cannot send the request to the umacvlan daemon: {}.", errno_text(rc));
    ::close(fd);
    return rc;
  }
  const int send_error = rc;
  nlohmann::json reply_json;
  int passed = -1;
  rc = control::recv_message(fd, &reply_json, &passed);
  if (passed >= 0) ::close(passed);
  // A stream's lines follow its reply on the same connection.
  int keep = -1;
  if (stream_fd != nullptr && rc == 0 && control::streaming(request.op)) {
    keep = fd;
  } else {
    ::close(fd);
  }
  if (rc < 0) {
    if (rc == -EAGAIN) {
      *error = fmt::format("The umacvlan daemon did not answer within {} s.", kReplyTimeoutSeconds);
    } else if (send_error < 0) {
      *error = fmt::format("Cannot send the request to the umacvlan daemon: {}.",
                           errno_text(send_error));
    } else if (rc == -ENODATA || rc == -ECONNRESET) {
      *error = "The umacvlan daemon closed the connection without answering (see its log).";
    } else {
      *error = fmt::format("Cannot read the umacvlan daemon's reply: {}.", errno_text(rc));
    }
    return rc;
  }
  std::string why;
  control::Reply reply;
  if (!control::from_json(reply_json, &reply, &why)) {
    *error = fmt::format("The umacvlan daemon's reply is malformed: {}.", why);
    if (keep >= 0) ::close(keep);
    return -EPROTO;
  }
  if (keep >= 0 && reply.error == 0) {
    // A stream may stay silent for hours: no timeout on its reads.
    timeval none{0, 0};
    ::setsockopt(keep, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof(none));
    *stream_fd = keep;
  } else if (keep >= 0) {
    ::close(keep);
  }
  *out = std::move(reply);
  return 0;
}

}  // namespace umacvlan::cli
