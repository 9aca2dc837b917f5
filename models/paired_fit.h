// Fits the paired model (models/paired_model.h, surrogate.params.model_class
// 2) to logged (image, response) pairs.
//
// Protocol, all randomness from `seed`:
//  - The flexible model is fitted by FitSurrogate (models/trainer.h) with
//    `seed`, starting from previous->flexible() when spec.warm_start, with
//    the session's feature cache; the parametric model by FitGaborModel
//    (models/gabor_fit.h) with DeriveSeed(seed, kParametricStream), always
//    starting from previous->parametric() (its cost is the warm start's
//    reason: a few starts and steps suffice when one start is the last fit).
//  - Both hold out the same stimuli: data.holdout_seed, or when unset one
//    derived from `seed`.
//  - The parametric members join the ensemble when their mean held-out
//    correlation over neurons is at least the flexible model's (a NaN
//    correlation, from constant predictions, counts as the lowest). On a
//    cell the Gabor pair describes they predict better and join; where it
//    cannot (a colour-opponent cell seen through luminance) the flexible
//    model predicts better and proposes alone. Held-out correlation alone
//    does not choose a class (the parametric one often wins it on cells it
//    proposes worse for, docs/experiments.md); it only keeps a class that
//    predicts worse from pulling the ensemble's mean.
#ifndef STIMLOOP_MODELS_PAIRED_FIT_H_
#define STIMLOOP_MODELS_PAIRED_FIT_H_

#include <atomic>
#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "models/feature_cache.h"
#include "models/paired_model.h"
#include "models/surrogate_config.h"
#include "models/training_data.h"

namespace stimloop {

// The stream of a paired fit's seed that seeds its parametric part.
inline constexpr uint64_t kParametricStream = 0x676162;  // "gab"

struct PairedFitMetrics {
  FitMetrics ensemble;  // of the members that predict (both, or flexible alone)
  FitMetrics flexible;  // of each part alone, on the same held-out trials
  FitMetrics parametric;
  bool parametric_joins = false;
};

// Errors as FitSurrogate's. `metrics`, `previous` and `cache` may be null.
// Deterministic given the inputs, `previous` included, seed and LibTorch's
// thread count.
absl::StatusOr<std::shared_ptr<const PairedModel>> FitPairedModel(
    const TrainingData& data, const SurrogateSpec& spec, std::shared_ptr<const FrontEnd> front_end,
    int64_t version, uint64_t seed, const std::atomic<bool>* cancel, PairedFitMetrics* metrics,
    const PairedModel* previous = nullptr, FeatureCache* cache = nullptr);

}  // namespace stimloop

#endif  // STIMLOOP_MODELS_PAIRED_FIT_H_
