#include "io/steering.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <map>
#include <utility>
#include <vector>

namespace umacvlan::io {
namespace {

// A CPU's entry in the CPU map (the program reads it at these offsets):
// its queue, and its state: kCalm, or kAway + the queue its frames go to.
constexpr std::int16_t kQueueOffset = 0;
constexpr std::int16_t kStateOffset = 4;
constexpr std::uint32_t kCalm = 0;
constexpr std::uint32_t kAway = 1;
constexpr std::uint32_t kValueSize = 8;
constexpr std::uint32_t kWordsPerValue = kValueSize / sizeof(std::uint32_t);
constexpr std::uint32_t kQueueWord = kQueueOffset / sizeof(std::uint32_t);
constexpr std::uint32_t kStateWord = kStateOffset / sizeof(std::uint32_t);
// A flow's entry in the flow map: the value the program returned for it,
// when it last sent, when it got that value.
constexpr std::int16_t kFlowQueue = 0;
constexpr std::int16_t kFlowLast = 8;
constexpr std::int16_t kFlowSince = 16;
constexpr std::uint32_t kFlowValueSize = 24;
constexpr std::uint32_t kFlows = 16384;  // LRU: the least recently used go first

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
constexpr bpf_insn mov(std::uint8_t dst, std::uint8_t src) {
  return insn(BPF_ALU64 | BPF_MOV | BPF_X, dst, src, 0, 0);
}
constexpr bpf_insn mov_imm(std::uint8_t dst, std::int32_t imm) {
  return insn(BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, imm);
}
constexpr bpf_insn add_imm(std::uint8_t dst, std::int32_t imm) {
  return insn(BPF_ALU64 | BPF_ADD | BPF_K, dst, 0, 0, imm);
}
constexpr bpf_insn sub(std::uint8_t dst, std::uint8_t src) {
  return insn(BPF_ALU64 | BPF_SUB | BPF_X, dst, src, 0, 0);
}
constexpr bpf_insn load(std::uint8_t size, std::uint8_t dst, std::uint8_t src, std::int16_t off) {
  return insn(BPF_LDX | BPF_MEM | size, dst, src, off, 0);
}
constexpr bpf_insn store(std::uint8_t size, std::uint8_t dst, std::int16_t off, std::uint8_t src) {
  return insn(BPF_STX | BPF_MEM | size, dst, src, off, 0);
}
constexpr bpf_insn store_imm(std::uint8_t size, std::uint8_t dst, std::int16_t off,
                             std::int32_t imm) {
  return insn(BPF_ST | BPF_MEM | size, dst, 0, off, imm);
}
constexpr bpf_insn call(std::int32_t helper) {
  return insn(BPF_JMP | BPF_CALL, 0, 0, 0, helper);
}
constexpr bpf_insn exit_insn() {
  return insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
}

// A straight-line program with forward jumps to named places.
class Program {
 public:
  Program& operator<<(const bpf_insn& i) {
    code_.push_back(i);
    return *this;
  }
  // r1 = the map (a 16-byte load of its fd, resolved by the kernel).
  Program& load_map(std::uint8_t dst, int map_fd) {
    code_.push_back(insn(BPF_LD | BPF_DW | BPF_IMM, dst, BPF_PSEUDO_MAP_FD, 0, map_fd));
    code_.push_back(insn(0, 0, 0, 0, 0));
    return *this;
  }
  // if (dst OP imm) / (dst OP src) goto place; op is BPF_JEQ, BPF_JSGT, ...
  Program& jump_if(std::uint8_t op, std::uint8_t dst, std::int32_t imm, int place) {
    fixups_.emplace_back(code_.size(), place);
    code_.push_back(insn(BPF_JMP | op | BPF_K, dst, 0, 0, imm));
    return *this;
  }
  Program& jump_if_reg(std::uint8_t op, std::uint8_t dst, std::uint8_t src, int place) {
    fixups_.emplace_back(code_.size(), place);
    code_.push_back(insn(BPF_JMP | op | BPF_X, dst, src, 0, 0));
    return *this;
  }
  Program& jump(int place) {
    fixups_.emplace_back(code_.size(), place);
    code_.push_back(insn(BPF_JMP | BPF_JA, 0, 0, 0, 0));
    return *this;
  }
  Program& here(int place) {
    places_[place] = code_.size();
    return *this;
  }
  std::vector<bpf_insn> done() {
    for (const auto& [at, place] : fixups_)
      code_[at].off = static_cast<std::int16_t>(places_.at(place) - at - 1);
    return code_;
  }

 private:
  std::vector<bpf_insn> code_;
  std::map<int, std::size_t> places_;
  std::vector<std::pair<std::size_t, int>> fixups_;
};

// r0 = what the frame's queue is taken from (TUN and fanout take it modulo
// their count):
//   c = cpu_map[smp_processor_id()]
//   choice = c.state >= kAway ? c.state - kAway : c.queue
//   no hash: choice
//   a new flow, or one idle for gap_ns on a calm CPU: remember choice,
//   return it
//   else its remembered value, except that a flow sent on a CPU that sends
//   away moves to choice if it got its value more than hold_ns ago
//   a flow that would change its value (either way) keeps the old one unless
//   caught[old] >= its previous frame's time + kSettleNs (a queue past the
//   table: no wait)
std::vector<bpf_insn> program(int cpu_map, int flow_map, int caught_map,
                              const Steering::Options& o) {
  enum { kChosen, kSent, kKeep, kReset, kInsert, kReturn, kMove, kMoveFill, kKeepFill };
  // Stack: -4 the CPU (key), -8 the hash (key), -32..-9 a new flow's
  // value, -40 the flow's previous frame's time, -48 the flow's entry
  // (spilled over a call), -52 its old queue (key).
  constexpr std::int16_t kPrevLast = -40, kEntry = -48, kOldQueue = -52;
  constexpr std::int16_t kHash = offsetof(__sk_buff, hash);
  constexpr auto r0 = BPF_REG_0, r1 = BPF_REG_1, r2 = BPF_REG_2, r3 = BPF_REG_3, r4 = BPF_REG_4;
  constexpr auto hash = BPF_REG_6, choice = BPF_REG_7, now = BPF_REG_8, state = BPF_REG_9;
  constexpr auto fp = BPF_REG_10;
  const auto gap = static_cast<std::int32_t>(o.gap_ns);
  const auto hold = static_cast<std::int32_t>(o.hold_ns);
  Program p;
  p << load(BPF_W, hash, r1, kHash) << call(BPF_FUNC_ktime_get_ns) << mov(now, r0)
    << call(BPF_FUNC_get_smp_processor_id) << store(BPF_W, fp, -4, r0);
  p.load_map(r1, cpu_map) << mov(r2, fp) << add_imm(r2, -4) << call(BPF_FUNC_map_lookup_elem)
                          << mov_imm(choice, 0) << mov_imm(state, static_cast<std::int32_t>(kCalm));
  p.jump_if(BPF_JEQ, r0, 0, kChosen)
      << load(BPF_W, choice, r0, kQueueOffset) << load(BPF_W, state, r0, kStateOffset);
  constexpr auto away = static_cast<std::int32_t>(kAway);
  p.jump_if(BPF_JLT, state, away, kChosen) << mov(choice, state) << add_imm(choice, -away);
  p.here(kChosen).jump_if(BPF_JEQ, hash, 0, kReturn) << store(BPF_W, fp, -8, hash);
  p.load_map(r1, flow_map) << mov(r2, fp) << add_imm(r2, -8) << call(BPF_FUNC_map_lookup_elem);
  p.jump_if(BPF_JEQ, r0, 0, kInsert)
      << load(BPF_DW, r1, r0, kFlowLast) << store(BPF_DW, fp, kPrevLast, r1)
      << store(BPF_DW, r0, kFlowLast, now) << mov(r2, now) << sub(r2, r1);
  p.jump_if(BPF_JSLE, r2, gap, kSent).jump_if(BPF_JLT, state, away, kReset);
  p.here(kSent) << load(BPF_W, r1, r0, kFlowQueue);
  p.jump_if(BPF_JLT, state, away, kKeep).jump_if_reg(BPF_JEQ, r1, choice, kKeep)
      << load(BPF_DW, r2, r0, kFlowSince) << mov(r3, now) << sub(r3, r2);
  p.jump_if(BPF_JSLE, r3, hold, kKeep);
  // A change of queue: only once the old queue's reader has caught up.
  p.here(kReset) << load(BPF_W, r1, r0, kFlowQueue);
  p.jump_if_reg(BPF_JEQ, r1, choice, kMove)
      << store(BPF_DW, fp, kEntry, r0) << store(BPF_W, fp, kOldQueue, r1);
  p.load_map(r1, caught_map) << mov(r2, fp) << add_imm(r2, kOldQueue)
                             << call(BPF_FUNC_map_lookup_elem);
  p.jump_if(BPF_JEQ, r0, 0, kMoveFill)
      << load(BPF_DW, r3, r0, 0) << load(BPF_DW, r4, fp, kPrevLast)
      << add_imm(r4, static_cast<std::int32_t>(Steering::kSettleNs))
      << load(BPF_DW, r0, fp, kEntry);
  p.jump_if_reg(BPF_JLT, r3, r4, kKeepFill).jump(kMove);
  p.here(kMoveFill) << load(BPF_DW, r0, fp, kEntry);
  p.here(kMove) << store(BPF_W, r0, kFlowQueue, choice) << store(BPF_DW, r0, kFlowSince, now);
  p.jump(kReturn);
  p.here(kKeepFill) << load(BPF_W, r1, r0, kFlowQueue);
  p.here(kKeep) << mov(r0, r1) << exit_insn();
  p.here(kInsert) << store(BPF_W, fp, -32, choice) << store_imm(BPF_W, fp, -28, 0)
                  << store(BPF_DW, fp, -24, now) << store(BPF_DW, fp, -16, now);
  p.load_map(r1, flow_map) << mov(r2, fp) << add_imm(r2, -8) << mov(r3, fp) << add_imm(r3, -32)
                           << mov_imm(r4, BPF_ANY) << call(BPF_FUNC_map_update_elem);
  p.here(kReturn) << mov(r0, choice) << exit_insn();
  return p.done();
}

void fail(std::string* error, const std::string& what, int err) {
  if (error != nullptr) *error = what + ": " + std::strerror(err);
}

}  // namespace

int Steering::open(std::span<const std::uint32_t> queue_of_cpu, Steering* out, std::string* error,
                   const Options& options) {
  constexpr std::uint64_t kMaxTime = 0x7fffffff;  // an immediate of the program
  if (out == nullptr || queue_of_cpu.empty() || options.gap_ns > kMaxTime ||
      options.hold_ns > kMaxTime)
    return -EINVAL;
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
  s.values_ = Mapping<std::uint32_t>(static_cast<std::uint32_t*>(mem), Unmap<std::uint32_t>{bytes});
  for (std::uint32_t c = 0; c < cpus; ++c) {
    s.values_.get()[c * kWordsPerValue + kQueueWord] =
        c < queue_of_cpu.size() ? queue_of_cpu[c]
                                : c % static_cast<std::uint32_t>(queue_of_cpu.size());
    s.values_.get()[c * kWordsPerValue + kStateWord] = kCalm;
  }
  s.flows_.reset(bpf_map_create(BPF_MAP_TYPE_LRU_HASH, "umv_flows", sizeof(std::uint32_t),
                                kFlowValueSize, kFlows, nullptr));
  if (!s.flows_.valid()) {
    const int err = errno;
    fail(error, "cannot make the flow map", err);
    return -err;
  }
  s.caught_map_.reset(bpf_map_create(BPF_MAP_TYPE_ARRAY, "umv_caught", sizeof(std::uint32_t),
                                     sizeof(std::uint64_t), kMaxQueues, &map_opts));
  if (!s.caught_map_.valid()) {
    const int err = errno;
    fail(error, "cannot make the caught-up map", err);
    return -err;
  }
  constexpr std::size_t kCaughtBytes = kMaxQueues * sizeof(std::uint64_t);
  void* caught =
      ::mmap(nullptr, kCaughtBytes, PROT_READ | PROT_WRITE, MAP_SHARED, s.caught_map_.get(), 0);
  if (caught == MAP_FAILED) {
    const int err = errno;
    fail(error, "cannot map the caught-up map", err);
    return -err;
  }
  s.caught_ = Mapping<std::uint64_t>(static_cast<std::uint64_t*>(caught),
                                     Unmap<std::uint64_t>{kCaughtBytes});
  const std::vector<bpf_insn> insns =
      program(s.map_.get(), s.flows_.get(), s.caught_map_.get(), options);
  s.prog_.reset(bpf_prog_load(BPF_PROG_TYPE_SOCKET_FILTER, "umv_steer", "GPL", insns.data(),
                              insns.size(), nullptr));
  if (!s.prog_.valid()) {
    const int err = errno;
    // Once more with the verifier's log, for the reason.
    std::vector<char> log(1 << 16);
    bpf_prog_load_opts prog_opts{};
    prog_opts.sz = sizeof prog_opts;
    prog_opts.log_buf = log.data();
    prog_opts.log_size = static_cast<std::uint32_t>(log.size());
    prog_opts.log_level = 1;
    OwnedFd again(bpf_prog_load(BPF_PROG_TYPE_SOCKET_FILTER, "umv_steer", "GPL", insns.data(),
                                insns.size(), &prog_opts));
    log.back() = '\0';
    // The verifier says why at the end of its log.
    std::string why(log.data());
    if (why.size() > 200) why = "... " + why.substr(why.size() - 200);
    fail(error, "the kernel refused the steering program (" + why + ")", err);
    return -err;
  }
  *out = std::move(s);
  return 0;
}

std::uint32_t Steering::queue(std::size_t cpu) const {
  if (!values_ || cpu >= cpus_) return 0;
  return values_.get()[cpu * kWordsPerValue + kQueueWord];
}

void Steering::set_calm(std::size_t cpu) {
  if (!values_ || cpu >= cpus_) return;
  std::atomic_ref<std::uint32_t>(values_.get()[cpu * kWordsPerValue + kStateWord])
      .store(kCalm, std::memory_order_relaxed);
}

void Steering::set_away(std::size_t cpu, std::uint32_t to) {
  if (!values_ || cpu >= cpus_ || to >= kMaxQueue) return;
  std::atomic_ref<std::uint32_t>(values_.get()[cpu * kWordsPerValue + kStateWord])
      .store(kAway + to, std::memory_order_relaxed);
}

std::optional<std::uint32_t> Steering::away(std::size_t cpu) const {
  if (!values_ || cpu >= cpus_) return std::nullopt;
  const std::uint32_t state =
      std::atomic_ref<std::uint32_t>(values_.get()[cpu * kWordsPerValue + kStateWord])
          .load(std::memory_order_relaxed);
  if (state < kAway) return std::nullopt;
  return state - kAway;
}

void Steering::caught_up(std::uint32_t queue, std::uint64_t ns) {
  if (!caught_ || queue >= kMaxQueues) return;
  std::atomic_ref<std::uint64_t> at(caught_.get()[queue]);
  if (at.load(std::memory_order_relaxed) < ns) at.store(ns, std::memory_order_relaxed);
}

std::uint64_t Steering::caught_up_at(std::uint32_t queue) const {
  if (!caught_ || queue >= kMaxQueues) return 0;
  return std::atomic_ref<std::uint64_t>(caught_.get()[queue]).load(std::memory_order_relaxed);
}

}  // namespace umacvlan::io
