// StackFilter: keeps the frames a port consumes away from the lower's own
// network stack, as the kernel's macvlan does (a frame for a macvlan device,
// or stopped by a nodst source entry, never reaches the lower's stack).
//
// Contract: one nftables table of the netdev family in the lower's
// namespace, named by the caller, with three address sets and one ingress
// chain on the lower that drops what matches them. The netdev ingress hook
// runs after AF_PACKET taps, so the port's PacketLower still sees every
// frame; only the lower's stack loses the consumed ones. open() replaces a
// table of the same name (a stale one of a crashed run). apply() changes
// only the set elements that differ from the last apply (one atomic nft
// transaction), so its cost follows the change, not the number of devices.
// The destructor (and remove()) deletes the table. libnftables' context is
// made once, inside the lower's namespace, whose netlink socket it keeps
// (that pins the namespace, as the port's AF_PACKET sockets do); commands
// then run from the calling thread. Returns 0 or -errno; never throws; not
// on the data path.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "io/frame_batch.h"
#include "io/netns.h"

struct nft_ctx;

namespace umacvlan::io {

struct StackFilterRules {
  std::vector<MacBytes> sources;            // every frame from these
  std::vector<MacBytes> destinations;       // unicast frames to these
  std::vector<MacBytes> multicast_sources;  // multicast/broadcast frames from these
  bool all_unicast = false;                 // every unicast frame (passthru)
  bool operator==(const StackFilterRules&) const = default;
};

struct NftContextFree {
  void operator()(nft_ctx* ctx) const;
};

class StackFilter {
 public:
  StackFilter() = default;
  StackFilter(StackFilter&& o) noexcept = default;
  StackFilter& operator=(StackFilter&& o) noexcept;
  StackFilter(const StackFilter&) = delete;
  StackFilter& operator=(const StackFilter&) = delete;
  ~StackFilter();

  // Creates table `table` in ns (replacing one of that name) with its chain
  // hooked on lower_name; no addresses yet.
  static int open(const NetnsFd& ns, const std::string& table, const std::string& lower_name,
                  StackFilter* out);
  bool valid() const { return ctx_ != nullptr; }
  const std::string& table() const { return table_; }
  int apply(const StackFilterRules& rules);
  int remove();
  // The last error text from nft, for logs.
  const std::string& last_error() const { return error_; }

  // Deletes every netdev table in ns whose name starts with prefix, but
  // those named in keep. Returns how many it deleted, or -errno.
  static int remove_stale(const NetnsFd& ns, const std::string& prefix,
                          const std::vector<std::string>& keep);

 private:
  int run(const std::string& commands);

  std::unique_ptr<nft_ctx, NftContextFree> ctx_;
  std::string table_;
  std::string lower_;
  StackFilterRules applied_;
  std::string error_;
};

}  // namespace umacvlan::io
