// StackFilter: keeps the frames a port consumes away from the lower's own
// network stack, as the kernel's macvlan does (a frame for a macvlan device,
// or stopped by a nodst source entry, never reaches the lower's stack).
//
// Contract: an nftables table "netdev umacvlan_<ifindex>" in the lower's
// namespace with one ingress chain on the lower. The netdev ingress hook
// runs after AF_PACKET taps, so the port's PacketLower still sees every
// frame; only the lower's stack loses the consumed ones. apply() replaces
// the chain's rules in one atomic nft transaction; the destructor (and
// remove()) deletes the table. Uses libnftables; runs its commands on a
// helper thread inside the lower's namespace. Returns 0 or -errno; never
// throws; not on the data path.
#pragma once

#include <string>
#include <vector>

#include "io/frame_batch.h"
#include "io/netns.h"

namespace umacvlan::io {

struct StackFilterRules {
  std::vector<MacBytes> sources;            // every frame from these
  std::vector<MacBytes> destinations;       // unicast frames to these
  std::vector<MacBytes> multicast_sources;  // multicast/broadcast frames from these
  bool all_unicast = false;                 // every unicast frame (passthru)
  bool operator==(const StackFilterRules&) const = default;
};

class StackFilter {
 public:
  StackFilter() = default;
  StackFilter(StackFilter&& o) noexcept;
  StackFilter& operator=(StackFilter&& o) noexcept;
  StackFilter(const StackFilter&) = delete;
  StackFilter& operator=(const StackFilter&) = delete;
  ~StackFilter();

  // Creates (or takes over a stale) table for the lower; no rules yet.
  static int open(const NetnsFd& ns, const std::string& lower_name, int ifindex, StackFilter* out);
  bool valid() const { return ns_.valid(); }
  int apply(const StackFilterRules& rules);
  int remove();
  // The last error text from nft, for logs.
  const std::string& last_error() const { return error_; }

 private:
  int run(const std::string& commands);

  NetnsFd ns_;
  std::string table_;
  std::string error_;
};

}  // namespace umacvlan::io
