// Session's validation block (ValidationBlock in
// proto/stimloop/v1/stimloop.proto): at a generation boundary, the leading
// measured images and optionally the optimizer's best guess shown again in
// rounds, so that the session's best is chosen on many presentations.
#include <algorithm>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "optimizers/image_io.h"
#include "optimizers/optimizer_state.h"
#include "server/generation_builder.h"
#include "server/session.h"

namespace stimloop {

absl::Status Session::CheckValidationBoundary() const {
  if (closed_) return ClosedError();
  if (ledger_.waiting() > 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "validation: ", ledger_.waiting(), " stimuli of generation ", ledger_.generation(),
        " are not handed out yet; a validation block starts at a generation boundary"));
  }
  if (ledger_.responses() == 0) {
    return absl::FailedPreconditionError("validation: no response yet, nothing to validate");
  }
  return absl::OkStatus();
}

absl::Status Session::Validate(const v1::ValidationBlock& block, int max_count,
                               v1::StimulusBatch* batch) {
  auto plan = CheckValidationBlock(block, max_count);
  if (!plan.ok()) return plan.status();

  // The boundary is checked before and after the best guess, which may take
  // seconds.
  std::string guess_png;
  int64_t guess_version = 0;
  if (plan->include_best_guess) {
    torch::Tensor guess;
    bool unlocked = false;
    int64_t next_generation = 0;
    {
      absl::MutexLock lock(&mu_);
      if (absl::Status s = CheckValidationBoundary(); !s.ok()) return s;
      unlocked = optimizer_->best_guess_is_thread_safe();
      if (!unlocked) guess = optimizer_->BestGuess();
      next_generation = ledger_.generation() + 1;
    }
    if (unlocked) {
      // The version the block's generation is assigned, as any generation
      // (with lag 0 the version of the generation before: its refit would
      // need the lock). The optimizer outlives the call.
      if (refits_ != nullptr) {
        if (refits_->options().lag > 0) refits_->BeforeAsk(next_generation);
        if (auto model = refits_->Latest(); model != nullptr) guess_version = model->version();
      }
      guess = optimizer_->BestGuess();
    }
    if (!guess.defined()) {
      return absl::FailedPreconditionError(
          absl::StrCat("validation.include_best_guess: optimizer '", config_.optimizer.name,
                       "' holds no best guess (random and genetic never do, the model-based "
                       "optimizers from their first model version on)"));
    }
    auto png = EncodePng(ToUint8(guess));
    if (!png.ok()) return png.status();
    guess_png = *std::move(png);
  }

  absl::MutexLock lock(&mu_);
  for (;;) {
    if (absl::Status s = CheckValidationBoundary(); !s.ok()) return s;
    if (!proposer_.running()) break;
    AwaitProposer();
  }
  const std::vector<size_t> sources = ledger_.ValidationSources(plan->candidates);
  if (sources.empty() && guess_png.empty()) {
    return absl::FailedPreconditionError(
        "validation: no image of the optimizer's was measured yet, nothing to validate");
  }
  if (absl::Status s =
          ProposeValidationBlock(sources, plan->presentations, guess_png, guess_version);
      !s.ok()) {
    return s;
  }
  return HandOut(max_count, batch);
}

absl::Status Session::ProposeValidationBlock(const std::vector<size_t>& sources,
                                             int presentations, const std::string& guess_png,
                                             int64_t guess_version) {
  // The images, each as the entry every presentation copies.
  std::vector<StimulusEntry> shown;
  for (size_t source : sources) shown.push_back(ledger_.record(source).entry);
  if (!guess_png.empty() &&
      std::none_of(shown.begin(), shown.end(),
                   [&](const StimulusEntry& e) { return e.png == guess_png; })) {
    StimulusEntry guess;
    guess.png = guess_png;
    guess.model_version = guess_version;
    guess.predicted_objective = std::numeric_limits<double>::quiet_NaN();
    shown.push_back(std::move(guess));
  }

  // A boundary like any other: the optimizer hears what changed (it is not
  // asked), so the state journaled with the block is current.
  std::vector<size_t> told;
  std::string before;
  if (absl::Status s = TellChanges(&told, &before); !s.ok()) return s;

  const int64_t generation = ledger_.generation() + 1;
  std::vector<StimulusEntry> entries =
      BuildValidationBlock(id_, generation, static_cast<int64_t>(ledger_.size()) + 1, shown,
                           presentations, config_.proto.seed());
  std::string state = SaveOptimizerState(*optimizer_);
  if (absl::Status s =
          journal_->GenerationProposed(id_, generation, entries, state, ledger_.responses(),
                                       /*handed_out=*/0);
      !s.ok()) {
    return UndoOptimizer(before, s);
  }
  committed_state_ = std::move(state);
  CommitGeneration(generation, std::move(entries), told);
  return absl::OkStatus();
}

}  // namespace stimloop
