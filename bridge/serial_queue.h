// A connection's serial queue: jobs run one at a time, in the order posted; runExclusive runs
// work on the caller's thread after everything already posted and never beside a job. No
// N-API: the Connection wraps it, and the C++ tests drive it directly.
//
// A queue is a strand on a small process-wide pool of worker threads (not a thread each), so
// 100,000 open queues cost 100,000 small objects and a handful of threads. A pool thread takes
// a queue that has work and runs its jobs in order; no two threads ever run one queue at once.
// The threads are joined when the pool's last user goes away (addPoolUser/removePoolUser).
#ifndef KEXTBRIDGE_SERIAL_QUEUE_H
#define KEXTBRIDGE_SERIAL_QUEUE_H

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "job.h"

namespace kb {

class SerialQueue {
 public:
  // run: executes one job on the worker. done: takes a finished job; returns false when it
  // could not take it (the queue then deletes it).
  SerialQueue(std::function<void(Job &)> run, std::function<bool(Job *)> done);
  ~SerialQueue();  // stop()
  SerialQueue(const SerialQueue &) = delete;
  SerialQueue &operator=(const SerialQueue &) = delete;

  // Makes sure the shared pool has a thread to run this queue; false (and *why) when the pool
  // has none and the system refused to start one. Never throws.
  bool start(std::string *why);
  // Queues a job. After a job posted with last = true runs, the queue runs nothing more.
  void post(std::unique_ptr<Job> job, bool last = false);
  // Runs `work` on the calling thread once everything posted before has run, never while a
  // job runs on the worker. A template, so the sync path builds no std::function (which
  // allocates for a lambda capturing more than two pointers) on each call.
  template <class F>
  void runExclusive(F &&work) {
    enterExclusive();
    work();
    leaveExclusive();
  }
  // Drops jobs not yet started (deleting them), waits for the one running and for the pool
  // thread to let go of this queue.
  void stop();
  // Waits until the queue ran its last job (or was stopped) and no pool thread touches it any
  // more: after join() returns the queue may be destroyed.
  void join();

  // The pool's users (the addon: one per Node environment that loaded it). When the last
  // user is removed the pool's threads are stopped and joined (they run this library's code,
  // which Node unloads once no environment uses it); the next start() starts new ones. Every
  // queue must be stopped or joined first. Never call removePoolUser() from a job. Without
  // users (the C++ tests) the threads run until the process exits.
  static void addPoolUser();
  static void removePoolUser();

  // Test seams: the pool's size, and the next `n` thread starts failing as if the system
  // refused them (only matters while the pool has no thread).
  static size_t poolThreads();
  static void failThreadStartsForTest(int n);

 private:
  friend class WorkerPool;
  // On a pool thread: runs this queue's jobs in order until it has none (or must yield).
  void drain();
  void enterExclusive();  // waits until nothing is queued or running, then marks the queue busy
  void leaveExclusive();  // unmarks it, handing work posted meanwhile to the pool

  std::function<void(Job &)> run_;
  std::function<bool(Job *)> done_;
  std::mutex mu_;  // guards the fields below
  std::condition_variable cv_;
  std::deque<std::pair<Job *, bool>> queue_;
  bool busy_ = false;       // a job (or exclusive work) is running
  bool scheduled_ = false;  // in the pool's ready list, or being drained by a pool thread
  bool finished_ = false;   // the job posted last ran
  bool stop_ = false;
};

} // namespace kb

#endif
