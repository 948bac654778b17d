#include "io/packet_lower.h"

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <net/if.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <utility>

namespace umacvlan::io {
namespace {

// PACKET_FANOUT_FLAG_IGNORE_OUTGOING (linux/if_packet.h from 6.x on; the
// headers here are older).
constexpr int kFanoutFlagIgnoreOutgoing = 0x4000;

constexpr std::size_t kMacPairSize = 12;  // destination + source
constexpr std::size_t kVlanTagSize = 4;
constexpr std::size_t kVnetHdrSize = sizeof(VnetHeader);

int set_int_opt(int fd, int level, int name, int value) {
  return ::setsockopt(fd, level, name, &value, sizeof(value)) == 0 ? 0 : -errno;
}

// The ring's status words are shared with the kernel: read them before the
// frames they cover, write them after we are done with those frames.
std::uint32_t load_acquire(std::uint32_t& v) {
  return std::atomic_ref<std::uint32_t>(v).load(std::memory_order_acquire);
}

}  // namespace

int PacketLower::open(const NetnsFd& ns, int ifindex, PacketLower* out, const Options& options) {
  if (out == nullptr || ifindex <= 0 || options.fanout_group > 0xffff) return -EINVAL;
  PacketLower pl;
  pl.ifindex_ = ifindex;
  const int rc = run_in_netns(ns, [&]() -> int {
    // Protocol 0: the socket receives nothing until bind() names the
    // protocol and the interface, so no frame of another interface slips in.
    pl.fd_.reset(::socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!pl.fd_.valid()) return -errno;
    const int fd = pl.fd_.get();
    if (!options.ring) {
      // Memberships name the interface themselves; check that it exists.
      char name[IF_NAMESIZE];
      return ::if_indextoname(static_cast<unsigned>(ifindex), name) != nullptr ? 0 : -ENODEV;
    }
    // The version and the virtio-net header must be chosen before the ring.
    if (int e = set_int_opt(fd, SOL_PACKET, PACKET_VERSION, TPACKET_V2); e != 0) return e;
    if (int e = set_int_opt(fd, SOL_PACKET, PACKET_VNET_HDR, 1); e != 0) return e;
    if (int e = set_int_opt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, 1); e != 0) return e;

    // One frame a block: a block is the unit of the ring's memory.
    struct tpacket_req req {};
    req.tp_block_size = static_cast<unsigned>(kSlotSize);
    req.tp_block_nr = static_cast<unsigned>(kSlots);
    req.tp_frame_size = static_cast<unsigned>(kSlotSize);
    req.tp_frame_nr = static_cast<unsigned>(kSlots);
    if (::setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof(req)) != 0) return -errno;
    void* ring = ::mmap(nullptr, kSlotSize * kSlots, PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_POPULATE, fd, 0);
    if (ring == MAP_FAILED) return -errno;
    pl.ring_ = Mapping<std::uint8_t>(static_cast<std::uint8_t*>(ring),
                                     Unmap<std::uint8_t>{kSlotSize * kSlots});

    struct sockaddr_ll sll {};
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ETH_P_ALL);
    sll.sll_ifindex = ifindex;
    if (::bind(fd, reinterpret_cast<const struct sockaddr*>(&sll), sizeof(sll)) != 0) {
      return -errno;
    }
    if (options.fanout_group >= 0) {
      // A fanout group delivers by the group's own hook, which does not
      // know the sockets' PACKET_IGNORE_OUTGOING: the group needs the flag
      // too (kernels 6.x); an older kernel refuses it, and receive() then
      // skips outgoing frames itself.
      const int type = options.fanout_prog >= 0 ? PACKET_FANOUT_EBPF : PACKET_FANOUT_HASH;
      const int fanout = options.fanout_group | ((type | kFanoutFlagIgnoreOutgoing) << 16);
      if (set_int_opt(fd, SOL_PACKET, PACKET_FANOUT, fanout) != 0) {
        const int plain = options.fanout_group | (type << 16);
        if (int e = set_int_opt(fd, SOL_PACKET, PACKET_FANOUT, plain); e != 0) return e;
      }
      // The group's program: set by each member, the same one every time.
      if (options.fanout_prog >= 0) {
        if (int e = set_int_opt(fd, SOL_PACKET, PACKET_FANOUT_DATA, options.fanout_prog); e != 0)
          return e;
      }
    }
    return 0;
  });
  if (rc != 0) return rc;  // pl's members unmap and close
  *out = std::move(pl);
  return 0;
}

void PacketLower::release_views() {
  std::uint8_t* const ring = ring_.get();
  for (; held_ > 0; --held_) {
    const std::size_t slot = (slot_ + kSlots - held_) % kSlots;
    auto* hdr = reinterpret_cast<struct tpacket2_hdr*>(ring + slot * kSlotSize);
    std::atomic_ref<std::uint32_t>(hdr->tp_status)
        .store(TP_STATUS_KERNEL, std::memory_order_release);
  }
}

int PacketLower::receive(FrameBatch& batch, bool views) {
  batch.clear();
  if (ring_ == nullptr) return 0;
  release_views();  // a caller that forgot: never hold the ring forever
  std::uint8_t* const ring = ring_.get();
  bool losing = false;
  while (!batch.full()) {
    auto* hdr = reinterpret_cast<struct tpacket2_hdr*>(ring + slot_ * kSlotSize);
    const std::uint32_t status = load_acquire(hdr->tp_status);
    if ((status & TP_STATUS_USER) == 0) break;
    // The kernel dropped frames since the last read of its counters (the
    // ring was full). Under overload every frame may carry the mark: the
    // counters are read once, after the burst.
    losing = losing || (status & TP_STATUS_LOSING) != 0;
    const std::uint8_t* data = reinterpret_cast<const std::uint8_t*>(hdr) + hdr->tp_mac;
    const std::size_t caplen = hdr->tp_snaplen;
    const bool tagged = (status & TP_STATUS_VLAN_VALID) != 0;
    const std::size_t len = caplen + (tagged ? kVlanTagSize : 0);
    const std::span<std::uint8_t> slot = batch.next_slot().first(batch.slot_size());

    bool hold = false;
    const auto* sll = reinterpret_cast<const struct sockaddr_ll*>(
        reinterpret_cast<const std::uint8_t*>(hdr) + TPACKET_ALIGN(sizeof(struct tpacket2_hdr)));
    if (sll->sll_pkttype == PACKET_OUTGOING) {
      // What the lower itself sends (its stack, another socket): never the
      // port's to see, as with the kernel's rx_handler.
    } else if (caplen < hdr->tp_len || len > slot.size() || (tagged && caplen < kMacPairSize)) {
      ++batch.dropped_oversize;
    } else if (views && !tagged) {
      VnetHeader vnet;
      std::memcpy(&vnet, data - kVnetHdrSize, kVnetHdrSize);
      batch.add_view({data, caplen}, vnet);
      hold = true;
    } else {
      std::uint8_t* dst = slot.data();
      if (tagged) {
        const std::uint16_t tpid =
            (status & TP_STATUS_VLAN_TPID_VALID) != 0 && hdr->tp_vlan_tpid != 0
                ? hdr->tp_vlan_tpid
                : static_cast<std::uint16_t>(ETH_P_8021Q);
        const std::uint16_t tci = hdr->tp_vlan_tci;
        std::memcpy(dst, data, kMacPairSize);
        dst[12] = static_cast<std::uint8_t>(tpid >> 8);
        dst[13] = static_cast<std::uint8_t>(tpid & 0xff);
        dst[14] = static_cast<std::uint8_t>(tci >> 8);
        dst[15] = static_cast<std::uint8_t>(tci & 0xff);
        std::memcpy(dst + kMacPairSize + kVlanTagSize, data + kMacPairSize, caplen - kMacPairSize);
      } else {
        std::memcpy(dst, data, caplen);
      }
      VnetHeader vnet;
      std::memcpy(&vnet, data - kVnetHdrSize, kVnetHdrSize);
      if (tagged) {
        // The header counts from the frame as the kernel holds it, without
        // the tag we put back.
        if ((vnet.flags & kVnetNeedsCsum) != 0) vnet.csum_start += kVlanTagSize;
        if (vnet.hdr_len != 0) vnet.hdr_len += kVlanTagSize;
      }
      batch.commit(len, vnet);
    }
    slot_ = (slot_ + 1) % kSlots;
    if (hold || held_ > 0) {
      // Slots go back in order: one behind a held one waits with it.
      ++held_;
    } else {
      // The slot goes back to the kernel once we are done with its frame.
      std::atomic_ref<std::uint32_t>(hdr->tp_status)
          .store(TP_STATUS_KERNEL, std::memory_order_release);
    }
  }
  // Reading the counters resets them, and with them the mark on frames to come.
  if (RingStats st; losing && read_stats(&st) == 0) batch.dropped_ring_full += st.drops;
  return static_cast<int>(batch.count);
}

int PacketLower::send(const VnetHeader& vnet, std::span<const std::uint8_t> frame) {
  if (!fd_.valid()) return -EBADF;
  struct iovec iov[2] = {
      {const_cast<VnetHeader*>(&vnet), kVnetHdrSize},
      {const_cast<std::uint8_t*>(frame.data()), frame.size()},
  };
  struct msghdr msg {};
  msg.msg_iov = iov;
  msg.msg_iovlen = 2;
  for (;;) {
    if (::sendmsg(fd_.get(), &msg, MSG_DONTWAIT) >= 0) return 0;
    if (errno != EINTR) return -errno;
  }
}

int PacketLower::send_burst(std::span<const std::span<const std::uint8_t>> frames,
                            std::span<const VnetHeader> vnet) {
  if (!fd_.valid()) return -EBADF;
  const std::size_t n = std::min(frames.size(), kBatchSize);
  if (n == 0) return 0;
  static constexpr VnetHeader kPlain{};
  for (std::size_t i = 0; i < n; ++i) {
    const VnetHeader* h = i < vnet.size() ? &vnet[i] : &kPlain;
    iovs_[2 * i] = {const_cast<VnetHeader*>(h), kVnetHdrSize};
    iovs_[2 * i + 1] = {const_cast<std::uint8_t*>(frames[i].data()), frames[i].size()};
    msgs_[i] = {};
    msgs_[i].msg_hdr.msg_iov = &iovs_[2 * i];
    msgs_[i].msg_hdr.msg_iovlen = 2;
  }
  for (;;) {
    const int sent = ::sendmmsg(fd_.get(), msgs_.data(), static_cast<unsigned>(n), MSG_DONTWAIT);
    if (sent >= 0) return sent;
    if (errno != EINTR) return -errno;
  }
}

int PacketLower::membership(int type, const MacBytes* mac, bool add) {
  if (!fd_.valid()) return -EBADF;
  struct packet_mreq mr {};
  mr.mr_ifindex = ifindex_;
  mr.mr_type = static_cast<unsigned short>(type);
  if (mac != nullptr) {
    mr.mr_alen = static_cast<unsigned short>(mac->size());
    std::memcpy(mr.mr_address, mac->data(), mac->size());
  }
  const int opt = add ? PACKET_ADD_MEMBERSHIP : PACKET_DROP_MEMBERSHIP;
  return ::setsockopt(fd_.get(), SOL_PACKET, opt, &mr, sizeof(mr)) == 0 ? 0 : -errno;
}

namespace {

// Adds or removes mac in list, with the kernel call first so that a refusal
// leaves list as it was.
template <typename Apply>
int update_list(std::vector<MacBytes>& list, const MacBytes& mac, bool add, Apply apply) {
  const auto it = std::find(list.begin(), list.end(), mac);
  if ((it != list.end()) == add) return 0;
  if (add) list.reserve(list.size() + 1);  // so push_back below cannot fail
  if (const int rc = apply(); rc != 0) return rc;
  if (add) {
    list.push_back(mac);
  } else {
    list.erase(it);
  }
  return 0;
}

bool is_multicast(const MacBytes& mac) {
  return (mac[0] & 0x01) != 0;
}

}  // namespace

int PacketLower::add_unicast(const MacBytes& mac) {
  if (is_multicast(mac) || mac == MacBytes{}) return -EINVAL;
  return update_list(unicast_, mac, true,
                     [&] { return membership(PACKET_MR_UNICAST, &mac, true); });
}

int PacketLower::del_unicast(const MacBytes& mac) {
  if (is_multicast(mac)) return -EINVAL;
  return update_list(unicast_, mac, false,
                     [&] { return membership(PACKET_MR_UNICAST, &mac, false); });
}

int PacketLower::add_multicast(const MacBytes& mac) {
  if (!is_multicast(mac)) return -EINVAL;
  return update_list(multicast_, mac, true,
                     [&] { return membership(PACKET_MR_MULTICAST, &mac, true); });
}

int PacketLower::del_multicast(const MacBytes& mac) {
  if (!is_multicast(mac)) return -EINVAL;
  return update_list(multicast_, mac, false,
                     [&] { return membership(PACKET_MR_MULTICAST, &mac, false); });
}

int PacketLower::set_promisc(bool on) {
  if (promisc_ == on) return 0;
  if (const int rc = membership(PACKET_MR_PROMISC, nullptr, on); rc != 0) return rc;
  promisc_ = on;
  return 0;
}

int PacketLower::set_allmulti(bool on) {
  if (allmulti_ == on) return 0;
  if (const int rc = membership(PACKET_MR_ALLMULTI, nullptr, on); rc != 0) return rc;
  allmulti_ = on;
  return 0;
}

int PacketLower::pending_error() {
  if (!fd_.valid()) return -EBADF;
  int err = 0;
  socklen_t len = sizeof(err);
  if (::getsockopt(fd_.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) return -errno;
  return -err;
}

int PacketLower::read_stats(RingStats* out) {
  if (!fd_.valid()) return -EBADF;
  struct tpacket_stats_v3 st {};
  socklen_t len = sizeof(st);
  if (::getsockopt(fd_.get(), SOL_PACKET, PACKET_STATISTICS, &st, &len) != 0) return -errno;
  out->packets = st.tp_packets;
  out->drops = st.tp_drops;
  out->freezes = st.tp_freeze_q_cnt;
  return 0;
}

}  // namespace umacvlan::io
