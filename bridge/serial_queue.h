// A connection's serial queue: jobs run one at a time, in the order posted, on the queue's own
// thread; runExclusive runs work on the caller's thread after everything already posted and
// never beside a job. No N-API: the Connection wraps it, and the C++ tests drive it directly.
#ifndef KEXTBRIDGE_SERIAL_QUEUE_H
#define KEXTBRIDGE_SERIAL_QUEUE_H

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

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

  // Starts the worker thread; false (and *why) when the system refused a thread.
  bool start(std::string *why);
  // Queues a job. After a job posted with last = true runs, the worker exits.
  void post(std::unique_ptr<Job> job, bool last = false);
  // Runs `work` on the calling thread once everything posted before has run, never while a
  // job runs on the worker.
  void runExclusive(const std::function<void()> &work);
  // Drops jobs not yet started (deleting them), waits for the one running, joins the thread.
  void stop();
  // Joins a worker that exited after its last job (or was stopped).
  void join();

 private:
  void loop();

  std::function<void(Job &)> run_;
  std::function<bool(Job *)> done_;
  std::thread worker_;
  std::mutex mu_;  // guards the fields below
  std::condition_variable cv_;
  std::deque<std::pair<Job *, bool>> queue_;
  bool busy_ = false;  // a job (or exclusive work) is running
  bool stop_ = false;
};

} // namespace kb

#endif
