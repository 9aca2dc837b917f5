// Session::Restore from a SessionStore: a restored session goes on exactly as
// the original does; and 16 sessions journaling at once lose and mix nothing.
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "server/session.h"
#include "server/session_config.h"
#include "server/session_restore.h"
#include "server/session_store.h"

namespace stimloop {
namespace {

std::string FreshDir(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("stimloop-restore-test-" + name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

// `repeats`: RepeatsConfig.per_generation.
v1::SessionConfig Config(uint64_t seed, int repeats = 0) {
  v1::SessionConfig config;
  config.mutable_image()->set_height(32);
  config.mutable_image()->set_width(32);
  config.mutable_image()->set_channels(1);
  config.set_num_neurons(2);
  config.mutable_optimizer()->set_name("genetic");
  config.mutable_image_space()->set_name("spectral");
  config.set_generation_size(10);
  config.set_seed(seed);
  config.mutable_repeats()->set_per_generation(repeats);
  return config;
}

std::unique_ptr<Session> NewSession(const std::string& id, uint64_t seed,
                                    SessionJournal* journal, int repeats = 0) {
  auto resolved = ResolveConfig(Config(seed, repeats));
  EXPECT_TRUE(resolved.ok()) << resolved.status();
  auto session = Session::Create(id, *std::move(resolved), absl::Now(), journal);
  EXPECT_TRUE(session.ok()) << session.status();
  return session.ok() ? *std::move(session) : nullptr;
}

// Deterministic "measured" rates from the PNG bytes: mean byte value and a
// second neuron scaled by `scale`.
std::vector<double> Rates(const std::string& png, double scale) {
  double sum = 0;
  for (unsigned char c : png) sum += c;
  const double mean = sum / static_cast<double>(png.size());
  return {mean / 7.0, scale * mean};
}

// One step of a rig: asks for `max_count` stimuli, then reports a response
// for each (every third stimulus twice, every fifth skipped), also into
// *sent when given. Returns the PNGs received.
std::vector<std::string> Step(Session& session, int max_count, const std::string& request_id,
                              double scale,
                              google::protobuf::RepeatedPtrField<v1::Response>* sent = nullptr) {
  v1::StimulusBatch batch;
  absl::Status next = session.Next(max_count, &batch);
  EXPECT_TRUE(next.ok()) << next;
  google::protobuf::RepeatedPtrField<v1::Response> responses;
  std::vector<std::string> pngs;
  for (const v1::Stimulus& s : batch.stimuli()) {
    pngs.push_back(s.png());
    const int64_t sequence = std::stoll(s.id().substr(s.id().rfind('-') + 1));
    const int presentations = sequence % 3 == 0 ? 2 : 1;
    for (int p = 0; p < presentations; ++p) {
      v1::Response* r = responses.Add();
      r->set_stimulus_id(s.id());
      if (sequence % 5 == 0 && p == 0) {
        r->set_skipped(true);
      } else {
        for (double rate : Rates(s.png(), scale * (p + 1))) r->add_rates(rate);
      }
    }
  }
  v1::ReportResponsesAck ack;
  absl::Status report = session.Report(request_id, responses, &ack);
  EXPECT_TRUE(report.ok()) << report;
  if (sent != nullptr) *sent = responses;
  return pngs;
}

TEST(SessionRestoreTest, RestoredSessionGoesOnExactlyAsTheOriginal) {
  auto store = SessionStore::Open(FreshDir("same"));
  ASSERT_TRUE(store.ok()) << store.status();
  // With repeats: chosen from the measurements and pooled by image, so the
  // restored session must choose and pool exactly the same.
  std::unique_ptr<Session> original = NewSession("orig", 11, store->get(), /*repeats=*/2);
  ASSERT_NE(original, nullptr);
  // Walk into the middle of generation 4 in uneven steps; leave 3 stimuli
  // handed out but unanswered.
  const int steps[] = {10, 4, 6, 3, 7, 10, 2};
  google::protobuf::RepeatedPtrField<v1::Response> sent_r3;
  for (size_t i = 0; i < std::size(steps); ++i) {
    Step(*original, steps[i], "r" + std::to_string(i), 1.0, i == 3 ? &sent_r3 : nullptr);
  }
  v1::StimulusBatch unanswered;
  ASSERT_TRUE(original->Next(3, &unanswered).ok());

  auto journaled = (*store)->LoadSession("orig");
  ASSERT_TRUE(journaled.ok()) << journaled.status();
  InMemoryJournal scratch;
  auto restored = Session::Restore(*journaled, &scratch);
  ASSERT_TRUE(restored.ok()) << restored.status();

  v1::Session a, b;
  original->Describe(/*with_images=*/true, &a);
  (*restored)->Describe(/*with_images=*/true, &b);
  EXPECT_EQ(a.SerializeAsString(), b.SerializeAsString());
  EXPECT_EQ(b.counts().pending(), 3);

  // A retried report gets its first ack from the restored session; its
  // request_id with other content is refused by both.
  v1::ReportResponsesAck first, retried;
  ASSERT_TRUE(original->Report("r3", sent_r3, &first).ok());
  ASSERT_TRUE((*restored)->Report("r3", sent_r3, &retried).ok());
  EXPECT_TRUE(retried.duplicate());
  EXPECT_EQ(first.SerializeAsString(), retried.SerializeAsString());
  google::protobuf::RepeatedPtrField<v1::Response> other;
  EXPECT_TRUE(absl::IsAlreadyExists(original->Report("r3", other, &first)));
  EXPECT_TRUE(absl::IsAlreadyExists((*restored)->Report("r3", other, &retried)));

  // The unanswered stimuli can be answered in both; then both go on alike.
  for (Session* s : {original.get(), restored->get()}) {
    google::protobuf::RepeatedPtrField<v1::Response> late;
    for (const v1::Stimulus& stimulus : unanswered.stimuli()) {
      v1::Response* r = late.Add();
      r->set_stimulus_id(stimulus.id());
      for (double rate : Rates(stimulus.png(), 0.5)) r->add_rates(rate);
    }
    v1::ReportResponsesAck ack;
    ASSERT_TRUE(s->Report("late", late, &ack).ok());
  }
  for (int i = 0; i < 6; ++i) {
    const std::string id = "after" + std::to_string(i);
    EXPECT_EQ(Step(*original, 4, id, 1.0), Step(**restored, 4, id, 1.0)) << "step " << i;
  }
  original->Describe(true, &a);
  (*restored)->Describe(true, &b);
  EXPECT_EQ(a.SerializeAsString(), b.SerializeAsString());
}

TEST(SessionRestoreTest, FreshSessionWithoutGenerationsRestores) {
  auto store = SessionStore::Open(FreshDir("fresh"));
  ASSERT_TRUE(store.ok());
  std::unique_ptr<Session> original = NewSession("f", 3, store->get());
  auto journaled = (*store)->LoadSession("f");
  ASSERT_TRUE(journaled.ok());
  InMemoryJournal scratch;
  auto restored = Session::Restore(*journaled, &scratch);
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(Step(*original, 0, "a", 1.0), Step(**restored, 0, "a", 1.0));
}

TEST(SessionRestoreTest, InconsistentJournalIsDataLossNotACrash) {
  auto store = SessionStore::Open(FreshDir("inconsistent"));
  ASSERT_TRUE(store.ok());
  std::unique_ptr<Session> original = NewSession("x", 3, store->get());
  Step(*original, 0, "a", 1.0);
  auto journaled = (*store)->LoadSession("x");
  ASSERT_TRUE(journaled.ok());
  InMemoryJournal scratch;

  JournaledSession bad_state = *journaled;
  bad_state.optimizer_state = "not an archive";
  EXPECT_TRUE(absl::IsDataLoss(Session::Restore(bad_state, &scratch).status()));

  JournaledSession bad_response = *journaled;
  bad_response.responses[0].stimulus_id = "x-999";
  EXPECT_TRUE(absl::IsDataLoss(Session::Restore(bad_response, &scratch).status()));

  JournaledSession bad_watermark = *journaled;
  bad_watermark.responses_told = 1000;
  EXPECT_TRUE(absl::IsDataLoss(Session::Restore(bad_watermark, &scratch).status()));
}

// A model-based session (real surrogate, tiny); refit_lag -1: the default.
// `warm_start` (the default): refits start from the previous version
// (models/trainer.h); false: every fit from scratch.
v1::SessionConfig ModelConfig(const std::string& optimizer, uint64_t seed, int refit_lag = -1,
                              bool warm_start = true) {
  v1::SessionConfig config = Config(seed);
  config.mutable_image()->set_height(16);
  config.mutable_image()->set_width(16);
  config.mutable_optimizer()->set_name(optimizer);
  auto& optimizer_params = *config.mutable_optimizer()->mutable_params();
  optimizer_params["prior_generations"] = 1;
  if (optimizer == "gradient_ascent") optimizer_params["steps"] = 5;
  if (optimizer == "adaptive_sampling") optimizer_params["pool_size"] = 50;
  auto& surrogate = *config.mutable_surrogate()->mutable_params();
  if (refit_lag >= 0) surrogate["refit_lag"] = refit_lag;
  surrogate["warm_start"] = warm_start ? 1 : 0;
  surrogate["ensemble_size"] = 2;
  surrogate["max_epochs"] = 3;
  surrogate["min_trials"] = 8;
  surrogate["gabor_scales"] = 1;
  surrogate["gabor_orientations"] = 4;
  config.set_generation_size(8);
  return config;
}

// Loads the session from the store until its newest model version was
// fitted on everything before the last generation (the refit requested then
// has finished and is journaled).
JournaledSession LoadWhenRefitJournaled(SessionStore& store, const std::string& id) {
  for (int attempt = 0; attempt < 6000; ++attempt) {
    auto journaled = store.LoadSession(id);
    EXPECT_TRUE(journaled.ok()) << journaled.status();
    if (!journaled.ok()) return {};
    if (!journaled->recent_models.empty() &&
        journaled->recent_models.back().num_trials == journaled->responses_told) {
      return *std::move(journaled);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ADD_FAILURE() << "the refit of the last generation never reached the store";
  return {};
}

// Refits warm-started (the default): version 3 starts from version 2, which
// the restored session reads back from the journal (or refits, when killed
// while it was fitting); and once with every fit from scratch.
TEST(SessionRestoreTest, ModelBasedSessionResumesWithTheModelAnUninterruptedRunUses) {
  struct Case {
    std::string optimizer;
    int lag;
    bool warm_start;
  };
  const Case cases[] = {{"gradient_ascent", 1, true}, {"gradient_ascent", 2, true},
                        {"adaptive_sampling", 1, true}, {"adaptive_sampling", 2, true},
                        {"gradient_ascent", 1, false}};
  for (const Case& c : cases) {
    const std::string& optimizer = c.optimizer;
    const int lag = c.lag;
    SCOPED_TRACE(optimizer + " lag " + std::to_string(lag) + (c.warm_start ? "" : " scratch"));
    auto store = SessionStore::Open(FreshDir("model-" + optimizer + std::to_string(lag) +
                                             (c.warm_start ? "" : "-scratch")));
    ASSERT_TRUE(store.ok()) << store.status();
    auto resolved = ResolveConfig(ModelConfig(optimizer, 5, lag, c.warm_start));
    ASSERT_TRUE(resolved.ok()) << resolved.status();
    auto created = Session::Create("m", *std::move(resolved), absl::Now(), store->get());
    ASSERT_TRUE(created.ok()) << created.status();
    Session& original = **created;

    // Generations 1 and 2, answered; committing generation 3 requests
    // version 2 (lag 1: generation 3 used version 1, fitted on generation 1).
    Step(original, 8, "g1", 1.0);
    Step(original, 8, "g2", 1.0);
    const JournaledSession before = LoadWhenRefitJournaled(**store, "m");
    ASSERT_FALSE(HasFatalFailure());
    ASSERT_FALSE(before.recent_models.empty());
    Step(original, 3, "g3a", 1.0);  // proposes generation 3, answers 3 of it
    const JournaledSession after = LoadWhenRefitJournaled(**store, "m");
    ASSERT_FALSE(HasFatalFailure());
    ASSERT_EQ(after.generation, 3);
    ASSERT_EQ(after.recent_models.back().version, before.recent_models.back().version + 1);

    // The original goes on: the rest of generation 3 and two more
    // generations.
    const int steps[] = {5, 8, 8};
    std::vector<std::vector<std::string>> expected;
    for (size_t i = 0; i < std::size(steps); ++i) {
      expected.push_back(Step(original, steps[i], "after" + std::to_string(i), 1.0));
    }
    // Without images: the optimizer's best-guess image comes from the version
    // the newest Ask was assigned, which depends on whether the background
    // Ask of the next generation has started.
    v1::Session original_end;
    original.Describe(/*with_images=*/false, &original_end);

    // Killed after version 2 reached the store, or while it was fitting:
    // either way the restored session goes on exactly as the original did.
    JournaledSession while_fitting = after;
    while_fitting.recent_models = before.recent_models;
    const std::vector<const JournaledSession*> crashes = {&after, &while_fitting};
    for (const JournaledSession* journaled : crashes) {
      SCOPED_TRACE(journaled == &after ? "version 2 journaled" : "version 2 fitting");
      InMemoryJournal scratch;
      auto restored = Session::Restore(*journaled, &scratch);
      ASSERT_TRUE(restored.ok()) << restored.status();
      for (size_t i = 0; i < std::size(steps); ++i) {
        EXPECT_EQ(Step(**restored, steps[i], "after" + std::to_string(i), 1.0), expected[i])
            << "step " << i;
      }
      v1::Session restored_end;
      (*restored)->Describe(/*with_images=*/false, &restored_end);
      EXPECT_EQ(restored_end.DebugString(), original_end.DebugString());
    }
  }
}

TEST(SessionRestoreTest, ModelBasedSessionWithAValidationBlockResumesExactly) {
  auto store = SessionStore::Open(FreshDir("validation"));
  ASSERT_TRUE(store.ok()) << store.status();
  auto resolved = ResolveConfig(ModelConfig("gradient_ascent", 6));
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  auto created = Session::Create("v", *std::move(resolved), absl::Now(), store->get());
  ASSERT_TRUE(created.ok()) << created.status();
  Session& original = **created;
  Step(original, 8, "g1", 1.0);
  Step(original, 8, "g2", 1.0);  // generation 3 is being asked in the background

  // The block replaces generation 3 (the background Ask is undone); the
  // model's optimum joins the two leading images.
  v1::ValidationBlock block;
  block.set_candidates(2);
  block.set_presentations(3);
  block.set_include_best_guess(true);
  v1::StimulusBatch validation;
  ASSERT_TRUE(original.Validate(block, 0, &validation).ok());
  ASSERT_EQ(validation.generation(), 3);
  ASSERT_EQ(validation.stimuli_size(), 9);
  google::protobuf::RepeatedPtrField<v1::Response> responses;
  for (const v1::Stimulus& s : validation.stimuli()) {
    EXPECT_EQ(s.origin(), "validation");
    v1::Response* r = responses.Add();
    r->set_stimulus_id(s.id());
    for (double rate : Rates(s.png(), 1.0)) r->add_rates(rate);
  }
  v1::ReportResponsesAck ack;
  ASSERT_TRUE(original.Report("block", responses, &ack).ok());
  const JournaledSession journaled = LoadWhenRefitJournaled(**store, "v");
  ASSERT_FALSE(HasFatalFailure());
  ASSERT_EQ(journaled.generation, 3);

  // Both go on alike: the optimizer's next generations, ids after the block.
  InMemoryJournal scratch;
  auto restored = Session::Restore(journaled, &scratch);
  ASSERT_TRUE(restored.ok()) << restored.status();
  v1::Session a, b;
  original.Describe(/*with_images=*/false, &a);
  (*restored)->Describe(/*with_images=*/false, &b);
  EXPECT_EQ(a.DebugString(), b.DebugString());
  for (int i = 0; i < 2; ++i) {
    const std::string id = "after" + std::to_string(i);
    EXPECT_EQ(Step(original, 8, id, 1.0), Step(**restored, 8, id, 1.0)) << "step " << i;
  }
  v1::StimulusBatch next;
  ASSERT_TRUE(original.Next(1, &next).ok());
  EXPECT_EQ(next.generation(), 6);
  EXPECT_EQ(next.stimuli(0).origin(), "gradient_ascent");
  EXPECT_EQ(next.stimuli(0).id(), "v-" + std::to_string(8 + 8 + 9 + 8 + 8 + 1));
}

// Asks for one generation of `session` and answers all of it; returns the
// model version of each stimulus the optimizer proposed (references,
// repeats and prior draws left out).
std::vector<int64_t> StepVersions(Session& session, const std::string& optimizer,
                                  const std::string& request_id) {
  v1::StimulusBatch batch;
  absl::Status next = session.Next(0, &batch);
  EXPECT_TRUE(next.ok()) << next;
  google::protobuf::RepeatedPtrField<v1::Response> responses;
  std::vector<int64_t> versions;
  for (const v1::Stimulus& s : batch.stimuli()) {
    if (s.origin() == optimizer) versions.push_back(s.model_version());
    v1::Response* r = responses.Add();
    r->set_stimulus_id(s.id());
    for (double rate : Rates(s.png(), 1.0)) r->add_rates(rate);
  }
  v1::ReportResponsesAck ack;
  absl::Status report = session.Report(request_id, responses, &ack);
  EXPECT_TRUE(report.ok()) << report;
  return versions;
}

// Sessions journaled before the fixed-lag pipeline name refit_sync or
// refit_cancel, which CreateSession now rejects: they restore all the same,
// under today's pipeline, and go on refitting.
TEST(SessionRestoreTest, ASessionJournaledWithRemovedRefitParamsRestores) {
  auto store = SessionStore::Open(FreshDir("removed-params"));
  ASSERT_TRUE(store.ok()) << store.status();
  v1::SessionConfig with_removed = ModelConfig("gradient_ascent", 6);
  (*with_removed.mutable_surrogate()->mutable_params())["refit_sync"] = 0;
  // A new session with a removed key is refused when its config is resolved.
  auto rejected = ResolveConfig(with_removed);
  ASSERT_EQ(rejected.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(
      rejected.status().message().find("config.surrogate.params.refit_sync: no longer exists"),
      std::string::npos)
      << rejected.status();
  auto resolved = ResolveConfig(ModelConfig("gradient_ascent", 6));
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  JournaledSession crashed;
  {
    auto original = Session::Create("a", *std::move(resolved), absl::Now(), store->get());
    ASSERT_TRUE(original.ok()) << original.status();
    StepVersions(**original, "gradient_ascent", "g1");
    StepVersions(**original, "gradient_ascent", "g2");
    crashed = LoadWhenRefitJournaled(**store, "a");
    ASSERT_FALSE(HasFatalFailure());
  }
  auto& params = *crashed.config.mutable_surrogate()->mutable_params();
  params["refit_sync"] = 0;
  params["refit_cancel"] = 1;
  InMemoryJournal scratch;
  auto restored = Session::Restore(crashed, &scratch);
  ASSERT_TRUE(restored.ok()) << restored.status();
  StepVersions(**restored, "gradient_ascent", "r0");
  const std::vector<int64_t> versions = StepVersions(**restored, "gradient_ascent", "r1");
  ASSERT_FALSE(versions.empty());
  for (int64_t version : versions) EXPECT_GE(version, 1);
}

TEST(SessionStoreConcurrencyTest, SixteenSessionsJournalingAtOnceLoseAndMixNothing) {
  constexpr int kSessions = 16;
  constexpr int kSteps = 8;
  auto store = SessionStore::Open(FreshDir("sixteen"));
  ASSERT_TRUE(store.ok());
  std::vector<std::unique_ptr<Session>> sessions;
  for (int i = 0; i < kSessions; ++i) {
    sessions.push_back(NewSession("s" + std::to_string(i), 100 + i, store->get()));
    ASSERT_NE(sessions.back(), nullptr);
  }
  std::vector<std::vector<std::string>> seen(kSessions);
  std::vector<std::thread> threads;
  for (int i = 0; i < kSessions; ++i) {
    threads.emplace_back([&, i] {
      for (int step = 0; step < kSteps; ++step) {
        // Each session reports its own scale on neuron 2: a mixed-up row
        // would show another session's scale.
        for (std::string& png : Step(*sessions[i], 5, "r" + std::to_string(step), i + 1.0)) {
          seen[i].push_back(std::move(png));
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();

  for (int i = 0; i < kSessions; ++i) {
    const std::string id = "s" + std::to_string(i);
    auto journaled = (*store)->LoadSession(id);
    ASSERT_TRUE(journaled.ok()) << journaled.status();
    ASSERT_EQ(journaled->stimuli.size(), 40u) << id;  // 8 steps of 5 = 4 generations
    for (size_t k = 0; k < seen[i].size(); ++k) {
      EXPECT_EQ(journaled->stimuli[k].entry.png, seen[i][k]) << id << " stimulus " << k;
      EXPECT_TRUE(journaled->stimuli[k].handed_out);
    }
    EXPECT_EQ(journaled->acks.size(), static_cast<size_t>(kSteps));
    int64_t responses = 0;
    for (const ResponseEntry& r : journaled->responses) {
      EXPECT_EQ(r.stimulus_id.substr(0, id.size() + 1), id + "-");
      if (r.skipped) continue;
      ++responses;
      const size_t k = std::stoul(r.stimulus_id.substr(id.size() + 1)) - 1;
      const std::vector<double> once = Rates(seen[i][k], i + 1.0);
      const std::vector<double> twice = Rates(seen[i][k], 2 * (i + 1.0));
      EXPECT_TRUE(r.rates == once || r.rates == twice) << id << " " << r.stimulus_id;
    }
    v1::Session described;
    sessions[i]->Describe(false, &described);
    EXPECT_EQ(responses, described.counts().responses()) << id;

    InMemoryJournal scratch;
    auto restored = Session::Restore(*journaled, &scratch);
    ASSERT_TRUE(restored.ok()) << restored.status();
    v1::Session again;
    (*restored)->Describe(false, &again);
    EXPECT_EQ(again.SerializeAsString(), described.SerializeAsString()) << id;
  }
}

}  // namespace
}  // namespace stimloop
