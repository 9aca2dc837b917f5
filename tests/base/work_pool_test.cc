#include "base/work_pool.h"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace stimloop {
namespace {

// A gate that tasks wait at until the test opens it.
class Gate {
 public:
  void Open() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      open_ = true;
    }
    cv_.notify_all();
  }
  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return open_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

// Records the order tasks ran in.
class Log {
 public:
  std::function<void()> Task(std::string name) {
    return [this, name] {
      std::lock_guard<std::mutex> lock(mu_);
      order_.push_back(name);
    };
  }
  std::vector<std::string> order() {
    std::lock_guard<std::mutex> lock(mu_);
    return order_;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> order_;
};

TEST(WorkPoolTest, AStrandRunsItsTasksInOrderOneAtATime) {
  WorkPool pool(4);
  Strand strand(&pool);
  std::atomic<int> running{0}, most{0};
  Log log;
  for (int i = 0; i < 50; ++i) {
    strand.Post([&, i] {
      most = std::max(most.load(), ++running);
      log.Task(std::to_string(i))();
      --running;
    });
  }
  strand.WaitIdle();
  const std::vector<std::string> order = log.order();
  ASSERT_EQ(order.size(), 50u);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(order[i], std::to_string(i));
  EXPECT_EQ(most.load(), 1);
}

// While the one worker is held, strand a queues three tasks and b two: b
// does not wait for all of a's, the strands take turns task by task.
TEST(WorkPoolTest, BusyStrandsTakeTurns) {
  WorkPool pool(1);
  Strand blocker(&pool), a(&pool), b(&pool);
  Gate gate;
  Log log;
  blocker.Post([&] { gate.Wait(); });
  a.Post(log.Task("a1"));
  a.Post(log.Task("a2"));
  a.Post(log.Task("a3"));
  b.Post(log.Task("b1"));
  b.Post(log.Task("b2"));
  gate.Open();
  // Wait without helping, so that only the worker runs tasks.
  for (;;) {
    if (log.order().size() == 5) break;
    std::this_thread::yield();
  }
  EXPECT_EQ(log.order(), (std::vector<std::string>{"a1", "b1", "a2", "b2", "a3"}));
  EXPECT_GE(pool.tasks_run(), 6);
}

TEST(WorkPoolTest, CancelDropsQueuedTasksAndIgnoresLaterPosts) {
  WorkPool pool(1);
  Strand blocker(&pool), strand(&pool);
  Gate gate;
  std::atomic<int> ran{0};
  blocker.Post([&] { gate.Wait(); });
  strand.Post([&] { ++ran; });
  strand.Post([&] { ++ran; });
  strand.Cancel();
  strand.Post([&] { ++ran; });
  gate.Open();
  blocker.WaitIdle();
  strand.WaitIdle();
  EXPECT_EQ(ran.load(), 0);
}

TEST(WorkPoolTest, AWaiterRunsTheQueuedTaskItNeedsSoAFullPoolDoesNotDeadlock) {
  // One worker, and its task waits for work queued behind it on another
  // strand: WaitIdle runs that work inline.
  WorkPool pool(1);
  Strand proposals(&pool), fits(&pool);
  std::atomic<bool> fitted{false}, proposed{false};
  Gate posted;
  proposals.Post([&] {
    posted.Wait();
    fits.WaitIdle();
    proposed = fitted.load();
  });
  fits.Post([&] { fitted = true; });
  posted.Open();
  proposals.WaitIdle();
  EXPECT_TRUE(proposed.load());
}

TEST(WorkPoolTest, DestroyingAStrandWithQueuedTasksDropsThem) {
  WorkPool pool(1);
  Strand blocker(&pool);
  Gate gate;
  std::atomic<int> ran{0};
  blocker.Post([&] { gate.Wait(); });
  {
    Strand strand(&pool);
    for (int i = 0; i < 10; ++i) strand.Post([&] { ++ran; });
  }
  gate.Open();
  blocker.WaitIdle();
  EXPECT_EQ(ran.load(), 0);
}

}  // namespace
}  // namespace stimloop
