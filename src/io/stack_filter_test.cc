// Needs root. Works in a namespace of its own (ScopedNetns).
#include "io/stack_filter.h"

#include <gtest/gtest.h>
#include <nftables/libnftables.h>
#include <unistd.h>

#include "io/io_test_util.h"

namespace umacvlan::io {
namespace {

using testing::kMacA;
using testing::kMacB;
using testing::ScopedNetns;

// `nft list ruleset` inside ns.
std::string ruleset(const NetnsFd& ns) {
  std::string out;
  run_in_netns(ns, [&] {
    nft_ctx* ctx = nft_ctx_new(NFT_CTX_DEFAULT);
    nft_ctx_buffer_output(ctx);
    nft_ctx_buffer_error(ctx);
    nft_run_cmd_from_buffer(ctx, "list ruleset\n");
    out = nft_ctx_get_output_buffer(ctx);
    nft_ctx_free(ctx);
    return 0;
  });
  return out;
}

bool has(const std::string& text, const std::string& what) {
  return text.find(what) != std::string::npos;
}

class StackFilterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root";
    ASSERT_TRUE(ns_.ok());
    ASSERT_EQ(ns_.ip("link add lower0 type veth peer name peer0"), 0);
  }
  ScopedNetns ns_;
};

TEST_F(StackFilterTest, AppliesAddressSetsIncrementallyAndRemovesTheTable) {
  const NetnsFd ns = ns_.open();
  StackFilter f;
  ASSERT_EQ(StackFilter::open(ns, "umacvlan_t_1", "lower0", &f), 0) << f.last_error();
  std::string r = ruleset(ns);
  EXPECT_TRUE(has(r, "table netdev umacvlan_t_1")) << r;
  EXPECT_TRUE(has(r, "ether daddr @dsts drop")) << r;

  StackFilterRules rules;
  rules.destinations = {kMacA, kMacB};
  rules.sources = {kMacB};
  ASSERT_EQ(f.apply(rules), 0) << f.last_error();
  r = ruleset(ns);
  EXPECT_TRUE(has(r, "02:00:00:00:00:0a")) << r;
  EXPECT_TRUE(has(r, "02:00:00:00:00:0b")) << r;

  rules.destinations = {kMacB};
  rules.sources.clear();
  rules.all_unicast = true;
  ASSERT_EQ(f.apply(rules), 0) << f.last_error();
  r = ruleset(ns);
  EXPECT_FALSE(has(r, "02:00:00:00:00:0a")) << r;
  EXPECT_TRUE(has(r, "meta pkttype { host, other } drop")) << r;
  EXPECT_FALSE(has(r, "ether daddr @dsts drop")) << r;

  EXPECT_EQ(f.remove(), 0);
  EXPECT_FALSE(has(ruleset(ns), "umacvlan_t_1"));
}

TEST_F(StackFilterTest, OpenReplacesAStaleTableAndRemoveStaleKeepsWhatIsLive) {
  const NetnsFd ns = ns_.open();
  StackFilter stale, live;
  ASSERT_EQ(StackFilter::open(ns, "umacvlan_t_7", "lower0", &stale), 0);
  StackFilterRules rules;
  rules.destinations = {kMacA};
  ASSERT_EQ(stale.apply(rules), 0);
  // A crashed run leaves its table: the context goes, the table stays.
  StackFilter orphan;
  ASSERT_EQ(StackFilter::open(ns, "umacvlan_t_8", "lower0", &orphan), 0);
  ASSERT_EQ(StackFilter::open(ns, "umacvlan_t_7", "lower0", &live), 0);  // replaces
  EXPECT_FALSE(has(ruleset(ns), "02:00:00:00:00:0a"));
  EXPECT_EQ(StackFilter::remove_stale(ns, "umacvlan_t_", {"umacvlan_t_7"}), 1);
  const std::string r = ruleset(ns);
  EXPECT_TRUE(has(r, "umacvlan_t_7")) << r;
  EXPECT_FALSE(has(r, "umacvlan_t_8")) << r;
}

}  // namespace
}  // namespace umacvlan::io
