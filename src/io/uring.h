// Uring: one io_uring (liburing) for one dataplane thread: many reads and
// writes per system call instead of one each.
//
// What it is for: on this kind of machine a system call costs microseconds
// (page-table isolation in a VM), as much as everything else a small frame
// costs. A worker queues the reads of every TAP that epoll says is ready
// (each into a buffer of the Uring's own), submits them with
// one io_uring_enter(), then queues every TAP write of the burst and
// submits those with one more. The TAP fds are non-blocking and tun does
// non-blocking I/O (Linux 6.4+), so each request completes inline, during
// the submission: a read with a frame or -EAGAIN (nothing left), a write
// with its result. A burst costs two calls, whatever its size.
//
// Buffers: kBuffers of kBufferSize bytes, handed to reads last-recycled
// first, so that a worker keeps copying into the same few buffers, still in
// its caches, instead of going round all of them (a provided-buffer ring
// hands them out in turn, 17 MiB a worker, and a 64 KiB TCP super-frame
// was copied into memory long since evicted from the caches). A buffer no
// read has used yet is not touched, so not resident either.
//
// Contract: open() sets the ring up (single issuer); it fails with -errno
// when the kernel lacks it, and the caller then uses plain system calls.
// The prep_*() calls queue a request tagged with a 64-bit user datum (the
// top bit is the Uring's own: callers' data must leave it clear) and
// return false when the submission queue is full (submit() and retry), and
// prep_read() also when every buffer is taken (recycle() some). A read
// completion that carries data has its buffer (has_buffer(), buffer_id()),
// the caller's until recycle(); one without (-EAGAIN, an error) gave it
// back already. Only the thread that called open() may use a Uring.
// Nothing throws; errors are -errno.
#pragma once

#include <liburing.h>
#include <sys/uio.h>

#include <array>
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

  // One read of fd into a free buffer (the last recycled), completing with
  // -EAGAIN at once when there is nothing to read.
  bool prep_read(int fd, std::uint64_t user_data);
  // Buffers no read holds and no caller has yet to recycle.
  unsigned free_buffers() const { return free_count_; }
  bool prep_writev(int fd, const iovec* iov, unsigned count, std::uint64_t user_data);
  bool prep_poll_multishot(int fd, unsigned events, std::uint64_t user_data);
  // Requests queued and not yet submitted.
  unsigned queued() { return ready_ ? io_uring_sq_ready(&ring_) : 0; }
  // Submits what is queued and waits until at least `wait` completions are
  // there. Submitted count or -errno (-EINTR: a signal; try again).
  int submit(unsigned wait = 0);

  // The completions there now, in order; f(const io_uring_cqe&) for each,
  // then they are gone. Returns how many. A read's completion carries the
  // caller's user datum, and its buffer as a provided buffer would
  // (IORING_CQE_F_BUFFER and the id) when the read got data.
  template <typename F>
  unsigned drain(F&& f) {
    unsigned head, n = 0;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      if ((cqe->user_data & kOwnRead) == 0) {
        f(*cqe);
      } else {
        const auto id = static_cast<unsigned>(cqe->user_data & ~kOwnRead);
        io_uring_cqe c = *cqe;
        c.user_data = read_data_[id];
        if (c.res >= 0) {
          c.flags |= IORING_CQE_F_BUFFER | (id << IORING_CQE_BUFFER_SHIFT);
        } else {
          recycle(id);
        }
        f(c);
      }
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
  // Buffer id is free again: the next read takes it first.
  void recycle(unsigned id) {
    if (id < kBuffers && free_count_ < kBuffers)
      free_[free_count_++] = static_cast<std::uint16_t>(id);
  }

 private:
  static constexpr std::uint64_t kOwnRead = 1ULL << 63;  // a read's user datum: its buffer
  static_assert(kBuffers <= 65536);

  io_uring_sqe* sqe();

  io_uring ring_{};
  bool ready_ = false;
  std::unique_ptr<std::uint8_t[]> buffers_;
  std::array<std::uint16_t, kBuffers> free_{};  // a stack: the last recycled on top
  unsigned free_count_ = 0;
  std::array<std::uint64_t, kBuffers> read_data_{};  // per buffer: its read's user datum
};

}  // namespace umacvlan::io
