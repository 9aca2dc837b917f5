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

// The strided 1-D correlation with zero padding `radius` as matrices:
// [F, n_out, n_in] with M[f][j][i] = filters[f][i - stride * j + radius]
// where that index lies in [0, k), else 0. Multiplying a signal of length
// n_in by M[f]^T equals conv1d(signal, filters[f], stride, padding radius).
torch::Tensor BandMatrices(const torch::Tensor& filters, int64_t n_in, int64_t n_out,
                           int64_t stride, int64_t radius) {
  const int64_t num = filters.size(0), k = filters.size(1);
  torch::Tensor m = torch::zeros({num, n_out, n_in}, torch::kDouble);
  auto out = m.accessor<double, 3>();
  const torch::Tensor f64 = filters.to(torch::kDouble).contiguous();
  auto in = f64.accessor<double, 2>();
  for (int64_t f = 0; f < num; ++f) {
    for (int64_t j = 0; j < n_out; ++j) {
      for (int64_t i = std::max<int64_t>(0, stride * j - radius);
           i < std::min<int64_t>(n_in, stride * j - radius + k); ++i) {
        out[f][j][i] = in[f][i - stride * j + radius];
      }
    }
  }
  return m;
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
  const int64_t stride = spec.stride;
  height_out_ = (height + stride - 1) / stride;
  width_out_ = (width + stride - 1) / stride;
  const int64_t height_out = height_out_, width_out = width_out_;
  std::vector<torch::Tensor> row_blocks;
  for (int64_t s = 0; s < spec.scales; ++s) {
    const double t = spec.scales == 1 ? 0.0 : static_cast<double>(s) / (spec.scales - 1);
    const double wavelength =
        size * spec.min_wavelength * std::pow(spec.max_wavelength / spec.min_wavelength, t);
    const double sigma = spec.sigma_ratio * wavelength;
    // Two sigmas of envelope, at most the image itself.
    const int64_t radius = std::max<int64_t>(
        1, std::min<int64_t>(static_cast<int64_t>(std::ceil(2 * sigma)),
                             std::max(height, width) - 1));
    const Factors f = MakeFactors(wavelength, sigma, radius, o);
    Scale scale;
    scale.radius = radius;
    // Row pass: Re a_o, Im a_o and the envelope g along x.
    row_blocks.push_back(
        BandMatrices(torch::cat({f.ar, f.ai, f.g.unsqueeze(0)}, 0), width, width_out, stride,
                     radius)
            .permute({2, 0, 1})
            .reshape({width, (2 * o + 1) * width_out}));
    // Column pass of orientation o on (Re, Im) stacked along y:
    //   even_o = (Br Re - Bi Im) / norm_even,  odd_o = (Bi Re + Br Im) / norm_odd.
    const torch::Tensor br = BandMatrices(f.br, height, height_out, stride, radius);
    const torch::Tensor bi = BandMatrices(f.bi, height, height_out, stride, radius);
    const torch::Tensor even_norm = f.norm.narrow(0, 0, o).view({o, 1, 1});
    const torch::Tensor odd_norm = f.norm.narrow(0, o, o).view({o, 1, 1});
    scale.columns = torch::cat({torch::cat({br / even_norm, -bi / even_norm}, 2),
                                torch::cat({bi / odd_norm, br / odd_norm}, 2)},
                               1);  // [O, 2 Hout, 2 H]
    scale.envelope_columns =
        BandMatrices(f.g.unsqueeze(0), height, height_out, stride, radius)[0];  // [Hout, H]
    scale.dc_over_norm = (f.dc / f.norm).view({1, 2 * o, 1, 1});
    for (torch::Tensor* t : {&scale.columns, &scale.envelope_columns, &scale.dc_over_norm}) {
      *t = t->to(torch::kFloat).contiguous();
    }
    register_buffer(absl::StrCat("columns_", s), scale.columns);
    register_buffer(absl::StrCat("envelope_columns_", s), scale.envelope_columns);
    register_buffer(absl::StrCat("dc_over_norm_", s), scale.dc_over_norm);
    wavelengths_.push_back(wavelength);
    scales_.push_back(std::move(scale));
  }
  row_matrix_ =
      register_buffer("row_matrix", torch::cat(row_blocks, 1).to(torch::kFloat).contiguous());
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

torch::Tensor GaborBankImpl::ForwardByConvolution(const torch::Tensor& images) const {
  namespace F = torch::nn::functional;
  TORCH_CHECK(images.dim() == 4 && images.size(1) == channels_,
              "GaborBank: images must be [N, ", channels_, ", H, W]");
  const torch::Tensor luminance = images.to(torch::kFloat).mean(1, /*keepdim=*/true) - 0.5;
  const int64_t o = spec_.orientations;
  std::vector<torch::Tensor> parts;
  for (size_t s = 0; s < scales_.size(); ++s) {
    const torch::Tensor linear =
        F::conv2d(luminance, Kernels2d(static_cast<int64_t>(s)).unsqueeze(1),
                  F::Conv2dFuncOptions().stride(spec_.stride).padding(scales_[s].radius));
    parts.push_back(linear);
    parts.push_back(linear.narrow(1, 0, o).pow(2) + linear.narrow(1, o, o).pow(2));
  }
  return torch::cat(parts, 1);
}

int64_t GaborBankImpl::num_features() const { return 3 * spec_.scales * spec_.orientations; }

torch::Tensor GaborBankImpl::forward(const torch::Tensor& images) const {
  TORCH_CHECK(images.dim() == 4 && images.size(1) == channels_,
              "GaborBank: images must be [N, ", channels_, ", H, W]");
  const int64_t n = images.size(0), height = images.size(2), width = images.size(3);
  TORCH_CHECK(width == row_matrix_.size(0) && height == scales_[0].envelope_columns.size(1),
              "GaborBank: images must be ", scales_[0].envelope_columns.size(1), "x",
              row_matrix_.size(0), " pixels, not ", height, "x", width);
  const int64_t o = spec_.orientations;
  const int64_t ho = height_out_, wo = width_out_;
  const torch::Tensor luminance = images.to(torch::kFloat).mean(1) - 0.5;  // [N, H, W]
  // Every scale's row pass in one product, laid out for the column passes
  // as [S][2 O + 1, H, N * Wout] (y is what they contract). unbind and split
  // rather than select and narrow: their backward is one stack or cat, not
  // a zero-filled copy of the whole tensor per piece.
  const std::vector<torch::Tensor> by_scale =
      torch::matmul(luminance.reshape({n * height, width}), row_matrix_)
          .view({n, height, spec_.scales, 2 * o + 1, wo})
          .permute({2, 3, 1, 0, 4})
          .reshape({spec_.scales, 2 * o + 1, height, n * wo})
          .unbind(0);
  std::vector<torch::Tensor> parts;
  parts.reserve(2 * scales_.size());
  for (size_t s = 0; s < scales_.size(); ++s) {
    const Scale& scale = scales_[s];
    const std::vector<torch::Tensor> re_im_env = by_scale[s].split_with_sizes({o, o, 1}, 0);
    const torch::Tensor re_im = torch::cat({re_im_env[0], re_im_env[1]}, 1);  // [O, 2 H, N Wout]
    const torch::Tensor even_odd = torch::bmm(scale.columns, re_im)  // [O, 2 Hout, N * Wout]
                                       .view({o, 2, ho, n, wo})
                                       .permute({3, 1, 0, 2, 4})
                                       .reshape({n, 2 * o, ho, wo});
    const torch::Tensor envelope = torch::matmul(scale.envelope_columns, re_im_env[2][0])
                                       .view({ho, n, wo})
                                       .permute({1, 0, 2})
                                       .unsqueeze(1);  // [N, 1, Hout, Wout]
    const torch::Tensor linear = even_odd - scale.dc_over_norm * envelope;
    const std::vector<torch::Tensor> even_and_odd = linear.split(o, 1);
    parts.push_back(linear);
    parts.push_back(even_and_odd[0].pow(2) + even_and_odd[1].pow(2));
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
