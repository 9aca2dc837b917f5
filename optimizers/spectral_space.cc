#include "optimizers/spectral_space.h"

#include <algorithm>
#include <cmath>

#include "base/params.h"

namespace stimloop {
namespace {

// The first `k` rows of the orthonormal DCT-II matrix of size n: [k, n].
torch::Tensor DctRows(int64_t k, int64_t n) {
  torch::Tensor basis = torch::empty({k, n}, torch::kDouble);
  auto b = basis.accessor<double, 2>();
  for (int64_t u = 0; u < k; ++u) {
    const double scale = std::sqrt((u == 0 ? 1.0 : 2.0) / static_cast<double>(n));
    for (int64_t x = 0; x < n; ++x) {
      b[u][x] = scale * std::cos(M_PI * (2.0 * x + 1.0) * u / (2.0 * n));
    }
  }
  return basis.to(torch::kFloat);
}

// a_uv as documented in the header: [k_h, k_w].
torch::Tensor Amplitudes(int64_t k_h, int64_t k_w, int64_t h, int64_t w, double contrast,
                         double falloff) {
  torch::Tensor amp = torch::empty({k_h, k_w}, torch::kDouble);
  auto a = amp.accessor<double, 2>();
  const double lowest = std::min(k_h > 1 ? 1.0 / h : 1.0, k_w > 1 ? 1.0 / w : 1.0);
  double sum_sq = 0;
  for (int64_t u = 0; u < k_h; ++u) {
    for (int64_t v = 0; v < k_w; ++v) {
      double f = std::hypot(static_cast<double>(u) / h, static_cast<double>(v) / w);
      if (u == 0 && v == 0) f = lowest;
      a[u][v] = std::pow(f, -falloff);
      sum_sq += a[u][v] * a[u][v];
    }
  }
  amp *= contrast * std::sqrt(static_cast<double>(h * w) / sum_sq);
  return amp.to(torch::kFloat);
}

}  // namespace

SpectralSpace::SpectralSpace(ImageShape shape, int64_t cutoff, double contrast, double falloff)
    : ImageSpace(shape),
      basis_h_(DctRows(std::min(cutoff, shape.height), shape.height)),
      basis_w_(DctRows(std::min(cutoff, shape.width), shape.width)),
      amplitudes_(Amplitudes(basis_h_.size(0), basis_w_.size(0), shape.height, shape.width,
                             contrast, falloff)) {}

int64_t SpectralSpace::code_size() const { return shape().channels * rows() * cols(); }

torch::Tensor SpectralSpace::SamplePrior(int64_t n, at::Generator& generator) const {
  return torch::randn({n, code_size()}, generator, torch::kFloat);
}

torch::Tensor SpectralSpace::Decode(const torch::Tensor& codes) const {
  return DecodeUnclipped(codes).clamp(0.0, 1.0);
}

torch::Tensor SpectralSpace::DecodeUnclipped(const torch::Tensor& codes) const {
  auto like = [&codes](const torch::Tensor& t) {
    return t.to(codes.device(), codes.scalar_type());
  };
  const torch::Tensor coef =
      codes.reshape({-1, shape().channels, rows(), cols()}) * like(amplitudes_);
  const torch::Tensor image =
      torch::matmul(torch::matmul(like(basis_h_).t(), coef), like(basis_w_));
  return image + 0.5;
}

torch::Tensor SpectralSpace::Encode(const torch::Tensor& images) const {
  const torch::Tensor x = images.to(torch::kFloat)
                              .reshape({-1, shape().channels, shape().height, shape().width}) -
                          0.5;
  auto like = [&x](const torch::Tensor& t) { return t.to(x.device()); };
  const torch::Tensor coef =
      torch::matmul(torch::matmul(like(basis_h_), x), like(basis_w_).t());
  return (coef / like(amplitudes_)).reshape({-1, code_size()});
}

absl::StatusOr<std::shared_ptr<const ImageSpace>> MakeSpectralSpace(
    const ImageSpaceSpec& spec, const ImageShape& shape) {
  ParamReader params(spec.params, "image_space.params");
  const int64_t cutoff = params.GetInt("cutoff", 16, 1, 512);
  const double contrast = params.Get("contrast", 0.5, 0.01, 1.0);
  const double falloff = params.Get("falloff", 1.0, 0.0, 3.0);
  if (absl::Status s = params.Finish(); !s.ok()) return s;
  return std::make_shared<const SpectralSpace>(shape, cutoff, contrast, falloff);
}

}  // namespace stimloop
