// Simulated neurons: ground-truth model cells with a known (or well
// estimated) optimum, used for offline sessions, tests and benchmarks.
// SimulatedNeuron is the interface; each family is one file pair:
//
//   simple, complex, plaid  models/simulated_gabor.h       V1, exact optimum
//   endstopped              models/simulated_endstopped.h  V1, estimated optimum
//   color                   models/simulated_color.h       V1, RGB, exact optimum
//   v4                      models/simulated_v4.h          V4, estimated optimum
//   deepnet                 models/simulated_deepnet.h     CNN unit, estimated optimum
//
// Every cell's parameters are drawn from its seed with a fixed generator
// (identical across runs and platforms; models/simulated_parts.h), and its
// rates are scaled so that Optimum() gives exactly peak_rate. Where no exact
// optimum is known, Optimum() is the best of many projected gradient ascents
// in the [0, 1] pixel box (the family's header says how); an optimizer may
// then find an image rated slightly above peak_rate. All cells work on
// contrast (x - 0.5): a uniform image, gray included, gives rate 0. Except
// the color cell (RGB only), a cell shown an RGB image sees its luminance:
// the 1- and 3-channel cells of one seed are the same cell.
#ifndef STIMLOOP_MODELS_SIMULATED_NEURON_H_
#define STIMLOOP_MODELS_SIMULATED_NEURON_H_

#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace stimloop {

enum class CellKind { kSimple, kComplex, kPlaid, kV4, kDeepNet, kEndStopped, kColor };

// "simple", "complex", "plaid", "v4", "deepnet", "endstopped", "color" <->
// CellKind; INVALID_ARGUMENT (listing the kinds) for anything else.
absl::StatusOr<CellKind> ParseCellKind(absl::string_view name);
absl::string_view CellKindName(CellKind kind);
// Every kind, in the order above.
const std::vector<CellKind>& AllCellKinds();
// "simple, complex, ..., color": for flag help and error messages.
std::string CellKindNames();
// The Gabor cells of models/simulated_gabor.h (simple, complex, plaid).
bool IsGaborCellKind(CellKind kind);

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
  double exponent = 2.0;    // output power law of the simple, plaid and color cells
};

// Immutable, thread-safe.
class SimulatedNeuron {
 public:
  // INVALID_ARGUMENT naming the field unless channels is 1 or 3 (3 for a
  // color cell), height and width are in [16, 512], and peak_rate and
  // exponent are positive.
  static absl::StatusOr<std::unique_ptr<SimulatedNeuron>> Create(const SimulatedNeuronSpec& spec);

  virtual ~SimulatedNeuron() = default;
  SimulatedNeuron(const SimulatedNeuron&) = delete;
  SimulatedNeuron& operator=(const SimulatedNeuron&) = delete;

  // Noiseless rates: images [N, C, H, W] in [0, 1] -> [N] (float, spikes/s,
  // finite and non-negative). Differentiable with respect to the images (an
  // oracle model for bench/ascent_ceiling).
  // REQUIRES: C, H, W match the spec (checked with TORCH_CHECK).
  virtual torch::Tensor Rates(const torch::Tensor& images) const = 0;
  // The optimum over the [0, 1] pixel box, [C, H, W] float: exact (0/1
  // values) when optimum_is_exact(), else the family's estimate.
  const torch::Tensor& Optimum() const { return optimum_; }
  virtual bool optimum_is_exact() const = 0;
  // Rate at the optimum (== spec.peak_rate).
  double optimum_rate() const { return spec_.peak_rate; }
  const SimulatedNeuronSpec& spec() const { return spec_; }
  // The V1 receptive field (simple, complex, plaid: the first Gabor;
  // endstopped: its center; color: its spatial profile). V4 and deepnet
  // cells have none.
  bool has_gabor() const { return has_gabor_; }
  // REQUIRES: has_gabor() (checked with TORCH_CHECK).
  const GaborParams& gabor() const;

 protected:
  // `gabor` is stored for gabor() when `has_gabor`.
  SimulatedNeuron(SimulatedNeuronSpec spec, bool has_gabor, GaborParams gabor);
  // TORCH_CHECKs that images are [N, C, H, W] of the spec.
  void CheckImages(const torch::Tensor& images) const;
  void set_optimum(torch::Tensor optimum) { optimum_ = std::move(optimum); }

 private:
  SimulatedNeuronSpec spec_;
  bool has_gabor_;
  GaborParams gabor_;
  torch::Tensor optimum_;
};

// N independent simulated neurons seen together, e.g. a recording array.
class SimulatedPopulation {
 public:
  // Neuron i gets seed derived from (seed, i). When `mix` is true and
  // base.kind is simple, complex or plaid (a V1 array), kinds alternate
  // simple/complex (even i simple); otherwise every neuron is base.kind
  // (e.g. a V4 array: v4 cells with their own seeds).
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
