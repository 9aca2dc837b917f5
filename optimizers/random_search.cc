// PLACEHOLDER: to be replaced by the real optimizer.
#include "optimizers/random_search.h"

namespace stimloop {

absl::StatusOr<std::unique_ptr<Optimizer>> MakeRandomSearch(const OptimizerSpec&,
                                                         const OptimizerContext&) {
  return absl::UnimplementedError("optimizer.name: 'random_search' is not implemented yet");
}

}  // namespace stimloop
