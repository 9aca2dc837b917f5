// The inspection statistics and the report on a hand-made SessionData with
// known numbers: model versions, predictions, reference images, repeats.
#include "clients/inspect/session_stats.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "absl/strings/match.h"
#include "clients/inspect/report_html.h"
#include "clients/inspect/text_views.h"

namespace stimloop {
namespace inspect {
namespace {

StoredStimulus Stim(int sequence, int generation, double predicted, int64_t model,
                    bool reference = false) {
  StoredStimulus s;
  s.id = "s-" + std::to_string(sequence);
  s.sequence = sequence;
  s.generation = generation;
  s.origin = reference ? "reference" : "gradient_ascent";
  s.is_reference = reference;
  s.png = "png-" + std::to_string(sequence);  // distinct images
  s.model_version = model;
  s.predicted_objective = predicted;
  return s;
}

StoredResponse Resp(int sequence, double rate0, double rate1) {
  StoredResponse r;
  r.stimulus_id = "s-" + std::to_string(sequence);
  r.rates = {rate0, rate1};
  return r;
}

// Two neurons, objective = r0 + 2 r1; generation 1 unmodelled, generation 2
// proposed by model version 1 with predictions.
SessionData MakeData() {
  SessionData data;
  data.summary.id = "abc<&>";
  data.summary.optimizer = "gradient_ascent";
  data.config.set_num_neurons(2);
  data.config.mutable_objective()->mutable_weighted_sum()->add_weights(1);
  data.config.mutable_objective()->mutable_weighted_sum()->add_weights(2);
  const double nan = std::nan("");
  data.stimuli = {Stim(1, 1, nan, 0),      Stim(2, 1, nan, 0), Stim(3, 1, nan, 0, true),
                  Stim(4, 2, 1, 1),        Stim(5, 2, 2, 1),   Stim(6, 2, 3, 1),
                  Stim(7, 2, nan, 1, true)};
  data.responses = {Resp(1, 1, 0), Resp(1, 3, 0),  // s-1: 1, 3 -> mean 2
                    Resp(2, 0, 2),                 // s-2: 4
                    Resp(3, 6, 0),                 // reference gen 1: 6
                    Resp(4, 1, 0), Resp(5, 2, 0),
                    Resp(6, 5, 0), Resp(7, 2, 0)};  // reference gen 2: 2
  StoredResponse skipped;
  skipped.stimulus_id = "s-6";
  skipped.skipped = true;
  data.responses.push_back(skipped);
  data.model_versions = {{1, absl::UnixEpoch(), R"({"heldout_r": 0.61})"},
                         {2, absl::UnixEpoch(),
                          R"({"heldout_correlation.0": 0.4, "heldout_correlation.1": "NaN",
                              "heldout_correlation.2": 0.8})"}};
  return data;
}

TEST(SessionStatsTest, SummarizesGenerationsPredictionsAndReferences) {
  const SessionData data = MakeData();
  auto stats = ComputeStats(data);
  ASSERT_TRUE(stats.ok()) << stats.status();
  ASSERT_EQ(stats->generations.size(), 2u);
  const GenerationStats& g1 = stats->generations[0];
  EXPECT_EQ(g1.stimuli, 2);
  EXPECT_EQ(g1.presentations, 3);
  EXPECT_DOUBLE_EQ(g1.mean_objective, 3);  // (2 + 4) / 2
  EXPECT_DOUBLE_EQ(g1.max_objective, 4);
  EXPECT_DOUBLE_EQ(g1.reference_mean, 6);
  EXPECT_EQ(g1.predicted, 0);
  EXPECT_EQ(g1.model_version, 0);
  const GenerationStats& g2 = stats->generations[1];
  EXPECT_DOUBLE_EQ(g2.max_objective, 5);
  EXPECT_DOUBLE_EQ(g2.best_so_far, 5);
  EXPECT_DOUBLE_EQ(stats->generations[0].best_so_far, 4);
  EXPECT_EQ(g2.predicted, 3);
  EXPECT_DOUBLE_EQ(g2.mean_predicted, 2);
  EXPECT_DOUBLE_EQ(g2.mean_measured_of_predicted, 8.0 / 3);
  EXPECT_NEAR(g2.predicted_measured_r, 0.9607689228, 1e-9);  // r([1,2,3],[1,2,5])
  EXPECT_EQ(g2.model_version, 1);
  EXPECT_DOUBLE_EQ(g2.reference_mean, 2);
  EXPECT_EQ(stats->stimuli[5].skipped, 1);

  ASSERT_EQ(stats->models.size(), 2u);
  EXPECT_DOUBLE_EQ(HeldoutCorrelationOf(*stats, 1), 0.61);
  EXPECT_DOUBLE_EQ(HeldoutCorrelationOf(*stats, 2), 0.6);  // NaN neuron left out
  EXPECT_TRUE(std::isnan(HeldoutCorrelationOf(*stats, 3)));
  EXPECT_TRUE(std::isnan(HeldoutCorrelation("not json")));

  auto top = TopStimuli(*stats, 2);
  ASSERT_EQ(top.size(), 2u);
  EXPECT_EQ(top[0]->stimulus->id, "s-6");
  EXPECT_EQ(top[1]->stimulus->id, "s-2");  // 4
}

TEST(SessionStatsTest, RepeatsPoolWithTheImageTheyShowAndStayOutOfGenerationStats) {
  SessionData data = MakeData();
  // s-8 in generation 2 re-shows s-2's image and measures 1: pooled, s-2's
  // image has (4 + 1) / 2 = 2.5, still second to s-6 (5), before s-1 (2).
  StoredStimulus repeat = Stim(8, 2, std::nan(""), 1);
  repeat.origin = "repeat";
  repeat.png = data.stimuli[1].png;
  data.stimuli.push_back(repeat);
  data.responses.push_back(Resp(8, 1, 0));
  auto stats = ComputeStats(data);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->generations[1].stimuli, 3) << "the repeat is not generation 2's proposal";
  EXPECT_DOUBLE_EQ(stats->generations[1].max_objective, 5);
  EXPECT_EQ(stats->images.size(), 5u) << "s-1, s-2 (+ s-8), s-4, s-5, s-6";
  auto top = TopStimuli(*stats, 3);
  ASSERT_EQ(top.size(), 3u);
  EXPECT_EQ(top[0]->stimulus->id, "s-6");
  EXPECT_EQ(top[1]->stimulus->id, "s-2");  // the first showing names the image
  EXPECT_EQ(top[1]->presentations, 2);
  EXPECT_DOUBLE_EQ(top[1]->mean_objective, 2.5);
  EXPECT_EQ(top[1]->mean_rates, (std::vector<double>{0.5, 1}));
  EXPECT_EQ(top[2]->stimulus->id, "s-1");  // 2, shown before s-5 (2)
}

// With repeats on, the best is the session's best_measured (base/
// best_measured.h), not the highest single trial: everywhere the tools name
// a best (top, show's best column, the report's summary) it is that image.
TEST(SessionStatsTest, TheBestFollowsTheSessionsRuleWithRepeatsAndValidation) {
  SessionData data = MakeData();
  data.config.mutable_repeats()->set_per_generation(1);
  StoredStimulus repeat = Stim(8, 2, std::nan(""), 1);
  repeat.origin = "repeat";
  repeat.png = data.stimuli[1].png;  // s-2's image: (4 + 1) / 2 = 2.5
  data.stimuli.push_back(repeat);
  data.responses.push_back(Resp(8, 1, 0));
  auto stats = ComputeStats(data);
  ASSERT_TRUE(stats.ok()) << stats.status();
  // s-6 measured 5 once; s-1 (mean 2) and s-2 (2.5) were shown twice.
  auto top = TopStimuli(*stats, 0);
  ASSERT_EQ(top.size(), 5u);
  EXPECT_EQ(top[0]->stimulus->id, "s-2");
  EXPECT_EQ(top[1]->stimulus->id, "s-1");
  EXPECT_EQ(top[2]->stimulus->id, "s-6") << "single trials rank after the eligible images";
  ASSERT_NE(BestMeasured(*stats), nullptr);
  EXPECT_EQ(BestMeasured(*stats)->stimulus->id, "s-2");
  // After generation 1 only s-1 had two presentations (s-2 had 4 once).
  EXPECT_DOUBLE_EQ(stats->generations[0].best_so_far, 2);
  EXPECT_DOUBLE_EQ(stats->generations[1].best_so_far, 2.5);
  EXPECT_DOUBLE_EQ(stats->generations[1].max_objective, 5) << "the generation's own maximum";
  const std::string html = RenderReportHtml(data, *stats);
  EXPECT_TRUE(absl::StrContains(
      html, "<div class=\"k\">best mean objective</div><div class=\"v\">2.5</div>"));

  // A validation block re-shows s-1 (objective 10): only block images count.
  StoredStimulus block = Stim(9, 3, std::nan(""), 1);
  block.origin = "validation";
  block.png = data.stimuli[0].png;
  data.stimuli.push_back(block);
  data.responses.push_back(Resp(9, 10, 0));
  stats = ComputeStats(data);
  ASSERT_TRUE(stats.ok()) << stats.status();
  ASSERT_NE(BestMeasured(*stats), nullptr);
  EXPECT_EQ(BestMeasured(*stats)->stimulus->id, "s-1");
  EXPECT_NEAR(BestMeasured(*stats)->mean_objective, 14.0 / 3, 1e-12);
  EXPECT_NEAR(stats->generations[2].best_so_far, 14.0 / 3, 1e-12);
  EXPECT_DOUBLE_EQ(stats->generations[1].best_so_far, 2.5) << "before the block";
}

TEST(SessionStatsTest, RejectsRatesThatDoNotMatchTheConfig) {
  SessionData data = MakeData();
  data.responses[0].rates = {1, 2, 3};
  EXPECT_EQ(ComputeStats(data).status().code(), absl::StatusCode::kDataLoss);
  data = MakeData();
  data.responses[0].stimulus_id = "elsewhere";
  EXPECT_EQ(ComputeStats(data).status().code(), absl::StatusCode::kDataLoss);
}

TEST(SessionStatsTest, ShowAndReportCarryModelQuality) {
  const SessionData data = MakeData();
  auto stats = ComputeStats(data);
  ASSERT_TRUE(stats.ok());
  const std::string show = FormatSessionShow(data, *stats);
  EXPECT_TRUE(absl::StrContains(show, "0.61")) << show;
  const std::string html = RenderReportHtml(data, *stats);
  EXPECT_TRUE(absl::StrContains(html, "Held-out correlation by model version"));
  EXPECT_FALSE(absl::StrContains(html, "No surrogate model"));
  EXPECT_TRUE(absl::StrContains(html, "abc&lt;&amp;&gt;"));
  EXPECT_FALSE(absl::StrContains(html, "abc<&>"));
}

}  // namespace
}  // namespace inspect
}  // namespace stimloop
