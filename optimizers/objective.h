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

// Ranges that keep every objective, and every sum and mean of objectives, a
// finite double (issue 26: two rates of 1e308 made a pooled mean inf and
// jammed the session). Rates are in [0, kMaxRate]: spikes/s stay below
// ~1e3, and counts, fluorescence or any other non-negative unit fit with
// orders of magnitude to spare. Objective weights (weighted_sum.weights,
// population_control.others_weight) are in [-kMaxObjectiveWeight,
// kMaxObjectiveWeight]. With at most 10000 neurons (server/session_config.h
// kMaxNeurons) |objective| <= 1e9 * 1e6 * 1e4 = 1e19, so a sum over even
// 2^63 presentations (more than any counter holds) stays below 1e38, far
// from the double maximum 1.8e308; squares (variances) below 1e77 too.
inline constexpr double kMaxRate = 1e9;
inline constexpr double kMaxObjectiveWeight = 1e6;

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
  // ("objective.single_neuron.index", "objective.weighted_sum.weights[1]",
  // ...). Weights must be finite and within kMaxObjectiveWeight.
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
