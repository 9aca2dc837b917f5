#include "optimizers/ask_memo.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "optimizers/optimizer_state.h"

namespace stimloop {

absl::Status AskMemo::Prepare(Optimizer& optimizer, int count, int64_t first_id,
                              int64_t model_version) {
  candidates_.reset();
  std::string before = SaveOptimizerState(optimizer);
  preparing_ = true;
  absl::StatusOr<std::vector<Candidate>> candidates = optimizer.Ask(count, first_id);
  preparing_ = false;
  std::string after = candidates.ok() ? SaveOptimizerState(optimizer) : std::string();
  if (absl::Status s = LoadOptimizerState(optimizer, before); !s.ok()) {
    return absl::InternalError(absl::StrCat("ask memo: cannot restore the optimizer: ",
                                            s.message()));
  }
  if (!candidates.ok()) return candidates.status();
  candidates_ = *std::move(candidates);
  count_ = count;
  first_id_ = first_id;
  model_version_ = model_version;
  state_before_ = std::move(before);
  state_after_ = std::move(after);
  return absl::OkStatus();
}

std::optional<std::vector<Candidate>> AskMemo::Take(Optimizer& optimizer, int count,
                                                    int64_t first_id, int64_t model_version) {
  if (preparing_ || !candidates_.has_value()) return std::nullopt;
  std::optional<std::vector<Candidate>> out = std::move(candidates_);
  candidates_.reset();
  if (count != count_ || first_id != first_id_ || model_version != model_version_ ||
      SaveOptimizerState(optimizer) != state_before_ ||
      !LoadOptimizerState(optimizer, state_after_).ok()) {
    return std::nullopt;
  }
  return out;
}

}  // namespace stimloop
