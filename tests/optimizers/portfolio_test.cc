#include "optimizers/portfolio.h"

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "optimizers/optimizer_state.h"
#include "tests/optimizers/fake_models.h"

namespace stimloop {
namespace {

using testing::FixedModelSource;
using testing::GaborTemplate;
using testing::StackImages;
using testing::TemplateModel;

constexpr int64_t kSize = 24;
constexpr int kGeneration = 20;

// A noiseless toy: the "neuron" is a Gabor template cell; the model source
// holds either that very cell (a model that fits) or the cell with the
// opposite sign (a model that is wrong everywhere).
struct Toy {
  std::shared_ptr<const ImageSpace> space;
  std::shared_ptr<const Objective> objective;
  std::shared_ptr<const TemplateModel> neuron;
  std::shared_ptr<FixedModelSource> models = std::make_shared<FixedModelSource>();

  explicit Toy(bool model_fits) {
    ImageSpaceSpec spec;
    spec.name = "pixel";
    space = *MakeImageSpace(spec, ImageShape{1, kSize, kSize});
    objective = std::make_shared<const Objective>(*Objective::Create(ObjectiveSpec{}, 1));
    const torch::Tensor w = GaborTemplate(1, kSize, 8.0, 0.6);
    neuron = std::make_shared<TemplateModel>(w, /*version=*/1);
    models->Set(model_fits ? neuron : std::make_shared<TemplateModel>(-w, /*version=*/1));
  }

  std::unique_ptr<Optimizer> Make(const std::string& name,
                                  std::map<std::string, double> params = {}) const {
    OptimizerSpec spec;
    spec.name = name;
    spec.params = std::move(params);
    if (name == "portfolio") spec.params.emplace("gradient_ascent.steps", 30);
    OptimizerContext context{space, objective, /*seed=*/5, models};
    auto optimizer = MakeOptimizer(spec, context);
    EXPECT_TRUE(optimizer.ok()) << optimizer.status();
    return optimizer.ok() ? *std::move(optimizer) : nullptr;
  }

  // Runs `generations` generations, telling the cell's true rates; returns
  // the best rate measured, as a fraction of the cell's optimum.
  double Run(Optimizer& optimizer, int generations) const {
    double best = 0;
    int64_t next_id = 1;
    for (int g = 0; g < generations; ++g) {
      auto candidates = optimizer.Ask(kGeneration, next_id);
      EXPECT_TRUE(candidates.ok()) << candidates.status();
      if (!candidates.ok()) return 0;
      next_id += kGeneration;
      const torch::Tensor rates = neuron->PredictMembers(StackImages(*candidates))[0].squeeze(1);
      std::vector<Observation> observations;
      for (int i = 0; i < kGeneration; ++i) {
        const double rate = rates[i].item<double>();
        observations.push_back({(*candidates)[i].id, rate, 1});
        best = std::max(best, rate / neuron->peak());
      }
      EXPECT_TRUE(optimizer.Tell(observations).ok());
    }
    return best;
  }
};

TEST(PortfolioTest, AModelThatFitsEarnsTheLargerShareAndBeatsModelFreeSearch) {
  Toy toy(/*model_fits=*/true);
  auto portfolio = toy.Make("portfolio");
  const double with_model = toy.Run(*portfolio, 6);
  EXPECT_DOUBLE_EQ(static_cast<Portfolio&>(*portfolio).share(), 0.75);
  auto cmaes = toy.Make("cmaes");
  const double model_free = toy.Run(*cmaes, 6);
  EXPECT_GT(with_model, 0.9);
  EXPECT_GT(with_model, model_free + 0.2) << "cmaes alone reached " << model_free;
}

TEST(PortfolioTest, AWrongModelLosesItsShareAndSearchGoesOnWithoutIt) {
  Toy toy(/*model_fits=*/false);
  auto portfolio = toy.Make("portfolio");
  auto random = toy.Make("random");
  const double first = toy.Run(*toy.Make("portfolio"), 1);
  const double with_wrong_model = toy.Run(*portfolio, 12);
  EXPECT_DOUBLE_EQ(static_cast<Portfolio&>(*portfolio).share(), 0.25);
  EXPECT_GT(with_wrong_model, 2 * first);
  EXPECT_GT(with_wrong_model, toy.Run(*random, 12));
}

TEST(PortfolioTest, PreparedAsksAndRestoredStatesGiveTheSameCandidates) {
  Toy toy(/*model_fits=*/true);
  auto straight = toy.Make("portfolio");
  auto prepared = toy.Make("portfolio");
  toy.Run(*straight, 2);
  toy.Run(*prepared, 2);
  const std::string before = SaveOptimizerState(*prepared);
  ASSERT_TRUE(prepared->PrepareAsk(kGeneration, 41).ok());
  EXPECT_EQ(SaveOptimizerState(*prepared), before) << "PrepareAsk changed the state";

  auto restored = toy.Make("portfolio");
  ASSERT_TRUE(LoadOptimizerState(*restored, before).ok());
  auto a = straight->Ask(kGeneration, 41);
  auto b = prepared->Ask(kGeneration, 41);
  auto c = restored->Ask(kGeneration, 41);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  for (int i = 0; i < kGeneration; ++i) {
    EXPECT_TRUE(torch::equal((*a)[i].image, (*b)[i].image)) << i;
    EXPECT_TRUE(torch::equal((*a)[i].image, (*c)[i].image)) << i;
    EXPECT_EQ((*a)[i].origin, (*b)[i].origin);
  }
  EXPECT_EQ(SaveOptimizerState(*straight), SaveOptimizerState(*prepared));
  EXPECT_EQ(SaveOptimizerState(*straight), SaveOptimizerState(*restored));
}

TEST(PortfolioTest, EachSourceProposesItsShareAndHearsOnlyOfItsOwn) {
  Toy toy(/*model_fits=*/true);
  auto portfolio = toy.Make("portfolio", {{"initial_share", 0.3}});
  auto candidates = portfolio->Ask(10, 1);
  ASSERT_TRUE(candidates.ok());
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ((*candidates)[i].id, i + 1);
    EXPECT_EQ((*candidates)[i].origin, i < 3 ? "prior" : "cmaes") << i;
  }
  const std::string before = SaveOptimizerState(*portfolio);
  const std::vector<Observation> unknown{{1, 2.0, 1}, {11, 1.0, 1}};
  const absl::Status status = portfolio->Tell(unknown);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("observations[1].id: 11 was never proposed by portfolio"),
            std::string::npos)
      << status;
  EXPECT_EQ(SaveOptimizerState(*portfolio), before);
  const std::vector<Observation> bad_value{{2, 1.0, 1}, {5, std::nan(""), 1}};
  EXPECT_EQ(portfolio->Tell(bad_value).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SaveOptimizerState(*portfolio), before);
}

TEST(PortfolioTest, AStateItDidNotWriteIsRefusedAndChangesNothing) {
  Toy toy(/*model_fits=*/true);
  auto portfolio = toy.Make("portfolio");
  toy.Run(*portfolio, 2);
  const std::string before = SaveOptimizerState(*portfolio);
  auto cmaes = toy.Make("cmaes");
  const absl::Status status = LoadOptimizerState(*portfolio, SaveOptimizerState(*cmaes));
  EXPECT_TRUE(status.code() == absl::StatusCode::kInvalidArgument ||
              status.code() == absl::StatusCode::kDataLoss)
      << status;
  EXPECT_NE(status.message().find("optimizer state"), std::string::npos) << status;
  EXPECT_EQ(SaveOptimizerState(*portfolio), before);
  EXPECT_FALSE(LoadOptimizerState(*portfolio, "not an archive").ok());
  EXPECT_EQ(SaveOptimizerState(*portfolio), before);
}

TEST(PortfolioTest, BadParametersNameTheField) {
  Toy toy(/*model_fits=*/true);
  const std::vector<std::pair<std::map<std::string, double>, std::string>> cases = {
      {{{"min_share", 2}}, "optimizer.params.min_share: 2"},
      {{{"min_share", 0.6}, {"max_share", 0.4}}, "optimizer.params.max_share: 0.4 is below"},
      {{{"window", 0}}, "optimizer.params.window"},
      {{{"gradient_ascent.steps", -1}}, "optimizer.params.gradient_ascent.steps"},
      {{{"cmaes.no_such", 1}}, "optimizer.params.cmaes.no_such"},
      {{{"no_such", 1}}, "optimizer.params.no_such"},
  };
  for (const auto& [params, message] : cases) {
    OptimizerSpec spec;
    spec.name = "portfolio";
    spec.params = params;
    OptimizerContext context{toy.space, toy.objective, 5, toy.models};
    auto optimizer = MakeOptimizer(spec, context);
    ASSERT_FALSE(optimizer.ok()) << message;
    EXPECT_EQ(optimizer.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(optimizer.status().message().find(message), std::string::npos)
        << optimizer.status();
  }
  OptimizerSpec spec;
  spec.name = "portfolio";
  OptimizerContext no_models{toy.space, toy.objective, 5, nullptr};
  EXPECT_EQ(MakeOptimizer(spec, no_models).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace stimloop
