#include "io/stack_filter.h"

#include <nftables/libnftables.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <sstream>

namespace umacvlan::io {
namespace {

std::string elements(const std::vector<MacBytes>& v) {
  std::string s = "{ ";
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + mac_text(v[i]);
  return s + " }";
}

std::vector<MacBytes> sorted(std::vector<MacBytes> v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

std::vector<MacBytes> minus(const std::vector<MacBytes>& a, const std::vector<MacBytes>& b) {
  std::vector<MacBytes> out;
  std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
  return out;
}

nft_ctx* new_context_in(const NetnsFd& ns) {
  nft_ctx* ctx = nullptr;
  run_in_netns(ns, [&] {
    ctx = nft_ctx_new(NFT_CTX_DEFAULT);
    return ctx == nullptr ? -ENOMEM : 0;
  });
  if (ctx != nullptr) {
    nft_ctx_buffer_output(ctx);
    nft_ctx_buffer_error(ctx);
  }
  return ctx;
}

// The fixed part of the chain; the sets carry the addresses.
std::string chain_rules(const std::string& table, bool all_unicast) {
  const std::string rule = "add rule netdev " + table + " ingress ";
  std::string cmd = rule + "ether saddr @srcs drop\n";
  cmd += all_unicast ? rule + "meta pkttype { host, other } drop\n"
                     : rule + "ether daddr @dsts drop\n";
  cmd += rule + "meta pkttype { broadcast, multicast } ether saddr @msrcs drop\n";
  return cmd;
}

}  // namespace

void NftContextFree::operator()(nft_ctx* ctx) const {
  nft_ctx_free(ctx);
}

StackFilter& StackFilter::operator=(StackFilter&& o) noexcept {
  if (this != &o) {
    remove();
    ctx_ = std::move(o.ctx_);
    table_ = std::move(o.table_);
    lower_ = std::move(o.lower_);
    applied_ = std::move(o.applied_);
    error_ = std::move(o.error_);
  }
  return *this;
}

StackFilter::~StackFilter() {
  remove();
}

int StackFilter::run(const std::string& commands) {
  if (ctx_ == nullptr) return -EBADF;
  const int r = nft_run_cmd_from_buffer(ctx_.get(), commands.c_str());
  const char* e = nft_ctx_get_error_buffer(ctx_.get());
  error_ = r == 0 ? std::string() : (e != nullptr && *e != '\0' ? e : "nft failed");
  nft_ctx_get_output_buffer(ctx_.get());  // drop what a command printed
  return r == 0 ? 0 : -EINVAL;
}

int StackFilter::open(const NetnsFd& ns, const std::string& table, const std::string& lower_name,
                      StackFilter* out) {
  StackFilter f;
  f.ctx_.reset(new_context_in(ns));
  if (f.ctx_ == nullptr) return -ENOMEM;
  f.table_ = table;
  f.lower_ = lower_name;
  const std::string t = "netdev " + table;
  // Priority -500: before anything a user hooks on the same device.
  std::string cmd = "add table " + t + "\ndelete table " + t + "\nadd table " + t + "\n";
  for (const char* set : {"srcs", "dsts", "msrcs"})
    cmd += "add set " + t + " " + set + " { type ether_addr; }\n";
  cmd += "add chain " + t + " ingress { type filter hook ingress device \"" + lower_name +
         "\" priority -500; policy accept; }\n";
  cmd += chain_rules(table, false);
  const int rc = f.run(cmd);
  if (rc < 0) {
    out->error_ = f.error_;
    f.ctx_.reset();  // nothing to remove
    return rc;
  }
  *out = std::move(f);
  return 0;
}

int StackFilter::apply(const StackFilterRules& want_in) {
  if (!valid()) return -EBADF;
  StackFilterRules want = want_in;
  want.sources = sorted(want.sources);
  want.destinations = sorted(want.destinations);
  want.multicast_sources = sorted(want.multicast_sources);
  if (want == applied_) return 0;
  const std::string t = "netdev " + table_;
  std::string cmd;
  auto diff = [&](const char* set, const std::vector<MacBytes>& have,
                  const std::vector<MacBytes>& need) {
    if (const auto gone = minus(have, need); !gone.empty())
      cmd += "delete element " + t + " " + set + " " + elements(gone) + "\n";
    if (const auto added = minus(need, have); !added.empty())
      cmd += "add element " + t + " " + set + " " + elements(added) + "\n";
  };
  diff("srcs", applied_.sources, want.sources);
  diff("dsts", applied_.destinations, want.destinations);
  diff("msrcs", applied_.multicast_sources, want.multicast_sources);
  if (want.all_unicast != applied_.all_unicast)
    cmd += "flush chain " + t + " ingress\n" + chain_rules(table_, want.all_unicast);
  int rc = run(cmd);
  if (rc < 0) {
    // Out of step with the kernel (someone edited the table): rewrite it whole.
    std::string whole = "flush set " + t + " srcs\nflush set " + t + " dsts\nflush set " + t +
                        " msrcs\nflush chain " + t + " ingress\n" +
                        chain_rules(table_, want.all_unicast);
    if (!want.sources.empty())
      whole += "add element " + t + " srcs " + elements(want.sources) + "\n";
    if (!want.destinations.empty())
      whole += "add element " + t + " dsts " + elements(want.destinations) + "\n";
    if (!want.multicast_sources.empty())
      whole += "add element " + t + " msrcs " + elements(want.multicast_sources) + "\n";
    rc = run(whole);
  }
  if (rc == 0) applied_ = std::move(want);
  return rc;
}

int StackFilter::remove() {
  if (!valid()) return 0;
  const int rc = run("delete table netdev " + table_ + "\n");
  ctx_.reset();
  applied_ = {};
  return rc;
}

int StackFilter::remove_stale(const NetnsFd& ns, const std::string& prefix,
                              const std::vector<std::string>& keep) {
  std::unique_ptr<nft_ctx, NftContextFree> ctx(new_context_in(ns));
  if (ctx == nullptr) return -ENOMEM;
  if (nft_run_cmd_from_buffer(ctx.get(), "list tables netdev\n") != 0) return -EINVAL;
  std::istringstream listing(nft_ctx_get_output_buffer(ctx.get()));
  std::string word, family, name;
  int removed = 0;
  // "table netdev NAME" per line.
  while (listing >> word >> family >> name) {
    if (word != "table" || name.rfind(prefix, 0) != 0) continue;
    if (std::find(keep.begin(), keep.end(), name) != keep.end()) continue;
    if (nft_run_cmd_from_buffer(ctx.get(), ("delete table netdev " + name + "\n").c_str()) == 0)
      ++removed;
  }
  return removed;
}

}  // namespace umacvlan::io
