// Training data as a closed loop collects it, without a server: the stimuli
// of a genetic search (optimizers/genetic.h, default parameters) in the
// spectral image space, each shown once to a simulated neuron and answered
// with a Poisson spike count, the optimizer learning from those counts.
// This is what a surrogate is fitted on in a session, so benchmarks and
// tests of surrogate accuracy use it (random images barely drive a V1 cell:
// about 0.1 spikes per 0.2 s trial, against 1 to 2 here).
// Deterministic: everything is drawn from `seed`.
#ifndef STIMLOOP_CLIENTS_SIMULATED_TRIALS_H_
#define STIMLOOP_CLIENTS_SIMULATED_TRIALS_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "models/simulated_neuron.h"
#include <torch/types.h>

namespace stimloop {

struct SimulatedTrials {
  torch::Tensor images;      // [n, C, H, W] float on the 8-bit grid, in shown order
  torch::Tensor rates;       // [n, 1] measured (noisy) spikes/s
  torch::Tensor true_rates;  // [n, 1] the neuron's noiseless rates
};

// `n` trials of a genetic search in generations of `generation_size`, the
// neuron's shape; Poisson counts over `window_s`. INVALID_ARGUMENT for n < 1,
// generation_size < 2 or window_s <= 0.
absl::StatusOr<SimulatedTrials> GeneticSearchTrials(const SimulatedNeuron& neuron, int64_t n,
                                                    int generation_size, double window_s,
                                                    uint64_t seed);

}  // namespace stimloop

#endif  // STIMLOOP_CLIENTS_SIMULATED_TRIALS_H_
