#include "models/refit_scheduler.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "models/thread_priority.h"

namespace stimloop {
namespace {

// A one-shot gate with a deadline, so a broken scheduler fails a test
// instead of hanging it.
class Gate {
 public:
  void Open() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      open_ = true;
    }
    cv_.notify_all();
  }
  // True when opened (or `also` became true) before the deadline. `also` is
  // an atomic flag set by code that does not know the gate, so it is
  // re-checked every few milliseconds.
  bool Wait(const std::atomic<bool>* also = nullptr,
            std::chrono::seconds deadline = std::chrono::seconds(60)) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    std::unique_lock<std::mutex> lock(mu_);
    auto done = [&] { return open_ || (also != nullptr && also->load()); };
    while (!done()) {
      if (std::chrono::steady_clock::now() >= until) return false;
      cv_.wait_for(lock, std::chrono::milliseconds(2), done);
    }
    return true;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

class ConstantModel : public ResponseModel {
 public:
  ConstantModel(int64_t version, int64_t examples) : version_(version), examples_(examples) {}
  int64_t version() const override { return version_; }
  int64_t num_members() const override { return 1; }
  torch::Tensor PredictMembers(const torch::Tensor& images) const override {
    return torch::full({1, images.size(0), 1}, static_cast<float>(examples_));
  }
  int64_t examples() const { return examples_; }

 private:
  int64_t version_, examples_;
};

// A fit function whose calls the test can watch and hold.
struct FakeFit {
  std::mutex mu;
  std::vector<int64_t> sizes;     // examples per call
  std::vector<int64_t> versions;  // version per call
  Gate started;                   // opened when a call starts
  Gate release;                   // calls wait for it when `hold`
  bool hold = false;
  bool saw_cancel = false;
  bool wait_timed_out = false;

  FitFunction Function() {
    return [this](const RefitData& data, int64_t version,
                  const std::atomic<bool>& cancel) -> absl::StatusOr<FitOutcome> {
      bool held;
      {
        std::lock_guard<std::mutex> lock(mu);
        sizes.push_back(data.images.size(0));
        versions.push_back(version);
        held = hold;
      }
      started.Open();
      if (held) {
        const bool woke = release.Wait(&cancel);
        std::lock_guard<std::mutex> lock(mu);
        if (!woke) wait_timed_out = true;
        if (cancel) {
          saw_cancel = true;
          return absl::CancelledError("refit cancelled");
        }
      }
      FitOutcome out;
      out.model = std::make_shared<ConstantModel>(version, data.images.size(0));
      out.metrics["examples"] = static_cast<double>(data.images.size(0));
      out.checkpoint = "ckpt" + std::to_string(version);
      return out;
    };
  }
};

void AppendExamples(RefitScheduler& s, int n) {
  for (int i = 0; i < n; ++i) {
    ASSERT_TRUE(s.Append(torch::full({1, 4, 4}, i % 256, torch::kUInt8), {1.0 * i, 2.0}, i).ok());
  }
}

int64_t LatestVersion(const RefitScheduler& s) {
  auto m = s.Latest();
  return m == nullptr ? 0 : m->version();
}

TEST(RefitSchedulerTest, ParsesAndRemovesItsParams) {
  std::map<std::string, double> params{
      {"refit_every", 40}, {"refit_sync", 0}, {"refit_cancel", 1}, {"ensemble_size", 5}};
  auto options = ParseRefitOptions(&params);
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->refit_every, 40);
  EXPECT_FALSE(options->sync);
  EXPECT_EQ(options->lag, 1);
  EXPECT_TRUE(options->cancel_superseded);
  EXPECT_EQ(params, (std::map<std::string, double>{{"ensemble_size", 5}}));

  std::map<std::string, double> empty;
  auto defaults = ParseRefitOptions(&empty);
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->refit_every, 1);
  EXPECT_FALSE(defaults->sync);  // the rig never waits unless a session asks
  EXPECT_EQ(defaults->lag, 1);

  std::map<std::string, double> sync{{"refit_sync", 1}};
  auto replayable = ParseRefitOptions(&sync);
  ASSERT_TRUE(replayable.ok());
  EXPECT_TRUE(replayable->sync);

  std::map<std::string, double> bad{{"refit_lag", 2}};
  auto error = ParseRefitOptions(&bad);
  EXPECT_EQ(error.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(error.status().message().find("surrogate.params.refit_lag"), std::string::npos);
}

TEST(RefitSchedulerTest, RejectsExamplesOfAnotherShape) {
  FakeFit fit;
  RefitScheduler s({}, fit.Function(), nullptr);
  ASSERT_TRUE(s.Append(torch::zeros({1, 4, 4}), {1.0}, 0).ok());
  EXPECT_EQ(s.Append(torch::zeros({1, 5, 4}), {1.0}, 1).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.Append(torch::zeros({1, 4, 4}), {1.0, 2.0}, 2).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.num_examples(), 1);
}

TEST(RefitSchedulerTest, ResumeRequestsTheInterruptedRefitOnTheBoundaryExamples) {
  FakeFit fit;
  fit.hold = true;
  RefitScheduler s({}, fit.Function(), nullptr);
  AppendExamples(s, 30);  // 20 before the last generation, 10 after it
  ASSERT_TRUE(s.Resume(std::make_shared<ConstantModel>(3, 12), 3, 12, 20).ok());
  ASSERT_TRUE(fit.started.Wait());
  EXPECT_EQ(LatestVersion(s), 3);  // the journaled version while the refit runs
  fit.release.Open();
  s.WaitIdle();
  EXPECT_EQ(fit.sizes, std::vector<int64_t>{20});  // not 30: what the boundary saw
  EXPECT_EQ(fit.versions, std::vector<int64_t>{4});
  EXPECT_EQ(LatestVersion(s), 4);
  // The next boundary goes on from there.
  EXPECT_TRUE(s.AfterAsk());
  s.WaitIdle();
  EXPECT_EQ(fit.sizes, (std::vector<int64_t>{20, 30}));
  EXPECT_EQ(LatestVersion(s), 5);
}

TEST(RefitSchedulerTest, ResumeRequestsNothingWhenTheVersionCoversTheBoundary) {
  FakeFit fit;
  RefitScheduler s({}, fit.Function(), nullptr);
  AppendExamples(s, 30);
  ASSERT_TRUE(s.Resume(std::make_shared<ConstantModel>(2, 20), 2, 20, 20).ok());
  s.WaitIdle();
  EXPECT_TRUE(fit.sizes.empty());
  EXPECT_EQ(LatestVersion(s), 2);
}

TEST(RefitSchedulerTest, ResumeRejectsCountsThatDoNotFit) {
  FakeFit fit;
  RefitScheduler s({}, fit.Function(), nullptr);
  AppendExamples(s, 10);
  EXPECT_EQ(s.Resume(nullptr, 0, 0, 11).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.Resume(nullptr, 1, 5, 10).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.Resume(std::make_shared<ConstantModel>(2, 5), 1, 5, 10).code(),
            absl::StatusCode::kInvalidArgument);
  s.WaitIdle();
  EXPECT_TRUE(fit.sizes.empty());
}

TEST(RefitSchedulerTest, LatestReturnsWhileAFitIsProvablyRunning) {
  FakeFit fit;
  fit.hold = true;
  RefitScheduler s({}, fit.Function(), nullptr);
  AppendExamples(s, 3);
  ASSERT_TRUE(s.RequestRefit());
  ASSERT_TRUE(fit.started.Wait());
  // The fit is blocked on `release`, which only this thread opens.
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(s.Latest(), nullptr);
  fit.release.Open();
  s.WaitIdle();
  EXPECT_EQ(LatestVersion(s), 1);
  EXPECT_FALSE(fit.wait_timed_out);
}

TEST(RefitSchedulerTest, VersionsIncreaseAndAreReportedBeforePublishing) {
  FakeFit fit;
  std::vector<int64_t> reported;
  std::vector<std::string> checkpoints;
  RefitScheduler* self = nullptr;
  std::vector<int64_t> latest_at_report;
  RefitScheduler s({}, fit.Function(),
                   [&](int64_t version, const std::map<std::string, double>& metrics,
                       const std::string& checkpoint) {
                     reported.push_back(version);
                     checkpoints.push_back(checkpoint);
                     EXPECT_EQ(metrics.count("examples"), 1u);
                     latest_at_report.push_back(LatestVersion(*self));
                   });
  self = &s;
  for (int round = 1; round <= 3; ++round) {
    AppendExamples(s, 2);
    ASSERT_TRUE(s.RequestRefit());
    s.WaitIdle();
    EXPECT_EQ(LatestVersion(s), round);
  }
  EXPECT_FALSE(s.RequestRefit()) << "no new data: nothing to refit";
  EXPECT_EQ(reported, (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(latest_at_report, (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(checkpoints.back(), "ckpt3");
  EXPECT_EQ(fit.sizes, (std::vector<int64_t>{2, 4, 6}));
}

TEST(RefitSchedulerTest, RefitEveryNeedsThatManyNewExamples) {
  FakeFit fit;
  RefitOptions options;
  options.refit_every = 5;
  RefitScheduler s(options, fit.Function(), nullptr);
  AppendExamples(s, 4);
  EXPECT_FALSE(s.RequestRefit());
  AppendExamples(s, 1);
  EXPECT_TRUE(s.RequestRefit());
  s.WaitIdle();
  AppendExamples(s, 4);
  EXPECT_FALSE(s.RequestRefit());
  EXPECT_EQ(fit.sizes, (std::vector<int64_t>{5}));
}

TEST(RefitSchedulerTest, SupersededRequestsFoldIntoOneWaitingRefit) {
  FakeFit fit;
  fit.hold = true;
  RefitScheduler s({}, fit.Function(), nullptr);
  AppendExamples(s, 1);
  ASSERT_TRUE(s.RequestRefit());
  ASSERT_TRUE(fit.started.Wait());
  for (int i = 0; i < 50; ++i) {
    AppendExamples(s, 1);
    ASSERT_TRUE(s.RequestRefit());
  }
  {
    std::lock_guard<std::mutex> lock(fit.mu);
    fit.hold = false;
  }
  fit.release.Open();
  s.WaitIdle();
  // One fit ran on the first example; the 50 later requests became one fit
  // on all 51 examples.
  EXPECT_EQ(fit.sizes, (std::vector<int64_t>{1, 51}));
  EXPECT_EQ(fit.versions, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(s.fits_cancelled(), 0);
  EXPECT_EQ(LatestVersion(s), 2);
}

TEST(RefitSchedulerTest, CancelsASupersededRunningFitWhenAsked) {
  FakeFit fit;
  fit.hold = true;
  RefitOptions options;
  options.cancel_superseded = true;
  RefitScheduler s(options, fit.Function(), nullptr);
  AppendExamples(s, 1);
  ASSERT_TRUE(s.RequestRefit());
  ASSERT_TRUE(fit.started.Wait());
  {
    std::lock_guard<std::mutex> lock(fit.mu);
    fit.hold = false;  // the next fit runs through
  }
  AppendExamples(s, 1);
  ASSERT_TRUE(s.RequestRefit());
  s.WaitIdle();
  EXPECT_TRUE(fit.saw_cancel);
  EXPECT_FALSE(fit.wait_timed_out);
  EXPECT_EQ(s.fits_cancelled(), 1);
  EXPECT_EQ(fit.sizes, (std::vector<int64_t>{1, 2}));
  // The cancelled fit took no version number.
  EXPECT_EQ(fit.versions, (std::vector<int64_t>{1, 1}));
  EXPECT_EQ(LatestVersion(s), 1);
}

TEST(RefitSchedulerTest, DestructionCancelsTheRunningFitAndJoins) {
  FakeFit fit;
  fit.hold = true;
  {
    RefitScheduler s({}, fit.Function(), nullptr);
    AppendExamples(s, 1);
    ASSERT_TRUE(s.RequestRefit());
    ASSERT_TRUE(fit.started.Wait());
    // Nobody opens `release`: the fit returns only if the destructor sets
    // its cancel flag (else it times out, which the test sees).
  }
  EXPECT_TRUE(fit.saw_cancel);
  EXPECT_FALSE(fit.wait_timed_out);
}

TEST(RefitSchedulerTest, SyncLagZeroFitsEverythingBeforeAsk) {
  FakeFit fit;
  RefitOptions options;
  options.sync = true;
  options.lag = 0;
  RefitScheduler s(options, fit.Function(), nullptr);
  s.BeforeAsk();  // no data: nothing to wait for
  EXPECT_EQ(s.Latest(), nullptr);
  AppendExamples(s, 3);
  s.BeforeAsk();
  EXPECT_EQ(LatestVersion(s), 1);
  EXPECT_FALSE(s.AfterAsk());
  AppendExamples(s, 2);
  s.BeforeAsk();
  EXPECT_EQ(LatestVersion(s), 2);
  EXPECT_EQ(fit.sizes, (std::vector<int64_t>{3, 5}));
}

TEST(RefitSchedulerTest, SyncLagOneUsesTheFitRequestedOneGenerationEarlier) {
  FakeFit fit;
  RefitOptions options;
  options.sync = true;  // lag 1 is the default
  RefitScheduler s(options, fit.Function(), nullptr);
  s.BeforeAsk();
  EXPECT_EQ(s.Latest(), nullptr);  // generation 1
  EXPECT_FALSE(s.AfterAsk());
  AppendExamples(s, 3);  // responses to generation 1
  s.BeforeAsk();         // generation 2: the request made now is not waited for
  EXPECT_TRUE(s.AfterAsk());
  AppendExamples(s, 2);
  s.BeforeAsk();  // generation 3: exactly the fit on generation 1's data
  auto model = std::dynamic_pointer_cast<const ConstantModel>(s.Latest());
  ASSERT_NE(model, nullptr);
  EXPECT_EQ(model->version(), 1);
  EXPECT_EQ(model->examples(), 3);
}

TEST(RefitSchedulerTest, AsyncBeforeAskNeverWaitsForARunningFit) {
  FakeFit fit;
  fit.hold = true;
  RefitOptions options;
  options.sync = false;
  RefitScheduler s(options, fit.Function(), nullptr);
  AppendExamples(s, 2);
  ASSERT_TRUE(s.AfterAsk());
  ASSERT_TRUE(fit.started.Wait());
  s.BeforeAsk();  // would wait for `release`, which is opened only below
  EXPECT_EQ(s.Latest(), nullptr);
  fit.release.Open();
  s.WaitIdle();
  EXPECT_EQ(LatestVersion(s), 1);
  EXPECT_FALSE(fit.wait_timed_out);
}

// Fits yield the CPU to the threads that answer the rig (Linux: a higher
// nice value on the worker alone; the caller's stays as it was).
TEST(RefitSchedulerTest, FitsRunAtALowerPriorityThanTheCaller) {
#ifndef __linux__
  GTEST_SKIP() << "thread priorities are set on Linux only";
#endif
  const int caller_nice = ThisThreadNice();
  std::atomic<int> fit_nice{-100};
  RefitScheduler s(
      {},
      [&](const RefitData&, int64_t version, const std::atomic<bool>&) -> absl::StatusOr<FitOutcome> {
        fit_nice = ThisThreadNice();
        FitOutcome out;
        out.model = std::make_shared<ConstantModel>(version, 1);
        return out;
      },
      nullptr);
  AppendExamples(s, 2);
  ASSERT_TRUE(s.AfterAsk());
  s.WaitIdle();
  EXPECT_EQ(fit_nice.load(), std::min(19, caller_nice + kBackgroundNice));
  EXPECT_EQ(ThisThreadNice(), caller_nice);
}

TEST(RefitSchedulerTest, AFailedFitPublishesNothingAndIsRetried) {
  int calls = 0;
  RefitScheduler s(
      {},
      [&](const RefitData& data, int64_t version,
          const std::atomic<bool>&) -> absl::StatusOr<FitOutcome> {
        if (++calls == 1) return absl::FailedPreconditionError("too few examples");
        FitOutcome out;
        out.model = std::make_shared<ConstantModel>(version, data.images.size(0));
        return out;
      },
      nullptr);
  AppendExamples(s, 1);
  ASSERT_TRUE(s.RequestRefit());
  s.WaitIdle();
  EXPECT_EQ(s.Latest(), nullptr);
  EXPECT_EQ(s.last_error().code(), absl::StatusCode::kFailedPrecondition);
  AppendExamples(s, 1);
  ASSERT_TRUE(s.RequestRefit());
  s.WaitIdle();
  EXPECT_EQ(LatestVersion(s), 1);
}

}  // namespace
}  // namespace stimloop
