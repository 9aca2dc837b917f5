#include "models/readout.h"

#include <algorithm>

#include <torch/torch.h>

namespace stimloop {
namespace {

// The start without data-driven centers (ResetParameters), center units.
constexpr double kInitCenterRange = 0.1;
constexpr double kInitWidth = 0.5;

// relu(1 - |grid position - coordinate|) for every grid position:
// coordinates [...] in grid steps -> [..., size].
torch::Tensor TentWeights(const torch::Tensor& coordinate, int64_t size) {
  const torch::Tensor grid = torch::arange(size, coordinate.options());
  return torch::relu(1 - (coordinate.unsqueeze(-1) - grid).abs());
}

}  // namespace

FactorizedReadoutImpl::FactorizedReadoutImpl(int64_t channels, int64_t height, int64_t width,
                                             int64_t num_neurons, ReadoutMask mask_kind)
    : mask_kind_(mask_kind), height_(height), width_(width) {
  TORCH_CHECK(channels >= 1 && height >= 1 && width >= 1 && num_neurons >= 1,
              "FactorizedReadout: sizes must be >= 1");
  if (mask_kind_ == ReadoutMask::kFree) {
    free_mask_ = register_parameter("mask", torch::zeros({num_neurons, height, width}));
  } else {
    center_ = register_parameter("center", torch::zeros({num_neurons, 2}));
    point_width_ = register_parameter("width", torch::zeros({num_neurons}));
  }
  weights_ = register_parameter("weights", torch::zeros({num_neurons, channels}));
  bias_ = register_parameter("bias", torch::zeros({num_neurons}));
}

torch::Tensor FactorizedReadoutImpl::BilinearMask(const torch::Tensor& points) const {
  const torch::Tensor p = points.clamp(-1, 1);
  const torch::Tensor y = (p.select(-1, 0) + 1) * (0.5 * static_cast<double>(height_ - 1));
  const torch::Tensor x = (p.select(-1, 1) + 1) * (0.5 * static_cast<double>(width_ - 1));
  return TentWeights(y, height_).unsqueeze(-1) * TentWeights(x, width_).unsqueeze(-2);
}

torch::Tensor FactorizedReadoutImpl::mask() const {
  if (mask_kind_ == ReadoutMask::kFree) return free_mask_;
  return BilinearMask(center_);
}

torch::Tensor FactorizedReadoutImpl::SampledMask(const torch::Tensor& noise) const {
  TORCH_CHECK(mask_kind_ == ReadoutMask::kGaussian, "SampledMask: not a Gaussian readout");
  TORCH_CHECK(noise.dim() == 3 && noise.size(1) == num_neurons() && noise.size(2) == 2,
              "SampledMask: noise must be [N, ", num_neurons(), ", 2], got ", noise.sizes());
  return BilinearMask(center_ + point_width_.abs().unsqueeze(-1) * noise);
}

torch::Tensor FactorizedReadoutImpl::forward(const torch::Tensor& features) const {
  TORCH_CHECK(features.dim() == 4 && features.size(1) == weights_.size(1) &&
                  features.size(2) == height_ && features.size(3) == width_,
              "FactorizedReadout: features must be [N, ", weights_.size(1), ", ", height_, ", ",
              width_, "], got ", features.sizes());
  // [N, C, h*w] x [h*w, n] -> [N, C, n]; then weigh channels per neuron.
  const torch::Tensor pooled =
      torch::matmul(features.flatten(2), mask().flatten(1).t());  // [N, C, n]
  return (pooled * weights_.t().unsqueeze(0)).sum(1) + bias_;
}

void FactorizedReadoutImpl::ResetParameters(double init_std, const torch::Tensor& bias,
                                            at::Generator& generator,
                                            const torch::Tensor& centers) {
  torch::NoGradGuard no_grad;
  if (mask_kind_ == ReadoutMask::kFree) {
    free_mask_.normal_(0, init_std, generator);
  } else if (centers.defined()) {
    // One grid step in center units, along the longer side.
    const double step =
        2.0 / static_cast<double>(std::max<int64_t>(std::max(height_, width_) - 1, 1));
    center_.normal_(0, 0.5 * step, generator);
    center_.add_(centers.to(center_.dtype()));
    point_width_.fill_(2 * step);
  } else {  // as Lurz et al.: near the middle, draws over much of the grid
    center_.uniform_(-kInitCenterRange, kInitCenterRange, generator);
    point_width_.fill_(kInitWidth);
  }
  weights_.normal_(0, init_std, generator);
  bias_.copy_(bias);
}

torch::Tensor FactorizedReadoutImpl::Regularization(double l1_mask, double l1_features) const {
  const double c = static_cast<double>(weights_.size(1));
  torch::Tensor penalty = l1_features * weights_.abs().sum(1) / c;
  if (mask_kind_ == ReadoutMask::kFree) {
    const double hw = static_cast<double>(height_ * width_);
    penalty = penalty + l1_mask * free_mask_.abs().sum({1, 2}) / hw;
  }
  return penalty.mean();
}

torch::Tensor ReceptiveFieldCenters(const torch::Tensor& features, const torch::Tensor& trial_group,
                                    const torch::Tensor& rates, int64_t height, int64_t width) {
  torch::NoGradGuard no_grad;
  TORCH_CHECK(features.dim() == 3 && features.size(1) == height * width && trial_group.dim() == 1 &&
                  rates.dim() == 2 && rates.size(0) == trial_group.size(0) && rates.size(0) > 0,
              "ReceptiveFieldCenters: bad shapes");
  // Moments over trials from per-row sums: count and summed rates per row.
  const int64_t rows = features.size(0);
  const torch::Tensor y = rates.to(torch::kDouble);
  const torch::Tensor count = torch::zeros({rows}, torch::kDouble)
                                  .index_add_(0, trial_group, torch::ones_like(y.select(1, 0)));
  const torch::Tensor rate_sum =
      torch::zeros({rows, y.size(1)}, torch::kDouble).index_add_(0, trial_group, y);
  const torch::Tensor x = features.to(torch::kDouble);  // [G, p, f]
  const double n = static_cast<double>(y.size(0));
  const torch::Tensor mean_x = torch::einsum("gpf,g->pf", {x, count}) / n;
  const torch::Tensor var_x = torch::einsum("gpf,g->pf", {x.square(), count}) / n - mean_x.square();
  const torch::Tensor mean_y = y.mean(0);                    // [j]
  const torch::Tensor var_y = y.var(0, /*unbiased=*/false);  // [j]
  const torch::Tensor cov =
      torch::einsum("gpf,gj->pfj", {x, rate_sum}) / n - mean_x.unsqueeze(2) * mean_y;  // [p, f, j]
  // Features that barely vary (zero padding at the border) would make any
  // chance covariance a perfect correlation: floor their variance.
  const torch::Tensor floor_x = var_x.clamp_min(1e-2 * var_x.mean().item<double>() + 1e-12);
  const torch::Tensor r2 = cov.square() / (floor_x.unsqueeze(2) * var_y + 1e-12);
  const torch::Tensor best = r2.amax(1).argmax(0);  // [j]
  const torch::Tensor row = torch::div(best, width, "floor").to(torch::kFloat);
  const torch::Tensor column = torch::remainder(best, width).to(torch::kFloat);
  auto to_unit = [](const torch::Tensor& position, int64_t size) {
    return size > 1 ? position * (2.0 / static_cast<double>(size - 1)) - 1 : position * 0;
  };
  return torch::stack({to_unit(row, height), to_unit(column, width)}, 1);
}

}  // namespace stimloop
