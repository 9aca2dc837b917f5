#include "models/simulated_v4.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <utility>

#include "models/simulated_parts.h"

namespace stimloop {
namespace {

using simulated::kPi;

struct Weights {
  torch::Tensor subunits;      // [H*W, 2K] quadrature pairs
  torch::Tensor subunit_max;   // [K] E_k*
  torch::Tensor pool;          // [H*W, 2M]
  torch::Tensor pool_weights;  // [M] (1 - m) v_j / P_ref
  torch::Tensor contrast;      // [H*W] m v(p) / C_ref
};

Weights Cast(const Weights& w, torch::Dtype dtype) {
  return {w.subunits.to(dtype), w.subunit_max.to(dtype), w.pool.to(dtype), w.pool_weights.to(dtype),
          w.contrast.to(dtype)};
}

// The soft AND of the subunits, D, for luminance [N, H*W].
torch::Tensor Conjunction(const torch::Tensor& luminance, const Weights& w, double eps) {
  const torch::Tensor s = simulated::PairEnergies(luminance, w.subunits) / w.subunit_max;
  return eps * torch::expm1(torch::log1p(s / eps).mean(1));
}

torch::Tensor Response(const torch::Tensor& luminance, const Weights& w, double eps,
                       double sigma_n) {
  const torch::Tensor pool = simulated::PairEnergies(luminance, w.pool).matmul(w.pool_weights) +
                             (luminance - 0.5).square().matmul(w.contrast);
  return Conjunction(luminance, w, eps) / (sigma_n + pool);
}

class V4Cell final : public SimulatedNeuron {
 public:
  V4Cell(const SimulatedNeuronSpec& spec, simulated::WorkingGrid grid, V4Params params,
         Weights weights)
      : SimulatedNeuron(spec, /*has_gabor=*/false, GaborParams{}),
        grid_(grid),
        params_(std::move(params)),
        weights_(std::move(weights)),
        weights_float_(Cast(weights_, torch::kFloat)) {}

  torch::Tensor Rates(const torch::Tensor& images) const override {
    CheckImages(images);
    return (spec().peak_rate * DoubleResponse(images) / scale_).to(torch::kFloat);
  }
  bool optimum_is_exact() const override { return false; }

  // R of working-grid luminance images [B, 1, h, w] (float).
  torch::Tensor FloatResponse(const torch::Tensor& images) const {
    return Response(images.reshape({images.size(0), -1}), weights_float_, params_.eps,
                    params_.sigma_n);
  }

  void SetOptimum(const torch::Tensor& working) {  // [1, 1, h, w]
    torch::Tensor optimum =
        grid_.Upsample(working)[0].expand({spec().channels, -1, -1}).contiguous();
    scale_ = DoubleResponse(optimum.unsqueeze(0)).item<double>();
    set_optimum(std::move(optimum));
  }

 private:
  torch::Tensor DoubleResponse(const torch::Tensor& images) const {  // [N, C, H, W]
    return Response(grid_.Downsample(simulated::Luminance(images)), weights_, params_.eps,
                    params_.sigma_n);
  }

  simulated::WorkingGrid grid_;
  V4Params params_;
  Weights weights_, weights_float_;
  double scale_ = 1;  // R*
};

double OrientationGap(double a, double b) {
  const double d = std::fmod(std::abs(a - b), kPi);
  return std::min(d, kPi - d);
}

// Each subunit's exact optimal pattern within `radius` sigma_s of its
// center (the nearest subunit's where they overlap), gray elsewhere:
// [1, 1, H, W] float.
torch::Tensor StructuredImage(const V4Params& p, const torch::Tensor& bank, int64_t h, int64_t w,
                              double radius) {
  const int64_t n = h * w;
  std::vector<std::vector<double>> patterns;
  for (size_t k = 0; k < p.subunits.size(); ++k) {
    const torch::Tensor a = bank.select(1, 2 * k).contiguous();
    const torch::Tensor b = bank.select(1, 2 * k + 1).contiguous();
    patterns.push_back(simulated::BestQuadratureSigns(
        std::vector<double>(a.data_ptr<double>(), a.data_ptr<double>() + n),
        std::vector<double>(b.data_ptr<double>(), b.data_ptr<double>() + n)));
  }
  torch::Tensor image = torch::full({1, 1, h, w}, 0.5f);
  auto acc = image.accessor<float, 4>();
  for (int64_t y = 0; y < h; ++y) {
    for (int64_t x = 0; x < w; ++x) {
      double nearest = radius;
      for (size_t k = 0; k < p.subunits.size(); ++k) {
        const GaborParams& g = p.subunits[k];
        const double d = std::hypot(x + 0.5 - g.center_x, y + 0.5 - g.center_y) / g.sigma;
        if (d <= nearest) {
          nearest = d;
          acc[0][0][y][x] = patterns[k][y * w + x] > 0 ? 1.0f : 0.0f;
        }
      }
    }
  }
  return image;
}

}  // namespace

V4Params DrawV4Params(const SimulatedNeuronSpec& spec) {
  simulated::ParamGenerator gen = simulated::StreamOf(spec.seed, 0x7634ull);  // "v4"
  const double size = static_cast<double>(std::min(spec.height, spec.width));
  V4Params p;
  const int k = gen.Uniform(0, 1) < 0.5 ? 2 : 3;
  p.center_x = gen.Uniform(0.4, 0.6) * spec.width;
  p.center_y = gen.Uniform(0.4, 0.6) * spec.height;
  p.sigma_rf = gen.Uniform(0.12, 0.16) * size;
  const double sigma = gen.Uniform(0.05, 0.07) * size;
  const double wavelength = gen.Uniform(2.0, 3.0) * sigma;
  const double first = gen.Uniform(0, 2 * kPi);
  std::vector<double> directions = {first};
  if (k == 2) {
    directions.push_back(first + gen.Uniform(kPi / 2, kPi));
  } else {
    for (int i = 1; i < 3; ++i)
      directions.push_back(first + 2 * kPi * i / 3 + gen.Uniform(-kPi / 6, kPi / 6));
  }
  std::vector<double> orientations(k);
  for (int attempt = 0; attempt < 1000; ++attempt) {
    for (double& o : orientations) o = gen.Uniform(0, kPi);
    bool apart = true;
    for (int i = 0; i < k; ++i) {
      for (int j = 0; j < i; ++j)
        apart = apart && OrientationGap(orientations[i], orientations[j]) >= kPi / 6;
    }
    if (apart) break;
  }
  for (int i = 0; i < k; ++i) {
    const double radius = gen.Uniform(0.8, 1.2) * p.sigma_rf;
    GaborParams g;
    g.center_x = p.center_x + radius * std::cos(directions[i]);
    g.center_y = p.center_y + radius * std::sin(directions[i]);
    g.orientation = orientations[i];
    g.wavelength = wavelength;
    g.sigma = sigma;
    g.phase = 0;
    p.subunits.push_back(g);
  }
  p.eps = gen.Uniform(0.03, 0.2);
  p.sigma_n = gen.Uniform(0.1, 0.5);
  p.untuned = gen.Uniform(0.4, 0.8);
  return p;
}

absl::StatusOr<std::unique_ptr<SimulatedNeuron>> CreateV4Cell(const SimulatedNeuronSpec& spec) {
  const simulated::WorkingGrid grid(spec.height, spec.width);
  const int64_t h = grid.height(), w = grid.width();
  V4Params p = DrawV4Params(spec);  // in working pixels from here on
  p.center_x = grid.ToWorkingX(p.center_x);
  p.center_y = grid.ToWorkingY(p.center_y);
  p.sigma_rf = grid.ToWorkingLength(p.sigma_rf);
  for (GaborParams& g : p.subunits) g = grid.ToWorking(g);
  const GaborParams& unit = p.subunits[0];

  Weights weights;
  weights.subunits = simulated::QuadratureBank(p.subunits, h, w);
  std::vector<double> maxima;
  for (size_t k = 0; k < p.subunits.size(); ++k) {
    maxima.push_back(simulated::MaxPairEnergy(weights.subunits, k));
  }
  weights.subunit_max = torch::tensor(maxima, torch::kDouble);

  std::vector<GaborParams> pool;
  std::vector<double> v;
  const double spacing = 2 * unit.sigma, reach = 2 * p.sigma_rf;
  const int steps = static_cast<int>(std::floor(reach / spacing));
  for (int i = -steps; i <= steps; ++i) {
    for (int j = -steps; j <= steps; ++j) {
      const double dx = i * spacing, dy = j * spacing, d2 = dx * dx + dy * dy;
      if (d2 > reach * reach) continue;
      for (int o = 0; o < 4; ++o) {
        GaborParams g = unit;
        g.center_x = p.center_x + dx;
        g.center_y = p.center_y + dy;
        g.orientation = o * kPi / 4;
        pool.push_back(g);
        v.push_back(std::exp(-d2 / (2 * p.sigma_rf * p.sigma_rf)));
      }
    }
  }
  weights.pool = simulated::QuadratureBank(pool, h, w);
  weights.pool_weights = torch::tensor(v, torch::kDouble);
  // The untuned contrast: the same Gaussian over every pixel the pool sees.
  weights.contrast = torch::zeros({h * w}, torch::kDouble);
  auto c_acc = weights.contrast.accessor<double, 1>();
  const double contrast_reach = reach + simulated::kSupportSigmas * unit.sigma;
  for (int64_t y = 0; y < h; ++y) {
    for (int64_t x = 0; x < w; ++x) {
      const double dx = x + 0.5 - p.center_x, dy = y + 0.5 - p.center_y;
      const double d2 = dx * dx + dy * dy;
      if (d2 <= contrast_reach * contrast_reach) {
        c_acc[y * w + x] = std::exp(-d2 / (2 * p.sigma_rf * p.sigma_rf));
      }
    }
  }
  // Both pool terms are 1 at the structured image.
  const torch::Tensor reference =
      StructuredImage(p, weights.subunits, h, w, 2.0).reshape({1, -1}).to(torch::kDouble);
  const double p_ref =
      simulated::PairEnergies(reference, weights.pool).matmul(weights.pool_weights).item<double>();
  const double c_ref = (reference - 0.5).square().matmul(weights.contrast).item<double>();
  weights.pool_weights *= (1 - p.untuned) / p_ref;
  weights.contrast *= p.untuned / c_ref;

  std::vector<torch::Tensor> starts;
  for (double radius : {1.5, 2.0, 2.5, 3.0}) {
    starts.push_back(StructuredImage(p, weights.subunits, h, w, radius));
  }
  const torch::Tensor bank = weights.subunits, pool_bank = weights.pool;
  auto neuron = std::make_unique<V4Cell>(spec, grid, p, std::move(weights));
  const simulated::RateFunction f = [&neuron](const torch::Tensor& x) {
    return neuron->FloatResponse(x);
  };
  simulated::ParamGenerator gen = simulated::StreamOf(spec.seed, 0x76342d6f7074ull);  // "v4-opt"
  starts.push_back(simulated::RandomImages(gen, 40, h, w, /*smooth=*/false));
  starts.push_back(simulated::RandomImages(gen, 40, h, w, /*smooth=*/true));
  starts.push_back(
      simulated::GradientSignImages(f, simulated::RandomImages(gen, 8, h, w, /*smooth=*/true)));
  const torch::Tensor best =
      simulated::BestOfAscents(f, torch::cat(starts), simulated::AscentOptions{});
  const torch::Tensor seen =
      simulated::Support(torch::cat({bank, pool_bank}, 1), h, w);  // covers contrast
  neuron->SetOptimum(seen * best + (1 - seen) * 0.5);
  return neuron;
}

}  // namespace stimloop
