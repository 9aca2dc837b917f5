// The session's validation block (ValidationBlock in the proto): which
// images it re-shows and in what order, how it settles best_measured, that
// the optimizer goes on after it, and a clear error for every bad request.
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "server/session.h"
#include "server/session_manager.h"

namespace stimloop {
namespace {

v1::SessionConfig Config(const std::string& optimizer, uint64_t seed = 1) {
  v1::SessionConfig config;
  config.mutable_image()->set_height(16);
  config.mutable_image()->set_width(16);
  config.set_num_neurons(1);
  config.mutable_optimizer()->set_name(optimizer);
  config.mutable_image_space()->set_name("spectral");
  config.set_generation_size(6);
  config.set_seed(seed);
  return config;
}

// gradient_ascent with the smallest surrogate that fits, sync refits (runs
// replay exactly), fitting from 8 trials on.
v1::SessionConfig TinyModelConfig(uint64_t seed) {
  v1::SessionConfig config = Config("gradient_ascent", seed);
  auto& surrogate = *config.mutable_surrogate()->mutable_params();
  surrogate["ensemble_size"] = 1;
  surrogate["max_epochs"] = 1;
  surrogate["min_trials"] = 8;
  surrogate["gabor_scales"] = 1;
  surrogate["gabor_orientations"] = 2;
  return config;
}

v1::ValidationBlock Block(int candidates, int presentations, bool best_guess = false) {
  v1::ValidationBlock block;
  block.set_candidates(candidates);
  block.set_presentations(presentations);
  block.set_include_best_guess(best_guess);
  return block;
}

// One response per stimulus of `batch`, of rate(stimulus).
google::protobuf::RepeatedPtrField<v1::Response> Rated(
    const v1::StimulusBatch& batch, const std::function<double(const v1::Stimulus&)>& rate) {
  google::protobuf::RepeatedPtrField<v1::Response> out;
  for (const v1::Stimulus& s : batch.stimuli()) {
    v1::Response* r = out.Add();
    r->set_stimulus_id(s.id());
    r->add_rates(rate(s));
  }
  return out;
}

class ValidationBlockTest : public ::testing::Test {
 protected:
  std::shared_ptr<Session> Create(const v1::SessionConfig& config) {
    auto session = manager_.Create(config);
    EXPECT_TRUE(session.ok()) << session.status();
    return session.ok() ? *session : nullptr;
  }
  // Generation 1 handed out, stimulus i answered with rate i.
  v1::StimulusBatch FirstGeneration(Session& session) {
    v1::StimulusBatch g1;
    EXPECT_TRUE(session.Next(0, &g1).ok());
    std::map<std::string, double> rate;
    for (int i = 0; i < g1.stimuli_size(); ++i) rate[g1.stimuli(i).id()] = i;
    v1::ReportResponsesAck ack;
    EXPECT_TRUE(
        session.Report("g1", Rated(g1, [&](const v1::Stimulus& s) { return rate[s.id()]; }), &ack)
            .ok());
    return g1;
  }

  InMemoryJournal journal_;
  SessionManager manager_{&journal_, 4};
};

TEST_F(ValidationBlockTest, BlockReShowsTheLeadingImagesInRoundsAndSettlesTheBest) {
  auto session = Create(Config("random"));
  const v1::StimulusBatch g1 = FirstGeneration(*session);
  const std::string& first = g1.stimuli(5).png();   // measured 5
  const std::string& second = g1.stimuli(4).png();  // measured 4

  v1::StimulusBatch block;
  ASSERT_TRUE(session->Validate(Block(2, 3), 0, &block).ok());
  EXPECT_EQ(block.generation(), 2);
  EXPECT_EQ(block.remaining(), 0);
  ASSERT_EQ(block.stimuli_size(), 6);
  for (int round = 0; round < 3; ++round) {
    std::set<std::string> shown;
    for (int k = 0; k < 2; ++k) {
      const v1::Stimulus& s = block.stimuli(2 * round + k);
      EXPECT_EQ(s.origin(), "validation");
      EXPECT_FALSE(s.is_reference());
      shown.insert(s.png());
    }
    EXPECT_EQ(shown, (std::set<std::string>{first, second})) << "round " << round;
  }

  // The leader was lucky: 5 then 0, 0, 0 (mean 1.25). The second: 4 then
  // 2, 2, 2 (mean 2.5), below the unvalidated image measured 3 once, which
  // no longer competes.
  v1::ReportResponsesAck ack;
  ASSERT_TRUE(session
                  ->Report("block",
                           Rated(block, [&](const v1::Stimulus& s) {
                             return s.png() == first ? 0.0 : 2.0;
                           }),
                           &ack)
                  .ok());
  v1::Session described;
  session->Describe(/*with_images=*/false, &described);
  EXPECT_EQ(described.best_measured().stimulus().id(), g1.stimuli(4).id());
  EXPECT_EQ(described.best_measured().presentations(), 4);
  EXPECT_DOUBLE_EQ(described.best_measured().mean_objective(), 2.5);

  v1::SessionStats stats;
  session->Stats(&stats);
  EXPECT_EQ(stats.generations(1).stimuli(), 0) << "the block holds no proposals";

  // The optimizer heard nothing of the block's ids and goes on.
  v1::StimulusBatch g3;
  ASSERT_TRUE(session->Next(0, &g3).ok());
  EXPECT_EQ(g3.generation(), 3);
  ASSERT_EQ(g3.stimuli_size(), 6);
  EXPECT_EQ(g3.stimuli(0).origin(), "random");
}

TEST_F(ValidationBlockTest, RoundOrderComesFromTheSeed) {
  auto order = [&](uint64_t seed) {
    auto session = Create(Config("random", seed));
    FirstGeneration(*session);
    v1::StimulusBatch block;
    EXPECT_TRUE(session->Validate(Block(4, 5), 0, &block).ok());
    std::map<std::string, int> label;  // image -> order of first appearance
    std::vector<int> out;
    for (const v1::Stimulus& s : block.stimuli()) {
      out.push_back(label.emplace(s.png(), static_cast<int>(label.size())).first->second);
    }
    return out;
  };
  const std::vector<int> a = order(7);
  ASSERT_EQ(a.size(), 20u);
  EXPECT_EQ(order(7), a);
  // Not one fixed order repeated (1 chance in 24^4 for a random draw).
  EXPECT_NE(std::vector<int>(a.begin(), a.begin() + 4), std::vector<int>(a.begin() + 4, a.begin() + 8));
}

TEST_F(ValidationBlockTest, BestGuessJoinsTheBlock) {
  auto session = Create(Config("cmaes"));  // its guess: the distribution mean
  const v1::StimulusBatch g1 = FirstGeneration(*session);
  v1::StimulusBatch block;
  ASSERT_TRUE(session->Validate(Block(1, 2, /*best_guess=*/true), 0, &block).ok());
  v1::Session described;
  session->Describe(/*with_images=*/true, &described);
  ASSERT_FALSE(described.optimizer_best_png().empty());
  std::multiset<std::string> shown;
  for (const v1::Stimulus& s : block.stimuli()) shown.insert(s.png());
  EXPECT_EQ(shown, (std::multiset<std::string>{g1.stimuli(5).png(), g1.stimuli(5).png(),
                                               described.optimizer_best_png(),
                                               described.optimizer_best_png()}));
}

TEST_F(ValidationBlockTest, BadRequestsNameTheFieldAndChangeNothing) {
  auto session = Create(Config("random"));
  FirstGeneration(*session);
  struct Case {
    v1::ValidationBlock block;
    int max_count;
    std::string message;
  };
  const Case cases[] = {
      {Block(-1, 0), 0, "validation.candidates: -1 is outside [0, 100]"},
      {Block(101, 0), 0, "validation.candidates: 101 is outside [0, 100]"},
      {Block(0, -2), 0, "validation.presentations: -2 is outside [0, 1000]"},
      {Block(0, 1001), 0, "validation.presentations: 1001 is outside [0, 1000]"},
      {Block(100, 101), 0,
       "validation: 100 images x 101 presentations is more than 10000 stimuli"},
      {Block(100, 100, true), 0,
       "validation: 101 images x 100 presentations is more than 10000 stimuli"},
      {Block(0, 0), 1001, "max_count: 1001 is outside [0, 1000]"},
  };
  for (const Case& c : cases) {
    v1::StimulusBatch batch;
    absl::Status s = session->Validate(c.block, c.max_count, &batch);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.message;
    EXPECT_EQ(std::string(s.message()), c.message);
    EXPECT_EQ(batch.stimuli_size(), 0);
  }
  v1::Session described;
  session->Describe(/*with_images=*/false, &described);
  EXPECT_EQ(described.counts().generations(), 1);
  EXPECT_EQ(described.counts().stimuli(), 6);
}

TEST_F(ValidationBlockTest, BlockWaitsForABoundaryAMeasurementAndAGuess) {
  auto expect_precondition = [](const absl::Status& s, const std::string& message) {
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
    EXPECT_EQ(std::string(s.message()), message);
  };
  auto session = Create(Config("random"));
  v1::StimulusBatch batch;
  expect_precondition(session->Validate(Block(0, 0), 0, &batch),
                      "validation: no response yet, nothing to validate");
  FirstGeneration(*session);
  ASSERT_TRUE(session->Next(4, &batch).ok());  // generation 2, 2 left
  expect_precondition(session->Validate(Block(0, 0), 0, &batch),
                      "validation: 2 stimuli of generation 2 are not handed out yet; a "
                      "validation block starts at a generation boundary");
  ASSERT_TRUE(session->Next(0, &batch).ok());
  expect_precondition(session->Validate(Block(0, 0, /*best_guess=*/true), 0, &batch),
                      "validation.include_best_guess: optimizer 'random' holds no best guess "
                      "(random and genetic never do, the model-based optimizers from their "
                      "first model version on)");
  v1::StimulusBatch block;
  ASSERT_TRUE(session->Validate(Block(0, 0), 0, &block).ok());
  EXPECT_EQ(block.stimuli_size(), 5 * 20) << "defaults: 5 candidates x 20 presentations";
  ASSERT_TRUE(session->Close().ok());
  expect_precondition(session->Validate(Block(0, 0), 0, &batch),
                      "session_id: '" + session->id() + "' is closed");
}

TEST_F(ValidationBlockTest, FewerCandidatesWhenFewerImagesWereMeasured) {
  auto session = Create(Config("random"));
  v1::StimulusBatch g1;
  ASSERT_TRUE(session->Next(0, &g1).ok());
  v1::ReportResponsesAck ack;
  google::protobuf::RepeatedPtrField<v1::Response> one;
  v1::Response* r = one.Add();
  r->set_stimulus_id(g1.stimuli(2).id());
  r->add_rates(3);
  ASSERT_TRUE(session->Report("one", one, &ack).ok());
  v1::StimulusBatch block;
  ASSERT_TRUE(session->Validate(Block(5, 4), 0, &block).ok());
  ASSERT_EQ(block.stimuli_size(), 4);
  for (const v1::Stimulus& s : block.stimuli()) EXPECT_EQ(s.png(), g1.stimuli(2).png());
}

TEST_F(ValidationBlockTest, APreparedAskTheBlockSupersedesLeavesNoTrace) {
  // gradient_ascent drawing from its prior all along (images that depend on
  // its generator only), its next generation asked in the background.
  v1::SessionConfig config = TinyModelConfig(9);
  (*config.mutable_optimizer()->mutable_params())["prior_generations"] = 100;
  auto pngs = [](const v1::StimulusBatch& batch) {
    std::vector<std::string> out;
    for (const v1::Stimulus& s : batch.stimuli()) out.push_back(s.png());
    return out;
  };
  v1::ReportResponsesAck ack;
  auto answer = [&](Session& session, const v1::StimulusBatch& batch, const std::string& id) {
    ASSERT_TRUE(session.Report(id, Rated(batch, [](const v1::Stimulus&) { return 1.0; }), &ack)
                    .ok());
  };

  auto plain = Create(config);
  FirstGeneration(*plain);
  v1::StimulusBatch plain_g2;
  ASSERT_TRUE(plain->Next(0, &plain_g2).ok());

  auto validated = Create(config);
  FirstGeneration(*validated);
  v1::StimulusBatch block, after_block;
  ASSERT_TRUE(validated->Validate(Block(2, 2), 0, &block).ok());
  answer(*validated, block, "block");
  ASSERT_TRUE(validated->Next(0, &after_block).ok());
  ASSERT_EQ(after_block.generation(), 3);
  EXPECT_EQ(after_block.stimuli(0).id(), validated->id() + "-" + std::to_string(6 + 4 + 1));
  // The optimizer proposes what it would have proposed without the block:
  // the Ask prepared for the generation the block took left no trace.
  EXPECT_EQ(pngs(after_block), pngs(plain_g2));
}

// Keeps the metrics of every model version fitted.
class MetricsJournal : public InMemoryJournal {
 public:
  absl::Status ModelVersionFitted(const std::string&, int64_t version,
                                  const std::map<std::string, double>& metrics,
                                  const std::string&) override {
    std::lock_guard<std::mutex> lock(mu_);
    metrics_[version] = metrics;
    return absl::OkStatus();
  }
  std::map<int64_t, std::map<std::string, double>> metrics() const {
    std::lock_guard<std::mutex> lock(mu_);
    return metrics_;
  }

 private:
  mutable std::mutex mu_;
  std::map<int64_t, std::map<std::string, double>> metrics_;
};

TEST(SessionSurrogateDataTest, EveryPresentationOfAnImageIsOneStimulusToTheFit) {
  MetricsJournal journal;
  SessionManager manager(&journal, 1);
  auto session = manager.Create(TinyModelConfig(4));
  ASSERT_TRUE(session.ok()) << session.status();
  v1::ReportResponsesAck ack;
  auto show_all = [&](const v1::StimulusBatch& batch, const std::string& id) {
    ASSERT_TRUE((*session)
                    ->Report(id, Rated(batch, [](const v1::Stimulus&) { return 2.0; }), &ack)
                    .ok());
  };
  v1::StimulusBatch g1, block, g3, g4;
  ASSERT_TRUE((*session)->Next(0, &g1).ok());
  show_all(g1, "g1");
  // 2 of generation 1's 6 images, 3 more times each: 6 trials, 0 new images.
  ASSERT_TRUE((*session)->Validate(Block(2, 3), 0, &block).ok());
  show_all(block, "block");
  ASSERT_TRUE((*session)->Next(0, &g3).ok());  // requests a refit on 12 trials
  show_all(g3, "g3");
  ASSERT_TRUE((*session)->Next(0, &g4).ok());  // waits for it (sync)
  bool seen = false;
  for (const auto& [version, metrics] : journal.metrics()) {
    if (metrics.at("num_trials") != 12) continue;
    seen = true;
    EXPECT_EQ(metrics.at("num_stimuli"), 6) << "12 trials of 6 images";
  }
  EXPECT_TRUE(seen) << "no version was fitted on generation 1 and the block";
}

}  // namespace
}  // namespace stimloop
