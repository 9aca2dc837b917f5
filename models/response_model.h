// The surrogate as optimizers see it: an immutable fitted model version that
// predicts every neuron's rate for images, and a source of the newest one.
// optimizers/ depend on this header only, never on how models are trained.
#ifndef STIMLOOP_MODELS_RESPONSE_MODEL_H_
#define STIMLOOP_MODELS_RESPONSE_MODEL_H_

#include <cstdint>
#include <memory>
#include <utility>

#include <torch/types.h>

namespace stimloop {

// One fitted model version (an ensemble). Immutable and thread-safe.
class ResponseModel {
 public:
  virtual ~ResponseModel() = default;

  // 1, 2, ... in the order versions were fitted.
  virtual int64_t version() const = 0;
  // Ensemble members M.
  virtual int64_t num_members() const = 0;

  // images [N, C, H, W] float in [0, 1] -> rates [M, N, num_neurons], >= 0,
  // one slice per ensemble member. Differentiable with respect to images.
  virtual torch::Tensor PredictMembers(const torch::Tensor& images) const = 0;
};

// Hands out the newest finished model version; never blocks on training.
// Thread-safe.
class ModelSource {
 public:
  virtual ~ModelSource() = default;
  // nullptr until a first version is fitted.
  virtual std::shared_ptr<const ResponseModel> Latest() const = 0;
};

// A source that hands out one model that never changes (a whole TorchScript
// surrogate, or a benchmark's fixed model).
class FixedModelSource : public ModelSource {
 public:
  explicit FixedModelSource(std::shared_ptr<const ResponseModel> model)
      : model_(std::move(model)) {}
  std::shared_ptr<const ResponseModel> Latest() const override { return model_; }

 private:
  std::shared_ptr<const ResponseModel> model_;
};

}  // namespace stimloop

#endif  // STIMLOOP_MODELS_RESPONSE_MODEL_H_
