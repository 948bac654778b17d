// Network-namespace handles and "run this in that namespace".
//
// Contract: NetnsFd owns an fd of a network namespace (an OwnedFd: closed on
// destruction, move-only). Holding one keeps that namespace alive, so the
// daemon holds them only where it must (see netns_watch.h). run_in_netns()
// runs a callable inside a namespace and leaves the calling thread in its own
// namespace again: inline when the caller is already there, else the calling
// thread enters the namespace with setns() and returns to its own after the
// callable (also when it throws; a thread that cannot return aborts the
// process). Calls nest. Whatever the callable opens there (sockets, TAP fds)
// stays bound to that namespace. Errors are returned as negative errno
// values, never thrown.
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "io/owned_fd.h"

namespace umacvlan::io {

class NetnsFd {
 public:
  NetnsFd() = default;
  explicit NetnsFd(int fd) : fd_(fd) {}

  int get() const { return fd_.get(); }
  bool valid() const { return fd_.valid(); }
  int release() { return fd_.release(); }
  // Another fd of the same namespace (dup), or invalid on failure.
  NetnsFd dup() const;
  // Inode number of the namespace: equal inodes mean the same namespace.
  ino_t inode() const;

 private:
  OwnedFd fd_;
};

// The calling thread's current network namespace.
NetnsFd current_netns();
ino_t current_netns_inode();
// /proc/PID/ns/net, or invalid if it cannot be opened.
NetnsFd netns_of_pid(pid_t pid);
// /run/netns/NAME (what `ip netns add NAME` creates), or invalid.
NetnsFd netns_by_name(const std::string& name);
// The names under /run/netns, by namespace inode (a name ip knows a
// namespace by); one read of the directory.
std::map<ino_t, std::string> named_netns();
// The name under /run/netns of the namespace with this inode; empty when it
// has none there.
std::string netns_name(ino_t inode);

// Every network namespace this process can find: its own, those mounted
// anywhere in its mount namespace (/run/netns/*, CNI's, ...) and those of
// every process; one fd each, in no particular order.
std::vector<NetnsFd> all_netns();

// Runs fn inside the namespace ns and returns fn's result; returns -errno if
// the namespace could not be entered.
int run_in_netns(const NetnsFd& ns, const std::function<int()>& fn);

}  // namespace umacvlan::io
