// The scalar an optimizer maximizes, computed from one response vector (one
// rate per neuron). Every objective stimloop offers is linear in the rates,
// objective = w . r, so it applies equally to measured responses and to a
// surrogate's predictions (differentiably).
#ifndef STIMLOOP_OPTIMIZERS_OBJECTIVE_H_
#define STIMLOOP_OPTIMIZERS_OBJECTIVE_H_

#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include <torch/types.h>

namespace stimloop {

// What the session config says about the objective.
struct ObjectiveSpec {
  enum class Kind { kSingleNeuron, kWeightedSum, kPopulationControl };
  Kind kind = Kind::kSingleNeuron;
  int index = 0;                // kSingleNeuron: the neuron; kPopulationControl: the target
  std::vector<double> weights;  // kWeightedSum: one per neuron
  double others_weight = 1.0;   // kPopulationControl: weight of the others' mean
};

class Objective {
 public:
  // Validates `spec` against `num_neurons`; INVALID_ARGUMENT names the field
  // ("objective.single_neuron.index", "objective.weighted_sum.weights", ...).
  static absl::StatusOr<Objective> Create(const ObjectiveSpec& spec, int num_neurons);

  // objective for one response. REQUIRES: rates.size() == num_neurons().
  double Evaluate(absl::Span<const double> rates) const;
  // rates [N, num_neurons] (float) -> objectives [N]; differentiable.
  torch::Tensor Evaluate(const torch::Tensor& rates) const;

  int num_neurons() const { return static_cast<int>(weights_.size()); }
  const std::vector<double>& weights() const { return weights_; }

 private:
  explicit Objective(std::vector<double> weights);
  std::vector<double> weights_;
  torch::Tensor weights_tensor_;  // [num_neurons] float
};

}  // namespace stimloop

#endif  // STIMLOOP_OPTIMIZERS_OBJECTIVE_H_
