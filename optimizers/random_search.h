// Random search (optimizer name "random"): the baseline every other optimizer
// must beat at equal budget.
//
//   Ask(count) draws `count` codes from the image space's prior, independent
//     of everything measured (origin "random").
//   Tell records the measured objectives and keeps the best measured
//     candidate (id, objective, code shown). Unanswered candidates are never
//     considered. Telling an id again replaces its value; only ids of the
//     latest generation and the current best are remembered, so a late value
//     for an older, non-best candidate is accepted and has no effect.
//   BestGuess is undefined: random search holds no model of the optimum.
//   Parameters: none ("optimizer.params" must be empty).
//   Randomness: MakeGenerator(seed, "random"); Save/Load include its state.
#ifndef STIMLOOP_OPTIMIZERS_RANDOM_SEARCH_H_
#define STIMLOOP_OPTIMIZERS_RANDOM_SEARCH_H_

#include <cstdint>
#include <limits>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "optimizers/optimizer.h"
#include "optimizers/proposals.h"

namespace stimloop {

class RandomSearch : public Optimizer {
 public:
  RandomSearch(std::shared_ptr<const ImageSpace> space, uint64_t seed);

  absl::string_view name() const override { return "random"; }
  absl::StatusOr<std::vector<Candidate>> Ask(int count, int64_t first_id) override;
  absl::Status Tell(absl::Span<const Observation> observations) override;
  void Save(torch::serialize::OutputArchive& archive) const override;
  absl::Status Load(torch::serialize::InputArchive& archive) override;

  // The best measured candidate so far; id -1 and objective -inf when none.
  int64_t best_id() const { return best_id_; }
  double best_objective() const { return best_objective_; }
  const torch::Tensor& best_code() const { return best_code_; }  // [D] or undefined

 private:
  std::shared_ptr<const ImageSpace> space_;
  at::Generator generator_;
  IdLedger ledger_;
  ScoredCodes last_;  // the latest generation
  int64_t best_id_ = -1;
  double best_objective_ = -std::numeric_limits<double>::infinity();
  torch::Tensor best_code_;
};

// INVALID_ARGUMENT "optimizer.params.<key>" for any parameter.
absl::StatusOr<std::unique_ptr<Optimizer>> MakeRandomSearch(const OptimizerSpec& spec,
                                                            const OptimizerContext& context);

}  // namespace stimloop

#endif  // STIMLOOP_OPTIMIZERS_RANDOM_SEARCH_H_
