#include "models/paired_fit.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <utility>

#include "base/seed.h"
#include "models/gabor_fit.h"
#include "models/trainer.h"

namespace stimloop {
namespace {

// The mean over neurons of the held-out correlations; -inf when any is NaN.
double MeanCorrelation(const FitMetrics& m) {
  if (m.heldout_correlation.empty()) return -std::numeric_limits<double>::infinity();
  double sum = 0;
  for (double c : m.heldout_correlation) {
    if (!std::isfinite(c)) return -std::numeric_limits<double>::infinity();
    sum += c;
  }
  return sum / static_cast<double>(m.heldout_correlation.size());
}

}  // namespace

absl::StatusOr<std::shared_ptr<const PairedModel>> FitPairedModel(
    const TrainingData& data, const SurrogateSpec& spec, std::shared_ptr<const FrontEnd> front_end,
    int64_t version, uint64_t seed, const std::atomic<bool>* cancel, PairedFitMetrics* metrics,
    const PairedModel* previous, FeatureCache* cache) {
  TrainingData training = data;
  if (!training.holdout_seed.has_value()) training.holdout_seed = DeriveSeed(seed, 0);

  PairedFitMetrics m;
  auto flexible = FitSurrogate(
      training, spec, front_end, version, seed, cancel, &m.flexible,
      previous != nullptr && spec.warm_start ? previous->flexible().get() : nullptr, cache);
  if (!flexible.ok()) return flexible.status();
  auto parametric =
      FitGaborModel(training, spec, version, DeriveSeed(seed, kParametricStream), cancel,
                    &m.parametric, previous != nullptr ? previous->parametric().get() : nullptr);
  if (!parametric.ok()) return parametric.status();

  m.parametric_joins = MeanCorrelation(m.parametric) >= MeanCorrelation(m.flexible);
  auto model = std::make_shared<const PairedModel>(*std::move(flexible), *std::move(parametric),
                                                   m.parametric_joins);
  if (metrics == nullptr) return model;

  m.ensemble = m.flexible;
  if (m.parametric_joins) {
    // Same split as both fits (it depends on holdout_seed and the data only).
    absl::StatusOr<TrainingSplit> split =
        SplitTrainingData(training, spec.min_trials, spec.holdout_fraction, seed);
    if (!split.ok()) return split.status();
    torch::NoGradGuard no_grad;
    const torch::Tensor rates = training.rates.to(torch::kFloat);
    const torch::Tensor neuron_weight =
        NeuronWeights(rates.index_select(0, split->train_trials), spec.loss);
    const torch::Tensor heldout_pred =
        model->PredictMembers(training.images.index_select(0, split->heldout_trials)).mean(0);
    FillHeldOutMetrics(*split, rates, heldout_pred, neuron_weight, spec.loss, &m.ensemble);
    m.ensemble.member_epochs.insert(m.ensemble.member_epochs.end(),
                                    m.parametric.member_epochs.begin(),
                                    m.parametric.member_epochs.end());
  }
  m.ensemble.steps = m.flexible.steps + m.parametric.steps;
  *metrics = std::move(m);
  return model;
}

}  // namespace stimloop
