#include "open_slots.h"

#include <IOKit/IOLib.h>

namespace kbkext {

void *OpenSlots::operator new(size_t size) noexcept { return IOMalloc(size); }

void OpenSlots::operator delete(void *block, size_t size) {
  if (block) IOFree(block, size);
}

} // namespace kbkext
