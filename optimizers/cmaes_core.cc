#include "optimizers/cmaes_core.h"

#include <torch/serialize.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace stimloop {
namespace {

constexpr auto kDouble = torch::kFloat64;

// The strategy parameters of one generation of n evaluated points (tutorial
// Table 1, alpha_cov = 2, positive weights only).
struct Constants {
  torch::Tensor weights;  // [mu], positive, sum 1
  double mu_eff;
  double c_sigma, d_sigma, c_c, c_1, c_mu;
};

Constants MakeConstants(int64_t n, int64_t dim, bool separable) {
  const int64_t mu = std::max<int64_t>(1, n / 2);
  torch::Tensor w;
  if (mu == 1) {
    w = torch::ones({1}, kDouble);
  } else {
    w = std::log((n + 1) / 2.0) - torch::arange(1, mu + 1, kDouble).log();
    w = w / w.sum();
  }
  Constants k;
  k.weights = w;
  k.mu_eff = 1.0 / w.square().sum().item<double>();
  const double nd = static_cast<double>(dim);
  const double mu_eff = k.mu_eff;
  k.c_sigma = (mu_eff + 2) / (nd + mu_eff + 5);
  k.d_sigma = 1 + 2 * std::max(0.0, std::sqrt((mu_eff - 1) / (nd + 1)) - 1) + k.c_sigma;
  k.c_c = (4 + mu_eff / nd) / (nd + 4 + 2 * mu_eff / nd);
  const double alpha_cov = 2;
  k.c_1 = alpha_cov / ((nd + 1.3) * (nd + 1.3) + mu_eff);
  k.c_mu = std::min(1 - k.c_1, alpha_cov * (mu_eff - 2 + 1 / mu_eff) /
                                   ((nd + 2) * (nd + 2) + alpha_cov * mu_eff / 2));
  if (separable) {
    // Ros & Hansen 2008: learning rates of the diagonal model scaled by (D+2)/3.
    const double factor = (nd + 2) / 3;
    k.c_1 = std::min(1.0, k.c_1 * factor);
    k.c_mu = std::min(1 - k.c_1, k.c_mu * factor);
  }
  return k;
}

void WriteDouble(torch::serialize::OutputArchive& archive, const std::string& key, double v) {
  archive.write(key, c10::IValue(v));
}
void WriteInt(torch::serialize::OutputArchive& archive, const std::string& key, int64_t v) {
  archive.write(key, c10::IValue(v));
}
double ReadDoubleOrThrow(torch::serialize::InputArchive& archive, const std::string& key) {
  c10::IValue v;
  archive.read(key, v);
  return v.toDouble();
}
int64_t ReadIntOrThrow(torch::serialize::InputArchive& archive, const std::string& key) {
  c10::IValue v;
  archive.read(key, v);
  return v.toInt();
}

}  // namespace

CmaesCore::CmaesCore(const torch::Tensor& mean, double sigma, bool separable)
    : dim_(mean.numel()), separable_(separable), sigma_(sigma) {
  TORCH_CHECK(dim_ >= 1 && sigma > 0, "CmaesCore: needs D >= 1 and sigma > 0");
  const double nd = static_cast<double>(dim_);
  chi_n_ = std::sqrt(nd) * (1 - 1 / (4 * nd) + 1 / (21 * nd * nd));
  mean_ = mean.detach().reshape({dim_}).to(kDouble).clone();
  p_sigma_ = torch::zeros({dim_}, kDouble);
  p_c_ = torch::zeros({dim_}, kDouble);
  d_ = torch::ones({dim_}, kDouble);
  if (separable_) {
    c_ = torch::ones({dim_}, kDouble);
  } else {
    c_ = torch::eye(dim_, kDouble);
    b_ = torch::eye(dim_, kDouble);
  }
}

void CmaesCore::RefreshEigensystemIfDue() {
  if (separable_ || evaluations_ - eigen_evaluations_ <= eigen_interval_) return;
  c_ = (c_ + c_.t()) / 2;  // keep C exactly symmetric
  auto [eigenvalues, eigenvectors] = torch::linalg_eigh(c_, "L");
  // Rounding can leave tiny negative eigenvalues; floor them far below the
  // largest so that d stays positive and C^{-1/2} finite.
  const double floor = std::max(eigenvalues.max().item<double>() * 1e-20, 1e-300);
  d_ = eigenvalues.clamp_min(floor).sqrt();
  b_ = eigenvectors.contiguous();
  eigen_evaluations_ = evaluations_;
}

torch::Tensor CmaesCore::Sample(int64_t count, at::Generator& generator) {
  TORCH_CHECK(count >= 1, "CmaesCore::Sample: count must be >= 1");
  RefreshEigensystemIfDue();
  // Normals are drawn in float32 (LibTorch vectorizes that path; float64
  // draws are several times slower) and widened.
  torch::Tensor z = torch::randn({count, dim_}, generator, torch::kFloat32).to(kDouble);
  torch::Tensor y = separable_ ? z * d_ : torch::matmul(z * d_, b_.t());
  return mean_ + sigma_ * y;
}

void CmaesCore::Update(const torch::Tensor& points, const torch::Tensor& fitness) {
  TORCH_CHECK(points.dim() == 2 && points.size(1) == dim_ && points.size(0) >= 1 &&
                  fitness.numel() == points.size(0),
              "CmaesCore::Update: needs points [n, D] and fitness [n], n >= 1");
  const int64_t n = points.size(0);
  const Constants k = MakeConstants(n, dim_, separable_);
  const int64_t mu = k.weights.numel();
  const double nd = static_cast<double>(dim_);

  // Steps y = (x - m) / sigma and u = diag(1/d) B^T y, so that
  // C^{-1/2} y = B u and ||C^{-1/2} y|| = ||u|| (separable: B = I).
  torch::Tensor y = (points.to(kDouble) - mean_) / sigma_;
  torch::Tensor u = separable_ ? y / d_ : torch::matmul(y, b_) / d_;
  // Hansen 2011: bound the Mahalanobis length of each step.
  const double max_length = std::sqrt(nd) + 2 * nd / (nd + 2);
  torch::Tensor shrink =
      (max_length / u.norm(2, /*dim=*/1, /*keepdim=*/true)).clamp_max(1.0).nan_to_num(1.0);
  y = y * shrink;
  u = u * shrink;

  // Best mu first; a stable sort keeps the given order among ties.
  torch::Tensor order =
      std::get<1>(torch::sort(fitness.reshape({n}).to(kDouble), /*stable=*/true, /*dim=*/0,
                              /*descending=*/true))
          .slice(0, 0, mu);
  torch::Tensor y_sel = y.index_select(0, order);
  torch::Tensor w = k.weights.unsqueeze(1);
  torch::Tensor y_w = (w * y_sel).sum(0);
  torch::Tensor u_w = (w * u.index_select(0, order)).sum(0);
  torch::Tensor z_w = separable_ ? u_w : torch::mv(b_, u_w);  // C^{-1/2} y_w

  mean_ = mean_ + sigma_ * y_w;  // c_m = 1
  ++generation_;
  p_sigma_ = (1 - k.c_sigma) * p_sigma_ + std::sqrt(k.c_sigma * (2 - k.c_sigma) * k.mu_eff) * z_w;
  const double p_sigma_norm = p_sigma_.norm().item<double>();
  const bool h_sigma = p_sigma_norm / std::sqrt(1 - std::pow(1 - k.c_sigma, 2.0 * generation_)) <
                       (1.4 + 2 / (nd + 1)) * chi_n_;
  p_c_ = (1 - k.c_c) * p_c_;
  if (h_sigma) p_c_ = p_c_ + std::sqrt(k.c_c * (2 - k.c_c) * k.mu_eff) * y_w;
  const double delta_h = h_sigma ? 0.0 : k.c_c * (2 - k.c_c);
  const double decay = 1 - k.c_1 - k.c_mu + k.c_1 * delta_h;
  if (separable_) {
    c_ = decay * c_ + k.c_1 * p_c_.square() + k.c_mu * (w * y_sel.square()).sum(0);
    d_ = c_.sqrt();
  } else {
    c_ = torch::addmm(torch::addr(c_, p_c_, p_c_, decay, k.c_1), y_sel.t(), w * y_sel,
                      /*beta=*/1, /*alpha=*/k.c_mu);
  }
  // CSA (tutorial eq. 44); the exponent is capped at 1 as in purecma, so one
  // freak generation cannot multiply sigma by more than e.
  sigma_ *= std::exp(std::min(1.0, k.c_sigma / k.d_sigma * (p_sigma_norm / chi_n_ - 1)));

  evaluations_ += n;
  eigen_interval_ = n / ((k.c_1 + k.c_mu) * nd * 10);
}

torch::Tensor CmaesCore::CovarianceDiagonal() const {
  return separable_ ? c_.clone() : c_.diagonal().clone();
}

double CmaesCore::AxisRatio() const {
  torch::Tensor eig = separable_ ? c_ : d_.square();
  return (eig.max() / eig.min()).item<double>();
}

void CmaesCore::Save(torch::serialize::OutputArchive& archive, const std::string& prefix) const {
  WriteInt(archive, prefix + "dim", dim_);
  WriteInt(archive, prefix + "separable", separable_ ? 1 : 0);
  archive.write(prefix + "mean", mean_);
  WriteDouble(archive, prefix + "sigma", sigma_);
  archive.write(prefix + "p_sigma", p_sigma_);
  archive.write(prefix + "p_c", p_c_);
  archive.write(prefix + "c", c_);
  if (!separable_) archive.write(prefix + "b", b_);
  archive.write(prefix + "d", d_);
  WriteInt(archive, prefix + "generation", generation_);
  WriteInt(archive, prefix + "evaluations", evaluations_);
  WriteInt(archive, prefix + "eigen_evaluations", eigen_evaluations_);
  WriteDouble(archive, prefix + "eigen_interval", eigen_interval_);
}

absl::Status CmaesCore::Load(torch::serialize::InputArchive& archive, const std::string& prefix) {
  try {
    const int64_t dim = ReadIntOrThrow(archive, prefix + "dim");
    const bool separable = ReadIntOrThrow(archive, prefix + "separable") != 0;
    if (dim != dim_ || separable != separable_) {
      return absl::InvalidArgumentError(absl::StrCat(
          "optimizer state: CMA-ES state of dimension ", dim, (separable ? " (separable)" : ""),
          " does not fit dimension ", dim_, (separable_ ? " (separable)" : "")));
    }
    torch::Tensor mean, p_sigma, p_c, c, b, d;
    archive.read(prefix + "mean", mean);
    const double sigma = ReadDoubleOrThrow(archive, prefix + "sigma");
    archive.read(prefix + "p_sigma", p_sigma);
    archive.read(prefix + "p_c", p_c);
    archive.read(prefix + "c", c);
    if (!separable_) archive.read(prefix + "b", b);
    archive.read(prefix + "d", d);
    const int64_t generation = ReadIntOrThrow(archive, prefix + "generation");
    const int64_t evaluations = ReadIntOrThrow(archive, prefix + "evaluations");
    const int64_t eigen_evaluations = ReadIntOrThrow(archive, prefix + "eigen_evaluations");
    const double eigen_interval = ReadDoubleOrThrow(archive, prefix + "eigen_interval");
    const std::vector<int64_t> vector_shape = {dim_};
    const std::vector<int64_t> matrix_shape = {dim_, dim_};
    const auto fits = [](const torch::Tensor& t, const std::vector<int64_t>& shape) {
      return t.defined() && t.scalar_type() == kDouble && t.sizes().vec() == shape;
    };
    if (!fits(mean, vector_shape) || !fits(p_sigma, vector_shape) || !fits(p_c, vector_shape) ||
        !fits(d, vector_shape) || !fits(c, separable_ ? vector_shape : matrix_shape) ||
        (!separable_ && !fits(b, matrix_shape)) || !(sigma > 0) || !std::isfinite(sigma)) {
      return absl::InvalidArgumentError("optimizer state: CMA-ES tensors have wrong shapes");
    }
    mean_ = mean;
    sigma_ = sigma;
    p_sigma_ = p_sigma;
    p_c_ = p_c;
    c_ = c;
    b_ = b;
    d_ = d;
    generation_ = generation;
    evaluations_ = evaluations;
    eigen_evaluations_ = eigen_evaluations;
    eigen_interval_ = eigen_interval;
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("optimizer state: unreadable CMA-ES state (", e.what(), ")"));
  }
  return absl::OkStatus();
}

}  // namespace stimloop
