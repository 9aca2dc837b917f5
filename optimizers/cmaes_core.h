// The numerical core of CMA-ES, independent of images: a Gaussian search
// distribution N(m, sigma^2 C) over R^D that draws points and updates itself
// from their fitness values (higher is better: stimloop maximizes).
//
// The update follows N. Hansen, "The CMA Evolution Strategy: A Tutorial"
// (2016, arXiv:1604.00772), Table 1 and Fig. 6, with positive weights only:
//   - recombination: the best mu = floor(n/2) (at least 1) of the n evaluated
//     points, weights w_i ∝ ln((n+1)/2) - ln(i), summing to 1; c_m = 1;
//   - cumulative step-size adaptation (CSA) with c_sigma, d_sigma and
//     chi_N = E||N(0,I)|| as in the tutorial, and the h_sigma stall of p_c;
//   - rank-one (c_1, with alpha_cov = 2) and rank-mu (c_mu) covariance
//     updates.
// Every constant is recomputed at each update from the number n of points
// actually evaluated (an update is exactly a CMA-ES generation with
// lambda = n), so a generation may have any size.
//
// Two covariance models:
//   - full: C is a dense D x D matrix. Sampling uses its eigendecomposition
//     C = B diag(d^2) B^T (torch::linalg_eigh), refreshed lazily as in the
//     tutorial (Fig. 6 / purecma): once more than n / ((c_1 + c_mu) D 10)
//     evaluations have passed since the last one. The step-size path uses the
//     same (possibly stale) C^{-1/2} = B diag(1/d) B^T that drew the points.
//   - separable (sep-CMA, R. Ros & N. Hansen, "A Simple Modification in
//     CMA-ES Achieving Linear Time and Space Complexity", PPSN 2008): C is
//     diagonal and c_1, c_mu are multiplied by (D + 2) / 3 (capped so that
//     c_1 + c_mu <= 1). O(D) memory, O(n D) time per generation.
//
// Points handed to Update need not be the points Sample drew (e.g. an image
// space clamped them): each step y = (x - m) / sigma is shortened, if needed,
// to a Mahalanobis length of at most sqrt(D) + 2D/(D+2), following N. Hansen,
// "Injecting External Solutions into CMA-ES" (2011, arXiv:1110.4181), so a
// repaired point cannot blow up the paths or C. Ordinary samples essentially
// never reach that length.
//
// All state is float64 on the CPU. No method changes a tensor in place, so a
// copy of a CmaesCore is a cheap, independent snapshot (it shares tensors
// until one of the two replaces them). Not thread-safe.
#ifndef STIMLOOP_OPTIMIZERS_CMAES_CORE_H_
#define STIMLOOP_OPTIMIZERS_CMAES_CORE_H_

#include <torch/types.h>

#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace torch::serialize {
class InputArchive;
class OutputArchive;
}  // namespace torch::serialize

namespace stimloop {

class CmaesCore {
 public:
  // A distribution with mean `mean` ([D], any float dtype, D >= 1), step size
  // `sigma` (> 0) and C = I. `separable` selects the diagonal model.
  CmaesCore(const torch::Tensor& mean, double sigma, bool separable);

  // Draws `count` points [count, D] (float64) from N(m, sigma^2 C), using
  // only `generator`. Refreshes the eigendecomposition first when it is due
  // (full model). REQUIRES: count >= 1.
  torch::Tensor Sample(int64_t count, at::Generator& generator);

  // One CMA-ES generation from n >= 1 evaluated points [n, D] and their
  // fitness [n] (higher is better; finite). Ties keep the given order.
  void Update(const torch::Tensor& points, const torch::Tensor& fitness);

  int64_t dim() const { return dim_; }
  bool separable() const { return separable_; }
  const torch::Tensor& mean() const { return mean_; }  // [D] float64
  double sigma() const { return sigma_; }
  int64_t generation() const { return generation_; }  // updates so far
  // The diagonal of C [D] (both models).
  torch::Tensor CovarianceDiagonal() const;
  // The largest / smallest eigenvalue of C as of the last decomposition
  // (separable: of the current diagonal).
  double AxisRatio() const;

  // Writes / restores the complete state under keys starting with `prefix`.
  // Load is all or nothing: on error (missing keys, other dimension or
  // model) the core is unchanged and the status is INVALID_ARGUMENT.
  void Save(torch::serialize::OutputArchive& archive, const std::string& prefix) const;
  absl::Status Load(torch::serialize::InputArchive& archive, const std::string& prefix);

 private:
  void RefreshEigensystemIfDue();

  int64_t dim_;
  bool separable_;
  double chi_n_;  // E||N(0, I_D)||, tutorial approximation

  torch::Tensor mean_;  // [D]
  double sigma_;
  torch::Tensor p_sigma_;  // [D] conjugate evolution path
  torch::Tensor p_c_;      // [D] evolution path
  // Full: C [D, D], B [D, D] (eigenvectors as columns), d [D] (sqrt of the
  // eigenvalues), as of the last decomposition. Separable: C is the diagonal
  // [D], B is undefined and d = sqrt(C) at all times.
  torch::Tensor c_;
  torch::Tensor b_;
  torch::Tensor d_;
  int64_t generation_ = 0;
  int64_t evaluations_ = 0;        // points used by Update so far
  int64_t eigen_evaluations_ = 0;  // evaluations_ at the last eigh
  double eigen_interval_ = 0;      // evaluations between decompositions
};

}  // namespace stimloop

#endif  // STIMLOOP_OPTIMIZERS_CMAES_CORE_H_
