#include "ledger.h"

namespace kb {

int32_t Ledger::find(uint32_t loadTag) const {
  for (uint32_t i = 0; i < used_; i++)
    if (entries_[i].loadTag == loadTag) return (int32_t)i;
  return -1;
}

uint32_t Ledger::count(uint32_t loadTag) const {
  int32_t i = find(loadTag);
  return i < 0 ? 0 : entries_[i].count;
}

uint32_t Ledger::add(uint32_t loadTag) {
  if (full()) return count(loadTag);  // callers check full() first; never overflow
  outstanding_++;
  int32_t i = find(loadTag);
  if (i >= 0) return ++entries_[i].count;
  entries_[used_].loadTag = loadTag;
  entries_[used_].count = 1;
  return entries_[used_++].count;
}

uint32_t Ledger::remove(uint32_t loadTag) {
  int32_t i = find(loadTag);
  if (i < 0) return 0;
  outstanding_--;
  uint32_t left = --entries_[i].count;
  if (left == 0) entries_[i] = entries_[--used_];  // keep entries dense
  return left;
}

} // namespace kb
