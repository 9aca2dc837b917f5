// Fits the parametric Gabor surrogate (models/gabor_model.h) to logged
// (image, response) pairs.
//
// Protocol, all randomness from `seed`:
//  - The same validation, stimulus groups and held-out split as
//    FitSurrogate (models/training_data.h SplitTrainingData), so both model
//    classes report metrics on the same trials for the same seed.
//  - Member m trains on its own bootstrap resample of the training trials.
//    For each neuron it draws 32 * spec.parametric_starts candidate fields
//    from a broad prior (center in the central 80% of each axis, envelope
//    sigma 0.03-0.25 of min(height, width), wavelength 1.5-4 sigmas, any
//    orientation and phase), keeps the spec.parametric_starts whose linear
//    or energy response correlates best with the neuron's rates, and runs
//    spec.parametric_steps full-batch Adam steps (step 0.02) on each,
//    minimizing the loss of FitSurrogate (Poisson NLL or squared error per
//    neuron weight, models/training_data.h WeightedLoss) on its resample.
//    Every start of every member and neuron is one independent problem in
//    one batch (Adam is elementwise, so batching changes no update). Each
//    neuron keeps the start with the lowest training loss.
//  - With `previous` (a version of the same session: as many members and
//    neurons, same image size), member m's last start is replaced by that
//    version's member m, gains included: a refit continues from where the
//    previous fit ended and can only keep or improve on it on the new
//    data, while the other starts still search afresh, all of them for
//    every step.
//  - No early stopping (ten parameters per neuron); the held-out trials
//    give the metrics of the ensemble mean (FitMetrics; its steps and each
//    member's epochs count the full-batch Adam steps).
#ifndef STIMLOOP_MODELS_GABOR_FIT_H_
#define STIMLOOP_MODELS_GABOR_FIT_H_

#include <atomic>
#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "models/gabor_model.h"
#include "models/surrogate_config.h"
#include "models/training_data.h"

namespace stimloop {

// Errors as FitSurrogate's (INVALID_ARGUMENT for bad data, FAILED_PRECONDITION
// for too few trials or stimuli, CANCELLED within one Adam step of `*cancel`
// (may be null) becoming true). `metrics` (may be null) is filled on
// success. Deterministic given the inputs, seed and LibTorch's thread count.
// `previous` may be null; one of another shape is ignored.
absl::StatusOr<std::shared_ptr<const GaborModel>> FitGaborModel(
    const TrainingData& data, const SurrogateSpec& spec, int64_t version, uint64_t seed,
    const std::atomic<bool>* cancel, FitMetrics* metrics, const GaborModel* previous = nullptr);

}  // namespace stimloop

#endif  // STIMLOOP_MODELS_GABOR_FIT_H_
