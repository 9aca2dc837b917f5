// Builds optimizers by name, and the seeded generators they draw from.
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "models/echo.h"
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

namespace {

// SplitMix64 finalizer: spreads nearby seeds over the whole 64-bit range.
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// FNV-1a: a hash of the stream label that is the same on every platform.
uint64_t HashLabel(absl::string_view label) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : label) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

}  // namespace

at::Generator MakeGenerator(uint64_t seed, absl::string_view stream) {
  return at::make_generator<at::CPUGeneratorImpl>(Mix(seed ^ Mix(HashLabel(stream))));
}

}  // namespace stimloop
