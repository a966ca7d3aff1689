// Per-client record of the retains this client made, so it can never release more than it
// retained (an over-release frees a kext the kernel still uses: a panic). Fixed capacity,
// no allocation; not locked itself (UserClientCore holds the lock).
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

  Ledger() : used_(0), outstanding_(0) {}

  uint32_t count(uint32_t loadTag) const;
  // Room for one more retain? The cap is on outstanding retains, which also bounds entries.
  bool full() const { return outstanding_ >= kLedgerCapacity; }
  uint32_t add(uint32_t loadTag);     // one retain recorded; returns the new count
  uint32_t remove(uint32_t loadTag);  // one retain dropped (must be held); returns the new count
  void clear() { used_ = outstanding_ = 0; }

  uint32_t entryCount() const { return used_; }
  const Entry &entry(uint32_t i) const { return entries_[i]; }
  uint32_t outstanding() const { return outstanding_; }

 private:
  int32_t find(uint32_t loadTag) const;

  Entry entries_[kLedgerCapacity];
  uint32_t used_;
  uint32_t outstanding_;
};

} // namespace kb

#endif
