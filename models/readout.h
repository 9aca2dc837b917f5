// Per-neuron factorized readout (Klindt, Ecker, Euler & Bethge 2017, "Neural
// system identification for large populations separating what and where"):
// neuron n's drive is
//
//   z[b, n] = sum_{c, y, x} features[b, c, y, x] * mask[n, y, x] * weights[n, c] + bias[n]
//
// a spatial mask ("where") times feature weights ("what"), with an L1
// penalty on both (Regularization) so masks shrink to the receptive field.
// (The Gaussian readout of Lurz et al. 2021 is not implemented.)
#ifndef STIMLOOP_MODELS_READOUT_H_
#define STIMLOOP_MODELS_READOUT_H_

#include <cstdint>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

namespace stimloop {

class FactorizedReadoutImpl : public torch::nn::Module {
 public:
  // Parameters mask [num_neurons, height, width], weights
  // [num_neurons, channels], bias [num_neurons]; zero until
  // ResetParameters. REQUIRES: all sizes >= 1.
  FactorizedReadoutImpl(int64_t channels, int64_t height, int64_t width, int64_t num_neurons);

  // features [N, channels, height, width] -> drives [N, num_neurons].
  torch::Tensor forward(const torch::Tensor& features) const;

  // mask and weights ~ N(0, init_std^2) from `generator`; bias = `bias`
  // ([num_neurons]).
  void ResetParameters(double init_std, const torch::Tensor& bias, at::Generator& generator);

  // l1_mask * sum |mask| / (height * width) + l1_features * sum |weights| / channels,
  // averaged over neurons (a scalar, differentiable).
  torch::Tensor Regularization(double l1_mask, double l1_features) const;

  const torch::Tensor& mask() const { return mask_; }
  const torch::Tensor& weights() const { return weights_; }
  const torch::Tensor& bias() const { return bias_; }

 private:
  torch::Tensor mask_, weights_, bias_;
};
TORCH_MODULE(FactorizedReadout);

}  // namespace stimloop

#endif  // STIMLOOP_MODELS_READOUT_H_
