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

int64_t GaborBankImpl::BankInputs(int64_t channels) { return channels == 3 ? 3 : 1; }

torch::Tensor GaborBankImpl::BankInputImages(const torch::Tensor& images) {
  const torch::Tensor x = images.to(torch::kFloat);
  const int64_t n = x.size(0), height = x.size(2), width = x.size(3);
  if (x.size(1) != 3) return x.mean(1) - 0.5;
  const torch::Tensor r = x.select(1, 0), g = x.select(1, 1), b = x.select(1, 2);
  return torch::stack({(r + g + b) / 3 - 0.5, (r - g) / 2, (2 * b - r - g) / 4}, 1)
      .reshape({n * 3, height, width});
}

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
  // Per scale, then concatenated (rows: along their columns, scale-major)
  // or stacked (columns: along the batch).
  std::vector<torch::Tensor> re_rows, im_rows, envelope_rows, re_columns, im_columns,
      envelope_columns, dc_over_norm;
  // [F, k] filters -> [W, F * Wout], columns (filter, output position).
  auto row_block = [&](const torch::Tensor& filters, int64_t radius) {
    return BandMatrices(filters, width, width_out, stride, radius)
        .permute({2, 0, 1})
        .reshape({width, filters.size(0) * width_out});
  };
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
    // Row pass: Re a_o, Im a_o and the envelope g along x.
    re_rows.push_back(row_block(f.ar, radius));
    im_rows.push_back(row_block(f.ai, radius));
    envelope_rows.push_back(row_block(f.g.unsqueeze(0), radius));
    // Column pass of orientation o on Re and Im:
    //   even_o = (Br Re - Bi Im) / norm_even,  odd_o = (Bi Re + Br Im) / norm_odd,
    // transposed ([O, H, 2 Hout]) since y is the last axis of the row pass's output.
    const torch::Tensor br = BandMatrices(f.br, height, height_out, stride, radius);
    const torch::Tensor bi = BandMatrices(f.bi, height, height_out, stride, radius);
    const torch::Tensor even_norm = f.norm.narrow(0, 0, o).view({o, 1, 1});
    const torch::Tensor odd_norm = f.norm.narrow(0, o, o).view({o, 1, 1});
    re_columns.push_back(torch::cat({br / even_norm, bi / odd_norm}, 1).transpose(1, 2));
    im_columns.push_back(torch::cat({-bi / even_norm, br / odd_norm}, 1).transpose(1, 2));
    envelope_columns.push_back(
        BandMatrices(f.g.unsqueeze(0), height, height_out, stride, radius)[0].t());
    dc_over_norm.push_back(f.dc / f.norm);
    wavelengths_.push_back(wavelength);
    radii_.push_back(radius);
  }
  auto buffer = [&](const char* name, const torch::Tensor& value) {
    return register_buffer(name, value.to(torch::kFloat).contiguous());
  };
  re_rows_ = buffer("re_rows", torch::cat(re_rows, 1));
  im_rows_ = buffer("im_rows", torch::cat(im_rows, 1));
  envelope_rows_ = buffer("envelope_rows", torch::cat(envelope_rows, 1));
  re_columns_ = buffer("re_columns", torch::cat(re_columns, 0));
  im_columns_ = buffer("im_columns", torch::cat(im_columns, 0));
  envelope_columns_ = buffer("envelope_columns", torch::stack(envelope_columns, 0));
  dc_over_norm_ =
      buffer("dc_over_norm", torch::stack(dc_over_norm, 0).view({1, spec.scales, 2 * o, 1, 1}));
}

torch::Tensor GaborBankImpl::Kernels2d(int64_t scale) const {
  TORCH_CHECK(scale >= 0 && scale < static_cast<int64_t>(radii_.size()), "GaborBank: no scale ",
              scale);
  const double wavelength = wavelengths_[scale];
  const Factors f = MakeFactors(wavelength, spec_.sigma_ratio * wavelength,
                                radii_[scale], spec_.orientations);
  const torch::Tensor envelope = f.g.unsqueeze(1) * f.g.unsqueeze(0);
  return ((RawKernels(f) - f.dc.view({-1, 1, 1}) * envelope) / f.norm.view({-1, 1, 1}))
      .to(torch::kFloat);
}

torch::Tensor GaborBankImpl::ForwardByConvolution(const torch::Tensor& images) const {
  namespace F = torch::nn::functional;
  TORCH_CHECK(images.dim() == 4 && images.size(1) == channels_,
              "GaborBank: images must be [N, ", channels_, ", H, W]");
  const torch::Tensor inputs = BankInputImages(images).unsqueeze(1);  // [N B, 1, H, W]
  const int64_t o = spec_.orientations;
  std::vector<torch::Tensor> parts;
  for (size_t s = 0; s < radii_.size(); ++s) {
    const torch::Tensor linear =
        F::conv2d(inputs, Kernels2d(static_cast<int64_t>(s)).unsqueeze(1),
                  F::Conv2dFuncOptions().stride(spec_.stride).padding(radii_[s]));
    parts.push_back(linear);
    parts.push_back(linear.narrow(1, 0, o).pow(2) + linear.narrow(1, o, o).pow(2));
  }
  const torch::Tensor per_input = torch::cat(parts, 1);  // [N B, 3 S O, Hout, Wout]
  return per_input.view({images.size(0), num_features(), per_input.size(2), per_input.size(3)});
}

int64_t GaborBankImpl::num_features() const {
  return BankInputs(channels_) * 3 * spec_.scales * spec_.orientations;
}

torch::Tensor GaborBankImpl::forward(const torch::Tensor& images) const {
  TORCH_CHECK(images.dim() == 4 && images.size(1) == channels_,
              "GaborBank: images must be [N, ", channels_, ", H, W]");
  const int64_t height = images.size(2), width = images.size(3);
  TORCH_CHECK(width == re_rows_.size(0) && height == envelope_columns_.size(1),
              "GaborBank: images must be ", envelope_columns_.size(1), "x", re_rows_.size(0),
              " pixels, not ", height, "x", width);
  const int64_t scales = spec_.scales, o = spec_.orientations;
  const int64_t ho = height_out_, wo = width_out_;
  // Each image is BankInputs(C) gray images (its luminance, or its
  // luminance and colour-opponent planes), image-major.
  const torch::Tensor inputs = BankInputImages(images);  // [N B, H, W]
  const int64_t n = inputs.size(0);
  // [W, N * H]: x first, so that each row pass below is one product whose
  // output is already laid out for the column passes, [filters][Wout N, H].
  // Three products (Re, Im, envelope) rather than one split in three: the
  // backward of a split concatenates the row passes' large gradients.
  const torch::Tensor planes = inputs.permute({2, 0, 1}).reshape({width, n * height});
  auto row_pass = [&](const torch::Tensor& rows, int64_t filters) {
    return torch::mm(rows.t(), planes).view({filters, wo * n, height});
  };
  const torch::Tensor re = row_pass(re_rows_, scales * o);  // [S O, Wout N, H]
  const torch::Tensor im = row_pass(im_rows_, scales * o);
  const torch::Tensor envelope_rows = row_pass(envelope_rows_, scales);  // [S, Wout N, H]
  // Column passes of every scale and orientation at once: [S O, Wout N, 2 Hout]
  // -> [N, S, 2 O, Hout, Wout] (even then odd within each scale).
  const torch::Tensor even_odd = torch::baddbmm(torch::bmm(re, re_columns_), im, im_columns_)
                                     .view({scales, o, wo, n, 2, ho})
                                     .permute({3, 0, 4, 1, 5, 2})
                                     .reshape({n, scales, 2 * o, ho, wo});
  const torch::Tensor envelope = torch::bmm(envelope_rows, envelope_columns_)  // [S, Wout N, Hout]
                                     .view({scales, wo, n, ho})
                                     .permute({2, 0, 3, 1})
                                     .unsqueeze(2);  // [N, S, 1, Hout, Wout]
  const torch::Tensor linear = even_odd - dc_over_norm_ * envelope;
  const std::vector<torch::Tensor> even_and_odd = linear.split(o, 2);
  return torch::cat({linear, even_and_odd[0].pow(2) + even_and_odd[1].pow(2)}, 2)
      .view({images.size(0), num_features(), ho, wo});
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
