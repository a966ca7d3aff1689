#include "open_limit.h"

namespace kb {

OpenLimit::OpenLimit(Lock &lock) : lock_(lock) {
  for (uint32_t i = 0; i < kProcesses; i++) {
    entries_[i].pid = 0;
    entries_[i].count = 0;
  }
}

OpenLimit::Entry *OpenLimit::find(int32_t pid) {
  for (uint32_t i = 0; i < kProcesses; i++)
    if (entries_[i].count != 0 && entries_[i].pid == pid) return &entries_[i];
  return nullptr;
}

bool OpenLimit::acquire(int32_t pid) {
  if (pid < 0) return false;
  LockGuard guard(lock_);
  if (Entry *e = find(pid)) {
    if (e->count >= kPerProcess) return false;
    e->count++;
    return true;
  }
  for (uint32_t i = 0; i < kProcesses; i++) {
    if (entries_[i].count == 0) {
      entries_[i].pid = pid;
      entries_[i].count = 1;
      return true;
    }
  }
  return false;  // kProcesses other processes hold clients
}

bool OpenLimit::release(int32_t pid) {
  LockGuard guard(lock_);
  Entry *e = find(pid);
  if (!e) return false;
  e->count--;
  return true;
}

uint32_t OpenLimit::openBy(int32_t pid) {
  LockGuard guard(lock_);
  Entry *e = find(pid);
  return e ? e->count : 0;
}

uint32_t OpenLimit::processes() {
  LockGuard guard(lock_);
  uint32_t n = 0;
  for (uint32_t i = 0; i < kProcesses; i++)
    if (entries_[i].count != 0) n++;
  return n;
}

} // namespace kb
