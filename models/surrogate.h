// The fitted surrogate: one fixed front end shared by an ensemble of
// trainable heads (core -> factorized readout, free or Gaussian mask ->
// non-negative rate).
//
//   member m:  rates = g( readout_m(f) ) / (1 + softplus( pool_m(f) )),
//              f = [x, elu(conv1x1_m(x))],
//              x = (front_end(images) - feature_mean) / feature_scale
//
// The divisor is there only with `normalization` (SurrogateSpec): pool_m is
// a second factorized readout, always with a free mask, whose output
// divides the rate (divisive normalization, Heeger 1992; Carandini & Heeger
// 2012; learned as in Burg et al. 2021): suppression by what the cell's
// surround or its other features see, which the readout's weighted sum
// cannot express. It starts near 1 (pool bias -4) so that a fit begins as
// the model without it. g is softplus (default) or exp. feature_mean / feature_scale are per
// channel statistics of the training features (buffers, fixed per fit), so
// any front end's features arrive standardized. core_channels = 0 drops the
// 1x1 core and its skip: the readout then sees x alone.
//
// A Surrogate is immutable once made (parameters frozen, no gradients
// accumulate in them), so many threads may call PredictMembers at once and
// differentiate through it with respect to images.
//
// Checkpoints: SaveSurrogate / SerializeSurrogate write a torch::serialize
// archive (torch::save format) with the version, the member heads and a
// description of the front end; Load / Deserialize rebuild the model around
// the session's front end, which must match the one saved.
#ifndef STIMLOOP_MODELS_SURROGATE_H_
#define STIMLOOP_MODELS_SURROGATE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/pimpl.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "models/readout.h"
#include "models/response_model.h"
#include "models/surrogate_config.h"
#include "models/surrogate_frontend.h"

namespace stimloop {

struct SurrogateHeadOptions {
  FeatureShape features;   // what the front end gives
  int64_t core_channels = 16;
  int64_t num_neurons = 1;
  RateNonlinearity output = RateNonlinearity::kSoftplus;
  ReadoutMask readout = ReadoutMask::kFree;
  bool normalization = false;  // the divisive pool above
};

// One ensemble member's trainable part.
class SurrogateHeadImpl : public torch::nn::Module {
 public:
  // REQUIRES: features sizes >= 1, core_channels >= 0, num_neurons >= 1.
  explicit SurrogateHeadImpl(const SurrogateHeadOptions& options);

  // front-end features [N, F, h, w] -> rates [N, num_neurons] >= 0.
  torch::Tensor forward(const torch::Tensor& features) const;

  // forward for features already standardized with this head's
  // feature_mean / feature_scale and laid out position-major, [N, h*w, F]
  // (StandardizedPositionMajor): equal to forward to float rounding. The
  // trainer's layout: one product over the features gives both the core and
  // the readout's feature weights, and no concatenation is materialized
  // (what that saves per step: docs/experiments.md).
  // `position_noise` ([N, num_neurons, 2], Gaussian readout only) reads each
  // trial at its own drawn point (FactorizedReadoutImpl::SampledMask): the
  // training forward; undefined reads at the centers, as forward does.
  torch::Tensor ForwardPositionMajor(const torch::Tensor& standardized,
                                     const torch::Tensor& position_noise = {}) const;

  // Draws the parameters from `generator`, sets the feature statistics
  // ([F] each, scale > 0) and the readout bias so that the initial rates
  // equal `initial_rates` ([num_neurons], > 0).
  // `centers`: where a Gaussian readout starts (FactorizedReadoutImpl::ResetParameters).
  void Reset(const torch::Tensor& feature_mean, const torch::Tensor& feature_scale,
             const torch::Tensor& initial_rates, at::Generator& generator,
             const torch::Tensor& centers = {});

  // The readouts' L1 penalty (FactorizedReadoutImpl::Regularization), the
  // pool's included.
  torch::Tensor Regularization(double l1_mask, double l1_features) const;
  // Parameters of the 1x1 core (for weight decay); empty when core_channels = 0.
  std::vector<torch::Tensor> CoreParameters() const;

  const SurrogateHeadOptions& options() const { return options_; }
  const FactorizedReadout& readout() const { return readout_; }
  // The normalization pool (nullptr without normalization).
  const FactorizedReadout& pool() const { return pool_; }
  // The 1x1 core (nullptr when core_channels = 0) and the feature statistics.
  const torch::nn::Conv2d& core() const { return core_; }
  const torch::Tensor& feature_mean() const { return feature_mean_; }
  const torch::Tensor& feature_scale() const { return feature_scale_; }

 private:
  SurrogateHeadOptions options_;
  torch::nn::Conv2d core_{nullptr};
  FactorizedReadout readout_{nullptr};
  FactorizedReadout pool_{nullptr};
  torch::Tensor feature_mean_, feature_scale_;  // buffers [1, F, 1, 1]
};
TORCH_MODULE(SurrogateHead);

// features [N, F, h, w], mean and scale [F] -> (features - mean) / scale as
// [N, h*w, F], contiguous: the input of SurrogateHeadImpl::ForwardPositionMajor.
torch::Tensor StandardizedPositionMajor(const torch::Tensor& features, const torch::Tensor& mean,
                                        const torch::Tensor& scale);

class Surrogate : public ResponseModel {
 public:
  // Freezes the members (eval mode, requires_grad off). REQUIRES: front_end
  // non-null, at least one member, all members with the same options whose
  // feature shape is front_end's.
  Surrogate(int64_t version, std::shared_ptr<const FrontEnd> front_end,
            std::vector<SurrogateHead> members);

  int64_t version() const override { return version_; }
  int64_t num_members() const override { return static_cast<int64_t>(members_.size()); }
  int64_t num_neurons() const { return members_.front()->options().num_neurons; }

  // images [N, C, H, W] in [0, 1] -> rates [M, N, num_neurons].
  torch::Tensor PredictMembers(const torch::Tensor& images) const override;
  // The same from precomputed front-end features [N, F, h, w]. All members
  // are evaluated at once from parameters stacked at construction (one
  // standardization, one 1x1 convolution and one pooling for the ensemble:
  // an ascent step differentiates through it 40 images at a time); equal to
  // stacking every member's forward up to float rounding.
  torch::Tensor PredictMembersFromFeatures(const torch::Tensor& features) const;
  // Ensemble mean [N, num_neurons].
  torch::Tensor PredictMean(const torch::Tensor& images) const;

  const std::shared_ptr<const FrontEnd>& front_end() const { return front_end_; }
  const std::vector<SurrogateHead>& members() const { return members_; }

 private:
  // Fills the stacked tensors below (left undefined when members differ).
  void StackMembers();

  int64_t version_;
  std::shared_ptr<const FrontEnd> front_end_;
  std::vector<SurrogateHead> members_;
  // Stacked member parameters (M members, n neurons, K core channels):
  // masks [M, n, h*w], feature_weights [M, n, F], core_weights [M, n, K],
  // biases [M, 1, n], core_kernels [M*K, F, 1, 1], core_biases [M*K].
  torch::Tensor masks_, feature_weights_, core_weights_, biases_, core_kernels_, core_biases_;
  // The same for the normalization pools (defined with normalization).
  torch::Tensor pool_masks_, pool_feature_weights_, pool_core_weights_, pool_biases_;
  // The members' shared feature statistics; defined only when every member
  // has the same ones (then the stacked path is used).
  torch::Tensor feature_mean_, feature_scale_;
};

// Writes `model` to `path` (INTERNAL naming the path on I/O errors).
absl::Status SaveSurrogate(const Surrogate& model, const std::string& path);
// The same archive as bytes.
absl::StatusOr<std::string> SerializeSurrogate(const Surrogate& model);

// Reads a checkpoint written above around `front_end` (the session's).
// INVALID_ARGUMENT when the file is missing, not a surrogate checkpoint, or
// was saved with a different front end (description or feature shape).
absl::StatusOr<std::shared_ptr<const Surrogate>> LoadSurrogate(
    const std::string& path, std::shared_ptr<const FrontEnd> front_end);
absl::StatusOr<std::shared_ptr<const Surrogate>> DeserializeSurrogate(
    const std::string& bytes, std::shared_ptr<const FrontEnd> front_end);

}  // namespace stimloop

#endif  // STIMLOOP_MODELS_SURROGATE_H_
