// Imperfect trials (issue 6): every optimizer goes on when a generation is
// answered partly, late, out of order, with repeats, or with skipped trials.
// Semantics (proto/stimloop/v1/stimloop.proto, optimizers/*.h): repeats are
// averaged; unanswered candidates are dropped (or the generation re-bred);
// a late answer reaches the optimizer at the next generation boundary.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "server/session.h"
#include "server/session_manager.h"

namespace stimloop {
namespace {

class ImperfectTrialsTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    v1::SessionConfig config;
    config.mutable_image()->set_height(16);
    config.mutable_image()->set_width(16);
    config.set_num_neurons(1);
    config.mutable_optimizer()->set_name(GetParam());
    config.mutable_image_space()->set_name("spectral");
    config.set_generation_size(6);
    config.set_seed(4);
    auto session = manager_.Create(config);
    ASSERT_TRUE(session.ok()) << session.status();
    session_ = *session;
  }

  v1::StimulusBatch Next() {
    v1::StimulusBatch batch;
    absl::Status s = session_->Next(0, &batch);
    EXPECT_TRUE(s.ok()) << s;
    return batch;
  }

  // Reports (stimulus index in `batch`, rate or -1 for skipped) in order.
  v1::ReportResponsesAck Report(const v1::StimulusBatch& batch,
                                const std::vector<std::pair<int, double>>& items) {
    google::protobuf::RepeatedPtrField<v1::Response> responses;
    for (const auto& [index, rate] : items) {
      v1::Response* r = responses.Add();
      r->set_stimulus_id(batch.stimuli(index).id());
      if (rate < 0) {
        r->set_skipped(true);
      } else {
        r->add_rates(rate);
      }
    }
    v1::ReportResponsesAck ack;
    absl::Status s = session_->Report("r" + std::to_string(++reports_), responses, &ack);
    EXPECT_TRUE(s.ok()) << s;
    return ack;
  }

  v1::Session Describe() {
    v1::Session out;
    session_->Describe(false, &out);
    return out;
  }

  InMemoryJournal journal_;
  SessionManager manager_{&journal_, 1};
  std::shared_ptr<Session> session_;
  int reports_ = 0;
};

TEST_P(ImperfectTrialsTest, PartlyAnsweredGeneration) {
  v1::StimulusBatch g1 = Next();
  Report(g1, {{0, 10}, {2, 20}});  // 4 of 6 unanswered (aborted trials)
  v1::StimulusBatch g2 = Next();
  EXPECT_EQ(g2.generation(), 2);
  EXPECT_EQ(g2.stimuli_size(), 6);
  EXPECT_EQ(Describe().counts().pending(), 4 + 6);
}

TEST_P(ImperfectTrialsTest, WholeGenerationUnanswered) {
  Next();
  v1::StimulusBatch g2 = Next();
  v1::StimulusBatch g3 = Next();
  EXPECT_EQ(g3.generation(), 3);
  Report(g3, {{1, 5}});
  EXPECT_EQ(Next().generation(), 4);
}

TEST_P(ImperfectTrialsTest, LateAnswerAfterTheNextGeneration) {
  v1::StimulusBatch g1 = Next();
  Report(g1, {{0, 1}, {1, 2}});
  v1::StimulusBatch g2 = Next();
  Report(g1, {{5, 40}});  // a generation-1 trial arrives late
  Report(g2, {{0, 3}});
  EXPECT_EQ(Next().generation(), 3);
  v1::Session s = Describe();
  EXPECT_EQ(s.best_measured().stimulus().id(), g1.stimuli(5).id());
  EXPECT_EQ(s.counts().responses(), 4);
}

TEST_P(ImperfectTrialsTest, OutOfOrderReports) {
  v1::StimulusBatch g1 = Next();
  Report(g1, {{5, 1}, {3, 9}, {0, 2}});
  Report(g1, {{4, 3}, {1, 4}, {2, 1}});
  EXPECT_EQ(Describe().counts().pending(), 0);
  EXPECT_EQ(Describe().best_measured().stimulus().id(), g1.stimuli(3).id());
  EXPECT_EQ(Next().generation(), 2);
}

TEST_P(ImperfectTrialsTest, RepeatedPresentationsAreAveraged) {
  v1::StimulusBatch g1 = Next();
  Report(g1, {{2, 30}, {2, 0}, {2, 30}, {4, 15}});
  Report(g1, {{4, 35}});  // a repeat in a later report
  v1::Session s = Describe();
  // Means: stimulus 2 (30 + 0 + 30) / 3 = 20; stimulus 4 (15 + 35) / 2 = 25.
  EXPECT_EQ(s.best_measured().stimulus().id(), g1.stimuli(4).id());
  EXPECT_DOUBLE_EQ(s.best_measured().mean_objective(), 25.0);
  EXPECT_EQ(s.best_measured().presentations(), 2);
  EXPECT_EQ(Next().generation(), 2);
}

TEST_P(ImperfectTrialsTest, SkippedTrialsThenAnsweredLater) {
  v1::StimulusBatch g1 = Next();
  v1::ReportResponsesAck ack = Report(g1, {{0, -1}, {1, -1}, {2, 7}});
  EXPECT_EQ(ack.counts().skipped(), 2);
  EXPECT_EQ(ack.counts().pending(), 3);
  v1::StimulusBatch g2 = Next();
  Report(g1, {{0, 12}});  // the skipped stimulus is shown again and answered
  EXPECT_EQ(Describe().best_measured().stimulus().id(), g1.stimuli(0).id());
  EXPECT_EQ(Next().generation(), 3);
}

INSTANTIATE_TEST_SUITE_P(EveryOptimizer, ImperfectTrialsTest,
                         ::testing::Values("random", "genetic", "cmaes", "gradient_ascent",
                                           "adaptive_sampling"));

}  // namespace
}  // namespace stimloop
