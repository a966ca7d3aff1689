// The connection's serial queue (bridge/serial_queue.h) on its own, without N-API: jobs run
// in order, one at a time; runExclusive runs after everything posted and never beside a job;
// stop drops what has not started; a job marked last ends the worker. Run plain by
// test/native/run.sh and under ASan and TSan by scripts/sanitize.sh.
// The last line is "N passed, M failed".
#include <inttypes.h>
#include <stdio.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "protocol.gen.h"
#include "serial_queue.h"
#include "sim_kernel.h"
#include "sim_transport.h"

using namespace kb;

namespace {

uint64_t passed = 0, failed = 0;

#define CHECK(cond, ...)                                   \
  do {                                                     \
    if (cond) {                                            \
      passed++;                                            \
    } else {                                               \
      failed++;                                            \
      fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                        \
      fputc('\n', stderr);                                 \
    }                                                      \
  } while (0)

std::atomic<int> alive{0};

struct TestJob : Job {
  explicit TestJob(int i) : Job(Job::Kind::Call), id(i) { alive++; }
  ~TestJob() override { alive--; }
  int id;
};

// A queue whose jobs record their order and whether two ever overlapped.
struct Harness {
  std::mutex mu;
  std::vector<int> ran;
  std::atomic<bool> inJob{false};
  std::atomic<int> overlaps{0};
  std::atomic<int> delivered{0};
  std::chrono::microseconds work{0};
  bool acceptDone = true;
  SerialQueue queue;

  Harness()
      : queue(
            [this](Job &j) {
              if (inJob.exchange(true)) overlaps++;
              if (work.count()) std::this_thread::sleep_for(work);
              {
                std::lock_guard<std::mutex> g(mu);
                ran.push_back(static_cast<TestJob &>(j).id);
              }
              inJob.store(false);
            },
            [this](Job *j) {
              delivered++;
              if (!acceptDone) return false;  // the queue must delete it
              delete j;
              return true;
            }) {}

  size_t count() {
    std::lock_guard<std::mutex> g(mu);
    return ran.size();
  }
};

void postN(Harness &h, int n, int from = 0) {
  for (int i = 0; i < n; i++) h.queue.post(std::unique_ptr<Job>(new TestJob(from + i)));
}

void testOrder() {
  Harness h;
  std::string why;
  CHECK(h.queue.start(&why), "start: %s", why.c_str());
  postN(h, 2000);
  h.queue.post(std::unique_ptr<Job>(new TestJob(2000)), /*last=*/true);
  h.queue.join();
  CHECK(h.count() == 2001, "ran %zu of 2001", h.count());
  bool inOrder = true;
  for (size_t i = 0; i < h.ran.size(); i++) inOrder = inOrder && h.ran[i] == (int)i;
  CHECK(inOrder, "jobs ran out of order");
  CHECK(h.overlaps == 0, "%d overlapping jobs", h.overlaps.load());
}

// Exclusive work sees every job posted before it done, and no job runs while it does.
void testExclusiveAfterQueued() {
  Harness h;
  h.work = std::chrono::microseconds(200);
  std::string why;
  CHECK(h.queue.start(&why), "start: %s", why.c_str());
  for (int round = 0; round < 20; round++) {
    postN(h, 5, round * 5);
    size_t seen = 0;
    bool overlapped = false;
    h.queue.runExclusive([&] {
      overlapped = h.inJob.load();
      std::this_thread::sleep_for(std::chrono::microseconds(300));  // a job must not start now
      overlapped = overlapped || h.inJob.load();
      seen = h.count();
    });
    CHECK(seen == (size_t)(round + 1) * 5, "round %d: exclusive work ran after %zu of %d jobs",
          round, seen, (round + 1) * 5);
    CHECK(!overlapped, "round %d: a job ran beside the exclusive work", round);
  }
  h.queue.stop();
}

// Jobs posted from another thread while exclusive work runs are not lost or stalled.
void testExclusiveWithOtherPosters() {
  Harness h;
  std::string why;
  CHECK(h.queue.start(&why), "start: %s", why.c_str());
  std::thread poster([&] { postN(h, 3000, 0); });
  int exclusive = 0;
  for (int i = 0; i < 300; i++) h.queue.runExclusive([&] {
    if (h.inJob.load()) h.overlaps++;
    exclusive++;
  });
  poster.join();
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (h.count() < 3000 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  CHECK(h.count() == 3000, "only %zu of 3000 jobs ran", h.count());
  CHECK(exclusive == 300 && h.overlaps == 0, "exclusive %d, overlaps %d", exclusive, h.overlaps.load());
  h.queue.stop();
}

// stop() drops jobs not yet started and deletes them; a refused delivery is deleted too.
void testStopAndRefusedDelivery() {
  int before = alive.load();
  {
    Harness h;
    h.work = std::chrono::milliseconds(2);
    h.acceptDone = false;
    std::string why;
    CHECK(h.queue.start(&why), "start: %s", why.c_str());
    postN(h, 200);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    h.queue.stop();
    CHECK(h.count() < 200, "stop() let all %zu jobs run", h.count());
    CHECK((size_t)h.delivered.load() == h.count(), "delivered %d, ran %zu", h.delivered.load(), h.count());
    postN(h, 3);  // after stop: never run, deleted with the queue
  }
  CHECK(alive.load() == before, "%d jobs leaked", alive.load() - before);
}

// The Connection's job path as the addon runs it: real jobs (single calls, batches, the
// loaded-kext table, the final close) executed on a SimTransport by the queue's worker, with
// the sync path's exclusive calls from another thread in between. The ledger and the kernel
// must agree at the end, and the close must release everything.
void testJobsOnATransport() {
  auto kernel = std::make_shared<sim::SimKernel>();
  uint32_t kr = 0;
  std::unique_ptr<Transport> t = SimTransport::open(kernel, true, &kr);
  CHECK(t != nullptr, "open: 0x%08X", kr);
  if (!t) return;
  const uint32_t sample = kernel->sampleLoadTag();
  std::atomic<int> answered{0}, wrong{0};
  SerialQueue q([&](Job &j) { Execute(*t, j); },
                [&](Job *j) {
                  bool ok = j->kr == RC_kIOReturnSuccess;
                  if (j->kind == Job::Kind::Batch)
                    for (size_t i = 0; i < j->tags.size(); i++)
                      ok = ok && j->batch[i * BatchResult::fieldCount + BatchResult::kr] == 0 &&
                           j->batch[i * BatchResult::fieldCount + BatchResult::osReturn] == RC_kOSReturnSuccess;
                  if (!ok) wrong++;
                  answered++;
                  delete j;
                  return true;
                });
  std::string why;
  CHECK(q.start(&why), "start: %s", why.c_str());
  const int rounds = 200;
  std::thread poster([&] {
    // Each round nets zero: retain, batch retain x3, the table, batch release x3, release.
    for (int i = 0; i < rounds; i++) {
      for (uint32_t sel : {(uint32_t)kSelectorRetain, (uint32_t)kSelectorRetainBatch, 99u, (uint32_t)kSelectorReleaseBatch, (uint32_t)kSelectorRelease}) {
        std::unique_ptr<Job> job(new Job(sel == 99u ? Job::Kind::LoadedKexts
                                         : sel == kSelectorRetain || sel == kSelectorRelease ? Job::Kind::Call
                                                                                            : Job::Kind::Batch));
        job->selector = sel;
        if (job->kind == Job::Kind::Call) {
          job->in.push_back(sample);
          job->outCount = 2;
        }
        if (job->kind == Job::Kind::Batch) job->tags.assign(3, sample);
        q.post(std::move(job));
      }
    }
  });
  int exclusive = 0;
  for (int i = 0; i < 100; i++)
    q.runExclusive([&] {
      Job held(Job::Kind::Call);
      held.selector = kSelectorHeld;
      held.outStructSize = kHeldEntrySize * kLedgerCapacity;
      Execute(*t, held);
      if (held.kr == RC_kIOReturnSuccess) exclusive++;
    });
  poster.join();
  q.post(std::unique_ptr<Job>(new Job(Job::Kind::Close)), /*last=*/true);
  q.join();
  CHECK(answered == rounds * 5 + 1, "answered %d of %d jobs", answered.load(), rounds * 5 + 1);
  CHECK(wrong == 0, "%d jobs answered wrongly", wrong.load());
  CHECK(exclusive == 100, "exclusive held calls: %d", exclusive);
  CHECK(kernel->retainCount(sample) == (int64_t)sim::SimKernel::kBaselineRetainCount,
        "after close the sample's count is %lld", (long long)kernel->retainCount(sample));
}

// Before the pool has a thread: a refused thread start is an answer (false and why), never
// std::terminate; the next start succeeds.
void testThreadStartRefused() {
  CHECK(SerialQueue::poolThreads() == 0, "the pool started early: %zu threads", SerialQueue::poolThreads());
  SerialQueue::failThreadStartsForTest(1000);
  {
    Harness h;
    std::string why;
    CHECK(!h.queue.start(&why), "start succeeded with thread starts refused");
    CHECK(!why.empty(), "no reason given");
  }
  SerialQueue::failThreadStartsForTest(0);
  Harness h;
  std::string why;
  CHECK(h.queue.start(&why), "start after the refusals: %s", why.c_str());
  h.queue.post(std::unique_ptr<Job>(new TestJob(0)), /*last=*/true);
  h.queue.join();
  CHECK(h.count() == 1, "ran %zu of 1", h.count());
}

int ThreadsOfProcess() {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  int n = -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "Threads: %d", &n) == 1) break;
  fclose(f);
  return n;
}

// 100,000 queues open at once are 100,000 strands on a few shared threads: every job runs,
// each queue's in order, and the process's thread count stays small.
void testManyQueues() {
  const int kQueues = 100000;
  std::atomic<int> ran{0}, outOfOrder{0};
  struct Q {
    int next = 0;
    SerialQueue queue;
    Q(std::atomic<int> &ran, std::atomic<int> &bad)
        : queue([this, &ran, &bad](Job &j) {
            if (static_cast<TestJob &>(j).id != next++) bad++;
            ran++;
          },
          [](Job *j) { delete j; return true; }) {}
  };
  std::vector<std::unique_ptr<Q>> queues;
  queues.reserve(kQueues);
  bool started = true;
  for (int i = 0; i < kQueues; i++) {
    queues.emplace_back(new Q(ran, outOfOrder));
    std::string why;
    started = queues.back()->queue.start(&why) && started;
  }
  CHECK(started, "a queue did not start");
  for (auto &q : queues) q->queue.post(std::unique_ptr<Job>(new TestJob(0)));
  for (auto &q : queues) q->queue.post(std::unique_ptr<Job>(new TestJob(1)), /*last=*/true);
  int threads = ThreadsOfProcess();
  for (auto &q : queues) q->queue.join();
  CHECK(ran == 2 * kQueues, "ran %d of %d", ran.load(), 2 * kQueues);
  CHECK(outOfOrder == 0, "%d jobs ran out of order", outOfOrder.load());
  CHECK(SerialQueue::poolThreads() <= 4, "pool threads: %zu", SerialQueue::poolThreads());
  CHECK(threads == -1 || threads <= 8, "process threads with %d queues open: %d", kQueues, threads);
  queues.clear();
}

// The pool's users (the addon counts Node environments): while one is left the threads stay;
// when the last goes they are stopped and joined (the process has none of them any more), and
// the next start() makes new ones. Users come and go on several threads while each runs its
// own queue: no job is stranded on a stopped pool (TSan runs this too).
void testPoolJoinedWhenLastUserGoes() {
  {
    Harness h;
    std::string why;
    CHECK(h.queue.start(&why), "start: %s", why.c_str());
  }
  const int others = ThreadsOfProcess() - (int)SerialQueue::poolThreads();
  SerialQueue::addPoolUser();
  SerialQueue::addPoolUser();
  {
    Harness h;
    std::string why;
    CHECK(h.queue.start(&why), "start: %s", why.c_str());
    for (int i = 0; i < 10; i++) h.queue.post(std::unique_ptr<Job>(new TestJob(i)), i == 9);
    h.queue.join();
    CHECK(h.count() == 10, "ran %zu of 10", h.count());
  }
  SerialQueue::removePoolUser();
  CHECK(SerialQueue::poolThreads() > 0, "one user left, but the pool stopped");
  SerialQueue::removePoolUser();
  CHECK(SerialQueue::poolThreads() == 0, "the last user went, %zu threads left", SerialQueue::poolThreads());
  int left = ThreadsOfProcess();
  CHECK(left == -1 || left == others, "the pool's threads were not joined: %d threads, %d before the pool", left, others);
  SerialQueue::removePoolUser();  // one too many: ignored
  {
    Harness h;  // no user: the pool starts again and runs
    std::string why;
    CHECK(h.queue.start(&why), "restart: %s", why.c_str());
    CHECK(SerialQueue::poolThreads() > 0, "start() did not restart the pool");
    for (int i = 0; i < 10; i++) h.queue.post(std::unique_ptr<Job>(new TestJob(i)), i == 9);
    h.queue.join();
    CHECK(h.count() == 10, "after the restart ran %zu of 10", h.count());
  }
  std::atomic<int> wrong{0};
  std::vector<std::thread> users;
  for (int t = 0; t < 4; t++)
    users.emplace_back([&wrong] {
      for (int round = 0; round < 40; round++) {
        SerialQueue::addPoolUser();
        {
          Harness h;
          std::string why;
          if (!h.queue.start(&why)) wrong++;
          for (int i = 0; i < 20; i++) h.queue.post(std::unique_ptr<Job>(new TestJob(i)), i == 19);
          h.queue.join();
          if (h.count() != 20) wrong++;
        }
        SerialQueue::removePoolUser();
      }
    });
  for (auto &t : users) t.join();
  CHECK(wrong == 0, "%d rounds of users coming and going went wrong", wrong.load());
  CHECK(SerialQueue::poolThreads() == 0, "every user went, %zu threads left", SerialQueue::poolThreads());
  CHECK(alive == 0, "%d jobs leaked", alive.load());
}

}  // namespace

int main() {
  testThreadStartRefused();
  testPoolJoinedWhenLastUserGoes();
  testManyQueues();
  testOrder();
  testExclusiveAfterQueued();
  testExclusiveWithOtherPosters();
  testStopAndRefusedDelivery();
  testJobsOnATransport();
  printf("%" PRIu64 " passed, %" PRIu64 " failed\n", passed, failed);
  return failed ? 1 : 0;
}
