#include "core/mac_table.h"

#include <utility>

namespace umacvlan::core {

void MacTable::insert(MacAddress mac, std::uint32_t value) {
  const std::uint64_t key = mac.to_u64();
  if ((size_ + 1) * 2 > slots_.size()) grow();
  std::size_t i = index(key);
  while (slots_[i].key != 0 && slots_[i].key != key) i = (i + 1) & (slots_.size() - 1);
  if (slots_[i].key == 0) ++size_;
  slots_[i] = Slot{key, value};
}

bool MacTable::erase(MacAddress mac) {
  const std::uint64_t key = mac.to_u64();
  const std::size_t mask = slots_.size() - 1;
  std::size_t i = index(key);
  while (slots_[i].key != key) {
    if (slots_[i].key == 0) return false;
    i = (i + 1) & mask;
  }
  // Backward-shift: pull later members of the probe run into the hole so
  // lookups never need tombstones.
  std::size_t hole = i;
  std::size_t j = i;
  while (true) {
    j = (j + 1) & mask;
    if (slots_[j].key == 0) break;
    const std::size_t home = index(slots_[j].key);
    const bool movable = (hole <= j) ? (home <= hole || home > j) : (home <= hole && home > j);
    if (movable) {
      slots_[hole] = slots_[j];
      hole = j;
    }
  }
  slots_[hole] = Slot{};
  --size_;
  return true;
}

void MacTable::grow() {
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(old.size() * 2, Slot{});
  --shift_;
  size_ = 0;
  for (const Slot& s : old) {
    if (s.key != 0) insert(MacAddress::from_u64(s.key), s.value);
  }
}

}  // namespace umacvlan::core
