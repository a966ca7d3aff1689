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

// Room is guaranteed by the cap: entries never outnumber held units.
uint32_t Ledger::add(uint32_t loadTag) {
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

bool Ledger::reserve() {
  if (full()) return false;
  inFlight_++;
  return true;
}

uint32_t Ledger::commit(uint32_t loadTag) {
  if (inFlight_ == 0) return count(loadTag);  // never without a reservation
  inFlight_--;
  return add(loadTag);
}

void Ledger::cancel() {
  if (inFlight_ > 0) inFlight_--;
}

bool Ledger::beginRelease(uint32_t loadTag) {
  if (count(loadTag) == 0) return false;
  remove(loadTag);
  inFlight_++;
  return true;
}

uint32_t Ledger::finishRelease(uint32_t loadTag, bool restore) {
  if (inFlight_ > 0) inFlight_--;
  return restore ? add(loadTag) : count(loadTag);
}

bool Ledger::takeAny(uint32_t *loadTag) {
  if (used_ == 0) return false;
  *loadTag = entries_[used_ - 1].loadTag;
  remove(*loadTag);
  return true;
}

} // namespace kb
