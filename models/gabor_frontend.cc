#include "models/gabor_frontend.h"

#include <algorithm>
#include <cmath>

#include <torch/nn/functional/conv.h>
#include <torch/torch.h>

#include "absl/strings/str_cat.h"

namespace stimloop {
namespace {

constexpr double kPi = 3.14159265358979323846;

// The 1-D factors of one scale. With d = -r..r, g(d) = exp(-d^2 / 2 sigma^2)
// and w = 2 pi / wavelength, orientation o (theta = pi o / O) has
//   a_o(x) = g(x) exp(i w cos(theta) x),  b_o(y) = g(y) exp(i w sin(theta) y),
// and the complex Gabor a_o(x) b_o(y): even = Re, odd = Im. Each kernel loses
// its DC as a multiple of the envelope g(x) g(y) and is scaled to unit norm.
struct Factors {
  torch::Tensor ar, ai, br, bi;  // [O, k] double
  torch::Tensor g;               // [k]
  torch::Tensor dc, norm;        // [2 O]: per even/odd kernel
};

// Even then odd kernels [2 O, y, x] before DC removal and normalization.
torch::Tensor RawKernels(const Factors& f) {
  // [y][x]: even = ar(x) br(y) - ai(x) bi(y), odd = ar(x) bi(y) + ai(x) br(y).
  auto outer = [](const torch::Tensor& y, const torch::Tensor& x) {  // [O, y, x]
    return y.unsqueeze(2) * x.unsqueeze(1);
  };
  const torch::Tensor even = outer(f.br, f.ar) - outer(f.bi, f.ai);
  const torch::Tensor odd = outer(f.bi, f.ar) + outer(f.br, f.ai);
  return torch::cat({even, odd}, 0);
}

Factors MakeFactors(double wavelength, double sigma, int64_t radius, int64_t orientations) {
  Factors f;
  const torch::Tensor d = torch::arange(-radius, radius + 1, torch::kDouble);
  f.g = torch::exp(-d * d / (2 * sigma * sigma));
  const int64_t k = 2 * radius + 1;
  f.ar = torch::empty({orientations, k}, torch::kDouble);
  f.ai = torch::empty_like(f.ar);
  f.br = torch::empty_like(f.ar);
  f.bi = torch::empty_like(f.ar);
  const double w = 2 * kPi / wavelength;
  for (int64_t o = 0; o < orientations; ++o) {
    const double theta = kPi * static_cast<double>(o) / static_cast<double>(orientations);
    f.ar[o] = f.g * torch::cos(w * std::cos(theta) * d);
    f.ai[o] = f.g * torch::sin(w * std::cos(theta) * d);
    f.br[o] = f.g * torch::cos(w * std::sin(theta) * d);
    f.bi[o] = f.g * torch::sin(w * std::sin(theta) * d);
  }
  const torch::Tensor raw = RawKernels(f);
  const torch::Tensor envelope = f.g.unsqueeze(1) * f.g.unsqueeze(0);
  f.dc = raw.sum({1, 2}) / envelope.sum();
  f.norm = (raw - f.dc.view({-1, 1, 1}) * envelope).pow(2).sum({1, 2}).sqrt();
  return f;
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
  const int64_t o = spec.orientations;
  for (int64_t s = 0; s < spec.scales; ++s) {
    const double t = spec.scales == 1 ? 0.0 : static_cast<double>(s) / (spec.scales - 1);
    const double wavelength =
        size * spec.min_wavelength * std::pow(spec.max_wavelength / spec.min_wavelength, t);
    const double sigma = spec.sigma_ratio * wavelength;
    // Two sigmas of envelope, at most the image itself.
    const int64_t radius = std::max<int64_t>(
        1, std::min<int64_t>(static_cast<int64_t>(std::ceil(2 * sigma)),
                             std::max(height, width) - 1));
    const int64_t k = 2 * radius + 1;
    const Factors f = MakeFactors(wavelength, sigma, radius, o);
    Scale scale;
    scale.radius = radius;
    scale.rows = torch::cat({f.ar, f.ai, f.g.unsqueeze(0)}, 0).view({2 * o + 1, 1, 1, k});
    // Group o reads (Re, Im) of the row pass; its outputs are
    // even_o = Re * br - Im * bi and odd_o = Re * bi + Im * br, normalized.
    const torch::Tensor even_norm = f.norm.narrow(0, 0, o).view({o, 1});
    const torch::Tensor odd_norm = f.norm.narrow(0, o, o).view({o, 1});
    scale.columns = torch::stack({torch::stack({f.br / even_norm, -f.bi / even_norm}, 1),
                                  torch::stack({f.bi / odd_norm, f.br / odd_norm}, 1)},
                                 1)
                        .reshape({2 * o, 2, k, 1});
    scale.envelope = f.g.view({1, 1, k, 1});
    scale.dc_over_norm = (f.dc / f.norm).view({1, 2 * o, 1, 1});
    for (torch::Tensor* t : {&scale.rows, &scale.columns, &scale.envelope, &scale.dc_over_norm}) {
      *t = t->to(torch::kFloat).contiguous();
    }
    register_buffer(absl::StrCat("rows_", s), scale.rows);
    register_buffer(absl::StrCat("columns_", s), scale.columns);
    register_buffer(absl::StrCat("envelope_", s), scale.envelope);
    register_buffer(absl::StrCat("dc_over_norm_", s), scale.dc_over_norm);
    wavelengths_.push_back(wavelength);
    scales_.push_back(std::move(scale));
  }
}

torch::Tensor GaborBankImpl::Kernels2d(int64_t scale) const {
  TORCH_CHECK(scale >= 0 && scale < static_cast<int64_t>(scales_.size()), "GaborBank: no scale ",
              scale);
  const double wavelength = wavelengths_[scale];
  const Factors f = MakeFactors(wavelength, spec_.sigma_ratio * wavelength,
                                scales_[scale].radius, spec_.orientations);
  const torch::Tensor envelope = f.g.unsqueeze(1) * f.g.unsqueeze(0);
  return ((RawKernels(f) - f.dc.view({-1, 1, 1}) * envelope) / f.norm.view({-1, 1, 1}))
      .to(torch::kFloat);
}

int64_t GaborBankImpl::num_features() const { return 3 * spec_.scales * spec_.orientations; }

torch::Tensor GaborBankImpl::forward(const torch::Tensor& images) const {
  namespace F = torch::nn::functional;
  TORCH_CHECK(images.dim() == 4 && images.size(1) == channels_,
              "GaborBank: images must be [N, ", channels_, ", H, W]");
  const torch::Tensor luminance = images.to(torch::kFloat).mean(1, /*keepdim=*/true) - 0.5;
  const int64_t o = spec_.orientations;
  const int64_t stride = spec_.stride;
  std::vector<torch::Tensor> parts;
  parts.reserve(2 * scales_.size());
  for (const Scale& scale : scales_) {
    const torch::Tensor rows = F::conv2d(
        luminance, scale.rows,
        F::Conv2dFuncOptions().stride({1, stride}).padding({0, scale.radius}));
    // (Re a_0, Im a_0, Re a_1, ...) for the grouped column pass.
    const torch::Tensor pairs =
        torch::stack({rows.narrow(1, 0, o), rows.narrow(1, o, o)}, 2).flatten(1, 2);
    const auto column_pass =
        F::Conv2dFuncOptions().stride({stride, 1}).padding({scale.radius, 0});
    const torch::Tensor interleaved =  // even_0, odd_0, even_1, ...
        F::conv2d(pairs, scale.columns, F::Conv2dFuncOptions(column_pass).groups(o));
    const torch::Tensor envelope =
        F::conv2d(rows.narrow(1, 2 * o, 1), scale.envelope, column_pass);
    const torch::Tensor linear =
        interleaved.unflatten(1, {o, 2}).transpose(1, 2).flatten(1, 2) -
        scale.dc_over_norm * envelope;
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
