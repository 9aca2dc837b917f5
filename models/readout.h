// Per-neuron factorized readout (Klindt, Ecker, Euler & Bethge 2017, "Neural
// system identification for large populations separating what and where"):
// neuron n's drive is
//
//   z[b, n] = sum_{c, y, x} features[b, c, y, x] * mask[n, y, x] * weights[n, c] + bias[n]
//
// a spatial mask ("where") times feature weights ("what"). The mask is
//   free      a parameter per grid position, with an L1 penalty
//             (Regularization) so it shrinks to the receptive field (Klindt
//             et al.); h * w numbers per neuron;
//   Gaussian  the Gaussian readout of Lurz et al. 2021 ("Generalization in
//             data-driven models of primary visual cortex"): the features
//             read at one point, bilinearly interpolated between grid
//             positions; a learned center and width, three numbers per
//             neuron. While training (SampledMask) the point is drawn per
//             trial from N(center, width^2), clamped to the grid, so that the
//             gradient reaches the center from anywhere the draws land;
//             afterwards (mask) it is the center.
// The L1 penalty on the weights applies to both.
#ifndef STIMLOOP_MODELS_READOUT_H_
#define STIMLOOP_MODELS_READOUT_H_

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <cstdint>

#include "models/surrogate_config.h"

namespace stimloop {

class FactorizedReadoutImpl : public torch::nn::Module {
 public:
  // Parameters weights [num_neurons, channels], bias [num_neurons], and the
  // free mask [num_neurons, height, width] or the Gaussian's center
  // [num_neurons, 2] (y, x; -1 and 1 are the first and last grid positions)
  // and width [num_neurons] (same units, its absolute value is used); zero
  // until ResetParameters. REQUIRES: all sizes >= 1.
  FactorizedReadoutImpl(int64_t channels, int64_t height, int64_t width, int64_t num_neurons,
                        ReadoutMask mask_kind = ReadoutMask::kFree);

  // features [N, channels, height, width] -> drives [N, num_neurons].
  torch::Tensor forward(const torch::Tensor& features) const;

  // weights ~ N(0, init_std^2) from `generator`, bias = `bias`
  // ([num_neurons]); a free mask ~ N(0, init_std^2); a Gaussian center at
  // `centers` ([num_neurons, 2], e.g. from ReceptiveFieldCenters) jittered
  // by ~ half a grid step with width two grid steps; when undefined, as Lurz
  // et al., within 0.1 of the middle with width 0.5 (a quarter of the grid).
  void ResetParameters(double init_std, const torch::Tensor& bias, at::Generator& generator,
                       const torch::Tensor& centers = {});

  // l1_mask * sum |mask| / (height * width) (free masks only) + l1_features *
  // sum |weights| / channels, averaged over neurons (a scalar, differentiable).
  torch::Tensor Regularization(double l1_mask, double l1_features) const;

  // The spatial masks [num_neurons, height, width]; for the Gaussian the
  // bilinear weights of its center (differentiable in the parameters).
  torch::Tensor mask() const;
  // Gaussian only: masks [N, num_neurons, height, width] at the points
  // center + |width| * noise, noise [N, num_neurons, 2] standard normal.
  torch::Tensor SampledMask(const torch::Tensor& noise) const;
  ReadoutMask mask_kind() const { return mask_kind_; }
  int64_t num_neurons() const { return bias_.size(0); }
  const torch::Tensor& weights() const { return weights_; }
  const torch::Tensor& bias() const { return bias_; }

 private:
  // Bilinear weights [..., height, width] of points [..., 2] (clamped to the grid).
  torch::Tensor BilinearMask(const torch::Tensor& points) const;

  ReadoutMask mask_kind_;
  int64_t height_, width_;
  torch::Tensor free_mask_;             // kFree
  torch::Tensor center_, point_width_;  // kGaussian
  torch::Tensor weights_, bias_;
};
TORCH_MODULE(FactorizedReadout);

// Where a Gaussian readout starts: for each neuron the grid position with
// the feature that correlates best with its responses, argmax_p max_f
// corr(x[., p, f], y[., j])^2 over the trials (features that barely vary
// have their variance floored), in the readout's center units
// ([num_neurons, 2]). Lurz et al. start near the middle with many neurons
// sharing a core; for one neuron and a few hundred trials, draws from the
// middle over a quarter of the grid find the field in some members only
// (docs/experiments.md).
//   features [G, height * width, F]  one row per distinct stimulus;
//   trial_group [T]                   each trial's row in features;
//   rates [T, num_neurons]            the trials' responses.
torch::Tensor ReceptiveFieldCenters(const torch::Tensor& features, const torch::Tensor& trial_group,
                                    const torch::Tensor& rates, int64_t height, int64_t width);

}  // namespace stimloop

#endif  // STIMLOOP_MODELS_READOUT_H_
