#include "models/session_models.h"

#include <limits>
#include <mutex>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/in_config.h"
#include "base/seed.h"
#include "models/gabor_fit.h"
#include "models/gabor_model.h"
#include "models/paired_fit.h"
#include "models/paired_model.h"
#include "models/surrogate.h"
#include "models/surrogate_config.h"
#include "models/torchscript_model.h"
#include "models/trainer.h"

namespace stimloop {
namespace {

std::map<std::string, double> FlattenMetrics(const FitMetrics& m) {
  std::map<std::string, double> out{
      {"num_trials", static_cast<double>(m.num_trials)},
      {"num_train_trials", static_cast<double>(m.num_train_trials)},
      {"num_heldout_trials", static_cast<double>(m.num_heldout_trials)},
      {"num_stimuli", static_cast<double>(m.num_stimuli)},
      {"heldout_loss", m.heldout_loss},
      {"steps", static_cast<double>(m.steps)},
  };
  for (size_t i = 0; i < m.heldout_correlation.size(); ++i) {
    out[absl::StrCat("heldout_correlation.", i)] = m.heldout_correlation[i];
  }
  for (size_t i = 0; i < m.heldout_feve.size(); ++i) {
    out[absl::StrCat("heldout_feve.", i)] = m.heldout_feve[i];
  }
  return out;
}

// The stream of the session seed that chooses held-out stimuli (versions
// use 1, 2, ...).
constexpr uint64_t kHoldoutStream = 0x686f6c646f7574;  // "holdout"

// Version v of a session with seed s fits with this seed (see the header).
uint64_t VersionSeed(uint64_t session_seed, int64_t version) {
  return DeriveSeed(session_seed, static_cast<uint64_t>(version));
}

// A CheckpointLoader from a model class's deserializer (bytes ->
// StatusOr<shared_ptr<const Model>>).
template <typename Deserialize>
CheckpointLoader MakeCheckpointLoader(Deserialize deserialize) {
  return [deserialize](
             const std::string& bytes) -> absl::StatusOr<std::shared_ptr<const ResponseModel>> {
    auto model = deserialize(bytes);
    if (!model.ok()) return model.status();
    return std::shared_ptr<const ResponseModel>(*std::move(model));
  };
}

// The refit scheduler's FitFunction for a model class: `fit` (the data, the
// previous version to start from, then FitSurrogate's or FitGaborModel's
// arguments after the spec) fits version v with
// VersionSeed(session_seed, v); `serialize` gives its checkpoint.
template <typename Fit, typename Serialize>
FitFunction MakeFitFunction(Fit fit, Serialize serialize, uint64_t session_seed,
                            bool stable_holdout) {
  return [fit, serialize, session_seed, stable_holdout](
             const RefitData& data, int64_t version,
             const std::atomic<bool>& cancel) -> absl::StatusOr<FitOutcome> {
    FitMetrics metrics;
    TrainingData training{data.images, data.rates, data.stimulus_ids};
    if (stable_holdout) training.holdout_seed = DeriveSeed(session_seed, kHoldoutStream);
    auto model = fit(training, data.previous,
                     version, VersionSeed(session_seed, version), &cancel, &metrics);
    if (!model.ok()) return model.status();
    absl::StatusOr<std::string> checkpoint = serialize(**model);
    if (!checkpoint.ok()) return checkpoint.status();
    return FitOutcome{*std::move(model), FlattenMetrics(metrics), *std::move(checkpoint)};
  };
}

// The FitFunction of model_class 2: both classes on one stable split, each
// from its part of the previous version. Metrics: the predicting
// ensemble's (FlattenMetrics), plus parametric_joins (0 or 1) and each
// part's flexible_heldout_correlation.<i> / parametric_heldout_correlation.<i>.
FitFunction MakePairedFitFunction(const SurrogateSpec& spec,
                                  std::shared_ptr<const FrontEnd> front_end,
                                  std::shared_ptr<FeatureCache> cache, uint64_t session_seed) {
  return [spec, front_end, cache, session_seed](
             const RefitData& data, int64_t version,
             const std::atomic<bool>& cancel) -> absl::StatusOr<FitOutcome> {
    TrainingData training{data.images, data.rates, data.stimulus_ids};
    training.holdout_seed = DeriveSeed(session_seed, kHoldoutStream);
    PairedFitMetrics metrics;
    auto model = FitPairedModel(training, spec, front_end, version,
                                VersionSeed(session_seed, version), &cancel, &metrics,
                                dynamic_cast<const PairedModel*>(data.previous.get()), cache.get());
    if (!model.ok()) return model.status();
    absl::StatusOr<std::string> checkpoint = SerializePairedModel(**model);
    if (!checkpoint.ok()) return checkpoint.status();
    std::map<std::string, double> flat = FlattenMetrics(metrics.ensemble);
    flat["parametric_joins"] = metrics.parametric_joins ? 1 : 0;
    for (const auto& [prefix, part] : {std::pair<const char*, const FitMetrics*>{
                                           "flexible_", &metrics.flexible},
                                       {"parametric_", &metrics.parametric}}) {
      for (size_t i = 0; i < part->heldout_correlation.size(); ++i) {
        flat[absl::StrCat(prefix, "heldout_correlation.", i)] = part->heldout_correlation[i];
      }
    }
    return FitOutcome{*std::move(model), std::move(flat), *std::move(checkpoint)};
  };
}

std::mutex override_mu;
FitFunction* fit_override = nullptr;  // guarded by override_mu

}  // namespace

ScopedFitFunctionForTesting::ScopedFitFunctionForTesting(FitFunction fit) {
  std::lock_guard<std::mutex> lock(override_mu);
  fit_override = new FitFunction(std::move(fit));
}

ScopedFitFunctionForTesting::~ScopedFitFunctionForTesting() {
  std::lock_guard<std::mutex> lock(override_mu);
  delete fit_override;
  fit_override = nullptr;
}

absl::StatusOr<SurrogateSettings> ParseSurrogateSettings(
    const std::map<std::string, double>& params, std::string frontend_path,
    std::string model_path) {
  if (absl::Status s = CheckNoRemovedRefitParams(params); !s.ok()) return InConfig(s);
  SurrogateSettings settings;
  ParamReader reader(params, kSurrogateParamsPrefix);
  settings.refit = ReadRefitOptions(reader);
  ReadSurrogateParams(reader, &settings.spec);
  if (absl::Status s = reader.Finish(); !s.ok()) return InConfig(s);
  if (absl::Status s =
          SetSurrogatePaths(std::move(frontend_path), std::move(model_path), &settings.spec);
      !s.ok()) {
    return InConfig(s);
  }
  return settings;
}

absl::StatusOr<SessionModels> MakeSessionModels(const SessionModelsSpec& spec,
                                                VersionCallback on_version) {
  const SurrogateSpec* surrogate = &spec.surrogate.spec;
  const RefitOptions* options = &spec.surrogate.refit;
  const ModelImageShape shape{spec.channels, spec.height, spec.width};

  SessionModels models;
  if (!surrogate->model_path.empty()) {
    auto fixed = TorchScriptSurrogate::Load(surrogate->model_path, shape, spec.num_neurons);
    if (!fixed.ok()) return InConfig(fixed.status());
    models.source = std::make_shared<FixedModelSource>(*std::move(fixed));
    return models;
  }
  FitFunction fit;
  if (surrogate->model_class == SurrogateClass::kParametricGabor) {
    models.load_checkpoint =
        MakeCheckpointLoader([height = spec.height, width = spec.width](const std::string& bytes) {
          return DeserializeGaborModel(bytes, height, width);
        });
    fit = MakeFitFunction(
        [surrogate = *surrogate](const TrainingData& data,
                                 const std::shared_ptr<const ResponseModel>& /*previous*/,
                                 int64_t version, uint64_t seed,
                                 const std::atomic<bool>* cancel, FitMetrics* metrics) {
          return FitGaborModel(data, surrogate, version, seed, cancel, metrics);
        },
        SerializeGaborModel, spec.seed, /*stable_holdout=*/false);
  } else if (surrogate->model_class == SurrogateClass::kPaired) {
    absl::StatusOr<std::shared_ptr<const FrontEnd>> front_end = MakeFrontEnd(*surrogate, shape);
    if (!front_end.ok()) return InConfig(front_end.status());
    models.load_checkpoint = MakeCheckpointLoader(
        [front_end = *front_end, height = spec.height, width = spec.width](
            const std::string& bytes) {
          return DeserializePairedModel(bytes, front_end, height, width);
        });
    auto cache =
        surrogate->feature_cache ? std::make_shared<FeatureCache>(*front_end) : nullptr;
    fit = MakePairedFitFunction(*surrogate, *front_end, cache, spec.seed);
  } else {
    absl::StatusOr<std::shared_ptr<const FrontEnd>> front_end = MakeFrontEnd(*surrogate, shape);
    if (!front_end.ok()) return InConfig(front_end.status());
    models.load_checkpoint =
        MakeCheckpointLoader([front_end = *front_end](const std::string& bytes) {
          return DeserializeSurrogate(bytes, front_end);
        });
    // The session's stimuli's features, kept across its refits.
    auto cache =
        surrogate->feature_cache ? std::make_shared<FeatureCache>(*front_end) : nullptr;
    fit = MakeFitFunction(
        [surrogate = *surrogate, front_end = *front_end, cache](
            const TrainingData& data, const std::shared_ptr<const ResponseModel>& previous,
            int64_t version, uint64_t seed, const std::atomic<bool>* cancel,
            FitMetrics* metrics) {
          return FitSurrogate(data, surrogate, front_end, version, seed, cancel, metrics,
                              dynamic_cast<const Surrogate*>(previous.get()), cache.get());
        },
        SerializeSurrogate, spec.seed, /*stable_holdout=*/surrogate->warm_start);
  }
  {
    std::lock_guard<std::mutex> lock(override_mu);
    if (fit_override != nullptr) fit = *fit_override;
  }
  models.refits = std::make_shared<RefitScheduler>(*options, std::move(fit), std::move(on_version),
                                                   spec.pool);
  models.source = models.refits;
  return models;
}

}  // namespace stimloop
