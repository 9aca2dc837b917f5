#include "models/refit_scheduler.h"
#include "models/session_models.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "base/thread_priority.h"

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
  std::vector<int64_t> previous;  // version of data.previous per call (0: none)
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
        previous.push_back(data.previous == nullptr ? 0 : data.previous->version());
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

int64_t NewestVersion(const RefitScheduler& s) {
  auto m = s.Newest();
  return m == nullptr ? 0 : m->version();
}

TEST(RefitSchedulerTest, ItsParamsAreReadWithTheSurrogates) {
  auto settings = ParseSurrogateSettings(
      {{"refit_every", 40}, {"refit_lag", 2}, {"ensemble_size", 4}}, "", "");
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->refit.refit_every, 40);
  EXPECT_EQ(settings->refit.lag, 2);
  EXPECT_EQ(settings->spec.ensemble_size, 4);

  auto defaults = ParseSurrogateSettings({}, "", "");
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->refit.refit_every, 1);
  EXPECT_EQ(defaults->refit.lag, kDefaultRefitLag);

  auto error = ParseSurrogateSettings({{"refit_lag", kMaxRefitLag + 1}}, "", "");
  EXPECT_EQ(error.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(error.status().message().find("config.surrogate.params.refit_lag"),
            std::string::npos)
      << error.status();

  for (const char* removed : {"refit_sync", "refit_cancel"}) {
    auto gone = ParseSurrogateSettings({{removed, 1}}, "", "");
    EXPECT_EQ(gone.status().code(), absl::StatusCode::kInvalidArgument) << removed;
    EXPECT_NE(gone.status().message().find(absl::StrCat("config.surrogate.params.", removed,
                                                        ": no longer exists")),
              std::string::npos)
        << gone.status();
  }
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

// The scheduler driven as a session drives it: for each generation g,
// BeforeAsk(g), the Ask (which reads Latest()), AfterAsk(g), then the
// responses to it. Returns the version each generation was assigned.
std::vector<int64_t> RunGenerations(RefitScheduler& s, int first, int last,
                                    int responses_per_generation) {
  std::vector<int64_t> assigned;
  for (int g = first; g <= last; ++g) {
    s.BeforeAsk(g);
    assigned.push_back(LatestVersion(s));
    s.AfterAsk(g);
    AppendExamples(s, responses_per_generation);
  }
  return assigned;
}

TEST(RefitSchedulerTest, LagKAssignsTheFitRequestedKGenerationsEarlier) {
  for (int lag = 0; lag <= 3; ++lag) {
    FakeFit fit;
    RefitOptions options;
    options.lag = lag;
    RefitScheduler s(options, fit.Function(), nullptr);
    const std::vector<int64_t> assigned = RunGenerations(s, 1, 8, 3);
    // Generation g: the request at boundary g - lag, which saw the
    // responses to generations 1 .. g - lag - 1; the first request with
    // data is made at boundary 2 (lag 0: in BeforeAsk(2)), version 1.
    for (int g = 1; g <= 8; ++g) {
      const int64_t expected = std::max(0, g - lag - 1);
      EXPECT_EQ(assigned[g - 1], expected) << "lag " << lag << ", generation " << g;
    }
    s.WaitIdle();
    for (size_t i = 0; i < fit.sizes.size(); ++i) {
      EXPECT_EQ(fit.sizes[i], 3 * static_cast<int64_t>(i + 1)) << "lag " << lag;
    }
  }
}

TEST(RefitSchedulerTest, TheAssignedVersionDoesNotDependOnHowLongFitsTake) {
  // Fits held until the test releases them: a later version finishing
  // before an Ask does not change the version the Ask is assigned.
  FakeFit fit;
  fit.hold = true;
  RefitOptions options;
  options.lag = 2;
  RefitScheduler s(options, fit.Function(), nullptr);
  s.BeforeAsk(1);
  s.AfterAsk(1);
  AppendExamples(s, 2);
  s.BeforeAsk(2);
  EXPECT_TRUE(s.AfterAsk(2));  // request 1: boundary 2, 2 examples
  AppendExamples(s, 2);
  s.BeforeAsk(3);              // boundary 1 had no data: nothing to wait for
  EXPECT_EQ(s.Latest(), nullptr);
  EXPECT_TRUE(s.AfterAsk(3));  // request 2: boundary 3, 4 examples
  {
    std::lock_guard<std::mutex> lock(fit.mu);
    fit.hold = false;
  }
  fit.release.Open();
  s.WaitIdle();  // both fits done: version 2 exists
  EXPECT_EQ(NewestVersion(s), 2);
  s.BeforeAsk(4);  // assigned the request of boundary 2
  EXPECT_EQ(LatestVersion(s), 1);
  s.BeforeAsk(5);
  EXPECT_EQ(LatestVersion(s), 2);
}

TEST(RefitSchedulerTest, BeforeAskWaitsForTheAssignedFitOnly) {
  FakeFit fit;
  fit.hold = true;
  RefitOptions options;
  options.lag = 1;
  RefitScheduler s(options, fit.Function(), nullptr);
  AppendExamples(s, 2);
  ASSERT_TRUE(s.AfterAsk(1));
  ASSERT_TRUE(fit.started.Wait());
  s.BeforeAsk(1);  // the request of boundary 1 is assigned to generation 2
  EXPECT_EQ(s.Latest(), nullptr);
  std::atomic<bool> returned{false};
  std::thread ask([&] {
    s.BeforeAsk(2);
    returned = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(returned.load()) << "generation 2 must wait for the fit of boundary 1";
  fit.release.Open();
  ask.join();
  EXPECT_EQ(LatestVersion(s), 1);
  EXPECT_FALSE(fit.wait_timed_out);
}

TEST(RefitSchedulerTest, ResumeGoesOnExactlyAsTheUninterruptedRun) {
  for (int lag = 0; lag <= 3; ++lag) {
    RefitOptions options;
    options.lag = lag;
    options.refit_every = 4;
    // Uninterrupted: 10 generations of 3 responses.
    FakeFit straight_fit;
    RefitScheduler straight(options, straight_fit.Function(), nullptr);
    const std::vector<int64_t> expected = RunGenerations(straight, 1, 10, 3);
    straight.WaitIdle();

    // Interrupted after generation 6 was committed, with only the versions
    // journaled that generation 6 had to wait for (those requested at
    // boundaries <= 6 - lag; boundary g saw 3 (g - 1) examples).
    FakeFit first_fit;
    std::vector<int64_t> boundaries;
    std::vector<FittedVersion> journaled;
    {
      RefitScheduler first(options, first_fit.Function(), nullptr);
      RunGenerations(first, 1, 6, 3);
      first.WaitIdle();
      for (int g = 1; g <= 6; ++g) boundaries.push_back(3 * (g - 1));
      for (size_t i = 0; i < first_fit.sizes.size(); ++i) {
        if (first_fit.sizes[i] / 3 + 1 > 6 - lag) break;
        const int64_t version = first_fit.versions[i];
        journaled.push_back(
            {version, first_fit.sizes[i], std::make_shared<ConstantModel>(version, first_fit.sizes[i])});
      }
    }
    FakeFit resumed_fit;
    RefitScheduler resumed(options, resumed_fit.Function(), nullptr);
    AppendExamples(resumed, 18);
    absl::Status resume = resumed.Resume(boundaries, journaled);
    ASSERT_TRUE(resume.ok()) << resume << " lag " << lag;
    const std::vector<int64_t> after = RunGenerations(resumed, 7, 10, 3);
    EXPECT_EQ(after, std::vector<int64_t>(expected.begin() + 6, expected.end())) << "lag " << lag;
    resumed.WaitIdle();
    // The refits after the crash were fitted on the same examples, with the
    // same numbers, as in the uninterrupted run.
    // and started from the same previous version (a warm start).
    ASSERT_FALSE(resumed_fit.versions.empty()) << "lag " << lag;
    for (size_t i = 0; i < resumed_fit.versions.size(); ++i) {
      const int64_t v = resumed_fit.versions[i];
      ASSERT_LE(v, static_cast<int64_t>(straight_fit.sizes.size()));
      EXPECT_EQ(resumed_fit.sizes[i], straight_fit.sizes[v - 1]) << "lag " << lag << " v" << v;
      EXPECT_EQ(resumed_fit.previous[i], straight_fit.previous[v - 1])
          << "lag " << lag << " v" << v;
    }
  }
}

TEST(RefitSchedulerTest, ResumeRejectsCountsThatDoNotFit) {
  FakeFit fit;
  RefitScheduler s({}, fit.Function(), nullptr);
  AppendExamples(s, 10);
  const std::vector<int64_t> too_many{0, 11};
  EXPECT_EQ(s.Resume(too_many, {}).code(), absl::StatusCode::kInvalidArgument);
  const std::vector<int64_t> decreasing{0, 5, 4};
  EXPECT_EQ(s.Resume(decreasing, {}).code(), absl::StatusCode::kInvalidArgument);
  const std::vector<int64_t> fine{0, 5, 10};
  std::vector<FittedVersion> unmatched{{1, 7, std::make_shared<ConstantModel>(1, 7)}};
  auto status = s.Resume(fine, unmatched);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("matches no refit request"), std::string::npos) << status;
}

TEST(RefitSchedulerTest, LatestReturnsWhileAFitIsProvablyRunning) {
  FakeFit fit;
  fit.hold = true;
  RefitScheduler s({}, fit.Function(), nullptr);
  AppendExamples(s, 3);
  ASSERT_TRUE(s.AfterAsk(1));
  ASSERT_TRUE(fit.started.Wait());
  // The fit is blocked on `release`, which only this thread opens.
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(s.Latest(), nullptr);
  fit.release.Open();
  s.WaitIdle();
  EXPECT_EQ(NewestVersion(s), 1);
  EXPECT_FALSE(fit.wait_timed_out);
}

TEST(RefitSchedulerTest, VersionsIncreaseAndAreReportedBeforeAnAskCanUseThem) {
  FakeFit fit;
  std::vector<int64_t> reported;
  std::vector<std::string> checkpoints;
  RefitScheduler* self = nullptr;
  std::vector<int64_t> newest_at_report;
  RefitScheduler s({}, fit.Function(),
                   [&](int64_t version, const std::map<std::string, double>& metrics,
                       const std::string& checkpoint) {
                     reported.push_back(version);
                     checkpoints.push_back(checkpoint);
                     EXPECT_EQ(metrics.count("examples"), 1u);
                     newest_at_report.push_back(NewestVersion(*self));
                   });
  self = &s;
  for (int round = 1; round <= 3; ++round) {
    AppendExamples(s, 2);
    ASSERT_TRUE(s.AfterAsk(round));
    s.WaitIdle();
    EXPECT_EQ(NewestVersion(s), round);
  }
  EXPECT_FALSE(s.AfterAsk(4)) << "no new data: nothing to refit";
  EXPECT_EQ(reported, (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(newest_at_report, (std::vector<int64_t>{0, 1, 2}));
  // Each fit was handed the version before it to start from.
  EXPECT_EQ(fit.previous, (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(checkpoints.back(), "ckpt3");
  EXPECT_EQ(fit.sizes, (std::vector<int64_t>{2, 4, 6}));
}

TEST(RefitSchedulerTest, RefitEveryNeedsThatManyNewExamples) {
  FakeFit fit;
  RefitOptions options;
  options.refit_every = 5;
  RefitScheduler s(options, fit.Function(), nullptr);
  AppendExamples(s, 4);
  EXPECT_FALSE(s.AfterAsk(1));
  AppendExamples(s, 1);
  EXPECT_TRUE(s.AfterAsk(2));
  s.WaitIdle();
  AppendExamples(s, 4);
  EXPECT_FALSE(s.AfterAsk(3));
  EXPECT_EQ(fit.sizes, (std::vector<int64_t>{5}));
}

TEST(RefitSchedulerTest, StopCancelsTheRunningFitAndDropsTheQueued) {
  FakeFit fit;
  fit.hold = true;
  RefitScheduler s({}, fit.Function(), nullptr);
  AppendExamples(s, 1);
  ASSERT_TRUE(s.AfterAsk(1));
  ASSERT_TRUE(fit.started.Wait());
  AppendExamples(s, 1);
  ASSERT_TRUE(s.AfterAsk(2));  // queued behind the running fit
  s.Stop();
  s.WaitIdle();     // returns at once once stopped
  s.BeforeAsk(5);   // so does this, without a model
  EXPECT_EQ(s.Latest(), nullptr);
  EXPECT_FALSE(s.AfterAsk(3)) << "no requests after Stop";
}

TEST(RefitSchedulerTest, DestructionCancelsTheRunningFitAndJoins) {
  FakeFit fit;
  fit.hold = true;
  {
    RefitScheduler s({}, fit.Function(), nullptr);
    AppendExamples(s, 1);
    ASSERT_TRUE(s.AfterAsk(1));
    ASSERT_TRUE(fit.started.Wait());
    // Nobody opens `release`: the fit returns only if the destructor sets
    // its cancel flag (else it times out, which the test sees).
  }
  EXPECT_TRUE(fit.saw_cancel);
  EXPECT_FALSE(fit.wait_timed_out);
  EXPECT_EQ(fit.sizes.size(), 1u);
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
  ASSERT_TRUE(s.AfterAsk(1));
  // Not WaitIdle: a waiter runs a queued fit itself, at its own priority.
  while (s.Newest() == nullptr) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(fit_nice.load(), std::min(19, caller_nice + kBackgroundNice));
  EXPECT_EQ(ThisThreadNice(), caller_nice);
}

FitFunction ConstantFit() {
  return [](const RefitData& data, int64_t version,
            const std::atomic<bool>&) -> absl::StatusOr<FitOutcome> {
    FitOutcome out;
    out.model = std::make_shared<ConstantModel>(version, data.images.size(0));
    return out;
  };
}

// Every thread of the shared pool is busy (here: held), yet a generation
// whose fit is queued gets its model: BeforeAsk runs the fit itself.
TEST(RefitSchedulerTest, BeforeAskRunsItsQueuedFitWhenThePoolIsBusy) {
  WorkPool pool(1);
  Strand other_session(&pool);
  Gate held;
  other_session.Post([&] { held.Wait(); });
  RefitScheduler s({}, ConstantFit(), nullptr, &pool);
  AppendExamples(s, 3);
  ASSERT_TRUE(s.AfterAsk(1));
  s.BeforeAsk(2);  // lag 1: the fit requested at boundary 1
  ASSERT_NE(s.Latest(), nullptr);
  EXPECT_EQ(s.Latest()->version(), 1);
  held.Open();
}

// Sessions sharing a pool of one thread each get their fits, in their own
// order.
TEST(RefitSchedulerTest, SchedulersShareOnePool) {
  WorkPool pool(1);
  RefitScheduler a({}, ConstantFit(), nullptr, &pool), b({}, ConstantFit(), nullptr, &pool);
  for (int g = 1; g <= 3; ++g) {
    AppendExamples(a, 2);
    AppendExamples(b, 1);
    ASSERT_TRUE(a.AfterAsk(g));
    ASSERT_TRUE(b.AfterAsk(g));
  }
  a.WaitIdle();
  b.WaitIdle();
  a.BeforeAsk(4);
  b.BeforeAsk(4);
  ASSERT_NE(a.Latest(), nullptr);
  ASSERT_NE(b.Latest(), nullptr);
  EXPECT_EQ(a.Latest()->version(), 3);
  EXPECT_EQ(b.Latest()->version(), 3);
  EXPECT_EQ(std::static_pointer_cast<const ConstantModel>(a.Latest())->examples(), 6);
  EXPECT_EQ(std::static_pointer_cast<const ConstantModel>(b.Latest())->examples(), 3);
}

TEST(RefitSchedulerTest, AFitThatThrowsIsAFailedFitNotACrash) {
  int calls = 0;
  RefitScheduler s(
      {},
      [&](const RefitData& data, int64_t version,
          const std::atomic<bool>&) -> absl::StatusOr<FitOutcome> {
        if (++calls == 1) throw std::runtime_error("out of memory");
        FitOutcome out;
        out.model = std::make_shared<ConstantModel>(version, data.images.size(0));
        return out;
      },
      nullptr);
  AppendExamples(s, 2);
  ASSERT_TRUE(s.AfterAsk(1));
  s.WaitIdle();
  EXPECT_EQ(s.last_error().code(), absl::StatusCode::kInternal);
  EXPECT_NE(std::string(s.last_error().message()).find("out of memory"), std::string::npos);
  AppendExamples(s, 2);
  ASSERT_TRUE(s.AfterAsk(2));
  s.BeforeAsk(3);
  ASSERT_NE(s.Latest(), nullptr);
  EXPECT_EQ(s.Latest()->version(), 1) << "the throw took no version number";
}

TEST(RefitSchedulerTest, AFailedFitTakesNoVersionAndLaterRequestsGoOn) {
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
  ASSERT_TRUE(s.AfterAsk(1));
  s.WaitIdle();
  s.BeforeAsk(2);
  EXPECT_EQ(s.Latest(), nullptr);
  EXPECT_EQ(s.last_error().code(), absl::StatusCode::kFailedPrecondition);
  AppendExamples(s, 1);
  ASSERT_TRUE(s.AfterAsk(2));
  s.BeforeAsk(3);
  EXPECT_EQ(LatestVersion(s), 1);
}

}  // namespace
}  // namespace stimloop
