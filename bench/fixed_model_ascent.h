// gradient_ascent over one fixed model, outside a session, and the true
// rates of what it proposes: shared by the benchmarks that ask "what does
// the ascent reach with this model?" (ascent_ceiling: the cell itself;
// surrogate_guess: surrogates refit on saved trials).
#ifndef STIMLOOP_BENCH_FIXED_MODEL_ASCENT_H_
#define STIMLOOP_BENCH_FIXED_MODEL_ASCENT_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "clients/named_numbers.h"
#include "models/response_model.h"
#include "models/simulated_neuron.h"
#include "optimizers/optimizer.h"

namespace stimloop {

// A gradient_ascent optimizer (`optimizer_params` "name=value,..." over its
// defaults, prior_generations forced to 0 so the first Ask already uses
// `model`) in the image space `space` ("name=value,..." in
// `space_params`) of gray images of `shape`, with the default objective
// (neuron 0) and `seed`. INVALID_ARGUMENT for bad parameter text or values.
inline absl::StatusOr<std::unique_ptr<Optimizer>> MakeFixedModelAscent(
    std::shared_ptr<const ResponseModel> model, const std::string& space,
    const std::string& space_params, const std::string& optimizer_params, const ImageShape& shape,
    uint64_t seed) {
  ImageSpaceSpec space_spec;
  space_spec.name = space;
  if (absl::Status s = ParseNamedNumbers(space_params, &space_spec.params); !s.ok()) return s;
  auto image_space = MakeImageSpace(space_spec, shape);
  if (!image_space.ok()) return image_space.status();
  auto objective = Objective::Create(ObjectiveSpec{}, 1);
  if (!objective.ok()) return objective.status();
  OptimizerSpec optimizer_spec;
  optimizer_spec.name = "gradient_ascent";
  if (absl::Status s = ParseNamedNumbers(optimizer_params, &optimizer_spec.params); !s.ok()) {
    return s;
  }
  optimizer_spec.params["prior_generations"] = 0;
  OptimizerContext context{*image_space, std::make_shared<const Objective>(*std::move(objective)),
                           seed, std::make_shared<FixedModelSource>(std::move(model))};
  return MakeOptimizer(optimizer_spec, context);
}

// The cell's true rate of each candidate's image over its optimum, [N].
inline torch::Tensor TrueFractions(const SimulatedNeuron& cell,
                                   const std::vector<Candidate>& candidates) {
  std::vector<torch::Tensor> images;
  for (const Candidate& c : candidates) images.push_back(c.image);
  return cell.Rates(torch::stack(images)) / cell.optimum_rate();
}

}  // namespace stimloop

#endif  // STIMLOOP_BENCH_FIXED_MODEL_ASCENT_H_
