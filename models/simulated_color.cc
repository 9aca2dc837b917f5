#include "models/simulated_color.h"

#include <torch/torch.h>

#include <utility>
#include <vector>

#include "models/simulated_parts.h"

namespace stimloop {
namespace {

class ColorCell final : public SimulatedNeuron {
 public:
  ColorCell(const SimulatedNeuronSpec& spec, const GaborParams& gabor, torch::Tensor w)
      : SimulatedNeuron(spec, /*has_gabor=*/true, gabor), w_(std::move(w)) {}

  torch::Tensor Rates(const torch::Tensor& images) const override {
    return (spec().peak_rate * (Drive(images).clamp_min(0) / scale_).pow(spec().exponent))
        .to(torch::kFloat);
  }
  bool optimum_is_exact() const override { return true; }

  void SetOptimum(torch::Tensor optimum) {
    scale_ = Drive(optimum.unsqueeze(0)).item<double>();
    set_optimum(std::move(optimum));
  }

 private:
  torch::Tensor Drive(const torch::Tensor& images) const {  // [N]
    CheckImages(images);
    const torch::Tensor x = images.to(torch::kCPU, torch::kDouble).reshape({images.size(0), -1});
    return x.matmul(w_) - 0.5 * w_.sum();
  }

  torch::Tensor w_;   // [3*H*W] double
  double scale_ = 1;  // drive*
};

}  // namespace

ColorAxis DrawColorAxis(const SimulatedNeuronSpec& spec) {
  simulated::ParamGenerator gen = simulated::StreamOf(spec.seed, 0x636f6c6f72ull);  // "color"
  ColorAxis axis;
  axis.red_green = gen.Uniform(0, 1) < 2.0 / 3.0;
  axis.luminance = gen.Uniform(0.2, 1.0);
  const double leak = axis.luminance / 3;
  if (axis.red_green) {
    axis.r = 1 + leak;
    axis.g = -1 + leak;
    axis.b = leak;
  } else {
    axis.r = -0.5 + leak;
    axis.g = -0.5 + leak;
    axis.b = 1 + leak;
  }
  return axis;
}

absl::StatusOr<std::unique_ptr<SimulatedNeuron>> CreateColorCell(const SimulatedNeuronSpec& spec) {
  const GaborParams gabor = simulated::DrawGabor(spec);
  const ColorAxis axis = DrawColorAxis(spec);
  const std::vector<double> g =
      simulated::GaborWeights(gabor, spec.height, spec.width, gabor.phase);
  const int64_t n = static_cast<int64_t>(g.size());
  torch::Tensor w = torch::empty({3, n}, torch::kDouble);
  torch::Tensor optimum = torch::empty({3, n}, torch::kFloat);
  const double weights[3] = {axis.r, axis.g, axis.b};
  auto wa = w.accessor<double, 2>();
  auto oa = optimum.accessor<float, 2>();
  for (int64_t c = 0; c < 3; ++c) {
    for (int64_t i = 0; i < n; ++i) {
      wa[c][i] = weights[c] * g[i];
      oa[c][i] = wa[c][i] > 0 ? 1.0f : 0.0f;
    }
  }
  auto neuron = std::make_unique<ColorCell>(spec, gabor, w.reshape({3 * n}));
  neuron->SetOptimum(optimum.reshape({3, spec.height, spec.width}));
  return neuron;
}

}  // namespace stimloop
