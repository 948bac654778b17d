// MacTable: insert/find/erase/overwrite, growth, and a differential test
// against std::unordered_map over 100k random operations per key pool
// (fixed seeds), including colliding keys and erases of absent keys.
#include "core/mac_table.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <ostream>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

namespace umacvlan::core {
namespace {

constexpr std::uint64_t kLow48 = 0xffffffffffffULL;
constexpr std::uint64_t kHashMul = 0x9E3779B97F4A7C15ULL;  // the table's multiplier

MacAddress key(std::uint64_t k) {
  return MacAddress::from_u64(k);
}

// Keys whose hash has the given top 12 bits: they share their home slot in
// every table of up to 4096 slots. Buckets 0xfff and 0x000 are the last and
// first slot, so their probe runs wrap around the end of the table.
std::vector<std::uint64_t> colliding_keys(std::uint64_t seed, std::vector<std::uint64_t> buckets,
                                          std::size_t per_bucket) {
  std::mt19937_64 rng(seed);
  std::vector<std::vector<std::uint64_t>> found(buckets.size());
  std::size_t done = 0;
  while (done < buckets.size()) {
    const std::uint64_t k = rng() & kLow48;
    if (k == 0) continue;
    const std::uint64_t top = (k * kHashMul) >> 52;
    for (std::size_t b = 0; b < buckets.size(); ++b) {
      if (top != buckets[b] || found[b].size() == per_bucket) continue;
      found[b].push_back(k);
      if (found[b].size() == per_bucket) ++done;
    }
  }
  std::vector<std::uint64_t> all;
  for (const auto& f : found) all.insert(all.end(), f.begin(), f.end());
  return all;
}

void expect_matches(const MacTable& t,
                    const std::unordered_map<std::uint64_t, std::uint32_t>& model,
                    const std::vector<std::uint64_t>& pool, const std::string& where) {
  ASSERT_EQ(t.size(), model.size()) << where;
  for (std::uint64_t k : pool) {
    auto it = model.find(k);
    const std::uint32_t want = it == model.end() ? MacTable::kNotFound : it->second;
    ASSERT_EQ(t.find(key(k)), want) << where << ": key " << key(k).to_string();
    ASSERT_EQ(t.find(k), want) << where << ": key " << key(k).to_string() << " (u64)";
  }
}

// ---------------------------------------------------------------- basics

TEST(MacTable, EmptyFindsNothing) {
  MacTable t;
  EXPECT_EQ(t.size(), 0u);
  for (std::uint64_t k : {std::uint64_t{1}, std::uint64_t{0x020000000001ULL}, kLow48,
                          std::uint64_t{0x123456789abcULL}}) {
    EXPECT_EQ(t.find(key(k)), MacTable::kNotFound) << key(k).to_string();
  }
  EXPECT_FALSE(t.erase(key(0x020000000001ULL)));
  EXPECT_EQ(t.size(), 0u);
}

TEST(MacTable, InsertFindOverwriteErase) {
  MacTable t;
  const MacAddress a = key(0x020000000001ULL);
  const MacAddress b = key(0x020000000002ULL);
  t.insert(a, 7);
  t.insert(b, 0);  // 0 is a value like any other
  EXPECT_EQ(t.size(), 2u);
  EXPECT_EQ(t.find(a), 7u);
  EXPECT_EQ(t.find(b), 0u);

  t.insert(a, 9);  // overwrite: same size, new value
  EXPECT_EQ(t.size(), 2u);
  EXPECT_EQ(t.find(a), 9u);

  EXPECT_FALSE(t.erase(key(0x020000000003ULL)));  // absent: nothing changes
  EXPECT_EQ(t.size(), 2u);
  EXPECT_TRUE(t.erase(a));
  EXPECT_EQ(t.size(), 1u);
  EXPECT_EQ(t.find(a), MacTable::kNotFound);
  EXPECT_EQ(t.find(b), 0u);
  EXPECT_FALSE(t.erase(a));  // twice
  EXPECT_EQ(t.size(), 1u);

  t.clear();
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(t.find(b), MacTable::kNotFound);
  t.insert(b, 3);  // usable after clear
  EXPECT_EQ(t.find(b), 3u);
}

TEST(MacTable, GrowthKeepsAllEntries) {
  MacTable t;
  std::unordered_map<std::uint64_t, std::uint32_t> model;
  std::vector<std::uint64_t> pool;
  std::mt19937_64 rng(0x7ab1e001);
  for (std::uint32_t i = 0; i < 5000; ++i) {
    const std::uint64_t k = (i % 2 == 0) ? (0x020000000000ULL | (i + 1)) : ((rng() & kLow48) | 1);
    pool.push_back(k);
    t.insert(key(k), i);
    model[k] = i;
    // Check everything at each power of two, where the table grows.
    if (((i + 1) & i) == 0 || i + 1 == 5000) {
      expect_matches(t, model, pool, "after " + std::to_string(i + 1) + " inserts");
    }
  }
}

TEST(MacTable, EraseInsideCollisionRunsKeepsTheRestReachable) {
  // Runs that wrap around the end of the table, and a run right behind them.
  const std::vector<std::uint64_t> keys = colliding_keys(0x7ab1e002, {0xfff, 0x000, 0x001}, 5);
  MacTable t;
  std::unordered_map<std::uint64_t, std::uint32_t> model;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    t.insert(key(keys[i]), static_cast<std::uint32_t>(i));
    model[keys[i]] = static_cast<std::uint32_t>(i);
  }
  expect_matches(t, model, keys, "all inserted");
  // Erase from the middle, the head and the tail of the runs, one at a time.
  for (std::size_t i : {2u, 0u, 14u, 7u, 5u, 10u, 1u, 13u}) {
    EXPECT_TRUE(t.erase(key(keys[i])));
    model.erase(keys[i]);
    expect_matches(t, model, keys, "after erasing #" + std::to_string(i));
  }
}

TEST(MacTable, ZeroAddressIsNeverFound) {
  // The all-zero address marks empty slots; it is never a key, so a lookup
  // of it (a frame with S or D 00:00:00:00:00:00) must say "not found".
  MacTable t;
  EXPECT_EQ(t.find(MacAddress()), MacTable::kNotFound) << "empty table";
  t.insert(key(0x020000000001ULL), 5);
  t.insert(key(0x020000000002ULL), 6);
  EXPECT_EQ(t.find(MacAddress()), MacTable::kNotFound) << "two entries";
  EXPECT_EQ(t.find(std::uint64_t{0}), MacTable::kNotFound) << "u64 overload";
}

// ---------------------------------------------------------------- differential

struct PoolRow {
  const char* name;
  std::uint64_t seed;
  std::vector<std::uint64_t> (*make)(std::mt19937_64&);
};

std::vector<std::uint64_t> wide_pool(std::mt19937_64& rng) {
  std::vector<std::uint64_t> p;
  while (p.size() < 6000) {
    const std::uint64_t k = rng() & kLow48;
    if (k != 0) p.push_back(k);
  }
  return p;
}

std::vector<std::uint64_t> dense_pool(std::mt19937_64& rng) {
  std::vector<std::uint64_t> p;
  for (int i = 0; i < 48; ++i) p.push_back((rng() & kLow48) | 0x020000000000ULL);
  return p;
}

std::vector<std::uint64_t> sequential_pool(std::mt19937_64&) {
  std::vector<std::uint64_t> p;
  for (std::uint64_t i = 1; i <= 3000; ++i) p.push_back(0x020000000000ULL | i);
  for (std::uint64_t i = 1; i <= 3000; ++i) p.push_back(i << 24);
  return p;
}

std::vector<std::uint64_t> collision_pool(std::mt19937_64& rng) {
  std::vector<std::uint64_t> p =
      colliding_keys(rng(), {0xfff, 0x000, 0x001, 0x002, 0x7ff, 0x800}, 40);
  // A few ordinary keys between the runs.
  for (int i = 0; i < 60; ++i) p.push_back((rng() & kLow48) | 1);
  return p;
}

void PrintTo(const PoolRow& r, std::ostream* os) {
  *os << r.name << " seed " << r.seed;
}

class MacTableDifferential : public ::testing::TestWithParam<PoolRow> {};

TEST_P(MacTableDifferential, MatchesUnorderedMapOver100kOps) {
  std::mt19937_64 rng(GetParam().seed);
  const std::vector<std::uint64_t> pool = GetParam().make(rng);
  MacTable t;
  std::unordered_map<std::uint64_t, std::uint32_t> model;
  std::uint64_t erase_absent = 0, erase_present = 0, overwrites = 0;
  constexpr int kOps = 100000;
  for (int op = 0; op < kOps; ++op) {
    // Alternate phases that fill the table and phases that drain it.
    const bool filling = (op / 10000) % 2 == 0;
    const std::uint64_t k = pool[rng() % pool.size()];
    const unsigned dice = static_cast<unsigned>(rng() % 100);
    const std::string where = "op " + std::to_string(op) + " key " + key(k).to_string();
    if (dice < (filling ? 60u : 25u)) {
      const std::uint32_t v = static_cast<std::uint32_t>(rng() % 0xfffffffeu);
      if (model.count(k)) ++overwrites;
      t.insert(key(k), v);
      model[k] = v;
    } else if (dice < 85) {
      const bool present = model.erase(k) == 1;
      ++(present ? erase_present : erase_absent);
      ASSERT_EQ(t.erase(key(k)), present) << where << " (erase)";
    } else {
      auto it = model.find(k);
      ASSERT_EQ(t.find(key(k)), it == model.end() ? MacTable::kNotFound : it->second)
          << where << " (find)";
    }
    ASSERT_EQ(t.size(), model.size()) << where;
    if (op % 4999 == 0) expect_matches(t, model, pool, where);
    if (::testing::Test::HasFatalFailure()) return;
  }
  expect_matches(t, model, pool, "end");
  // The run exercised what it claims to.
  EXPECT_GT(erase_absent, 1000u);
  EXPECT_GT(erase_present, 1000u);
  EXPECT_GT(overwrites, 1000u);
}

INSTANTIATE_TEST_SUITE_P(Pools, MacTableDifferential,
                         ::testing::Values(PoolRow{"wide_random", 0xd1ff0001, wide_pool},
                                           PoolRow{"dense_small", 0xd1ff0002, dense_pool},
                                           PoolRow{"sequential", 0xd1ff0003, sequential_pool},
                                           PoolRow{"collision_heavy", 0xd1ff0004, collision_pool}),
                         [](const ::testing::TestParamInfo<PoolRow>& i) {
                           return std::string(i.param.name);
                         });

}  // namespace
}  // namespace umacvlan::core
