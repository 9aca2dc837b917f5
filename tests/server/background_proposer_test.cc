// The session's background thread: it prepares with the arguments given,
// clears running() under the owner's lock when done, survives a throwing
// optimizer, and Join waits for it.
#include "server/background_proposer.h"

#include <stdexcept>
#include <vector>

#include <gtest/gtest.h>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace stimloop {
namespace {

// Records PrepareAsk's arguments; blocks in it until released; throws when
// asked to.
class PreparingOptimizer : public Optimizer {
 public:
  absl::string_view name() const override { return "preparing"; }
  absl::StatusOr<std::vector<Candidate>> Ask(int, int64_t) override {
    return absl::UnimplementedError("not in this test");
  }
  absl::Status Tell(absl::Span<const Observation>) override { return absl::OkStatus(); }
  absl::Status PrepareAsk(int count, int64_t first_id) override {
    entered.Notify();
    release.WaitForNotification();
    prepared_count = count;
    prepared_first_id = first_id;
    if (throws) throw std::runtime_error("out of memory");
    return absl::OkStatus();
  }
  bool prepares_asks() const override { return true; }
  void Save(torch::serialize::OutputArchive&) const override {}
  absl::Status Load(torch::serialize::InputArchive&) override { return absl::OkStatus(); }

  absl::Notification entered;
  absl::Notification release;
  bool throws = false;
  int prepared_count = 0;
  int64_t prepared_first_id = 0;
};

// Waits (with a deadline) until the proposer is idle; true when it is.
bool AwaitIdle(absl::Mutex* mu, const BackgroundProposer& proposer) {
  auto idle = [&proposer] { return !proposer.running(); };
  const bool done = mu->LockWhenWithTimeout(absl::Condition(&idle), absl::Seconds(30));
  mu->Unlock();
  return done;
}

TEST(BackgroundProposerTest, PreparesOnItsThreadAndClearsRunningWhenDone) {
  absl::Mutex mu;
  PreparingOptimizer optimizer;
  BackgroundProposer proposer(&mu, "s", nullptr);
  {
    absl::MutexLock lock(&mu);
    EXPECT_FALSE(proposer.running());
    proposer.Start(&optimizer, /*refits=*/nullptr, /*generation=*/2, /*count=*/6,
                   /*first_id=*/13);
    EXPECT_TRUE(proposer.running());
  }
  // The caller is not blocked while it prepares.
  ASSERT_TRUE(optimizer.entered.WaitForNotificationWithTimeout(absl::Seconds(30)));
  {
    absl::MutexLock lock(&mu);
    EXPECT_TRUE(proposer.running());
  }
  optimizer.release.Notify();
  ASSERT_TRUE(AwaitIdle(&mu, proposer));
  EXPECT_EQ(optimizer.prepared_count, 6);
  EXPECT_EQ(optimizer.prepared_first_id, 13);
}

TEST(BackgroundProposerTest, AThrowingOptimizerNeitherTerminatesNorJams) {
  absl::Mutex mu;
  PreparingOptimizer optimizer;
  optimizer.throws = true;
  optimizer.release.Notify();
  BackgroundProposer proposer(&mu, "s", nullptr);
  {
    absl::MutexLock lock(&mu);
    proposer.Start(&optimizer, nullptr, 1, 4, 1);
  }
  ASSERT_TRUE(AwaitIdle(&mu, proposer));
  // It can start again after a failure.
  PreparingOptimizer second;
  second.release.Notify();
  {
    absl::MutexLock lock(&mu);
    proposer.Start(&second, nullptr, 2, 4, 5);
  }
  ASSERT_TRUE(AwaitIdle(&mu, proposer));
  EXPECT_EQ(second.prepared_first_id, 5);
}

// A preparation still queued behind other work runs on a thread that asks
// for it (RunQueuedInline), and Join drops one nobody took.
TEST(BackgroundProposerTest, AQueuedPreparationRunsInlineOrIsDroppedByJoin) {
  WorkPool pool(1);
  Strand other(&pool);
  absl::Notification hold;
  other.Post([&] { hold.WaitForNotification(); });
  absl::Mutex mu;
  PreparingOptimizer inline_one;
  inline_one.release.Notify();
  BackgroundProposer proposer(&mu, "s", &pool);
  {
    absl::MutexLock lock(&mu);
    proposer.Start(&inline_one, nullptr, 1, 4, 1);
  }
  ASSERT_TRUE(proposer.RunQueuedInline());
  EXPECT_EQ(inline_one.prepared_first_id, 1);
  {
    absl::MutexLock lock(&mu);
    EXPECT_FALSE(proposer.running());
  }
  PreparingOptimizer dropped;
  dropped.release.Notify();
  {
    absl::MutexLock lock(&mu);
    proposer.Start(&dropped, nullptr, 2, 4, 5);
  }
  proposer.Join();
  EXPECT_EQ(dropped.prepared_count, 0) << "the pool's thread was held: nothing took it";
  {
    absl::MutexLock lock(&mu);
    EXPECT_FALSE(proposer.running());
  }
  hold.Notify();
}

TEST(BackgroundProposerTest, JoinWaitsForTheWorkToEnd) {
  absl::Mutex mu;
  PreparingOptimizer optimizer;
  BackgroundProposer proposer(&mu, "s", nullptr);
  {
    absl::MutexLock lock(&mu);
    proposer.Start(&optimizer, nullptr, 1, 3, 1);
  }
  ASSERT_TRUE(optimizer.entered.WaitForNotificationWithTimeout(absl::Seconds(30)));
  optimizer.release.Notify();
  proposer.Join();
  EXPECT_EQ(optimizer.prepared_count, 3);  // written before the thread ended
  {
    absl::MutexLock lock(&mu);
    EXPECT_FALSE(proposer.running());
  }
  proposer.Join();  // no thread: returns at once (also from the destructor)
}

}  // namespace
}  // namespace stimloop
