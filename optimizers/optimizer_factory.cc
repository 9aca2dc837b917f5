// Builds optimizers by name, and the seeded generators they draw from.
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "base/echo.h"
#include "base/seed.h"
#include "optimizers/adaptive_sampling.h"
#include "optimizers/cmaes.h"
#include "optimizers/genetic.h"
#include "optimizers/gradient_ascent.h"
#include "optimizers/optimizer.h"
#include "optimizers/portfolio.h"
#include "optimizers/random_search.h"
#include <ATen/CPUGeneratorImpl.h>

namespace stimloop {

absl::StatusOr<std::unique_ptr<Optimizer>> MakeOptimizer(const OptimizerSpec& spec,
                                                         const OptimizerContext& context) {
  if (context.image_space == nullptr || context.objective == nullptr) {
    return absl::InternalError("MakeOptimizer: context lacks an image space or objective");
  }
  if (spec.name == "random") return MakeRandomSearch(spec, context);
  if (spec.name == "genetic") return MakeGenetic(spec, context);
  if (spec.name == "cmaes") return MakeCmaes(spec, context);
  if (spec.name == "gradient_ascent") return MakeGradientAscent(spec, context);
  if (spec.name == "adaptive_sampling") return MakeAdaptiveSampling(spec, context);
  if (spec.name == "portfolio") return MakePortfolio(spec, context);
  return absl::InvalidArgumentError(absl::StrCat(
      "optimizer.name: unknown optimizer ", QuotedEcho(spec.name),
      " (known: portfolio, random, genetic, cmaes, gradient_ascent, adaptive_sampling)"));
}

bool UsesSurrogate(const std::string& name) {
  return name == "gradient_ascent" || name == "adaptive_sampling" || name == "portfolio";
}

at::Generator MakeGenerator(uint64_t seed, absl::string_view stream) {
  return at::make_generator<at::CPUGeneratorImpl>(DeriveSeed(seed, LabelHash(stream)));
}

}  // namespace stimloop
