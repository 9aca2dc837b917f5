#include "optimizers/gradient_ascent.h"

#include <chrono>
#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "optimizers/mei_parts.h"
#include "tests/optimizers/fake_models.h"

namespace stimloop {
namespace {

using testing::FixedModelSource;
using testing::GaborTemplate;
using testing::StackImages;
using testing::TemplateModel;

constexpr int64_t kSize = 32;

struct Fixture {
  std::shared_ptr<const ImageSpace> space;
  std::shared_ptr<const Objective> objective;
  std::shared_ptr<FixedModelSource> models = std::make_shared<FixedModelSource>();
  std::shared_ptr<const TemplateModel> model;

  explicit Fixture(const std::string& space_name = "pixel") {
    ImageSpaceSpec spec;
    spec.name = space_name;
    space = *MakeImageSpace(spec, ImageShape{1, kSize, kSize});
    objective = std::make_shared<const Objective>(*Objective::Create(ObjectiveSpec{}, 1));
    model = std::make_shared<TemplateModel>(GaborTemplate(1, kSize, 8.0, 0.6), /*version=*/7);
    models->Set(model);
  }

  std::unique_ptr<Optimizer> Make(std::map<std::string, double> params = {},
                                  uint64_t seed = 11) const {
    OptimizerSpec spec;
    spec.name = "gradient_ascent";
    spec.params = std::move(params);
    OptimizerContext context{space, objective, seed, models};
    auto optimizer = MakeOptimizer(spec, context);
    EXPECT_TRUE(optimizer.ok()) << optimizer.status();
    return optimizer.ok() ? *std::move(optimizer) : nullptr;
  }

  // Member-mean predicted objective of each image.
  torch::Tensor Predict(const torch::Tensor& images) const {
    return PredictObjectiveNoGrad(*model, *objective, images).mean;
  }
};

// The pixel space can reach the template's exact optimum; the spectral
// space (smooth images, 1/f amplitudes) gets close through saturation:
// 0.92 of it for every candidate (ClampToBox lets the ascent pull pixels
// that clipped on the wrong side back; with a plain clamp, whose gradient
// is zero there, it stalled at 0.29).
TEST(GradientAscentTest, ReachesNearTheModelOptimumFarAboveThePrior) {
  for (const auto& [space_name, fraction] :
       std::vector<std::pair<std::string, double>>{{"pixel", 0.95}, {"spectral", 0.85}}) {
    SCOPED_TRACE(space_name);
    Fixture f(space_name);
    auto optimizer = f.Make({{"prior_generations", 0}});
    auto candidates = optimizer->Ask(8, 1);
    ASSERT_TRUE(candidates.ok()) << candidates.status();
    const torch::Tensor predicted = f.Predict(StackImages(*candidates));
    const double optimum = f.Predict(f.model->Optimum().unsqueeze(0))[0].item<double>();

    at::Generator generator = MakeGenerator(3, "test");
    const double prior =
        f.Predict(QuantizeImages(f.space->Decode(f.space->SamplePrior(64, generator))))
            .mean()
            .item<double>();
    EXPECT_GT(predicted.min().item<double>(), fraction * optimum);
    EXPECT_LT(prior, 0.2 * optimum);
    EXPECT_GT(predicted.min().item<double>(), 2 * prior);
    for (const Candidate& c : *candidates) {
      EXPECT_EQ(c.origin, "gradient_ascent");
      EXPECT_EQ(c.model_version, 7);
      EXPECT_GT(c.predicted_objective, fraction * optimum);
      EXPECT_TRUE(torch::equal(c.image, QuantizeImages(c.image)));
    }
  }
}

// The gradient blur defaults to 1 px per 64 px of image side: a fixed 1 px
// blurs a 32x32 image's optimum as much as 2 px blur a 64x64 one, and the
// ascent falls short of what the model allows.
TEST(GradientAscentTest, DefaultGradientBlurScalesWithTheImage) {
  EXPECT_DOUBLE_EQ(DefaultBlurSigma(ImageShape{1, 64, 64}), 1.0);
  EXPECT_DOUBLE_EQ(DefaultBlurSigma(ImageShape{3, 32, 48}), 0.5);
  Fixture f("spectral");
  auto mean_prediction = [&](std::map<std::string, double> params) {
    params["prior_generations"] = 0;
    auto candidates = f.Make(params)->Ask(8, 1);
    EXPECT_TRUE(candidates.ok()) << candidates.status();
    return candidates.ok() ? f.Predict(StackImages(*candidates)).mean().item<double>() : 0.0;
  };
  const double by_default = mean_prediction({});
  EXPECT_EQ(by_default, mean_prediction({{"blur_sigma", 0.5}}));
  EXPECT_GT(by_default, mean_prediction({{"blur_sigma", 1.0}}));
}

TEST(GradientAscentTest, DiversityTermMakesTheBatchDistinct) {
  Fixture f;
  auto alike = f.Make({{"prior_generations", 0}, {"diversity", 0}});
  auto diverse = f.Make({{"prior_generations", 0}, {"diversity", 1}});
  const torch::Tensor a = StackImages(*alike->Ask(8, 1));
  const torch::Tensor d = StackImages(*diverse->Ask(8, 1));
  const double similarity_alike = MeanPairwiseCosine(a).item<double>();
  const double similarity_diverse = MeanPairwiseCosine(d).item<double>();
  // Without the term every start heads for the same optimum (the pixels the
  // template ignores keep some of their random start).
  EXPECT_GT(similarity_alike, 0.7);
  EXPECT_LT(similarity_diverse, similarity_alike - 0.2);
  // Still good images, not just different ones.
  EXPECT_GT(f.Predict(d).mean().item<double>(), 0.3 * f.model->peak());
}

TEST(GradientAscentTest, ProposesFromThePriorBeforeTheModelIsUsed) {
  Fixture f;
  f.models->Set(nullptr);
  auto optimizer = f.Make({{"prior_generations", 2}});
  auto first = optimizer->Ask(4, 1);
  ASSERT_TRUE(first.ok());
  for (const Candidate& c : *first) {
    EXPECT_EQ(c.origin, "prior");
    EXPECT_EQ(c.model_version, 0);
    EXPECT_TRUE(std::isnan(c.predicted_objective));
  }
  f.models->Set(f.model);
  auto second = optimizer->Ask(4, 5);  // still within prior_generations
  ASSERT_TRUE(second.ok());
  EXPECT_EQ((*second)[0].origin, "prior");
  EXPECT_EQ((*second)[0].model_version, 7);
  EXPECT_FALSE(std::isnan((*second)[0].predicted_objective));
  auto third = optimizer->Ask(4, 9);
  ASSERT_TRUE(third.ok());
  EXPECT_EQ((*third)[0].origin, "gradient_ascent");
}

TEST(GradientAscentTest, SameSeedSameImagesAndSaveLoadResumes) {
  Fixture f;
  std::map<std::string, double> params{{"prior_generations", 1}, {"steps", 20}};
  auto a = f.Make(params);
  auto b = f.Make(params);
  ASSERT_TRUE(a->Ask(4, 1).ok());
  ASSERT_TRUE(b->Ask(4, 1).ok());
  const std::string state = testing::SaveState(*a);
  const torch::Tensor next_a = StackImages(*a->Ask(4, 5));
  EXPECT_TRUE(torch::equal(next_a, StackImages(*b->Ask(4, 5))));

  auto restored = f.Make(params);
  ASSERT_TRUE(testing::LoadState(*restored, state).ok());
  EXPECT_TRUE(torch::equal(next_a, StackImages(*restored->Ask(4, 5))));
  EXPECT_TRUE(restored->Tell({{3, 1.0, 1}}).ok()) << "ids of the saved state are known";

  auto other_seed = f.Make(params, /*seed=*/12);
  ASSERT_TRUE(other_seed->Ask(4, 1).ok());
  EXPECT_FALSE(torch::equal(next_a, StackImages(*other_seed->Ask(4, 5))));
}

// A session shutting down cancels the Ask running on its background thread.
TEST(GradientAscentTest, CancelledAsksReturnCancelledPromptly) {
  Fixture f;
  auto optimizer = f.Make({{"prior_generations", 0}, {"steps", 10000}});
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    optimizer->CancelAsks();
  });
  const auto start = std::chrono::steady_clock::now();
  auto running = optimizer->Ask(4, 1);  // 10,000 steps: far longer than 50 ms
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  canceller.join();
  EXPECT_EQ(running.status().code(), absl::StatusCode::kCancelled) << running.status();
  // For scale, 1,000 steps uncancelled: the cancelled Ask stopped well
  // before half of its 10,000.
  auto uncancelled = f.Make({{"prior_generations", 0}, {"steps", 1000}});
  const auto full_start = std::chrono::steady_clock::now();
  ASSERT_TRUE(uncancelled->Ask(4, 1).ok());
  const double thousand_steps_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - full_start).count();
  EXPECT_LT(seconds, 5 * thousand_steps_seconds);
  EXPECT_EQ(optimizer->Ask(4, 5).status().code(), absl::StatusCode::kCancelled)
      << "cancellation is sticky";
}

TEST(GradientAscentTest, TellRejectsUnknownIds) {
  Fixture f;
  auto optimizer = f.Make();
  ASSERT_TRUE(optimizer->Ask(4, 1).ok());
  EXPECT_TRUE(optimizer->Tell({{2, 3.0, 1}}).ok());
  EXPECT_EQ(optimizer->Tell({{99, 3.0, 1}}).code(), absl::StatusCode::kInvalidArgument);
}

TEST(GradientAscentTest, BestGuessIsTheModelOptimum) {
  Fixture f;
  auto optimizer = f.Make();
  const torch::Tensor guess = optimizer->BestGuess();
  ASSERT_TRUE(guess.defined());
  const double optimum = f.Predict(f.model->Optimum().unsqueeze(0))[0].item<double>();
  EXPECT_GT(f.Predict(guess.unsqueeze(0))[0].item<double>(), 0.95 * optimum);
  f.models->Set(nullptr);
  EXPECT_FALSE(optimizer->BestGuess().defined());
}

// Two members that disagree: member m is linear in its own Gabor w_m
// (orthogonal orientations), rate = 25 * (1 + <w_m, x - 0.5> / d*_m) with
// d*_m = 0.5 * sum|w_m|, so rates lie in [0, 50], each member's optimum gives
// it 50, and the mean's optimum (the sign pattern of w_0 + w_1) gives each
// member less.
class DisagreeingModel : public ResponseModel {
 public:
  DisagreeingModel()
      : w_{GaborTemplate(1, kSize, 8.0, 0.0).flatten(),
           GaborTemplate(1, kSize, 8.0, M_PI / 2).flatten()} {}
  int64_t version() const override { return 1; }
  int64_t num_members() const override { return 2; }
  torch::Tensor PredictMembers(const torch::Tensor& images) const override {
    const torch::Tensor x = (images - 0.5).flatten(1);
    std::vector<torch::Tensor> members;
    for (const torch::Tensor& w : w_) {
      members.push_back(25 * (1 + x.matmul(w) / (0.5 * w.abs().sum())));
    }
    return torch::stack(members).unsqueeze(2);
  }

 private:
  std::vector<torch::Tensor> w_;
};

// With `thompson` 1 every start ascends one member, members in turn, so the
// batch holds each member's optimum; with 0 every start ascends the mean,
// and no image is that good for either member; the default 0.5 is half and
// half.
TEST(GradientAscentTest, ThompsonStartsEachReachOneMembersOptimum) {
  Fixture f;
  f.models->Set(std::make_shared<DisagreeingModel>());
  auto members_of = [&](const std::vector<Candidate>& candidates) {
    return f.models->Latest()->PredictMembers(StackImages(candidates)).squeeze(2);  // [2, N]
  };
  auto sampled = f.Make({{"prior_generations", 0}, {"thompson", 1}, {"diversity", 0}});
  const torch::Tensor first = members_of(*sampled->Ask(4, 1));
  const torch::Tensor second = members_of(*sampled->Ask(4, 5));
  for (int i = 0; i < 4; ++i) {
    SCOPED_TRACE(i);
    // Ask k starts with member k % 2.
    const int own_first = i % 2, own_second = (i + 1) % 2;
    EXPECT_GT(first[own_first][i].item<double>(), 47);
    EXPECT_LT(first[1 - own_first][i].item<double>(), 30);  // 25: orthogonal
    EXPECT_GT(second[own_second][i].item<double>(), 47);
    EXPECT_LT(second[1 - own_second][i].item<double>(), 30);
  }
  auto mean = f.Make({{"prior_generations", 0}, {"thompson", 0}, {"diversity", 0}});
  const torch::Tensor blended = members_of(*mean->Ask(4, 1));
  EXPECT_LT(blended.max().item<double>(), 44);  // ~40 for both members
  EXPECT_GT(blended.min().item<double>(), 35);

  // Half the starts: the last two of four.
  auto half = f.Make({{"prior_generations", 0}, {"diversity", 0}});
  const torch::Tensor mixed = members_of(*half->Ask(4, 1));
  for (int i = 0; i < 2; ++i) EXPECT_LT(mixed.select(1, i).max().item<double>(), 44);
  EXPECT_GT(mixed[0][2].item<double>(), 47);
  EXPECT_GT(mixed[1][3].item<double>(), 47);
}

TEST(GradientAscentTest, RmsContrastBudgetHolds) {
  Fixture f;
  auto optimizer = f.Make({{"prior_generations", 0}, {"max_rms_contrast", 0.1}});
  const torch::Tensor images = StackImages(*optimizer->Ask(4, 1));
  // The budget plus half an 8-bit step of quantization.
  EXPECT_LT(images.flatten(1).std(1, /*unbiased=*/false).max().item<double>(), 0.1 + 0.002);
}

TEST(GradientAscentTest, RejectsBadParamsAndAMissingModelSource) {
  Fixture f;
  OptimizerSpec spec;
  spec.name = "gradient_ascent";
  spec.params = {{"steps", 0}};
  OptimizerContext context{f.space, f.objective, 1, f.models};
  auto bad = MakeOptimizer(spec, context);
  ASSERT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("optimizer.params.steps"), std::string::npos);
  spec.params = {{"thompson", 1.5}};
  bad = MakeOptimizer(spec, context);
  ASSERT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("optimizer.params.thompson"), std::string::npos);
  spec.params = {{"no_such_param", 1}};
  EXPECT_EQ(MakeOptimizer(spec, context).status().code(), absl::StatusCode::kInvalidArgument);
  spec.params = {};
  context.models = nullptr;
  EXPECT_EQ(MakeOptimizer(spec, context).status().code(), absl::StatusCode::kFailedPrecondition);
}

// The parts, one by one.

TEST(MeiPartsTest, JitterShiftsCircularlyWithinRange) {
  const torch::Tensor image = torch::rand({2, 1, 8, 8});
  at::Generator g1 = MakeGenerator(1, "jitter"), g2 = MakeGenerator(1, "jitter");
  EXPECT_TRUE(torch::equal(Jitter(0)(image, g1), image));
  for (int trial = 0; trial < 20; ++trial) {
    const torch::Tensor shifted = Jitter(2)(image, g1);
    EXPECT_TRUE(torch::equal(shifted, Jitter(2)(image, g2))) << "deterministic per generator";
    bool found = false;
    for (int64_t dy = -2; dy <= 2; ++dy) {
      for (int64_t dx = -2; dx <= 2; ++dx) {
        found = found || torch::equal(shifted, torch::roll(image, {dy, dx}, {2, 3}));
      }
    }
    EXPECT_TRUE(found);
  }
}

TEST(MeiPartsTest, GradientBlurRemovesFineDetailAndKeepsConstants) {
  const torch::Tensor constant = torch::full({1, 1, 16, 16}, 0.3);
  EXPECT_TRUE(torch::allclose(GradientBlur(1.5)(constant), constant, 1e-5, 1e-6));
  const torch::Tensor checker =
      (torch::arange(16).view({-1, 1}) + torch::arange(16).view({1, -1})).remainder(2)
          .to(torch::kFloat)
          .sub(0.5)
          .view({1, 1, 16, 16});
  const torch::Tensor blurred = GradientBlur(1.5)(checker);
  EXPECT_EQ(blurred.sizes(), checker.sizes());
  // Away from the replicated edges, the finest pattern is gone.
  EXPECT_LT(blurred.slice(2, 5, 11).slice(3, 5, 11).abs().max().item<double>(),
            0.05 * checker.abs().max().item<double>());
  EXPECT_TRUE(torch::equal(GradientBlur(0)(checker), checker));
}

TEST(MeiPartsTest, ConstraintKeepsTheBoxAndTheContrastBudget) {
  const torch::Tensor images = torch::randn({3, 1, 16, 16}) * 2 + 0.5;
  const torch::Tensor boxed = ImageConstraint(0)(images);
  EXPECT_GE(boxed.min().item<double>(), 0.0);
  EXPECT_LE(boxed.max().item<double>(), 1.0);
  const torch::Tensor budgeted = ImageConstraint(0.1)(images);
  EXPECT_LE(budgeted.flatten(1).std(1, false).max().item<double>(), 0.1 + 1e-5);
  const torch::Tensor faint = 0.5 + 0.01 * torch::randn({2, 1, 16, 16});
  EXPECT_TRUE(torch::allclose(ImageConstraint(0.1)(faint), faint.clamp(0, 1)))
      << "images within the budget are not changed";
}

TEST(MeiPartsTest, ClampToBoxPassesOnlyGradientsThatLeadBackIntoTheBox) {
  // Pixels below, inside and above the box; the loss's gradient is +1 for
  // the first three and -1 for the last three.
  const torch::Tensor x =
      torch::tensor({-0.5f, 0.5f, 1.5f, -0.5f, 0.5f, 1.5f}).requires_grad_(true);
  const torch::Tensor sign = torch::tensor({1.f, 1.f, 1.f, -1.f, -1.f, -1.f});
  const torch::Tensor y = ClampToBox(x);
  EXPECT_TRUE(torch::equal(y.detach(), x.detach().clamp(0, 1)));
  (y * sign).sum().backward();
  // A descent step (x - gradient) moves x=1.5 down only with gradient +1
  // and x=-0.5 up only with gradient -1; inside the box everything passes.
  EXPECT_TRUE(torch::equal(x.grad(), torch::tensor({0.f, 1.f, 1.f, -1.f, -1.f, 0.f})))
      << x.grad();
  // A plain clamp would have stopped both outside pixels for good.
  const torch::Tensor z = x.detach().clone().requires_grad_(true);
  (z.clamp(0, 1) * sign).sum().backward();
  EXPECT_EQ(z.grad()[2].item<float>(), 0.f);
  EXPECT_EQ(z.grad()[3].item<float>(), 0.f);
}

TEST(MeiPartsTest, StopperCountsSteps) {
  FixedSteps stopper(3);
  EXPECT_FALSE(stopper.Stop(2));
  EXPECT_TRUE(stopper.Stop(3));
}

TEST(MeiPartsTest, SimilarityAndEnsemblePrediction) {
  const torch::Tensor a = torch::rand({1, 1, 8, 8});
  EXPECT_NEAR(MeanPairwiseCosine(torch::cat({a, a})).item<double>(), 1.0, 1e-5);
  EXPECT_NEAR(MeanPairwiseCosine(torch::cat({a, 1 - a})).item<double>(), -1.0, 1e-5);
  EXPECT_EQ(MeanPairwiseCosine(a).item<double>(), 0.0);

  const auto objective = *Objective::Create(ObjectiveSpec{}, 1);
  testing::BrightnessModel model(1, /*gain=*/10);
  const PredictedObjective p =
      PredictObjective(model, objective, torch::full({2, 1, 4, 4}, 0.5));
  EXPECT_NEAR(p.mean[0].item<double>(), (5.0 + 5.5) / 2, 1e-5);
  EXPECT_NEAR(p.spread[0].item<double>(), 0.25, 1e-5);
  ASSERT_EQ(p.members.sizes(), (std::vector<int64_t>{2, 2}));
  EXPECT_NEAR(p.members[1][0].item<double>(), 5.5, 1e-5);
  const PredictedObjective chunked =
      PredictObjectiveNoGrad(model, objective, torch::full({3, 1, 4, 4}, 0.5), /*chunk=*/2);
  ASSERT_EQ(chunked.members.sizes(), (std::vector<int64_t>{2, 3}));
  EXPECT_NEAR(chunked.members[0][2].item<double>(), 5.0, 1e-5);
}

}  // namespace
}  // namespace stimloop
