// A user client open on the sample kext's service, as the IORegistry shows it: the pid and
// short process name of the task that opened it. On a Mac they come from the client's
// IOUserClientCreator property (docs/kernel-facts.md §4.6); the simulator reports its open
// connections in the same shape. Header-only, portable: the parser is unit-tested on Linux.
#ifndef KEXTBRIDGE_USER_CLIENT_INFO_H
#define KEXTBRIDGE_USER_CLIENT_INFO_H

#include <stdint.h>

#include <string>

namespace kb {

struct UserClientInfo {
  int32_t pid = 0;
  std::string process;  // p_comm (at most 16 bytes on a Mac); "unknown" when the kernel had none
};

// Parses an IOUserClientCreator value. The kernel writes "pid <decimal>, <p_comm>" (kernel-facts
// §4.6): the name is everything after the first ", " verbatim (it may itself hold spaces and
// commas) and is empty when the process was already gone. An empty name becomes "unknown".
// Anything else (no "pid " prefix, no digits, a pid above INT32_MAX, a missing ", ") is not
// that format: false, and *out is untouched, so the caller skips that entry.
inline bool ParseUserClientCreator(const std::string &text, UserClientInfo *out) {
  static const char kPrefix[] = "pid ";
  const size_t prefix = sizeof kPrefix - 1;
  if (text.compare(0, prefix, kPrefix) != 0) return false;
  size_t i = prefix;
  int64_t pid = 0;
  const size_t firstDigit = i;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
    pid = pid * 10 + (text[i] - '0');
    if (pid > INT32_MAX) return false;
    i++;
  }
  if (i == firstDigit || i - firstDigit > 10) return false;
  if (text.compare(i, 2, ", ") != 0) return false;
  out->pid = (int32_t)pid;
  out->process = text.substr(i + 2);
  if (out->process.empty()) out->process = "unknown";
  return true;
}

} // namespace kb

#endif
