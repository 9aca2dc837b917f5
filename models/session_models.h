// The model source of a session with a model-based optimizer, built from
// its config.surrogate: either a fixed TorchScript surrogate (model_path;
// version 1, never refit) or a trained ensemble refit online by a
// RefitScheduler (models/refit_scheduler.h): the flexible model
// (models/surrogate.h, fitted by models/trainer.h FitSurrogate) or, with
// surrogate.params.model_class 1, the parametric Gabor model
// (models/gabor_model.h, fitted by models/gabor_fit.h FitGaborModel), or
// with model_class 2 both in one ensemble (models/paired_model.h, fitted by
// models/paired_fit.h FitPairedModel on the session's stable split).
//
// Fit seeds: version v of a session with seed s is fitted with seed
// DeriveSeed(s, v) (base/seed.h), so refits are reproducible and versions
// draw independent initializations and resamples. With
// surrogate.params.warm_start 1 (the default) the flexible model's refits
// start from the session's previous version (models/trainer.h) and every
// fit of the session holds out the same stimuli (TrainingData::holdout_seed,
// from the session seed).
// Metrics reported per version (VersionCallback): num_trials,
// num_train_trials, num_heldout_trials, num_stimuli, heldout_loss, steps,
// and per neuron i heldout_correlation.<i> and heldout_feve.<i> (NaN where
// undefined); model_class 2 adds parametric_joins (0 or 1) and each class's
// own flexible_heldout_correlation.<i> and parametric_heldout_correlation.<i>.
// The checkpoint is SerializeSurrogate's (model_class 1 SerializeGaborModel's,
// 2 SerializePairedModel's) bytes, read back by SessionModels::load_checkpoint.
#ifndef STIMLOOP_MODELS_SESSION_MODELS_H_
#define STIMLOOP_MODELS_SESSION_MODELS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "models/refit_scheduler.h"
#include "models/response_model.h"
#include "models/surrogate_config.h"

namespace stimloop {

// config.surrogate, resolved: the refit schedule and the model (paths
// included). The keys of config.surrogate.params are those of
// ReadRefitOptions (models/refit_scheduler.h) and ReadSurrogateParams
// (models/surrogate_config.h).
struct SurrogateSettings {
  RefitOptions refit;
  SurrogateSpec spec;
};

// Reads config.surrogate (its params with one reader, then its paths).
// INVALID_ARGUMENT names the first bad field from the config's root
// ("config.surrogate.params.<key>", "config.surrogate.model_path"); unknown
// and removed keys are errors too.
absl::StatusOr<SurrogateSettings> ParseSurrogateSettings(
    const std::map<std::string, double>& params, std::string frontend_path,
    std::string model_path);

struct SessionModelsSpec {
  SurrogateSettings surrogate;  // from ParseSurrogateSettings
  int64_t channels = 1, height = 0, width = 0;
  int64_t num_neurons = 1;
  uint64_t seed = 0;  // the session seed
  // Where refits run (base/work_pool.h); null: a thread of the session's own.
  // REQUIRES: outlives the models.
  WorkPool* pool = nullptr;
};

// Rebuilds a version from the checkpoint bytes its fit reported.
using CheckpointLoader =
    std::function<absl::StatusOr<std::shared_ptr<const ResponseModel>>(const std::string& bytes)>;

struct SessionModels {
  std::shared_ptr<const ModelSource> source;  // never null
  std::shared_ptr<RefitScheduler> refits;     // null for a fixed model
  CheckpointLoader load_checkpoint;           // set when refits is
};

// INVALID_ARGUMENT naming the config field ("config.surrogate.model_path",
// ...) for bad files or tensor contracts. `on_version` may be empty.
absl::StatusOr<SessionModels> MakeSessionModels(const SessionModelsSpec& spec,
                                                VersionCallback on_version);

// For tests of code that builds sessions (e.g. a fit the test can hold):
// while an instance lives, MakeSessionModels fits with `fit` instead of
// FitSurrogate or FitGaborModel (checkpoints are still read by the model
// class's deserializer). Not nestable; create and destroy on one thread.
class ScopedFitFunctionForTesting {
 public:
  explicit ScopedFitFunctionForTesting(FitFunction fit);
  ~ScopedFitFunctionForTesting();
  ScopedFitFunctionForTesting(const ScopedFitFunctionForTesting&) = delete;
  ScopedFitFunctionForTesting& operator=(const ScopedFitFunctionForTesting&) = delete;
};

}  // namespace stimloop

#endif  // STIMLOOP_MODELS_SESSION_MODELS_H_
