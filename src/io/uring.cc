#include "io/uring.h"

#include <sys/mman.h>
#include <sys/uio.h>

#include <cerrno>

namespace umacvlan::io {
namespace {

constexpr std::uint16_t kBufferGroup = 0;

std::size_t buf_ring_bytes() {
  return Uring::kBuffers * sizeof(io_uring_buf);
}

}  // namespace

Uring::~Uring() {
  if (ready_) io_uring_queue_exit(&ring_);
  if (buf_ring_ != nullptr) ::munmap(buf_ring_, buf_ring_bytes());
}

int Uring::open() {
  io_uring_params p{};
  p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_CQSIZE;
  p.cq_entries = 4 * kEntries;
  if (int rc = io_uring_queue_init_params(kEntries, &ring_, &p); rc < 0) return rc;
  ready_ = true;

  void* mem =
      ::mmap(nullptr, buf_ring_bytes(), PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (mem == MAP_FAILED) return -errno;
  buf_ring_ = static_cast<io_uring_buf_ring*>(mem);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<std::uint64_t>(buf_ring_);
  reg.ring_entries = kBuffers;
  reg.bgid = kBufferGroup;
  if (int rc = io_uring_register_buf_ring(&ring_, &reg, 0); rc < 0) return rc;
  io_uring_buf_ring_init(buf_ring_);
  buffers_ = std::make_unique<std::uint8_t[]>(kBuffers * kBufferSize);
  const int mask = io_uring_buf_ring_mask(kBuffers);
  for (unsigned i = 0; i < kBuffers; ++i)
    io_uring_buf_ring_add(buf_ring_, buffer(i).data(), kBufferSize, static_cast<unsigned short>(i),
                          mask, static_cast<int>(i));
  io_uring_buf_ring_advance(buf_ring_, kBuffers);
  return 0;
}

io_uring_sqe* Uring::sqe() {
  return ready_ ? io_uring_get_sqe(&ring_) : nullptr;
}

bool Uring::prep_read(int fd, std::uint64_t user_data) {
  io_uring_sqe* s = sqe();
  if (s == nullptr) return false;
  io_uring_prep_read(s, fd, nullptr, static_cast<unsigned>(kBufferSize), 0);
  // Nothing there: -EAGAIN at once. io_uring would otherwise wait for data
  // (it does not heed the fd's O_NONBLOCK for a TAP; checked on 6.18).
  s->rw_flags = RWF_NOWAIT;
  s->flags |= IOSQE_BUFFER_SELECT;
  s->buf_group = kBufferGroup;
  io_uring_sqe_set_data64(s, user_data);
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

void Uring::recycle(unsigned id) {
  io_uring_buf_ring_add(buf_ring_, buffer(id).data(), kBufferSize, static_cast<unsigned short>(id),
                        io_uring_buf_ring_mask(kBuffers), 0);
  io_uring_buf_ring_advance(buf_ring_, 1);
}

}  // namespace umacvlan::io
