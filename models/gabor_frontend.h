// The default surrogate front end: a fixed bank of Gabor filters in
// quadrature at several scales and orientations, applied as strided
// convolutions with fixed weights (buffers, never parameters).
//
// For each scale s (wavelengths spaced geometrically from min_wavelength to
// max_wavelength, as fractions of min(H, W)) and orientation
// theta_o = pi * o / O, an even (cosine) and an odd (sine) Gabor with
// envelope sigma = sigma_ratio * wavelength, zero mean and unit L2 norm, are
// convolved with each input plane on a grid of stride `stride` (output
// ceil(H / stride) x ceil(W / stride)). The planes (BankInputImages): for
// gray images the luminance (channel mean) - 0.5; for RGB images the
// luminance and two cone-opponent planes, red-green (R - G) / 2 and
// blue-yellow (2B - R - G) / 4, so colour-tuned cells (single- and
// double-opponent) are within the model's reach. Channels, plane by plane
// and within each scale by scale: O even ("linear"), O odd ("linear"), O
// energy (even^2 + odd^2, the phase-invariant complex-cell channel):
// F = P * 3 * S * O with P = 1 plane for gray, 3 for RGB.
// A simple cell is a rectified mix of the linear channels at its position, a
// complex cell an energy channel, so a few hundred trials suffice to fit the
// readout on top.
//
// Computation: the envelope is an isotropic Gaussian, so the complex Gabor
// g(x) g(y) exp(i w (x cos + y sin)) is the product of a complex filter
// along x and one along y, and the DC correction is the separable envelope.
// Each scale is therefore a strided correlation along the rows (2 O + 1
// one-dimensional filters) followed by one along the columns, and both are
// done as products with banded matrices (zero padding included): three
// GEMMs for every scale's rows (Re, Im, envelope), laid out so that two
// batched GEMMs do every scale's columns without reordering the rows'
// output. Same output and image gradient as the 2-D kernels of Kernels2d
// (to float rounding, ~1e-6); faster forward and backward than strided
// convolutions at 64x64 (bench/frontend_time), which matters because
// gradient ascent pays it at every step. The matrices fix the image size at
// construction. A dense band does W / k times the multiply-adds of a kernel
// of width k; larger images (up to 512, kernels scale with them) have not
// been timed.
#ifndef STIMLOOP_MODELS_GABOR_FRONTEND_H_
#define STIMLOOP_MODELS_GABOR_FRONTEND_H_

#include <cstdint>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "models/surrogate_config.h"
#include "models/surrogate_frontend.h"

namespace stimloop {

class GaborBankImpl : public torch::nn::Module {
 public:
  // REQUIRES: channels >= 1, height, width >= 1, spec values in the ranges
  // of models/surrogate_config.h (checked with TORCH_CHECK).
  GaborBankImpl(const GaborBankSpec& spec, int64_t channels, int64_t height, int64_t width);

  // images [N, C, H, W] in [0, 1], H and W those of the constructor ->
  // [N, num_features(), ceil(H/stride), ceil(W/stride)].
  torch::Tensor forward(const torch::Tensor& images) const;

  int64_t num_features() const;
  // Number of planes the bank filters for images of `channels` channels:
  // 3 for RGB (luminance, red-green, blue-yellow), else 1 (luminance).
  static int64_t BankInputs(int64_t channels);
  // images [N, C, H, W] -> the planes [N * BankInputs(C), H, W], image-major.
  static torch::Tensor BankInputImages(const torch::Tensor& images);
  // Wavelength of each scale, pixels.
  const std::vector<double>& wavelengths() const { return wavelengths_; }
  // The filters of scale `scale` as 2-D kernels [2 * O, k, k] (even, then
  // odd; zero mean, unit norm): forward's linear channels of each plane
  // equal conv2d(the plane, these, stride, padding k/2).
  torch::Tensor Kernels2d(int64_t scale) const;
  // forward's features computed the slow, obvious way: 2-D convolution of
  // each plane with Kernels2d, plus the energy channels. The reference
  // that tests and bench/frontend_time compare forward against.
  torch::Tensor ForwardByConvolution(const torch::Tensor& images) const;

 private:
  GaborBankSpec spec_;
  int64_t channels_;
  int64_t height_out_ = 0, width_out_ = 0;
  std::vector<double> wavelengths_;
  std::vector<int64_t> radii_;  // kernel radius of each scale, pixels
  // Buffers. Row passes as banded matrices (zero padding included), columns
  // (scale, filter, output x): [W, S O Wout] for Re a_o and Im a_o, [W, S
  // Wout] for the envelope g. Column passes, transposed and stacked over
  // (scale, orientation): even_o and odd_o along y are
  // Re_o re_columns[o] + Im_o im_columns[o], [S O, H, 2 Hout]; the envelope's
  // [S, H, Hout]. dc_over_norm [1, S, 2 O, 1, 1]: the envelope's share
  // removed from each even / odd channel.
  torch::Tensor re_rows_, im_rows_, envelope_rows_;
  torch::Tensor re_columns_, im_columns_, envelope_columns_;
  torch::Tensor dc_over_norm_;
};
TORCH_MODULE(GaborBank);

// FrontEnd adapter over a GaborBank. Thread-safe.
class GaborFrontEnd : public FrontEnd {
 public:
  GaborFrontEnd(const GaborBankSpec& spec, int64_t channels, int64_t height, int64_t width);

  torch::Tensor Forward(const torch::Tensor& images) const override;
  const FeatureShape& feature_shape() const override { return shape_; }
  std::string Describe() const override { return "gabor"; }
  const GaborBank& bank() const { return bank_; }

 private:
  GaborBank bank_;
  FeatureShape shape_;
};

}  // namespace stimloop

#endif  // STIMLOOP_MODELS_GABOR_FRONTEND_H_
