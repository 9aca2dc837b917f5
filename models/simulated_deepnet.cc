#include "models/simulated_deepnet.h"

#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <utility>
#include <vector>

#include "models/simulated_parts.h"

namespace stimloop {
namespace {

using simulated::kPi;
namespace F = torch::nn::functional;

constexpr int64_t kWork = 32;   // working resolution
constexpr int64_t kField = 21;  // the unit's receptive field, working pixels
constexpr int64_t kKernel1 = 7;

struct Layer {
  torch::Tensor weight, bias;  // float
  int64_t stride = 1;
};

using Net = std::array<Layer, 4>;

// Uniform weights in [-a, a], a = sqrt(6 / fan_in) (He et al. 2015).
torch::Tensor HeUniform(simulated::ParamGenerator& gen, int64_t out, int64_t in, int64_t k) {
  torch::Tensor w = torch::empty({out, in, k, k}, torch::kFloat);
  const double a = std::sqrt(6.0 / static_cast<double>(in * k * k));
  float* p = w.data_ptr<float>();
  for (int64_t i = 0; i < w.numel(); ++i) p[i] = static_cast<float>(gen.Uniform(-a, a));
  return w;
}

// Zero-mean, unit-norm kernel from values at offsets (dx, dy) in [-3, 3].
template <typename Fn>
torch::Tensor Kernel(Fn value) {
  std::vector<double> v;
  double mean = 0;
  for (int y = 0; y < kKernel1; ++y) {
    for (int x = 0; x < kKernel1; ++x) {
      v.push_back(value(x - kKernel1 / 2, y - kKernel1 / 2));
      mean += v.back();
    }
  }
  mean /= static_cast<double>(v.size());
  double norm = 0;
  for (double& e : v) {
    e -= mean;
    norm += e * e;
  }
  torch::Tensor k = torch::empty({kKernel1, kKernel1}, torch::kFloat);
  for (int i = 0; i < kKernel1 * kKernel1; ++i) {
    k.data_ptr<float>()[i] = static_cast<float>(v[i] / std::sqrt(norm));
  }
  return k;
}

torch::Tensor FirstLayer(simulated::ParamGenerator& gen) {
  std::vector<torch::Tensor> kernels;
  for (int i = 0; i < 6; ++i) {
    const double theta = i * kPi / 6 + gen.Uniform(-kPi / 12, kPi / 12);
    const double wavelength = gen.Uniform(3, 6), sigma = gen.Uniform(1.0, 1.6);
    const double phase = gen.Uniform(0, 2 * kPi);
    kernels.push_back(Kernel([&](double dx, double dy) {
      const double along = std::cos(theta) * dx + std::sin(theta) * dy;
      return std::exp(-(dx * dx + dy * dy) / (2 * sigma * sigma)) *
             std::cos(2 * kPi * along / wavelength + phase);
    }));
  }
  for (double sign : {1.0, -1.0}) {
    const double center = gen.Uniform(0.7, 1.2), surround = 2 * center;
    kernels.push_back(Kernel([&](double dx, double dy) {
      const double r2 = dx * dx + dy * dy;
      return sign * (std::exp(-r2 / (2 * center * center)) / (center * center) -
                     std::exp(-r2 / (2 * surround * surround)) / (surround * surround));
    }));
  }
  return torch::stack(kernels).unsqueeze(1);  // [8, 1, 7, 7]
}

// Pre-activation of `layer` (its bias included when defined).
torch::Tensor Apply(const torch::Tensor& x, const Layer& layer) {
  return F::conv2d(x, layer.weight, F::Conv2dFuncOptions().stride(layer.stride).bias(layer.bias));
}

// The unit's output (before the ReLU) for contrast crops [N, 1, 21, 21].
torch::Tensor Forward(const torch::Tensor& crop, const Net& net) {
  torch::Tensor h = crop;
  for (int l = 0; l < 3; ++l) h = torch::elu(Apply(h, net[l]));
  return Apply(h, net[3]).view({crop.size(0)});
}

class DeepNetCell final : public SimulatedNeuron {
 public:
  DeepNetCell(const SimulatedNeuronSpec& spec, Net net, int64_t offset_y, int64_t offset_x)
      : SimulatedNeuron(spec, /*has_gabor=*/false, GaborParams{}),
        net_(std::move(net)),
        offset_y_(offset_y),
        offset_x_(offset_x) {}

  torch::Tensor Rates(const torch::Tensor& images) const override {
    CheckImages(images);
    const torch::Tensor luminance = simulated::Luminance(images)
                                        .to(torch::kFloat)
                                        .view({images.size(0), 1, spec().height, spec().width});
    return (spec().peak_rate * Response(luminance) / scale_).to(torch::kFloat);
  }
  bool optimum_is_exact() const override { return false; }

  // The unit's response max(z, 0), unscaled, to luminance [B, 1, H, W] (float).
  torch::Tensor Response(const torch::Tensor& luminance) const {
    return torch::relu(Drive(luminance));
  }
  // z, the input to the unit's ReLU, for luminance [B, 1, H, W] (float).
  torch::Tensor Drive(const torch::Tensor& luminance) const {
    return WorkingDrive(Resample(luminance));
  }
  // z for working-resolution luminance [B, 1, 32, 32].
  torch::Tensor WorkingDrive(const torch::Tensor& work) const {
    return Forward(work.narrow(2, offset_y_, kField).narrow(3, offset_x_, kField) - 0.5, net_);
  }
  // Luminance [B, 1, H, W] -> the network's input [B, 1, 32, 32] (area means).
  torch::Tensor Resample(const torch::Tensor& luminance) const {
    if (luminance.size(2) == kWork && luminance.size(3) == kWork) return luminance;
    return F::interpolate(
        luminance,
        F::InterpolateFuncOptions().size(std::vector<int64_t>{kWork, kWork}).mode(torch::kArea));
  }
  // 1 where the unit's field sees the image [1, 1, H, W], else 0.
  torch::Tensor Field() const {
    torch::Tensor probe = torch::zeros({1, 1, spec().height, spec().width}).requires_grad_(true);
    torch::AutoGradMode grad_mode(true);
    Resample(probe).narrow(2, offset_y_, kField).narrow(3, offset_x_, kField).sum().backward();
    return (probe.grad() > 0).to(torch::kFloat);
  }

  void SetOptimum(const torch::Tensor& luminance) {  // [1, 1, H, W]
    torch::Tensor optimum = luminance[0].expand({spec().channels, -1, -1}).contiguous();
    const torch::Tensor gray = simulated::Luminance(optimum.unsqueeze(0)).to(torch::kFloat);
    scale_ = Response(gray.view({1, 1, spec().height, spec().width})).item<double>();
    set_optimum(std::move(optimum));
  }

 private:
  Net net_;
  int64_t offset_y_, offset_x_;
  double scale_ = 1;  // the unit's output at the optimum
};

}  // namespace

absl::StatusOr<std::unique_ptr<SimulatedNeuron>> CreateDeepNetCell(
    const SimulatedNeuronSpec& spec) {
  const int64_t h = spec.height, w = spec.width;
  simulated::ParamGenerator gen = simulated::StreamOf(spec.seed, 0x646565706e6574ull);  // "deepnet"
  Net net;
  net[0].weight = FirstLayer(gen);
  net[1] = {HeUniform(gen, 16, 8, 3), torch::Tensor(), 2};
  net[2] = {HeUniform(gen, 16, 16, 3), torch::Tensor(), 2};
  net[3] = {HeUniform(gen, 1, 16, 3), torch::Tensor(), 1};
  const int64_t offset_y = gen.Int(2, kWork - kField - 2);
  const int64_t offset_x = gen.Int(2, kWork - kField - 2);

  // Calibration: scale each channel to unit deviation, threshold it.
  const torch::Tensor calibration = simulated::RandomImages(gen, 256, kWork, kWork, /*smooth=*/true)
                                        .narrow(2, offset_y, kField)
                                        .narrow(3, offset_x, kField) -
                                    0.5;
  torch::Tensor x = calibration;
  torch::Tensor gray = torch::zeros({1, 1, kField, kField});
  for (int l = 0; l < 4; ++l) {
    const torch::Tensor z = Apply(x, net[l]);  // no bias yet
    const torch::Tensor mean = z.mean({0, 2, 3});
    const torch::Tensor deviation = z.std({0, 2, 3}).clamp_min(1e-6);
    net[l].weight = net[l].weight / deviation.view({-1, 1, 1, 1});
    torch::Tensor thresholds = torch::empty({z.size(1)}, torch::kFloat);
    for (int64_t c = 0; c < z.size(1); ++c) {
      thresholds[c] = static_cast<float>(l < 3 ? gen.Uniform(0, 0.5) : gen.Uniform(0.5, 1.5));
    }
    net[l].bias = -mean / deviation - thresholds;
    if (l == 3) {  // gray (every uniform image) must stay silent
      const torch::Tensor at_gray = Apply(gray, net[l]).view({1});
      net[l].bias = torch::minimum(net[l].bias, net[l].bias - at_gray - 0.01);
      break;
    }
    x = torch::elu(Apply(x, net[l]));
    gray = torch::elu(Apply(gray, net[l]));
  }

  auto neuron = std::make_unique<DeepNetCell>(spec, std::move(net), offset_y, offset_x);
  // Ascend z, the unit's input to its ReLU: max(z, 0) peaks where z does,
  // and z has a gradient where the unit is silent. In the image's pixels
  // up to 128 x 128 pixels; above, in the network's 32 x 32 input, then
  // repeated over the pixels each of its pixels averages (exact when 32
  // divides the sides).
  const bool in_image = h * w <= 128 * 128;
  const int64_t ah = in_image ? h : kWork, aw = in_image ? w : kWork;
  const simulated::RateFunction f = [&neuron, in_image](const torch::Tensor& images) {
    return in_image ? neuron->Drive(images) : neuron->WorkingDrive(images);
  };
  std::vector<torch::Tensor> starts = {
      simulated::RandomImages(gen, 48, ah, aw, /*smooth=*/false),
      simulated::RandomImages(gen, 48, ah, aw, /*smooth=*/true),
      simulated::GradientSignImages(f, simulated::RandomImages(gen, 8, ah, aw, /*smooth=*/true))};
  torch::Tensor best = simulated::BestOfAscents(f, torch::cat(starts), simulated::AscentOptions{});
  if (!in_image) {
    best = F::interpolate(
        best, F::InterpolateFuncOptions().size(std::vector<int64_t>{h, w}).mode(torch::kNearest));
  }
  // Gray outside the field: the pixels the network's input does not depend on.
  const torch::Tensor field = neuron->Field();
  neuron->SetOptimum(field * best + (1 - field) * 0.5);
  return neuron;
}

}  // namespace stimloop
