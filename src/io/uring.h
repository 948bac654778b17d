// Uring: one io_uring (liburing) for one dataplane thread: many reads and
// writes per system call instead of one each.
//
// What it is for: on this kind of machine a system call costs microseconds
// (page-table isolation in a VM), as much as everything else a small frame
// costs. A worker queues the reads of every TAP that epoll says is ready
// (frames land in the buffers of a provided-buffer ring), submits them with
// one io_uring_enter(), then queues every TAP write of the burst and
// submits those with one more. The TAP fds are non-blocking and tun does
// non-blocking I/O (Linux 6.4+), so each request completes inline, during
// the submission: a read with a frame or -EAGAIN (nothing left), a write
// with its result. A burst costs two calls, whatever its size.
//
// Contract: open() sets the ring up (single issuer) and registers kBuffers
// buffers of kBufferSize bytes as provided-buffer group 0; it fails with
// -errno when the kernel lacks any of it, and the caller then uses plain
// system calls. The prep_*() calls queue a request tagged with a 64-bit
// user datum and return false when the submission queue is full (submit()
// and retry). A read completion's buffer stays the caller's until
// recycle(). Only the thread that called open() may use a Uring. Nothing
// throws; errors are -errno.
#pragma once

#include <liburing.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

namespace umacvlan::io {

class Uring {
 public:
  static constexpr unsigned kEntries = 1024;
  static constexpr unsigned kBuffers = 256;  // a power of two
  // A 64 KiB GSO super-frame, its headers and the virtio-net header.
  static constexpr std::size_t kBufferSize = 68 * 1024;

  Uring() = default;
  Uring(const Uring&) = delete;
  Uring& operator=(const Uring&) = delete;
  ~Uring();

  int open();
  bool valid() const { return ready_; }

  // One read of fd into a provided buffer (of the kernel's choosing),
  // completing with -EAGAIN at once when there is nothing to read.
  bool prep_read(int fd, std::uint64_t user_data);
  bool prep_writev(int fd, const iovec* iov, unsigned count, std::uint64_t user_data);
  bool prep_poll_multishot(int fd, unsigned events, std::uint64_t user_data);
  // Requests queued and not yet submitted.
  unsigned queued() { return ready_ ? io_uring_sq_ready(&ring_) : 0; }
  // Submits what is queued and waits until at least `wait` completions are
  // there. Submitted count or -errno (-EINTR: a signal; try again).
  int submit(unsigned wait = 0);

  // The completions there now, in order; f(const io_uring_cqe&) for each,
  // then they are gone. Returns how many.
  template <typename F>
  unsigned drain(F&& f) {
    unsigned head, n = 0;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      f(*cqe);
      ++n;
    }
    io_uring_cq_advance(&ring_, n);
    return n;
  }

  // The buffer a read completion filled (IORING_CQE_F_BUFFER set), and its
  // id to recycle() it by once the frame in it is done with.
  static bool has_buffer(const io_uring_cqe& cqe) { return (cqe.flags & IORING_CQE_F_BUFFER) != 0; }
  static unsigned buffer_id(const io_uring_cqe& cqe) {
    return cqe.flags >> IORING_CQE_BUFFER_SHIFT;
  }
  std::span<std::uint8_t> buffer(unsigned id) {
    return {buffers_.get() + static_cast<std::size_t>(id) * kBufferSize, kBufferSize};
  }
  void recycle(unsigned id);

 private:
  io_uring_sqe* sqe();

  io_uring ring_{};
  bool ready_ = false;
  io_uring_buf_ring* buf_ring_ = nullptr;
  std::unique_ptr<std::uint8_t[]> buffers_;
};

}  // namespace umacvlan::io
