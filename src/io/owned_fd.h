// OwnedFd: one file descriptor and the duty to close it.
//
// Contract: move-only; the destructor, reset() and move-assignment close the
// fd held before (errors of close() are ignored: the descriptor is gone
// either way). release() gives the fd up without closing it. -1 means "none".
// No allocation, no exceptions, no other system call than close().
//
// Mapping<T>: a memory mapping (mmap) and the duty to unmap it, a
// unique_ptr whose deleter knows the mapping's size (munmap errors are
// ignored, as close()'s).
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <memory>
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

template <typename T>
struct Unmap {
  std::size_t size = 0;
  void operator()(T* p) const {
    if (p != nullptr) ::munmap(p, size);
  }
};

template <typename T>
using Mapping = std::unique_ptr<T, Unmap<T>>;

}  // namespace umacvlan::io
