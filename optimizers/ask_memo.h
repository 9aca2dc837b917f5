// Keeps an Ask computed ahead of time (Optimizer::PrepareAsk) for an
// optimizer whose Ask depends only on its saved state, the model version it
// reads and (count, first_id), never on anything Tell adds.
//
//   absl::Status PrepareAsk(int count, int64_t first_id) override {
//     return memo_.Prepare(*this, count, first_id, ModelVersion());
//   }
//   Ask(count, first_id):
//     if (auto prepared = memo_.Take(*this, count, first_id, ModelVersion()))
//       return *std::move(prepared);
//     ... the Ask itself ...
//
// Prepare saves the state, runs Ask, keeps the candidates and the state Ask
// left, and loads the saved state back. Take hands the candidates out only
// when the optimizer is in exactly the saved state (byte for byte) and
// count, first_id and model version are the same, after loading the state
// Ask left: the result is then identical to running Ask. Not thread-safe:
// the owner serializes calls, as the session does.
#ifndef STIMLOOP_OPTIMIZERS_ASK_MEMO_H_
#define STIMLOOP_OPTIMIZERS_ASK_MEMO_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "optimizers/optimizer.h"

namespace stimloop {

class AskMemo {
 public:
  // Runs optimizer.Ask(count, first_id) and keeps its result; the optimizer
  // ends in the state it started in. An Ask error is returned and nothing is
  // kept.
  absl::Status Prepare(Optimizer& optimizer, int count, int64_t first_id, int64_t model_version);

  // The prepared candidates, if they were prepared for this state and
  // arguments; then the optimizer is in the state that Ask left. Empties
  // the memo either way.
  std::optional<std::vector<Candidate>> Take(Optimizer& optimizer, int count, int64_t first_id,
                                             int64_t model_version);

 private:
  bool preparing_ = false;  // Prepare's own Ask must not take
  std::optional<std::vector<Candidate>> candidates_;
  int count_ = 0;
  int64_t first_id_ = 0;
  int64_t model_version_ = 0;
  std::string state_before_, state_after_;
};

}  // namespace stimloop

#endif  // STIMLOOP_OPTIMIZERS_ASK_MEMO_H_
