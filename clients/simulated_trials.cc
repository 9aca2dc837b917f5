#include "clients/simulated_trials.h"

#include <algorithm>
#include <memory>
#include <vector>

#include <ATen/CPUGeneratorImpl.h>

#include "absl/strings/str_cat.h"
#include "optimizers/image_space.h"
#include "optimizers/objective.h"
#include "optimizers/optimizer.h"

namespace stimloop {

absl::StatusOr<SimulatedTrials> GeneticSearchTrials(const SimulatedNeuron& neuron, int64_t n,
                                                    int generation_size, double window_s,
                                                    uint64_t seed) {
  if (n < 1 || generation_size < 2 || !(window_s > 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "simulated trials: need n >= 1 (", n, "), generation_size >= 2 (", generation_size,
        ") and window_s > 0 (", window_s, ")"));
  }
  const SimulatedNeuronSpec& shape = neuron.spec();
  ImageSpaceSpec space_spec;
  space_spec.name = "spectral";
  auto space = MakeImageSpace(space_spec, {shape.channels, shape.height, shape.width});
  if (!space.ok()) return space.status();
  auto objective = Objective::Create(ObjectiveSpec{}, 1);
  if (!objective.ok()) return objective.status();
  OptimizerContext context;
  context.image_space = *std::move(space);
  context.objective = std::make_shared<const Objective>(*std::move(objective));
  context.seed = seed;
  OptimizerSpec optimizer_spec;
  optimizer_spec.name = "genetic";
  auto optimizer = MakeOptimizer(optimizer_spec, context);
  if (!optimizer.ok()) return optimizer.status();

  auto generator = at::make_generator<at::CPUGeneratorImpl>(seed ^ 0x5eedULL);
  std::vector<torch::Tensor> images, rates, true_rates;
  torch::NoGradGuard no_grad;
  for (int64_t shown = 0; shown < n;) {
    const int count = static_cast<int>(std::min<int64_t>(generation_size, n - shown));
    auto candidates = (*optimizer)->Ask(count, shown + 1);
    if (!candidates.ok()) return candidates.status();
    std::vector<torch::Tensor> batch;
    for (const Candidate& c : *candidates) batch.push_back(c.image);
    const torch::Tensor x = torch::stack(batch).to(torch::kFloat);
    const torch::Tensor truth = neuron.Rates(x).to(torch::kFloat);
    const torch::Tensor measured = PoissonRates(truth, window_s, generator).to(torch::kFloat);
    std::vector<Observation> observations;
    for (int i = 0; i < count; ++i) {
      observations.push_back({(*candidates)[i].id, measured[i].item<double>(), 1});
    }
    if (absl::Status s = (*optimizer)->Tell(observations); !s.ok()) return s;
    images.push_back(x);
    rates.push_back(measured);
    true_rates.push_back(truth);
    shown += count;
  }
  SimulatedTrials trials;
  trials.images = torch::cat(images);
  trials.rates = torch::cat(rates).unsqueeze(1);
  trials.true_rates = torch::cat(true_rates).unsqueeze(1);
  return trials;
}

}  // namespace stimloop
