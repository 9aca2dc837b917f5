// What every surrogate fit shares, whatever the model class: the logged
// trials (TrainingData), how they are checked, grouped by stimulus and split
// into a training and a held-out part (SplitTrainingData), the loss, and
// the metrics each model version reports on its held-out trials
// (FitMetrics). Used by FitSurrogate (models/trainer.h) and FitGaborModel
// (models/gabor_fit.h), so both hold out the same trials for the same seed.
#ifndef STIMLOOP_MODELS_TRAINING_DATA_H_
#define STIMLOOP_MODELS_TRAINING_DATA_H_

#include <torch/types.h>

#include <atomic>
#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "models/surrogate_config.h"

namespace stimloop {

// Every logged presentation of a session.
struct TrainingData {
  // [N, C, H, W] float: the shown 8-bit images as k / 255.
  torch::Tensor images;
  // [N, num_neurons]: the measured rates, finite and >= 0.
  torch::Tensor rates;
  // Optional, size N: presentations with equal ids showed the same stimulus
  // (used to hold repeats out together and for FEVE). Empty: presentations
  // with bit-identical images count as repeats.
  std::vector<int64_t> stimulus_ids;
  // Optional: the held-out stimuli are chosen by this seed alone, group by
  // group (SplitTrainingData), so that a stimulus held out once stays held
  // out as the data grow. A session sets it for all its fits: a refit that
  // starts from the previous version must not stop early on trials that
  // version trained on.
  std::optional<uint64_t> holdout_seed;
};

// What one fit measured on its held-out trials.
struct FitMetrics {
  int64_t version = 0;
  int64_t num_trials = 0;
  int64_t num_train_trials = 0;
  int64_t num_heldout_trials = 0;
  int64_t num_stimuli = 0;           // distinct stimuli (groups)
  int64_t num_heldout_repeated = 0;  // held-out stimuli shown at least twice
  // Per neuron: Pearson correlation of the ensemble mean with the measured
  // held-out rates (NaN when either is constant).
  std::vector<double> heldout_correlation;
  // Per neuron: fraction of explainable variance explained over the
  // held-out trials, FractionOfExplainableVarianceExplained below.
  std::vector<double> heldout_feve;
  double heldout_loss = 0;             // ensemble mean, training loss without penalties
  std::vector<int64_t> member_epochs;  // epochs each member ran
  int64_t steps = 0;                   // Adam steps over all members
};

// Fraction of explainable variance explained (Cadena et al. 2019) of the
// predictions `pred` [R] of the measured rates `rates` [R] (one neuron),
// where rows with equal `groups[r]` are presentations of one stimulus, in
// the order they were shown:
//   1 - (MSE - noise_var) / (var(y) - noise_var),
// over the stimuli with at least two presentations after their first,
// noise_var the mean over them of the variance across those presentations.
// Each stimulus' first presentation is left out: a closed loop shows an
// image again because its first trial was high (the session's repeats, a
// validation block), so that trial is biased upward, and counting it
// inflates both the noise and the error (a model with 0.72 of the
// explainable variance read 0.24-0.36 with it, 0.72 without, in a
// simulation of top-quartile repeats). NaN when no stimulus qualifies or
// var(y) <= noise_var.
double FractionOfExplainableVarianceExplained(const torch::Tensor& pred, const torch::Tensor& rates,
                                              const std::vector<int64_t>& groups);

// INVALID_ARGUMENT naming "training_data.images" / "training_data.rates" /
// "training_data.stimulus_ids" for tensors of the wrong rank, shape or
// dtype, or non-finite / negative rates.
absl::Status ValidateTrainingData(const TrainingData& data);

// The trials of one fit, grouped by stimulus and split by group.
struct TrainingSplit {
  // Each trial's group (equal stimulus_ids, or bit-identical images when no
  // ids are given), numbered in order of first appearance.
  std::vector<int64_t> group;
  int64_t num_groups = 0;
  torch::Tensor group_of;        // [N] long: `group` as a tensor
  torch::Tensor heldout_group;   // [num_groups] bool
  torch::Tensor heldout_groups;  // long, ascending: the held-out groups
  torch::Tensor train_trials;    // long, ascending
  torch::Tensor heldout_trials;  // long, ascending
};

// Validates `data` (ValidateTrainingData), then FAILED_PRECONDITION with
// fewer than `min_trials` trials or fewer than 4 distinct stimuli. Holds out
// round(holdout_fraction * groups) groups, at least 1 and leaving at least
// 2, drawn from FitStream(seed, 0). With data.holdout_seed, group g (in
// order of first appearance) is held out instead when
// SplitMix64At(holdout_seed, g) / 2^64 < holdout_fraction, which does not
// change when trials are appended (still at least 1 held out and 2 left,
// moving the groups of the lowest or highest draws when needed).
absl::StatusOr<TrainingSplit> SplitTrainingData(const TrainingData& data, int64_t min_trials,
                                                double holdout_fraction, uint64_t seed);

// Decorrelated seeds of one fit's random streams (SplitMix64At of seed and
// stream): stream 0 is the split, 1 + m ensemble member m.
uint64_t FitStream(uint64_t seed, uint64_t stream);

// Per-neuron weights [num_neurons] that make neurons count alike in the
// loss: 1 / mean rate (Poisson) or 1 / variance (MSE) of `train_rates`
// [N, num_neurons], floored at 1e-3.
torch::Tensor NeuronWeights(const torch::Tensor& train_rates, SurrogateLoss loss);

// The loss of every element [N, num_neurons]: pred - y log(pred + 1e-6)
// (Poisson negative log-likelihood up to a constant) or (pred - y)^2.
torch::Tensor ElementLoss(const torch::Tensor& pred, const torch::Tensor& y, SurrogateLoss loss);

// The training loss without penalties: Poisson negative log-likelihood
// (pred - y log pred) or squared error, per element [N, num_neurons] times
// `neuron_weight`, averaged (a scalar, differentiable).
torch::Tensor WeightedLoss(const torch::Tensor& pred, const torch::Tensor& y,
                           const torch::Tensor& neuron_weight, SurrogateLoss loss);

// Fills num_* and the held-out figures of FitMetrics (not version,
// member_epochs, steps) from the predictions `heldout_pred`
// [heldout trials, num_neurons] of split.heldout_trials (in that order).
void FillHeldOutMetrics(const TrainingSplit& split, const torch::Tensor& rates,
                        const torch::Tensor& heldout_pred, const torch::Tensor& neuron_weight,
                        SurrogateLoss loss, FitMetrics* metrics);

// True once `*cancel` (may be null) is set; and the status a fit returns then.
bool FitCancelled(const std::atomic<bool>* cancel);
absl::Status FitCancelledStatus();

}  // namespace stimloop

#endif  // STIMLOOP_MODELS_TRAINING_DATA_H_
