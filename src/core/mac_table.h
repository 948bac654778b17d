// MacTable: an open-addressing hash map from a MAC address to a small value,
// the O(1) lookup behind unicast forwarding.
//
// Contract: lookups cost the same for 1 or 4096 entries (load factor <= 1/2,
// linear probing, backward-shift deletion, no tombstones). Keys are the
// address as a 48-bit integer; the all-zero address is never a valid key
// (it marks empty slots). Insertions may allocate (control path only); find()
// never allocates and never throws. No I/O.
#pragma once

#include <cstdint>
#include <vector>

#include "core/mac_address.h"

namespace umacvlan::core {

class MacTable {
 public:
  static constexpr std::uint32_t kNotFound = 0xffffffffu;

  MacTable() { slots_.assign(16, Slot{}); }

  std::uint32_t find(MacAddress mac) const { return find(mac.to_u64()); }
  std::uint32_t find(std::uint64_t key) const {
    if (key == 0) return kNotFound;  // the empty-slot marker is never a key
    std::size_t i = index(key);
    while (true) {
      const Slot& s = slots_[i];
      if (s.key == key) return s.value;
      if (s.key == 0) return kNotFound;
      i = (i + 1) & (slots_.size() - 1);
    }
  }
  // Inserts or overwrites.
  void insert(MacAddress mac, std::uint32_t value);
  // Returns whether the key was present.
  bool erase(MacAddress mac);
  std::size_t size() const { return size_; }
  void clear() {
    slots_.assign(16, Slot{});
    size_ = 0;
  }

 private:
  struct Slot {
    std::uint64_t key = 0;
    std::uint32_t value = 0;
  };
  std::size_t index(std::uint64_t key) const {
    return static_cast<std::size_t>((key * 0x9E3779B97F4A7C15ULL) >> shift_);
  }
  void grow();

  std::vector<Slot> slots_;
  std::size_t size_ = 0;
  unsigned shift_ = 60;  // 64 - log2(slots_.size())
};

}  // namespace umacvlan::core
