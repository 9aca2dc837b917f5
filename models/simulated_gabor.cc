#include "models/simulated_gabor.h"

#include <torch/torch.h>

#include <cmath>
#include <utility>
#include <vector>

#include "models/simulated_parts.h"

namespace stimloop {
namespace {

using simulated::kPi;

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

class GaborCell final : public SimulatedNeuron {
 public:
  GaborCell(const SimulatedNeuronSpec& spec, const GaborParams& gabor, torch::Tensor w1,
            torch::Tensor w2)
      : SimulatedNeuron(spec, /*has_gabor=*/true, gabor), w1_(std::move(w1)), w2_(std::move(w2)) {}

  torch::Tensor Rates(const torch::Tensor& images) const override {
    const torch::Tensor d = Drive(images);
    torch::Tensor rates;
    if (spec().kind != CellKind::kComplex) {
      rates = spec().peak_rate * (d.clamp_min(0) / scale_).pow(spec().exponent);
    } else {
      rates = spec().peak_rate * d.square().sum(1) / scale_;
    }
    return rates.to(torch::kFloat);
  }
  bool optimum_is_exact() const override { return true; }

  // Normalizes by the drive at `optimum`, computed the way Rates() computes it.
  void SetOptimum(torch::Tensor optimum) {
    const torch::Tensor d = Drive(optimum.unsqueeze(0));
    scale_ = spec().kind != CellKind::kComplex ? d.item<double>() : d.square().sum().item<double>();
    set_optimum(std::move(optimum));
  }

 private:
  torch::Tensor Drive(const torch::Tensor& images) const {  // [N] or [N, 2]
    CheckImages(images);
    // <w, x - 0.5> as <w, x> - 0.5 sum(w): one pass over the images fewer.
    const torch::Tensor x = images.to(torch::kCPU, torch::kDouble).reshape({images.size(0), -1});
    const torch::Tensor w = w2_.defined() ? torch::stack({w1_, w2_}, 1) : w1_;
    return x.matmul(w) - 0.5 * w.sum(0);
  }

  torch::Tensor w1_, w2_;  // [C*H*W] double; w2_ defined for a complex cell only
  double scale_ = 1;       // drive* (simple, plaid) or energy* (complex)
};

}  // namespace

absl::StatusOr<std::unique_ptr<SimulatedNeuron>> CreateGaborCell(const SimulatedNeuronSpec& spec) {
  const GaborParams gabor = simulated::DrawGabor(spec);
  std::vector<double> a = simulated::GaborWeights(gabor, spec.height, spec.width, gabor.phase);
  if (spec.kind == CellKind::kPlaid) {
    simulated::ParamGenerator gen = simulated::StreamOf(spec.seed, 0x706c616964ull);  // "plaid"
    GaborParams second = gabor;
    second.orientation = gabor.orientation + gen.Uniform(kPi / 4, kPi / 2);
    second.phase = gen.Uniform(0, 2 * kPi);
    const std::vector<double> b =
        simulated::GaborWeights(second, spec.height, spec.width, second.phase);
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
        simulated::GaborWeights(gabor, spec.height, spec.width, gabor.phase + kPi / 2);
    const std::vector<double> s = simulated::BestQuadratureSigns(a, b);
    for (size_t i = 0; i < s.size(); ++i) pattern[i] = s[i] > 0 ? 1.0 : 0.0;
    w2 = ToChannels(b, spec.channels);
  }
  torch::Tensor optimum = ToChannels(pattern, spec.channels)
                              .reshape({spec.channels, spec.height, spec.width})
                              .to(torch::kFloat);
  auto neuron = std::make_unique<GaborCell>(spec, gabor, std::move(w1), std::move(w2));
  neuron->SetOptimum(std::move(optimum));
  return neuron;
}

}  // namespace stimloop
