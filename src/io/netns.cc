#include "io/netns.h"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>
#include <thread>

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
  // Already there: no thread, no setns().
  if (const ino_t here = current_netns_inode(); here != 0 && here == ns.inode()) return fn();
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
