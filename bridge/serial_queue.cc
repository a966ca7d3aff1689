#include "serial_queue.h"

#include <atomic>
#include <chrono>
#include <system_error>
#include <thread>
#include <vector>
#include <pthread.h>
#ifdef __linux__
#include <sched.h>
#endif

namespace kb {

namespace {

// After a job the pool thread polls its queue for the next one this long before letting go
// of it (see drain()): the next awaited call often arrives microseconds after the answer.
const std::chrono::microseconds kPollAfterJob(50);
// Jobs one queue runs in a row before the thread serves other queues waiting for it.
const int kJobsPerTurn = 64;

// Polling pays only if another core can run the caller meanwhile (taskset, a 1-CPU box).
bool SeveralCpus() {
#ifdef __linux__
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return CPU_COUNT(&set) > 1;
#endif
  return std::thread::hardware_concurrency() != 1;
}

std::atomic<int> failThreadStarts{0};

// The queue a pool thread is draining, so join() from inside a job does not wait for itself.
thread_local SerialQueue *draining = nullptr;

}  // namespace

// The process's worker threads: a few (2-4), started on first use; they park when idle. A
// queue with work waits in `ready_` for a thread. The threads run code of this library, so
// they must not outlive it: the addon counts the Node environments using it (addUser /
// removeUser) and when the last one goes away (after every connection of that environment
// was stopped by its own cleanup, so no queue is scheduled) the threads are stopped and
// joined before Node unloads the library. A later user starts them again.
class WorkerPool {
 public:
  static WorkerPool &instance() {
    static WorkerPool *pool = new WorkerPool();  // never destroyed: no exit-order race
    return *pool;
  }

  bool ensureStarted(std::string *why) {
    std::lock_guard<std::mutex> lk(mu_);
    while (threads_ < target_) {
      try {
        if (failThreadStarts.load() > 0) {
          failThreadStarts--;
          throw std::system_error(std::make_error_code(std::errc::resource_unavailable_try_again),
                                  "thread start refused (test)");
        }
        workers_.emplace_back(&WorkerPool::loop, this);
        threads_++;
      } catch (const std::system_error &e) {
        if (threads_ > 0) return true;  // fewer threads than wished for: still works
        if (why) *why = e.what();
        return false;
      }
    }
    return true;
  }

  void addUser() {
    std::lock_guard<std::mutex> users(usersMu_);
    users_++;
  }

  // The last user gone: stop the threads and join them. Held across the join, usersMu_ makes
  // a new user (another environment loading the addon meanwhile) wait until the old threads
  // are gone; its connections then start new ones.
  void removeUser() {
    std::lock_guard<std::mutex> users(usersMu_);
    if (users_ == 0 || --users_ > 0) return;
    if (onPoolThread) return;  // never join from a pool thread (no environment runs on one)
    std::vector<std::thread> joining;
    {
      std::lock_guard<std::mutex> lk(mu_);
      stopping_ = true;
      joining.swap(workers_);
    }
    cv_.notify_all();
    for (std::thread &t : joining) t.join();
    std::lock_guard<std::mutex> lk(mu_);
    stopping_ = false;
    threads_ = 0;
  }

  void schedule(SerialQueue *q) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      ready_.push_back(q);
      readyCount_.store(ready_.size(), std::memory_order_relaxed);
    }
    cv_.notify_one();
  }

  bool othersWaiting() const { return readyCount_.load(std::memory_order_relaxed) > 0; }

  size_t threads() {
    std::lock_guard<std::mutex> lk(mu_);
    return (size_t)threads_;
  }

  const bool poll = SeveralCpus();

 private:
  WorkerPool() {
    unsigned n = std::thread::hardware_concurrency();
    target_ = n < 2 ? 2 : n > 4 ? 4 : (int)n;
  }

  void loop() {
    onPoolThread = true;
    // Named, so a thread list (top -H, a crash report, the lifetime test) tells ours apart.
#ifdef __APPLE__
    pthread_setname_np("kextbridge");
#else
    pthread_setname_np(pthread_self(), "kextbridge");
#endif
    for (;;) {
      SerialQueue *q;
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [this] { return !ready_.empty() || stopping_; });
        // Stopping with no user left: every queue was stopped, so none is ready. Should one
        // be, it still runs first (its drain sees it stopped and lets go of it).
        if (ready_.empty()) return;
        q = ready_.front();
        ready_.pop_front();
        readyCount_.store(ready_.size(), std::memory_order_relaxed);
      }
      q->drain();
    }
  }

  static thread_local bool onPoolThread;

  std::mutex mu_;  // guards the fields below (not users_)
  std::condition_variable cv_;
  std::deque<SerialQueue *> ready_;
  std::atomic<size_t> readyCount_{0};
  std::vector<std::thread> workers_;
  int threads_ = 0;
  int target_ = 2;
  bool stopping_ = false;
  std::mutex usersMu_;  // guards users_; held while the threads are joined
  int users_ = 0;
};

thread_local bool WorkerPool::onPoolThread = false;

SerialQueue::SerialQueue(std::function<void(Job &)> run, std::function<bool(Job *)> done)
    : run_(std::move(run)), done_(std::move(done)) {}

SerialQueue::~SerialQueue() { stop(); }

bool SerialQueue::start(std::string *why) { return WorkerPool::instance().ensureStarted(why); }

size_t SerialQueue::poolThreads() { return WorkerPool::instance().threads(); }

void SerialQueue::failThreadStartsForTest(int n) { failThreadStarts = n; }

void SerialQueue::addPoolUser() { WorkerPool::instance().addUser(); }

void SerialQueue::removePoolUser() { WorkerPool::instance().removeUser(); }

void SerialQueue::post(std::unique_ptr<Job> job, bool last) {
  bool schedule = false;
  {
    std::lock_guard<std::mutex> lk(mu_);
    queue_.emplace_back(job.release(), last);
    if (!scheduled_ && !busy_ && !stop_ && !finished_) schedule = scheduled_ = true;
  }
  if (schedule) WorkerPool::instance().schedule(this);
}

void SerialQueue::enterExclusive() {
  std::unique_lock<std::mutex> lk(mu_);
  cv_.wait(lk, [this] { return (queue_.empty() || stop_ || finished_) && !busy_; });
  busy_ = true;
}

void SerialQueue::leaveExclusive() {
  bool schedule = false;
  {
    std::lock_guard<std::mutex> lk(mu_);
    busy_ = false;
    // Work posted meanwhile (another thread) waited for this: hand the queue to the pool.
    if (!queue_.empty() && !scheduled_ && !stop_ && !finished_) schedule = scheduled_ = true;
    cv_.notify_all();  // another runExclusive caller may be waiting
  }
  if (schedule) WorkerPool::instance().schedule(this);
}

void SerialQueue::stop() {
  std::deque<std::pair<Job *, bool>> dropped;
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
    dropped.swap(queue_);
    cv_.notify_all();
  }
  join();
  for (auto &entry : dropped) delete entry.first;
  // Posted after stop(): never run, deleted here (or by the destructor's stop()).
  std::lock_guard<std::mutex> lk(mu_);
  for (auto &entry : queue_) delete entry.first;
  queue_.clear();
}

void SerialQueue::join() {
  if (draining == this) return;  // called from one of this queue's own jobs
  std::unique_lock<std::mutex> lk(mu_);
  cv_.wait(lk, [this] { return (finished_ || stop_) && !scheduled_ && !busy_; });
}

void SerialQueue::drain() {
  WorkerPool &pool = WorkerPool::instance();
  draining = this;
  int ran = 0;
  for (;;) {
    Job *job = nullptr;
    bool last = false;
    {
      std::unique_lock<std::mutex> lk(mu_);
      bool runnable = !stop_ && !finished_ && !busy_ && !queue_.empty();
      if (!runnable && ran > 0 && pool.poll && !stop_ && !finished_ && !pool.othersWaiting()) {
        // Poll briefly, yielding each time so a caller sharing this core still runs: parking
        // and waking again costs more than the gap to the next awaited call (see kPollAfterJob).
        const auto until = std::chrono::steady_clock::now() + kPollAfterJob;
        while (!runnable && std::chrono::steady_clock::now() < until && !pool.othersWaiting()) {
          lk.unlock();
          std::this_thread::yield();
          lk.lock();
          runnable = !stop_ && !finished_ && !busy_ && !queue_.empty();
          if (stop_ || finished_) break;
        }
      }
      if (!runnable || ran >= kJobsPerTurn) {
        bool more = runnable;  // yielding the thread to other queues with work still queued
        if (!more) scheduled_ = false;
        draining = nullptr;
        // Notify under the lock: once it is released, join() may return and the queue be
        // destroyed, so nothing here touches it afterwards.
        cv_.notify_all();
        lk.unlock();
        if (more) pool.schedule(this);
        return;
      }
      job = queue_.front().first;
      last = queue_.front().second;
      queue_.pop_front();
      busy_ = true;
    }
    run_(*job);
    {
      std::lock_guard<std::mutex> lk(mu_);
      busy_ = false;
      if (last) finished_ = true;
      cv_.notify_all();  // a runExclusive caller may be waiting for this job
    }
    // Delivery may make the JS thread join() and destroy this queue once it sees the last
    // answer: so after done_ of the last job only the lock-protected hand-back below runs,
    // and join() waits for scheduled_ to drop.
    if (!done_(job)) delete job;
    ran++;
  }
}

} // namespace kb
