// A rig played by simulated neurons: it "displays" a stimulus by decoding
// the exact PNG the server sent and "records" Poisson spike counts of the
// simulated population over a window. Randomness from its own seed only.
#ifndef STIMLOOP_CLIENTS_SIMULATED_RIG_H_
#define STIMLOOP_CLIENTS_SIMULATED_RIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "models/simulated_neuron.h"

namespace stimloop {

class SimulatedRig {
 public:
  SimulatedRig(SimulatedPopulation population, double window_s, uint64_t seed);

  // Noisy measured rates, one per neuron. INVALID_ARGUMENT for a bad PNG.
  absl::StatusOr<std::vector<double>> Measure(const std::string& png);
  // Noiseless rates, one per neuron.
  absl::StatusOr<std::vector<double>> TrueRates(const std::string& png) const;

  const SimulatedPopulation& population() const { return population_; }
  double window_s() const { return window_s_; }

 private:
  absl::StatusOr<torch::Tensor> RatesTensor(const std::string& png) const;  // [1, neurons]

  SimulatedPopulation population_;
  double window_s_;
  at::Generator generator_;
};

}  // namespace stimloop

#endif  // STIMLOOP_CLIENTS_SIMULATED_RIG_H_
