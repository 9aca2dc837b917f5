#include "base/work_pool.h"

#include <algorithm>
#include <utility>

#include "base/thread_priority.h"

namespace stimloop {

struct WorkPool::Lane {
  std::mutex mu;
  std::condition_variable idle;             // a task finished, or the lane was cancelled
  std::deque<std::function<void()>> tasks;  // queued, in order
  bool queued = false;   // the lane holds a place in the pool's ready_ queue
  bool running = false;  // a thread runs one of its tasks
  bool cancelled = false;
};

WorkPool::WorkPool(int threads) {
  for (int i = 0; i < std::max(1, threads); ++i) {
    workers_.emplace_back([this] { WorkerLoop(); });
  }
}

WorkPool::~WorkPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (std::thread& worker : workers_) worker.join();
}

int64_t WorkPool::tasks_run() const {
  std::lock_guard<std::mutex> lock(mu_);
  return tasks_run_;
}

void WorkPool::Enqueue(std::shared_ptr<Lane> lane) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ready_.push_back(std::move(lane));
  }
  cv_.notify_one();
}

void WorkPool::WorkerLoop() {
  LowerThisThreadPriority();
  for (;;) {
    std::shared_ptr<Lane> lane;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !ready_.empty(); });
      if (stopping_) return;
      lane = std::move(ready_.front());
      ready_.pop_front();
    }
    RunOne(lane, /*from_queue=*/true);
  }
}

bool WorkPool::RunOne(const std::shared_ptr<Lane>& lane, bool from_queue) {
  std::function<void()> task;
  {
    std::lock_guard<std::mutex> lock(lane->mu);
    // A lane taken from the queue gives its place up; whoever runs its
    // next task queues it again if work is left after that.
    if (from_queue) lane->queued = false;
    if (lane->running || lane->cancelled || lane->tasks.empty()) return false;
    task = std::move(lane->tasks.front());
    lane->tasks.pop_front();
    lane->running = true;
  }
  task();
  bool requeue = false;
  {
    std::lock_guard<std::mutex> lock(lane->mu);
    lane->running = false;
    if (!lane->cancelled && !lane->tasks.empty() && !lane->queued) {
      lane->queued = requeue = true;
    }
  }
  lane->idle.notify_all();
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++tasks_run_;
  }
  if (requeue) Enqueue(lane);  // to the back: busy strands take turns
  return true;
}

Strand::Strand(WorkPool* pool) : pool_(pool), lane_(std::make_shared<WorkPool::Lane>()) {}

Strand::~Strand() {
  Cancel();
  WaitIdle();
}

void Strand::Post(std::function<void()> task) {
  bool enqueue = false;
  {
    std::lock_guard<std::mutex> lock(lane_->mu);
    if (lane_->cancelled) return;
    lane_->tasks.push_back(std::move(task));
    // A running task's runner queues the lane when it finishes.
    if (!lane_->queued && !lane_->running) lane_->queued = enqueue = true;
  }
  if (enqueue) pool_->Enqueue(lane_);
}

bool Strand::RunOneInline() { return pool_->RunOne(lane_, /*from_queue=*/false); }

void Strand::WaitIdle() {
  for (;;) {
    if (RunOneInline()) continue;
    std::unique_lock<std::mutex> lock(lane_->mu);
    if (!lane_->running && (lane_->tasks.empty() || lane_->cancelled)) return;
    if (!lane_->running) continue;  // a task is queued and free: run it
    lane_->idle.wait(lock, [this] { return !lane_->running; });
  }
}

void Strand::Cancel() {
  {
    std::lock_guard<std::mutex> lock(lane_->mu);
    lane_->cancelled = true;
    lane_->tasks.clear();
  }
  lane_->idle.notify_all();
}

}  // namespace stimloop
