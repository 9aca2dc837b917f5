#include "optimizers/random_search.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/optimizers/toy_loop.h"

namespace stimloop {
namespace {

using ::stimloop::testing::MakeContext;
using ::stimloop::testing::MakeOrDie;
using ::stimloop::testing::MakeSpace;
using ::stimloop::testing::SameImages;

constexpr ImageShape kShape = {1, 16, 16};

TEST(RandomSearchTest, ProposesQuantizedPriorSamples) {
  auto space = MakeSpace("spectral", kShape, {{"cutoff", 6}});
  auto optimizer = MakeOrDie("random", MakeContext(space, 5));
  ASSERT_NE(optimizer, nullptr);
  EXPECT_EQ(optimizer->name(), "random");
  auto candidates = optimizer->Ask(4, 100);
  ASSERT_TRUE(candidates.ok()) << candidates.status();
  ASSERT_EQ(candidates->size(), 4u);
  at::Generator generator = MakeGenerator(5, "random");
  const torch::Tensor expected = space->SamplePrior(4, generator);
  const torch::Tensor images = QuantizeImages(space->Decode(expected));
  for (int i = 0; i < 4; ++i) {
    const Candidate& c = (*candidates)[i];
    EXPECT_EQ(c.id, 100 + i);
    EXPECT_EQ(c.origin, "random");
    EXPECT_TRUE(torch::equal(c.code, expected[i]));
    EXPECT_TRUE(torch::equal(c.image, images[i]));
  }
  EXPECT_FALSE(optimizer->BestGuess().defined());
}

TEST(RandomSearchTest, KeepsTheBestMeasuredCandidate) {
  auto space = MakeSpace("pixel", kShape);
  RandomSearch optimizer(space, 1);
  auto first = optimizer.Ask(3, 1);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(optimizer.best_id(), -1);
  // Candidate 3 is never answered.
  ASSERT_TRUE(optimizer.Tell({{1, 0.5, 1}, {2, 0.9, 1}}).ok());
  EXPECT_EQ(optimizer.best_id(), 2);
  EXPECT_TRUE(torch::equal(optimizer.best_code(), (*first)[1].code));
  // The pixel code is exactly the image shown.
  EXPECT_TRUE(torch::equal(optimizer.best_code(), (*first)[1].image.flatten()));
  ASSERT_TRUE(optimizer.Ask(3, 4).ok());
  ASSERT_TRUE(optimizer.Tell({{4, 0.7, 1}, {5, 1.2, 1}}).ok());
  EXPECT_EQ(optimizer.best_id(), 5);
  EXPECT_DOUBLE_EQ(optimizer.best_objective(), 1.2);
  // A repeat presentation lowers the best's mean: the new value replaces it.
  ASSERT_TRUE(optimizer.Tell({{5, 0.8, 2}}).ok());
  EXPECT_EQ(optimizer.best_id(), 5);
  EXPECT_DOUBLE_EQ(optimizer.best_objective(), 0.8);
  // Later candidates compete with the replaced value.
  ASSERT_TRUE(optimizer.Tell({{6, 0.85, 1}}).ok());
  EXPECT_EQ(optimizer.best_id(), 6);
}

TEST(RandomSearchTest, RejectsUnknownIdsAndNonFiniteValuesWithoutChange) {
  auto space = MakeSpace("pixel", kShape);
  RandomSearch optimizer(space, 1);
  ASSERT_TRUE(optimizer.Ask(3, 10).ok());
  const absl::Status unknown = optimizer.Tell({{10, 1.0, 1}, {13, 2.0, 1}});
  EXPECT_EQ(unknown.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(unknown.message().find("observations[1].id: 13"), std::string::npos) << unknown;
  EXPECT_EQ(optimizer.best_id(), -1);  // nothing of the bad batch applied
  const absl::Status nan = optimizer.Tell({{11, std::nan(""), 1}});
  EXPECT_NE(nan.message().find("observations[0].objective"), std::string::npos) << nan;
  EXPECT_EQ(optimizer.Ask(0, 20).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(RandomSearchTest, RejectsAnyParameter) {
  auto space = MakeSpace("pixel", kShape);
  OptimizerSpec spec;
  spec.name = "random";
  spec.params = {{"elites", 3}};
  auto optimizer = MakeOptimizer(spec, MakeContext(space, 1));
  ASSERT_FALSE(optimizer.ok());
  EXPECT_EQ(optimizer.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(optimizer.status().message().find("optimizer.params.elites"), std::string::npos);
}

TEST(RandomSearchTest, SeedDeterminesTheImages) {
  auto space = MakeSpace("spectral", kShape);
  auto a = MakeOrDie("random", MakeContext(space, 7));
  auto b = MakeOrDie("random", MakeContext(space, 7));
  auto c = MakeOrDie("random", MakeContext(space, 8));
  auto ia = a->Ask(5, 1), ib = b->Ask(5, 1), ic = c->Ask(5, 1);
  EXPECT_TRUE(SameImages(*ia, *ib));
  EXPECT_FALSE(SameImages(*ia, *ic));
}

TEST(RandomSearchTest, SaveLoadResumesBitIdentically) {
  auto space = MakeSpace("spectral", kShape);
  const torch::Tensor target = torch::rand({1, 16, 16});
  auto original = MakeOrDie("random", MakeContext(space, 3));
  testing::RunToy(*original, target, 2, 5);
  const std::string state = testing::SaveToString(*original);
  auto restored = MakeOrDie("random", MakeContext(space, 99));
  ASSERT_TRUE(testing::LoadFromString(*restored, state).ok());
  auto next = original->Ask(5, 11), resumed = restored->Ask(5, 11);
  EXPECT_TRUE(SameImages(*next, *resumed));
  auto& r = dynamic_cast<RandomSearch&>(*restored);
  EXPECT_EQ(r.best_id(), dynamic_cast<RandomSearch&>(*original).best_id());
  EXPECT_GE(r.best_id(), 1);
}

TEST(RandomSearchTest, ImprovesANoiselessObjective) {
  auto space = MakeSpace("spectral", kShape, {{"cutoff", 6}});
  at::Generator target_generator = MakeGenerator(1234, "target");
  const torch::Tensor target = space->Decode(space->SamplePrior(1, target_generator))[0];
  RandomSearch optimizer(space, 4);
  const testing::ToyRun run = testing::RunToy(optimizer, target, 10, 20);
  EXPECT_GT(run.best(), run.generation_best[0]);
  EXPECT_DOUBLE_EQ(optimizer.best_objective(), run.best());
}

}  // namespace
}  // namespace stimloop
