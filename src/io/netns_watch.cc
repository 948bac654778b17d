#include "io/netns_watch.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace umacvlan::io {
namespace {

// Per namespace, the holder processes whose exit we wait for: a few suffice,
// the next scan finds the others.
constexpr std::size_t kPidfdsPerNamespace = 4;
constexpr std::size_t kMaxPidfds = 256;

// Whether an error means we could not look (out of fds or memory), as
// opposed to what we looked at being gone.
bool blind(int err) {
  return err == EMFILE || err == ENFILE || err == ENOMEM;
}

// The pids under /proc, ours left out; *ok false when /proc could not be read.
std::vector<pid_t> other_pids(bool* ok) {
  std::vector<pid_t> pids;
  DIR* d = ::opendir("/proc");
  if (d == nullptr) {
    *ok = false;
    return pids;
  }
  const pid_t self = ::getpid();
  while (const dirent* e = ::readdir(d)) {
    char* end = nullptr;
    const long pid = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || pid <= 0 || pid == self) continue;
    pids.push_back(static_cast<pid_t>(pid));
  }
  ::closedir(d);
  return pids;
}

ino_t inode_of(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

// "net:[4026532301]" -> 4026532301, else 0.
ino_t net_inode_in(const char* text) {
  const char* p = std::strstr(text, "net:[");
  if (p == nullptr) return 0;
  char* end = nullptr;
  const unsigned long long v = std::strtoull(p + 5, &end, 10);
  return end != nullptr && *end == ']' ? static_cast<ino_t>(v) : 0;
}

// Counts, per watched namespace, the nsfs mounts of it in a mountinfo file.
void count_mounts(const std::string& path, const std::set<ino_t>& watched,
                  std::map<ino_t, NetnsWatch::Holders>* out, bool* ok) {
  FILE* f = std::fopen(path.c_str(), "re");
  if (f == nullptr) {
    if (blind(errno)) *ok = false;
    return;
  }
  char line[4096];
  while (std::fgets(line, sizeof line, f) != nullptr) {
    // "ID PARENT MAJ:MIN ROOT MOUNTPOINT ...": an nsfs mount's ROOT names the namespace.
    char root[256];
    if (std::sscanf(line, "%*s %*s %*s %255s", root) != 1) continue;
    const ino_t ns = net_inode_in(root);
    if (ns != 0 && watched.count(ns) != 0) ++(*out)[ns].mounts;
  }
  std::fclose(f);
}

// Counts, per watched namespace, the fds of pid that refer to it. stat(),
// not readlink(): an fd opened through /run/netns/X reads as "/" once X is
// unmounted, but still stats as the namespace (nsfs device, its inode).
void count_fds(pid_t pid, const std::set<ino_t>& watched, std::map<ino_t, NetnsWatch::Holders>* out,
               bool* ok) {
  struct stat self {};
  if (::stat("/proc/self/ns/net", &self) != 0) return;
  const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    if (blind(errno)) *ok = false;
    return;
  }
  while (const dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    struct stat st {};
    if (::stat((dir + "/" + e->d_name).c_str(), &st) != 0) continue;
    if (st.st_dev == self.st_dev && watched.count(st.st_ino) != 0) ++(*out)[st.st_ino].fds;
  }
  ::closedir(d);
}

}  // namespace

int NetnsWatch::open(NetnsWatch* out) {
  NetnsWatch w;
  w.epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!w.epoll_.valid()) return -errno;
  w.mountinfo_.reset(::open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC));
  if (!w.mountinfo_.valid()) return -errno;
  // The mount table changed: POLLPRI (with POLLERR), reported once per change.
  epoll_event ev{};
  ev.events = EPOLLPRI;
  if (::epoll_ctl(w.epoll_.get(), EPOLL_CTL_ADD, w.mountinfo_.get(), &ev) != 0) return -errno;
  *out = std::move(w);
  return 0;
}

void NetnsWatch::drain() {
  // Reading the readiness is enough: the mount-table event is reported once,
  // and the pidfds of exited holders are replaced by hold_pidfds().
  epoll_event evs[16];
  (void)::epoll_wait(epoll_.get(), evs, 16, 0);
}

void NetnsWatch::hold_pidfds(const std::map<ino_t, std::vector<pid_t>>& by_ns) {
  for (const OwnedFd& fd : pidfds_) ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd.get(), nullptr);
  pidfds_.clear();
  std::set<pid_t> taken;
  for (const auto& [ns, pids] : by_ns) {
    // Held by mounts too: no process exit can orphan it.
    if (last_[ns].mounts > 0) continue;
    std::size_t n = 0;
    for (pid_t pid : pids) {
      if (n == kPidfdsPerNamespace || pidfds_.size() == kMaxPidfds) break;
      if (!taken.insert(pid).second) continue;
      OwnedFd fd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
      if (!fd.valid()) continue;  // already gone: the next scan sees that
      epoll_event ev{};
      ev.events = EPOLLIN;
      if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd.get(), &ev) != 0) continue;
      pidfds_.push_back(std::move(fd));
      ++n;
    }
  }
}

std::vector<ino_t> NetnsWatch::scan() {
  drain();
  std::vector<ino_t> orphaned;
  last_.clear();
  if (watched_.empty()) {
    hold_pidfds({});
    return orphaned;
  }
  // Only a complete look may call a namespace dead: out of fds, say, we
  // would see nobody holding anything.
  bool ok = true;
  const std::vector<pid_t> pids = other_pids(&ok);
  std::map<ino_t, std::vector<pid_t>> members;
  for (pid_t pid : pids) {
    const ino_t ns = inode_of("/proc/" + std::to_string(pid) + "/ns/net");
    if (ns != 0 && watched_.count(ns) != 0) {
      ++last_[ns].processes;
      members[ns].push_back(pid);
    }
  }
  count_mounts("/proc/self/mountinfo", watched_, &last_, &ok);

  auto unheld = [&] {
    std::set<ino_t> left;
    for (ino_t ns : watched_) {
      const Holders& h = last_[ns];
      if (h.processes == 0 && h.mounts == 0 && h.fds == 0) left.insert(ns);
    }
    return left;
  };
  std::set<ino_t> left = unheld();
  if (!left.empty()) {
    // Before calling one dead: the mounts of every other mount namespace
    // and the fds of every process.
    const ino_t own_mnt = inode_of("/proc/self/ns/mnt");
    std::set<ino_t> mnt_seen{own_mnt};
    for (pid_t pid : pids) {
      const std::string base = "/proc/" + std::to_string(pid);
      const ino_t mnt = inode_of(base + "/ns/mnt");
      if (mnt != 0 && mnt_seen.insert(mnt).second)
        count_mounts(base + "/mountinfo", left, &last_, &ok);
      count_fds(pid, left, &last_, &ok);
    }
    left = unheld();
  }
  if (ok) orphaned.assign(left.begin(), left.end());
  hold_pidfds(members);
  return orphaned;
}

NetnsWatch::Holders NetnsWatch::holders(ino_t ns) const {
  const auto it = last_.find(ns);
  return it == last_.end() ? Holders{} : it->second;
}

}  // namespace umacvlan::io
