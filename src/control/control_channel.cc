#include "control/control_channel.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <vector>

namespace umacvlan::control {
namespace {

constexpr std::size_t kChunkBytes = 64 * 1024;
// Descriptors accepted in one control message; the surplus is closed.
constexpr std::size_t kMaxFdsPerRead = 8;
constexpr int kCapNetAdmin = 12;
#ifndef SO_PEERPIDFD
constexpr int SO_PEERPIDFD = 77;  // Linux 6.5; older headers lack it
#endif

int neg_errno() {
  return errno != 0 ? -errno : -EIO;
}

bool make_address(const std::string& path, sockaddr_un* addr, int* error) {
  if (path.empty()) {
    *error = -EINVAL;
    return false;
  }
  if (path.size() >= sizeof(addr->sun_path)) {
    *error = -ENAMETOOLONG;
    return false;
  }
  std::memset(addr, 0, sizeof(*addr));
  addr->sun_family = AF_UNIX;
  std::memcpy(addr->sun_path, path.data(), path.size());
  return true;
}

// mkdir -p for the directory holding path; directories it creates are 0700,
// existing ones are left as they are.
int make_parent_dirs(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos || slash == 0) return 0;
  const std::string dir = path.substr(0, slash);
  for (std::size_t pos = 1; pos <= dir.size(); ++pos) {
    if (pos != dir.size() && dir[pos] != '/') continue;
    const std::string prefix = dir.substr(0, pos);
    if (::mkdir(prefix.c_str(), 0700) != 0 && errno != EEXIST) return neg_errno();
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return neg_errno();
  return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

int send_all(int fd, const char* data, std::size_t size, int pass_fd) {
  std::size_t sent = 0;
  bool fd_pending = pass_fd >= 0;
  while (sent < size) {
    iovec iov{const_cast<char*>(data + sent), size - sent};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    if (fd_pending) {
      std::memset(control, 0, sizeof(control));
      msg.msg_control = control;
      msg.msg_controllen = sizeof(control);
      cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
      cmsg->cmsg_level = SOL_SOCKET;
      cmsg->cmsg_type = SCM_RIGHTS;
      cmsg->cmsg_len = CMSG_LEN(sizeof(int));
      std::memcpy(CMSG_DATA(cmsg), &pass_fd, sizeof(int));
    }
    const ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return neg_errno();
    }
    // The descriptor travels with the first byte that was accepted.
    if (n > 0) fd_pending = false;
    sent += static_cast<std::size_t>(n);
  }
  return 0;
}

void keep_or_close(int fd, int* kept) {
  if (*kept < 0) {
    *kept = fd;
  } else {
    ::close(fd);
  }
}

// recvmsg() for up to size bytes; descriptors go to *kept (the first) or are closed.
ssize_t read_with_fds(int fd, char* buf, std::size_t size, int* kept) {
  iovec iov{buf, size};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerRead)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n;
  do {
    n = ::recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return n;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int received;
      std::memcpy(&received, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      keep_or_close(received, kept);
    }
  }
  return n;
}

bool same_user_namespace(pid_t pid) {
  struct stat mine {};
  struct stat theirs {};
  const std::string path = "/proc/" + std::to_string(pid) + "/ns/user";
  if (::stat("/proc/self/ns/user", &mine) != 0) return false;
  if (::stat(path.c_str(), &theirs) != 0) return false;
  return mine.st_dev == theirs.st_dev && mine.st_ino == theirs.st_ino;
}

bool has_cap_net_admin(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("CapEff:", 0) != 0) continue;
    char* end = nullptr;
    const char* digits = line.c_str() + 7;
    errno = 0;
    const unsigned long long caps = std::strtoull(digits, &end, 16);
    if (errno != 0 || end == digits) return false;
    return (caps >> kCapNetAdmin) & 1u;
  }
  return false;
}

}  // namespace

std::string default_socket_path() {
  const char* env = std::getenv("UMACVLAN_SOCKET");
  if (env != nullptr && *env != '\0') return env;
  return kDefaultSocketPath;
}

namespace {

std::string beside(const std::string& socket_path, const std::string& suffix) {
  const std::string sock = ".sock";
  if (socket_path.size() > sock.size() &&
      socket_path.compare(socket_path.size() - sock.size(), sock.size(), sock) == 0)
    return socket_path.substr(0, socket_path.size() - sock.size()) + suffix;
  return socket_path + suffix;
}

}  // namespace

std::string default_state_path(const std::string& socket_path) {
  if (socket_path == kDefaultSocketPath) return "/var/lib/umacvlan/state.json";
  return beside(socket_path, ".state.json");
}

std::string default_log_path(const std::string& socket_path) {
  if (socket_path == kDefaultSocketPath) return "/var/log/umacvlan/umacvlan.log";
  return beside(socket_path, ".log");
}

int send_message(int fd, const nlohmann::json& message, int pass_fd) {
  std::string line;
  try {
    // replace: a string with invalid UTF-8 must not throw out of a send.
    line = message.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  } catch (const nlohmann::json::exception&) {
    return -EINVAL;
  }
  line.push_back('\n');
  if (line.size() > kMaxMessageBytes) return -EMSGSIZE;
  return send_all(fd, line.data(), line.size(), pass_fd);
}

int recv_message(int fd, nlohmann::json* out, int* passed_fd) {
  *passed_fd = -1;
  int kept = -1;
  std::string line;
  std::vector<char> buf(kChunkBytes);
  auto fail = [&](int error) {
    if (kept >= 0) ::close(kept);
    return error;
  };
  for (;;) {
    // Peek first so that the read below stops right after the newline and
    // leaves the next message in the socket.
    ssize_t peeked;
    do {
      peeked = ::recv(fd, buf.data(), buf.size(), MSG_PEEK);
    } while (peeked < 0 && errno == EINTR);
    if (peeked < 0) return fail(neg_errno());
    if (peeked == 0) return fail(line.empty() && kept < 0 ? -ENODATA : -ECONNRESET);
    const char* end = static_cast<const char*>(std::memchr(buf.data(), '\n', peeked));
    const std::size_t want = end != nullptr ? static_cast<std::size_t>(end - buf.data()) + 1
                                            : static_cast<std::size_t>(peeked);
    if (line.size() + want > kMaxMessageBytes) return fail(-EMSGSIZE);
    const ssize_t got = read_with_fds(fd, buf.data(), want, &kept);
    if (got < 0) return fail(neg_errno());
    if (got == 0) return fail(-ECONNRESET);
    line.append(buf.data(), static_cast<std::size_t>(got));
    if (end != nullptr && static_cast<std::size_t>(got) == want) break;
  }
  line.pop_back();
  auto parsed = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return fail(-EPROTO);
  *out = std::move(parsed);
  *passed_fd = kept;
  return 0;
}

int listen_unix(const std::string& path) {
  sockaddr_un addr;
  int error = 0;
  if (!make_address(path, &addr, &error)) return error;
  if (int rc = make_parent_dirs(path); rc != 0) return rc;

  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return -EEXIST;
    const int probe = connect_unix(path);
    if (probe >= 0) {
      ::close(probe);
      return -EADDRINUSE;
    }
    if (probe == -ECONNREFUSED && ::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return neg_errno();
    }
  }

  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return neg_errno();
  auto fail = [fd]() {
    const int e = neg_errno();
    ::close(fd);
    return e;
  };
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) return fail();
  if (::chmod(path.c_str(), 0600) != 0 || ::listen(fd, 64) != 0) {
    const int e = fail();
    ::unlink(path.c_str());
    return e;
  }
  return fd;
}

int connect_unix(const std::string& path) {
  sockaddr_un addr;
  int error = 0;
  if (!make_address(path, &addr, &error)) return error;
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return neg_errno();
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    const int e = neg_errno();
    ::close(fd);
    return e;
  }
  return fd;
}

bool peer_allowed(int fd) {
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof(cred)) {
    return false;
  }
  if (cred.uid == 0) return true;
  if (cred.pid <= 0) return false;
  // The peer may exit and its pid be reused while we read /proc. A pidfd of
  // the peer (where the kernel has one) that still refers to a live process
  // after the read proves the /proc entry we read was the peer's.
  int pidfd = -1;
  socklen_t pidfd_len = sizeof(pidfd);
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &pidfd_len) != 0) pidfd = -1;
  bool allowed = same_user_namespace(cred.pid) && has_cap_net_admin(cred.pid);
  if (pidfd >= 0) {
    allowed = allowed && ::syscall(SYS_pidfd_send_signal, pidfd, 0, nullptr, 0) == 0;
    ::close(pidfd);
  }
  return allowed;
}

}  // namespace umacvlan::control
