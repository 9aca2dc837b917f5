#include "models/simulated_parts.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace stimloop {
namespace simulated {
namespace {

// Receptive-field ranges, as fractions of the image (or of sigma).
constexpr double kCenterLo = 0.25, kCenterHi = 0.75;        // central 50% of each axis
constexpr double kSigmaLo = 0.06, kSigmaHi = 0.12;          // of min(height, width)
constexpr double kWavelengthLo = 2.0, kWavelengthHi = 3.0;  // in sigmas

}  // namespace

double ParamGenerator::Uniform(double lo, double hi) {
  const double u = static_cast<double>(gen_() >> 11) * 0x1.0p-53;
  return lo + (hi - lo) * u;
}

int64_t ParamGenerator::Int(int64_t lo, int64_t hi) {
  const uint64_t span = static_cast<uint64_t>(hi - lo) + 1;
  return lo + static_cast<int64_t>(gen_() % span);  // bias < span / 2^64
}

ParamGenerator StreamOf(uint64_t seed, uint64_t tag) {
  return ParamGenerator(SplitMix64(seed ^ tag));
}

GaborParams DrawGabor(const SimulatedNeuronSpec& spec) {
  ParamGenerator gen(SplitMix64(spec.seed));
  const double h = static_cast<double>(spec.height);
  const double w = static_cast<double>(spec.width);
  GaborParams g;
  g.center_x = gen.Uniform(kCenterLo, kCenterHi) * w;
  g.center_y = gen.Uniform(kCenterLo, kCenterHi) * h;
  g.orientation = gen.Uniform(0, kPi);
  g.sigma = gen.Uniform(kSigmaLo, kSigmaHi) * std::min(h, w);
  g.wavelength = gen.Uniform(kWavelengthLo, kWavelengthHi) * g.sigma;
  g.phase = gen.Uniform(0, 2 * kPi);
  return g;
}

std::vector<double> GaborWeights(const GaborParams& g, int64_t height, int64_t width, double phase,
                                 double support) {
  const int64_t n = height * width;
  std::vector<double> envelope(n), carrier(n);
  const double c = std::cos(g.orientation), s = std::sin(g.orientation);
  for (int64_t y = 0; y < height; ++y) {
    for (int64_t x = 0; x < width; ++x) {
      // Pixel centers sit at (x + 0.5, y + 0.5).
      const double dx = x + 0.5 - g.center_x, dy = y + 0.5 - g.center_y;
      const double along = c * dx + s * dy;  // across the stripes
      const double r2 = dx * dx + dy * dy;
      envelope[y * width + x] = r2 > support * support * g.sigma * g.sigma
                                    ? 0.0
                                    : std::exp(-r2 / (2 * g.sigma * g.sigma));
      carrier[y * width + x] = std::cos(2 * kPi * along / g.wavelength + phase);
    }
  }
  double env_sum = 0, weighted = 0;
  for (int64_t i = 0; i < n; ++i) {
    env_sum += envelope[i];
    weighted += envelope[i] * carrier[i];
  }
  const double mean = weighted / env_sum;
  std::vector<double> w(n);
  for (int64_t i = 0; i < n; ++i) w[i] = envelope[i] * (carrier[i] - mean);
  return w;
}

// For any s, sqrt(<a,s>^2 + <b,s>^2) = max_t <u(t), s> with
// u(t) = cos(t) a + sin(t) b, and max_s <u(t), s> = ||u(t)||_1 at s = sign(u(t)).
// So the best s is sign(u(t)) for some t. sign(u(t)) only changes where some
// u_i(t) = 0, which happens once per pixel in [0, pi) (and u(t + pi) = -u(t)
// gives the same energy). Sorting those breakpoints and flipping one sign per
// crossing visits every candidate pattern in O(n log n).
std::vector<double> BestQuadratureSigns(const std::vector<double>& a,
                                        const std::vector<double>& b) {
  const int64_t n = static_cast<int64_t>(a.size());
  std::vector<double> theta(n);
  std::vector<int64_t> order;
  order.reserve(n);
  for (int64_t i = 0; i < n; ++i) {
    if (a[i] == 0 && b[i] == 0) continue;  // never contributes
    // u_i(t) = r_i cos(t - alpha_i) vanishes at alpha_i + pi/2 (mod pi).
    double t = std::fmod(std::atan2(b[i], a[i]) + kPi / 2, kPi);
    if (t < 0) t += kPi;
    theta[i] = t;
    order.push_back(i);
  }
  std::vector<double> s(n, -1.0);
  if (order.empty()) return s;
  std::sort(order.begin(), order.end(), [&](int64_t i, int64_t j) {
    return theta[i] < theta[j] || (theta[i] == theta[j] && i < j);
  });
  // Start inside the wrap-around interval (last breakpoint - pi, first one).
  const double t0 = 0.5 * (theta[order.back()] - kPi + theta[order.front()]);
  const double c0 = std::cos(t0), s0 = std::sin(t0);
  double sa = 0, sb = 0;
  for (int64_t i : order) {
    s[i] = (c0 * a[i] + s0 * b[i]) >= 0 ? 1.0 : -1.0;
    sa += s[i] * a[i];
    sb += s[i] * b[i];
  }
  const std::vector<double> start = s;
  double best = sa * sa + sb * sb;
  int64_t best_k = -1;  // number of crossings that leads to the best pattern
  for (int64_t k = 0; k < static_cast<int64_t>(order.size()); ++k) {
    const int64_t i = order[k];
    s[i] = -s[i];
    sa += 2 * s[i] * a[i];
    sb += 2 * s[i] * b[i];
    const double e = sa * sa + sb * sb;
    if (e > best) {
      best = e;
      best_k = k;
    }
  }
  s = start;
  for (int64_t k = 0; k <= best_k; ++k) s[order[k]] = -s[order[k]];
  return s;
}

torch::Tensor QuadratureBank(const std::vector<GaborParams>& gabors, int64_t height, int64_t width,
                             double support) {
  const int64_t n = height * width;
  torch::Tensor bank = torch::empty({n, 2 * static_cast<int64_t>(gabors.size())}, torch::kDouble);
  auto acc = bank.accessor<double, 2>();
  for (size_t k = 0; k < gabors.size(); ++k) {
    for (int q = 0; q < 2; ++q) {
      const std::vector<double> w =
          GaborWeights(gabors[k], height, width, gabors[k].phase + q * kPi / 2, support);
      for (int64_t i = 0; i < n; ++i) acc[i][2 * k + q] = w[i];
    }
  }
  return bank;
}

torch::Tensor Support(const torch::Tensor& bank, int64_t height, int64_t width) {
  return (bank != 0).any(1).to(torch::kFloat).view({1, 1, height, width});
}

double MaxPairEnergy(const torch::Tensor& bank, int64_t pair) {
  const torch::Tensor a = bank.select(1, 2 * pair).contiguous();
  const torch::Tensor b = bank.select(1, 2 * pair + 1).contiguous();
  const std::vector<double> av(a.data_ptr<double>(), a.data_ptr<double>() + a.numel());
  const std::vector<double> bv(b.data_ptr<double>(), b.data_ptr<double>() + b.numel());
  const std::vector<double> s = BestQuadratureSigns(av, bv);
  double sa = 0, sb = 0;  // contrast s / 2 in [-0.5, 0.5]
  for (size_t i = 0; i < s.size(); ++i) {
    sa += 0.5 * s[i] * av[i];
    sb += 0.5 * s[i] * bv[i];
  }
  return sa * sa + sb * sb;
}

torch::Tensor PairEnergies(const torch::Tensor& luminance, const torch::Tensor& bank) {
  const torch::Tensor y = luminance.matmul(bank) - 0.5 * bank.sum(0);
  const torch::Tensor pairs = y.view({y.size(0), -1, 2});
  return pairs.square().sum(2);
}

torch::Tensor Luminance(const torch::Tensor& images) {
  const torch::Tensor x = images.to(torch::kCPU, torch::kDouble);
  const torch::Tensor gray = x.size(1) == 1 ? x : x.mean(1, /*keepdim=*/true);
  return gray.reshape({images.size(0), -1});
}

WorkingGrid::WorkingGrid(int64_t image_height, int64_t image_width)
    : image_height_(image_height), image_width_(image_width) {
  constexpr int64_t kLargest = 64;
  const int64_t f = (std::min(image_height, image_width) + kLargest - 1) / kLargest;
  height_ = (image_height + f - 1) / f;
  width_ = (image_width + f - 1) / f;
  scale_y_ = static_cast<double>(image_height) / static_cast<double>(height_);
  scale_x_ = static_cast<double>(image_width) / static_cast<double>(width_);
}

GaborParams WorkingGrid::ToWorking(const GaborParams& g) const {
  GaborParams w = g;
  w.center_x = ToWorkingX(g.center_x);
  w.center_y = ToWorkingY(g.center_y);
  w.sigma = ToWorkingLength(g.sigma);
  w.wavelength = ToWorkingLength(g.wavelength);
  return w;
}

torch::Tensor WorkingGrid::Downsample(const torch::Tensor& luminance) const {
  if (height_ == image_height_ && width_ == image_width_) return luminance;
  namespace F = torch::nn::functional;
  const torch::Tensor images = luminance.view({-1, 1, image_height_, image_width_});
  return F::interpolate(images, F::InterpolateFuncOptions()
                                    .size(std::vector<int64_t>{height_, width_})
                                    .mode(torch::kArea))
      .reshape({luminance.size(0), height_ * width_});
}

torch::Tensor WorkingGrid::Upsample(const torch::Tensor& images) const {
  if (height_ == image_height_ && width_ == image_width_) return images;
  namespace F = torch::nn::functional;
  return F::interpolate(images, F::InterpolateFuncOptions()
                                    .size(std::vector<int64_t>{image_height_, image_width_})
                                    .mode(torch::kNearest));
}

torch::Tensor RandomImages(ParamGenerator& gen, int64_t n, int64_t height, int64_t width,
                           bool smooth) {
  auto uniform = [&](int64_t rows, int64_t cols) {
    torch::Tensor t = torch::empty({n, 1, rows, cols}, torch::kFloat);
    float* p = t.data_ptr<float>();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(gen.Uniform(0, 1));
    return t;
  };
  if (!smooth) return uniform(height, width);
  namespace F = torch::nn::functional;
  torch::Tensor sum = torch::zeros({n, 1, height, width});
  double total = 0;
  for (int64_t cells : {4, 8, 16, 32}) {
    const double weight = 1.0 / cells;  // amplitude ~ 1/f
    const torch::Tensor grid = uniform(cells, cells) - 0.5;
    sum += weight * F::interpolate(grid, F::InterpolateFuncOptions()
                                             .size(std::vector<int64_t>{height, width})
                                             .mode(torch::kBilinear)
                                             .align_corners(false));
    total += weight;
  }
  // Octaves of +-0.5 noise partly cancel; stretch to roughly full contrast.
  return (0.5 + 2.5 * sum / total).clamp(0, 1);
}

torch::Tensor GradientSignImages(const RateFunction& f, const torch::Tensor& images) {
  torch::AutoGradMode grad_mode(true);  // cells are created under NoGradGuard
  torch::Tensor x = images.to(torch::kFloat).clone().requires_grad_(true);
  f(x).sum().backward();
  torch::NoGradGuard no_grad;
  return (x.grad() > 0).to(torch::kFloat);
}

namespace {

// `steps` projected Adam steps from `x` [B, ...], in place.
void Ascend(const RateFunction& f, torch::Tensor& x, int steps, double learning_rate) {
  x.requires_grad_(true);
  torch::optim::Adam adam({x}, torch::optim::AdamOptions(learning_rate));
  const double lr_end = learning_rate / 20;
  for (int step = 0; step < steps; ++step) {
    const double progress = static_cast<double>(step) / std::max(1, steps - 1);
    const double lr = lr_end + 0.5 * (learning_rate - lr_end) * (1 + std::cos(kPi * progress));
    static_cast<torch::optim::AdamOptions&>(adam.param_groups()[0].options()).lr(lr);
    adam.zero_grad();
    const torch::Tensor loss = -f(x).sum();
    loss.backward();
    adam.step();
    torch::NoGradGuard no_grad;
    x.clamp_(0, 1);
  }
  x.requires_grad_(false);
}

}  // namespace

torch::Tensor BestOfAscents(const RateFunction& f, const torch::Tensor& starts,
                            const AscentOptions& options) {
  torch::AutoGradMode grad_mode(true);  // cells are created under NoGradGuard
  torch::Tensor x = starts.to(torch::kFloat).clone();
  Ascend(f, x, options.explore_steps, options.learning_rate);
  {
    torch::NoGradGuard no_grad;
    const int64_t keep = std::min<int64_t>(options.keep, x.size(0));
    x = x.index_select(0, std::get<1>(f(x).topk(keep))).clone();
  }
  Ascend(f, x, options.refine_steps, options.learning_rate);
  torch::NoGradGuard no_grad;
  const torch::Tensor candidates = torch::cat({x, x.round(), starts.to(torch::kFloat)});
  const torch::Tensor rates = f(candidates);
  return candidates[rates.argmax().item<int64_t>()].unsqueeze(0).clone();
}

}  // namespace simulated
}  // namespace stimloop
