// Bring your own model: TorchScript modules in place of the Gabor front end
// or of the whole surrogate, and the factory that builds a session's front
// end from its SurrogateSpec.
//
// Tensor contract (checked when the session is created, by running a dummy
// batch of two images of the session's shape: mid-gray and a horizontal
// luminance ramp):
//  - front end (config.surrogate.frontend_path): forward(images) with images
//    [N, C, H, W] float32 in [0, 1] returns one float tensor
//    [N, F, h, w] (F, h, w >= 1, fixed for the session), finite. It is never
//    trained (its parameters are frozen); the heads on top of it are.
//  - whole model (config.surrogate.model_path): forward(images) returns
//    rates [N, num_neurons], float, finite and >= 0. It is used as-is, as
//    version 1 with one member, and never refit.
// Both must be differentiable with respect to images for gradient-based
// optimizers, and safe to call from several threads (no state mutated in
// forward). A missing file, a file LibTorch cannot load, or a breach of the
// contract is INVALID_ARGUMENT naming the field, e.g.
//   "config.surrogate.frontend_path: '/x.pt' does not exist".
#ifndef STIMLOOP_MODELS_TORCHSCRIPT_MODEL_H_
#define STIMLOOP_MODELS_TORCHSCRIPT_MODEL_H_

#include <cstdint>
#include <memory>
#include <string>

#include <torch/script.h>

#include "absl/status/statusor.h"
#include "models/response_model.h"
#include "models/surrogate_config.h"
#include "models/surrogate_frontend.h"

namespace stimloop {

// The session's images.
struct ModelImageShape {
  int64_t channels = 1;
  int64_t height = 0;
  int64_t width = 0;
};

class TorchScriptFrontEnd : public FrontEnd {
 public:
  // Loads and checks `path` (errors name config.surrogate.frontend_path).
  static absl::StatusOr<std::shared_ptr<const TorchScriptFrontEnd>> Load(
      const std::string& path, const ModelImageShape& shape);

  torch::Tensor Forward(const torch::Tensor& images) const override;
  const FeatureShape& feature_shape() const override { return shape_; }
  std::string Describe() const override { return "torchscript:" + path_; }

 private:
  TorchScriptFrontEnd(std::string path, torch::jit::Module module, FeatureShape shape);

  std::string path_;
  mutable torch::jit::Module module_;  // forward is const in effect
  FeatureShape shape_;
};

// A whole TorchScript surrogate: version 1, one member, never refit.
class TorchScriptSurrogate : public ResponseModel {
 public:
  // Loads and checks `path` (errors name config.surrogate.model_path).
  static absl::StatusOr<std::shared_ptr<const TorchScriptSurrogate>> Load(
      const std::string& path, const ModelImageShape& shape, int64_t num_neurons);

  int64_t version() const override { return 1; }
  int64_t num_members() const override { return 1; }
  // [1, N, num_neurons].
  torch::Tensor PredictMembers(const torch::Tensor& images) const override;

 private:
  explicit TorchScriptSurrogate(torch::jit::Module module);
  mutable torch::jit::Module module_;
};

// The front end `spec` asks for: the Gabor bank, or spec.frontend_path's
// TorchScript module. INVALID_ARGUMENT naming the field on bad paths or
// contracts; FAILED_PRECONDITION if spec.model_path is set (a whole model
// has no front end: use TorchScriptSurrogate::Load).
absl::StatusOr<std::shared_ptr<const FrontEnd>> MakeFrontEnd(const SurrogateSpec& spec,
                                                             const ModelImageShape& shape);

}  // namespace stimloop

#endif  // STIMLOOP_MODELS_TORCHSCRIPT_MODEL_H_
