#include "io/uring.h"

#include <sys/uio.h>

#include <cerrno>

namespace umacvlan::io {

Uring::~Uring() {
  if (ready_) io_uring_queue_exit(&ring_);
}

int Uring::open() {
  io_uring_params p{};
  p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_CQSIZE;
  p.cq_entries = 4 * kEntries;
  if (int rc = io_uring_queue_init_params(kEntries, &ring_, &p); rc < 0) return rc;
  ready_ = true;
  // Not zeroed: a page is first touched by the first read into it.
  buffers_ = std::make_unique_for_overwrite<std::uint8_t[]>(kBuffers * kBufferSize);
  // Buffer 0 on top.
  for (unsigned i = 0; i < kBuffers; ++i) free_[i] = static_cast<std::uint16_t>(kBuffers - 1 - i);
  free_count_ = kBuffers;
  return 0;
}

io_uring_sqe* Uring::sqe() {
  return ready_ ? io_uring_get_sqe(&ring_) : nullptr;
}

bool Uring::prep_read(int fd, std::uint64_t user_data) {
  if (free_count_ == 0) return false;
  io_uring_sqe* s = sqe();
  if (s == nullptr) return false;
  const unsigned id = free_[--free_count_];
  read_data_[id] = user_data;
  io_uring_prep_read(s, fd, buffer(id).data(), static_cast<unsigned>(kBufferSize), 0);
  // Nothing there: -EAGAIN at once. io_uring would otherwise wait for data
  // (it does not heed the fd's O_NONBLOCK for a TAP; checked on 6.18).
  s->rw_flags = RWF_NOWAIT;
  io_uring_sqe_set_data64(s, kOwnRead | id);
  return true;
}

bool Uring::prep_writev(int fd, const iovec* iov, unsigned count, std::uint64_t user_data) {
  io_uring_sqe* s = sqe();
  if (s == nullptr) return false;
  io_uring_prep_writev(s, fd, iov, count, 0);
  io_uring_sqe_set_data64(s, user_data);
  return true;
}

bool Uring::prep_poll_multishot(int fd, unsigned events, std::uint64_t user_data) {
  io_uring_sqe* s = sqe();
  if (s == nullptr) return false;
  io_uring_prep_poll_multishot(s, fd, events);
  io_uring_sqe_set_data64(s, user_data);
  return true;
}

int Uring::submit(unsigned wait) {
  if (!ready_) return -EBADF;
  return wait == 0 ? io_uring_submit(&ring_) : io_uring_submit_and_wait(&ring_, wait);
}

}  // namespace umacvlan::io
