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
  const std::vector<torch::Tensor> drives =
      centered.matmul(GaborWeightPair(candidates, height, width).t()).chunk(2, 1);
  const torch::Tensor d1 = drives[0].view({-1, count, n});
  const torch::Tensor d2 = drives[1].view({-1, count, n});
  const torch::Tensor score = torch::maximum(SquaredCorrelation(d1.clamp_min(0), rates),
                                             SquaredCorrelation(d1 * d1 + d2 * d2, rates));
  const torch::Tensor best = std::get<1>(score.nan_to_num(0).topk(starts, 0));  // [K, n]
  return Apply(candidates, [&](const torch::Tensor& p) { return p.gather(0, best); });
}

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
    const std::vector<torch::Tensor> drives =
        x.matmul(GaborWeightPair(g, height, width).t()).chunk(2, 1);
    const torch::Tensor &d1 = drives[0], &d2 = drives[1];
    const torch::Tensor half = (0.5 * mean_rate).repeat({members * starts});
    g.log_linear =
        (half / d1.clamp_min(0).pow(2).mean(0).clamp_min(1e-9)).log().view({members, starts, n});
    g.log_energy =
        (half / (d1 * d1 + d2 * d2).mean(0).clamp_min(1e-9)).log().view({members, starts, n});
    g.log_exponent = torch::full({members, starts, n}, std::log(2.0));
    g.log_baseline = (0.05 * mean_rate).log().expand({members, starts, n}).clone();
  }
  if (previous != nullptr && previous->num_members() == members && previous->num_neurons() == n &&
      previous->height() == height && previous->width() == width) {
    std::vector<torch::Tensor> current = g.all();
    const std::vector<torch::Tensor> before = previous->parameters().all();
    for (size_t i = 0; i < current.size(); ++i) current[i].select(1, starts - 1).copy_(before[i]);
  }
  std::vector<torch::Tensor> params = g.all();
  for (torch::Tensor& p : params) p.requires_grad_(true);
  torch::optim::Adam adam(params, torch::optim::AdamOptions(kLearningRate));
  // Loss of every (member, start, neuron) on the member's resample [M, K, n].
  auto problem_losses = [&]() {
    const torch::Tensor pred =
        GaborRatesFromDrives(g, x.matmul(GaborWeightPair(g, height, width).t()))
            .view({t, members, starts, n});
    const torch::Tensor per = ElementLoss(pred, y.view({t, 1, 1, n}), spec.loss) * neuron_weight;
    return (per * boot).sum(0);
  };
  for (int64_t step = 0; step < spec.parametric_steps; ++step) {
    if (FitCancelled(cancel)) return FitCancelledStatus();
    torch::AutoGradMode grad(true);
    adam.zero_grad();
    problem_losses().sum().backward();
    adam.step();
  }

  // Each (member, neuron) keeps its best start; a start whose gain
  // overflowed has a non-finite loss and never wins.
  torch::Tensor final_loss = problem_losses();
  final_loss = torch::where(final_loss.isfinite(), final_loss,
                            torch::full_like(final_loss, std::numeric_limits<float>::infinity()));
  const torch::Tensor best = final_loss.argmin(1, /*keepdim=*/true);  // [M, 1, n]
  std::vector<torch::Tensor> chosen;
  for (const torch::Tensor& p : params) chosen.push_back(p.detach().gather(1, best).squeeze(1));
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
