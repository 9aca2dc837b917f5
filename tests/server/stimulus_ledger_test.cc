// The ledger on hand-made records: pooling of identical images, the best
// measured image, repeat and validation sources, counts and ids.
#include "server/stimulus_ledger.h"

#include <cmath>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace stimloop {
namespace {

using ::testing::ElementsAre;

StimulusEntry Entry(int64_t sequence, int64_t generation, const std::string& png,
                    const std::string& origin = "genetic") {
  StimulusEntry e;
  e.sequence = sequence;
  e.id = "s-" + std::to_string(sequence);
  e.generation = generation;
  e.origin = origin;
  e.is_reference = origin == kReferenceOrigin;
  e.png = png;
  return e;
}

v1::RepeatsConfig Repeats(int per_generation, int max_presentations) {
  v1::RepeatsConfig repeats;
  repeats.set_per_generation(per_generation);
  repeats.set_max_presentations(max_presentations);
  return repeats;
}

// Hands out everything waiting.
void HandOutAll(StimulusLedger* ledger) { ledger->HandOut(ledger->waiting()); }

void Present(StimulusLedger* ledger, size_t index, double objective) {
  ledger->AddPresentation(index, {objective}, objective);
}

TEST(StimulusLedgerTest, PoolsEveryPresentationOfOneImageButNotReferences) {
  StimulusLedger ledger("s", Repeats(0, 0));
  ledger.AddGeneration(1, {Entry(1, 1, "a"), Entry(2, 1, "b"), Entry(3, 1, "a", kReferenceOrigin)});
  ledger.AddGeneration(2, {Entry(4, 2, "a", kRepeatOrigin), Entry(5, 2, "c")});
  HandOutAll(&ledger);
  Present(&ledger, 0, 4);
  Present(&ledger, 3, 8);
  Present(&ledger, 1, 1);

  const std::vector<StimulusLedger::PooledImage> images = ledger.PooledImages();
  ASSERT_EQ(images.size(), 3u);  // a, b, c: the reference is not an image of the optimizer's
  EXPECT_THAT(images[0].records, ElementsAre(0, 3));
  EXPECT_EQ(images[0].presentations, 2);
  EXPECT_DOUBLE_EQ(images[0].mean_objective(), 6);
  EXPECT_THAT(images[1].records, ElementsAre(1));
  EXPECT_EQ(images[2].outstanding, 1);
  // The surrogate learns the repeat under the first showing's sequence.
  EXPECT_EQ(ledger.ImageId(3), 1);
  EXPECT_EQ(ledger.ImageId(2), 3);  // a reference is its own image
}

TEST(StimulusLedgerTest, ASingleLuckyTrialIsNotTheBestOnceRepeatsAreOn) {
  for (const bool repeats_on : {false, true}) {
    StimulusLedger ledger("s", Repeats(repeats_on ? 1 : 0, 3));
    ledger.AddGeneration(1, {Entry(1, 1, "a"), Entry(2, 1, "b")});
    ledger.AddGeneration(2, {Entry(3, 2, "b", kRepeatOrigin)});
    HandOutAll(&ledger);
    Present(&ledger, 0, 10);  // a: one trial
    Present(&ledger, 1, 4);   // b: two trials, mean 5
    Present(&ledger, 2, 6);
    const auto best = ledger.BestMeasured();
    ASSERT_TRUE(best.has_value());
    EXPECT_EQ(best->records.front(), repeats_on ? 1u : 0u) << "repeats_on " << repeats_on;
    // Best(k) ranks by the same rule: its first is BestMeasured.
    const auto ranked = ledger.Best(5);
    ASSERT_EQ(ranked.size(), 2u);
    EXPECT_EQ(ranked[0].records.front(), best->records.front());
  }
}

TEST(StimulusLedgerTest, NothingIsBestBeforeAResponse) {
  StimulusLedger ledger("s", Repeats(0, 0));
  ledger.AddGeneration(1, {Entry(1, 1, "a")});
  EXPECT_FALSE(ledger.BestMeasured().has_value());
  EXPECT_TRUE(ledger.Best(3).empty());
}

TEST(StimulusLedgerTest, RepeatSourcesAreTheLeadingImagesBelowTheirMaximum) {
  StimulusLedger ledger("s", Repeats(2, 2));
  ledger.AddGeneration(1, {Entry(1, 1, "a"), Entry(2, 1, "b"), Entry(3, 1, "c"),
                           Entry(4, 1, "d")});
  HandOutAll(&ledger);
  Present(&ledger, 0, 9);
  Present(&ledger, 1, 3);
  Present(&ledger, 2, 5);  // d (3) is not measured
  // Best first: a, c.
  EXPECT_THAT(ledger.RepeatSources(), ElementsAre(0, 2));
  // a repeated once more reaches max_presentations 2, counting the one
  // still waiting for its response.
  ledger.AddGeneration(2, {Entry(5, 2, "a", kRepeatOrigin)});
  EXPECT_THAT(ledger.RepeatSources(), ElementsAre(2, 1));
}

TEST(StimulusLedgerTest, NoRepeatsWhenTheyAreOff) {
  StimulusLedger ledger("s", Repeats(0, 0));
  ledger.AddGeneration(1, {Entry(1, 1, "a")});
  HandOutAll(&ledger);
  Present(&ledger, 0, 1);
  EXPECT_TRUE(ledger.RepeatSources().empty());
}

TEST(StimulusLedgerTest, ValidationSourcesAreTheEligibleLeadersBeforeAnyBlock) {
  StimulusLedger ledger("s", Repeats(0, 0));
  ledger.AddGeneration(1, {Entry(1, 1, "a"), Entry(2, 1, "b"), Entry(3, 1, "c")});
  HandOutAll(&ledger);
  Present(&ledger, 0, 2);
  Present(&ledger, 1, 7);
  Present(&ledger, 2, 5);
  EXPECT_THAT(ledger.ValidationSources(2), ElementsAre(1, 2));
  // A block re-showing only a does not narrow the next block's choice.
  ledger.AddGeneration(2, {Entry(4, 2, "a", kValidationOrigin)});
  HandOutAll(&ledger);
  Present(&ledger, 3, 2);
  EXPECT_EQ(ledger.BestMeasured()->records.front(), 0u);  // only a was validated
  EXPECT_THAT(ledger.ValidationSources(5), ElementsAre(1, 2, 0));
}

TEST(StimulusLedgerTest, CountsFollowHandOutAnswersAndSkips) {
  StimulusLedger ledger("s", Repeats(0, 0));
  ledger.AddGeneration(1, {Entry(1, 1, "a"), Entry(2, 1, "b"), Entry(3, 1, "c")});
  EXPECT_EQ(ledger.waiting(), 3u);
  EXPECT_THAT(ledger.HandOut(2), ElementsAre(0, 1));
  EXPECT_EQ(ledger.waiting_at(0), 2u);

  const std::vector<ResponseEntry> report = {
      {"s-1", {1.0}, false}, {"s-1", {2.0}, false}, {"s-2", {}, true}};
  const std::vector<size_t> indices = {0, 0, 1};
  const v1::SessionCounts after = ledger.CountsAfter(report, indices);
  EXPECT_EQ(after.generations(), 1);
  EXPECT_EQ(after.stimuli(), 3);
  EXPECT_EQ(after.responses(), 2);
  EXPECT_EQ(after.skipped(), 1);
  EXPECT_EQ(after.pending(), 0);
  EXPECT_EQ(ledger.Counts().pending(), 2);  // a preview changes nothing

  Present(&ledger, 0, 1);
  Present(&ledger, 0, 2);
  ledger.AddSkip(1);
  EXPECT_EQ(ledger.Counts().SerializeAsString(), after.SerializeAsString());
  EXPECT_EQ(ledger.record(0).presentations, 2);
  EXPECT_DOUBLE_EQ(ledger.record(0).mean_objective(), 1.5);
  EXPECT_TRUE(std::isnan(ledger.record(2).mean_objective()));
}

TEST(StimulusLedgerTest, RestoredRecordsCountAsTheLiveOnes) {
  StimulusLedger ledger("s", Repeats(0, 0));
  ledger.RestoreGeneration(1);
  ledger.RestoreStimulus(Entry(1, 1, "a"), /*handed_out=*/true);
  ledger.RestoreStimulus(Entry(2, 1, "a"), /*handed_out=*/true);
  ledger.RestoreStimulus(Entry(3, 1, "c"), /*handed_out=*/false);
  ledger.RestoreQueued(2);
  ledger.AddPresentation(0, {3.0}, 3, /*told=*/true);
  ledger.AddPresentation(1, {5.0}, 5, /*told=*/false);
  const v1::SessionCounts counts = ledger.Counts();
  EXPECT_EQ(counts.generations(), 1);
  EXPECT_EQ(counts.responses(), 2);
  EXPECT_EQ(counts.pending(), 0);
  EXPECT_EQ(ledger.waiting(), 1u);
  EXPECT_EQ(ledger.ImageId(1), 1);  // pooled with the first showing
  std::vector<size_t> untold;
  ledger.Untold(&untold);
  EXPECT_THAT(untold, ElementsAre(1));
}

TEST(StimulusLedgerTest, UntoldListsTheOptimizersChangedStimuliOnly) {
  StimulusLedger ledger("s", Repeats(1, 5));
  ledger.AddGeneration(1, {Entry(1, 1, "a"), Entry(2, 1, "r", kReferenceOrigin),
                           Entry(3, 1, "b")});
  ledger.AddGeneration(2, {Entry(4, 2, "a", kRepeatOrigin)});
  HandOutAll(&ledger);
  Present(&ledger, 0, 2);
  Present(&ledger, 1, 9);
  Present(&ledger, 3, 4);
  std::vector<size_t> indices;
  const std::vector<Observation> observations = ledger.Untold(&indices);
  EXPECT_THAT(indices, ElementsAre(0));  // neither the reference nor the repeat
  ASSERT_EQ(observations.size(), 1u);
  EXPECT_EQ(observations[0].id, 1);
  EXPECT_DOUBLE_EQ(observations[0].objective, 2);
  ledger.MarkTold(indices);
  indices.clear();
  EXPECT_TRUE(ledger.Untold(&indices).empty());
  Present(&ledger, 2, 1);
  ledger.Untold(&indices);
  EXPECT_THAT(indices, ElementsAre(2));
}

TEST(StimulusLedgerTest, FindAcceptsExactlyTheIdsTheSessionWrote) {
  StimulusLedger ledger("s", Repeats(0, 0));
  ledger.AddGeneration(1, {Entry(1, 1, "a"), Entry(2, 1, "b")});
  EXPECT_EQ(*ledger.Find("s-2", "f"), 1u);
  for (const char* bad : {"s-02", "s-+2", "s- 2", "s-0", "s-3", "t-1", "s-", "s1", ""}) {
    const auto found = ledger.Find(bad, "responses[0].stimulus_id");
    EXPECT_EQ(found.status().code(), absl::StatusCode::kNotFound) << bad;
    EXPECT_THAT(std::string(found.status().message()),
                ::testing::StartsWith("responses[0].stimulus_id: "))
        << bad;
  }
}

TEST(StimulusLedgerTest, GenerationStatsCoverTheOptimizersProposalsAndReferences) {
  StimulusLedger ledger("s", Repeats(1, 5));
  ledger.AddGeneration(1, {Entry(1, 1, "a"), Entry(2, 1, "b"), Entry(3, 1, "r", kReferenceOrigin),
                           Entry(4, 1, "c")});
  ledger.AddGeneration(2, {Entry(5, 2, "a", kRepeatOrigin), Entry(6, 2, "d")});
  HandOutAll(&ledger);
  Present(&ledger, 0, 2);
  Present(&ledger, 1, 6);
  Present(&ledger, 2, 1);
  Present(&ledger, 4, 100);  // a repeat: not a proposal of generation 2
  const v1::GenerationStats first = ledger.GenerationStats(1);
  EXPECT_EQ(first.stimuli(), 3);
  EXPECT_EQ(first.answered(), 2);
  EXPECT_DOUBLE_EQ(first.mean_objective(), 4);
  EXPECT_DOUBLE_EQ(first.max_objective(), 6);
  EXPECT_DOUBLE_EQ(first.reference_mean_objective(), 1);
  const v1::GenerationStats second = ledger.GenerationStats(2);
  EXPECT_EQ(second.stimuli(), 1);
  EXPECT_EQ(second.answered(), 0);
  EXPECT_TRUE(std::isnan(second.mean_objective()));
}

TEST(StimulusLedgerTest, APooledRecordCarriesEveryPresentationOfItsImage) {
  StimulusLedger ledger("s", Repeats(1, 5));
  ledger.AddGeneration(1, {Entry(1, 1, "a")});
  ledger.AddGeneration(2, {Entry(2, 2, "a", kRepeatOrigin), Entry(3, 2, "a", kRepeatOrigin)});
  HandOutAll(&ledger);
  Present(&ledger, 0, 1);
  Present(&ledger, 1, 3);
  ledger.AddSkip(2);
  v1::StimulusRecord pooled;
  ledger.FillPooled(ledger.PooledImages()[0], /*with_image=*/true, &pooled);
  EXPECT_EQ(pooled.stimulus().id(), "s-1");
  EXPECT_EQ(pooled.stimulus().png(), "a");
  EXPECT_EQ(pooled.presentations(), 2);
  EXPECT_EQ(pooled.presentation_size(), 2);
  EXPECT_EQ(pooled.skipped(), 1);
  EXPECT_DOUBLE_EQ(pooled.mean_objective(), 2);
  v1::StimulusRecord single;
  ledger.FillRecord(1, /*with_image=*/false, &single);
  EXPECT_EQ(single.stimulus().origin(), kRepeatOrigin);
  EXPECT_TRUE(single.stimulus().png().empty());
  EXPECT_EQ(single.presentations(), 1);
}

}  // namespace
}  // namespace stimloop
