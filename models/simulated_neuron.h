// Simulated neurons: ground-truth model cells with a known optimum, used for
// offline sessions, tests and benchmarks.
//
// Simple cell (linear-nonlinear): drive = <w, x - 0.5> with w a Gabor
//   receptive field; rate = peak_rate * (max(drive, 0) / drive*)^exponent,
//   where drive* is the largest drive any image in [0, 1] reaches.
// Complex cell (energy model): a quadrature pair of Gabors w1, w2;
//   rate = peak_rate * (<w1, x-0.5>^2 + <w2, x-0.5>^2) / energy*.
// Both reach exactly peak_rate at their optimum over the [0, 1] pixel box:
//   simple: x = 1 where w > 0, else 0 (the sign pattern of the weights);
//   complex: the best sign pattern of cos(t) w1 + sin(t) w2 over the phase
//   angle t in the pair's plane, found exactly by visiting every interval
//   between the angles where one weight changes sign.
// Plaid cell (linear-nonlinear, outside the one-Gabor class of the
//   parametric surrogate, models/gabor_model.h): as a simple cell, with w the
//   normalized sum of two Gabors of the same size and wavelength at the same
//   place, oriented 45-90 degrees apart (the second orientation and phase
//   drawn from their own stream of the seed, so its first Gabor is the simple
//   cell's of the same seed); optimum: the sign pattern of w.
// Receptive field position, orientation, spatial frequency, phase and size
// are drawn from the neuron's seed (a fixed generator: identical across runs
// and platforms): center within the central 50% of each axis, sigma 0.06-0.12
// of min(height, width), wavelength 2-3 sigma, any orientation and phase.
// Weights are zero-mean, so any uniform image (gray included) gives rate 0.
// For RGB images the cell sees luminance: the same weights on every channel.
#ifndef STIMLOOP_MODELS_SIMULATED_NEURON_H_
#define STIMLOOP_MODELS_SIMULATED_NEURON_H_

#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace stimloop {

enum class CellKind { kSimple, kComplex, kPlaid };

// "simple" / "complex" / "plaid" <-> CellKind; INVALID_ARGUMENT for anything else.
absl::StatusOr<CellKind> ParseCellKind(absl::string_view name);
absl::string_view CellKindName(CellKind kind);

// The receptive field drawn from the seed (pixels and radians).
struct GaborParams {
  double center_x = 0, center_y = 0;  // pixels from the top-left corner
  double orientation = 0;             // radians
  double wavelength = 0;              // pixels per cycle
  double phase = 0;                   // radians
  double sigma = 0;                   // Gaussian envelope, pixels
};

struct SimulatedNeuronSpec {
  CellKind kind = CellKind::kSimple;
  int64_t channels = 1, height = 64, width = 64;
  uint64_t seed = 0;
  double peak_rate = 50.0;  // spikes/s at the optimum
  double exponent = 2.0;    // simple cell output nonlinearity (power law)
};

// Immutable, thread-safe.
class SimulatedNeuron {
 public:
  // INVALID_ARGUMENT naming the field unless channels is 1 or 3, height and
  // width are in [16, 512], and peak_rate and exponent are positive.
  static absl::StatusOr<std::unique_ptr<SimulatedNeuron>> Create(const SimulatedNeuronSpec& spec);

  // Noiseless rates: images [N, C, H, W] in [0, 1] -> [N] (float, spikes/s).
  // Differentiable with respect to the images (an oracle model for
  // bench/ascent_ceiling).
  // REQUIRES: C, H, W match the spec (checked with TORCH_CHECK).
  torch::Tensor Rates(const torch::Tensor& images) const;
  // The exact optimum over the [0, 1] pixel box, [C, H, W] with values 0/1.
  const torch::Tensor& Optimum() const { return optimum_; }
  // Rate at the optimum (== spec.peak_rate).
  double optimum_rate() const { return spec_.peak_rate; }
  const SimulatedNeuronSpec& spec() const { return spec_; }
  const GaborParams& gabor() const { return gabor_; }

 private:
  SimulatedNeuron(SimulatedNeuronSpec spec, GaborParams gabor, torch::Tensor w1, torch::Tensor w2);
  torch::Tensor Drive(const torch::Tensor& images) const;  // [N] or [N, 2]

  SimulatedNeuronSpec spec_;
  GaborParams gabor_;
  torch::Tensor w1_, w2_;  // [C*H*W] double; w2_ defined for a complex cell only
  double scale_ = 1;       // drive* (simple) or energy* (complex)
  torch::Tensor optimum_;
};

// N independent simulated neurons seen together, e.g. a recording array.
class SimulatedPopulation {
 public:
  // Neuron i gets seed derived from (seed, i); kinds alternate
  // simple/complex (even i simple) when `mix` is true, else all are `kind`.
  // INVALID_ARGUMENT if num_neurons < 1 or `base` is invalid.
  static absl::StatusOr<SimulatedPopulation> Create(const SimulatedNeuronSpec& base,
                                                    int num_neurons, bool mix);

  // images [N, C, H, W] -> noiseless rates [N, num_neurons].
  torch::Tensor Rates(const torch::Tensor& images) const;
  int size() const { return static_cast<int>(neurons_.size()); }
  const SimulatedNeuron& neuron(int i) const { return *neurons_[i]; }

 private:
  std::vector<std::shared_ptr<const SimulatedNeuron>> neurons_;
};

// Measured rates with Poisson spiking noise: spike counts drawn from
// Poisson(rate * window_s), divided by window_s. Same shape and dtype as
// `rates`; negative rates count as 0. REQUIRES: window_s > 0.
torch::Tensor PoissonRates(const torch::Tensor& rates, double window_s, at::Generator& generator);

}  // namespace stimloop

#endif  // STIMLOOP_MODELS_SIMULATED_NEURON_H_
