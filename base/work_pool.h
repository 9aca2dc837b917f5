// The server's background workers: every session's refits and proposals
// run on one fixed set of threads, so that the CPU and the memory they take
// are bounded however many sessions are open, and no session starves the
// others.
//
// Work enters through a Strand, one per stream of work that must stay in
// order (a session's refits; a session's proposals). A strand runs its
// tasks one at a time, in the order posted, and holds at most one place in
// the pool's queue: after each task it goes to the back of the queue, so
// busy strands take turns task by task (round robin) and a strand with many
// tasks waits as long as one with a single task.
//
// A task may wait for work of its own strand or of another strand only
// through RunOneInline / WaitIdle of that strand (or on state such work
// updates, after helping with RunOneInline): a waiter that finds the task
// it needs still queued runs it on its own thread, so a full pool whose
// tasks all wait cannot deadlock. Tasks must not wait for anything else
// that only a pool thread would do.
//
// Thread-safe.
#ifndef STIMLOOP_BASE_WORK_POOL_H_
#define STIMLOOP_BASE_WORK_POOL_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace stimloop {

class WorkPool {
 public:
  // Starts `threads` workers (at least 1), each at background priority
  // (base/thread_priority.h).
  explicit WorkPool(int threads);
  // Stops the workers once their running tasks return; queued tasks are
  // dropped. REQUIRES: the strands on it were destroyed or cancelled.
  ~WorkPool();

  WorkPool(const WorkPool&) = delete;
  WorkPool& operator=(const WorkPool&) = delete;

  int threads() const { return static_cast<int>(workers_.size()); }
  // Tasks run to completion so far, by pool threads and inline together.
  int64_t tasks_run() const;

 private:
  friend class Strand;
  struct Lane;  // a strand's state, shared with the queue

  void Enqueue(std::shared_ptr<Lane> lane);
  void WorkerLoop();
  // Runs the next task of `lane` on this thread when no other thread runs
  // one of its tasks; returns whether it did.
  bool RunOne(const std::shared_ptr<Lane>& lane, bool from_queue);

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Lane>> ready_;  // strands with work, in turn
  bool stopping_ = false;
  int64_t tasks_run_ = 0;
  std::vector<std::thread> workers_;  // last: start after every member is ready
};

// An ordered stream of tasks on a WorkPool (see the top of this file).
class Strand {
 public:
  // REQUIRES: `pool` outlives the strand.
  explicit Strand(WorkPool* pool);
  // Cancel(), then waits for a running task to return.
  ~Strand();

  Strand(const Strand&) = delete;
  Strand& operator=(const Strand&) = delete;

  // Queues `task` (which must not throw); ignored after Cancel().
  void Post(std::function<void()> task);
  // If no thread runs a task of this strand and one is queued, runs the
  // next one on the calling thread and returns true; otherwise false.
  bool RunOneInline();
  // Returns once no task is queued or running (helping: queued tasks run
  // on the calling thread), or, after Cancel(), once none is running.
  void WaitIdle();
  // Drops the queued tasks; later posts are ignored. A running task
  // finishes (tell it to stop by other means).
  void Cancel();

 private:
  WorkPool* const pool_;
  std::shared_ptr<WorkPool::Lane> lane_;
};

}  // namespace stimloop

#endif  // STIMLOOP_BASE_WORK_POOL_H_
