// Validates a wire SessionConfig and derives the core specs from it. The
// only place that knows both the proto config and the core types.
#ifndef STIMLOOP_SERVER_SESSION_CONFIG_H_
#define STIMLOOP_SERVER_SESSION_CONFIG_H_

#include "absl/status/statusor.h"
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
inline constexpr int kMaxPresentations = 1000;

// A config that passed validation, with defaults filled in.
struct ResolvedConfig {
  v1::SessionConfig proto;  // as given, defaults filled in (what is stored)
  ImageShape shape;
  ObjectiveSpec objective;
  OptimizerSpec optimizer;
  ImageSpaceSpec image_space;
};

// INVALID_ARGUMENT naming the first bad field ("config.image.height: 8 is
// outside [16, 512]"). Checks sizes and ranges only; the optimizer and image
// space check their own names and parameters when they are built.
absl::StatusOr<ResolvedConfig> ResolveConfig(const v1::SessionConfig& config);

}  // namespace stimloop

#endif  // STIMLOOP_SERVER_SESSION_CONFIG_H_
