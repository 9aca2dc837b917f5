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
#include "server/session.h"
#include "server/session_config.h"

namespace stimloop {
namespace {

constexpr int kDefaultCandidates = 5;
constexpr int kDefaultPresentations = 20;

}  // namespace

absl::Status Session::Validate(const v1::ValidationBlock& block, int max_count,
                               v1::StimulusBatch* batch) {
  if (absl::Status s = CheckRange("validation.candidates", block.candidates(), 0,
                                  kMaxValidationCandidates);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckRange("validation.presentations", block.presentations(), 0,
                                  kMaxValidationPresentations);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckMaxCount(max_count); !s.ok()) return s;
  const int candidates = block.candidates() == 0 ? kDefaultCandidates : block.candidates();
  const int presentations =
      block.presentations() == 0 ? kDefaultPresentations : block.presentations();
  const int images = candidates + (block.include_best_guess() ? 1 : 0);
  if (images * presentations > kMaxValidationStimuli) {
    return absl::InvalidArgumentError(absl::StrCat(
        "validation: ", images, " images x ", presentations, " presentations is more than ",
        kMaxValidationStimuli, " stimuli"));
  }

  // Checked before and after the best guess, which may take seconds.
  auto check_boundary = [this]() -> absl::Status {  // REQUIRES: mu_ held
    if (closed_) {
      return absl::FailedPreconditionError(absl::StrCat("session_id: '", id_, "' is closed"));
    }
    if (!not_handed_out_.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "validation: ", not_handed_out_.size(), " stimuli of generation ", generation_,
          " are not handed out yet; a validation block starts at a generation boundary"));
    }
    if (responses_ == 0) {
      return absl::FailedPreconditionError("validation: no response yet, nothing to validate");
    }
    return absl::OkStatus();
  };

  std::string guess_png;
  int64_t guess_version = 0;
  if (block.include_best_guess()) {
    torch::Tensor guess;
    bool unlocked = false;
    int64_t next_generation = 0;
    {
      absl::MutexLock lock(&mu_);
      if (absl::Status s = check_boundary(); !s.ok()) return s;
      unlocked = optimizer_->best_guess_is_thread_safe();
      if (!unlocked) guess = optimizer_->BestGuess();
      next_generation = generation_ + 1;
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
    if (absl::Status s = check_boundary(); !s.ok()) return s;
    if (!ahead_running_) break;
    mu_.Await(absl::Condition(this, &Session::AheadIdleOrStimuliLeft));
  }
  const std::vector<size_t> sources = ValidationSources(candidates);
  if (sources.empty() && guess_png.empty()) {
    return absl::FailedPreconditionError(
        "validation: no image of the optimizer's was measured yet, nothing to validate");
  }
  if (absl::Status s = ProposeValidationBlock(sources, presentations, guess_png, guess_version);
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
  for (size_t source : sources) shown.push_back(records_[source].entry);
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

  // Rounds, each showing every image once in an order drawn from the seed.
  const int64_t generation = generation_ + 1;
  const int64_t first_id = static_cast<int64_t>(records_.size()) + 1;
  at::Generator generator =
      MakeGenerator(config_.proto.seed(), absl::StrCat("validation.", generation));
  std::vector<StimulusEntry> entries;
  entries.reserve(shown.size() * static_cast<size_t>(presentations));
  for (int round = 0; round < presentations; ++round) {
    const torch::Tensor order =
        torch::randperm(static_cast<int64_t>(shown.size()), generator, torch::kLong);
    for (int64_t k = 0; k < order.size(0); ++k) {
      StimulusEntry e = shown[static_cast<size_t>(order[k].item<int64_t>())];
      e.sequence = first_id + static_cast<int64_t>(entries.size());
      e.id = absl::StrCat(id_, "-", e.sequence);
      e.generation = generation;
      e.origin = kValidationOrigin;
      e.is_reference = false;
      entries.push_back(std::move(e));
    }
  }

  if (absl::Status s = journal_->GenerationProposed(id_, generation, entries,
                                                    SaveOptimizerState(*optimizer_), responses_);
      !s.ok()) {
    return UndoOptimizer(before, s);
  }
  CommitGeneration(generation, std::move(entries), told);
  return absl::OkStatus();
}

}  // namespace stimloop
