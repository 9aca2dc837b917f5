// Gradient ascent on the surrogate (optimizer name "gradient_ascent"): the
// "inception loop" of Walker et al. 2019 (Nat Neurosci 22:2060) and the
// model-driven synthesis of Bashivan, Kar & DiCarlo 2019 (Science 364:6439),
// composed of the named parts of optimizers/mei_parts.h like the sinzlab
// `mei` library.
//
// Ask(count) returns one generation of `count` candidates:
//   - From the image space's prior (origin "prior") for the first
//     `prior_generations` Asks, and whenever the model source has no fitted
//     version yet.
//   - Otherwise (origin "gradient_ascent") from the newest version M of the
//     model source, taken once at the start of the Ask:
//       initial guess  the `count` best (by score, below) of
//                      init_candidates * count codes drawn from the prior,
//                      one start per candidate, optimized together;
//       each step      images = constraint(ClampToBox(DecodeUnclipped(codes)))
//                      (ClampToBox: the forward clamp, with a gradient that
//                      pulls a pixel clipped on the wrong side back into the
//                      box); the image gradient is blurred (precondition)
//                      and the model sees jitter(images). The ascent
//                      maximizes
//                        sum_i score_i / s  -  diversity * N * mean_{i!=j} cos_ij
//                      where score = ensemble mean + ucb_beta * ensemble std
//                      of the predicted objective, except for the last
//                      round(thompson * count) starts, each of which
//                      maximizes one member's predicted objective alone
//                      (members in turn, from member asks % M: batch
//                      Thompson sampling with the bootstrap ensemble as the
//                      posterior, Kandasamy et al. 2018); s = mean |score|,
//                      held constant within a step (the objective term is
//                      scale-free); cos_ij the cosine similarity of images
//                      i and j around mid-gray. The codes take an Adam step
//                      (Kingma & Ba 2015) of size learning_rate * range_k
//                      for coordinate k, decaying linearly to a tenth over
//                      the steps, where range_k is how far code k must move
//                      to sweep some pixel across the [0, 1] box (1 in the
//                      pixel space); then codes = Project(codes);
//       stopper        after `steps` steps, or at the next step once
//                      CancelAsks() was called.
//     Images are QuantizeImages(constraint(Decode(codes))); each candidate's
//     code is Encode(its shown image); model_version is M's version and
//     predicted_objective the ensemble mean objective of the shown image.
//   - Prior candidates get a predicted_objective too when a model exists.
// Ask depends only on the optimizer's state and the model version it uses,
// so PrepareAsk may compute it ahead (AskMemo).
// Tell checks the ids (INVALID_ARGUMENT for unknown ones; the state is then
// unchanged) and otherwise learns nothing: the surrogate learns from the
// responses through the session's refit scheduler. Unanswered candidates
// are irrelevant here.
// BestGuess: the optimum of the newest model: the best (by predicted
// objective) of 8 ascents from fixed starts, with their own generator (it
// never changes what Ask proposes), cached per model version; undefined
// before the first version. Safe to call from another thread.
// Randomness: MakeGenerator(seed, "gradient_ascent"); Save/Load capture the
// generator, the ids handed out and the number of Asks. The model versions
// live in the model source, not in this state.
//
// Parameters ("optimizer.params"): default, range, meaning.
//   prior_generations 1    [0, 1e6]   Asks from the prior before the model
//                                      is used.
//   init_candidates   4    [1, 1000]  prior draws per start (best kept).
//   steps             100  [1, 10000] ascent steps per Ask; an Ask's time is
//                                      proportional to it.
//   learning_rate     0.06 [1e-9, 10] Adam step in pixel-box units (see
//                                      range_k), before the decay.
//   jitter            0    [0, 64]    maximum shift of the images the model
//                                      sees, in pixels; 0: none.
//   blur_sigma   min(H,W)/64 [0, 16]  sigma of the Gaussian blur of the
//                                      image gradient, in pixels
//                                      (DefaultBlurSigma); 0: none.
//   max_rms_contrast  0    [0, 0.5]   RMS-contrast budget of every image;
//                                      0: only the [0, 1] box.
//   diversity         0.1  [0, 100]   weight of the within-batch similarity
//                                      penalty (as Cowley et al. 2017); 0
//                                      lets starts collapse together.
//   ucb_beta          0    [0, 100]   weight of the ensemble's spread in the
//                                      score (upper confidence bound).
//   thompson          0.5  [0, 1]     share of the starts that ascend one
//                                      ensemble member instead of the score.
// Why the defaults are what they are: docs/experiments.md.
#ifndef STIMLOOP_OPTIMIZERS_GRADIENT_ASCENT_H_
#define STIMLOOP_OPTIMIZERS_GRADIENT_ASCENT_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/status/statusor.h"
#include "optimizers/mei_parts.h"
#include "optimizers/ask_memo.h"
#include "optimizers/optimizer.h"
#include "optimizers/proposals.h"

namespace stimloop {

struct GradientAscentParams {
  int64_t prior_generations = 1;
  int64_t init_candidates = 4;
  int64_t steps = 100;
  double learning_rate = 0.06;
  int64_t jitter = 0;
  double blur_sigma = 1.0;  // MakeGradientAscent's default: DefaultBlurSigma
  double max_rms_contrast = 0.0;
  double diversity = 0.1;
  double ucb_beta = 0.0;
  double thompson = 0.5;
};

// The default gradient blur for images of `shape`: min(H, W) / 64 pixels.
double DefaultBlurSigma(const ImageShape& shape);

class GradientAscent : public Optimizer {
 public:
  // REQUIRES: space, objective and models are non-null.
  GradientAscent(std::shared_ptr<const ImageSpace> space,
                 std::shared_ptr<const Objective> objective,
                 std::shared_ptr<const ModelSource> models, const GradientAscentParams& params,
                 uint64_t seed);

  absl::string_view name() const override { return "gradient_ascent"; }
  absl::StatusOr<std::vector<Candidate>> Ask(int count, int64_t first_id) override;
  absl::Status Tell(absl::Span<const Observation> observations) override;
  // Ask depends on the state and the model version only (AskMemo).
  absl::Status PrepareAsk(int count, int64_t first_id) override;
  bool prepares_asks() const override { return true; }
  torch::Tensor BestGuess() const override;
  bool best_guess_is_thread_safe() const override { return true; }
  void CancelAsks() override { cancelled_ = true; }
  void Save(torch::serialize::OutputArchive& archive) const override;
  absl::Status Load(torch::serialize::InputArchive& archive) override;

  // The ascent itself: starting codes [N, D] -> optimized codes [N, D],
  // drawing jitter from `generator`. Start i maximizes the score above, or
  // member start_members[i]'s predicted objective alone where that is >= 0
  // (int64 [N]; undefined: every start maximizes the score). Exposed for
  // tests and BestGuess.
  // REQUIRES: start_members, if defined, holds values in [-1, M).
  torch::Tensor Ascend(const ResponseModel& model, const torch::Tensor& start_codes,
                       at::Generator& generator,
                       const torch::Tensor& start_members = torch::Tensor()) const;
  // The initial guess: the `n` best of init_candidates * n prior codes.
  torch::Tensor InitialGuess(const ResponseModel& model, int64_t n,
                             at::Generator& generator) const;
  // The shown images of codes [N, D]: QuantizeImages(constraint(Decode)).
  torch::Tensor Render(const torch::Tensor& codes) const;

 private:
  // Which member each of `n` starts of the next Ask ascends (-1: the
  // score), by `thompson` above, for a model of `members` members;
  // undefined when no start ascends a single member.
  torch::Tensor ThompsonMembers(int64_t n, int64_t members) const;

  std::shared_ptr<const ImageSpace> space_;
  std::shared_ptr<const Objective> objective_;
  std::shared_ptr<const ModelSource> models_;
  GradientAscentParams params_;
  uint64_t seed_;
  torch::Tensor code_range_;  // [D], see range_k above
  Jitter jitter_;
  GradientBlur blur_;
  ImageConstraint constraint_;
  FixedSteps stopper_;

  at::Generator generator_;
  IdLedger ledger_;
  int64_t asks_ = 0;
  AskMemo memo_;  // PrepareAsk's result; not part of the state

  mutable std::mutex best_guess_mu_;       // guards the cache of BestGuess
  mutable int64_t best_guess_version_ = 0;  // cache of BestGuess
  std::atomic<bool> cancelled_{false};       // CancelAsks: ascents stop at the next step
  mutable torch::Tensor best_guess_;
};

// Reads the parameters above; INVALID_ARGUMENT names
// "optimizer.params.<key>", and FAILED_PRECONDITION when the context has no
// model source.
absl::StatusOr<std::unique_ptr<Optimizer>> MakeGradientAscent(const OptimizerSpec& spec,
                                                              const OptimizerContext& context);

}  // namespace stimloop

#endif  // STIMLOOP_OPTIMIZERS_GRADIENT_ASCENT_H_
