// The fixed first stage of a surrogate: images -> feature maps. Shared by
// every ensemble member and never trained, so the trainer computes its
// features once per fit. Implementations: GaborFrontEnd
// (models/gabor_frontend.h) and TorchScriptFrontEnd
// (models/torchscript_model.h).
#ifndef STIMLOOP_MODELS_SURROGATE_FRONTEND_H_
#define STIMLOOP_MODELS_SURROGATE_FRONTEND_H_

#include <cstdint>
#include <string>

#include <torch/types.h>

namespace stimloop {

// Output shape of a front end for the session's images.
struct FeatureShape {
  int64_t channels = 0;  // F
  int64_t height = 0;    // h
  int64_t width = 0;     // w
};

// Immutable and thread-safe.
class FrontEnd {
 public:
  virtual ~FrontEnd() = default;

  // images [N, C, H, W] float in [0, 1] (the session's C, H, W) ->
  // features [N, F, h, w] float, finite. Differentiable with respect to
  // images; no side effects; never accumulates gradients in its own weights.
  virtual torch::Tensor Forward(const torch::Tensor& images) const = 0;

  // F, h, w for the session's images.
  virtual const FeatureShape& feature_shape() const = 0;

  // "gabor" or "torchscript:<path>", for checkpoints and logs.
  virtual std::string Describe() const = 0;
};

}  // namespace stimloop

#endif  // STIMLOOP_MODELS_SURROGATE_FRONTEND_H_
