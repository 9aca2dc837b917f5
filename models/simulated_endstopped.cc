#include "models/simulated_endstopped.h"

#include <torch/torch.h>

#include <cmath>
#include <utility>
#include <vector>

#include "models/simulated_parts.h"

namespace stimloop {
namespace {

using simulated::kPi;

// The surround, in sigmas of the center: tuned filters on a square grid of
// this spacing within kReach, weighted by a ring of radius kRing (a Gaussian
// profile of width 1 inside it, 2 outside);
// the untuned contrast weighted by the same ring out to the tuned filters'
// support (so every pixel the cell sees costs some contrast).
constexpr double kSpacing = 1.5, kReach = 5.0, kRing = 3.0;

struct Weights {
  torch::Tensor bank;      // [H*W, 2 + 2M]: the center pair, then the surround pairs
  torch::Tensor tuned;     // [M]: u_j / S_tuned(full-field grating)
  torch::Tensor contrast;  // [H*W]: c u(p) / C(full-field grating)
};

Weights Cast(const Weights& w, torch::Dtype dtype) {
  return {w.bank.to(dtype), w.tuned.to(dtype), w.contrast.to(dtype)};
}

// The surround's weight at (dx, dy) sigmas from the center: ring(r) * ends,
// 0 beyond `reach`.
double SurroundWeight(double dx, double dy, double length_axis, double ends, double reach) {
  const double r = std::hypot(dx, dy);
  if (r > reach) return 0;
  const double c = r > 0 ? std::cos(std::atan2(dy, dx) - length_axis) : 1.0;
  const double width = r < kRing ? 1.0 : 2.0;  // the surround extends far out
  const double ring = std::exp(-(r - kRing) * (r - kRing) / (2 * width * width));
  return ring * (ends + (1 - ends) * c * c);
}

// The center's energy over its maximum, s_c [N], and the surround S [N] for
// luminance [N, H*W].
std::pair<torch::Tensor, torch::Tensor> CenterSurround(const torch::Tensor& luminance,
                                                       const Weights& w, double center_max) {
  const torch::Tensor e = simulated::PairEnergies(luminance, w.bank);
  const torch::Tensor center = e.select(1, 0) / center_max;
  const torch::Tensor surround =
      e.narrow(1, 1, e.size(1) - 1).matmul(w.tuned) + (luminance - 0.5).square().matmul(w.contrast);
  return {center, surround};
}

// R = s_c / (1 + k S).
torch::Tensor Response(const torch::Tensor& luminance, const Weights& w, double center_max,
                       double k) {
  auto [center, surround] = CenterSurround(luminance, w, center_max);
  return center / (1 + k * surround);
}

class EndStoppedCell final : public SimulatedNeuron {
 public:
  EndStoppedCell(const SimulatedNeuronSpec& spec, const GaborParams& gabor,
                 simulated::WorkingGrid grid, Weights weights, double center_max, double k)
      : SimulatedNeuron(spec, /*has_gabor=*/true, gabor),
        grid_(grid),
        weights_(std::move(weights)),
        weights_float_(Cast(weights_, torch::kFloat)),
        center_max_(center_max),
        k_(k) {}

  torch::Tensor Rates(const torch::Tensor& images) const override {
    CheckImages(images);
    return (spec().peak_rate * DoubleResponse(images) / scale_).to(torch::kFloat);
  }
  bool optimum_is_exact() const override { return false; }

  // R of working-grid luminance images [B, 1, h, w] (float).
  torch::Tensor FloatResponse(const torch::Tensor& images) const {
    return Response(images.reshape({images.size(0), -1}), weights_float_, center_max_, k_);
  }

  void SetOptimum(const torch::Tensor& working) {  // [1, 1, h, w]
    torch::Tensor optimum =
        grid_.Upsample(working)[0].expand({spec().channels, -1, -1}).contiguous();
    scale_ = DoubleResponse(optimum.unsqueeze(0)).item<double>();
    set_optimum(std::move(optimum));
  }

 private:
  torch::Tensor DoubleResponse(const torch::Tensor& images) const {  // [N, C, H, W]
    return Response(grid_.Downsample(simulated::Luminance(images)), weights_, center_max_, k_);
  }

  simulated::WorkingGrid grid_;
  Weights weights_, weights_float_;
  double center_max_, k_;
  double scale_ = 1;  // R*
};

// The center's exact optimal pattern (+-1) inside a window `length` sigmas
// along the stripes and `width` across them (each way), gray outside:
// [1, 1, H, W] float.
torch::Tensor Window(const GaborParams& g, const std::vector<double>& pattern, int64_t h, int64_t w,
                     double length, double width) {
  const double co = std::cos(g.orientation), so = std::sin(g.orientation);
  torch::Tensor image = torch::full({1, 1, h, w}, 0.5f);
  auto acc = image.accessor<float, 4>();
  for (int64_t y = 0; y < h; ++y) {
    for (int64_t x = 0; x < w; ++x) {
      const double dx = x + 0.5 - g.center_x, dy = y + 0.5 - g.center_y;
      const double across = co * dx + so * dy, along = -so * dx + co * dy;
      if (std::abs(along) <= length * g.sigma && std::abs(across) <= width * g.sigma) {
        acc[0][0][y][x] = pattern[y * w + x] > 0 ? 1.0f : 0.0f;
      }
    }
  }
  return image;
}

}  // namespace

absl::StatusOr<std::unique_ptr<SimulatedNeuron>> CreateEndStoppedCell(
    const SimulatedNeuronSpec& spec) {
  const simulated::WorkingGrid grid(spec.height, spec.width);
  const int64_t h = grid.height(), w = grid.width(), n = h * w;
  const GaborParams rf = simulated::DrawGabor(spec);  // image pixels, for gabor()
  const GaborParams center = grid.ToWorking(rf);      // working pixels
  simulated::ParamGenerator gen = simulated::StreamOf(spec.seed, 0x656e6473746f70ull);  // "endstop"
  const double ends = gen.Uniform(0.1, 0.6);
  const double cross = gen.Uniform(0.2, 0.5);
  const double kappa = gen.Uniform(1.5, 6.0);
  // The stripes' long axis is perpendicular to GaborParams::orientation.
  const double length_axis = center.orientation + kPi / 2;

  std::vector<GaborParams> gabors = {center};
  std::vector<double> tuned;
  const int steps = static_cast<int>(std::floor(kReach / kSpacing));
  for (int i = -steps; i <= steps; ++i) {
    for (int j = -steps; j <= steps; ++j) {
      const double dx = i * kSpacing, dy = j * kSpacing;
      if (std::hypot(dx, dy) > kReach) continue;
      GaborParams g = center;
      g.center_x += dx * center.sigma;
      g.center_y += dy * center.sigma;
      gabors.push_back(g);
      tuned.push_back(SurroundWeight(dx, dy, length_axis, ends, kReach));
    }
  }
  torch::Tensor contrast = torch::empty({n}, torch::kDouble);
  auto c_acc = contrast.accessor<double, 1>();
  for (int64_t y = 0; y < h; ++y) {
    for (int64_t x = 0; x < w; ++x) {
      c_acc[y * w + x] = SurroundWeight((x + 0.5 - center.center_x) / center.sigma,
                                        (y + 0.5 - center.center_y) / center.sigma, length_axis,
                                        ends, kReach + simulated::kSupportSigmas);
    }
  }
  const torch::Tensor bank = simulated::QuadratureBank(gabors, h, w);
  const double center_max = simulated::MaxPairEnergy(bank, 0);
  std::vector<double> pattern;  // the center's exact optimum, +-1
  {
    const torch::Tensor a = bank.select(1, 0).contiguous(), b = bank.select(1, 1).contiguous();
    pattern = simulated::BestQuadratureSigns(
        std::vector<double>(a.data_ptr<double>(), a.data_ptr<double>() + n),
        std::vector<double>(b.data_ptr<double>(), b.data_ptr<double>() + n));
  }

  // Each surround term is 1 for the full-field square-wave grating at the
  // preferred orientation, wavelength and phase (its contrast is 0.5
  // everywhere, so C = 0.25 sum u).
  torch::Tensor grating = torch::empty({1, n}, torch::kDouble);
  auto g_acc = grating.accessor<double, 2>();
  const double co = std::cos(center.orientation), so = std::sin(center.orientation);
  for (int64_t y = 0; y < h; ++y) {
    for (int64_t x = 0; x < w; ++x) {
      const double across = co * (x + 0.5 - center.center_x) + so * (y + 0.5 - center.center_y);
      g_acc[0][y * w + x] =
          std::cos(2 * kPi * across / center.wavelength + center.phase) > 0 ? 1.0 : 0.0;
    }
  }
  const torch::Tensor e = simulated::PairEnergies(grating, bank);
  const double tuned_full =
      e.narrow(1, 1, e.size(1) - 1).matmul(torch::tensor(tuned, torch::kDouble)).item<double>();
  Weights weights{bank, torch::tensor(tuned, torch::kDouble) / tuned_full,
                  contrast * (cross / (0.25 * contrast.sum().item<double>()))};
  const double k = kappa / (1 + cross);
  const torch::Tensor seen = torch::maximum(simulated::Support(bank, h, w),
                                            (contrast > 0).to(torch::kFloat).view({1, 1, h, w}));
  auto neuron = std::make_unique<EndStoppedCell>(spec, rf, grid, std::move(weights), center_max, k);

  std::vector<torch::Tensor> starts;
  for (double length : {1.0, 1.5, 2.0, 2.5, 3.0}) {
    for (double width : {1.5, 2.5, 4.0})
      starts.push_back(Window(center, pattern, h, w, length, width));
  }
  const simulated::RateFunction f = [&neuron](const torch::Tensor& x) {
    return neuron->FloatResponse(x);
  };
  starts.push_back(simulated::RandomImages(gen, 24, h, w, /*smooth=*/false));
  starts.push_back(simulated::RandomImages(gen, 24, h, w, /*smooth=*/true));
  starts.push_back(
      simulated::GradientSignImages(f, simulated::RandomImages(gen, 8, h, w, /*smooth=*/true)));
  const torch::Tensor best =
      simulated::BestOfAscents(f, torch::cat(starts), simulated::AscentOptions{});
  neuron->SetOptimum(seen * best + (1 - seen) * 0.5);
  return neuron;
}

}  // namespace stimloop
