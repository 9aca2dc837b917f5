// PLACEHOLDER: to be replaced by the real optimizer (its contract, parameters,
// defaults and the paper each comes from).
#ifndef STIMLOOP_OPTIMIZERS_RANDOM_SEARCH_H_
#define STIMLOOP_OPTIMIZERS_RANDOM_SEARCH_H_

#include <memory>

#include "absl/status/statusor.h"
#include "optimizers/optimizer.h"

namespace stimloop {

absl::StatusOr<std::unique_ptr<Optimizer>> MakeRandomSearch(const OptimizerSpec& spec,
                                                         const OptimizerContext& context);

}  // namespace stimloop

#endif  // STIMLOOP_OPTIMIZERS_RANDOM_SEARCH_H_
