#include "models/simulated_neuron.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace stimloop {
namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr int64_t kMinSize = 16;
constexpr int64_t kMaxSize = 512;

// Receptive-field ranges, as fractions of the image (or of sigma).
constexpr double kCenterLo = 0.25, kCenterHi = 0.75;        // central 50% of each axis
constexpr double kSigmaLo = 0.06, kSigmaHi = 0.12;          // of min(height, width)
constexpr double kWavelengthLo = 2.0, kWavelengthHi = 3.0;  // in sigmas

// SplitMix64 finalizer: a fixed, portable 64-bit mix.
uint64_t Mix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// Uniform in [lo, hi) from a 53-bit draw; unlike std::uniform_real_distribution
// the mapping is fixed, so parameters are identical on every platform.
double Uniform(std::mt19937_64& gen, double lo, double hi) {
  const double u = static_cast<double>(gen() >> 11) * 0x1.0p-53;
  return lo + (hi - lo) * u;
}

GaborParams DrawGabor(const SimulatedNeuronSpec& spec) {
  std::mt19937_64 gen(Mix64(spec.seed));
  const double h = static_cast<double>(spec.height);
  const double w = static_cast<double>(spec.width);
  GaborParams g;
  g.center_x = Uniform(gen, kCenterLo, kCenterHi) * w;
  g.center_y = Uniform(gen, kCenterLo, kCenterHi) * h;
  g.orientation = Uniform(gen, 0, kPi);
  g.sigma = Uniform(gen, kSigmaLo, kSigmaHi) * std::min(h, w);
  g.wavelength = Uniform(gen, kWavelengthLo, kWavelengthHi) * g.sigma;
  g.phase = Uniform(gen, 0, 2 * kPi);
  return g;
}

// Gabor weights [H*W] (double) with the given phase, made zero-mean by
// subtracting the envelope times the carrier's envelope-weighted mean, so
// that sum(w) == 0 (up to rounding) and a uniform image gives no drive.
std::vector<double> GaborWeights(const GaborParams& g, int64_t height, int64_t width,
                                 double phase) {
  const int64_t n = height * width;
  std::vector<double> envelope(n), carrier(n);
  const double c = std::cos(g.orientation), s = std::sin(g.orientation);
  for (int64_t y = 0; y < height; ++y) {
    for (int64_t x = 0; x < width; ++x) {
      // Pixel centers sit at (x + 0.5, y + 0.5).
      const double dx = x + 0.5 - g.center_x, dy = y + 0.5 - g.center_y;
      const double along = c * dx + s * dy;  // across the stripes
      const double r2 = dx * dx + dy * dy;
      envelope[y * width + x] = std::exp(-r2 / (2 * g.sigma * g.sigma));
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

// Sign pattern s in {-1, +1}^n maximizing (<a, s>^2 + <b, s>^2), exactly.
//
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

absl::Status ValidateSpec(const SimulatedNeuronSpec& spec) {
  if (spec.channels != 1 && spec.channels != 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.channels: ", spec.channels, " must be 1 or 3"));
  }
  if (spec.height < kMinSize || spec.height > kMaxSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.height: ", spec.height, " is outside [", kMinSize, ", ", kMaxSize, "]"));
  }
  if (spec.width < kMinSize || spec.width > kMaxSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.width: ", spec.width, " is outside [", kMinSize, ", ", kMaxSize, "]"));
  }
  if (!(spec.peak_rate > 0) || !std::isfinite(spec.peak_rate)) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.peak_rate: ", spec.peak_rate, " must be positive and finite"));
  }
  if (!(spec.exponent > 0) || !std::isfinite(spec.exponent)) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.exponent: ", spec.exponent, " must be positive and finite"));
  }
  return absl::OkStatus();
}

// [H*W] double weights repeated on every channel -> [C*H*W] tensor.
torch::Tensor ToChannels(const std::vector<double>& w, int64_t channels) {
  const int64_t n = static_cast<int64_t>(w.size());
  torch::Tensor t = torch::empty({channels, n}, torch::kDouble);
  auto acc = t.accessor<double, 2>();
  for (int64_t c = 0; c < channels; ++c) {
    for (int64_t i = 0; i < n; ++i) acc[c][i] = w[i];
  }
  return t.reshape({channels * n});
}

}  // namespace

absl::StatusOr<CellKind> ParseCellKind(absl::string_view name) {
  if (name == "simple") return CellKind::kSimple;
  if (name == "complex") return CellKind::kComplex;
  if (name == "plaid") return CellKind::kPlaid;
  return absl::InvalidArgumentError(absl::StrCat(
      "cell kind: \"", name, "\" is not \"simple\", \"complex\" or \"plaid\""));
}

absl::string_view CellKindName(CellKind kind) {
  switch (kind) {
    case CellKind::kSimple:
      return "simple";
    case CellKind::kComplex:
      return "complex";
    case CellKind::kPlaid:
      return "plaid";
  }
  return "unknown";
}

absl::StatusOr<std::unique_ptr<SimulatedNeuron>> SimulatedNeuron::Create(
    const SimulatedNeuronSpec& spec) {
  if (absl::Status status = ValidateSpec(spec); !status.ok()) return status;
  torch::NoGradGuard no_grad;
  const GaborParams gabor = DrawGabor(spec);
  std::vector<double> a = GaborWeights(gabor, spec.height, spec.width, gabor.phase);
  if (spec.kind == CellKind::kPlaid) {
    std::mt19937_64 gen(Mix64(spec.seed ^ 0x706c616964ull));  // "plaid"
    GaborParams second = gabor;
    second.orientation = gabor.orientation + Uniform(gen, kPi / 4, kPi / 2);
    second.phase = Uniform(gen, 0, 2 * kPi);
    const std::vector<double> b = GaborWeights(second, spec.height, spec.width, second.phase);
    double norm = 0;
    for (size_t i = 0; i < a.size(); ++i) norm += (a[i] + b[i]) * (a[i] + b[i]);
    for (size_t i = 0; i < a.size(); ++i) a[i] = (a[i] + b[i]) / std::sqrt(norm);
  }
  std::vector<double> pattern(a.size());  // optimum on one channel, 0/1
  torch::Tensor w1 = ToChannels(a, spec.channels), w2;
  if (spec.kind != CellKind::kComplex) {
    for (size_t i = 0; i < a.size(); ++i) pattern[i] = a[i] > 0 ? 1.0 : 0.0;
  } else {
    const std::vector<double> b =
        GaborWeights(gabor, spec.height, spec.width, gabor.phase + kPi / 2);
    const std::vector<double> s = BestQuadratureSigns(a, b);
    for (size_t i = 0; i < s.size(); ++i) pattern[i] = s[i] > 0 ? 1.0 : 0.0;
    w2 = ToChannels(b, spec.channels);
  }
  torch::Tensor optimum = ToChannels(pattern, spec.channels)
                              .reshape({spec.channels, spec.height, spec.width})
                              .to(torch::kFloat);
  std::unique_ptr<SimulatedNeuron> neuron(
      new SimulatedNeuron(spec, gabor, std::move(w1), std::move(w2)));
  // Normalize by the drive at the optimum, computed the way Rates() computes it.
  const torch::Tensor d = neuron->Drive(optimum.unsqueeze(0));
  neuron->scale_ =
      spec.kind != CellKind::kComplex ? d.item<double>() : d.square().sum().item<double>();
  neuron->optimum_ = std::move(optimum);
  return neuron;
}

SimulatedNeuron::SimulatedNeuron(SimulatedNeuronSpec spec, GaborParams gabor, torch::Tensor w1,
                                 torch::Tensor w2)
    : spec_(std::move(spec)), gabor_(gabor), w1_(std::move(w1)), w2_(std::move(w2)) {}

torch::Tensor SimulatedNeuron::Drive(const torch::Tensor& images) const {
  TORCH_CHECK(images.dim() == 4 && images.size(1) == spec_.channels &&
                  images.size(2) == spec_.height && images.size(3) == spec_.width,
              "SimulatedNeuron: images must be [N, ", spec_.channels, ", ", spec_.height, ", ",
              spec_.width, "], got ", images.sizes());
  // <w, x - 0.5> as <w, x> - 0.5 sum(w): one pass over the images fewer.
  const torch::Tensor x = images.to(torch::kCPU, torch::kDouble).reshape({images.size(0), -1});
  const torch::Tensor w = w2_.defined() ? torch::stack({w1_, w2_}, 1) : w1_;
  return x.matmul(w) - 0.5 * w.sum(0);
}

torch::Tensor SimulatedNeuron::Rates(const torch::Tensor& images) const {
  const torch::Tensor d = Drive(images);
  torch::Tensor rates;
  if (spec_.kind != CellKind::kComplex) {
    rates = spec_.peak_rate * (d.clamp_min(0) / scale_).pow(spec_.exponent);
  } else {
    rates = spec_.peak_rate * d.square().sum(1) / scale_;
  }
  return rates.to(torch::kFloat);
}

absl::StatusOr<SimulatedPopulation> SimulatedPopulation::Create(const SimulatedNeuronSpec& base,
                                                                int num_neurons, bool mix) {
  if (num_neurons < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_neurons: ", num_neurons, " must be at least 1"));
  }
  SimulatedPopulation population;
  population.neurons_.reserve(num_neurons);
  for (int i = 0; i < num_neurons; ++i) {
    SimulatedNeuronSpec spec = base;
    spec.seed = Mix64(base.seed ^ Mix64(static_cast<uint64_t>(i)));
    if (mix) spec.kind = i % 2 == 0 ? CellKind::kSimple : CellKind::kComplex;
    absl::StatusOr<std::unique_ptr<SimulatedNeuron>> neuron = SimulatedNeuron::Create(spec);
    if (!neuron.ok()) return neuron.status();
    population.neurons_.push_back(std::move(*neuron));
  }
  return population;
}

torch::Tensor SimulatedPopulation::Rates(const torch::Tensor& images) const {
  std::vector<torch::Tensor> columns;
  columns.reserve(neurons_.size());
  for (const auto& neuron : neurons_) columns.push_back(neuron->Rates(images));
  return torch::stack(columns, 1);
}

torch::Tensor PoissonRates(const torch::Tensor& rates, double window_s, at::Generator& generator) {
  TORCH_CHECK(window_s > 0 && std::isfinite(window_s), "PoissonRates: window_s must be > 0, got ",
              window_s);
  torch::NoGradGuard no_grad;
  const torch::Tensor mean = (rates.to(torch::kDouble).clamp_min(0) * window_s);
  return (torch::poisson(mean, generator) / window_s).to(rates.scalar_type());
}

}  // namespace stimloop
