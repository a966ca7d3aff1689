#include "client_session.h"

#include <IOKit/IOLib.h>

namespace kbkext {

void *ClientSession::operator new(size_t size) noexcept { return IOMalloc(size); }

void ClientSession::operator delete(void *block, size_t size) {
  if (block) IOFree(block, size);
}

} // namespace kbkext
