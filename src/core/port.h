// Port: the macvlan state of one lower device and the forwarding decisions
// made on it. This is the one place that decides.
//
// Contract
// - Control path: add_device(), change_device(), remove_device() and the
//   lower_*() events apply the kernel macvlan driver's rules (see
//   shared/spec/macvlan-semantics.md) plus umacvlan's own limits (PortLimits)
//   and options (spoofchk). Every request is validated whole before anything
//   changes: a refused request returns the kernel's errno and a sentence,
//   and leaves the port exactly as it was.
// - Data path: receive() (a frame from the lower) and transmit() (a frame a
//   device sent) append one Verdict to a DecisionBatch: which devices get a
//   copy and why, whether the lower's own stack gets it, whether it goes out
//   the lower, or why it was dropped. They are const: a published Port is
//   read by any number of data-path threads at once, each with a batch of
//   its own. The broadcast queue lives in the batch (it drains when the
//   batch is cleared, at the end of a burst). They never allocate once the
//   batch has grown to the port's size, never throw, and never touch the
//   frame bytes beyond the header. The caller copies and writes (decide,
//   then emit) and counts the outcome (count_rx(), count_tx(), count_drop()
//   on counters of its own).
// - A Port is a value: copying it is how a changed configuration is
//   published to the data path, and how a change is undone.
// - Owns its devices; DeviceId is a slot index, stable for a device's life
//   and reused after removal. Nothing here does I/O, reads a clock or draws
//   random numbers: the caller passes random bits in.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/frame.h"
#include "core/mac_address.h"
#include "core/mac_table.h"
#include "core/mode.h"
#include "core/status.h"

namespace umacvlan::core {

using DeviceId = std::uint32_t;
inline constexpr DeviceId kNoDevice = 0xffffffffu;

inline constexpr std::uint32_t kMinMtu = 68;
inline constexpr std::uint32_t kDefaultBcQueueLen = 1000;
inline constexpr std::int32_t kDefaultBcCutoff = 1;

// umacvlan's own bounds (the kernel has none): refused with ENOSPC.
struct PortLimits {
  std::size_t max_devices = 4096;  // devices per lower
  std::size_t max_sources = 1024;  // source-list entries per device
};

// What the caller knows about the lower device.
struct LowerState {
  std::string name;
  MacAddress mac;
  std::uint32_t mtu = 1500;
  bool carrier = true;
  bool promisc = false;               // the lower's own IFF_PROMISC, set by others
  bool allmulti = false;              // the lower's own IFF_ALLMULTI, set by others
  bool unicast_filter = false;        // can filter extra unicast MACs (veth cannot)
  std::vector<MacAddress> multicast;  // the lower's own group subscriptions
};

struct SourceListChange {
  SourceOp op = SourceOp::kNone;
  std::vector<MacAddress> addrs;
};

// `link add ... type macvlan ...`
struct DeviceSpec {
  std::string name;
  std::optional<MacAddress> address;
  std::optional<std::uint32_t> mtu;
  std::optional<Mode> mode;  // default vepa
  std::uint16_t flags = 0;   // kFlagNoPromisc, kFlagNoDst
  std::optional<std::uint32_t> bcqueuelen;
  std::optional<std::int32_t> bclim;
  SourceListChange macaddr;
  bool spoofchk = false;
};

// `link set ...`, and what the device's own namespace reports (up/down,
// address, mtu, promisc/allmulti, its link-layer multicast list).
struct DeviceChange {
  std::optional<Mode> mode;
  std::optional<std::uint16_t> flags;
  std::optional<std::uint32_t> bcqueuelen;
  std::optional<std::int32_t> bclim;
  SourceListChange macaddr;
  std::optional<bool> spoofchk;
  std::optional<MacAddress> address;
  std::optional<std::uint32_t> mtu;
  std::optional<bool> up;
  std::optional<bool> promisc;
  std::optional<bool> allmulti;
  std::optional<std::vector<MacAddress>> multicast;
};

// Counters as `ip -s link` shows them for a macvlan device. Kept by the
// dataplane (one set per worker), updated with count_rx()/count_tx().
struct DeviceCounters {
  std::uint64_t rx_packets = 0;
  std::uint64_t rx_bytes = 0;
  std::uint64_t rx_multicast = 0;  // copies delivered by a flood
  std::uint64_t rx_dropped = 0;    // copies the device could not take
  std::uint64_t tx_packets = 0;
  std::uint64_t tx_bytes = 0;
  std::uint64_t tx_dropped = 0;
};

// Frames dropped on a port, by reason. A broadcast-queue overflow
// (kBcQueueFull) is what the kernel charges to the lower's rx_dropped.
struct PortCounters {
  std::array<std::uint64_t, static_cast<std::size_t>(DropReason::kCount)> drops{};
  std::uint64_t drops_for(DropReason r) const { return drops[static_cast<std::size_t>(r)]; }
  std::uint64_t lower_rx_dropped() const { return drops_for(DropReason::kBcQueueFull); }
};

// Adds n to a counter that one thread writes and others may read (with a
// relaxed atomic load) meanwhile: a relaxed atomic store, no
// read-modify-write (as cheap as a plain add on the writer's side).
inline void bump(std::uint64_t& counter, std::uint64_t n = 1) {
  std::atomic_ref<std::uint64_t>(counter).store(counter + n, std::memory_order_relaxed);
}

// A copy delivered (or not) to a device: multicast is a flood copy.
void count_rx(DeviceCounters& c, std::size_t bytes, bool multicast, bool delivered);
// A frame the device sent, whatever became of it (sent: it was not dropped).
void count_tx(DeviceCounters& c, std::size_t bytes, bool sent);
inline void count_drop(PortCounters& c, DropReason r, std::uint64_t n = 1) {
  if (r != DropReason::kNone) bump(c.drops[static_cast<std::size_t>(r)], n);
}

struct Device {
  std::string name;
  MacAddress mac;
  Mode mode = Mode::kVepa;
  std::uint16_t flags = 0;
  bool up = false;
  bool promisc = false;
  bool allmulti = false;
  bool spoofchk = false;  // frames with a source MAC not `mac` are dropped
  std::uint32_t mtu = 1500;
  std::uint32_t bcqueuelen = kDefaultBcQueueLen;  // this device's request
  std::vector<MacAddress> sources;                // source mode: sorted, unique
  std::vector<MacAddress> multicast;              // sorted, unique

  bool nopromisc() const { return (flags & kFlagNoPromisc) != 0; }
  bool nodst() const { return (flags & kFlagNoDst) != 0; }
  // Whether a flood of group `dst` reaches this device.
  bool subscribed(MacAddress dst) const;
};

// What the port needs from the lower's filters, for the caller to program.
struct LowerFilter {
  std::vector<MacAddress> unicast;    // dev_uc_add: MACs of up devices (not passthru)
  bool promisc = false;               // passthru without nopromisc, or a promisc device
  bool allmulti = false;              // an allmulti device
  std::vector<MacAddress> multicast;  // union of up devices' groups
  // Frames the port consumes, which the lower's own stack must not get:
  std::vector<MacAddress> consumed_sources;            // S on a nodst source list
  std::vector<MacAddress> consumed_destinations;       // unicast D of an up device
  std::vector<MacAddress> consumed_multicast_sources;  // own multicast reflected back
  bool consumed_unicast = false;                       // passthru: every unicast
  bool operator==(const LowerFilter&) const = default;
};

// Why a device got a copy.
enum class Reason : std::uint8_t {
  kUnicast,     // D matched the device (or the passthru device)
  kSourceCopy,  // S is on the device's source list
  kReflect,     // multicast that a private/passthru/source device sent, back to it
  kFlood,       // multicast/broadcast flood
};

// "unicast", "source_copy", "reflect", "flood".
std::string_view to_string(Reason r);

struct Target {
  DeviceId device;
  Reason reason;
};

struct Verdict {
  std::uint32_t first = 0;  // index of the first target in DecisionBatch::targets()
  std::uint32_t count = 0;
  bool to_host = false;  // the lower's own stack gets the frame
  bool to_wire = false;  // the frame goes out the lower
  bool queued = false;   // flood copies go through the broadcast queue
  DropReason drop = DropReason::kNone;
};

// Verdicts for a burst of frames, in frame order, and the burst's broadcast
// queue. Reused across bursts; it only allocates while growing to the
// largest fan-out seen. clear() starts a burst: the broadcast queue has
// drained.
class DecisionBatch {
 public:
  DecisionBatch() {
    verdicts_.reserve(256);
    targets_.reserve(1024);
  }
  void clear() {
    verdicts_.clear();
    targets_.clear();
    queued_ = 0;
  }
  std::size_t size() const { return verdicts_.size(); }
  const Verdict& operator[](std::size_t i) const { return verdicts_[i]; }
  const Verdict& back() const { return verdicts_.back(); }
  std::span<const Target> targets(const Verdict& v) const {
    return std::span<const Target>(targets_).subspan(v.first, v.count);
  }

  // For Port only.
  Verdict& open() {
    verdicts_.push_back(Verdict{});
    verdicts_.back().first = static_cast<std::uint32_t>(targets_.size());
    return verdicts_.back();
  }
  void push(Verdict& v, DeviceId d, Reason r) {
    targets_.push_back(Target{d, r});
    ++v.count;
  }
  // A place in the broadcast queue, if fewer than limit are taken.
  bool take_queue_slot(std::uint32_t limit) {
    if (queued_ >= limit) return false;
    ++queued_;
    return true;
  }

 private:
  std::vector<Verdict> verdicts_;
  std::vector<Target> targets_;
  std::uint32_t queued_ = 0;
};

class Port {
 public:
  explicit Port(LowerState lower, PortLimits limits = {});

  // ---- control path ----
  // Creates a device (down). random_bits make its MAC when none is given.
  Status add_device(const DeviceSpec& spec, std::uint64_t random_bits, DeviceId* id);
  Status change_device(DeviceId id, const DeviceChange& change);
  // Always succeeds; the device's MAC leaves every table.
  void remove_device(DeviceId id);

  // Events of the lower device.
  void lower_mtu_changed(std::uint32_t mtu);  // lowers larger device MTUs
  void lower_carrier_changed(bool carrier);
  void lower_mac_changed(MacAddress mac);  // a passthru device follows
  void lower_flags_changed(bool promisc, bool allmulti);
  void lower_multicast_changed(std::vector<MacAddress> groups);

  // ---- queries ----
  const LowerState& lower() const { return lower_; }
  // The lower's MAC when the port was made; a passthru port gives it back.
  MacAddress lower_perm_mac() const { return perm_mac_; }
  bool passthru() const { return passthru_; }
  const Device* device(DeviceId id) const;
  DeviceId find(std::string_view name) const;
  std::vector<DeviceId> device_ids() const;
  std::size_t device_count() const { return count_; }
  std::uint32_t used_bcqueuelen() const { return used_bcqueuelen_; }
  std::int32_t bclim() const { return bc_cutoff_; }
  LowerFilter lower_filter() const;
  const PortLimits& limits() const { return limits_; }
  // One past the highest DeviceId in use (a size for per-device arrays).
  std::size_t slot_count() const { return slots_.size(); }

  // ---- data path ----
  void receive(std::span<const std::uint8_t> frame, DecisionBatch& out) const;
  void transmit(DeviceId from, std::span<const std::uint8_t> frame, DecisionBatch& out) const;

 private:
  struct Slot {
    bool used = false;
    Device dev;
  };

  Status validate_source_change(DeviceId id, Mode final_mode, const SourceListChange& c) const;
  Status validate_mtu(std::uint32_t mtu) const;
  bool addr_busy(MacAddress mac, DeviceId self) const;
  void apply_source_change(DeviceId id, const SourceListChange& c);
  void set_sources(DeviceId id, std::vector<MacAddress> sources);
  void link_up(DeviceId id);
  void link_down(DeviceId id);
  void recompute_bcqueuelen();
  void recompute_groups();
  bool lower_promisc_effective() const;
  bool lower_allmulti_effective() const;

  // Decision helpers; each appends targets to v.
  bool source_copies(const FrameView& f, Verdict& v, DecisionBatch& out) const;
  void flood(const FrameView& f, DeviceId src, ModeMask modes, Verdict& v,
             DecisionBatch& out) const;
  void receive_parsed(const FrameView& f, Verdict& v, DecisionBatch& out) const;

  LowerState lower_;
  PortLimits limits_;
  MacAddress perm_mac_;
  std::vector<Slot> slots_;
  std::size_t count_ = 0;
  bool passthru_ = false;

  // Up devices only: D lookup, and the flood list in creation order.
  MacTable up_by_mac_;
  std::vector<DeviceId> up_list_;
  // Source lists of up and down source-mode devices: S -> devices.
  std::unordered_map<std::uint64_t, std::vector<DeviceId>> sources_;
  // Subscribers per group among up devices (what the kernel calls "synced").
  std::unordered_map<std::uint64_t, std::uint32_t> group_subscribers_;
  std::uint32_t up_promisc_ = 0;
  std::uint32_t up_allmulti_ = 0;

  std::uint32_t used_bcqueuelen_ = kDefaultBcQueueLen;
  std::int32_t bc_cutoff_ = kDefaultBcCutoff;
};

}  // namespace umacvlan::core
