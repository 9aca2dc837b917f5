// The parametric Gabor surrogate (surrogate.params.model_class 1): for every
// neuron one quadrature pair of Gabor receptive fields on the image's
// luminance (the mean over channels), feeding a linear subunit with a
// power-law output (a simple cell) and an energy subunit (a complex cell),
// each with its own gain, plus a spontaneous rate:
//
//   d1 = <w(phase), x - 0.5>,  d2 = <w(phase + pi/2), x - 0.5>
//   rate = a * max(d1, 0)^p + b * (d1^2 + d2^2) + r0
//
// w is a Gabor (Gaussian envelope times cosine carrier) made zero-mean and
// of unit norm. Ten numbers per neuron, so a few hundred trials pin it
// down, and its carrier extends over the whole envelope by construction:
// where the flexible model (models/surrogate.h) must extrapolate a field's
// surround from few trials, this model cannot be wrong about its shape, only
// about its parameters. Its assumption is its cost: a neuron that is not
// well described by one Gabor pair (end-stopping, surround suppression,
// color) is fitted by the nearest such cell. A classic V1 model (Adelson &
// Bergen 1985; Heeger 1992) holding both kinds of cell, not told which one
// a neuron is.
//
// Parameters are stored per ensemble member and neuron ([M, n] each), in
// the units the fit steps in (GaborParameters). Immutable; the Gabor
// weights are built once at construction, so predictions are two matrix
// products. Differentiable with respect to images.
#ifndef STIMLOOP_MODELS_GABOR_MODEL_H_
#define STIMLOOP_MODELS_GABOR_MODEL_H_

#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "models/response_model.h"

namespace stimloop {

// The free parameters of many Gabor cells, any common shape S (e.g. [M, n]):
//   cx, cy      receptive field center, fractions of the image width / height;
//   theta       orientation of the carrier's wave vector, radians;
//   log_sigma   log of the envelope's standard deviation in pixels;
//   log_cycles  log of wavelength / sigma;
//   phase       the linear subunit's carrier phase, radians;
//   log_linear, log_exponent, log_energy, log_baseline: log a, log p, log b,
//               log r0 (p is clamped to [0.5, 6]).
struct GaborParameters {
  torch::Tensor cx, cy, theta, log_sigma, log_cycles, phase;
  torch::Tensor log_linear, log_exponent, log_energy, log_baseline;

  std::vector<torch::Tensor> all() const;
  static GaborParameters FromList(const std::vector<torch::Tensor>& tensors);
};

// The zero-mean, unit-norm Gabor weights of `g`, both subunits in one
// tensor [2 * numel(S), height * width]: first the carrier at each cell's
// phase, then its quadrature partner (phase + pi / 2), so that one matrix
// product gives both drives.
torch::Tensor GaborWeightPair(const GaborParameters& g, int64_t height, int64_t width);

// Rates [N, numel(S)] of the cells `g` from their drives [N, 2 * numel(S)]:
// centered.matmul(GaborWeightPair(g, ...).t()) for luminance images
// centered at gray, `centered` [N, height * width] (x - 0.5).
torch::Tensor GaborRatesFromDrives(const GaborParameters& g, const torch::Tensor& drives);

class GaborModel : public ResponseModel {
 public:
  // REQUIRES: every parameter [num_members, num_neurons], both >= 1;
  // height, width >= 1. The tensors are detached and copied.
  GaborModel(int64_t version, int64_t height, int64_t width, const GaborParameters& params);

  int64_t version() const override { return version_; }
  int64_t num_members() const override { return params_.cx.size(0); }
  int64_t num_neurons() const { return params_.cx.size(1); }
  int64_t height() const { return height_; }
  int64_t width() const { return width_; }
  const GaborParameters& parameters() const { return params_; }

  // images [N, C, height, width] in [0, 1] -> rates [M, N, num_neurons].
  torch::Tensor PredictMembers(const torch::Tensor& images) const override;

 private:
  int64_t version_, height_, width_;
  GaborParameters params_;
  torch::Tensor weights_;  // [2 * M * n, height * width], GaborWeightPair
};

// The model as torch::save archive bytes (INTERNAL on failure).
absl::StatusOr<std::string> SerializeGaborModel(const GaborModel& model);
// Reads SerializeGaborModel's bytes; INVALID_ARGUMENT when they are not a
// Gabor model checkpoint or were saved for images other than height x width.
absl::StatusOr<std::shared_ptr<const GaborModel>> DeserializeGaborModel(const std::string& bytes,
                                                                        int64_t height,
                                                                        int64_t width);

}  // namespace stimloop

#endif  // STIMLOOP_MODELS_GABOR_MODEL_H_
