// The loaded-kext table as the kernel reports it (the keys of KextManagerCopyLoadedKextInfo):
// SimKernel produces it, and the IOKit transport converts the real one into it.
#ifndef KEXTBRIDGE_KEXT_INFO_H
#define KEXTBRIDGE_KEXT_INFO_H

#include <stdint.h>

#include <string>
#include <vector>

namespace kb {

struct KextInfo {
  struct ClassInfo {
    std::string name;        // OSMetaClassName
    std::string superclass;  // OSMetaClassSuperclassName ("" for a root class)
    uint32_t instances = 0;  // OSMetaClassTrackingCount
  };
  std::string bundleId;                // CFBundleIdentifier
  std::string version;                 // CFBundleVersion
  std::string uuid;                    // OSBundleUUID, "XXXXXXXX-XXXX-...", "" if none
  uint32_t loadTag = 0;                // OSBundleLoadTag
  int32_t retainCount = 0;             // OSBundleRetainCount (already less the kernel's own)
  bool started = false;                // OSBundleStarted
  std::vector<uint32_t> dependencies;  // OSBundleDependencies, load tags, descending
  std::vector<ClassInfo> classes;      // OSBundleClasses
};

} // namespace kb

#endif
