// An optimizer's complete state as bytes, for the session journal: what
// Optimizer::Save writes, in LibTorch's archive format.
#ifndef STIMLOOP_OPTIMIZERS_OPTIMIZER_STATE_H_
#define STIMLOOP_OPTIMIZERS_OPTIMIZER_STATE_H_

#include <string>

#include "absl/status/statusor.h"
#include "optimizers/optimizer.h"

namespace stimloop {

std::string SaveOptimizerState(const Optimizer& optimizer);

// Restores what SaveOptimizerState wrote (for an optimizer built from the
// same spec). INVALID_ARGUMENT when the bytes cannot be read.
absl::Status LoadOptimizerState(Optimizer& optimizer, const std::string& state);

}  // namespace stimloop

#endif  // STIMLOOP_OPTIMIZERS_OPTIMIZER_STATE_H_
