// Genetic search over image-space codes (optimizer name "genetic"), after
// the closed-loop evolutions of Ponce et al. 2019 (Cell 177:999) and the
// XDream implementation of their algorithm (Xiao & Kreiman 2020, PLoS Comput
// Biol 16:e1007973; github.com/willwx/XDream, Optimizers.py, class Genetic).
//
// One Ask is one generation; its size is the `count` the session asks for
// (config.generation_size, default 40 as in Ponce et al. 2019).
//   - The first generation is drawn from the image space's prior (origin
//     "prior"); so is every generation until some candidate is answered.
//   - Every later generation (origin "genetic") is bred from the parents:
//     the answered members of the latest generation. Unanswered candidates
//     (never told: aborted trials) are dropped from the population. When a
//     whole generation went unanswered, the next one is bred from the same
//     parents as that generation was.
//   - Breeding (XDream): parents are ranked by measured objective; the best
//     `elites` are copied unchanged (and so measured again); every other
//     child takes each gene from one of two parents drawn with probability
//     fitness_i = exp((s_i - s_max) / kT), kT = std(s) / selectivity, where
//     the objectives s are first clipped at their 95th percentile (XDream's
//     guard against one outlying response); the child takes parent 1's gene
//     with probability `heritability`, else parent 2's; then each gene is
//     mutated with probability `mutation_rate` by adding Gaussian noise of
//     standard deviation `mutation_size` times the prior's scale (the
//     standard deviation of the first generation's codes: 1 for the spectral
//     space's N(0, I), ~0.29 for the pixel space's uniform prior). Codes then
//     pass through ImageSpace::Project.
//   - Images are QuantizeImages(Decode(codes)); for the pixel space the code
//     is snapped to the shown image, so the search learns from exactly what
//     the rig displayed (see MakeCandidates).
//   - Tell: a value replaces any earlier one for the same id (a late repeat
//     changed its mean). Values of the latest generation and of the current
//     parents are used; a value for an older candidate is accepted and
//     ignored.
//   - BestGuess is undefined (no model); the best elite is the best guess.
//   - Randomness: MakeGenerator(seed, "genetic") only; Save/Load capture the
//     whole state, generator included.
//
// Parameters ("optimizer.params"), defaults and where they come from:
//   elites         10  [0, 1000]  best parents copied unchanged (at most half
//                                 of a generation, so that at least half of
//                                 every generation is new). Ponce et al.
//                                 carried top codes over between 40-image
//                                 generations; XDream's tuned n_conserve is 0
//                                 for noiseless CNN units. With noisy neurons
//                                 re-showing the elites re-measures them, so
//                                 one lucky response cannot hold the lead.
//   selectivity    2   [0.01, 100] XDream's tuned default (kT = std / 2).
//   heritability   0.5 [0.5, 1]   XDream's default: uniform crossover.
//   mutation_rate  0.5 [0, 1]     XDream's tuned default.
//   mutation_size  0.5 [0, 10]    XDream's tuned default (in prior units:
//                                 XDream's codes start from N(0, 1) too).
#ifndef STIMLOOP_OPTIMIZERS_GENETIC_H_
#define STIMLOOP_OPTIMIZERS_GENETIC_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "optimizers/optimizer.h"
#include "optimizers/proposals.h"

namespace stimloop {

struct GeneticParams {
  int64_t elites = 10;
  double selectivity = 2.0;
  double heritability = 0.5;
  double mutation_rate = 0.5;
  double mutation_size = 0.5;
};

class Genetic : public Optimizer {
 public:
  Genetic(std::shared_ptr<const ImageSpace> space, const GeneticParams& params, uint64_t seed);

  absl::string_view name() const override { return "genetic"; }
  absl::StatusOr<std::vector<Candidate>> Ask(int count, int64_t first_id) override;
  absl::Status Tell(absl::Span<const Observation> observations) override;
  void Save(torch::serialize::OutputArchive& archive) const override;
  absl::Status Load(torch::serialize::InputArchive& archive) override;

  const GeneticParams& params() const { return params_; }

 private:
  // `count` children of parents_ (REQUIRES: parents_ not empty).
  torch::Tensor Breed(int count);

  std::shared_ptr<const ImageSpace> space_;
  GeneticParams params_;
  at::Generator generator_;
  IdLedger ledger_;
  ScoredCodes last_;     // the latest generation
  ScoredCodes parents_;  // what the latest bred generation came from
  double prior_scale_ = 0;  // 0 until the first generation is drawn
};

// Reads the parameters above; INVALID_ARGUMENT names "optimizer.params.<key>".
absl::StatusOr<std::unique_ptr<Optimizer>> MakeGenetic(const OptimizerSpec& spec,
                                                       const OptimizerContext& context);

}  // namespace stimloop

#endif  // STIMLOOP_OPTIMIZERS_GENETIC_H_
