// Helpers for the io tests (test-only, not part of umacvlan_io).
//
// Contract: ScopedNetns makes a network namespace with a name unique to this
// process (`ip netns add umv-io-PID-N`) and deletes it in its destructor, so
// a failing test still cleans up; it holds no fd of the namespace itself
// (open() hands out fresh ones) so that deleting it really lets it die. The
// helpers run iproute2 only with `-n NAME` of such a namespace: nothing here
// touches the host namespace's interfaces.
#pragma once

#include <net/if.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "io/frame_batch.h"
#include "io/netns.h"
#include "io/packet_lower.h"

namespace umacvlan::io::testing {

// Runs a shell command; returns its exit status (-1 if it could not run).
inline int sh(const std::string& cmd) {
  const int rc = std::system(cmd.c_str());
  if (rc != 0) std::fprintf(stderr, "command failed (%d): %s\n", rc, cmd.c_str());
  return rc == -1 ? -1 : WEXITSTATUS(rc);
}

// Runs a command and returns its standard output.
inline std::string capture(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  ::pclose(p);
  return out;
}

class ScopedNetns {
 public:
  // ipv6: keep IPv6 on (its groups show in the multicast lists); off by
  // default, for quiet links.
  explicit ScopedNetns(bool ipv6 = false) {
    static int counter = 0;
    name_ = "umv-io-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
    ok_ = sh("ip netns add " + name_) == 0;
    // Quiet namespaces: no IPv6 autoconfiguration chatter on the links.
    if (ok_ && !ipv6)
      sh("ip netns exec " + name_ +
         " sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1");
    if (ok_) sh("ip -n " + name_ + " link set lo up");
  }
  ~ScopedNetns() { remove(); }
  ScopedNetns(const ScopedNetns&) = delete;
  ScopedNetns& operator=(const ScopedNetns&) = delete;

  bool ok() const { return ok_; }
  const std::string& name() const { return name_; }
  NetnsFd open() const { return netns_by_name(name_); }
  // `ip -n NAME ARGS`
  int ip(const std::string& args) const { return sh("ip -n " + name_ + " " + args); }
  // The JSON iproute2 prints for `ip -n NAME -d -j link show dev DEV` (its
  // first element), or null if the device does not exist.
  nlohmann::json link(const std::string& dev) const {
    const std::string out =
        capture("ip -n " + name_ + " -d -j link show dev " + dev + " 2>/dev/null");
    const auto j = nlohmann::json::parse(out, nullptr, false);
    if (j.is_discarded() || !j.is_array() || j.empty()) return nullptr;
    return j[0];
  }
  std::size_t link_count() const {
    const auto j =
        nlohmann::json::parse(capture("ip -n " + name_ + " -j link show"), nullptr, false);
    return j.is_array() ? j.size() : 0;
  }
  int ifindex(const std::string& dev) const {
    const auto l = link(dev);
    return l.is_null() ? 0 : l["ifindex"].get<int>();
  }
  bool has_flag(const std::string& dev, const std::string& flag) const {
    const auto l = link(dev);
    if (l.is_null()) return false;
    for (const auto& f : l["flags"]) {
      if (f == flag) return true;
    }
    return false;
  }
  // Deletes the namespace now (idempotent).
  void remove() {
    if (ok_) sh("ip netns del " + name_);
    ok_ = false;
  }

 private:
  std::string name_;
  bool ok_ = false;
};

// if_nametoindex() inside ns: the index, or 0 if there is no such device.
inline int ifindex_in(const NetnsFd& ns, const std::string& dev) {
  return run_in_netns(ns, [&] { return static_cast<int>(::if_nametoindex(dev.c_str())); });
}

inline const MacBytes kMacA{0x02, 0x00, 0x00, 0x00, 0x00, 0x0a};
inline const MacBytes kMacB{0x02, 0x00, 0x00, 0x00, 0x00, 0x0b};
// A local experimental ethertype, so that test frames are easy to tell apart.
inline constexpr std::uint16_t kTestEthertype = 0x88b5;

// dst, src, [tags...], ethertype, then a payload of len bytes starting with
// the 4-byte marker and counting up from it.
inline std::vector<std::uint8_t> make_frame(const MacBytes& dst, const MacBytes& src,
                                            std::uint32_t marker, std::size_t payload_len = 64,
                                            std::vector<std::uint16_t> tags = {},
                                            std::uint16_t ethertype = kTestEthertype) {
  std::vector<std::uint8_t> f(dst.begin(), dst.end());
  f.insert(f.end(), src.begin(), src.end());
  auto put16 = [&](std::uint16_t v) {
    f.push_back(static_cast<std::uint8_t>(v >> 8));
    f.push_back(static_cast<std::uint8_t>(v & 0xff));
  };
  for (auto t : tags) put16(t);
  put16(ethertype);
  for (std::size_t i = 0; i < payload_len; ++i) {
    f.push_back(i < 4 ? static_cast<std::uint8_t>(marker >> (24 - 8 * i))
                      : static_cast<std::uint8_t>(marker + i));
  }
  return f;
}

// Whether frame carries the payload marker right after its ethertype
// (skipping up to two VLAN tags).
inline bool has_marker(std::span<const std::uint8_t> f, std::uint32_t marker) {
  std::size_t off = 12;
  for (int i = 0; i < 2 && f.size() >= off + 2; ++i) {
    const unsigned et = f[off] << 8 | f[off + 1];
    if (et != 0x8100 && et != 0x88a8) break;
    off += 4;
  }
  off += 2;
  if (f.size() < off + 4) return false;
  const std::uint32_t m = static_cast<std::uint32_t>(f[off]) << 24 |
                          static_cast<std::uint32_t>(f[off + 1]) << 16 |
                          static_cast<std::uint32_t>(f[off + 2]) << 8 | f[off + 3];
  return m == marker;
}

// Receives from lower until `want` frames matching keep() have arrived or
// timeout passes; returns copies of the matching frames. Also adds every
// oversize drop to *oversize if given, and appends the virtio-net header of
// every matching frame to *vnet if given.
inline std::vector<std::vector<std::uint8_t>> collect(
    PacketLower& lower, std::size_t want,
    const std::function<bool(std::span<const std::uint8_t>)>& keep,
    std::chrono::milliseconds timeout = std::chrono::milliseconds(2000),
    std::uint64_t* oversize = nullptr, std::vector<VnetHeader>* vnet = nullptr) {
  std::vector<std::vector<std::uint8_t>> got;
  FrameBatch batch;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (got.size() < want && std::chrono::steady_clock::now() < deadline) {
    struct pollfd pfd {
      lower.fd(), POLLIN, 0
    };
    ::poll(&pfd, 1, 20);
    lower.receive_burst(batch);
    if (oversize != nullptr) *oversize += batch.dropped_oversize;
    for (std::size_t i = 0; i < batch.count; ++i) {
      if (!keep(batch[i])) continue;
      got.emplace_back(batch[i].begin(), batch[i].end());
      if (vnet != nullptr) vnet->push_back(batch.vnet[i]);
    }
  }
  return got;
}

}  // namespace umacvlan::io::testing
