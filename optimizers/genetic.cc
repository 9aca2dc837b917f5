// PLACEHOLDER: to be replaced by the real optimizer.
#include "optimizers/genetic.h"

namespace stimloop {

absl::StatusOr<std::unique_ptr<Optimizer>> MakeGenetic(const OptimizerSpec&,
                                                         const OptimizerContext&) {
  return absl::UnimplementedError("optimizer.name: 'genetic' is not implemented yet");
}

}  // namespace stimloop
