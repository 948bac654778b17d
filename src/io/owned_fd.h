// OwnedFd: one file descriptor and the duty to close it.
//
// Contract: move-only; the destructor, reset() and move-assignment close the
// fd held before (errors of close() are ignored: the descriptor is gone
// either way). release() gives the fd up without closing it. -1 means "none".
// No allocation, no exceptions, no other system call than close().
#pragma once

#include <unistd.h>

#include <utility>

namespace umacvlan::io {

class OwnedFd {
 public:
  OwnedFd() = default;
  explicit OwnedFd(int fd) : fd_(fd) {}
  OwnedFd(OwnedFd&& o) noexcept : fd_(o.release()) {}
  OwnedFd& operator=(OwnedFd&& o) noexcept {
    if (this != &o) reset(o.release());
    return *this;
  }
  OwnedFd(const OwnedFd&) = delete;
  OwnedFd& operator=(const OwnedFd&) = delete;
  ~OwnedFd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

}  // namespace umacvlan::io
