#include "models/gabor_fit.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <vector>

namespace stimloop {
namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr int64_t kCandidatesPerStart = 32;
constexpr double kLearningRate = 0.02;
// A warm fit drops the worse half of each (member, neuron)'s fresh starts
// every parametric_steps / kHalvingRounds steps, until one is left.
constexpr int64_t kHalvingRounds = 5;

// `count` candidate fields per neuron ([count, num_neurons] each) from the
// broad prior of the header; gains are set later.
GaborParameters DrawCandidates(int64_t count, int64_t num_neurons, int64_t height, int64_t width,
                               at::Generator& gen) {
  auto uniform = [&](double lo, double hi) {
    return torch::empty({count, num_neurons}).uniform_(lo, hi, gen);
  };
  const double side = static_cast<double>(std::min(height, width));
  GaborParameters g;
  g.cx = uniform(0.1, 0.9);
  g.cy = uniform(0.1, 0.9);
  g.theta = uniform(0, kPi);
  g.log_sigma = uniform(std::log(0.03 * side), std::log(0.25 * side));
  g.log_cycles = uniform(std::log(1.5), std::log(4.0));
  g.phase = uniform(0, 2 * kPi);
  return g;
}

// Squared Pearson correlation of every column of `a` [N, C, n] with the
// matching neuron's rates `y` [N, n] -> [C, n].
torch::Tensor SquaredCorrelation(const torch::Tensor& a, const torch::Tensor& y) {
  const torch::Tensor ac = a - a.mean(0, true);
  const torch::Tensor yc = (y - y.mean(0, true)).unsqueeze(1);
  const torch::Tensor cov = (ac * yc).sum(0);
  const torch::Tensor var = ac.pow(2).sum(0) * yc.pow(2).sum(0);
  return cov.pow(2) / var.clamp_min(1e-12);
}

// `g` with `f` applied to each of its defined tensors.
GaborParameters Apply(const GaborParameters& g,
                      const std::function<torch::Tensor(const torch::Tensor&)>& f) {
  std::vector<torch::Tensor> out;
  for (const torch::Tensor& p : g.all()) out.push_back(p.defined() ? f(p) : p);
  return GaborParameters::FromList(out);
}

// Member m's starts [K, n]: the `starts` of 32 * starts candidates whose
// linear or energy response on the training trials `centered` [N, P]
// correlates best with `rates` [N, n].
GaborParameters ScreenStarts(const torch::Tensor& centered, const torch::Tensor& rates,
                             int64_t starts, int64_t height, int64_t width, at::Generator& gen) {
  const int64_t n = rates.size(1), count = kCandidatesPerStart * starts;
  GaborParameters candidates = DrawCandidates(count, n, height, width, gen);
  const torch::Tensor drives = centered.matmul(GaborWeightPair(candidates, height, width).t());
  const torch::Tensor d1 = drives.narrow(1, 0, count * n).view({-1, count, n});
  const torch::Tensor d2 = drives.narrow(1, count * n, count * n).view({-1, count, n});
  const torch::Tensor score = torch::maximum(SquaredCorrelation(d1.clamp_min(0), rates),
                                             SquaredCorrelation(d1 * d1 + d2 * d2, rates));
  const torch::Tensor best = std::get<1>(score.nan_to_num(0).topk(starts, 0));  // [K, n]
  return Apply(candidates, [&](const torch::Tensor& p) { return p.gather(0, best); });
}

// Full-batch Adam on parameters [M, K, n] whose dimension 1 holds the
// starts of every (member, neuron), with LibTorch's update and defaults but
// the rate (betas 0.9 and 0.999, eps 1e-8), written out so that starts can
// be dropped between steps together with their moments. Call Step() and
// Keep() with gradients off; the parameters require grad.
class StartsAdam {
 public:
  StartsAdam(const std::vector<torch::Tensor>& params, double learning_rate)
      : learning_rate_(learning_rate) {
    for (const torch::Tensor& p : params) {
      params_.push_back(p.detach().clone().requires_grad_(true));
      first_.push_back(torch::zeros_like(p));
      second_.push_back(torch::zeros_like(p));
    }
  }

  const std::vector<torch::Tensor>& params() const { return params_; }
  int64_t num_starts() const { return params_.front().size(1); }

  // One update from the gradients backward() left on the parameters.
  void Step() {
    ++steps_;
    const double correction1 = 1 - std::pow(kBeta1, steps_);
    const double correction2 = 1 - std::pow(kBeta2, steps_);
    for (size_t i = 0; i < params_.size(); ++i) {
      torch::Tensor& grad = params_[i].mutable_grad();
      if (!grad.defined()) continue;
      first_[i].mul_(kBeta1).add_(grad, 1 - kBeta1);
      second_[i].mul_(kBeta2).addcmul_(grad, grad, 1 - kBeta2);
      const torch::Tensor denom = (second_[i].sqrt() / std::sqrt(correction2)).add_(kEpsilon);
      params_[i].data().addcdiv_(first_[i], denom, -learning_rate_ / correction1);
      grad = torch::Tensor();
    }
  }

  // Keeps the starts `index` [M, K', n] (positions along dimension 1).
  void Keep(const torch::Tensor& index) {
    for (size_t i = 0; i < params_.size(); ++i) {
      params_[i] = params_[i].detach().gather(1, index).requires_grad_(true);
      first_[i] = first_[i].gather(1, index);
      second_[i] = second_[i].gather(1, index);
    }
  }

 private:
  static constexpr double kBeta1 = 0.9, kBeta2 = 0.999, kEpsilon = 1e-8;
  double learning_rate_;
  int64_t steps_ = 0;
  std::vector<torch::Tensor> params_, first_, second_;
};

// Stacks members' parameters ([K, n] each) to [M, K, n].
GaborParameters StackMembers(const std::vector<GaborParameters>& members) {
  std::vector<torch::Tensor> out;
  for (size_t i = 0; i < members.front().all().size(); ++i) {
    std::vector<torch::Tensor> parts;
    for (const GaborParameters& g : members) parts.push_back(g.all()[i]);
    out.push_back(parts.front().defined() ? torch::stack(parts, 0) : torch::Tensor());
  }
  return GaborParameters::FromList(out);
}

}  // namespace

absl::StatusOr<std::shared_ptr<const GaborModel>> FitGaborModel(
    const TrainingData& data, const SurrogateSpec& spec, int64_t version, uint64_t seed,
    const std::atomic<bool>* cancel, FitMetrics* metrics, const GaborModel* previous) {
  absl::StatusOr<TrainingSplit> split =
      SplitTrainingData(data, spec.min_trials, spec.holdout_fraction, seed);
  if (!split.ok()) return split.status();
  torch::NoGradGuard outer_no_grad;  // re-enabled only around the Adam steps
  const int64_t height = data.images.size(2), width = data.images.size(3);
  const torch::Tensor rates = data.rates.to(torch::kFloat).contiguous();
  const int64_t n = rates.size(1), members = spec.ensemble_size, starts = spec.parametric_starts;
  const torch::Tensor centered = data.images.to(torch::kFloat).mean(1).flatten(1) - 0.5;
  const torch::Tensor x = centered.index_select(0, split->train_trials);  // [T, P]
  const torch::Tensor y = rates.index_select(0, split->train_trials);     // [T, n]
  const int64_t t = x.size(0);
  const torch::Tensor neuron_weight = NeuronWeights(y, spec.loss);
  const torch::Tensor mean_rate = y.mean(0).clamp_min(1e-3);

  // Each member's starts and bootstrap (trial weights: draws with replacement).
  std::vector<GaborParameters> fields;
  std::vector<torch::Tensor> boot_weights;
  for (int64_t m = 0; m < members; ++m) {
    if (FitCancelled(cancel)) return FitCancelledStatus();
    auto gen = at::make_generator<at::CPUGeneratorImpl>(FitStream(seed, 1 + m));
    fields.push_back(ScreenStarts(x, y, starts, height, width, gen));
    boot_weights.push_back(
        torch::bincount(torch::randint(t, {t}, gen, torch::kLong), {}, t).to(torch::kFloat));
  }
  const torch::Tensor boot = torch::stack(boot_weights, 1).view({t, members, 1, 1}) / t;

  GaborParameters g = StackMembers(fields);
  {
    // Gains where each subunit alone (exponent 2) gives half the mean rate,
    // and a spontaneous rate of 5% of it.
    const int64_t cells = members * starts * n;
    const torch::Tensor drives = x.matmul(GaborWeightPair(g, height, width).t());
    const torch::Tensor d1 = drives.narrow(1, 0, cells), d2 = drives.narrow(1, cells, cells);
    const torch::Tensor half = (0.5 * mean_rate).repeat({members * starts});
    g.log_linear =
        (half / d1.clamp_min(0).pow(2).mean(0).clamp_min(1e-9)).log().view({members, starts, n});
    g.log_energy =
        (half / (d1 * d1 + d2 * d2).mean(0).clamp_min(1e-9)).log().view({members, starts, n});
    g.log_exponent = torch::full({members, starts, n}, std::log(2.0));
    g.log_baseline = (0.05 * mean_rate).log().expand({members, starts, n}).clone();
  }
  const bool warm = previous != nullptr && previous->num_members() == members &&
                    previous->num_neurons() == n && previous->height() == height &&
                    previous->width() == width;
  if (warm) {
    std::vector<torch::Tensor> current = g.all();
    const std::vector<torch::Tensor> before = previous->parameters().all();
    for (size_t i = 0; i < current.size(); ++i) current[i].select(1, starts - 1).copy_(before[i]);
  }
  StartsAdam adam(g.all(), kLearningRate);
  // Loss of every (member, start still optimized, neuron) on the member's
  // resample [M, adam.num_starts(), n].
  auto problem_losses = [&]() {
    const GaborParameters current = GaborParameters::FromList(adam.params());
    const torch::Tensor pred =
        GaborRatesFromDrives(current, x.matmul(GaborWeightPair(current, height, width).t()))
            .view({t, members, adam.num_starts(), n});
    const torch::Tensor per = ElementLoss(pred, y.view({t, 1, 1, n}), spec.loss) * neuron_weight;
    return (per * boot).sum(0);
  };
  // A start whose gain overflowed has a non-finite loss and never wins.
  auto finite_or_inf = [](const torch::Tensor& loss) {
    return torch::where(loss.isfinite(), loss,
                        torch::full_like(loss, std::numeric_limits<float>::infinity()));
  };
  const int64_t halving_interval = std::max<int64_t>(1, spec.parametric_steps / kHalvingRounds);
  for (int64_t step = 0; step < spec.parametric_steps; ++step) {
    if (FitCancelled(cancel)) return FitCancelledStatus();
    torch::Tensor losses;
    {
      torch::AutoGradMode grad(true);
      losses = problem_losses();
      losses.sum().backward();
    }
    adam.Step();
    // The fresh starts race each other, not the previous fit, which has
    // had every earlier version's steps: it stays, last, to the end.
    const int64_t live = adam.num_starts();
    if (warm && live > 2 && (step + 1) % halving_interval == 0) {
      const int64_t fresh = live / 2;  // of live - 1, rounded up
      const torch::Tensor kept = std::get<1>(
          finite_or_inf(losses.detach().narrow(1, 0, live - 1)).topk(fresh, 1, /*largest=*/false));
      adam.Keep(torch::cat({kept, torch::full_like(kept.narrow(1, 0, 1), live - 1)}, 1));
    }
  }

  // Each (member, neuron) keeps its best start.
  const torch::Tensor best = finite_or_inf(problem_losses()).argmin(1, /*keepdim=*/true);
  std::vector<torch::Tensor> chosen;
  for (const torch::Tensor& p : adam.params()) {
    chosen.push_back(p.detach().gather(1, best).squeeze(1));
  }
  auto model =
      std::make_shared<const GaborModel>(version, height, width, GaborParameters::FromList(chosen));

  FitMetrics m;
  m.version = version;
  m.steps = spec.parametric_steps;
  m.member_epochs.assign(members, spec.parametric_steps);
  const torch::Tensor heldout_images = data.images.index_select(0, split->heldout_trials);
  FillHeldOutMetrics(*split, rates, model->PredictMembers(heldout_images).mean(0), neuron_weight,
                     spec.loss, &m);
  if (metrics != nullptr) *metrics = std::move(m);
  return model;
}

}  // namespace stimloop
