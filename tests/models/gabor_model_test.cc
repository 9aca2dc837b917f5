// The parametric Gabor surrogate (surrogate.params.model_class 1) and its
// fit, on simulated neurons: what it learns from the trials a closed loop
// collects, its checkpoints, its errors, and its use by a session.
#include "models/gabor_model.h"

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "clients/simulated_trials.h"
#include "models/gabor_fit.h"
#include "models/session_models.h"
#include "models/simulated_neuron.h"
#include "models/surrogate_config.h"
#include "tests/models/model_test_util.h"

namespace stimloop {
namespace {

constexpr int64_t kSize = kTestImageSize;
constexpr double kWindowS = 0.2;

SurrogateSpec Spec(std::map<std::string, double> params = {}) {
  params["model_class"] = 1;
  absl::StatusOr<SurrogateSpec> spec = ParseSurrogateSpec(params);
  EXPECT_TRUE(spec.ok()) << spec.status();
  return *spec;
}

// `n` trials of a genetic search driven by the cell (clients/simulated_trials.h).
SimulatedTrials Search(const SimulatedNeuron& cell, int64_t n, uint64_t seed) {
  absl::StatusOr<SimulatedTrials> trials = GeneticSearchTrials(cell, n, 40, kWindowS, seed);
  EXPECT_TRUE(trials.ok()) << trials.status();
  return *std::move(trials);
}

// The model learns each kind of cell from 500 noisy trials of one search:
// its predictions follow the cell's noiseless rates on 1000 stimuli of
// another search, every member's field lands on the cell's, and the
// images' gradient exists (gradient_ascent differentiates through it).
void ExpectLearnsCell(CellKind kind, uint64_t neuron_seed) {
  const std::unique_ptr<SimulatedNeuron> cell = Neuron(kind, neuron_seed);
  const SimulatedTrials fit = Search(*cell, 500, 11);
  const SimulatedTrials test = Search(*cell, 1000, 12);
  FitMetrics metrics;
  auto model = FitGaborModel({fit.images, fit.rates, {}}, Spec(), 1, 7, nullptr, &metrics);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->version(), 1);
  EXPECT_EQ((*model)->num_members(), 5);
  EXPECT_EQ(metrics.num_trials, 500);
  EXPECT_GE(metrics.num_heldout_trials, 95);
  ASSERT_EQ(metrics.heldout_correlation.size(), 1u);
  EXPECT_GT(metrics.heldout_correlation[0], 0.4);  // against noisy single trials

  const torch::Tensor predicted = (*model)->PredictMembers(test.images).mean(0).select(1, 0);
  const double truth = Correlation(predicted.detach(), test.true_rates.select(1, 0));
  std::printf("%s cell: held-out correlation %.3f (noisy), %.3f (noiseless, new stimuli)\n",
              std::string(CellKindName(kind)).c_str(), metrics.heldout_correlation[0], truth);
  EXPECT_GT(truth, 0.9);
  const GaborParams& rf = cell->gabor();
  const GaborParameters& p = (*model)->parameters();
  for (int64_t m = 0; m < (*model)->num_members(); ++m) {
    const double dx = p.cx[m][0].item<double>() * kSize - rf.center_x;
    const double dy = p.cy[m][0].item<double>() * kSize - rf.center_y;
    // Within one envelope sigma: along the carrier a shift of the center
    // trades against the phase, so the center is the loosest parameter.
    EXPECT_LT(std::hypot(dx, dy), rf.sigma) << "member " << m;
  }
  torch::Tensor images = test.images.narrow(0, 0, 4).clone().requires_grad_(true);
  (*model)->PredictMembers(images).sum().backward();
  EXPECT_GT(images.grad().abs().sum().item<double>(), 0);
}

TEST(GaborModelFitTest, LearnsSimpleCellFrom500NoisyTrials) {
  ExpectLearnsCell(CellKind::kSimple, 3);
}

TEST(GaborModelFitTest, LearnsComplexCellFrom500NoisyTrials) {
  ExpectLearnsCell(CellKind::kComplex, 4);
}

// Several neurons are fitted at once, each to its own cell.
TEST(GaborModelFitTest, FitsEveryNeuronOfAPopulationToItsOwnCell) {
  SimulatedNeuronSpec base;
  base.height = base.width = kSize;
  base.seed = 21;
  absl::StatusOr<SimulatedPopulation> population = SimulatedPopulation::Create(base, 2, true);
  ASSERT_TRUE(population.ok()) << population.status();
  // Stimuli that drive either cell: half from a search on each.
  const torch::Tensor images = torch::cat(
      {Search(population->neuron(0), 300, 1).images, Search(population->neuron(1), 300, 2).images});
  auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
  const torch::Tensor rates = PoissonRates(population->Rates(images), kWindowS, gen);
  auto model =
      FitGaborModel({images, rates, {}}, Spec({{"ensemble_size", 2}}), 1, 3, nullptr, nullptr);
  ASSERT_TRUE(model.ok()) << model.status();
  const torch::Tensor test = torch::cat(
      {Search(population->neuron(0), 200, 3).images, Search(population->neuron(1), 200, 4).images});
  torch::NoGradGuard no_grad;
  const torch::Tensor predicted = (*model)->PredictMembers(test).mean(0);
  const torch::Tensor truth = population->Rates(test);
  for (int64_t j = 0; j < 2; ++j) {
    EXPECT_GT(Correlation(predicted.select(1, j), truth.select(1, j)), 0.8) << "neuron " << j;
  }
}

// A checkpoint restores the same predictions; bytes that are not one, or
// one saved for other images, are refused with INVALID_ARGUMENT.
TEST(GaborModelTest, CheckpointRoundTripAndBadCheckpoints) {
  const std::unique_ptr<SimulatedNeuron> cell = Neuron(CellKind::kSimple, 5);
  const SimulatedTrials trials = Search(*cell, 200, 1);
  auto model =
      FitGaborModel({trials.images, trials.rates, {}},
                    Spec({{"ensemble_size", 2}, {"parametric_steps", 20}}), 4, 1, nullptr, nullptr);
  ASSERT_TRUE(model.ok()) << model.status();
  absl::StatusOr<std::string> bytes = SerializeGaborModel(**model);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  auto restored = DeserializeGaborModel(*bytes, kSize, kSize);
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ((*restored)->version(), 4);
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal((*restored)->PredictMembers(trials.images),
                           (*model)->PredictMembers(trials.images)));

  auto other_size = DeserializeGaborModel(*bytes, kSize, 32);
  ASSERT_FALSE(other_size.ok());
  EXPECT_EQ(other_size.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(other_size.status().message().find("saved for 64x64 images, the session's are 64x32"),
            std::string::npos)
      << other_size.status();
  auto garbage = DeserializeGaborModel("not a checkpoint", kSize, kSize);
  ASSERT_FALSE(garbage.ok());
  EXPECT_EQ(garbage.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(garbage.status().message().find("Gabor model checkpoint: unreadable"),
            std::string::npos)
      << garbage.status();
}

// Same inputs and seed, same model; another seed draws other starts and
// resamples.
TEST(GaborModelFitTest, DeterministicGivenTheSeed) {
  const std::unique_ptr<SimulatedNeuron> cell = Neuron(CellKind::kComplex, 6);
  const SimulatedTrials trials = Search(*cell, 200, 2);
  const SurrogateSpec spec = Spec({{"ensemble_size", 2}, {"parametric_steps", 30}});
  auto fit = [&](uint64_t seed) {
    auto model = FitGaborModel({trials.images, trials.rates, {}}, spec, 1, seed, nullptr, nullptr);
    EXPECT_TRUE(model.ok()) << model.status();
    return (*model)->parameters().all();
  };
  const auto a = fit(9), b = fit(9), c = fit(10);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << "parameter " << i;
  EXPECT_FALSE(torch::equal(a[0], c[0]));
}

// Bad data, too little of it and a cancelled fit each get their status.
TEST(GaborModelFitTest, ErrorsForBadDataTooFewTrialsAndCancel) {
  const std::unique_ptr<SimulatedNeuron> cell = Neuron(CellKind::kSimple, 7);
  const SimulatedTrials trials = Search(*cell, 100, 3);
  const SurrogateSpec spec = Spec({{"parametric_steps", 10}});
  auto wrong_rates = FitGaborModel({trials.images, trials.rates.narrow(0, 0, 50), {}}, spec, 1, 1,
                                   nullptr, nullptr);
  ASSERT_FALSE(wrong_rates.ok());
  EXPECT_EQ(wrong_rates.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(wrong_rates.status().message().find("training_data.rates"), std::string::npos)
      << wrong_rates.status();
  auto too_few = FitGaborModel({trials.images.narrow(0, 0, 20), trials.rates.narrow(0, 0, 20), {}},
                               spec, 1, 1, nullptr, nullptr);
  ASSERT_FALSE(too_few.ok());
  EXPECT_EQ(too_few.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(too_few.status().message().find("fewer than surrogate.params.min_trials = 50"),
            std::string::npos)
      << too_few.status();
  const std::atomic<bool> cancel{true};
  auto cancelled = FitGaborModel({trials.images, trials.rates, {}}, spec, 1, 1, &cancel, nullptr);
  ASSERT_FALSE(cancelled.ok());
  EXPECT_EQ(cancelled.status().code(), absl::StatusCode::kCancelled);
}

// The config keys of the model class: range errors name the key, and a
// TorchScript path cannot go with the parametric model.
TEST(GaborModelSpecTest, KeysAndErrorsNameTheField) {
  EXPECT_EQ(ParseSurrogateSpec({})->model_class, SurrogateClass::kFlexible);
  EXPECT_EQ(Spec().model_class, SurrogateClass::kParametricGabor);
  EXPECT_EQ(Spec().parametric_starts, 8);
  struct Case {
    std::map<std::string, double> params;
    std::string frontend_path, model_path, message;
  };
  const std::vector<Case> cases = {
      {{{"model_class", 3}}, "", "", "surrogate.params.model_class: 3 is outside [0, 2]"},
      {{{"parametric_starts", 0}}, "", "", "surrogate.params.parametric_starts: 0 is outside"},
      {{{"parametric_steps", 5}}, "", "", "surrogate.params.parametric_steps: 5 is outside"},
      {{{"model_class", 1}},
       "bank.pt",
       "",
       "config.surrogate.frontend_path: surrogate.params."
       "model_class 1"},
      {{{"model_class", 1}},
       "",
       "whole.pt",
       "config.surrogate.model_path: surrogate.params."
       "model_class 1"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<SurrogateSpec> spec =
        ParseSurrogateSpec(c.params, c.frontend_path, c.model_path);
    ASSERT_FALSE(spec.ok()) << c.message;
    EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(spec.status().message().find(c.message), std::string::npos) << spec.status();
  }
}

// A session's models with model_class 1: refits publish Gabor models, and
// the checkpoint each version reports loads back to the same predictions.
TEST(GaborModelSessionTest, RefitsPublishGaborModelsWhoseCheckpointsLoad) {
  SessionModelsSpec spec;
  auto surrogate = ParseSurrogateSettings(
      {{"model_class", 1}, {"ensemble_size", 2}, {"parametric_steps", 30}}, "", "");
  ASSERT_TRUE(surrogate.ok()) << surrogate.status();
  spec.surrogate = *surrogate;
  spec.height = spec.width = kSize;
  spec.seed = 17;
  std::string checkpoint;
  int64_t versions = 0;
  absl::StatusOr<SessionModels> models = MakeSessionModels(
      spec,
      [&](int64_t version, const std::map<std::string, double>& metrics, const std::string& bytes) {
        versions = version;
        checkpoint = bytes;
        EXPECT_EQ(metrics.count("heldout_correlation.0"), 1u);
      });
  ASSERT_TRUE(models.ok()) << models.status();
  ASSERT_NE(models->refits, nullptr);
  const std::unique_ptr<SimulatedNeuron> cell = Neuron(CellKind::kSimple, 8);
  const SimulatedTrials trials = Search(*cell, 120, 4);
  for (int64_t i = 0; i < 120; ++i) {
    const double rate = trials.rates[i][0].item<double>();
    ASSERT_TRUE(models->refits->Append(trials.images[i], {rate}, i).ok());
  }
  ASSERT_TRUE(models->refits->AfterAsk(1));
  models->refits->WaitIdle();
  ASSERT_TRUE(models->refits->last_error().ok()) << models->refits->last_error();
  const std::shared_ptr<const ResponseModel> latest = models->refits->Newest();
  ASSERT_NE(latest, nullptr);
  EXPECT_EQ(versions, 1);
  EXPECT_NE(dynamic_cast<const GaborModel*>(latest.get()), nullptr);
  absl::StatusOr<std::shared_ptr<const ResponseModel>> loaded = models->load_checkpoint(checkpoint);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal((*loaded)->PredictMembers(trials.images),
                           latest->PredictMembers(trials.images)));
}

}  // namespace
}  // namespace stimloop
