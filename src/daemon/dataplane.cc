#include "daemon/dataplane.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <unordered_map>

namespace umacvlan::daemon {
namespace {

constexpr std::size_t kEthHeader = 14;
constexpr std::size_t kVlanHeader = 4;
constexpr int kEventsPerWait = 64;

// What the kernel's virtio_net_hdr_to_skb() refuses in a header.
bool vnet_ok(const io::VnetHeader& h, std::size_t len) {
  const std::uint8_t type = h.gso_type & static_cast<std::uint8_t>(~io::kVnetGsoEcn);
  constexpr std::uint8_t kGsoUdp = 3, kGsoUdpL4 = 5;
  if (type != io::kVnetGsoNone && type != io::kVnetGsoTcpv4 && type != io::kVnetGsoTcpv6 &&
      type != kGsoUdp && type != kGsoUdpL4)
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
  core::PortCounters& drops = view.io->drops[worker_];
  for (const core::Target& t : decisions_.targets(v)) {
    DeviceIo* dev = t.device < view.devices.size() ? view.devices[t.device].get() : nullptr;
    if (dev == nullptr || !dev->tap.valid()) continue;
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
    if (ok) {
      ++counters_.copies;
      ok = dev->tap.write(worker_ % dev->tap.queue_count(), vnet, frame) == 0;
      if (!ok) core::count_drop(drops, core::DropReason::kIoError);
    }
    core::count_rx(dev->counters[worker_], frame.size(), t.reason == core::Reason::kFlood, ok);
  }
}

void Forwarder::from_lower(const PortView& view, const io::FrameBatch& batch) {
  ++counters_.bursts;
  counters_.lower_rx_frames += batch.count;
  counters_.oversize += batch.dropped_oversize;
  decisions_.clear();
  for (std::size_t i = 0; i < batch.count; ++i) view.port->receive(batch[i], decisions_);
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

void Forwarder::from_device(const PortView& view, core::DeviceId from,
                            const io::FrameBatch& batch) {
  ++counters_.bursts;
  counters_.tap_rx_frames += batch.count;
  counters_.oversize += batch.dropped_oversize;
  DeviceIo* src = from < view.devices.size() ? view.devices[from].get() : nullptr;
  if (src == nullptr) return;
  decisions_.clear();
  for (std::size_t i = 0; i < batch.count; ++i) view.port->transmit(from, batch[i], decisions_);
  core::PortCounters& drops = view.io->drops[worker_];
  io::PacketLower* wire = worker_ < view.io->rings.size() ? &view.io->rings[worker_] : nullptr;
  for (std::size_t i = 0; i < batch.count; ++i) {
    const core::Verdict& v = decisions_[i];
    const std::span<const std::uint8_t> frame = batch[i];
    if (v.drop == core::DropReason::kNone && !vnet_ok(batch.vnet[i], frame.size())) {
      core::count_drop(drops, core::DropReason::kBadVnet);
      core::count_tx(src->counters[worker_], frame.size(), false);
      continue;
    }
    core::count_drop(drops, v.drop);
    deliver(view, frame, batch.vnet[i], v, false, true);
    bool sent = !sender_dropped(v.drop);
    if (v.to_wire) {
      ++counters_.copies;
      sent = wire != nullptr && wire->send(batch.vnet[i], frame) == 0;
      if (sent) {
        ++counters_.lower_tx_frames;
      } else {
        core::count_drop(drops, core::DropReason::kIoError);
      }
    }
    core::count_tx(src->counters[worker_], frame.size(), sent);
  }
  for (std::size_t i = 0; i < batch.count; ++i) {
    if (decisions_[i].queued) deliver(view, batch[i], batch.vnet[i], decisions_[i], true, true);
  }
}

// ------------------------------------------------------------------ Dataplane

struct Dataplane::Worker {
  // What an epoll entry of this worker stands for.
  struct Reg {
    enum Kind : std::uint8_t { kWake, kLower, kTap } kind = kWake;
    std::size_t port = 0;  // index in the current view
    core::DeviceId device = core::kNoDevice;
    int fd = -1;
    bool failed = false;  // taken out of epoll after an error
    // A device gets about the same work per loop turn as any other: a
    // device whose frames fan out (a broadcast storm) reads fewer of them.
    std::size_t burst = io::kBatchSize;
  };

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
  std::atomic<std::uint64_t> acked{0};
  Reg wake_reg;
  // Keyed by the shared I/O object (PortIo* or DeviceIo*).
  std::unordered_map<const void*, std::unique_ptr<Reg>> regs;
  std::thread thread;
};

Dataplane::Dataplane(std::size_t workers) {
  if (workers == 0) workers = 1;
  if (workers > kMaxWorkers) workers = kMaxWorkers;
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
  for (auto& w : workers_) {
    Worker* raw = w.get();
    raw->thread = std::thread([this, raw] { run(*raw); });
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
  c.lower_rx_frames = relaxed(src.lower_rx_frames);
  c.lower_tx_frames = relaxed(src.lower_tx_frames);
  c.tap_rx_frames = relaxed(src.tap_rx_frames);
  c.oversize = relaxed(src.oversize);
  c.bursts = relaxed(src.bursts);
  return c;
}

void Dataplane::run(Worker& w) {
  using Reg = Worker::Reg;
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
  // Moves to the newest view: watches what is new, lets go of what is gone.
  auto switch_view = [&] {
    std::shared_ptr<const DataplaneView> next;
    std::uint64_t version;
    {
      std::lock_guard<std::mutex> lock(view_mutex_);
      next = view_;
      version = version_.load(std::memory_order_relaxed);
    }
    std::unordered_map<const void*, std::unique_ptr<Reg>> regs;
    auto keep = [&](const void* key, Reg::Kind kind, std::size_t port, core::DeviceId dev, int fd) {
      if (fd < 0) return;
      auto it = w.regs.find(key);
      std::unique_ptr<Reg> r;
      if (it != w.regs.end()) {
        r = std::move(it->second);
        w.regs.erase(it);
      } else {
        r = std::make_unique<Reg>();
        r->kind = kind;
        r->fd = fd;
        watch(*r);
      }
      r->port = port;
      r->device = dev;
      regs.emplace(key, std::move(r));
    };
    for (std::size_t p = 0; p < next->ports.size(); ++p) {
      const PortView& pv = next->ports[p];
      if (w.index < pv.io->rings.size())
        keep(pv.io.get(), Reg::kLower, p, core::kNoDevice, pv.io->rings[w.index].fd());
      for (const auto& dev : pv.devices) {
        if (dev != nullptr) keep(dev.get(), Reg::kTap, p, dev->id, dev->tap.fd(w.index));
      }
    }
    for (auto& [key, r] : w.regs) unwatch(*r);  // gone from the view
    w.regs = std::move(regs);
    w.view = std::move(next);  // the old view's objects may close now
    w.version = version;
    {
      std::lock_guard<std::mutex> lock(ack_mutex_);
      w.acked.store(version, std::memory_order_release);
    }
    acked_.notify_all();
  };

  epoll_event evs[kEventsPerWait];
  while (!stop_.load(std::memory_order_relaxed)) {
    if (version_.load(std::memory_order_acquire) != w.version) switch_view();
    const int n = ::epoll_wait(w.epoll.get(), evs, kEventsPerWait, -1);
    if (n < 0) continue;  // EINTR
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
        if (ring.receive_burst(w.rx) > 0 || w.rx.dropped_oversize > 0) w.fwd.from_lower(pv, w.rx);
        continue;
      }
      DeviceIo& dev = *pv.devices[r.device];
      const int got = dev.tap.read_burst(w.index, w.tx, r.burst);
      if (w.tx.count > 0 || w.tx.dropped_oversize > 0) {
        const std::uint64_t before = w.fwd.counters().copies;
        w.fwd.from_device(pv, r.device, w.tx);
        // Copies per frame of this burst set the next burst's size, so that
        // one turn costs about kBatchSize copies whatever the fan-out.
        const std::uint64_t copies = w.fwd.counters().copies - before;
        const std::size_t fanout = static_cast<std::size_t>((copies + w.tx.count - 1) /
                                                            std::max<std::size_t>(w.tx.count, 1));
        r.burst = std::clamp<std::size_t>(io::kBatchSize / std::max<std::size_t>(fanout, 1), 4,
                                          io::kBatchSize);
      }
      const bool hung_up = (evs[i].events & (EPOLLERR | EPOLLHUP)) != 0 && w.tx.count == 0;
      if ((got < 0 && got != -EAGAIN && got != -EINTR) || hung_up) {
        // The device or its namespace is gone: stop watching, tell control.
        unwatch(r);
        notify(Notice{Notice::kTapFailed, pv.io.get(), r.device, got < 0 ? got : -EBADFD});
      }
    }
  }
}

}  // namespace umacvlan::daemon
