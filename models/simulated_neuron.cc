#include "models/simulated_neuron.h"

#include <torch/torch.h>

#include <cmath>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/seed.h"
#include "models/simulated_color.h"
#include "models/simulated_deepnet.h"
#include "models/simulated_endstopped.h"
#include "models/simulated_gabor.h"
#include "models/simulated_parts.h"
#include "models/simulated_v4.h"

namespace stimloop {
namespace {

constexpr int64_t kMinSize = 16;
constexpr int64_t kMaxSize = 512;

absl::Status ValidateSpec(const SimulatedNeuronSpec& spec) {
  if (spec.channels != 1 && spec.channels != 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.channels: ", spec.channels, " must be 1 or 3"));
  }
  if (spec.kind == CellKind::kColor && spec.channels != 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.channels: ", spec.channels,
                     " is not 3: a color cell needs RGB images (a gray image has no chromatic "
                     "contrast to drive it)"));
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

}  // namespace

const std::vector<CellKind>& AllCellKinds() {
  static const std::vector<CellKind> kinds = {
      CellKind::kSimple,  CellKind::kComplex,    CellKind::kPlaid, CellKind::kV4,
      CellKind::kDeepNet, CellKind::kEndStopped, CellKind::kColor};
  return kinds;
}

std::string CellKindNames() {
  std::vector<std::string> names;
  for (CellKind kind : AllCellKinds()) names.emplace_back(CellKindName(kind));
  return absl::StrJoin(names, ", ");
}

absl::StatusOr<CellKind> ParseCellKind(absl::string_view name) {
  for (CellKind kind : AllCellKinds()) {
    if (name == CellKindName(kind)) return kind;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("cell kind: \"", name, "\" is not one of ", CellKindNames()));
}

absl::string_view CellKindName(CellKind kind) {
  switch (kind) {
    case CellKind::kSimple:
      return "simple";
    case CellKind::kComplex:
      return "complex";
    case CellKind::kPlaid:
      return "plaid";
    case CellKind::kV4:
      return "v4";
    case CellKind::kDeepNet:
      return "deepnet";
    case CellKind::kEndStopped:
      return "endstopped";
    case CellKind::kColor:
      return "color";
  }
  return "unknown";
}

bool IsGaborCellKind(CellKind kind) {
  return kind == CellKind::kSimple || kind == CellKind::kComplex || kind == CellKind::kPlaid;
}

absl::StatusOr<std::unique_ptr<SimulatedNeuron>> SimulatedNeuron::Create(
    const SimulatedNeuronSpec& spec) {
  if (absl::Status status = ValidateSpec(spec); !status.ok()) return status;
  torch::NoGradGuard no_grad;
  switch (spec.kind) {
    case CellKind::kSimple:
    case CellKind::kComplex:
    case CellKind::kPlaid:
      return CreateGaborCell(spec);
    case CellKind::kV4:
      return CreateV4Cell(spec);
    case CellKind::kDeepNet:
      return CreateDeepNetCell(spec);
    case CellKind::kEndStopped:
      return CreateEndStoppedCell(spec);
    case CellKind::kColor:
      return CreateColorCell(spec);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("spec.kind: ", static_cast<int>(spec.kind), " is not a cell kind"));
}

SimulatedNeuron::SimulatedNeuron(SimulatedNeuronSpec spec, bool has_gabor, GaborParams gabor)
    : spec_(std::move(spec)), has_gabor_(has_gabor), gabor_(gabor) {}

const GaborParams& SimulatedNeuron::gabor() const {
  TORCH_CHECK(has_gabor_, "SimulatedNeuron: a ", std::string(CellKindName(spec_.kind)),
              " cell has no Gabor receptive field");
  return gabor_;
}

void SimulatedNeuron::CheckImages(const torch::Tensor& images) const {
  TORCH_CHECK(images.dim() == 4 && images.size(1) == spec_.channels &&
                  images.size(2) == spec_.height && images.size(3) == spec_.width,
              "SimulatedNeuron: images must be [N, ", spec_.channels, ", ", spec_.height, ", ",
              spec_.width, "], got ", images.sizes());
}

absl::StatusOr<SimulatedPopulation> SimulatedPopulation::Create(const SimulatedNeuronSpec& base,
                                                                int num_neurons, bool mix) {
  if (num_neurons < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_neurons: ", num_neurons, " must be at least 1"));
  }
  SimulatedPopulation population;
  population.neurons_.reserve(num_neurons);
  const bool v1_array = mix && IsGaborCellKind(base.kind);
  for (int i = 0; i < num_neurons; ++i) {
    SimulatedNeuronSpec spec = base;
    spec.seed = DeriveSeed(base.seed, static_cast<uint64_t>(i));
    if (v1_array) spec.kind = i % 2 == 0 ? CellKind::kSimple : CellKind::kComplex;
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
