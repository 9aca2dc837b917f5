// Both model classes in one ensemble (surrogate.params.model_class 2): the
// fit that decides whether the parametric members join, the warm start of
// the parametric part, checkpoints, config errors and a session's refits.
#include "models/paired_model.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "clients/simulated_trials.h"
#include "models/gabor_fit.h"
#include "models/paired_fit.h"
#include "models/session_models.h"
#include "models/simulated_neuron.h"
#include "models/surrogate_config.h"
#include "models/torchscript_model.h"
#include "tests/models/model_test_util.h"

namespace stimloop {
namespace {

constexpr double kWindowS = 0.2;

// The parametric part with the settings the default strategy uses.
SurrogateSpec Spec(std::map<std::string, double> params = {}) {
  params.emplace("model_class", 2);
  params.emplace("parametric_starts", 4);
  params.emplace("parametric_steps", 100);
  absl::StatusOr<SurrogateSpec> spec = ParseSurrogateSpec(params);
  EXPECT_TRUE(spec.ok()) << spec.status();
  return *spec;
}

SimulatedTrials Search(const SimulatedNeuron& cell, int64_t n, uint64_t seed) {
  absl::StatusOr<SimulatedTrials> trials = GeneticSearchTrials(cell, n, 40, kWindowS, seed);
  EXPECT_TRUE(trials.ok()) << trials.status();
  return *std::move(trials);
}

std::shared_ptr<const FrontEnd> FrontEndFor(const SurrogateSpec& spec, int64_t channels) {
  absl::StatusOr<std::shared_ptr<const FrontEnd>> front_end =
      MakeFrontEnd(spec, {channels, kTestImageSize, kTestImageSize});
  EXPECT_TRUE(front_end.ok()) << front_end.status();
  return *front_end;
}

double MeanOf(const std::vector<double>& values) {
  double sum = 0;
  for (double v : values) sum += v;
  return values.empty() ? 0 : sum / static_cast<double>(values.size());
}

// On a simple cell the Gabor pair predicts held-out trials better than the
// flexible model, so its members join: the ensemble has both classes'
// members (flexible first) and follows the cell on new stimuli.
TEST(PairedModelFitTest, ParametricMembersJoinOnACellTheyDescribe) {
  const std::unique_ptr<SimulatedNeuron> cell = Neuron(CellKind::kSimple, 3);
  const SimulatedTrials fit = Search(*cell, 400, 11);
  const SimulatedTrials test = Search(*cell, 400, 12);
  const SurrogateSpec spec = Spec();
  PairedFitMetrics metrics;
  auto model = FitPairedModel({fit.images, fit.rates, {}}, spec, FrontEndFor(spec, 1), 1, 7,
                              nullptr, &metrics);
  ASSERT_TRUE(model.ok()) << model.status();
  std::printf("simple cell: held-out correlation flexible %.3f, parametric %.3f, both %.3f\n",
              MeanOf(metrics.flexible.heldout_correlation),
              MeanOf(metrics.parametric.heldout_correlation),
              MeanOf(metrics.ensemble.heldout_correlation));
  EXPECT_GT(MeanOf(metrics.parametric.heldout_correlation),
            MeanOf(metrics.flexible.heldout_correlation));
  EXPECT_TRUE(metrics.parametric_joins);
  EXPECT_TRUE((*model)->parametric_joins());
  EXPECT_EQ((*model)->num_members(), 10);
  EXPECT_EQ(metrics.ensemble.member_epochs.size(), 10u);
  EXPECT_EQ(metrics.flexible.num_heldout_trials, metrics.parametric.num_heldout_trials);

  torch::NoGradGuard no_grad;
  const torch::Tensor members = (*model)->PredictMembers(test.images);
  ASSERT_EQ(members.size(0), 10);
  EXPECT_TRUE(
      torch::allclose(members.narrow(0, 0, 5), (*model)->flexible()->PredictMembers(test.images)));
  EXPECT_TRUE(torch::allclose(members.narrow(0, 5, 5),
                              (*model)->parametric()->PredictMembers(test.images)));
  EXPECT_GT(Correlation(members.mean(0).select(1, 0), test.true_rates.select(1, 0)), 0.85);
}

// A colour-opponent cell is invisible to the luminance-only Gabor pair: the
// flexible model (RGB front end) predicts better and proposes alone, but
// the model still holds the parametric fit for the next version.
TEST(PairedModelFitTest, ParametricMembersStayOutWhereTheyPredictWorse) {
  const std::unique_ptr<SimulatedNeuron> cell = Neuron(CellKind::kColor, 5, 3);
  const SimulatedTrials fit = Search(*cell, 400, 13);
  const SurrogateSpec spec = Spec();
  PairedFitMetrics metrics;
  auto model = FitPairedModel({fit.images, fit.rates, {}}, spec, FrontEndFor(spec, 3), 1, 7,
                              nullptr, &metrics);
  ASSERT_TRUE(model.ok()) << model.status();
  std::printf("colour cell: held-out correlation flexible %.3f, parametric %.3f\n",
              MeanOf(metrics.flexible.heldout_correlation),
              MeanOf(metrics.parametric.heldout_correlation));
  EXPECT_FALSE(metrics.parametric_joins);
  EXPECT_EQ((*model)->num_members(), 5);
  EXPECT_NE((*model)->parametric(), nullptr);
  EXPECT_EQ(metrics.ensemble.heldout_correlation, metrics.flexible.heldout_correlation);
}

// A refit that starts from the previous version's Gabor fit keeps its
// quality with one start and a few steps; the same budget from scratch
// does not get there.
TEST(PairedModelFitTest, ParametricWarmStartContinuesThePreviousFit) {
  const std::unique_ptr<SimulatedNeuron> cell = Neuron(CellKind::kComplex, 4);
  const SimulatedTrials first = Search(*cell, 300, 21);
  const SimulatedTrials more = Search(*cell, 400, 22);
  const SimulatedTrials test = Search(*cell, 400, 23);
  absl::StatusOr<SurrogateSpec> full = ParseSurrogateSpec({{"model_class", 1}});
  ASSERT_TRUE(full.ok());
  auto previous = FitGaborModel({first.images, first.rates, {}}, *full, 1, 3, nullptr, nullptr);
  ASSERT_TRUE(previous.ok()) << previous.status();

  absl::StatusOr<SurrogateSpec> cheap =
      ParseSurrogateSpec({{"model_class", 1}, {"parametric_starts", 1}, {"parametric_steps", 10}});
  ASSERT_TRUE(cheap.ok());
  auto warm =
      FitGaborModel({more.images, more.rates, {}}, *cheap, 2, 4, nullptr, nullptr, previous->get());
  auto cold = FitGaborModel({more.images, more.rates, {}}, *cheap, 2, 4, nullptr, nullptr);
  ASSERT_TRUE(warm.ok() && cold.ok());
  torch::NoGradGuard no_grad;
  auto truth = [&](const GaborModel& m) {
    return Correlation(m.PredictMembers(test.images).mean(0).select(1, 0),
                       test.true_rates.select(1, 0));
  };
  std::printf("complex cell, truth correlation: previous %.3f, warm %.3f, cold %.3f\n",
              truth(**previous), truth(**warm), truth(**cold));
  EXPECT_GT(truth(**warm), 0.9);
  EXPECT_GT(truth(**warm), truth(**previous) - 0.05);
  EXPECT_LT(truth(**cold), truth(**warm) - 0.1);
}

// A warm refit with the default strategy's settings (4 starts, the last
// one the previous version, 100 steps) on more data must be at least as
// good as the version it continues, on a simple cell.
TEST(PairedModelFitTest, WarmRefitOnMoreDataKeepsThePreviousQuality) {
  const std::unique_ptr<SimulatedNeuron> cell = Neuron(CellKind::kSimple, 6);
  const SimulatedTrials first = Search(*cell, 300, 31);
  const SimulatedTrials more = Search(*cell, 700, 32);
  const SimulatedTrials test = Search(*cell, 400, 33);
  absl::StatusOr<SurrogateSpec> spec =
      ParseSurrogateSpec({{"model_class", 1}, {"parametric_starts", 4}, {"parametric_steps", 100}});
  ASSERT_TRUE(spec.ok());
  auto previous = FitGaborModel({first.images, first.rates, {}}, *spec, 1, 3, nullptr, nullptr);
  ASSERT_TRUE(previous.ok()) << previous.status();
  FitMetrics metrics;
  auto warm =
      FitGaborModel({more.images, more.rates, {}}, *spec, 2, 4, nullptr, &metrics, previous->get());
  ASSERT_TRUE(warm.ok()) << warm.status();
  torch::NoGradGuard no_grad;
  auto truth = [&](const GaborModel& m) {
    return Correlation(m.PredictMembers(test.images).mean(0).select(1, 0),
                       test.true_rates.select(1, 0));
  };
  std::printf("simple cell, truth correlation: previous %.3f, warm %.3f\n",
              truth(**previous), truth(**warm));
  EXPECT_GT(truth(**warm), 0.9);
  EXPECT_GT(truth(**warm), truth(**previous) - 0.01);
  EXPECT_EQ(metrics.steps, 100);
}

// A checkpoint restores both parts and the join decision; bytes that are
// not a paired checkpoint (another class's included) are INVALID_ARGUMENT.
TEST(PairedModelTest, CheckpointRoundTripAndBadCheckpoints) {
  const std::unique_ptr<SimulatedNeuron> cell = Neuron(CellKind::kSimple, 6);
  const SimulatedTrials trials = Search(*cell, 200, 1);
  const SurrogateSpec spec =
      Spec({{"ensemble_size", 2}, {"parametric_steps", 20}, {"max_epochs", 5}});
  const std::shared_ptr<const FrontEnd> front_end = FrontEndFor(spec, 1);
  auto model =
      FitPairedModel({trials.images, trials.rates, {}}, spec, front_end, 3, 1, nullptr, nullptr);
  ASSERT_TRUE(model.ok()) << model.status();
  absl::StatusOr<std::string> bytes = SerializePairedModel(**model);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  auto restored = DeserializePairedModel(*bytes, front_end, kTestImageSize, kTestImageSize);
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ((*restored)->version(), 3);
  EXPECT_EQ((*restored)->parametric_joins(), (*model)->parametric_joins());
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal((*restored)->PredictMembers(trials.images),
                           (*model)->PredictMembers(trials.images)));
  EXPECT_TRUE(torch::equal((*restored)->parametric()->PredictMembers(trials.images),
                           (*model)->parametric()->PredictMembers(trials.images)));

  struct Case {
    std::string bytes, message;
  };
  const std::vector<Case> cases = {
      {"not a checkpoint", "paired model checkpoint: unreadable"},
      {*SerializeGaborModel(*(*model)->parametric()), "not a stimloop paired model"},
  };
  for (const Case& c : cases) {
    auto bad = DeserializePairedModel(c.bytes, front_end, kTestImageSize, kTestImageSize);
    ASSERT_FALSE(bad.ok()) << c.message;
    EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(bad.status().message().find(c.message), std::string::npos) << bad.status();
  }
  auto other_size = DeserializePairedModel(*bytes, front_end, kTestImageSize, 32);
  ASSERT_FALSE(other_size.ok());
  EXPECT_NE(other_size.status().message().find("Gabor model checkpoint: saved for"),
            std::string::npos)
      << other_size.status();
}

// The config: model_class 2 is accepted with a TorchScript front end (its
// flexible part's), not with a whole TorchScript model; 3 is out of range.
TEST(PairedModelSpecTest, KeysAndErrorsNameTheField) {
  EXPECT_EQ(Spec().model_class, SurrogateClass::kPaired);
  EXPECT_TRUE(ParseSurrogateSpec({{"model_class", 2}}, "bank.pt", "").ok());
  struct Case {
    std::map<std::string, double> params;
    std::string model_path, message;
  };
  const std::vector<Case> cases = {
      {{{"model_class", 3}}, "", "surrogate.params.model_class: 3 is outside [0, 2]"},
      {{{"model_class", 2}},
       "whole.pt",
       "config.surrogate.model_path: surrogate.params."
       "model_class 2"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<SurrogateSpec> spec = ParseSurrogateSpec(c.params, "", c.model_path);
    ASSERT_FALSE(spec.ok()) << c.message;
    EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(spec.status().message().find(c.message), std::string::npos) << spec.status();
  }
}

// A session's models with model_class 2: every refit publishes a paired
// model, reports both parts' held-out correlations and the join decision,
// and its checkpoint loads back to the same predictions; the second
// version's parametric part starts from the first's.
TEST(PairedModelSessionTest, RefitsPublishPairedModelsWhoseCheckpointsLoad) {
  SessionModelsSpec spec;
  auto surrogate = ParseSurrogateSettings(
      {{"model_class", 2}, {"ensemble_size", 2}, {"parametric_steps", 30}, {"max_epochs", 10}}, "",
      "");
  ASSERT_TRUE(surrogate.ok()) << surrogate.status();
  spec.surrogate = *surrogate;
  spec.height = spec.width = kTestImageSize;
  spec.seed = 17;
  std::string checkpoint;
  std::map<std::string, double> last_metrics;
  absl::StatusOr<SessionModels> models = MakeSessionModels(
      spec, [&](int64_t, const std::map<std::string, double>& metrics, const std::string& bytes) {
        checkpoint = bytes;
        last_metrics = metrics;
      });
  ASSERT_TRUE(models.ok()) << models.status();
  ASSERT_NE(models->refits, nullptr);
  const std::unique_ptr<SimulatedNeuron> cell = Neuron(CellKind::kSimple, 8);
  const SimulatedTrials trials = Search(*cell, 240, 4);
  std::shared_ptr<const ResponseModel> first;
  for (int64_t part = 0; part < 2; ++part) {
    for (int64_t i = part * 120; i < (part + 1) * 120; ++i) {
      ASSERT_TRUE(
          models->refits->Append(trials.images[i], {trials.rates[i][0].item<double>()}, i).ok());
    }
    ASSERT_TRUE(models->refits->AfterAsk(part + 1));
    models->refits->WaitIdle();
    ASSERT_TRUE(models->refits->last_error().ok()) << models->refits->last_error();
    if (part == 0) first = models->refits->Newest();
  }
  const std::shared_ptr<const ResponseModel> latest = models->refits->Newest();
  ASSERT_NE(latest, nullptr);
  EXPECT_EQ(latest->version(), 2);
  const auto* paired = dynamic_cast<const PairedModel*>(latest.get());
  ASSERT_NE(paired, nullptr);
  for (const char* key : {"heldout_correlation.0", "flexible_heldout_correlation.0",
                          "parametric_heldout_correlation.0", "parametric_joins"}) {
    EXPECT_EQ(last_metrics.count(key), 1u) << key;
  }
  EXPECT_EQ(last_metrics["parametric_joins"], paired->parametric_joins() ? 1 : 0);
  absl::StatusOr<std::shared_ptr<const ResponseModel>> loaded = models->load_checkpoint(checkpoint);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal((*loaded)->PredictMembers(trials.images),
                           latest->PredictMembers(trials.images)));
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(first->version(), 1);
}

}  // namespace
}  // namespace stimloop
