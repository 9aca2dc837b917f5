#include "models/gabor_frontend.h"

#include <algorithm>
#include <cmath>

#include <torch/nn/functional/conv.h>
#include <torch/torch.h>

#include "absl/strings/str_cat.h"

namespace stimloop {
namespace {

constexpr double kPi = 3.14159265358979323846;

// Even and odd Gabors for every orientation: [2 * O, k, k], zero mean, unit norm.
torch::Tensor MakeQuadratureKernels(double wavelength, double sigma, int64_t radius,
                                    int64_t orientations) {
  const int64_t k = 2 * radius + 1;
  torch::Tensor kernels = torch::empty({2 * orientations, k, k}, torch::kDouble);
  auto acc = kernels.accessor<double, 3>();
  for (int64_t o = 0; o < orientations; ++o) {
    const double theta = kPi * static_cast<double>(o) / static_cast<double>(orientations);
    const double c = std::cos(theta), s = std::sin(theta);
    for (int64_t y = 0; y < k; ++y) {
      for (int64_t x = 0; x < k; ++x) {
        const double dx = static_cast<double>(x - radius), dy = static_cast<double>(y - radius);
        const double along = c * dx + s * dy;
        const double envelope = std::exp(-(dx * dx + dy * dy) / (2 * sigma * sigma));
        acc[o][y][x] = envelope * std::cos(2 * kPi * along / wavelength);
        acc[orientations + o][y][x] = envelope * std::sin(2 * kPi * along / wavelength);
      }
    }
  }
  // Remove the DC of the even kernels (broad bandwidths leak some) with a
  // multiple of the envelope, then normalize.
  torch::Tensor envelope = torch::empty({k, k}, torch::kDouble);
  {
    auto e = envelope.accessor<double, 2>();
    for (int64_t y = 0; y < k; ++y) {
      for (int64_t x = 0; x < k; ++x) {
        const double dx = static_cast<double>(x - radius), dy = static_cast<double>(y - radius);
        e[y][x] = std::exp(-(dx * dx + dy * dy) / (2 * sigma * sigma));
      }
    }
  }
  const torch::Tensor dc = kernels.sum({1, 2}, /*keepdim=*/true) / envelope.sum();
  kernels = kernels - dc * envelope.unsqueeze(0);
  kernels = kernels / kernels.pow(2).sum({1, 2}, /*keepdim=*/true).sqrt();
  return kernels.to(torch::kFloat);
}

}  // namespace

GaborBankImpl::GaborBankImpl(const GaborBankSpec& spec, int64_t channels, int64_t height,
                             int64_t width)
    : spec_(spec), channels_(channels) {
  TORCH_CHECK(channels >= 1 && height >= 1 && width >= 1, "GaborBank: bad image shape");
  TORCH_CHECK(spec.scales >= 1 && spec.orientations >= 1 && spec.stride >= 1 &&
                  spec.min_wavelength > 0 && spec.max_wavelength >= spec.min_wavelength &&
                  spec.sigma_ratio > 0,
              "GaborBank: bad spec");
  const double size = static_cast<double>(std::min(height, width));
  for (int64_t s = 0; s < spec.scales; ++s) {
    const double t = spec.scales == 1 ? 0.0 : static_cast<double>(s) / (spec.scales - 1);
    const double wavelength =
        size * spec.min_wavelength * std::pow(spec.max_wavelength / spec.min_wavelength, t);
    const double sigma = spec.sigma_ratio * wavelength;
    // Two sigmas of envelope, at most the image itself.
    const int64_t radius = std::max<int64_t>(
        1, std::min<int64_t>(static_cast<int64_t>(std::ceil(2 * sigma)),
                             std::max(height, width) - 1));
    // Luminance: the same kernel on every channel, divided by C.
    torch::Tensor k = MakeQuadratureKernels(wavelength, sigma, radius, spec.orientations)
                          .unsqueeze(1)
                          .expand({2 * spec.orientations, channels, 2 * radius + 1, 2 * radius + 1})
                          .contiguous() /
                      static_cast<double>(channels);
    wavelengths_.push_back(wavelength);
    paddings_.push_back(radius);
    kernels_.push_back(register_buffer(absl::StrCat("kernel_", s), k));
  }
}

int64_t GaborBankImpl::num_features() const { return 3 * spec_.scales * spec_.orientations; }

torch::Tensor GaborBankImpl::forward(const torch::Tensor& images) const {
  namespace F = torch::nn::functional;
  TORCH_CHECK(images.dim() == 4 && images.size(1) == channels_,
              "GaborBank: images must be [N, ", channels_, ", H, W]");
  const torch::Tensor centered = images.to(torch::kFloat) - 0.5;
  const int64_t o = spec_.orientations;
  std::vector<torch::Tensor> parts;
  parts.reserve(2 * kernels_.size());
  for (size_t s = 0; s < kernels_.size(); ++s) {
    const torch::Tensor linear = F::conv2d(
        centered,
        kernels_[s], F::Conv2dFuncOptions().stride(spec_.stride).padding(paddings_[s]));
    const torch::Tensor energy = linear.narrow(1, 0, o).pow(2) + linear.narrow(1, o, o).pow(2);
    parts.push_back(linear);
    parts.push_back(energy);
  }
  return torch::cat(parts, 1);
}

GaborFrontEnd::GaborFrontEnd(const GaborBankSpec& spec, int64_t channels, int64_t height,
                             int64_t width)
    : bank_(spec, channels, height, width) {
  bank_->eval();
  shape_.channels = bank_->num_features();
  shape_.height = (height + spec.stride - 1) / spec.stride;
  shape_.width = (width + spec.stride - 1) / spec.stride;
}

torch::Tensor GaborFrontEnd::Forward(const torch::Tensor& images) const {
  return bank_->forward(images);
}

}  // namespace stimloop
