#include "optimizers/adaptive_sampling.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "optimizers/image_io.h"
#include "tests/optimizers/fake_models.h"

namespace stimloop {
namespace {

using testing::BrightnessModel;
using testing::FixedModelSource;
using testing::StackImages;

constexpr int64_t kSize = 16;

// Writes `images` ([C, H, W] in [0, 1]) as img_00.png, img_01.png, ... into
// a fresh folder and returns it.
std::string WritePool(const std::string& name, const std::vector<torch::Tensor>& images) {
  const std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  for (size_t i = 0; i < images.size(); ++i) {
    auto png = EncodePng(ToUint8(images[i]));
    EXPECT_TRUE(png.ok());
    std::ofstream(dir / absl::StrCat("img_", i < 10 ? "0" : "", i, ".png"), std::ios::binary)
        << *png;
  }
  return dir.string();
}

// Noise images around brightness levels 0.1, 0.15, ..., independent of each
// other (cosine similarity near 0): image i has mean ~ 0.1 + 0.05 i.
std::vector<torch::Tensor> NoisePool(int n, uint64_t seed) {
  at::Generator g = MakeGenerator(seed, "pool");
  std::vector<torch::Tensor> images;
  for (int i = 0; i < n; ++i) {
    const double level = 0.1 + 0.8 * i / (n - 1);
    images.push_back((level + 0.08 * torch::randn({1, kSize, kSize}, g)).clamp(0, 1));
  }
  return images;
}

struct Fixture {
  std::shared_ptr<const ImageSpace> space;
  std::shared_ptr<const Objective> objective;
  std::shared_ptr<FixedModelSource> models = std::make_shared<FixedModelSource>();

  Fixture() {
    ImageSpaceSpec spec;
    spec.name = "pixel";
    space = *MakeImageSpace(spec, ImageShape{1, kSize, kSize});
    objective = std::make_shared<const Objective>(*Objective::Create(ObjectiveSpec{}, 1));
    models->Set(std::make_shared<BrightnessModel>(3));
  }

  absl::StatusOr<std::unique_ptr<Optimizer>> Make(const std::string& pool_dir,
                                                  std::map<std::string, double> params) const {
    OptimizerSpec spec;
    spec.name = "adaptive_sampling";
    spec.params = std::move(params);
    spec.candidate_pool_dir = pool_dir;
    return MakeOptimizer(spec, OptimizerContext{space, objective, 5, models});
  }
};

std::set<std::string> Origins(const std::vector<Candidate>& candidates) {
  std::set<std::string> out;
  for (const Candidate& c : candidates) out.insert(c.origin);
  return out;
}

TEST(AdaptiveSamplingTest, PicksTheTopPredictedPoolImages) {
  Fixture f;
  const std::string dir = WritePool("top", NoisePool(20, 1));
  // No similarity penalty: bright images all deviate from gray the same way.
  auto optimizer =
      f.Make(dir, {{"prior_generations", 0}, {"beta", 0}, {"similarity_penalty", 0}});
  ASSERT_TRUE(optimizer.ok()) << optimizer.status();
  auto candidates = (*optimizer)->Ask(4, 1);
  ASSERT_TRUE(candidates.ok()) << candidates.status();
  EXPECT_EQ(Origins(*candidates), (std::set<std::string>{"pool:img_16.png", "pool:img_17.png",
                                                         "pool:img_18.png", "pool:img_19.png"}));
  for (const Candidate& c : *candidates) {
    EXPECT_EQ(c.model_version, 3);
    EXPECT_FALSE(c.code.defined());
    EXPECT_NEAR(c.predicted_objective, 50 * 1.05 * c.image.mean().item<double>(), 1e-3);
  }
}

TEST(AdaptiveSamplingTest, NeverShowsAPoolImageTwiceUnlessAllowed) {
  Fixture f;
  const std::string dir = WritePool("repeats", NoisePool(10, 2));
  auto optimizer = f.Make(dir, {{"prior_generations", 1}});
  ASSERT_TRUE(optimizer.ok());
  std::set<std::string> seen;
  for (int g = 0; g < 3; ++g) {
    auto candidates = (*optimizer)->Ask(3, 1 + 3 * g);
    ASSERT_TRUE(candidates.ok()) << candidates.status();
    for (const Candidate& c : *candidates) EXPECT_TRUE(seen.insert(c.origin).second) << c.origin;
  }
  auto exhausted = (*optimizer)->Ask(3, 10);
  EXPECT_EQ(exhausted.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(exhausted.status().message().find("optimizer.candidate_pool_dir"), std::string::npos);

  auto repeating = f.Make(dir, {{"allow_repeats", 1}});
  ASSERT_TRUE(repeating.ok());
  for (int g = 0; g < 5; ++g) EXPECT_TRUE((*repeating)->Ask(3, 1 + 3 * g).ok());
}

TEST(AdaptiveSamplingTest, PenalizesNearDuplicatesWithinABatch) {
  Fixture f;
  at::Generator g = MakeGenerator(4, "dup");
  // img_00: the best; img_01: a near-duplicate of it; img_02: different and
  // a bit dimmer; img_03..: much dimmer.
  const torch::Tensor best = (0.8 + 0.15 * torch::randn({1, kSize, kSize}, g)).clamp(0, 1);
  std::vector<torch::Tensor> pool{best, (best - 0.01).clamp(0, 1),
                                  (0.75 + 0.15 * torch::randn({1, kSize, kSize}, g)).clamp(0, 1)};
  for (int i = 0; i < 5; ++i) pool.push_back(torch::full({1, kSize, kSize}, 0.1 + 0.02 * i));
  const std::string dir = WritePool("dup", pool);

  auto plain = f.Make(dir, {{"prior_generations", 0}, {"beta", 0}, {"similarity_penalty", 0}});
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(Origins(*(*plain)->Ask(2, 1)),
            (std::set<std::string>{"pool:img_00.png", "pool:img_01.png"}));
  auto penalized = f.Make(dir, {{"prior_generations", 0}, {"beta", 0}});
  ASSERT_TRUE(penalized.ok());
  EXPECT_EQ(Origins(*(*penalized)->Ask(2, 1)),
            (std::set<std::string>{"pool:img_00.png", "pool:img_02.png"}));
}

TEST(AdaptiveSamplingTest, SamplesRandomlyBeforeTheModelThenUsesIt) {
  Fixture f;
  f.models->Set(nullptr);
  auto optimizer = f.Make("", {{"pool_size", 200}});
  ASSERT_TRUE(optimizer.ok());
  auto prior = (*optimizer)->Ask(5, 1);
  ASSERT_TRUE(prior.ok());
  EXPECT_EQ(Origins(*prior), std::set<std::string>{"prior"});
  EXPECT_EQ((*prior)[0].model_version, 0);

  f.models->Set(std::make_shared<BrightnessModel>(4));
  auto chosen = (*optimizer)->Ask(5, 6);
  ASSERT_TRUE(chosen.ok());
  EXPECT_EQ(Origins(*chosen), std::set<std::string>{"adaptive_sampling"});
  // The brightest of 200 uniform-noise images beat the prior's 5 by far.
  EXPECT_GT(StackImages(*chosen).mean().item<double>(),
            StackImages(*prior).mean().item<double>() + 0.005);
  for (const Candidate& c : *chosen) {
    EXPECT_EQ(c.model_version, 4);
    ASSERT_TRUE(c.code.defined());
    EXPECT_TRUE(torch::equal(f.space->Decode(c.code.unsqueeze(0))[0], c.image));
  }
}

TEST(AdaptiveSamplingTest, SaveLoadRemembersWhatWasShown) {
  Fixture f;
  const std::string dir = WritePool("state", NoisePool(6, 5));
  auto a = f.Make(dir, {});
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE((*a)->Ask(3, 1).ok());
  const std::string state = testing::SaveState(**a);
  auto b = f.Make(dir, {});
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(testing::LoadState(**b, state).ok());
  auto next_a = (*a)->Ask(3, 4);
  auto next_b = (*b)->Ask(3, 4);
  ASSERT_TRUE(next_a.ok() && next_b.ok());
  EXPECT_EQ(Origins(*next_a), Origins(*next_b));
  EXPECT_EQ((*b)->Ask(1, 7).status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ((*b)->Tell({{99, 1.0, 1}}).code(), absl::StatusCode::kInvalidArgument);
}

TEST(AdaptiveSamplingTest, RejectsABadFolderAndBadParams) {
  Fixture f;
  auto missing = f.Make("/nonexistent/pool", {});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(missing.status().message().find("optimizer.candidate_pool_dir"), std::string::npos);
  auto bad = f.Make("", {{"allow_repeats", 2}});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("optimizer.params.allow_repeats"), std::string::npos);
}

TEST(AdaptiveSamplingTest, GreedySelectionTradesUtilityForNovelty) {
  // Items 0 and 1 are identical; 2 is orthogonal to both.
  const torch::Tensor utility = torch::tensor({1.0, 0.95, 0.6});
  const torch::Tensor similarity =
      torch::tensor({1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0}).view({3, 3});
  const std::vector<bool> all(3, true);
  EXPECT_EQ(AdaptiveSampling::SelectGreedy(utility, similarity, all, 2, 0.0),
            (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(AdaptiveSampling::SelectGreedy(utility, similarity, all, 2, 0.5),
            (std::vector<int64_t>{0, 2}));
  EXPECT_EQ(AdaptiveSampling::SelectGreedy(utility, similarity, {false, true, true}, 1, 0.5),
            (std::vector<int64_t>{1}));
}

}  // namespace
}  // namespace stimloop
