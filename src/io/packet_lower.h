// PacketLower: the lower device through an AF_PACKET socket, the "wire" side
// of the data path: frames the lower receives are read here, frames for the
// wire are sent here.
//
// Contract: a PacketLower owns one non-blocking, close-on-exec AF_PACKET
// socket bound to one interface, opened inside the namespace the interface
// lives in (the socket keeps that namespace alive), and the TPACKET_V2
// receive ring mapped over it (kSlots slots of kSlotSize bytes, each frame
// handed over the moment it is in: TPACKET_V3 hands over whole blocks, when
// full or after at least a millisecond, and that millisecond on every ACK
// of a TCP stream halved its throughput). Opened with
// Options::ring false it is a membership-only socket: no ring, never bound,
// it receives nothing and only carries the filter memberships below. With a
// fanout group, the sockets of that group share the interface's frames by
// flow hash (PACKET_FANOUT_HASH), one flow always to the same socket.
// Closing (destruction, move-assignment) unmaps the ring and closes the
// socket; the kernel then drops every filter membership the socket added, so
// nothing needs cleaning up after a crash. With Options::fanout_prog the
// group's sockets share the frames as that program says (io/steering.h).
// One thread at a time per object;
// sockets of one lower may be used by different threads.
//
// Receiving: receive_burst() copies frames out of the ring into the batch
// (views stay valid as FrameBatch says) and gives each fully consumed block
// back to the kernel at once. Frames are complete, as on the wire: the 802.1Q
// or 802.1ad tag the kernel moved into metadata is put back. Each frame's
// virtio-net header (PACKET_VNET_HDR) goes into batch.vnet as the kernel gave
// it: a GSO super-frame from a virtual lower (a veth peer's TCP) stays one
// frame, and a checksum the sender left for "hardware" to fill in stays
// partial (NEEDS_CSUM, csum_start moved by the tag we put back): whoever the
// frame is written to with that header completes it if it must. The socket
// does not see its own transmissions nor the host stack's on that interface
// (PACKET_IGNORE_OUTGOING), as a kernel macvlan never sees what its lower
// sends. A frame bigger than a batch slot is skipped and counted in
// batch.dropped_oversize. Frames the kernel dropped because the ring was
// full are counted in batch.dropped_ring_full of the receive that meets the
// first frame after them (that read resets the counters read_stats() reads).
//
// Sending: each frame goes out with a virtio-net header (all zero for a
// plain frame), so a TAP's GSO super-frame leaves whole and the kernel
// segments it (and fills partial checksums) only if the lower cannot.
//
// Filters: add_unicast() puts a device MAC in the lower's unicast filter, as
// the kernel's macvlan does with dev_uc_add(); a lower without unicast
// filtering (veth) then turns promiscuous by itself. The calls are
// idempotent: adding twice or removing what is absent returns 0 and changes
// nothing.
//
// Every call returns 0 or a count on success and a negative errno on failure;
// nothing throws, nothing logs, the data calls (receive_burst, send,
// send_burst) never allocate.
#pragma once

#include <linux/if_packet.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "io/frame_batch.h"
#include "io/netns.h"
#include "io/owned_fd.h"

namespace umacvlan::io {

class PacketLower {
 public:
  // A slot holds a 64 KiB GSO super-frame with its headers (17 pages).
  static constexpr std::size_t kSlotSize = 17 * 4096;
  static constexpr std::size_t kSlots = 128;  // 8.5 MiB ring

  // Counters the kernel keeps for the socket since the previous read_stats().
  struct RingStats {
    std::uint64_t packets = 0;  // frames that reached the socket, drops included
    std::uint64_t drops = 0;    // frames lost because the ring was full
    std::uint64_t freezes = 0;  // times the ring filled up
  };

  struct Options {
    bool ring = true;       // false: membership-only, receives nothing
    int fanout_group = -1;  // 0..65535: join this fanout group
    // With a group: an eBPF socket-filter program that picks the member
    // (PACKET_FANOUT_EBPF, the value modulo the members, in the order they
    // joined; see steering.h); -1: by flow hash (PACKET_FANOUT_HASH).
    int fanout_prog = -1;
  };

  PacketLower() = default;

  // Opens the socket inside ns on the interface ifindex (an index in ns),
  // sets the ring up and binds. -ENODEV if there is no such interface. *out
  // is replaced only on success.
  static int open(const NetnsFd& ns, int ifindex, PacketLower* out) {
    return open(ns, ifindex, out, Options{});
  }
  static int open(const NetnsFd& ns, int ifindex, PacketLower* out, const Options& options);

  bool valid() const { return fd_.valid(); }
  // For epoll: readable when a ring block is ready; EPOLLERR reports an
  // interface that went down or away: pending_error() reads and clears it, so
  // that a level-triggered epoll stops reporting it.
  int fd() const { return fd_.get(); }
  int ifindex() const { return ifindex_; }

  // Copies up to batch.capacity() frames out of the ring; the batch is
  // cleared first. Returns batch.count.
  int receive_burst(FrameBatch& batch) { return receive(batch, false); }
  // The same without copying: the batch points into the ring (a tagged
  // frame, whose tag is put back, is still copied), and the slots stay ours
  // until release_views(), which must come before the next receive.
  int receive_views(FrameBatch& batch) { return receive(batch, true); }
  void release_views();

  // Sends one frame out of the interface with its virtio-net header. 0 or
  // -errno (-EAGAIN/-ENOBUFS when the queue is full, -ENETDOWN when the
  // interface is down, -EMSGSIZE when a frame that is not GSO exceeds its
  // MTU, -EINVAL for a header the kernel refuses): the caller counts a drop.
  int send(const VnetHeader& vnet, std::span<const std::uint8_t> frame);
  int send(std::span<const std::uint8_t> frame) { return send(VnetHeader{}, frame); }
  // Sends frames in order with one system call (sendmmsg), stopping at the
  // first that fails; frame i with header vnet[i] (all zero where vnet is
  // shorter). Returns how many went out, or -errno if the first one failed.
  // At most kBatchSize frames are considered.
  int send_burst(std::span<const std::span<const std::uint8_t>> frames,
                 std::span<const VnetHeader> vnet = {});

  // Filter memberships on the interface (PACKET_ADD/DROP_MEMBERSHIP).
  // -EINVAL for a multicast MAC given to *_unicast or a unicast one given to
  // *_multicast.
  int add_unicast(const MacBytes& mac);
  int del_unicast(const MacBytes& mac);
  int add_multicast(const MacBytes& mac);
  int del_multicast(const MacBytes& mac);
  int set_promisc(bool on);
  int set_allmulti(bool on);

  // The socket's pending error (SO_ERROR, which reading clears) as -errno, or
  // 0: -ENETDOWN after the interface went down or was deleted.
  int pending_error();
  // Kernel counters since the previous call (PACKET_STATISTICS resets them).
  int read_stats(RingStats* out);

 private:
  int membership(int type, const MacBytes* mac, bool add);

  OwnedFd fd_;
  int ifindex_ = 0;
  Mapping<std::uint8_t> ring_;

  int receive(FrameBatch& batch, bool views);

  // Reader position: the next slot to look at, and how many slots before it
  // receive_views() kept.
  std::size_t slot_ = 0;
  std::size_t held_ = 0;

  std::vector<MacBytes> unicast_;
  std::vector<MacBytes> multicast_;
  bool promisc_ = false;
  bool allmulti_ = false;

  // Scratch for send_burst(), reused so sending never allocates.
  std::array<struct mmsghdr, kBatchSize> msgs_{};
  std::array<struct iovec, 2 * kBatchSize> iovs_{};
};

}  // namespace umacvlan::io
