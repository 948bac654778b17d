// NetnsWatch: tells when a network namespace the daemon keeps alive has no
// holder left but the daemon, i.e. when the kernel would have destroyed it
// had the daemon not held it open.
//
// Why: a socket, an nsfs fd or a TAP fd opened inside a namespace pins it.
// The daemon must hold such references in a lower's namespace (the AF_PACKET
// sockets) and, after a restart, in the namespaces of the devices it
// re-adopts. `ip netns del` (an unmount) or the exit of a container's last
// process then no longer destroys that namespace; a kernel macvlan setup
// would lose its lower and its devices at that moment. The daemon asks this
// watch, drops its own references when told, and the kernel then does the
// rest.
//
// How: a namespace is alive when, ourselves left out, some process has it as
// its network namespace (/proc/PID/ns/net), some mount of any mount namespace
// we can see is an nsfs mount of it (`ip netns add` makes one in
// /run/netns), or some process holds an fd of it. Scans run only when
// something may have changed: the mount table of our mount namespace
// changed (POLLPRI on /proc/self/mountinfo), a process that held a watched
// namespace exited (its pidfd), or the caller asks. A thread that entered a
// namespace by itself (setns() in one thread of a process) is not seen, nor
// a socket another process made there and kept after leaving; the caller can
// rescan on a slow timer for the rest.
//
// Contract: single-threaded, owned by the control thread; fd() is one epoll
// fd for the caller's loop, readable when a rescan is due. Nothing here
// blocks for long (a scan reads /proc); nothing throws; errors are returned
// as -errno.
#pragma once

#include <sys/types.h>

#include <map>
#include <set>
#include <vector>

#include "io/owned_fd.h"

namespace umacvlan::io {

class NetnsWatch {
 public:
  static int open(NetnsWatch* out);

  // For the caller's epoll (EPOLLIN): something a watched namespace depended
  // on changed; call scan().
  int fd() const { return epoll_.get(); }

  void watch(ino_t ns) { watched_.insert(ns); }
  void unwatch(ino_t ns) { watched_.erase(ns); }
  bool watching(ino_t ns) const { return watched_.count(ns) != 0; }

  // Drains what made fd() readable, looks at every watched namespace and
  // returns those nobody but this process holds (they stay watched until
  // unwatch()). When it cannot look everywhere (out of file descriptors or
  // memory), it returns none: the caller's next timed scan tries again. Keeps pidfds of the
  // processes that hold the others, so their exit triggers the next scan.
  std::vector<ino_t> scan();

  // How many holders of each kind the last scan found for ns (tests, logs).
  struct Holders {
    int processes = 0;
    int mounts = 0;
    int fds = 0;
  };
  Holders holders(ino_t ns) const;

 private:
  void drain();
  void hold_pidfds(const std::map<ino_t, std::vector<pid_t>>& by_ns);

  OwnedFd epoll_;
  OwnedFd mountinfo_;
  std::set<ino_t> watched_;
  std::map<ino_t, Holders> last_;
  std::vector<OwnedFd> pidfds_;
};

}  // namespace umacvlan::io
