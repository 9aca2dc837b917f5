// Reading what `sample_efficiency --dump_trials=DIR` saved: every
// presentation of one session up to one budget, in
// DIR/<cell>_<seed>_<budget>.pt (torch::save of four tensors, written by
// sample_efficiency's SaveTrials), and the simulated cell that session
// recorded from (sample_efficiency draws one neuron per seed).
#ifndef STIMLOOP_BENCH_SAVED_TRIALS_H_
#define STIMLOOP_BENCH_SAVED_TRIALS_H_

#include <torch/serialize.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "models/simulated_neuron.h"

namespace stimloop {

struct SavedTrials {
  torch::Tensor images;         // uint8 [N, C, H, W], as shown
  torch::Tensor rates;          // float [N, 1], measured (spikes/s)
  torch::Tensor generations;    // int64 [N]
  torch::Tensor true_fraction;  // float [N], true rate / the cell's optimum
  CellKind kind = CellKind::kSimple;
};

// NOT_FOUND when the file cannot be read, INVALID_ARGUMENT when it does not
// hold four tensors or `cell` is not a cell kind.
inline absl::StatusOr<SavedTrials> LoadSavedTrials(const std::string& dir, const std::string& cell,
                                                   uint64_t seed, int64_t budget) {
  auto kind = ParseCellKind(cell);
  if (!kind.ok()) return kind.status();
  std::vector<torch::Tensor> saved;
  const std::string path = absl::StrCat(dir, "/", cell, "_", seed, "_", budget, ".pt");
  try {
    torch::load(saved, path);
  } catch (const c10::Error&) {
    return absl::NotFoundError(absl::StrCat("cannot read ", path));
  }
  if (saved.size() != 4) return absl::InvalidArgumentError(absl::StrCat(path, ": not 4 tensors"));
  return SavedTrials{saved[0], saved[1], saved[2], saved[3], *kind};
}

// The neuron sample_efficiency's session with this seed recorded from.
inline absl::StatusOr<SimulatedPopulation> SavedTrialsCell(const SavedTrials& trials,
                                                           uint64_t seed) {
  SimulatedNeuronSpec spec;
  spec.kind = trials.kind;
  spec.channels = trials.images.size(1);
  spec.height = trials.images.size(2);
  spec.width = trials.images.size(3);
  spec.seed = seed;
  return SimulatedPopulation::Create(spec, 1, /*mix=*/false);
}

}  // namespace stimloop

#endif  // STIMLOOP_BENCH_SAVED_TRIALS_H_
