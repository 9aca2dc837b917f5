#include "models/readout.h"

#include <torch/torch.h>

namespace stimloop {

FactorizedReadoutImpl::FactorizedReadoutImpl(int64_t channels, int64_t height, int64_t width,
                                             int64_t num_neurons) {
  TORCH_CHECK(channels >= 1 && height >= 1 && width >= 1 && num_neurons >= 1,
              "FactorizedReadout: sizes must be >= 1");
  mask_ = register_parameter("mask", torch::zeros({num_neurons, height, width}));
  weights_ = register_parameter("weights", torch::zeros({num_neurons, channels}));
  bias_ = register_parameter("bias", torch::zeros({num_neurons}));
}

torch::Tensor FactorizedReadoutImpl::forward(const torch::Tensor& features) const {
  TORCH_CHECK(features.dim() == 4 && features.size(1) == weights_.size(1) &&
                  features.size(2) == mask_.size(1) && features.size(3) == mask_.size(2),
              "FactorizedReadout: features must be [N, ", weights_.size(1), ", ", mask_.size(1),
              ", ", mask_.size(2), "], got ", features.sizes());
  // [N, C, h*w] x [h*w, n] -> [N, C, n]; then weigh channels per neuron.
  const torch::Tensor pooled =
      torch::matmul(features.flatten(2), mask_.flatten(1).t());  // [N, C, n]
  return (pooled * weights_.t().unsqueeze(0)).sum(1) + bias_;
}

void FactorizedReadoutImpl::ResetParameters(double init_std, const torch::Tensor& bias,
                                            at::Generator& generator) {
  torch::NoGradGuard no_grad;
  mask_.normal_(0, init_std, generator);
  weights_.normal_(0, init_std, generator);
  bias_.copy_(bias);
}

torch::Tensor FactorizedReadoutImpl::Regularization(double l1_mask, double l1_features) const {
  const double hw = static_cast<double>(mask_.size(1) * mask_.size(2));
  const double c = static_cast<double>(weights_.size(1));
  return (l1_mask * mask_.abs().sum({1, 2}) / hw + l1_features * weights_.abs().sum(1) / c)
      .mean();
}

}  // namespace stimloop
