#include "optimizers/genetic.h"

#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "optimizers/random_search.h"
#include "tests/optimizers/toy_loop.h"

namespace stimloop {
namespace {

using ::stimloop::testing::MakeContext;
using ::stimloop::testing::MakeOrDie;
using ::stimloop::testing::MakeSpace;
using ::stimloop::testing::RunToy;
using ::stimloop::testing::SameImages;

constexpr ImageShape kShape = {1, 16, 16};

std::shared_ptr<const ImageSpace> SmallSpectral() {
  return MakeSpace("spectral", kShape, {{"cutoff", 6}});
}

// A target the spectral space can reach: one of its own prior images.
torch::Tensor Target(const ImageSpace& space) {
  at::Generator generator = MakeGenerator(1234, "target");
  return space.Decode(space.SamplePrior(1, generator))[0];
}

absl::Status BuildStatus(std::map<std::string, double> params) {
  OptimizerSpec spec;
  spec.name = "genetic";
  spec.params = std::move(params);
  return MakeOptimizer(spec, MakeContext(SmallSpectral(), 1)).status();
}

// True when every element of every row of `children` equals the same element
// of some row of `parents`.
bool GenesComeFrom(const torch::Tensor& children, const torch::Tensor& parents) {
  const torch::Tensor match = children.unsqueeze(1) == parents.unsqueeze(0);  // [C, P, D]
  return match.any(1).all().item<bool>();
}

torch::Tensor Codes(const std::vector<Candidate>& candidates) {
  std::vector<torch::Tensor> codes;
  for (const Candidate& c : candidates) codes.push_back(c.code);
  return torch::stack(codes);
}

TEST(GeneticTest, FirstGenerationComesFromThePrior) {
  auto space = SmallSpectral();
  auto optimizer = MakeOrDie("genetic", MakeContext(space, 5));
  auto first = optimizer->Ask(6, 40);
  ASSERT_TRUE(first.ok()) << first.status();
  at::Generator generator = MakeGenerator(5, "genetic");
  const torch::Tensor prior = space->SamplePrior(6, generator);
  for (int i = 0; i < 6; ++i) {
    const Candidate& c = (*first)[i];
    EXPECT_EQ(c.id, 40 + i);
    EXPECT_EQ(c.origin, "prior");
    EXPECT_TRUE(torch::equal(c.code, prior[i]));
    EXPECT_TRUE(torch::equal(c.image, QuantizeImages(c.image)));
  }
  ASSERT_TRUE(optimizer->Tell(testing::Score(*first, Target(*space))).ok());
  auto second = optimizer->Ask(6, 46);
  ASSERT_TRUE(second.ok());
  for (const Candidate& c : *second) EXPECT_EQ(c.origin, "genetic");
  EXPECT_FALSE(optimizer->BestGuess().defined());
}

TEST(GeneticTest, ImprovesANoiselessObjectiveAndBeatsRandomSearch) {
  auto space = SmallSpectral();
  const torch::Tensor target = Target(*space);
  for (uint64_t seed : {1, 2, 3}) {
    auto genetic = MakeOrDie("genetic", MakeContext(space, seed));
    auto random = MakeOrDie("random", MakeContext(space, seed));
    const testing::ToyRun g = RunToy(*genetic, target, 12, 40);
    const testing::ToyRun r = RunToy(*random, target, 12, 40);
    // Measured with these seeds: from ~0.45 to ~0.88 for genetic, ~0.67 for
    // random's best of the same 480 images.
    EXPECT_GT(g.generation_best.back(), g.generation_best.front() + 0.3) << "seed " << seed;
    EXPECT_GT(g.best(), 0.85) << "seed " << seed;
    EXPECT_GT(g.best(), r.best() + 0.1) << "seed " << seed;
  }
}

TEST(GeneticTest, WorksInPixelSpaceOnTheShownImages) {
  auto space = MakeSpace("pixel", {1, 8, 8});
  const torch::Tensor target = torch::linspace(0, 1, 64).reshape({1, 8, 8});
  auto optimizer = MakeOrDie("genetic", MakeContext(space, 2));
  int64_t next_id = 1;
  double first_best = 0, last_best = 0;
  for (int g = 0; g < 15; ++g) {
    auto candidates = optimizer->Ask(20, next_id);
    ASSERT_TRUE(candidates.ok());
    next_id += 20;
    for (const Candidate& c : *candidates) {
      // The code learned from is exactly the 8-bit image shown.
      ASSERT_TRUE(torch::equal(c.code, c.image.flatten()));
    }
    const auto observations = testing::Score(*candidates, target);
    double best = -1;
    for (const Observation& o : observations) best = std::max(best, o.objective);
    (g == 0 ? first_best : last_best) = best;
    ASSERT_TRUE(optimizer->Tell(observations).ok());
  }
  EXPECT_GT(last_best, first_best + 0.1);
}

TEST(GeneticTest, SameSeedSameImagesDifferentSeedDifferentImages) {
  auto space = SmallSpectral();
  const torch::Tensor target = Target(*space);
  auto a = MakeOrDie("genetic", MakeContext(space, 11));
  auto b = MakeOrDie("genetic", MakeContext(space, 11));
  auto c = MakeOrDie("genetic", MakeContext(space, 12));
  int64_t next_id = 1;
  for (int g = 0; g < 4; ++g) {
    auto ia = a->Ask(10, next_id), ib = b->Ask(10, next_id), ic = c->Ask(10, next_id);
    next_id += 10;
    ASSERT_TRUE(SameImages(*ia, *ib)) << "generation " << g;
    EXPECT_FALSE(SameImages(*ia, *ic)) << "generation " << g;
    ASSERT_TRUE(a->Tell(testing::Score(*ia, target)).ok());
    ASSERT_TRUE(b->Tell(testing::Score(*ib, target)).ok());
    ASSERT_TRUE(c->Tell(testing::Score(*ic, target)).ok());
  }
}

TEST(GeneticTest, SaveLoadResumesBitIdentically) {
  auto space = SmallSpectral();
  const torch::Tensor target = Target(*space);
  auto original = MakeOrDie("genetic", MakeContext(space, 21));
  RunToy(*original, target, 3, 20);
  // A late value for the latest generation is part of the state too.
  ASSERT_TRUE(original->Tell({{45, 5.0, 2}}).ok());
  const std::string state = testing::SaveToString(*original);
  auto restored = MakeOrDie("genetic", MakeContext(space, 21));
  ASSERT_TRUE(testing::LoadFromString(*restored, state).ok());
  for (int g = 0; g < 3; ++g) {
    auto a = original->Ask(20, 61 + 20 * g), b = restored->Ask(20, 61 + 20 * g);
    ASSERT_TRUE(SameImages(*a, *b)) << "generation " << g;
    ASSERT_TRUE(original->Tell(testing::Score(*a, target)).ok());
    ASSERT_TRUE(restored->Tell(testing::Score(*b, target)).ok());
  }
  // Another optimizer's state is refused, and the genetic one is unchanged.
  auto random = MakeOrDie("random", MakeContext(space, 21));
  const std::string random_state = testing::SaveToString(*random);
  const std::string before = testing::SaveToString(*restored);
  EXPECT_FALSE(testing::LoadFromString(*restored, random_state).ok());
  EXPECT_EQ(testing::SaveToString(*restored), before);
}

TEST(GeneticTest, UnansweredCandidatesAreDroppedFromThePopulation) {
  auto space = SmallSpectral();
  auto optimizer = MakeOrDie("genetic", MakeContext(space, 4), {{"mutation_rate", 0}});
  auto first = optimizer->Ask(20, 1);
  ASSERT_TRUE(first.ok());
  // Only five of twenty answered, in increasing order of value.
  const std::vector<int> answered = {3, 7, 8, 12, 19};
  std::vector<Observation> observations;
  for (size_t i = 0; i < answered.size(); ++i) {
    observations.push_back({(*first)[answered[i]].id, static_cast<double>(i), 1});
  }
  ASSERT_TRUE(optimizer->Tell(observations).ok());
  auto second = optimizer->Ask(20, 21);
  ASSERT_TRUE(second.ok());
  // All five are elites (default 10 > 5), best first; every other gene is
  // inherited (no mutation) from one of them only.
  for (int i = 0; i < 5; ++i) {
    EXPECT_TRUE(torch::equal((*second)[i].code, (*first)[answered[4 - i]].code)) << i;
  }
  std::vector<Candidate> parents;
  for (int i : answered) parents.push_back((*first)[i]);
  EXPECT_TRUE(GenesComeFrom(Codes(*second), Codes(parents)));
}

TEST(GeneticTest, AnUnansweredGenerationIsBredAgainFromTheSameParents) {
  auto space = SmallSpectral();
  const torch::Tensor target = Target(*space);
  auto optimizer = MakeOrDie("genetic", MakeContext(space, 6),
                             {{"mutation_rate", 0}, {"elites", 3}});
  auto first = optimizer->Ask(10, 1);
  ASSERT_TRUE(optimizer->Tell(testing::Score(*first, target)).ok());
  auto second = optimizer->Ask(10, 11);  // never answered
  ASSERT_TRUE(optimizer->Tell({}).ok());
  auto third = optimizer->Ask(10, 21);
  ASSERT_TRUE(third.ok());
  for (int i = 0; i < 3; ++i) {  // the same elites
    EXPECT_TRUE(torch::equal((*third)[i].image, (*second)[i].image));
  }
  EXPECT_TRUE(GenesComeFrom(Codes(*third), Codes(*first)));
  EXPECT_FALSE(SameImages(*second, *third));  // new children, same parents
}

TEST(GeneticTest, RetellingAnIdReplacesItsValue) {
  auto space = SmallSpectral();
  const torch::Tensor target = Target(*space);
  auto optimizer = MakeOrDie("genetic", MakeContext(space, 8), {{"elites", 1}});
  auto first = optimizer->Ask(10, 1);
  std::vector<Observation> observations = testing::Score(*first, target);
  ASSERT_TRUE(optimizer->Tell(observations).ok());
  // The worst candidate's repeat presentations make it the best.
  size_t worst = 0;
  for (size_t i = 0; i < observations.size(); ++i) {
    if (observations[i].objective < observations[worst].objective) worst = i;
  }
  ASSERT_TRUE(optimizer->Tell({{(*first)[worst].id, 10.0, 3}}).ok());
  auto second = optimizer->Ask(10, 11);
  ASSERT_TRUE(second.ok());
  EXPECT_TRUE(torch::equal((*second)[0].code, (*first)[worst].code));
}

TEST(GeneticTest, RejectsUnknownIdsWithoutChange) {
  auto space = SmallSpectral();
  const torch::Tensor target = Target(*space);
  auto a = MakeOrDie("genetic", MakeContext(space, 9));
  auto b = MakeOrDie("genetic", MakeContext(space, 9));
  auto ia = a->Ask(10, 1);
  auto ib = b->Ask(10, 1);
  std::vector<Observation> good = testing::Score(*ia, target);
  std::vector<Observation> bad = good;
  bad.push_back({11, 1.0, 1});  // never proposed
  const absl::Status status = a->Tell(bad);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("observations[10].id: 11 was never proposed by genetic"),
            std::string::npos)
      << status;
  ASSERT_TRUE(a->Tell(good).ok());
  ASSERT_TRUE(b->Tell(good).ok());
  EXPECT_TRUE(SameImages(*a->Ask(10, 11), *b->Ask(10, 11)));
  EXPECT_EQ(a->Ask(0, 21).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(GeneticTest, BadParametersNameTheField) {
  const absl::Status unknown = BuildStatus({{"population", 40}});
  EXPECT_EQ(unknown.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(unknown.message().find("optimizer.params.population: unknown parameter"),
            std::string::npos)
      << unknown;
  EXPECT_NE(unknown.message().find("mutation_rate"), std::string::npos) << unknown;
  const absl::Status range = BuildStatus({{"mutation_rate", 1.5}});
  EXPECT_EQ(range.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(range.message().find("optimizer.params.mutation_rate: 1.5 is outside [0, 1]"),
            std::string::npos)
      << range;
  EXPECT_NE(BuildStatus({{"heritability", 0.2}}).message().find("optimizer.params.heritability"),
            std::string::npos);
  EXPECT_NE(BuildStatus({{"elites", 2.5}}).message().find("optimizer.params.elites"),
            std::string::npos);
  EXPECT_TRUE(BuildStatus({{"elites", 0}, {"selectivity", 4}, {"heritability", 0.7},
                           {"mutation_rate", 0.1}, {"mutation_size", 0.3}})
                  .ok());
}

}  // namespace
}  // namespace stimloop
