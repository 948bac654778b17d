// FrameBatch: a fixed-capacity batch of Ethernet frames for the data path.
//
// Contract: a batch holds up to kBatchSize frames packed one after the other
// (each start 64-byte aligned) in one buffer allocated once when the batch
// is constructed: room for kBatchSize frames of kDefaultSlotSize bytes, and,
// when the batch takes bigger frames (slot_size() above kDefaultSlotSize: a
// 64 KiB GSO super-frame), for kJumboFrames of those as well. Small frames
// thus sit densely in a few pages, and a burst of super-frames still gets
// many of them. Backends fill it with TapDevice::read_burst() /
// PacketLower::receive_burst(): they write the next frame into next_slot()
// (at least slot_size() bytes, plus one spare byte to tell a frame that did
// not fit), then commit(len); the batch is full() when it has kBatchSize
// frames or less than slot_size() room left. A frame that does not fit is
// never truncated and never overflows: it is skipped and counted in
// dropped_oversize. Beside each frame the batch keeps the virtio-net header
// the kernel gave with it (vnet[i]: GSO type and size, partial checksum), all
// zero when there was none; the frame itself is always a complete Ethernet
// frame without that header, so the core never sees it. The views stay
// valid until the next fill or clear() of the same batch, or until the batch
// is destroyed; they never point into kernel rings or other batches. Filling
// a batch starts from clear(): counts are per fill, the caller accumulates
// them. Move-only (moving keeps the views valid: the buffer does not move).
// No allocation after construction, no exceptions after construction, no I/O.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <span>
#include <string>

namespace umacvlan::io {

// A MAC address as the io layer passes it: six octets, network order.
using MacBytes = std::array<std::uint8_t, 6>;

// "aa:bb:cc:dd:ee:ff", for messages and nftables sets.
inline std::string mac_text(const MacBytes& m) {
  char s[18];
  std::snprintf(s, sizeof s, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
  return s;
}

// struct virtio_net_hdr of <linux/virtio_net.h>, which C++ cannot include (a
// member there is called `class`): how a frame crosses a TAP with
// IFF_VNET_HDR or an AF_PACKET socket with PACKET_VNET_HDR. A GSO frame is
// one super-frame of up to 64 KiB that the kernel segments (into gso_size
// payloads) only where it has to; NEEDS_CSUM means the checksum at
// csum_start + csum_offset (counted from the frame's first byte) still holds
// only the pseudo-header sum. The 16-bit fields are in host byte order (the
// legacy virtio layout tun and AF_PACKET use). All zero: a plain frame with
// its checksums complete or unchecked.
struct VnetHeader {
  std::uint8_t flags = 0;
  std::uint8_t gso_type = 0;
  std::uint16_t hdr_len = 0;
  std::uint16_t gso_size = 0;
  std::uint16_t csum_start = 0;
  std::uint16_t csum_offset = 0;
};
static_assert(sizeof(VnetHeader) == 10, "the kernel's struct virtio_net_hdr is 10 bytes");

inline constexpr std::uint8_t kVnetNeedsCsum = 1;  // VIRTIO_NET_HDR_F_NEEDS_CSUM
inline constexpr std::uint8_t kVnetDataValid = 2;  // VIRTIO_NET_HDR_F_DATA_VALID
inline constexpr std::uint8_t kVnetGsoNone = 0;    // VIRTIO_NET_HDR_GSO_NONE
inline constexpr std::uint8_t kVnetGsoTcpv4 = 1;   // VIRTIO_NET_HDR_GSO_TCPV4
inline constexpr std::uint8_t kVnetGsoTcpv6 = 4;   // VIRTIO_NET_HDR_GSO_TCPV6
inline constexpr std::uint8_t kVnetGsoUdpL4 = 5;   // VIRTIO_NET_HDR_GSO_UDP_L4 (USO)
inline constexpr std::uint8_t kVnetGsoEcn = 0x80;  // VIRTIO_NET_HDR_GSO_ECN

inline constexpr std::size_t kBatchSize = 64;
inline constexpr std::size_t kDefaultSlotSize = 2048;
// Super-frames a batch of bigger slots has room for besides its small frames.
inline constexpr std::size_t kJumboFrames = 16;

struct FrameBatch {
  // slot_size: the largest frame the batch accepts (clamped to at least 64).
  explicit FrameBatch(std::size_t slot_size = kDefaultSlotSize)
      : slot_size_(slot_size < 64 ? 64 : slot_size),
        bytes_(kBatchSize * kDefaultSlotSize +
               (slot_size_ > kDefaultSlotSize ? kJumboFrames * align(slot_size_ + 1) : 0) +
               align(slot_size_ + 1)),
        storage_(static_cast<std::uint8_t*>(std::aligned_alloc(64, bytes_))) {}
  FrameBatch(FrameBatch&&) noexcept = default;
  FrameBatch& operator=(FrameBatch&&) noexcept = default;
  FrameBatch(const FrameBatch&) = delete;
  FrameBatch& operator=(const FrameBatch&) = delete;

  static constexpr std::size_t capacity() { return kBatchSize; }
  std::size_t slot_size() const { return slot_size_; }
  bool full() const { return count == kBatchSize || bytes_ - used_ < slot_size_ + 1; }
  bool empty() const { return count == 0; }

  void clear() {
    count = 0;
    used_ = 0;
    dropped_oversize = 0;
    dropped_ring_full = 0;
  }

  // Where the next frame goes: slot_size() bytes, and one spare byte after
  // them (a reader that fills the spare byte read a frame that did not fit).
  // Only while !full().
  std::span<std::uint8_t> next_slot() { return {storage_.get() + used_, slot_size_ + 1}; }
  // Makes the first len bytes of next_slot() the next frame, with vnet as
  // its virtio-net header. The caller has already written them there;
  // len <= slot_size(), the batch not full.
  void commit(std::size_t len, const VnetHeader& vnet_hdr = {}) {
    frames[count] = {storage_.get() + used_, len};
    vnet[count] = vnet_hdr;
    ++count;
    used_ += align(len);
  }

  // Adds a frame that lives elsewhere (a buffer the kernel filled through
  // io_uring): the batch only points at it, and the caller keeps it valid
  // for as long as the batch's views. The batch not full.
  void add_view(std::span<const std::uint8_t> frame, const VnetHeader& vnet_hdr) {
    frames[count] = frame;
    vnet[count] = vnet_hdr;
    ++count;
  }

  std::span<const std::uint8_t> operator[](std::size_t i) const { return frames[i]; }
  // Frame i, to rewrite in place (a frame of the same length): it lives in
  // this batch's buffer or in the caller's (add_view()), both writable.
  std::span<std::uint8_t> writable(std::size_t i) {
    return {const_cast<std::uint8_t*>(frames[i].data()), frames[i].size()};
  }
  auto begin() const { return frames.begin(); }
  auto end() const { return frames.begin() + static_cast<std::ptrdiff_t>(count); }

  // The frames of this fill: frames[0 .. count).
  std::array<std::span<const std::uint8_t>, kBatchSize> frames{};
  // The virtio-net header of each frame: vnet[i] goes with frames[i].
  std::array<VnetHeader, kBatchSize> vnet{};
  std::size_t count = 0;
  // Frames seen during this fill that were bigger than a slot (not in frames).
  std::uint64_t dropped_oversize = 0;
  // Frames the source lost before this fill because its ring was full
  // (PacketLower: reported with the first frame that arrived after them).
  std::uint64_t dropped_ring_full = 0;

 private:
  static constexpr std::size_t align(std::size_t n) { return (n + 63) & ~std::size_t{63}; }

  struct Free {
    void operator()(std::uint8_t* p) const { std::free(p); }
  };

  std::size_t slot_size_;
  std::size_t bytes_;  // a multiple of 64, as aligned_alloc() wants
  std::size_t used_ = 0;
  std::unique_ptr<std::uint8_t, Free> storage_;
};

}  // namespace umacvlan::io
