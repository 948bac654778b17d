#include "io/netns.h"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>

namespace umacvlan::io {

NetnsFd NetnsFd::dup() const {
  if (!valid()) return NetnsFd();
  return NetnsFd(::fcntl(get(), F_DUPFD_CLOEXEC, 0));
}

ino_t NetnsFd::inode() const {
  struct stat st {};
  if (!valid() || ::fstat(get(), &st) != 0) return 0;
  return st.st_ino;
}

NetnsFd current_netns() {
  return NetnsFd(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
}

ino_t current_netns_inode() {
  struct stat st {};
  if (::stat("/proc/thread-self/ns/net", &st) != 0) return 0;
  return st.st_ino;
}

NetnsFd netns_of_pid(pid_t pid) {
  const std::string path = "/proc/" + std::to_string(pid) + "/ns/net";
  return NetnsFd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
}

NetnsFd netns_by_name(const std::string& name) {
  const std::string path = "/run/netns/" + name;
  return NetnsFd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
}

std::map<ino_t, std::string> named_netns() {
  std::map<ino_t, std::string> named;
  DIR* dir = ::opendir("/run/netns");
  if (dir == nullptr) return named;
  while (const dirent* e = ::readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    struct stat st {};
    const std::string path = std::string("/run/netns/") + e->d_name;
    if (::stat(path.c_str(), &st) == 0) named.emplace(st.st_ino, e->d_name);
  }
  ::closedir(dir);
  return named;
}

std::string netns_name(ino_t inode) {
  const auto named = named_netns();
  const auto it = named.find(inode);
  return it == named.end() ? std::string() : it->second;
}

std::vector<NetnsFd> all_netns() {
  std::vector<NetnsFd> out;
  std::set<ino_t> seen;
  auto take = [&](NetnsFd fd) {
    const ino_t inode = fd.inode();
    if (inode != 0 && seen.insert(inode).second) out.push_back(std::move(fd));
  };
  take(current_netns());
  // nsfs mounts: the mount point is the 5th field, ROOT (4th) names the namespace.
  if (FILE* f = std::fopen("/proc/self/mountinfo", "re")) {
    char line[4096];
    while (std::fgets(line, sizeof line, f) != nullptr) {
      char root[256], point[2048];
      if (std::sscanf(line, "%*s %*s %*s %255s %2047s", root, point) != 2) continue;
      if (std::strncmp(root, "net:[", 5) != 0) continue;
      take(NetnsFd(::open(point, O_RDONLY | O_CLOEXEC)));
    }
    std::fclose(f);
  }
  if (DIR* d = ::opendir("/proc")) {
    while (const dirent* e = ::readdir(d)) {
      if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
      const std::string path = std::string("/proc/") + e->d_name + "/ns/net";
      struct stat st {};
      if (::stat(path.c_str(), &st) != 0 || seen.count(st.st_ino) != 0) continue;
      take(NetnsFd(::open(path.c_str(), O_RDONLY | O_CLOEXEC)));
    }
    ::closedir(d);
  }
  return out;
}

int run_in_netns(const NetnsFd& ns, const std::function<int()>& fn) {
  if (!ns.valid()) return -EBADF;
  const NetnsFd home = current_netns();
  if (!home.valid()) return -errno;
  // Already there: no setns().
  if (home.inode() == ns.inode()) return fn();
  // The calling thread goes there and back; setns(CLONE_NEWNET) is allowed
  // in a multi-threaded process and changes this thread alone. A helper
  // thread per call (as before) cost ~0.4 ms of CPU on this VM, and the
  // daemon reads each namespace's multicast lists four times a second.
  if (::setns(ns.get(), CLONE_NEWNET) != 0) return -errno;
  struct Return {
    const NetnsFd& home;
    ~Return() {
      // Fails only for lack of memory; a thread left in another namespace
      // would make its next sockets there, so that is not survived.
      for (int tries = 0; ::setns(home.get(), CLONE_NEWNET) != 0; ++tries) {
        if (tries == 100) {
          std::fprintf(stderr, "run_in_netns: cannot return to the thread's namespace: %s\n",
                       std::strerror(errno));
          std::abort();
        }
        ::usleep(1000);
      }
    }
  } back{home};
  return fn();
}

}  // namespace umacvlan::io
