// Network-namespace handles and "run this in that namespace".
//
// Contract: NetnsFd owns an fd of a network namespace (closes it on
// destruction, move-only). run_in_netns() runs a callable on a short-lived
// helper thread that has entered the namespace with setns(), so the calling
// thread's own namespace never changes; whatever the callable opens there
// (sockets, TAP fds) stays bound to that namespace after the thread ends.
// Errors are returned as negative errno values, never thrown.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>

namespace umacvlan::io {

class NetnsFd {
 public:
  NetnsFd() = default;
  explicit NetnsFd(int fd) : fd_(fd) {}
  NetnsFd(NetnsFd&& o) noexcept : fd_(o.release()) {}
  NetnsFd& operator=(NetnsFd&& o) noexcept;
  NetnsFd(const NetnsFd&) = delete;
  NetnsFd& operator=(const NetnsFd&) = delete;
  ~NetnsFd();

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }
  // Another fd of the same namespace (dup), or invalid on failure.
  NetnsFd dup() const;
  // Inode number of the namespace: equal inodes mean the same namespace.
  ino_t inode() const;

 private:
  int fd_ = -1;
};

// The calling thread's current network namespace.
NetnsFd current_netns();
// /proc/PID/ns/net, or invalid if it cannot be opened.
NetnsFd netns_of_pid(pid_t pid);
// /run/netns/NAME (what `ip netns add NAME` creates), or invalid.
NetnsFd netns_by_name(const std::string& name);

// Runs fn inside the namespace ns on a helper thread and returns fn's result;
// returns -errno if the thread could not enter the namespace.
int run_in_netns(const NetnsFd& ns, const std::function<int()>& fn);

}  // namespace umacvlan::io
