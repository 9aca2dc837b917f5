#include "optimizers/objective.h"

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"

namespace stimloop {

absl::StatusOr<Objective> Objective::Create(const ObjectiveSpec& spec, int num_neurons) {
  if (num_neurons < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_neurons: ", num_neurons, " is below the minimum 1"));
  }
  std::vector<double> weights(num_neurons, 0.0);
  switch (spec.kind) {
    case ObjectiveSpec::Kind::kSingleNeuron:
      if (spec.index < 0 || spec.index >= num_neurons) {
        return absl::InvalidArgumentError(
            absl::StrCat("objective.single_neuron.index: ", spec.index,
                         " is outside [0, ", num_neurons - 1, "]"));
      }
      weights[spec.index] = 1.0;
      break;
    case ObjectiveSpec::Kind::kWeightedSum:
      if (static_cast<int>(spec.weights.size()) != num_neurons) {
        return absl::InvalidArgumentError(absl::StrCat(
            "objective.weighted_sum.weights: has ", spec.weights.size(),
            " values, expected num_neurons = ", num_neurons));
      }
      for (size_t i = 0; i < spec.weights.size(); ++i) {
        if (!std::isfinite(spec.weights[i])) {
          return absl::InvalidArgumentError(absl::StrCat(
              "objective.weighted_sum.weights[", i, "]: ", spec.weights[i], " is not finite"));
        }
        if (std::abs(spec.weights[i]) > kMaxObjectiveWeight) {
          return absl::InvalidArgumentError(
              absl::StrCat("objective.weighted_sum.weights[", i, "]: ", spec.weights[i],
                           " is outside [", -kMaxObjectiveWeight, ", ", kMaxObjectiveWeight,
                           "]"));
        }
      }
      weights = spec.weights;
      break;
    case ObjectiveSpec::Kind::kPopulationControl:
      if (num_neurons < 2) {
        return absl::InvalidArgumentError(
            "objective.population_control: needs num_neurons >= 2");
      }
      if (spec.index < 0 || spec.index >= num_neurons) {
        return absl::InvalidArgumentError(
            absl::StrCat("objective.population_control.target: ", spec.index,
                         " is outside [0, ", num_neurons - 1, "]"));
      }
      if (!std::isfinite(spec.others_weight) || spec.others_weight < 0 ||
          spec.others_weight > kMaxObjectiveWeight) {
        return absl::InvalidArgumentError(
            absl::StrCat("objective.population_control.others_weight: ", spec.others_weight,
                         " must be finite and in [0, ", kMaxObjectiveWeight, "]"));
      }
      for (int i = 0; i < num_neurons; ++i) {
        weights[i] = i == spec.index ? 1.0 : -spec.others_weight / (num_neurons - 1);
      }
      break;
  }
  return Objective(std::move(weights));
}

Objective::Objective(std::vector<double> weights)
    : weights_(std::move(weights)),
      weights_tensor_(torch::tensor(weights_, torch::kDouble).to(torch::kFloat)) {}

double Objective::Evaluate(absl::Span<const double> rates) const {
  double sum = 0;
  for (size_t i = 0; i < weights_.size(); ++i) sum += weights_[i] * rates[i];
  return sum;
}

torch::Tensor Objective::Evaluate(const torch::Tensor& rates) const {
  return torch::matmul(rates, weights_tensor_.to(rates.dtype()).to(rates.device()));
}

}  // namespace stimloop
