// Fits a Surrogate (models/surrogate.h) to logged (image, response) pairs.
//
// Protocol, all randomness from `seed`:
//  - Trials showing the same stimulus (equal stimulus_ids, or identical
//    pixels when no ids are given) form one group. A fixed share of groups
//    (spec.holdout_fraction, at least one) is held out; the rest is the
//    training split. Groups never straddle the split.
//  - The front end is fixed, so its features are computed once per distinct
//    stimulus and standardized once (per channel, training split), kept
//    position-major for SurrogateHeadImpl::ForwardPositionMajor; memory:
//    distinct stimuli * F * h * w * 4 bytes, twice that at the peak.
//  - Member m starts from its own random initialization and trains on its
//    own bootstrap resample (drawn with replacement) of the training trials,
//    with Adam on minibatches of spec.batch_size, minimizing the Poisson
//    negative log-likelihood (rate - y log rate) or the squared error, each
//    neuron's term divided by its mean training rate (Poisson) or variance
//    (MSE) so that neurons count alike, plus the readout's L1 penalty and
//    weight decay on the core. After every epoch the held-out loss is
//    measured; training stops after spec.patience epochs without improvement
//    or spec.max_epochs, and the member keeps its best held-out parameters.
//  - Metrics (FitMetrics) are computed on the held-out trials from the
//    ensemble mean.
#ifndef STIMLOOP_MODELS_TRAINER_H_
#define STIMLOOP_MODELS_TRAINER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include <torch/types.h>

#include "absl/status/statusor.h"
#include "models/surrogate.h"
#include "models/surrogate_config.h"
#include "models/surrogate_frontend.h"

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
double FractionOfExplainableVarianceExplained(const torch::Tensor& pred,
                                              const torch::Tensor& rates,
                                              const std::vector<int64_t>& groups);

// Fits version `version` of the surrogate on `front_end` (see
// models/torchscript_model.h MakeFrontEnd). Returns
//  - INVALID_ARGUMENT naming "training_data.images" / "training_data.rates" /
//    "training_data.stimulus_ids" for tensors of the wrong rank, shape,
//    dtype, or non-finite / negative rates;
//  - FAILED_PRECONDITION with fewer than spec.min_trials trials or fewer
//    than 4 distinct stimuli;
//  - CANCELLED when `*cancel` (may be null) becomes true; it is polled
//    before every Adam step, so a superseded fit stops within one step.
// `metrics` (may be null) is filled on success. Deterministic given the
// inputs, seed and LibTorch's thread count. Uses LibTorch's intra-op
// threads (bounded by the caller with at::set_num_threads).
absl::StatusOr<std::shared_ptr<const Surrogate>> FitSurrogate(
    const TrainingData& data, const SurrogateSpec& spec,
    std::shared_ptr<const FrontEnd> front_end, int64_t version, uint64_t seed,
    const std::atomic<bool>* cancel, FitMetrics* metrics);

}  // namespace stimloop

#endif  // STIMLOOP_MODELS_TRAINER_H_
