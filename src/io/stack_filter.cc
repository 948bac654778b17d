#include "io/stack_filter.h"

#include <nftables/libnftables.h>

#include <cerrno>
#include <cstdio>

namespace umacvlan::io {
namespace {

std::string mac_text(const MacBytes& m) {
  char buf[18];
  std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4],
                m[5]);
  return buf;
}

std::string mac_set(const std::vector<MacBytes>& v) {
  std::string s = "{ ";
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + mac_text(v[i]);
  return s + " }";
}

}  // namespace

StackFilter::StackFilter(StackFilter&& o) noexcept
    : ns_(std::move(o.ns_)), table_(std::move(o.table_)), error_(std::move(o.error_)) {}

StackFilter& StackFilter::operator=(StackFilter&& o) noexcept {
  if (this != &o) {
    remove();
    ns_ = std::move(o.ns_);
    table_ = std::move(o.table_);
    error_ = std::move(o.error_);
  }
  return *this;
}

StackFilter::~StackFilter() {
  remove();
}

int StackFilter::run(const std::string& commands) {
  std::string err;
  const int rc = run_in_netns(ns_, [&]() -> int {
    nft_ctx* ctx = nft_ctx_new(NFT_CTX_DEFAULT);
    if (ctx == nullptr) return -ENOMEM;
    nft_ctx_buffer_output(ctx);
    nft_ctx_buffer_error(ctx);
    const int r = nft_run_cmd_from_buffer(ctx, commands.c_str());
    if (r != 0) {
      const char* e = nft_ctx_get_error_buffer(ctx);
      err = e ? e : "nft failed";
    }
    nft_ctx_free(ctx);
    return r == 0 ? 0 : -EINVAL;
  });
  error_ = err;
  return rc;
}

int StackFilter::open(const NetnsFd& ns, const std::string& lower_name, int ifindex,
                      StackFilter* out) {
  StackFilter f;
  f.ns_ = ns.dup();
  if (!f.ns_.valid()) return -EBADF;
  f.table_ = "umacvlan_" + std::to_string(ifindex);
  // Priority -500: before anything a user hooks on the same device.
  const std::string cmd = "add table netdev " + f.table_ + "\n" + "delete table netdev " +
                          f.table_ + "\n" + "add table netdev " + f.table_ + "\n" +
                          "add chain netdev " + f.table_ +
                          " ingress { type filter hook ingress device \"" + lower_name +
                          "\" priority -500; policy accept; }\n";
  if (int rc = f.run(cmd); rc < 0) {
    f.ns_ = NetnsFd();
    *out = std::move(f);
    return rc;
  }
  *out = std::move(f);
  return 0;
}

int StackFilter::apply(const StackFilterRules& r) {
  if (!valid()) return -EBADF;
  std::string cmd = "flush chain netdev " + table_ + " ingress\n";
  const std::string rule = "add rule netdev " + table_ + " ingress ";
  if (!r.sources.empty()) cmd += rule + "ether saddr " + mac_set(r.sources) + " drop\n";
  if (r.all_unicast) {
    cmd += rule + "meta pkttype { host, other } drop\n";
  } else if (!r.destinations.empty()) {
    cmd += rule + "ether daddr " + mac_set(r.destinations) + " drop\n";
  }
  if (!r.multicast_sources.empty())
    cmd += rule + "meta pkttype { broadcast, multicast } ether saddr " +
           mac_set(r.multicast_sources) + " drop\n";
  return run(cmd);
}

int StackFilter::remove() {
  if (!valid()) return 0;
  const int rc = run("delete table netdev " + table_ + "\n");
  ns_ = NetnsFd();
  return rc;
}

}  // namespace umacvlan::io
