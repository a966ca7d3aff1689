// Unit test of kb::OpenLimit (kext-sample/core/open_limit.h). Run with npm run test:native (test/native/run.sh),
// which builds it with the one C++ recipe the way the kext needs it (-fno-exceptions -fno-rtti -nostdinc++)
// and this test around it. Last line: "N passed, M failed"; exit status non-zero on a failure.
#include <stdio.h>

#include <atomic>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "open_limit.h"
#include "unit.h"

using kb::OpenLimit;

namespace {

// A kb::Lock that records how it is used: never taken twice, always dropped, and held
// whenever the table is read or written (each public call takes it exactly once).
class CountingLock final : public kb::Lock {
 public:
  void lock() override {
    if (held_) nested_++;
    held_ = true;
    taken_++;
  }
  void unlock() override {
    if (!held_) unbalanced_++;
    held_ = false;
  }
  bool held_ = false;
  int taken_ = 0, nested_ = 0, unbalanced_ = 0;
};

class MutexLock final : public kb::Lock {
 public:
  void lock() override { m_.lock(); }
  void unlock() override { m_.unlock(); }

 private:
  std::mutex m_;
};

TEST(documented_caps, "the documented caps: 16 clients per process, 64 processes") {
  CHECK_EQ(OpenLimit::kPerProcess, 16);
  CHECK_EQ(OpenLimit::kProcesses, 64);
}

TEST(per_process_cap, "a process gets kPerProcess clients, the next is refused, a release makes room") {
  CountingLock lock;
  OpenLimit limit(lock);
  for (uint32_t i = 0; i < OpenLimit::kPerProcess; i++) CHECK(limit.acquire(501));
  CHECK_EQ(limit.openBy(501), OpenLimit::kPerProcess);
  CHECK(!limit.acquire(501));
  CHECK(!limit.acquire(501));
  CHECK_EQ(limit.openBy(501), OpenLimit::kPerProcess);  // refusals count nothing
  CHECK(limit.acquire(502));                            // other processes are not affected
  CHECK(limit.release(501));
  CHECK(limit.acquire(501));
  CHECK(!limit.acquire(501));
  CHECK_EQ(lock.nested_, 0);
  CHECK_EQ(lock.unbalanced_, 0);
  CHECK(!lock.held_);
}

TEST(release_all, "releasing every slot frees the process's entry for another process") {
  CountingLock lock;
  OpenLimit limit(lock);
  CHECK(limit.acquire(7));
  CHECK(limit.acquire(7));
  CHECK_EQ(limit.processes(), 1);
  CHECK(limit.release(7));
  CHECK(limit.release(7));
  CHECK_EQ(limit.openBy(7), 0);
  CHECK_EQ(limit.processes(), 0);
  CHECK(!limit.release(7));  // a release without its acquire changes nothing
  CHECK_EQ(limit.openBy(7), 0);
}

TEST(unknown_release, "a release for a pid that holds nothing leaves other counts alone") {
  CountingLock lock;
  OpenLimit limit(lock);
  CHECK(limit.acquire(100));
  CHECK(!limit.release(101));
  CHECK(!limit.release(-1));
  CHECK_EQ(limit.openBy(100), 1);
}

TEST(process_table, "kProcesses processes hold clients; a new process is refused until one has none left") {
  CountingLock lock;
  OpenLimit limit(lock);
  for (uint32_t p = 0; p < OpenLimit::kProcesses; p++) CHECK(limit.acquire((int32_t)(1000 + p)));
  CHECK_EQ(limit.processes(), OpenLimit::kProcesses);
  CHECK(!limit.acquire(5000));                 // table full
  CHECK(limit.acquire(1000));                  // a process already in it may still open more
  CHECK_EQ(limit.openBy(1000), 2);
  CHECK(limit.release(1010));                  // 1010 had one: its entry is free now
  CHECK(limit.acquire(5000));
  CHECK_EQ(limit.openBy(5000), 1);
  CHECK(!limit.acquire(5001));
  CHECK_EQ(limit.processes(), OpenLimit::kProcesses);
}

TEST(pid_values, "pid 0 and the largest pid are ordinary keys; negative pids are refused") {
  CountingLock lock;
  OpenLimit limit(lock);
  CHECK(limit.acquire(0));
  CHECK(limit.acquire(INT32_MAX));
  CHECK(!limit.acquire(-1));
  CHECK(!limit.acquire(INT32_MIN));
  CHECK_EQ(limit.openBy(0), 1);
  CHECK_EQ(limit.openBy(INT32_MAX), 1);
  CHECK_EQ(limit.processes(), 2);
}

TEST(locking, "every call takes the lock exactly once and drops it, refusals included") {
  CountingLock lock;
  OpenLimit limit(lock);
  int before = lock.taken_;
  limit.acquire(1);
  limit.release(1);
  limit.release(1);
  limit.openBy(1);
  limit.processes();
  for (uint32_t i = 0; i <= OpenLimit::kPerProcess; i++) limit.acquire(2);  // the last is refused
  CHECK_EQ(lock.taken_ - before, 5 + (int)OpenLimit::kPerProcess + 1);
  CHECK_EQ(lock.nested_, 0);
  CHECK_EQ(lock.unbalanced_, 0);
  CHECK(!lock.held_);
  CHECK_EQ(limit.acquire(-5), false);
  CHECK_EQ(lock.taken_ - before, 5 + (int)OpenLimit::kPerProcess + 1);  // refused before locking
}

TEST(threads, "racing opens and closes from many threads never pass a cap and balance out") {
  MutexLock lock;
  OpenLimit limit(lock);
  const int kThreads = 8, kRounds = 20000;
  std::atomic<int> held[4] = {};  // slots each of 4 pids holds, as the threads see them
  std::atomic<int> overCap{0}, badRelease{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      unsigned x = 12345u + (unsigned)t * 7919u;
      std::vector<int> mine;  // pids this thread holds a slot of
      for (int r = 0; r < kRounds; r++) {
        x = x * 1103515245u + 12345u;
        int pid = (int)((x >> 16) % 4);
        if (((x >> 8) & 1) || mine.empty()) {
          if (limit.acquire(pid)) {
            if (++held[pid] > (int)OpenLimit::kPerProcess) overCap++;
            mine.push_back(pid);
          }
        } else {
          int p = mine.back();
          mine.pop_back();
          held[p]--;
          if (!limit.release(p)) badRelease++;
        }
      }
      for (int p : mine) {
        held[p]--;
        if (!limit.release(p)) badRelease++;
      }
    });
  }
  for (std::thread &th : threads) th.join();
  CHECK_EQ(overCap.load(), 0);
  CHECK_EQ(badRelease.load(), 0);
  for (int p = 0; p < 4; p++) CHECK_EQ(limit.openBy(p), 0);
  CHECK_EQ(limit.processes(), 0);
}

}  // namespace

int main() { return unit::runAll(); }
