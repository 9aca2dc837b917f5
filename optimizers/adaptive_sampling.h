// Adaptive stimulus selection from a candidate pool (optimizer name
// "adaptive_sampling"), following Adept (Cowley, Williamson, Clemens, Smith
// & Byron 2017, NeurIPS 30, "Adaptive stimulus selection for optimizing
// neural population responses"): each generation is chosen from a pool of
// candidate images by the surrogate's predicted objective, greedily, with a
// penalty on similarity to the images already chosen for the batch.
//
// The pool:
//   - a folder (OptimizerSpec.candidate_pool_dir, PNG/JPEG read and resized
//     with LoadImageFolder): those images, origin "pool:<file name>", no
//     code. Unless allow_repeats, an image is shown at most once; an Ask
//     that needs more unshown images than are left is RESOURCE_EXHAUSTED
//     naming optimizer.candidate_pool_dir.
//   - else, at each Ask, `pool_size` fresh codes from the image space's
//     prior (origin "adaptive_sampling", code = Encode(shown image)).
// Selection, for the first `prior_generations` Asks or while the model
// source has no version: uniformly at random among the unshown folder
// images, or the first `count` prior draws (origin "prior"). Afterwards,
// with the newest version M taken once at the start of Ask:
//   u_i = ensemble mean + beta * ensemble std of the predicted objective of
//         pool image i, rescaled to [0, 1] over the eligible pool;
//   pick greedily, k = 1..count, the eligible i maximizing
//         u_i - similarity_penalty * max_{j chosen} max(cos_ij, 0),
//   where cos_ij is the cosine similarity of the images around mid-gray.
//   Adept measures similarity in the model's feature (embedding) space; the
//   ResponseModel interface exposes only rates (one number for a single
//   neuron), so similarity is measured in pixel space, which penalizes the
//   near-duplicates a pool holds just as well.
// Candidates carry M's version and their predicted objective (the mean).
// Tell checks the ids and learns nothing else (the surrogate learns from the
// responses). BestGuess: the pool image with the highest predicted
// objective under the newest model (folder pools only; undefined otherwise).
// Randomness: MakeGenerator(seed, "adaptive_sampling"); Save/Load capture
// the generator, the ids, the number of Asks and which pool images were
// shown.
//
// Parameters ("optimizer.params"), defaults and where they come from:
//   prior_generations  1    [0, 1e6]  Asks before the model is used.
//   beta               0.5  [0, 100]  weight of the ensemble spread (an
//                                     upper-confidence exploration bonus).
//   similarity_penalty 0.5  [0, 100]  Adept's diversity weight; on the [0, 1]
//                                     utility scale, an exact duplicate of a
//                                     chosen image loses half the range.
//   pool_size          1000 [1, 1e5]  prior draws per Ask (no folder).
//   allow_repeats      0    {0, 1}    may a folder image be shown again.
#ifndef STIMLOOP_OPTIMIZERS_ADAPTIVE_SAMPLING_H_
#define STIMLOOP_OPTIMIZERS_ADAPTIVE_SAMPLING_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "optimizers/image_io.h"
#include "optimizers/ask_memo.h"
#include "optimizers/optimizer.h"
#include "optimizers/proposals.h"

namespace stimloop {

struct AdaptiveSamplingParams {
  int64_t prior_generations = 1;
  double beta = 0.5;
  double similarity_penalty = 0.5;
  int64_t pool_size = 1000;
  bool allow_repeats = false;
};

class AdaptiveSampling : public Optimizer {
 public:
  // `pool`: the folder's images (empty: draw from the prior). REQUIRES:
  // space, objective and models are non-null.
  AdaptiveSampling(std::shared_ptr<const ImageSpace> space,
                   std::shared_ptr<const Objective> objective,
                   std::shared_ptr<const ModelSource> models, std::vector<NamedImage> pool,
                   const AdaptiveSamplingParams& params, uint64_t seed);

  absl::string_view name() const override { return "adaptive_sampling"; }
  absl::StatusOr<std::vector<Candidate>> Ask(int count, int64_t first_id) override;
  absl::Status Tell(absl::Span<const Observation> observations) override;
  // Ask depends on the state and the model version only (AskMemo).
  absl::Status PrepareAsk(int count, int64_t first_id) override;
  bool prepares_asks() const override { return true; }
  torch::Tensor BestGuess() const override;
  bool best_guess_is_thread_safe() const override { return true; }
  void Save(torch::serialize::OutputArchive& archive) const override;
  absl::Status Load(torch::serialize::InputArchive& archive) override;

  // The greedy choice: `count` indices into `utility` ([P], any scale),
  // among `eligible` ones, penalized by `similarity` ([P, P]). REQUIRES:
  // at least `count` eligible.
  static std::vector<int64_t> SelectGreedy(const torch::Tensor& utility,
                                           const torch::Tensor& similarity,
                                           const std::vector<bool>& eligible, int count,
                                           double similarity_penalty);

 private:
  std::shared_ptr<const ImageSpace> space_;
  std::shared_ptr<const Objective> objective_;
  std::shared_ptr<const ModelSource> models_;
  std::vector<NamedImage> pool_;
  torch::Tensor pool_images_;  // [P, C, H, W]; undefined without a folder
  AdaptiveSamplingParams params_;

  at::Generator generator_;
  IdLedger ledger_;
  int64_t asks_ = 0;
  AskMemo memo_;  // PrepareAsk's result; not part of the state
  std::vector<bool> shown_;  // per folder image
};

// Reads the parameters above and the folder; INVALID_ARGUMENT names
// "optimizer.params.<key>" or "optimizer.candidate_pool_dir";
// FAILED_PRECONDITION when the context has no model source.
absl::StatusOr<std::unique_ptr<Optimizer>> MakeAdaptiveSampling(const OptimizerSpec& spec,
                                                                const OptimizerContext& context);

}  // namespace stimloop

#endif  // STIMLOOP_OPTIMIZERS_ADAPTIVE_SAMPLING_H_
