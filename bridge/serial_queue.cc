#include "serial_queue.h"

#include <chrono>
#include <system_error>
#ifdef __linux__
#include <sched.h>
#endif

namespace kb {

namespace {

// After a job the worker polls for the next one this long before parking (see loop()).
const std::chrono::microseconds kPollAfterJob(50);

// Polling pays only if another core can run the caller meanwhile (taskset, a 1-CPU box).
bool SeveralCpus() {
#ifdef __linux__
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return CPU_COUNT(&set) > 1;
#endif
  return std::thread::hardware_concurrency() != 1;
}

}  // namespace

SerialQueue::SerialQueue(std::function<void(Job &)> run, std::function<bool(Job *)> done)
    : run_(std::move(run)), done_(std::move(done)) {}

SerialQueue::~SerialQueue() { stop(); }

bool SerialQueue::start(std::string *why) {
  try {
    worker_ = std::thread(&SerialQueue::loop, this);
    return true;
  } catch (const std::system_error &e) {
    if (why) *why = e.what();
    return false;
  }
}

void SerialQueue::post(std::unique_ptr<Job> job, bool last) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    queue_.emplace_back(job.release(), last);
  }
  cv_.notify_all();
}

void SerialQueue::runExclusive(const std::function<void()> &work) {
  {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [this] { return (queue_.empty() || stop_) && !busy_; });
    busy_ = true;
  }
  work();
  bool queued;
  {
    std::lock_guard<std::mutex> lk(mu_);
    busy_ = false;
    queued = !queue_.empty();
  }
  // Wake the worker only for work posted meanwhile (another thread): a wake per sync call
  // would cost a context switch each.
  if (queued) cv_.notify_all();
}

void SerialQueue::stop() {
  std::deque<std::pair<Job *, bool>> dropped;
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
    dropped.swap(queue_);
  }
  cv_.notify_all();
  join();
  for (auto &entry : dropped) delete entry.first;
}

void SerialQueue::join() {
  if (worker_.joinable() && worker_.get_id() != std::this_thread::get_id()) worker_.join();
}

void SerialQueue::loop() {
  const bool poll = SeveralCpus();
  bool worked = false;
  for (;;) {
    // The next call often arrives microseconds after the answer it awaited. Parking the
    // thread and waking it again costs more than that wherever the other core has gone idle
    // (a 2-vCPU VM: ~50 us per awaited call parked, ~5-10 us polling), so poll briefly first,
    // yielding each time so a caller sharing this core still runs. Idle, it parks.
    if (worked && poll) {
      const auto until = std::chrono::steady_clock::now() + kPollAfterJob;
      for (;;) {
        {
          std::lock_guard<std::mutex> lk(mu_);
          if (stop_ || !queue_.empty()) break;
        }
        if (std::chrono::steady_clock::now() >= until) break;
        std::this_thread::yield();
      }
    }
    worked = true;
    Job *job;
    bool last;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [this] { return stop_ || (!queue_.empty() && !busy_); });
      if (stop_) return;
      job = queue_.front().first;
      last = queue_.front().second;
      queue_.pop_front();
      busy_ = true;
    }
    run_(*job);
    {
      std::lock_guard<std::mutex> lk(mu_);
      busy_ = false;
    }
    cv_.notify_all();  // a runExclusive caller may be waiting for this job
    if (!done_(job)) delete job;
    if (last) return;
  }
}

} // namespace kb
