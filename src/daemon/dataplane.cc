#include "daemon/dataplane.h"

#include <sched.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>
#include <type_traits>
#include <unordered_map>

#include "core/macnat.h"
#include "daemon/steer_policy.h"
#include "io/uring.h"

namespace umacvlan::daemon {
namespace {

constexpr std::size_t kEthHeader = 14;
constexpr std::size_t kVlanHeader = 4;
constexpr int kEventsPerWait = 64;

// What the kernel's virtio_net_hdr_to_skb() refuses in a header.
bool vnet_ok(const io::VnetHeader& h, std::size_t len) {
  const std::uint8_t type = h.gso_type & static_cast<std::uint8_t>(~io::kVnetGsoEcn);
  constexpr std::uint8_t kGsoUdp = 3;  // VIRTIO_NET_HDR_GSO_UDP (UFO)
  if (type != io::kVnetGsoNone && type != io::kVnetGsoTcpv4 && type != io::kVnetGsoTcpv6 &&
      type != kGsoUdp && type != io::kVnetGsoUdpL4)
    return false;
  if (type != io::kVnetGsoNone && h.gso_size == 0) return false;
  if ((h.flags & io::kVnetNeedsCsum) != 0 &&
      static_cast<std::size_t>(h.csum_start) + h.csum_offset + 2 > len)
    return false;
  return true;
}

// The kernel's is_skb_forwardable(): a frame that is not GSO must fit the
// receiving device's MTU plus an Ethernet header and one VLAN tag.
bool fits(const io::VnetHeader& h, std::size_t len, std::uint32_t mtu) {
  return h.gso_type != io::kVnetGsoNone || len <= mtu + kEthHeader + kVlanHeader;
}

// Drops the frame itself (not one of its copies) never sent anywhere.
bool sender_dropped(core::DropReason r) {
  return r == core::DropReason::kRunt || r == core::DropReason::kOversize ||
         r == core::DropReason::kUnknownSender || r == core::DropReason::kSpoofed ||
         r == core::DropReason::kBadVnet;
}

// ARP, ICMPv6 neighbour discovery (RS, RA, NS, NA) and DHCPv4: the frames
// hostaccess and macnat learn the devices' addresses from (one 802.1Q tag
// allowed).
bool teaches_addresses(std::span<const std::uint8_t> f) {
  std::size_t l3 = kEthHeader;
  if (f.size() < l3) return false;
  std::uint16_t type = static_cast<std::uint16_t>(f[12] << 8 | f[13]);
  if (type == core::kEthertypeVlan && f.size() >= l3 + kVlanHeader) {
    type = static_cast<std::uint16_t>(f[16] << 8 | f[17]);
    l3 += kVlanHeader;
  }
  if (type == core::kEthertypeArp) return true;
  if (type == core::kEthertypeIpv6) {
    // No extension headers: NDP travels without them.
    return f.size() >= l3 + 41 && f[l3 + 6] == 58 && f[l3 + 40] >= 133 && f[l3 + 40] <= 136;
  }
  if (type == core::kEthertypeIpv4 && f.size() >= l3 + 20 && f[l3 + 9] == 17) {
    const std::size_t l4 = l3 + static_cast<std::size_t>(f[l3] & 0x0f) * 4;
    if (f.size() < l4 + 4) return false;
    const std::uint16_t sport = static_cast<std::uint16_t>(f[l4] << 8 | f[l4 + 1]);
    const std::uint16_t dport = static_cast<std::uint16_t>(f[l4 + 2] << 8 | f[l4 + 3]);
    return (sport == 67 || sport == 68) && (dport == 67 || dport == 68);
  }
  return false;
}

std::uint64_t steady_ms() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

std::uint64_t relaxed(const std::uint64_t& v) {
  return std::atomic_ref<const std::uint64_t>(v).load(std::memory_order_relaxed);
}

}  // namespace

// ------------------------------------------------------------------ Forwarder

Forwarder::Forwarder(std::size_t worker) : worker_(worker) {}

void Forwarder::deliver(const PortView& view, std::span<const std::uint8_t> frame,
                        const io::VnetHeader& vnet, const core::Verdict& v, bool queued_pass,
                        bool from_device) {
  if (v.queued != queued_pass) return;
  if (queued_pass && share_out(view, frame, vnet, v, from_device)) return;
  for (const core::Target& t : decisions_.targets(v)) copy_to(view, t, frame, vnet, from_device);
}

bool Forwarder::share_out(const PortView& view, std::span<const std::uint8_t> frame,
                          const io::VnetHeader& vnet, const core::Verdict& v, bool from_device) {
  if (sink_ == nullptr || v.count < split_min_ || frame.size() > kMaxShareFrame) return false;
  const std::size_t n = std::min(sink_->workers(), kMaxWorkers);
  if (n < 2) return false;
  // A place in every other worker's ring first: a flood that cannot have
  // them all reaches nobody, as one the kernel's full queue refuses.
  std::array<FloodShare*, kMaxWorkers> share{};
  const std::size_t limit = view.port->used_bcqueuelen();
  for (std::size_t o = 0; o < n; ++o) {
    if (o == worker_) continue;
    share[o] = sink_->claim(o, limit);
    if (share[o] == nullptr) {
      // The shares claimed so far are not handed over: they let go of the view.
      for (std::size_t k = 0; k < o; ++k) {
        if (share[k] != nullptr) share[k]->keep.reset();
      }
      core::count_drop(view.io->drops[worker_], core::DropReason::kBcQueueFull);
      return true;
    }
    share[o]->port = &view;
    share[o]->vnet = vnet;
    share[o]->from_device = from_device;
    share[o]->frame.assign(frame.begin(), frame.end());
    share[o]->targets.clear();
  }
  for (const core::Target& t : decisions_.targets(v)) {
    const std::size_t owner = t.device % n;
    if (owner == worker_) {
      copy_to(view, t, frame, vnet, from_device);
    } else {
      share[owner]->targets.push_back(t);
    }
  }
  for (std::size_t o = 0; o < n; ++o) {
    if (o == worker_) continue;
    if (share[o]->targets.empty()) {
      share[o]->keep.reset();  // not handed over: it must not hold the view
      continue;
    }
    sink_->commit(o);
    core::bump(counters_.shares_out);
  }
  return true;
}

void Forwarder::from_share(const FloodShare& share, const PortView* now) {
  core::bump(counters_.shares_in);
  if (now == nullptr) return;
  const PortView& then = *share.port;
  const std::span<const std::uint8_t> frame(share.frame);
  for (const core::Target& t : share.targets) {
    // Still the same device in this worker's view (the share holds the old
    // one alive, so the same address is the same device).
    if (now != &then && (t.device >= now->devices.size() || t.device >= then.devices.size() ||
                         now->devices[t.device] != then.devices[t.device]))
      continue;
    copy_to(then, t, frame, share.vnet, share.from_device);
  }
}

void Forwarder::copy_to(const PortView& view, const core::Target& t,
                        std::span<const std::uint8_t> frame, const io::VnetHeader& vnet,
                        bool from_device) {
  core::PortCounters& drops = view.io->drops[worker_];
  DeviceIo* dev = t.device < view.devices.size() ? view.devices[t.device].get() : nullptr;
  if (dev == nullptr || !dev->tap.valid()) return;
  bool ok = true;
  if (from_device) {
    // Device to device: a unicast crosses the lower (its MTU), a flood
    // copy goes straight to the sibling (its own MTU).
    const core::Device* d = view.port->device(t.device);
    const std::uint32_t mtu =
        t.reason == core::Reason::kFlood && d != nullptr ? d->mtu : view.port->lower().mtu;
    if (!fits(vnet, frame.size(), mtu)) {
      ok = false;
      core::count_drop(drops, core::DropReason::kTooBig);
    }
  }
  const bool flood = t.reason == core::Reason::kFlood;
  if (ok) {
    core::bump(counters_.copies);
    const std::size_t q = worker_ % dev->tap.queue_count();
    if (writer_ != nullptr) {
      writer_->write(*dev, q, vnet, frame, flood, drops);  // counted when written
      return;
    }
    ok = dev->tap.write(q, vnet, frame) == 0;
    if (!ok) core::count_drop(drops, core::DropReason::kIoError);
  }
  core::count_rx(dev->counters[worker_], frame.size(), flood, ok);
}

void Forwarder::from_lower(const PortView& view, io::FrameBatch& batch) {
  core::bump(counters_.bursts);
  core::bump(counters_.lower_rx_frames, batch.count);
  core::bump(counters_.oversize, batch.dropped_oversize);
  core::count_drop(view.io->drops[worker_], core::DropReason::kRingFull, batch.dropped_ring_full);
  decisions_.clear();
  if (view.macnat != nullptr) macnat_ingress(view, batch);
  for (std::size_t i = 0; i < batch.count; ++i) view.port->receive(batch[i], decisions_);
  if (view.capture != nullptr) capture(view, core::kNoDevice, batch);
  if (view.learn != nullptr) learn(view, core::kNoDevice, batch);
  core::PortCounters& drops = view.io->drops[worker_];
  // Inline deliveries first, then what went through the broadcast queue: the
  // kernel drains that queue from a work item after the burst.
  for (std::size_t i = 0; i < batch.count; ++i) {
    core::count_drop(drops, decisions_[i].drop);
    deliver(view, batch[i], batch.vnet[i], decisions_[i], false, false);
  }
  for (std::size_t i = 0; i < batch.count; ++i)
    deliver(view, batch[i], batch.vnet[i], decisions_[i], true, false);
}

void Forwarder::from_device(const PortView& view, core::DeviceId from, io::FrameBatch& batch) {
  core::bump(counters_.bursts);
  core::bump(counters_.tap_rx_frames, batch.count);
  core::bump(counters_.oversize, batch.dropped_oversize);
  DeviceIo* src = from < view.devices.size() ? view.devices[from].get() : nullptr;
  if (src == nullptr) return;
  decisions_.clear();
  for (std::size_t i = 0; i < batch.count; ++i) view.port->transmit(from, batch[i], decisions_);
  if (view.capture != nullptr) capture(view, from, batch);
  if (view.learn != nullptr) learn(view, from, batch);
  core::PortCounters& drops = view.io->drops[worker_];
  const std::uint64_t now = view.macnat != nullptr ? steady_ms() : 0;
  std::size_t to_wire = 0;
  for (std::size_t i = 0; i < batch.count; ++i) {
    const core::Verdict& v = decisions_[i];
    const std::span<const std::uint8_t> frame = batch[i];
    if (v.drop == core::DropReason::kNone && !vnet_ok(batch.vnet[i], frame.size())) {
      core::count_drop(drops, core::DropReason::kBadVnet);
      sent_[i] = false;
      continue;
    }
    core::count_drop(drops, v.drop);
    deliver(view, frame, batch.vnet[i], v, false, true);
    sent_[i] = !sender_dropped(v.drop);
    if (v.to_wire) {
      // Out the lower all at once, after the burst (one sendmmsg).
      wire_frames_[to_wire] =
          view.macnat != nullptr ? macnat_egress(view, from, batch, i, now) : frame;
      wire_vnet_[to_wire] = batch.vnet[i];
      wire_index_[to_wire] = i;
      ++to_wire;
    }
  }
  send_wire(view, to_wire);
  for (std::size_t i = 0; i < batch.count; ++i)
    core::count_tx(src->counters[worker_], batch[i].size(), sent_[i]);
  for (std::size_t i = 0; i < batch.count; ++i) {
    if (decisions_[i].queued) deliver(view, batch[i], batch.vnet[i], decisions_[i], true, true);
  }
}

void Forwarder::capture(const PortView& view, core::DeviceId from, const io::FrameBatch& batch) {
  CaptureTap& tap = *view.capture;
  for (std::size_t i = 0; i < batch.count; ++i) {
    const core::Verdict& v = decisions_[i];
    const auto targets = decisions_.targets(v);
    if (!tap.wants(from, targets)) continue;
    if (from != core::kNoDevice && v.drop == core::DropReason::kNone &&
        !vnet_ok(batch.vnet[i], batch[i].size())) {
      // Refused before the port's decision is carried out: nobody gets it.
      tap.push(worker_, from, batch[i], core::Verdict{}, {}, core::DropReason::kBadVnet);
      continue;
    }
    tap.push(worker_, from, batch[i], v, targets, v.drop);
  }
}

void Forwarder::learn(const PortView& view, core::DeviceId from, const io::FrameBatch& batch) {
  for (std::size_t i = 0; i < batch.count; ++i) {
    if (!teaches_addresses(batch[i])) continue;
    const core::Verdict& v = decisions_[i];
    view.learn->push(worker_, from, batch[i], v, decisions_.targets(v), v.drop);
  }
}

void Forwarder::macnat_ingress(const PortView& view, io::FrameBatch& batch) {
  const core::MacAddress lower = view.port->lower().mac;
  for (std::size_t i = 0; i < batch.count; ++i) {
    const std::span<const std::uint8_t> f = batch[i];
    if (f.size() < kEthHeader || !std::equal(f.begin(), f.begin() + 6, lower.octets().begin()))
      continue;
    const std::optional<core::IpAddress> dst = core::ingress_destination(f);
    if (!dst) continue;
    const auto it = view.macnat->owners.find(*dst);
    if (it == view.macnat->owners.end()) continue;  // the host's, or nobody's
    const core::Device* d = view.port->device(it->second.device);
    if (d == nullptr) continue;
    core::rewrite_ingress(batch.writable(i), d->mac,
                          (batch.vnet[i].flags & io::kVnetNeedsCsum) != 0);
  }
}

std::span<const std::uint8_t> Forwarder::macnat_egress(const PortView& view, core::DeviceId from,
                                                       io::FrameBatch& batch, std::size_t i,
                                                       std::uint64_t now_ms) {
  const std::span<const std::uint8_t> frame = batch[i];
  // Whose address it comes from: a stamp for a known owner, the learn tap
  // for a new one (what ARP, NDP and DHCP teach went there already).
  const core::Device* d = view.port->device(from);
  if (d != nullptr && frame.size() >= kEthHeader &&
      std::equal(frame.begin() + 6, frame.begin() + 12, d->mac.octets().begin())) {
    if (const std::optional<core::IpAddress> src = core::egress_source(frame);
        src && src->is_learnable()) {
      const auto it = view.macnat->owners.find(*src);
      if (it != view.macnat->owners.end() && it->second.device == from) {
        std::atomic<std::uint64_t>& seen = it->second.seen_ms;
        if (seen.load(std::memory_order_relaxed) + 1000 <= now_ms)
          seen.store(now_ms, std::memory_order_relaxed);
      } else if (view.learn != nullptr && !teaches_addresses(frame)) {
        const core::Verdict& v = decisions_[i];
        view.learn->push(worker_, from, frame, v, decisions_.targets(v), v.drop);
      }
    }
  }
  const bool partial = (batch.vnet[i].flags & io::kVnetNeedsCsum) != 0;
  if (decisions_[i].count == 0 && !decisions_[i].queued) {
    core::rewrite_egress(batch.writable(i), view.port->lower().mac, partial);
    return frame;
  }
  // Its copies to other devices are written later (queued TAP writes, the
  // broadcast queue): those keep the frame as it was sent.
  std::vector<std::uint8_t>& copy = nat_copies_[i];
  copy.assign(frame.begin(), frame.end());
  core::rewrite_egress(copy, view.port->lower().mac, partial);
  return copy;
}

void Forwarder::send_wire(const PortView& view, std::size_t n) {
  if (n == 0) return;
  core::PortCounters& drops = view.io->drops[worker_];
  io::PacketLower* wire = worker_ < view.io->rings.size() ? &view.io->rings[worker_] : nullptr;
  core::bump(counters_.copies, n);
  std::size_t done = 0;
  while (done < n) {
    const int r = wire == nullptr
                      ? -ENODEV
                      : wire->send_burst(std::span(wire_frames_).subspan(done, n - done),
                                         std::span(wire_vnet_).subspan(done, n - done));
    if (r > 0) {
      for (int k = 0; k < r; ++k) sent_[wire_index_[done + k]] = true;
      core::bump(counters_.lower_tx_frames, static_cast<std::uint64_t>(r));
      done += static_cast<std::size_t>(r);
      continue;
    }
    // The first of the rest failed (the queue is full, the lower is down):
    // that one is dropped, the others get their own try.
    sent_[wire_index_[done]] = false;
    core::count_drop(drops, core::DropReason::kIoError);
    ++done;
  }
}

// ------------------------------------------------------------------ Dataplane

// What an epoll entry of a worker stands for.
struct Dataplane::Reg {
  enum Kind : std::uint8_t { kWake, kLower, kTap } kind = kWake;
  std::size_t port = 0;  // index in the current view
  core::DeviceId device = core::kNoDevice;
  int fd = -1;
  bool failed = false;     // taken out of epoll after an error
  std::uint64_t seen = 0;  // the last view version that held it
  // A device gets about the same work per loop turn as any other: a device
  // whose frames fan out (a broadcast storm) reads fewer of them; with
  // io_uring, a device that had less to read than asked gets fewer reads
  // queued next time.
  std::size_t burst = io::kBatchSize;
};

namespace {

// io_uring requests are tagged with their kind in the low bits: a Reg's
// read (the Reg's address) or a queued write (its slot).
constexpr std::uint64_t kTagRead = 1;
constexpr std::uint64_t kTagWrite = 2;
constexpr std::uint64_t kTagMask = 7;

// TAP writes queued on the worker's io_uring, submitted by flush() with one
// system call and counted as they complete.
class UringTapWriter final : public TapWriter {
 public:
  UringTapWriter(io::Uring& ring, std::size_t worker) : ring_(ring), worker_(worker) {}

  void write(DeviceIo& dev, std::size_t q, const io::VnetHeader& vnet,
             std::span<const std::uint8_t> frame, bool flood, core::PortCounters& drops) override {
    if (count_ == kSlots) flush();
    Pending& p = pending_[count_];
    p = Pending{&dev, &drops, frame.size(), flood, vnet, {}};
    p.iov[0] = {&p.vnet, sizeof(p.vnet)};
    p.iov[1] = {const_cast<std::uint8_t*>(frame.data()), frame.size()};
    if (!ring_.prep_writev(dev.tap.fd(q), p.iov, 2, (count_ << 3) | kTagWrite)) {
      flush();  // the submission queue is full: make room
      pending_[0] = p;
      pending_[0].iov[0] = {&pending_[0].vnet, sizeof(p.vnet)};
      if (!ring_.prep_writev(dev.tap.fd(q), pending_[0].iov, 2, kTagWrite)) return;
    }
    ++count_;
  }

  // Submits the queued writes, waits for each one's result and counts it.
  // Other completions seen meanwhile (none are expected) are dropped.
  void flush() {
    std::size_t done = 0;
    while (done < count_) {
      const int rc = ring_.submit(static_cast<unsigned>(count_ - done));
      if (rc < 0 && rc != -EINTR) break;
      ring_.drain([&](const io_uring_cqe& cqe) {
        if ((cqe.user_data & kTagMask) != kTagWrite) return;
        const Pending& p = pending_[cqe.user_data >> 3];
        const bool ok = cqe.res == static_cast<int>(p.bytes + sizeof(io::VnetHeader));
        if (!ok) core::count_drop(*p.drops, core::DropReason::kIoError);
        core::count_rx(p.dev->counters[worker_], p.bytes, p.flood, ok);
        ++done;
      });
    }
    count_ = 0;
  }

 private:
  static constexpr std::size_t kSlots = io::Uring::kEntries / 2;
  struct Pending {
    DeviceIo* dev;
    core::PortCounters* drops;
    std::size_t bytes;
    bool flood;
    io::VnetHeader vnet;
    iovec iov[2];
  };

  io::Uring& ring_;
  std::size_t worker_;
  std::array<Pending, kSlots> pending_{};
  std::size_t count_ = 0;
};

}  // namespace

// Floods one worker hands another: a ring of shares the producer fills
// (head) and the consumer empties (tail).
struct Dataplane::Inbox {
  std::array<FloodShare, kInboxSlots> slots;
  alignas(64) std::atomic<std::uint64_t> head{0};
  alignas(64) std::atomic<std::uint64_t> tail{0};
};

// A worker's way into the others' inboxes.
class Dataplane::Sink final : public FloodSink {
 public:
  Sink(Dataplane& dp, Worker& self) : dp_(dp), self_(self) {}
  std::size_t workers() const override { return dp_.workers_.size(); }
  FloodShare* claim(std::size_t w, std::size_t limit) override;
  void commit(std::size_t w) override;

 private:
  Dataplane& dp_;
  Worker& self_;
};

struct Dataplane::Worker {
  explicit Worker(std::size_t i)
      : index(i), fwd(i), rx(core::kMaxFrameSize), tx(core::kMaxFrameSize) {}

  std::size_t index;
  io::OwnedFd epoll;
  io::OwnedFd wake;
  Forwarder fwd;
  io::FrameBatch rx;
  io::FrameBatch tx;
  std::shared_ptr<const DataplaneView> view;
  std::uint64_t version = 0;
  UringTapWriter* writer = nullptr;  // the worker's own, while it runs with io_uring
  std::atomic<std::uint64_t> acked{0};
  std::atomic<std::uint64_t> turns{0};  // written by this worker only
  Reg wake_reg;
  // Keyed by the shared I/O object (PortIo* or DeviceIo*).
  std::unordered_map<const void*, std::unique_ptr<Reg>> regs;
  // inbox[p]: the floods worker p hands this one (none for p == index).
  std::vector<std::unique_ptr<Inbox>> inbox;
  std::unique_ptr<Sink> sink;
  // Set while the worker may block in epoll_wait: a worker that hands it a
  // share then wakes it (sequentially consistent with the inboxes' heads).
  std::atomic<bool> sleeping{false};
  std::thread thread;
};

FloodShare* Dataplane::Sink::claim(std::size_t w, std::size_t limit) {
  Inbox& in = *dp_.workers_[w]->inbox[self_.index];
  const std::uint64_t head = in.head.load(std::memory_order_relaxed);
  const std::uint64_t waiting = head - in.tail.load(std::memory_order_acquire);
  if (waiting >= std::min(limit, kInboxSlots)) return nullptr;
  FloodShare& s = in.slots[head % kInboxSlots];
  s.keep = self_.view;
  s.version = self_.version;
  return &s;
}

void Dataplane::Sink::commit(std::size_t w) {
  Worker& to = *dp_.workers_[w];
  Inbox& in = *to.inbox[self_.index];
  in.head.store(in.head.load(std::memory_order_relaxed) + 1, std::memory_order_seq_cst);
  if (to.sleeping.load(std::memory_order_seq_cst)) {
    const std::uint64_t one = 1;
    (void)!::write(to.wake.get(), &one, sizeof one);
  }
}

bool Dataplane::shares_waiting(const Worker& w) const {
  for (const auto& in : w.inbox) {
    if (in != nullptr &&
        in->head.load(std::memory_order_seq_cst) != in->tail.load(std::memory_order_relaxed))
      return true;
  }
  return false;
}

void Dataplane::take_shares(Worker& w, const std::function<void(Reg&)>& watch,
                            const std::function<void(Reg&)>& unwatch) {
  std::array<std::uint64_t, kMaxWorkers> heads{};
  for (std::size_t p = 0; p < w.inbox.size(); ++p) {
    if (w.inbox[p] != nullptr) heads[p] = w.inbox[p]->head.load(std::memory_order_acquire);
  }
  // A share is never newer than the view published when it was handed
  // over: after this, none is newer than w's.
  if (version_.load(std::memory_order_acquire) != w.version) switch_view(w, watch, unwatch);
  for (std::size_t p = 0; p < w.inbox.size(); ++p) {
    if (w.inbox[p] == nullptr) continue;
    Inbox& in = *w.inbox[p];
    for (std::uint64_t t = in.tail.load(std::memory_order_relaxed); t != heads[p]; ++t) {
      const FloodShare& share = in.slots[t % kInboxSlots];
      const PortView* now = share.port;
      if (share.version != w.version) {
        now = nullptr;
        for (const PortView& pv : w.view->ports) {
          if (pv.io == share.port->io) now = &pv;
        }
      }
      w.fwd.from_share(share, now);
    }
  }
  // The writes read the shares' frames: only then are the slots free again.
  if (w.writer != nullptr) w.writer->flush();
  for (std::size_t p = 0; p < w.inbox.size(); ++p) {
    if (w.inbox[p] == nullptr) continue;
    Inbox& in = *w.inbox[p];
    for (std::uint64_t t = in.tail.load(std::memory_order_relaxed); t != heads[p]; ++t)
      in.slots[t % kInboxSlots].keep.reset();
    in.tail.store(heads[p], std::memory_order_release);
  }
}

Dataplane::Dataplane(std::size_t workers, TapIo io, int poll_us, int max_sleep_ms, Steer steer)
    : poll_us_(poll_us), max_sleep_ms_(max_sleep_ms < 0 ? -1 : max_sleep_ms), io_(io) {
  if (workers == 0) workers = 1;
  if (workers > kMaxWorkers) workers = kMaxWorkers;
  if (steer == Steer::kAdaptive && workers > 1) set_up_steering(workers);
  notice_event_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  view_ = std::make_shared<const DataplaneView>();
  for (std::size_t i = 0; i < workers; ++i) {
    auto w = std::make_unique<Worker>(i);
    w->epoll.reset(::epoll_create1(EPOLL_CLOEXEC));
    w->wake.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = &w->wake_reg;
    ::epoll_ctl(w->epoll.get(), EPOLL_CTL_ADD, w->wake.get(), &ev);
    workers_.push_back(std::move(w));
  }
  if (workers_.size() > 1) {
    for (auto& w : workers_) {
      w->inbox.resize(workers_.size());
      for (std::size_t p = 0; p < workers_.size(); ++p) {
        if (p != w->index) w->inbox[p] = std::make_unique<Inbox>();
      }
      w->sink = std::make_unique<Sink>(*this, *w);
      w->fwd.set_flood_sink(w->sink.get());
    }
  }
  for (auto& w : workers_) {
    Worker* raw = w.get();
    raw->thread = std::thread([this, raw] { run(*raw); });
  }
}

void Dataplane::set_up_steering(std::size_t workers) {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (::sched_getaffinity(0, sizeof allowed, &allowed) != 0) return;
  std::vector<int> cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &allowed)) cpus.push_back(c);
  }
  if (cpus.empty()) return;
  // Worker w on the w-th CPU we may use (round and round when there are
  // more workers than CPUs); a CPU's frames go to the first worker on it,
  // a CPU without one to some worker.
  std::vector<std::uint32_t> queue_of_cpu(static_cast<std::size_t>(cpus.back()) + 1);
  for (std::size_t c = 0; c < queue_of_cpu.size(); ++c)
    queue_of_cpu[c] = static_cast<std::uint32_t>(c % workers);
  for (std::size_t w = 0; w < workers; ++w) worker_cpus_.push_back(cpus[w % cpus.size()]);
  for (std::size_t k = 0; k < cpus.size(); ++k)
    queue_of_cpu[static_cast<std::size_t>(cpus[k])] = static_cast<std::uint32_t>(k % workers);
  std::string why;
  if (const int rc = io::Steering::open(queue_of_cpu, &steering_, &why); rc < 0) {
    spdlog::warn("dataplane: no steering by CPU ({}); frames go to the workers by flow", why);
    return;
  }
  for (std::size_t c = 0; c < steering_.cpus(); ++c) own_.push_back(steering_.queue(c));
  if (const int rc = load_.open(); rc < 0) {
    spdlog::warn("dataplane: cannot read /proc/stat ({}): frames always go to their CPU's worker",
                 std::strerror(-rc));
  }
}

int Dataplane::worker_cpu(std::size_t w) const {
  return w < worker_cpus_.size() ? worker_cpus_[w] : -1;
}

void Dataplane::rebalance(std::chrono::steady_clock::time_point now) {
  const std::int64_t ns = now.time_since_epoch().count();
  if (ns < next_sample_ns_.load(std::memory_order_relaxed)) return;
  std::unique_lock<std::mutex> lock(load_mutex_, std::try_to_lock);
  if (!lock.owns_lock()) return;
  next_sample_ns_.store(
      ns + std::chrono::nanoseconds(std::chrono::milliseconds(kLoadSampleMs)).count(),
      std::memory_order_relaxed);
  if (load_.sample(&busy_) < 0) return;
  // Each worker's share of the time since the last sample (its turns with
  // work), to tell a CPU saturated by its worker from one saturated by
  // something else.
  const std::size_t nw = workers_.size();
  if (worker_busy_ns_.size() != nw) {
    worker_busy_ns_.assign(nw, 0);
    worker_share_.assign(nw, 0.0);
  }
  for (std::size_t w = 0; w < nw; ++w) {
    const std::uint64_t b = relaxed(workers_[w]->fwd.counters().busy_ns);
    worker_share_[w] = last_sample_ns_ > 0 && ns > last_sample_ns_
                           ? static_cast<double>(b - worker_busy_ns_[w]) /
                                 static_cast<double>(ns - last_sample_ns_)
                           : 0.0;
    worker_busy_ns_[w] = b;
  }
  last_sample_ns_ = ns;
  if (saturated_.size() != busy_.size()) saturated_.assign(busy_.size(), 0);
  for (std::size_t c = 0; c < busy_.size(); ++c) {
    if (busy_[c] >= kSaturatedBusy) {
      saturated_[c] = 1;
    } else if (busy_[c] >= 0 && busy_[c] < kCalmBusy) {
      saturated_[c] = 0;
    }
  }
  away_.resize(busy_.size());
  for (std::size_t c = 0; c < busy_.size(); ++c) away_[c] = steering_.away(c);
  const auto next =
      decide_steering(SteerSample{busy_, saturated_, worker_share_, worker_cpus_, own_, away_});
  for (std::size_t c = 0; c < next.size(); ++c) {
    if (next[c] == away_[c]) continue;
    if (next[c]) {
      steering_.set_away(c, *next[c]);
    } else {
      steering_.set_calm(c);
    }
  }
}

Dataplane::~Dataplane() {
  stop_.store(true);
  for (auto& w : workers_) {
    const std::uint64_t one = 1;
    (void)!::write(w->wake.get(), &one, sizeof one);
  }
  for (auto& w : workers_) {
    if (w->thread.joinable()) w->thread.join();
  }
}

std::uint64_t Dataplane::publish(std::shared_ptr<const DataplaneView> view) {
  std::uint64_t v;
  {
    std::lock_guard<std::mutex> lock(view_mutex_);
    view_ = std::move(view);
    v = version_.load() + 1;
    version_.store(v, std::memory_order_release);
  }
  for (auto& w : workers_) {
    const std::uint64_t one = 1;
    (void)!::write(w->wake.get(), &one, sizeof one);
  }
  return v;
}

bool Dataplane::wait_for(std::uint64_t version, int timeout_ms) {
  std::unique_lock<std::mutex> lock(ack_mutex_);
  return acked_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] {
    for (const auto& w : workers_) {
      if (w->acked.load(std::memory_order_acquire) < version) return false;
    }
    return true;
  });
}

void Dataplane::notify(const Notice& n) {
  {
    std::lock_guard<std::mutex> lock(notice_mutex_);
    notices_.push_back(n);
  }
  const std::uint64_t one = 1;
  (void)!::write(notice_event_.get(), &one, sizeof one);
}

std::vector<Notice> Dataplane::take_notices() {
  std::uint64_t count;
  (void)!::read(notice_event_.get(), &count, sizeof count);
  std::lock_guard<std::mutex> lock(notice_mutex_);
  return std::exchange(notices_, {});
}

core::DeviceCounters Dataplane::device_counters(const DeviceIo& dev) {
  core::DeviceCounters sum;
  for (std::size_t w = 0; w < kMaxWorkers; ++w) {
    const core::DeviceCounters& c = dev.counters[w];
    sum.rx_packets += relaxed(c.rx_packets);
    sum.rx_bytes += relaxed(c.rx_bytes);
    sum.rx_multicast += relaxed(c.rx_multicast);
    sum.rx_dropped += relaxed(c.rx_dropped);
    sum.tx_packets += relaxed(c.tx_packets);
    sum.tx_bytes += relaxed(c.tx_bytes);
    sum.tx_dropped += relaxed(c.tx_dropped);
  }
  return sum;
}

core::PortCounters Dataplane::port_counters(const PortIo& port) {
  core::PortCounters sum;
  for (std::size_t w = 0; w < kMaxWorkers; ++w) {
    for (std::size_t r = 0; r < sum.drops.size(); ++r)
      sum.drops[r] += relaxed(port.drops[w].drops[r]);
  }
  return sum;
}

WorkerCounters Dataplane::worker_counters(std::size_t w) const {
  WorkerCounters c;
  if (w >= workers_.size()) return c;
  const WorkerCounters& src = workers_[w]->fwd.counters();
  c.copies = relaxed(src.copies);
  c.lower_rx_frames = relaxed(src.lower_rx_frames);
  c.lower_tx_frames = relaxed(src.lower_tx_frames);
  c.tap_rx_frames = relaxed(src.tap_rx_frames);
  c.oversize = relaxed(src.oversize);
  c.bursts = relaxed(src.bursts);
  c.busy_ns = relaxed(src.busy_ns);
  c.shares_out = relaxed(src.shares_out);
  c.shares_in = relaxed(src.shares_in);
  return c;
}

std::uint64_t Dataplane::heartbeat(std::size_t w) const {
  return w < workers_.size() ? workers_[w]->turns.load(std::memory_order_relaxed) : 0;
}

void Dataplane::switch_view(Worker& w, const std::function<void(Reg&)>& watch,
                            const std::function<void(Reg&)>& unwatch) {
  std::shared_ptr<const DataplaneView> next;
  std::uint64_t version;
  {
    std::lock_guard<std::mutex> lock(view_mutex_);
    next = view_;
    version = version_.load(std::memory_order_relaxed);
  }
  // Marks what the new view holds (the registrations stay where they are:
  // with a thousand devices, building a new map per view was most of the
  // workers' share of a `link add`), then sweeps out the rest.
  auto keep = [&](const void* key, Reg::Kind kind, std::size_t port, core::DeviceId dev, int fd) {
    if (fd < 0) return;
    auto [it, fresh] = w.regs.try_emplace(key);
    if (fresh) {
      it->second = std::make_unique<Reg>();
      it->second->kind = kind;
      it->second->fd = fd;
      watch(*it->second);
    }
    Reg& r = *it->second;
    r.port = port;
    r.device = dev;
    r.seen = version;
  };
  for (std::size_t p = 0; p < next->ports.size(); ++p) {
    const PortView& pv = next->ports[p];
    if (w.index < pv.io->rings.size())
      keep(pv.io.get(), Reg::kLower, p, core::kNoDevice, pv.io->rings[w.index].fd());
    for (const auto& dev : pv.devices) {
      if (dev != nullptr) keep(dev.get(), Reg::kTap, p, dev->id, dev->tap.fd(w.index));
    }
  }
  std::erase_if(w.regs, [&](auto& entry) {
    Reg& r = *entry.second;
    if (r.seen == version) return false;
    if (!r.failed) unwatch(r);  // gone from the view
    return true;
  });
  w.view = std::move(next);  // the old view's objects may close now
  w.version = version;
  {
    std::lock_guard<std::mutex> lock(ack_mutex_);
    w.acked.store(version, std::memory_order_release);
  }
  acked_.notify_all();
}

void Dataplane::run(Worker& w) {
  if (const int cpu = worker_cpu(w.index); cpu >= 0) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    if (::sched_setaffinity(0, sizeof one, &one) != 0)
      spdlog::warn("dataplane: worker {} stays unpinned: {}", w.index, std::strerror(errno));
  }
  // The ring belongs to this thread (a single issuer).
  std::unique_ptr<io::Uring> uring;
  std::unique_ptr<UringTapWriter> writer;
  if (io_ != TapIo::kSyscalls) {
    uring = std::make_unique<io::Uring>();
    if (const int rc = uring->open(); rc < 0) {
      uring.reset();
    } else {
      writer = std::make_unique<UringTapWriter>(*uring, w.index);
      w.fwd.set_writer(writer.get());
      w.writer = writer.get();
    }
  }
  if (w.index == 0) {
    chosen_io_.store(uring ? TapIo::kUring : TapIo::kSyscalls);
    std::string steer;
    if (steering_.valid()) {
      steer = ", each worker pinned to a CPU (";
      for (std::size_t i = 0; i < worker_cpus_.size(); ++i)
        steer += (i > 0 ? ", " : "") + std::to_string(worker_cpus_[i]);
      steer +=
          ") takes the frames that arrive there, those of a saturated CPU go to one that is not";
    } else if (workers_.size() > 1) {
      steer = worker_cpus_.empty() ? ", frames to workers by flow"
                                   : ", workers pinned to CPUs, frames to them by flow";
    }
    spdlog::info("dataplane: {} worker(s), TAP reads and writes {}, polling {} us after work{}",
                 workers_.size(), uring ? "batched through io_uring" : "one system call each",
                 poll_us_, steer);
  }

  auto watch = [&](Reg& r) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = &r;
    ::epoll_ctl(w.epoll.get(), EPOLL_CTL_ADD, r.fd, &ev);
  };
  auto unwatch = [&](Reg& r) {
    if (!r.failed && r.fd >= 0) ::epoll_ctl(w.epoll.get(), EPOLL_CTL_DEL, r.fd, nullptr);
    r.failed = true;
  };
  auto tap_failed = [&](Reg& r, int err) {
    // The device or its namespace is gone: stop watching, tell control.
    unwatch(r);
    notify(Notice{Notice::kTapFailed, w.view->ports[r.port].io.get(), r.device, err});
  };
  // One device's burst: decide and emit, then size its next burst by the
  // copies per frame, so that one turn costs about kBatchSize copies
  // whatever the fan-out.
  auto forward = [&](Reg& r, io::FrameBatch& batch) {
    const PortView& pv = w.view->ports[r.port];
    const std::uint64_t before = w.fwd.counters().copies;
    w.fwd.from_device(pv, r.device, batch);
    const std::uint64_t copies = w.fwd.counters().copies - before;
    const std::size_t n = std::max<std::size_t>(batch.count, 1);
    const std::size_t fanout = static_cast<std::size_t>((copies + n - 1) / n);
    return io::kBatchSize / std::max<std::size_t>(fanout, 1);
  };

  // With io_uring: the reads of every ready TAP go in together, then the
  // frames are forwarded device by device, then the writes go out together.
  struct Read {
    Reg* reg;
    int res;
    unsigned buffer;
    bool has_buffer;
  };
  std::vector<Read> reads;
  std::vector<unsigned> buffers;
  std::vector<Reg*> ready_taps;
  if (uring) {
    reads.reserve(io::Uring::kEntries);
    buffers.reserve(io::Uring::kBuffers);
  }

  using Clock = std::chrono::steady_clock;
  // Its count is what the steering program's clock reads (bpf_ktime_get_ns:
  // CLOCK_MONOTONIC, nanoseconds).
  static_assert(std::is_same_v<Clock::period, std::nano>);
  // Adds the time from its making to its end to total (the worker's busy_ns).
  struct BusyClock {
    std::uint64_t& total;
    Clock::time_point start = Clock::now();
    ~BusyClock() {
      const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start);
      core::bump(total, static_cast<std::uint64_t>(ns.count()));
    }
  };
  Clock::time_point spin_until;
  epoll_event evs[kEventsPerWait];
  std::uint64_t turns = 0;
  while (!stop_.load(std::memory_order_relaxed)) {
    // A plain store, no read-modify-write: the only writer is this thread.
    w.turns.store(++turns, std::memory_order_relaxed);
    if (version_.load(std::memory_order_acquire) != w.version) switch_view(w, watch, unwatch);
    if (!w.inbox.empty() && shares_waiting(w)) {
      BusyClock busy{w.fwd.counters().busy_ns};
      take_shares(w, watch, unwatch);
    }
    // For a while after work, look again without sleeping: waking a
    // sleeping thread (an interrupt, the scheduler) costs more latency than
    // the next frame is away. Idle, the worker sleeps and costs nothing.
    const bool spinning = poll_us_ > 0 && Clock::now() < spin_until;
    int timeout = spinning ? 0 : max_sleep_ms_;
    if (timeout != 0 && !w.inbox.empty()) {
      // Either a share handed over from here on sees this and wakes us, or
      // we see it now.
      w.sleeping.store(true, std::memory_order_seq_cst);
      if (shares_waiting(w)) timeout = 0;
    }
    // With steering, one look without waiting first: finding nothing, the
    // worker has forwarded everything queued for it before that look, and
    // says so (Steering::caught_up); a flow leaves its queue only after
    // that (no frame of it can then pass another).
    const bool steered = steering_.valid();
    const auto looked = steered ? Clock::now() : Clock::time_point{};
    int n = ::epoll_wait(w.epoll.get(), evs, kEventsPerWait, steered ? 0 : timeout);
    if (steered && n == 0) {
      steering_.caught_up(static_cast<std::uint32_t>(w.index),
                          static_cast<std::uint64_t>(looked.time_since_epoch().count()));
      if (timeout != 0) n = ::epoll_wait(w.epoll.get(), evs, kEventsPerWait, timeout);
    }
    w.sleeping.store(false, std::memory_order_relaxed);
    if (n < 0) continue;  // EINTR
    if (n == 0) continue;
    // Busy from here to the end of the turn, whichever way it ends.
    BusyClock busy{w.fwd.counters().busy_ns};
    if (poll_us_ > 0) spin_until = busy.start + std::chrono::microseconds(poll_us_);
    if (steering_.valid()) rebalance(busy.start);
    ready_taps.clear();
    for (int i = 0; i < n; ++i) {
      Reg& r = *static_cast<Reg*>(evs[i].data.ptr);
      if (r.kind == Reg::kWake) {
        std::uint64_t count;
        (void)!::read(w.wake.get(), &count, sizeof count);
        continue;
      }
      if (r.failed) continue;
      const PortView& pv = w.view->ports[r.port];
      if (r.kind == Reg::kLower) {
        io::PacketLower& ring = pv.io->rings[w.index];
        if ((evs[i].events & EPOLLERR) != 0) {
          // Reading the error clears it: the loop does not spin on it.
          if (const int err = ring.pending_error(); err < 0)
            notify(Notice{Notice::kLowerError, pv.io.get(), core::kNoDevice, err});
        }
        // The frames stay in the ring while they are forwarded: no copy.
        if (ring.receive_views(w.rx) > 0 || w.rx.dropped_oversize > 0 ||
            w.rx.dropped_ring_full > 0) {
          w.fwd.from_lower(pv, w.rx);
          if (writer) writer->flush();  // the writes read the ring's slots
        }
        ring.release_views();
        continue;
      }
      if (uring) {
        ready_taps.push_back(&r);
        continue;
      }
      DeviceIo& dev = *pv.devices[r.device];
      const int got = dev.tap.read_burst(w.index, w.tx, r.burst);
      if (w.tx.count > 0 || w.tx.dropped_oversize > 0)
        r.burst = std::clamp<std::size_t>(forward(r, w.tx), 4, io::kBatchSize);
      const bool hung_up = (evs[i].events & (EPOLLERR | EPOLLHUP)) != 0 && w.tx.count == 0;
      if ((got < 0 && got != -EAGAIN && got != -EINTR) || hung_up)
        tap_failed(r, got < 0 ? got : -EBADFD);
    }
    if (!uring || ready_taps.empty()) continue;

    // The reads: r.burst of them for each ready TAP, in one call.
    reads.clear();
    std::size_t queued = 0;
    for (Reg* r : ready_taps) {
      for (std::size_t k = 0; k < r->burst && queued < io::Uring::kEntries / 2; ++k) {
        if (!uring->prep_read(r->fd, reinterpret_cast<std::uint64_t>(r) | kTagRead)) break;
        ++queued;
      }
    }
    while (uring->submit(static_cast<unsigned>(queued)) == -EINTR) {
    }
    uring->drain([&](const io_uring_cqe& cqe) {
      if ((cqe.user_data & kTagMask) != kTagRead) return;
      reads.push_back(Read{reinterpret_cast<Reg*>(cqe.user_data & ~kTagMask), cqe.res,
                           io::Uring::buffer_id(cqe), io::Uring::has_buffer(cqe)});
    });
    // Each TAP's frames, in the order read, as one batch; their writes go
    // out together at the end, and only then are the buffers free again.
    buffers.clear();
    for (std::size_t i = 0; i < reads.size();) {
      Reg& r = *reads[i].reg;
      io::FrameBatch& batch = w.tx;
      batch.clear();
      std::size_t got = 0, asked = 0;
      int error = 0;
      for (; i < reads.size() && reads[i].reg == &r; ++i) {
        const Read& rd = reads[i];
        ++asked;
        if (rd.has_buffer) buffers.push_back(rd.buffer);
        if (rd.res < 0) {
          if (rd.res != -EAGAIN && rd.res != -EINTR && rd.res != -ENOBUFS) error = rd.res;
          continue;
        }
        const std::size_t len = static_cast<std::size_t>(rd.res);
        if (!rd.has_buffer || len < sizeof(io::VnetHeader) || batch.count == io::kBatchSize)
          continue;
        const std::span<std::uint8_t> buf = uring->buffer(rd.buffer);
        io::VnetHeader vnet;
        std::memcpy(&vnet, buf.data(), sizeof vnet);
        batch.add_view(buf.subspan(sizeof vnet, len - sizeof vnet), vnet);
        ++got;
      }
      if (r.failed) continue;
      std::size_t next = r.burst;
      if (batch.count > 0) next = forward(r, batch);
      // Fewer reads next time when this one came back partly empty.
      if (got < asked) next = std::min(next, std::max<std::size_t>(got * 2, 4));
      r.burst = std::clamp<std::size_t>(next, 4, io::kBatchSize);
      if (error != 0 && got == 0) tap_failed(r, error);
    }
    writer->flush();
    for (unsigned b : buffers) uring->recycle(b);
  }
}

}  // namespace umacvlan::daemon
