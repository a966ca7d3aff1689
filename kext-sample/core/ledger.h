// Per-client record of the retains this client made, so it can never release more than it
// retained (an over-release frees a kext the kernel still uses: a panic). Fixed capacity,
// no allocation; not locked itself (UserClientCore holds its lock around every use).
//
// Kernel calls happen with the lock dropped, so a retain first reserves room (reserve),
// then commits or cancels; a release first takes one unit out (beginRelease), then finishes
// it, restoring the unit if the kernel refused. Reserved and releasing units count against
// the cap, so a commit or a restore always finds room.
#ifndef KEXTBRIDGE_LEDGER_H
#define KEXTBRIDGE_LEDGER_H

#include <stdint.h>

#include "protocol.gen.h"

namespace kb {

class Ledger {
 public:
  struct Entry {
    uint32_t loadTag;
    uint32_t count;
  };

  Ledger() : used_(0), outstanding_(0), inFlight_(0) {}

  uint32_t count(uint32_t loadTag) const;
  // Room for one more retain? The cap counts held, reserved and releasing units.
  bool full() const { return outstanding_ + inFlight_ >= kLedgerCapacity; }

  // retain: reserve (false when full), then commit (the kernel took it; returns the new
  // count) or cancel (it did not).
  bool reserve();
  uint32_t commit(uint32_t loadTag);
  void cancel();

  // release: beginRelease takes one held unit out (false when none is held); finishRelease
  // gives it back when the kernel refused (restore) and returns the count either way.
  bool beginRelease(uint32_t loadTag);
  uint32_t finishRelease(uint32_t loadTag, bool restore);

  // close: takes any one held unit out for good (false when the ledger is empty).
  bool takeAny(uint32_t *loadTag);

  uint32_t entryCount() const { return used_; }
  const Entry &entry(uint32_t i) const { return entries_[i]; }
  uint32_t outstanding() const { return outstanding_; }

 private:
  int32_t find(uint32_t loadTag) const;
  uint32_t add(uint32_t loadTag);
  uint32_t remove(uint32_t loadTag);

  Entry entries_[kLedgerCapacity];
  uint32_t used_;
  uint32_t outstanding_;  // held units, the sum of the entries' counts
  uint32_t inFlight_;     // reserved and releasing units
};

} // namespace kb

#endif
