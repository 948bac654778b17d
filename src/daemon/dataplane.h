// Dataplane: worker threads that move bursts of frames between each port's
// lower and its devices, doing exactly what the core decided.
//
// The split with the control path: the control thread owns every decision
// about configuration and publishes it as an immutable DataplaneView (the
// core::Port of each port, as a value, plus the I/O objects of its lower and
// devices). Workers read the newest published view at the top of each loop
// and never wait for the control thread: publishing is a pointer swap, and a
// worker picks the new view up between bursts. The I/O objects are shared
// (shared_ptr): a device the control path removed stays open until the last
// worker has moved to a view without it, so a worker never reads an fd that
// was closed and reused under it; wait_for() tells the control path when
// that has happened (a `link del` answers only once the device is gone).
//
// Frames keep the virtio-net header their source gave them (a device's GSO
// super-frame, a partial checksum): every TAP write and lower send of a frame
// carries the header it was read with, so the kernel segments or checksums
// only where the receiver needs it. The core sees the frames, never the
// headers; the Forwarder checks the headers the kernel would refuse
// (DropReason::kBadVnet) and the lengths it would not forward from one
// device to another (kTooBig, as the kernel's is_skb_forwardable()).
//
// Contract
// - Each worker w has its own epoll, reads the lower through the ring of its
//   own (PortIo::rings[w], one PACKET_FANOUT group per port when there are
//   several) and each device through its own TAP queue (queue w, when the
//   device has that many), and writes through those same fds. Each ready fd
//   gets one burst per loop turn, so one busy device cannot starve the
//   others.
// - Which worker a frame reaches is the kernel's choice, steered (Steer
//   below): by default each worker is pinned to a CPU and gets the frames
//   that arrive on it; a saturated CPU's go to a CPU with time to spare.
// - A flood through the broadcast queue (from the lower; a device's floods
//   reach its siblings inline, in order with its unicasts, as in the
//   kernel) to kSplitMin devices or more is shared out among the workers:
//   the worker that decided it writes the copies of the devices it owns
//   (DeviceId modulo the workers) and hands each other worker a copy of the
//   frame with that worker's devices (FloodShare, through a single-producer
//   ring per pair of workers, in order, so each device still gets a port's
//   floods in the order one worker decided them). A share keeps the view
//   it was decided in alive; the receiving worker writes only to devices
//   its own view still has, so a device the control path removed gets
//   nothing after wait_for(). A full ring (more than the port's bcqueuelen,
//   or kInboxSlots, floods waiting) drops the flood for every device, as
//   the kernel's full broadcast queue does (kBcQueueFull). Shares cost no
//   allocation once a ring's slots have grown to the largest flood.
// - Counters are per worker (single writer, cache-line apart); the control
//   path sums them (device_counters(), port_counters()). Nothing on the data
//   path allocates per frame, logs, or waits for a lock (the CPU-load look
//   of rebalance() is claimed with a try_lock, every kLoadSampleMs at most).
// - A port with a capture running (PortView::capture) has each decided
//   burst offered to its CaptureTap before it is written (capture_tap.h).
// - macnat (PortView::macnat): a frame from the lower addressed to the
//   lower's MAC whose destination address has an owner is rewritten for
//   that device (core::rewrite_ingress) before the port decides; a device's
//   frame that goes out the lower is rewritten (core::rewrite_egress) after
//   the copies to other devices are taken, in place when it has none, else
//   in a scratch copy. The taps (capture, learn) see a device's frames as
//   it sent them, and frames from the lower as the port decided on them
//   (rewritten for their device).
// - What a worker cannot fix itself, it reports as a Notice and stops
//   watching that fd: a TAP that failed (its device was deleted or its
//   namespace died), a lower whose socket reported an error (it went down or
//   away: the error is read and cleared, so the loop never spins on it).
//   notice_fd() becomes readable; take_notices() empties the queue.
// - Liveness: each worker counts its loop turns (heartbeat(), one relaxed
//   store per turn). Given a max_sleep_ms, an idle worker still turns at
//   least that often, so a count that stands still means a worker stuck in
//   a turn (the daemon then stops feeding the service manager's watchdog).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/ip_table.h"
#include "core/port.h"
#include "daemon/capture_tap.h"
#include "io/cpu_load.h"
#include "io/frame_batch.h"
#include "io/owned_fd.h"
#include "io/packet_lower.h"
#include "io/steering.h"
#include "io/tap_device.h"

namespace umacvlan::daemon {

inline constexpr std::size_t kMaxWorkers = 8;

// One counter set per worker, each on its own cache line.
template <typename T>
struct PerWorker {
  struct alignas(64) Slot {
    T value{};
  };
  std::array<Slot, kMaxWorkers> slots{};
  T& operator[](std::size_t w) { return slots[w].value; }
  const T& operator[](std::size_t w) const { return slots[w].value; }
};

// What the data path needs of a device: its TAP queues and its counters.
struct DeviceIo {
  core::DeviceId id = core::kNoDevice;
  io::TapDevice tap;
  PerWorker<core::DeviceCounters> counters;
};

// What the data path needs of a port's lower: one ring per worker, and the
// drops by reason.
struct PortIo {
  std::vector<io::PacketLower> rings;
  PerWorker<core::PortCounters> drops;
};

// macnat's table as the data path reads it: which device owns an address
// (its MAC is the published port's). Immutable once published, but for the
// stamps: a worker that forwards a device's frame from a known address
// stores the time (at most once a second per entry), so the control path
// ages out only what is really silent.
struct MacNatOwner {
  core::DeviceId device = core::kNoDevice;
  mutable std::atomic<std::uint64_t> seen_ms{0};  // steady clock, milliseconds
};
struct MacNatView {
  std::unordered_map<core::IpAddress, MacNatOwner, core::IpAddressHash> owners;
};

struct PortView {
  std::shared_ptr<const core::Port> port;
  std::shared_ptr<PortIo> io;
  std::vector<std::shared_ptr<DeviceIo>> devices;  // by DeviceId; null for free slots
  std::shared_ptr<CaptureTap> capture;             // while a capture runs on the port
  // hostaccess or macnat: the port's ARP, NDP and DHCP frames (and, with
  // macnat, a device's frames from an address the table does not give it),
  // for learning addresses.
  std::shared_ptr<CaptureTap> learn;
  // macnat on: frames out of the lower leave with the lower's MAC; frames
  // for the lower's MAC go to the owner of their destination address.
  std::shared_ptr<const MacNatView> macnat;
};

struct DataplaneView {
  std::vector<PortView> ports;
};

// What a worker could not handle.
struct Notice {
  enum Kind : std::uint8_t { kTapFailed, kLowerError } kind;
  const PortIo* port = nullptr;  // identifies the port
  core::DeviceId device = core::kNoDevice;
  int error = 0;  // negative errno
};

// Where a Forwarder's TAP writes go when not written at once: queued (on an
// io_uring) and counted when they complete.
class TapWriter {
 public:
  virtual ~TapWriter() = default;
  // A copy for dev through its queue q; counted as rx on dev (multicast when
  // flood) or as a drop (kIoError, on drops) once written. frame must stay
  // valid until the writer's flush.
  virtual void write(DeviceIo& dev, std::size_t q, const io::VnetHeader& vnet,
                     std::span<const std::uint8_t> frame, bool flood,
                     core::PortCounters& drops) = 0;
};

// The copies of one queued flood that another worker writes: the frame as
// decided (its own copy), and that worker's devices.
struct FloodShare {
  std::shared_ptr<const void> keep;  // holds what `port` lives in (the view)
  const PortView* port = nullptr;    // where the flood was decided
  std::uint64_t version = 0;         // the deciding worker's view version
  io::VnetHeader vnet;
  bool from_device = false;
  std::vector<std::uint8_t> frame;    // capacity kept from flood to flood
  std::vector<core::Target> targets;  // capacity kept from flood to flood
};

// Where a Forwarder hands the copies other workers write.
class FloodSink {
 public:
  virtual ~FloodSink() = default;
  virtual std::size_t workers() const = 0;
  // A free share for worker w, to fill and commit(w), while fewer than limit
  // wait for w; null when that many do (the flood is then dropped). A share
  // claimed and not committed has its keep reset by the caller.
  virtual FloodShare* claim(std::size_t w, std::size_t limit) = 0;
  // Hands the share claim(w) gave over to w.
  virtual void commit(std::size_t w) = 0;
};

// Per-worker totals (beyond the per-device and per-port counters).
struct WorkerCounters {
  std::uint64_t copies = 0;  // TAP writes and lower sends attempted
  std::uint64_t lower_rx_frames = 0;
  std::uint64_t lower_tx_frames = 0;
  std::uint64_t tap_rx_frames = 0;  // frames read from devices
  std::uint64_t oversize = 0;       // frames bigger than a slot (never forwarded)
  std::uint64_t bursts = 0;
  std::uint64_t busy_ns = 0;     // time spent on turns that had work (not waiting)
  std::uint64_t shares_out = 0;  // floods handed to other workers (one per share)
  std::uint64_t shares_in = 0;   // shares this worker wrote for others
};

// The burst logic of one worker, without threads or epoll: what a worker
// does with a batch it read. Public so tests can feed it batches (a bogus
// virtio-net header, say) that no kernel would hand out.
class Forwarder {
 public:
  // Floods through the broadcast queue to at least this many devices are
  // shared out (with a FloodSink and two workers or more).
  static constexpr std::size_t kSplitMin = 32;
  // Frames longer than this are never shared out (a GSO super-frame flood).
  static constexpr std::size_t kMaxShareFrame = 16384;

  explicit Forwarder(std::size_t worker);
  // TAP writes go through w from now on (null: written at once).
  void set_writer(TapWriter* w) { writer_ = w; }
  // Floods of at least min_copies queued copies are shared out through
  // sink from now on (null: this worker writes every copy).
  void set_flood_sink(FloodSink* sink, std::size_t min_copies = kSplitMin) {
    sink_ = sink;
    split_min_ = min_copies;
  }

  // A burst read from the port's lower (through rings[worker]).
  // With macnat on the port, the frames may be rewritten in place.
  void from_lower(const PortView& view, io::FrameBatch& batch);
  // A burst read from device `from`'s TAP.
  void from_device(const PortView& view, core::DeviceId from, io::FrameBatch& batch);
  // The copies another worker handed over. now: the same port in this
  // worker's view (share.port when both decided in the same view; null
  // when the port is gone): only the devices it still has get a copy. The
  // frame must stay as it is until the writer's flush.
  void from_share(const FloodShare& share, const PortView* now);

  std::size_t worker() const { return worker_; }
  WorkerCounters& counters() { return counters_; }
  const WorkerCounters& counters() const { return counters_; }

 private:
  // Writes the copies verdict v asks for (inline ones or queued ones).
  void deliver(const PortView& view, std::span<const std::uint8_t> frame,
               const io::VnetHeader& vnet, const core::Verdict& v, bool queued_pass,
               bool from_device);
  // A queued flood with copies for other workers: writes this worker's own
  // and hands the rest over. False when it is not to be shared out.
  bool share_out(const PortView& view, std::span<const std::uint8_t> frame,
                 const io::VnetHeader& vnet, const core::Verdict& v, bool from_device);
  // One copy, to target t's device.
  void copy_to(const PortView& view, const core::Target& t, std::span<const std::uint8_t> frame,
               const io::VnetHeader& vnet, bool from_device);

  // Copies what the capture on the port watches of the burst just decided
  // (from: kNoDevice for the lower).
  void capture(const PortView& view, core::DeviceId from, const io::FrameBatch& batch);
  // Copies the burst's ARP, NDP and DHCP frames to the port's learn tap.
  void learn(const PortView& view, core::DeviceId from, const io::FrameBatch& batch);
  // macnat, frames from the lower: rewrites those for an owned address.
  void macnat_ingress(const PortView& view, io::FrameBatch& batch);
  // macnat, frame i of a device's burst going out the lower: refreshes its
  // owner's stamp (or hands it to the learn tap when the table does not
  // know its source yet) and returns the frame to send, rewritten.
  std::span<const std::uint8_t> macnat_egress(const PortView& view, core::DeviceId from,
                                              io::FrameBatch& batch, std::size_t i,
                                              std::uint64_t now_ms);

  // Sends the first n frames of wire_frames_ out of the lower, recording
  // each one's fate in sent_ (by its index in the burst).
  void send_wire(const PortView& view, std::size_t n);

  std::size_t worker_;
  TapWriter* writer_ = nullptr;
  FloodSink* sink_ = nullptr;
  std::size_t split_min_ = kSplitMin;
  core::DecisionBatch decisions_;
  WorkerCounters counters_;
  // Scratch of from_device(): what goes out the lower, and what each frame became.
  std::array<std::span<const std::uint8_t>, io::kBatchSize> wire_frames_{};
  std::array<io::VnetHeader, io::kBatchSize> wire_vnet_{};
  std::array<std::size_t, io::kBatchSize> wire_index_{};
  std::array<bool, io::kBatchSize> sent_{};
  // macnat: rewritten copies of frames that also went to devices (their
  // capacity is kept from burst to burst).
  std::array<std::vector<std::uint8_t>, io::kBatchSize> nat_copies_{};
};

// How workers read and write TAPs: io_uring (a burst of reads, then one of
// writes, per system call) where the kernel allows it, else one system call
// per frame.
enum class TapIo : std::uint8_t { kAuto, kSyscalls, kUring };

// Which worker gets a frame (with two workers or more):
// - kAdaptive: each worker is pinned to a CPU of its own, and a flow's
//   frames go to the worker of the CPU its first frame arrived on, or, while
//   that CPU is saturated and its worker takes a good share of it, to the
//   worker of the least busy CPU that is not saturated; a flow keeps its
//   worker while it sends (io/steering.h, steer_policy.h). The workers
//   look at the CPUs' load (/proc/stat) at most every kLoadSampleMs, only
//   while they have work.
// - kFlow: by flow hash (TUN's queue choice, PACKET_FANOUT_HASH), workers
//   wherever the scheduler puts them.
enum class Steer : std::uint8_t { kAdaptive, kFlow };

class Dataplane {
 public:
  // Starts `workers` threads (1..kMaxWorkers) with an empty view.
  // poll_us: how long a worker keeps polling, without sleeping, after the
  // last frame it saw (0: it sleeps at once). max_sleep_ms: the longest a
  // worker sleeps waiting for work (-1: until work comes).
  explicit Dataplane(std::size_t workers, TapIo io = TapIo::kAuto, int poll_us = 0,
                     int max_sleep_ms = -1, Steer steer = Steer::kFlow);
  ~Dataplane();  // stops and joins the workers
  Dataplane(const Dataplane&) = delete;
  Dataplane& operator=(const Dataplane&) = delete;

  std::size_t workers() const { return workers_.size(); }

  // Control thread: makes view the one the workers use from their next loop
  // turn on, and wakes them. Returns the view's version (increasing).
  std::uint64_t publish(std::shared_ptr<const DataplaneView> view);
  // Control thread: waits until every worker runs version or a newer one
  // (so it has let go of whatever the older views held); false on timeout.
  bool wait_for(std::uint64_t version, int timeout_ms);

  // Readable (EPOLLIN) when notices are queued.
  int notice_fd() const { return notice_event_.get(); }
  std::vector<Notice> take_notices();

  // Sums over the workers (relaxed reads of counters other threads write).
  static core::DeviceCounters device_counters(const DeviceIo& dev);
  static core::PortCounters port_counters(const PortIo& port);
  WorkerCounters worker_counters(std::size_t w) const;
  // Loop turns worker w has made so far (a relaxed read; 0 for no such
  // worker): it grows at least every max_sleep_ms while w is not stuck.
  std::uint64_t heartbeat(std::size_t w) const;
  // What the workers use (kAuto until they have started and chosen).
  TapIo tap_io() const { return chosen_io_.load(); }
  // The steering program for the TAPs and the lowers' fanout groups (the
  // control path attaches it), -1 without one (kFlow, one worker, or a
  // kernel that refused it: TUN and fanout then choose by flow).
  int steering_prog() const { return steering_.valid() ? steering_.prog_fd() : -1; }
  // The CPU worker w is pinned to, -1 when it is not.
  int worker_cpu(std::size_t w) const;

  // Floods waiting for one worker from another, at most.
  static constexpr std::size_t kInboxSlots = 256;

  static constexpr int kLoadSampleMs = 20;
  // A CPU busier than this is saturated, one less busy than kCalmBusy no
  // longer; decide_steering() (steer_policy.h) decides where a saturated
  // CPU's frames go.
  static constexpr double kSaturatedBusy = 0.9;
  static constexpr double kCalmBusy = 0.6;

 private:
  struct Worker;
  struct Reg;
  struct Inbox;
  class Sink;

  void run(Worker& w);
  // Moves w to the newest view, calling watch/unwatch for what comes and
  // goes, and tells wait_for() about it.
  void switch_view(Worker& w, const std::function<void(Reg&)>& watch,
                   const std::function<void(Reg&)>& unwatch);
  // Writes the floods other workers handed w (switching w to the newest
  // view first when a share is newer than w's view). Called when
  // shares_waiting(w).
  void take_shares(Worker& w, const std::function<void(Reg&)>& watch,
                   const std::function<void(Reg&)>& unwatch);
  bool shares_waiting(const Worker& w) const;
  void notify(const Notice& n);
  // A worker with work: every kLoadSampleMs at most, one of them reads the
  // CPUs' load and sets each CPU's steering mode.
  void rebalance(std::chrono::steady_clock::time_point now);
  // Pins the workers to CPUs and loads the steering program.
  void set_up_steering(std::size_t workers);

  std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<bool> stop_{false};
  int poll_us_;
  int max_sleep_ms_;
  TapIo io_;
  std::atomic<TapIo> chosen_io_{TapIo::kAuto};
  std::vector<int> worker_cpus_;  // empty: not pinned
  io::Steering steering_;
  std::mutex load_mutex_;  // try_lock only: one sampler at a time
  io::CpuLoad load_;
  std::vector<double> busy_;
  std::vector<std::uint8_t> saturated_;  // per CPU, with hysteresis (kSaturatedBusy, kCalmBusy)
  std::vector<std::uint32_t> own_;       // per CPU: its worker (steering's table, set once)
  std::vector<std::optional<std::uint32_t>> away_;  // per CPU: where it sends now
  std::vector<std::uint64_t> worker_busy_ns_;       // per worker, at the last sample
  std::vector<double> worker_share_;                // per worker, since the sample before
  std::int64_t last_sample_ns_ = 0;
  std::atomic<std::int64_t> next_sample_ns_{0};

  std::mutex view_mutex_;
  std::shared_ptr<const DataplaneView> view_;
  std::atomic<std::uint64_t> version_{0};

  std::mutex ack_mutex_;
  std::condition_variable acked_;

  std::mutex notice_mutex_;
  std::vector<Notice> notices_;
  io::OwnedFd notice_event_;
};

}  // namespace umacvlan::daemon
