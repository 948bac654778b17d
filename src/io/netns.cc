#include "io/netns.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <thread>

namespace umacvlan::io {

NetnsFd& NetnsFd::operator=(NetnsFd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.release();
  }
  return *this;
}

NetnsFd::~NetnsFd() {
  if (fd_ >= 0) ::close(fd_);
}

NetnsFd NetnsFd::dup() const {
  if (fd_ < 0) return NetnsFd();
  return NetnsFd(::fcntl(fd_, F_DUPFD_CLOEXEC, 0));
}

ino_t NetnsFd::inode() const {
  struct stat st {};
  if (fd_ < 0 || ::fstat(fd_, &st) != 0) return 0;
  return st.st_ino;
}

NetnsFd current_netns() {
  return NetnsFd(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
}

NetnsFd netns_of_pid(pid_t pid) {
  const std::string path = "/proc/" + std::to_string(pid) + "/ns/net";
  return NetnsFd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
}

NetnsFd netns_by_name(const std::string& name) {
  const std::string path = "/run/netns/" + name;
  return NetnsFd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
}

int run_in_netns(const NetnsFd& ns, const std::function<int()>& fn) {
  if (!ns.valid()) return -EBADF;
  int result = 0;
  // A fresh thread so that setns() never touches the caller's namespace; the
  // thread must not share the fs context for setns(CLONE_NEWNET) to be allowed,
  // which std::thread satisfies (only CLONE_NEWNS needs unshared fs).
  std::thread t([&] {
    if (::setns(ns.get(), CLONE_NEWNET) != 0) {
      result = -errno;
      return;
    }
    result = fn();
  });
  t.join();
  return result;
}

}  // namespace umacvlan::io
