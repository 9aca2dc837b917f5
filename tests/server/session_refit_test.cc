// The session with a model-based optimizer: refits run off the request
// path, and every stimulus records the model version that proposed it.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "base/work_pool.h"
#include "models/session_models.h"
#include "server/session.h"
#include "server/session_manager.h"

namespace stimloop {
namespace {

// Predicts the mean brightness for every neuron; version as given. Counts
// the images it was asked about in `*predicted`.
class BrightnessModel : public ResponseModel {
 public:
  BrightnessModel(int64_t version, std::atomic<int64_t>* predicted)
      : version_(version), predicted_(predicted) {}
  int64_t version() const override { return version_; }
  int64_t num_members() const override { return 1; }
  torch::Tensor PredictMembers(const torch::Tensor& images) const override {
    *predicted_ += images.size(0);
    return (images.flatten(1).mean(1) * 50).view({1, -1, 1});
  }

 private:
  int64_t version_;
  std::atomic<int64_t>* predicted_;
};

// A fit that holds until the test releases its version (or a deadline
// passes, or the scheduler cancels it).
struct HeldFit {
  std::mutex mu;
  std::condition_variable cv;
  bool started = false, timed_out = false;
  int64_t released_through = 0;  // versions up to this one finish
  std::vector<int64_t> sizes;
  std::atomic<int64_t> predicted{0};  // images the fitted models were asked about

  FitFunction Function() {
    return [this](const RefitData& data, int64_t version,
                  const std::atomic<bool>& cancel) -> absl::StatusOr<FitOutcome> {
      std::unique_lock<std::mutex> lock(mu);
      started = true;
      sizes.push_back(data.images.size(0));
      cv.notify_all();
      auto released = [&] { return version <= released_through; };
      // Polls: the scheduler sets `cancel` without notifying cv.
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
      while (!released() && !cancel.load()) {
        if (std::chrono::steady_clock::now() > deadline) {
          timed_out = true;
          break;
        }
        cv.wait_for(lock, std::chrono::milliseconds(5));
      }
      if (!released()) return absl::CancelledError("refit cancelled");
      FitOutcome out;
      out.model = std::make_shared<BrightnessModel>(version, &predicted);
      return out;
    };
  }
  bool WaitStarted() {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(60), [&] { return started; });
  }
  void ReleaseThrough(int64_t version) {
    std::lock_guard<std::mutex> lock(mu);
    released_through = version;
    cv.notify_all();
  }
  void Release() { ReleaseThrough(std::numeric_limits<int64_t>::max()); }
};

// refit_lag -1: the default.
v1::SessionConfig Config(const std::string& optimizer, int refit_lag = -1) {
  v1::SessionConfig config;
  config.mutable_image()->set_height(16);
  config.mutable_image()->set_width(16);
  config.set_num_neurons(1);
  config.mutable_optimizer()->set_name(optimizer);
  (*config.mutable_optimizer()->mutable_params())["prior_generations"] = 1;
  if (optimizer == "gradient_ascent") (*config.mutable_optimizer()->mutable_params())["steps"] = 5;
  config.mutable_image_space()->set_name("pixel");
  if (refit_lag >= 0) (*config.mutable_surrogate()->mutable_params())["refit_lag"] = refit_lag;
  config.set_generation_size(4);
  config.set_seed(3);
  return config;
}

void ReportAll(Session& session, const v1::StimulusBatch& batch, const std::string& request_id) {
  google::protobuf::RepeatedPtrField<v1::Response> responses;
  for (const v1::Stimulus& s : batch.stimuli()) {
    v1::Response* r = responses.Add();
    r->set_stimulus_id(s.id());
    r->add_rates(5.0);
  }
  v1::ReportResponsesAck ack;
  ASSERT_TRUE(session.Report(request_id, responses, &ack).ok());
}

TEST(SessionRefitTest, AGenerationWaitsOnlyForTheFitItsLagAssigns) {
  for (const std::string optimizer : {"gradient_ascent", "adaptive_sampling"}) {
    SCOPED_TRACE(optimizer);
    HeldFit fit;
    ScopedFitFunctionForTesting scoped(fit.Function());
    InMemoryJournal journal;
    SessionManager manager(&journal, 4);
    auto session = manager.Create(Config(optimizer, /*refit_lag=*/2));
    ASSERT_TRUE(session.ok()) << session.status();

    v1::StimulusBatch first;
    ASSERT_TRUE((*session)->Next(0, &first).ok());
    EXPECT_EQ(first.stimuli(0).model_version(), 0);
    EXPECT_EQ(first.stimuli(0).origin(), "prior");
    ReportAll(**session, first, "r1");

    // Generation 2 requests refit 1 on generation 1's responses...
    v1::StimulusBatch second;
    ASSERT_TRUE((*session)->Next(0, &second).ok());
    ASSERT_TRUE(fit.WaitStarted());
    ReportAll(**session, second, "r2");
    // ...which is held: generation 3 (lag 2: the fit of boundary 1, none)
    // is answered all the same, from no model.
    v1::StimulusBatch third;
    ASSERT_TRUE((*session)->Next(0, &third).ok());
    EXPECT_EQ(third.stimuli_size(), 4);
    EXPECT_EQ(third.stimuli(0).model_version(), 0);
    ReportAll(**session, third, "r3");

    // Generation 4 is assigned refit 1: its NextStimuli waits until the fit
    // is released, then names version 1, whatever the timing.
    std::thread release([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      fit.Release();
    });
    v1::StimulusBatch fourth;
    ASSERT_TRUE((*session)->Next(0, &fourth).ok());
    release.join();
    EXPECT_EQ(fourth.stimuli(0).model_version(), 1);
    EXPECT_FALSE(fit.timed_out);
    EXPECT_EQ(fit.sizes.front(), 4) << "the first refit saw generation 1's responses";
  }
}

TEST(SessionRefitTest, TheDefaultLagUsesTheVersionFittedOneGenerationEarlier) {
  HeldFit fit;
  fit.Release();  // fits finish at once
  ScopedFitFunctionForTesting scoped(fit.Function());
  InMemoryJournal journal;
  SessionManager manager(&journal, 4);
  auto session = manager.Create(Config("gradient_ascent"));
  ASSERT_TRUE(session.ok()) << session.status();
  std::vector<int64_t> versions;
  for (int g = 1; g <= 4; ++g) {
    v1::StimulusBatch batch;
    ASSERT_TRUE((*session)->Next(0, &batch).ok());
    versions.push_back(batch.stimuli(0).model_version());
    ReportAll(**session, batch, "r" + std::to_string(g));
  }
  // Gen 1: prior; gen 2: refit 1 requested now, not waited for; gen 3 uses
  // version 1 (generation 1's data), gen 4 version 2.
  EXPECT_EQ(versions, (std::vector<int64_t>{0, 0, 1, 2}));
  // The fits generation 4 waited for; the one requested after its Ask may
  // not have started yet.
  std::lock_guard<std::mutex> lock(fit.mu);
  ASSERT_GE(fit.sizes.size(), 2u);
  EXPECT_EQ(std::vector<int64_t>(fit.sizes.begin(), fit.sizes.begin() + 2),
            (std::vector<int64_t>{4, 8}));
}

// Model-based optimizers ask for generation g+1 while generation g is shown
// (server/session.h, "Proposing ahead"): the boundary's NextStimuli only
// commits what was asked, with the version the refit lag assigns.
TEST(SessionRefitTest, NextGenerationIsAskedWhileTheCurrentOneIsShown) {
  for (const std::string optimizer : {"gradient_ascent", "adaptive_sampling"}) {
    SCOPED_TRACE(optimizer);
    HeldFit fit;
    ScopedFitFunctionForTesting scoped(fit.Function());
    InMemoryJournal journal;
    auto manager = std::make_unique<SessionManager>(&journal, 4);
    auto session = manager->Create(Config(optimizer));
    ASSERT_TRUE(session.ok()) << session.status();

    v1::StimulusBatch first, second, third;
    ASSERT_TRUE((*session)->Next(0, &first).ok());  // prior
    ReportAll(**session, first, "r1");
    ASSERT_TRUE((*session)->Next(0, &second).ok());  // prior; refit 1 held
    ReportAll(**session, second, "r2");
    ASSERT_TRUE(fit.WaitStarted());
    EXPECT_EQ(fit.predicted.load(), 0);
    // Generation 3's Ask waits for that refit in the background; GetSession
    // does not wait for either.
    v1::Session described;
    (*session)->Describe(/*with_images=*/true, &described);
    EXPECT_EQ(described.counts().generations(), 2);

    // Version 1 finishes: generation 3 is asked in the background, with no
    // NextStimuli call.
    fit.ReleaseThrough(1);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (fit.predicted.load() == 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ASSERT_GT(fit.predicted.load(), 0) << "generation 3 was not asked ahead";
    // GetSession's best guess is computed alongside that Ask, from version 1
    // (gradient ascent: the model's optimum; adaptive_sampling holds a guess
    // only for a folder pool).
    v1::Session with_guess;
    (*session)->Describe(/*with_images=*/true, &with_guess);
    EXPECT_EQ(with_guess.optimizer_best_png().empty(), optimizer == "adaptive_sampling");

    // The boundary's NextStimuli commits that Ask's result (waiting for it
    // if it is still running).
    ASSERT_TRUE((*session)->Next(0, &third).ok());
    ASSERT_EQ(third.generation(), 3);
    ASSERT_EQ(third.stimuli_size(), 4);
    EXPECT_EQ(third.stimuli(0).model_version(), 1);
    EXPECT_NE(third.stimuli(0).origin(), "prior");
    // Destroying the session while generation 4's Ask waits for the held
    // refit 2 cancels the refit and joins the Ask.
    session->reset();
    manager.reset();
    EXPECT_FALSE(fit.timed_out) << "the held refit was not cancelled";
  }
}

// Sessions whose refits and background proposals take turns on one shared
// thread propose exactly what each proposes on threads of its own: which
// model proposes a generation is fixed by the data, not by the pool.
TEST(SessionRefitTest, SessionsSharingOnePoolThreadProposeWhatTheyProposeAlone) {
  HeldFit fit;
  fit.Release();
  ScopedFitFunctionForTesting scoped(fit.Function());
  constexpr int kSessions = 3, kGenerations = 5;
  auto run = [&](WorkPool* pool) {
    InMemoryJournal journal;
    SessionManager manager(&journal, kSessions, AssetsDir(), pool);
    std::vector<std::shared_ptr<Session>> sessions;
    for (int i = 0; i < kSessions; ++i) {
      v1::SessionConfig config = Config(i == 1 ? "adaptive_sampling" : "gradient_ascent");
      config.set_seed(10 + i);
      auto session = manager.Create(config);
      EXPECT_TRUE(session.ok()) << session.status();
      if (!session.ok()) return std::vector<std::string>{};
      sessions.push_back(*session);
    }
    // Interleaved, generation by generation, as rigs of one lab would be.
    std::vector<std::string> shown;
    for (int g = 1; g <= kGenerations; ++g) {
      for (int i = 0; i < kSessions; ++i) {
        v1::StimulusBatch batch;
        EXPECT_TRUE(sessions[i]->Next(0, &batch).ok());
        for (const v1::Stimulus& s : batch.stimuli()) {
          shown.push_back(absl::StrCat(i, " ", s.model_version(), " ", s.png()));
        }
        ReportAll(*sessions[i], batch, "r" + std::to_string(g));
      }
    }
    return shown;
  };
  const std::vector<std::string> alone = run(nullptr);
  WorkPool pool(1);
  const std::vector<std::string> shared = run(&pool);
  ASSERT_EQ(alone.size(), static_cast<size_t>(kSessions * kGenerations * 4));
  EXPECT_TRUE(alone == shared) << "the shared pool changed what was proposed";
  int from_a_model = 0;
  for (const std::string& s : shared) from_a_model += s[2] != '0';
  EXPECT_GT(from_a_model, 0) << "no generation came from a model";
  EXPECT_GT(pool.tasks_run(), 0);
}

TEST(SessionRefitTest, BadSurrogateParamsNameTheField) {
  InMemoryJournal journal;
  SessionManager manager(&journal, 4);
  v1::SessionConfig config = Config("gradient_ascent");
  (*config.mutable_surrogate()->mutable_params())["refit_lag"] = 5;
  auto session = manager.Create(config);
  ASSERT_EQ(session.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(session.status().message().find("config.surrogate.params.refit_lag"),
            std::string::npos)
      << session.status();
}

}  // namespace
}  // namespace stimloop
