// The "cmaes" optimizer: CMA-ES over an image space's codes, as used for
// online neuron control by B. Wang & C. R. Ponce, "High-performance
// evolutionary algorithms for online neuron control" (GECCO 2022). The
// numerics (recombination, CSA, rank-one and rank-mu updates, sep-CMA) live
// in optimizers/cmaes_core.h; this adapter connects them to images and to the
// ask/tell protocol of optimizers/optimizer.h.
//
// Generations. Ask(count, ...) first updates the distribution from the
// candidates of the previous Ask that have been Told (an update is one
// CMA-ES generation with lambda = the number answered, mu = answered / 2, at
// least 1, weights recomputed for that count), then draws `count` new
// candidates (lambda = count; the session's generation size, Ponce: 40).
//   - Unanswered candidates (aborted trials) are left out of the update. As
//     long as which trials abort does not depend on their response, the
//     answered ones are still an unbiased sample of the distribution.
//   - When none was answered, Ask draws a fresh generation from the unchanged
//     distribution. With a single answer there is no selection (mu = 1): the
//     mean moves to that candidate.
//   - Telling an id again replaces its value. A value for a candidate of an
//     earlier generation (before the latest Ask) is accepted and ignored: the
//     distribution it was drawn from is gone.
//   - An id never returned by Ask, or a non-finite objective, is
//     INVALID_ARGUMENT and changes nothing.
//
// Codes (MakeCandidates, optimizers/proposals.h). Every sample x is mapped
// to the nearest valid code (ImageSpace::Project), decoded and quantized to
// 8 bits; the candidate's code is that projected code, and the update uses
// the candidates' codes, i.e. what was shown, not the raw samples (repaired
// solutions, see cmaes_core.h). In pixel space, where a code is an image, the
// code is moreover the shown 8-bit image itself (Encode of it), so code and
// image agree exactly. Because c_m = 1 and the weights are a convex
// combination, the mean of a pixel-space run stays inside [0, 1] as well.
//
// BestGuess() is the distribution mean, projected, decoded and quantized.
//
// Randomness: only MakeGenerator(context.seed, "cmaes"). Construction draws
// the initial mean (one prior code) and, when sigma0 is automatic, 256 prior
// codes to measure the prior's scale; each Ask draws count x D normals.
// Save/Load capture the whole state including the generator, so a restored
// optimizer proposes bit-identical candidates. Load is all or nothing: a
// state of another code size or covariance model is INVALID_ARGUMENT, a
// missing or malformed part DATA_LOSS (optimizers/proposals.h). In full
// mode the state holds two D x D float64 matrices (C and its eigenvectors):
// 16 MB at D = 1000.
//
// Parameters (OptimizerSpec::params, errors name "optimizer.params.<key>"):
//   sigma0            initial step size, in code units; default 0 =
//                     automatic: 3 times the prior's scale, the root mean
//                     square over coordinates of the per-coordinate standard
//                     deviation of 256 prior codes (3 in a whitened N(0, I)
//                     space). Larger than Hansen's tutorial advises (a
//                     quarter to a half of the range where the optimum is
//                     expected): a neuron's optimum lies at saturation, far
//                     outside the prior, and its responses are sparse
//                     Poisson counts, so a large first step is what works,
//                     as Wang & Ponce 2022 found for neuron control. Range
//                     [0, 1e6].
//   full_cov_max_dim  largest code size D that gets a full covariance matrix;
//                     above it the optimizer uses sep-CMA (diagonal C, Ros &
//                     Hansen 2008), whose generations cost O(lambda D) instead
//                     of O(lambda D^2) plus a periodic O(D^3)
//                     eigendecomposition. Default 1000, range [0, 4096]; 0:
//                     always separable.
// Measurements behind both defaults: docs/experiments.md.
#ifndef STIMLOOP_OPTIMIZERS_CMAES_H_
#define STIMLOOP_OPTIMIZERS_CMAES_H_

#include <memory>

#include "absl/status/statusor.h"
#include "optimizers/optimizer.h"

namespace stimloop {

// Builds a "cmaes" optimizer over context.image_space. INVALID_ARGUMENT names
// the first bad or unknown parameter.
absl::StatusOr<std::unique_ptr<Optimizer>> MakeCmaes(const OptimizerSpec& spec,
                                                     const OptimizerContext& context);

}  // namespace stimloop

#endif  // STIMLOOP_OPTIMIZERS_CMAES_H_
