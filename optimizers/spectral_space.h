// Spectral space: smooth, natural-looking images from a low-frequency basis.
//
// Each channel is a sum of the K_h x K_w lowest-frequency functions of the
// orthonormal 2-D DCT-II basis, B_uv(y, x) = b_u(y) b_v(x), weighted by a
// 1/f^falloff amplitude spectrum, the power law of natural images (Field
// 1987, J Opt Soc Am A 4:2379; van der Schaaf & van Hateren 1996, Vision Res
// 36:2759 measured exponents near 1):
//
//   image[c] = clamp(0.5 + sum_uv code[c, u, v] * a_uv * B_uv, 0, 1)
//   f_uv = sqrt((u / H)^2 + (v / W)^2)        (DCT index -> cycles per image)
//   a_uv = contrast * s / f_uv^falloff, with s such that sum_uv (a_uv/contrast)^2 = H * W
//
// The codes are whitened: the prior is N(0, I), and under it every pixel
// has, averaged over the image, standard deviation `contrast` around 0.5
// before clamping. The DC term gets the amplitude of the lowest non-zero
// frequency, so the mean luminance varies like the coarsest pattern.
// Channels are independent. code_size = C * K_h * K_w, laid out [C, K_h, K_w].
//
// Decode is differentiable (two batched matmuls; clamping zeroes the gradient
// of saturated pixels; DecodeUnclipped is Decode before the clamp). Encode is the least-squares projection onto the basis
// (the basis is orthonormal): exact inverse of Decode where nothing clipped,
// an approximation where it did.
//
// Parameters ("image_space.params"):
//   cutoff   (default 16, [1, 512]): frequencies kept per axis; K_h =
//            min(cutoff, H), K_w = min(cutoff, W). 16 on a 64 x 64 image keeps
//            periods down to 8 px (256 numbers per channel): smooth blobs,
//            bars and gratings, a space small enough for model-free search.
//   contrast (default 0.5, [0.01, 1]): RMS pixel contrast of prior images
//            before clipping to [0, 1]. A neuron's optimum in the pixel box
//            is a full-contrast pattern (for a linear or energy receptive
//            field, a binary one), so the prior must reach saturation: at
//            0.5 prior images are partly clipped, high-contrast blobs and
//            bars (the measurement behind it: docs/experiments.md).
//   falloff  (default 1, [0, 3]): the amplitude spectrum's exponent; 0 is
//            white (all frequencies equal), 1 is natural-image-like.
#ifndef STIMLOOP_OPTIMIZERS_SPECTRAL_SPACE_H_
#define STIMLOOP_OPTIMIZERS_SPECTRAL_SPACE_H_

#include <memory>

#include "absl/status/statusor.h"
#include "optimizers/image_space.h"

namespace stimloop {

class SpectralSpace : public ImageSpace {
 public:
  // REQUIRES: cutoff >= 1, contrast > 0, falloff >= 0.
  SpectralSpace(ImageShape shape, int64_t cutoff, double contrast, double falloff);

  absl::string_view name() const override { return "spectral"; }
  int64_t code_size() const override;
  torch::Tensor SamplePrior(int64_t n, at::Generator& generator) const override;
  torch::Tensor Decode(const torch::Tensor& codes) const override;
  torch::Tensor DecodeUnclipped(const torch::Tensor& codes) const override;
  torch::Tensor Encode(const torch::Tensor& images) const override;

  // Per-axis numbers of frequencies kept.
  int64_t rows() const { return basis_h_.size(0); }
  int64_t cols() const { return basis_w_.size(0); }
  // a_uv [K_h, K_w] (contrast included).
  const torch::Tensor& amplitudes() const { return amplitudes_; }

 private:
  torch::Tensor basis_h_;     // [K_h, H], orthonormal rows
  torch::Tensor basis_w_;     // [K_w, W], orthonormal rows
  torch::Tensor amplitudes_;  // [K_h, K_w]
};

// Reads the parameters above; INVALID_ARGUMENT names "image_space.params.<key>".
absl::StatusOr<std::shared_ptr<const ImageSpace>> MakeSpectralSpace(
    const ImageSpaceSpec& spec, const ImageShape& shape);

}  // namespace stimloop

#endif  // STIMLOOP_OPTIMIZERS_SPECTRAL_SPACE_H_
