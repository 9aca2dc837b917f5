// PLACEHOLDER: to be replaced by the real optimizer.
#include "optimizers/cmaes.h"

namespace stimloop {

absl::StatusOr<std::unique_ptr<Optimizer>> MakeCmaes(const OptimizerSpec&,
                                                         const OptimizerContext&) {
  return absl::UnimplementedError("optimizer.name: 'cmaes' is not implemented yet");
}

}  // namespace stimloop
