// Fits a Surrogate (models/surrogate.h) to logged (image, response) pairs.
//
// Protocol, all randomness from `seed`:
//  - Trials showing the same stimulus (equal stimulus_ids, or identical
//    pixels when no ids are given) form one group. A fixed share of groups
//    (spec.holdout_fraction, at least one) is held out; the rest is the
//    training split. Groups never straddle the split (SplitTrainingData,
//    models/training_data.h, shared with the parametric model's fit).
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
//  - Warm start (spec.warm_start): given the previous version
//    `warm_start` of the same session (same ensemble size, heads and front
//    end), member m starts from that version's member m and its feature
//    standardization, begins with the starting point's held-out loss as its
//    best, and stops after spec.warm_patience epochs without improvement. A
//    refit on 40 new trials then costs a few epochs instead of tens
//    (BENCHMARKS.md, "Refit and proposal cost"). Anything else (null, or a
//    version that does not match) fits from scratch as above.
//  - Feature cache (`cache`, may be null): when given, built on this very
//    front end, and the data carry stimulus_ids, each stimulus' features
//    come from the cache (models/feature_cache.h), computed there once per
//    stimulus for all of a session's fits; otherwise they are computed here
//    in batches. The two agree to the bit for the Gabor front end on this
//    stack (bench/frontend_time checks it); only the cache's features are
//    independent of batching by construction.
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
#include "models/feature_cache.h"
#include "models/surrogate.h"
#include "models/surrogate_config.h"
#include "models/surrogate_frontend.h"
#include "models/training_data.h"

namespace stimloop {

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
// inputs (`warm_start` included), seed and LibTorch's thread count. Uses LibTorch's intra-op
// threads (bounded by the caller with at::set_num_threads).
absl::StatusOr<std::shared_ptr<const Surrogate>> FitSurrogate(
    const TrainingData& data, const SurrogateSpec& spec,
    std::shared_ptr<const FrontEnd> front_end, int64_t version, uint64_t seed,
    const std::atomic<bool>* cancel, FitMetrics* metrics, const Surrogate* warm_start = nullptr,
    FeatureCache* cache = nullptr);

}  // namespace stimloop

#endif  // STIMLOOP_MODELS_TRAINER_H_
