#include "io/steering.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <sys/mman.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <vector>

namespace umacvlan::io {
namespace {

// One map entry (the program reads it at these offsets).
constexpr std::size_t kQueueOffset = 0;
constexpr std::size_t kSpreadOffset = 4;
constexpr std::uint32_t kValueSize = 8;
constexpr std::uint32_t kWordsPerValue = kValueSize / sizeof(std::uint32_t);

// The few instruction shapes the program needs (linux/bpf.h defines the
// encoding, not these helpers).
constexpr bpf_insn insn(std::uint8_t code, std::uint8_t dst, std::uint8_t src, std::int16_t off,
                        std::int32_t imm) {
  bpf_insn i{};
  i.code = code;
  i.dst_reg = dst & 0xf;
  i.src_reg = src & 0xf;
  i.off = off;
  i.imm = imm;
  return i;
}
constexpr bpf_insn mov_reg(std::uint8_t dst, std::uint8_t src) {
  return insn(BPF_ALU64 | BPF_MOV | BPF_X, dst, src, 0, 0);
}
constexpr bpf_insn add_imm(std::uint8_t dst, std::int32_t imm) {
  return insn(BPF_ALU64 | BPF_ADD | BPF_K, dst, 0, 0, imm);
}
constexpr bpf_insn load_w(std::uint8_t dst, std::uint8_t src, std::int16_t off) {
  return insn(BPF_LDX | BPF_MEM | BPF_W, dst, src, off, 0);
}
constexpr bpf_insn store_w(std::uint8_t dst, std::int16_t off, std::uint8_t src) {
  return insn(BPF_STX | BPF_MEM | BPF_W, dst, src, off, 0);
}
constexpr bpf_insn jump_eq0(std::uint8_t reg, std::int16_t off) {
  return insn(BPF_JMP | BPF_JEQ | BPF_K, reg, 0, off, 0);
}
constexpr bpf_insn jump_ne0(std::uint8_t reg, std::int16_t off) {
  return insn(BPF_JMP | BPF_JNE | BPF_K, reg, 0, off, 0);
}
constexpr bpf_insn call(std::int32_t helper) {
  return insn(BPF_JMP | BPF_CALL, 0, 0, 0, helper);
}
constexpr bpf_insn exit_insn() {
  return insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
}

// r0 = the queue for this frame:
//   v = map[smp_processor_id()]; if (!v) return 0;
//   if (v->spread && skb->hash) return skb->hash; return v->queue;
std::vector<bpf_insn> program(int map_fd) {
  constexpr std::int16_t kHashOffset = offsetof(__sk_buff, hash);
  return {
      mov_reg(BPF_REG_6, BPF_REG_1),  // r6 = skb
      call(BPF_FUNC_get_smp_processor_id),
      store_w(BPF_REG_10, -4, BPF_REG_0),  // key on the stack
      // r1 = the map (a 16-byte load of the map fd, resolved by the kernel)
      insn(BPF_LD | BPF_DW | BPF_IMM, BPF_REG_1, BPF_PSEUDO_MAP_FD, 0, map_fd),
      insn(0, 0, 0, 0, 0),
      mov_reg(BPF_REG_2, BPF_REG_10),
      add_imm(BPF_REG_2, -4),
      call(BPF_FUNC_map_lookup_elem),
      jump_eq0(BPF_REG_0, 6),  // no entry: queue 0
      load_w(BPF_REG_7, BPF_REG_0, kQueueOffset),
      load_w(BPF_REG_8, BPF_REG_0, kSpreadOffset),
      jump_eq0(BPF_REG_8, 2),  // not spreading: the CPU's queue
      load_w(BPF_REG_0, BPF_REG_6, kHashOffset),
      jump_ne0(BPF_REG_0, 1),  // spreading, and the frame has a flow hash
      mov_reg(BPF_REG_0, BPF_REG_7),
      exit_insn(),
  };
}

void fail(std::string* error, const std::string& what, int err) {
  if (error != nullptr) *error = what + ": " + std::strerror(err);
}

}  // namespace

void SteeringUnmap::operator()(std::uint32_t* p) const {
  if (p != nullptr) ::munmap(p, size);
}

int Steering::open(std::span<const std::uint32_t> queue_of_cpu, Steering* out, std::string* error) {
  if (out == nullptr || queue_of_cpu.empty()) return -EINVAL;
  const int possible = libbpf_num_possible_cpus();
  if (possible <= 0) {
    fail(error, "cannot count the CPUs", possible < 0 ? -possible : EINVAL);
    return possible < 0 ? possible : -EINVAL;
  }
  const auto cpus = static_cast<std::uint32_t>(possible);
  Steering s;
  s.cpus_ = cpus;
  bpf_map_create_opts map_opts{};
  map_opts.sz = sizeof map_opts;
  map_opts.map_flags = BPF_F_MMAPABLE;
  s.map_.reset(bpf_map_create(BPF_MAP_TYPE_ARRAY, "umv_steer", sizeof(std::uint32_t), kValueSize,
                              cpus, &map_opts));
  if (!s.map_.valid()) {
    const int err = errno;
    fail(error, "cannot make the steering map", err);
    return -err;
  }
  const std::size_t bytes = (static_cast<std::size_t>(cpus) * kValueSize + 4095) / 4096 * 4096;
  void* mem = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, s.map_.get(), 0);
  if (mem == MAP_FAILED) {
    const int err = errno;
    fail(error, "cannot map the steering map", err);
    return -err;
  }
  s.values_ = std::unique_ptr<std::uint32_t, SteeringUnmap>(static_cast<std::uint32_t*>(mem),
                                                            SteeringUnmap{bytes});
  for (std::uint32_t c = 0; c < cpus; ++c) {
    s.values_.get()[c * kWordsPerValue] = c < queue_of_cpu.size()
                                              ? queue_of_cpu[c]
                                              : c % static_cast<std::uint32_t>(queue_of_cpu.size());
    s.values_.get()[c * kWordsPerValue + 1] = 0;
  }
  const std::vector<bpf_insn> insns = program(s.map_.get());
  std::array<char, 4096> log{};
  bpf_prog_load_opts prog_opts{};
  prog_opts.sz = sizeof prog_opts;
  prog_opts.log_buf = log.data();
  prog_opts.log_size = log.size();
  prog_opts.log_level = 1;
  s.prog_.reset(bpf_prog_load(BPF_PROG_TYPE_SOCKET_FILTER, "umv_steer", "GPL", insns.data(),
                              insns.size(), &prog_opts));
  if (!s.prog_.valid()) {
    const int err = errno;
    fail(error, std::string("the kernel refused the steering program (") + log.data() + ")", err);
    return -err;
  }
  *out = std::move(s);
  return 0;
}

void Steering::set_spread(std::size_t cpu, bool spread) {
  if (!values_ || cpu >= cpus_) return;
  std::atomic_ref<std::uint32_t>(values_.get()[cpu * kWordsPerValue + 1])
      .store(spread ? 1 : 0, std::memory_order_relaxed);
}

bool Steering::spread(std::size_t cpu) const {
  if (!values_ || cpu >= cpus_) return false;
  return std::atomic_ref<std::uint32_t>(values_.get()[cpu * kWordsPerValue + 1])
             .load(std::memory_order_relaxed) != 0;
}

}  // namespace umacvlan::io
