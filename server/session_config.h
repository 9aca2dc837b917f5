// Validates a wire SessionConfig and derives the core specs from it. The
// only place that knows both the proto config and the core types.
#ifndef STIMLOOP_SERVER_SESSION_CONFIG_H_
#define STIMLOOP_SERVER_SESSION_CONFIG_H_

#include <cstdint>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "models/session_models.h"
#include "optimizers/image_space.h"
#include "optimizers/objective.h"
#include "optimizers/optimizer.h"
#include "stimloop/v1/stimloop.pb.h"

namespace stimloop {

// Limits a config must keep.
inline constexpr int kMinImageSide = 16;
inline constexpr int kMaxImageSide = 512;
inline constexpr int kMaxNeurons = 10000;
inline constexpr int kDefaultGenerationSize = 40;  // Ponce et al. 2019
inline constexpr int kMaxGenerationSize = 1000;
inline constexpr int kDefaultMaxPresentations = 4;  // repeats: 4 trials halve the noise
// The default strategy, when config.optimizer.name is empty: the optimizer,
// the image space (when none is named) and repeats.per_generation (when the
// config has no repeats; at most half a generation).
inline constexpr char kDefaultOptimizer[] = "portfolio";
inline constexpr char kDefaultImageSpace[] = "spectral";
inline constexpr int kDefaultStrategyRepeats = 4;
// ... and its surrogate, unless the config names a model_class or a
// model_path: both model classes in one ensemble (models/paired_fit.h), the
// parametric part warm-started from the previous version with few starts
// and steps (keys the config sets itself are kept).
inline constexpr std::pair<const char*, double> kDefaultStrategySurrogate[] = {
    {"model_class", 2}, {"parametric_starts", 4}, {"parametric_steps", 100}};
inline constexpr int kMaxPresentations = 1000;

// OK when min <= value <= max; else INVALID_ARGUMENT
// "<field>: <value> is outside [<min>, <max>]", the message every range
// check of a request uses.
absl::Status CheckRange(absl::string_view field, int64_t value, int64_t min, int64_t max);

// A config that passed validation, with defaults filled in.
struct ResolvedConfig {
  v1::SessionConfig proto;  // as given, defaults filled in (what is stored)
  ImageShape shape;
  ObjectiveSpec objective;
  OptimizerSpec optimizer;
  ImageSpaceSpec image_space;
  // Server-side files the config names (empty: none), like
  // optimizer.candidate_pool_dir and image_space.generator_path: the
  // request's paths as given, which the session opens as they are.
  // SessionManager and Session::Restore first confine them to the assets
  // folder (ConfineAssetPaths, server/asset_paths.h).
  // surrogate.spec.frontend_path and surrogate.spec.model_path are two more.
  std::string reference_images_dir;
  // config.surrogate, parsed when the optimizer uses a surrogate (else the
  // defaults, with the paths as given).
  SurrogateSettings surrogate;
};

// INVALID_ARGUMENT naming the first bad field ("config.image.height: 8 is
// outside [16, 512]"). Checks sizes and ranges, and config.surrogate's
// parameters when the optimizer uses a surrogate; the optimizer and image
// space check their own names and parameters when they are built.
absl::StatusOr<ResolvedConfig> ResolveConfig(const v1::SessionConfig& config);

// INVALID_ARGUMENT naming a field that is set but that the chosen optimizer,
// image space or setting never reads, so that a config does not silently
// mean less than it says: surrogate.* (params, frontend_path, model_path)
// with an optimizer that uses no surrogate (random, genetic, cmaes);
// surrogate.params with model_path (a fixed model is never fitted);
// optimizer.candidate_pool_dir with any optimizer but adaptive_sampling;
// image_space.generator_path with any image space but torchscript;
// reference_images.dir with per_generation 0. For new sessions only
// (Session::Create): a session stored before this check still resumes.
absl::Status CheckNoUnusedFields(const ResolvedConfig& config);

}  // namespace stimloop

#endif  // STIMLOOP_SERVER_SESSION_CONFIG_H_
