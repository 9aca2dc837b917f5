// A generation's entries: the optimizer's candidates with references and
// repeats interleaved, numbering, repeats as the very bytes shown before,
// and a validation block's rounds.
#include "server/generation_builder.h"

#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "optimizers/image_io.h"
#include "optimizers/image_space.h"

namespace stimloop {
namespace {

// A 1x4x4 image of one grey level (distinct levels give distinct PNGs).
torch::Tensor Grey(int level) { return torch::full({1, 4, 4}, level / 255.0); }

std::vector<Candidate> Candidates(int64_t first_id, int count) {
  std::vector<Candidate> out;
  for (int i = 0; i < count; ++i) {
    Candidate c;
    c.id = first_id + i;
    c.image = Grey(10 + i);
    c.code = torch::full({2}, static_cast<float>(i));
    c.origin = "genetic";
    c.model_version = 3;
    c.predicted_objective = 1.5;
    out.push_back(std::move(c));
  }
  return out;
}

std::vector<NamedImage> References(int count) {
  std::vector<NamedImage> out;
  for (int i = 0; i < count; ++i) out.push_back({"ref" + std::to_string(i), Grey(200 + i)});
  return out;
}

TEST(GenerationBuilderTest, SpreadsReferencesAndRepeatsEvenlyAmongTheCandidates) {
  StimulusEntry shown;
  shown.png = "shown-before";
  shown.code = {1, 2};
  shown.model_version = 7;
  shown.predicted_objective = 4.25;
  const std::vector<const StimulusEntry*> repeats = {&shown};
  auto entries = BuildGeneration("s", 3, 11, Candidates(11, 4),
                                 ReferenceCandidates(References(1), 1, 3, 15), repeats);
  ASSERT_TRUE(entries.ok()) << entries.status();
  // 6 slots, 2 extras: the first at slot 1 (>= 6/4), the second at slot 4
  // (>= 18/4).
  std::vector<std::string> origins;
  std::vector<int64_t> sequences;
  for (const StimulusEntry& e : *entries) {
    origins.push_back(e.origin);
    sequences.push_back(e.sequence);
    EXPECT_EQ(e.id, "s-" + std::to_string(e.sequence));
    EXPECT_EQ(e.generation, 3);
  }
  EXPECT_EQ(origins, (std::vector<std::string>{"genetic", kReferenceOrigin, "genetic", "genetic",
                                               kRepeatOrigin, "genetic"}));
  EXPECT_EQ(sequences, (std::vector<int64_t>{11, 15, 12, 13, 16, 14}));

  const StimulusEntry& reference = (*entries)[1];
  EXPECT_TRUE(reference.is_reference);
  EXPECT_TRUE(reference.code.empty());
  const StimulusEntry& repeat = (*entries)[4];
  EXPECT_FALSE(repeat.is_reference);
  EXPECT_EQ(repeat.png, shown.png);  // the very bytes, so the presentations pool
  EXPECT_EQ(repeat.code, shown.code);
  EXPECT_EQ(repeat.model_version, 7);
  EXPECT_EQ(repeat.predicted_objective, 4.25);
  const StimulusEntry& candidate = (*entries)[2];
  EXPECT_FALSE(candidate.is_reference);
  EXPECT_EQ(candidate.code, (std::vector<float>{1, 1}));
  EXPECT_EQ(candidate.model_version, 3);
  EXPECT_EQ(candidate.predicted_objective, 1.5);
  auto decoded = DecodeImage(candidate.png);
  ASSERT_TRUE(decoded.ok());
  EXPECT_TRUE(torch::equal(ToUint8(Grey(11)), *decoded));
}

TEST(GenerationBuilderTest, WithoutExtrasTheCandidatesKeepTheirOrder) {
  auto entries = BuildGeneration("s", 1, 1, Candidates(1, 3), {}, {});
  ASSERT_TRUE(entries.ok());
  ASSERT_EQ(entries->size(), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ((*entries)[i].sequence, i + 1);
}

TEST(GenerationBuilderTest, ExtrasEachGetTheirOwnSlot) {
  // More extras than candidates: every extra still gets one slot, in order.
  std::vector<StimulusEntry> shown(3);
  for (int i = 0; i < 3; ++i) shown[i].png = "p" + std::to_string(i);
  const std::vector<const StimulusEntry*> repeats = {&shown[0], &shown[1], &shown[2]};
  auto entries = BuildGeneration("s", 2, 1, Candidates(1, 2),
                                 ReferenceCandidates(References(2), 2, 2, 3), repeats);
  ASSERT_TRUE(entries.ok());
  ASSERT_EQ(entries->size(), 7u);
  std::vector<int64_t> extras;
  for (const StimulusEntry& e : *entries) {
    if (e.origin != "genetic") extras.push_back(e.sequence);
  }
  EXPECT_EQ(extras, (std::vector<int64_t>{3, 4, 5, 6, 7}));
}

TEST(GenerationBuilderTest, ReferencesCycleThroughTheFolder) {
  const std::vector<NamedImage> references = References(3);
  auto level = [](const Candidate& c) { return static_cast<int>(c.image[0][0][0].item<float>() * 255 + 0.5); };
  std::vector<Candidate> g1 = ReferenceCandidates(references, 2, 1, 5);
  std::vector<Candidate> g2 = ReferenceCandidates(references, 2, 2, 5);
  ASSERT_EQ(g1.size(), 2u);
  ASSERT_EQ(g2.size(), 2u);
  EXPECT_EQ(level(g1[0]), 200);
  EXPECT_EQ(level(g1[1]), 201);
  EXPECT_EQ(level(g2[0]), 202);
  EXPECT_EQ(level(g2[1]), 200);
  EXPECT_EQ(g1[1].id, 6);
  EXPECT_EQ(g1[0].origin, kReferenceOrigin);
  EXPECT_TRUE(ReferenceCandidates({}, 2, 1, 5).empty());
}

TEST(GenerationBuilderTest, ACandidateOutOfPlaceIsAnInternalError) {
  std::vector<Candidate> candidates = Candidates(1, 3);
  std::swap(candidates[0].id, candidates[1].id);
  auto entries = BuildGeneration("s", 1, 1, std::move(candidates), {}, {});
  EXPECT_EQ(entries.status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(entries.status().message(), "optimizer returned id 2 at position 0, expected 1");
}

TEST(GenerationBuilderTest, AValidationBlockShowsEveryImageOncePerRoundInASeededOrder) {
  std::vector<StimulusEntry> shown(3);
  for (int i = 0; i < 3; ++i) {
    shown[i].png = "p" + std::to_string(i);
    shown[i].is_reference = i == 0;  // never carried into the block
  }
  const std::vector<StimulusEntry> block = BuildValidationBlock("s", 4, 20, shown, 5, 99);
  ASSERT_EQ(block.size(), 15u);
  for (size_t round = 0; round < 5; ++round) {
    std::map<std::string, int> seen;
    for (size_t k = 0; k < 3; ++k) ++seen[block[round * 3 + k].png];
    EXPECT_EQ(seen.size(), 3u) << "round " << round;
  }
  for (size_t i = 0; i < block.size(); ++i) {
    EXPECT_EQ(block[i].sequence, 20 + static_cast<int64_t>(i));
    EXPECT_EQ(block[i].id, "s-" + std::to_string(20 + i));
    EXPECT_EQ(block[i].generation, 4);
    EXPECT_EQ(block[i].origin, kValidationOrigin);
    EXPECT_FALSE(block[i].is_reference);
  }
  // The same seed and generation give the same order.
  const std::vector<StimulusEntry> again = BuildValidationBlock("s", 4, 20, shown, 5, 99);
  for (size_t i = 0; i < block.size(); ++i) EXPECT_EQ(block[i].png, again[i].png);
}

}  // namespace
}  // namespace stimloop
