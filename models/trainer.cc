#include "models/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace stimloop {
namespace {

constexpr int64_t kFeatureChunk = 128;

bool Cancelled(const std::atomic<bool>* cancel) {
  return cancel != nullptr && cancel->load(std::memory_order_relaxed);
}

absl::Status CancelledStatus() {
  return absl::CancelledError("surrogate fit cancelled: superseded by newer data");
}

// SplitMix64: decorrelates the seeds of the split and of each member.
uint64_t Mix(uint64_t seed, uint64_t stream) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ull * (stream + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

absl::Status Validate(const TrainingData& data) {
  const torch::Tensor& x = data.images;
  const torch::Tensor& y = data.rates;
  if (!x.defined() || x.dim() != 4 || !x.is_floating_point()) {
    return absl::InvalidArgumentError(
        "training_data.images: must be a float tensor [N, C, H, W]");
  }
  if (!y.defined() || y.dim() != 2 || y.size(0) != x.size(0) || y.size(1) < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "training_data.rates: must be [N, num_neurons] with N = ", x.size(0), " images"));
  }
  if (!torch::isfinite(y).all().item<bool>() || (y < 0).any().item<bool>()) {
    return absl::InvalidArgumentError("training_data.rates: must be finite and >= 0");
  }
  if (!data.stimulus_ids.empty() &&
      static_cast<int64_t>(data.stimulus_ids.size()) != x.size(0)) {
    return absl::InvalidArgumentError(absl::StrCat("training_data.stimulus_ids: ",
                                                   data.stimulus_ids.size(),
                                                   " ids for ", x.size(0), " trials"));
  }
  return absl::OkStatus();
}

// Group index of every trial; groups numbered in order of first appearance.
std::vector<int64_t> GroupTrials(const TrainingData& data, int64_t* num_groups) {
  const int64_t n = data.images.size(0);
  std::vector<int64_t> group(n);
  int64_t next = 0;
  if (!data.stimulus_ids.empty()) {
    std::unordered_map<int64_t, int64_t> by_id;
    for (int64_t i = 0; i < n; ++i) {
      auto [it, inserted] = by_id.emplace(data.stimulus_ids[i], next);
      if (inserted) ++next;
      group[i] = it->second;
    }
  } else {
    const torch::Tensor images = data.images.contiguous();
    const int64_t bytes = images[0].numel() * static_cast<int64_t>(images.element_size());
    const char* base = static_cast<const char*>(images.data_ptr());
    std::unordered_multimap<size_t, int64_t> by_hash;  // hash -> first trial of a group
    for (int64_t i = 0; i < n; ++i) {
      const std::string_view pixels(base + i * bytes, static_cast<size_t>(bytes));
      const size_t h = std::hash<std::string_view>()(pixels);
      int64_t found = -1;
      for (auto [it, end] = by_hash.equal_range(h); it != end; ++it) {
        if (std::string_view(base + it->second * bytes, bytes) == pixels) {
          found = group[it->second];
          break;
        }
      }
      if (found < 0) {
        found = next++;
        by_hash.emplace(h, i);
      }
      group[i] = found;
    }
  }
  *num_groups = next;
  return group;
}

// Per-element loss [N, n] weighted per neuron, averaged.
torch::Tensor Loss(const torch::Tensor& pred, const torch::Tensor& y,
                   const torch::Tensor& neuron_weight, SurrogateLoss loss) {
  torch::Tensor per;
  if (loss == SurrogateLoss::kMse) {
    per = (pred - y).pow(2);
  } else {
    per = pred - y * torch::log(pred + 1e-6);
  }
  return (per * neuron_weight).mean();
}

double Pearson(const torch::Tensor& a, const torch::Tensor& b) {
  const torch::Tensor x = a.to(torch::kDouble) - a.to(torch::kDouble).mean();
  const torch::Tensor y = b.to(torch::kDouble) - b.to(torch::kDouble).mean();
  const double den = std::sqrt(x.pow(2).sum().item<double>() * y.pow(2).sum().item<double>());
  if (!(den > 0)) return std::numeric_limits<double>::quiet_NaN();
  return (x * y).sum().item<double>() / den;
}

using ParamState = std::vector<torch::Tensor>;

ParamState Snapshot(const SurrogateHead& head) {
  ParamState state;
  for (const torch::Tensor& p : head->parameters()) state.push_back(p.detach().clone());
  return state;
}

void Restore(SurrogateHead& head, const ParamState& state) {
  torch::NoGradGuard no_grad;
  auto params = head->parameters();
  for (size_t i = 0; i < params.size(); ++i) params[i].copy_(state[i]);
}

}  // namespace

double FractionOfExplainableVarianceExplained(const torch::Tensor& pred,
                                              const torch::Tensor& rates,
                                              const std::vector<int64_t>& groups) {
  const torch::Tensor p = pred.to(torch::kDouble).contiguous();
  const torch::Tensor y = rates.to(torch::kDouble).contiguous();
  const double* pp = p.data_ptr<double>();
  const double* yy = y.data_ptr<double>();
  std::map<int64_t, std::vector<int64_t>> rows_of_group;  // in presentation order
  for (size_t r = 0; r < groups.size(); ++r) {
    rows_of_group[groups[r]].push_back(static_cast<int64_t>(r));
  }
  double noise = 0, sum_y = 0, sum_y2 = 0, sum_err2 = 0;
  int64_t stimuli = 0, n = 0;
  for (auto& [g, rows] : rows_of_group) {
    rows.erase(rows.begin());  // the first presentation, see the header
    if (rows.size() < 2) continue;
    double mean = 0;
    for (int64_t r : rows) mean += yy[r];
    mean /= static_cast<double>(rows.size());
    double var = 0;
    for (int64_t r : rows) {
      var += (yy[r] - mean) * (yy[r] - mean);
      sum_y += yy[r];
      sum_y2 += yy[r] * yy[r];
      sum_err2 += (pp[r] - yy[r]) * (pp[r] - yy[r]);
      ++n;
    }
    noise += var / static_cast<double>(rows.size() - 1);
    ++stimuli;
  }
  if (stimuli == 0) return std::numeric_limits<double>::quiet_NaN();
  noise /= static_cast<double>(stimuli);
  const double mean_y = sum_y / static_cast<double>(n);
  const double var_y = sum_y2 / static_cast<double>(n) - mean_y * mean_y;
  const double mse = sum_err2 / static_cast<double>(n);
  if (var_y <= noise) return std::numeric_limits<double>::quiet_NaN();
  return 1.0 - (mse - noise) / (var_y - noise);
}

absl::StatusOr<std::shared_ptr<const Surrogate>> FitSurrogate(
    const TrainingData& data, const SurrogateSpec& spec,
    std::shared_ptr<const FrontEnd> front_end, int64_t version, uint64_t seed,
    const std::atomic<bool>* cancel, FitMetrics* metrics) {
  if (front_end == nullptr) return absl::InvalidArgumentError("front_end: null");
  if (absl::Status s = Validate(data); !s.ok()) return s;
  const int64_t n = data.images.size(0);
  if (n < spec.min_trials) {
    return absl::FailedPreconditionError(absl::StrCat(
        "training_data: ", n, " trials, fewer than surrogate.params.min_trials = ",
        spec.min_trials));
  }
  int64_t num_groups = 0;
  const std::vector<int64_t> group = GroupTrials(data, &num_groups);
  if (num_groups < 4) {
    return absl::FailedPreconditionError(absl::StrCat(
        "training_data: ", num_groups, " distinct stimuli; at least 4 are needed"));
  }
  torch::NoGradGuard outer_no_grad;  // re-enabled only around training steps
  const torch::Tensor rates = data.rates.to(torch::kFloat).contiguous();
  const int64_t num_neurons = rates.size(1);
  const torch::Tensor group_of = torch::tensor(group, torch::kLong);

  // Held-out split by stimulus group.
  auto split_gen = at::make_generator<at::CPUGeneratorImpl>(Mix(seed, 0));
  const torch::Tensor perm = torch::randperm(num_groups, split_gen, torch::kLong);
  const int64_t num_heldout_groups = std::clamp<int64_t>(
      std::llround(spec.holdout_fraction * static_cast<double>(num_groups)), 1, num_groups - 2);
  torch::Tensor heldout_group = torch::zeros({num_groups}, torch::kBool);
  heldout_group.index_fill_(0, perm.narrow(0, 0, num_heldout_groups), true);
  const torch::Tensor trial_heldout = heldout_group.index_select(0, group_of);
  const torch::Tensor train_trials = torch::nonzero(~trial_heldout).flatten();
  const torch::Tensor heldout_trials = torch::nonzero(trial_heldout).flatten();

  // Features once per distinct stimulus.
  std::vector<int64_t> first_trial(num_groups, -1);
  for (int64_t i = 0; i < n; ++i) {
    if (first_trial[group[i]] < 0) first_trial[group[i]] = i;
  }
  const torch::Tensor unique_images =
      data.images.index_select(0, torch::tensor(first_trial, torch::kLong)).to(torch::kFloat);
  std::vector<torch::Tensor> chunks;
  try {
    for (int64_t start = 0; start < num_groups; start += kFeatureChunk) {
      if (Cancelled(cancel)) return CancelledStatus();
      chunks.push_back(front_end->Forward(
          unique_images.narrow(0, start, std::min(kFeatureChunk, num_groups - start))));
    }
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(absl::StrCat("training_data.images: the front end '",
                                                   front_end->Describe(), "' rejects them: ",
                                                   e.what_without_backtrace()));
  }
  torch::Tensor features = torch::cat(chunks, 0).contiguous();  // [G, F, h, w]
  chunks.clear();

  // Standardization and initial rates from the training split.
  const torch::Tensor train_groups =
      torch::nonzero(~heldout_group).flatten();
  torch::Tensor feature_mean, feature_scale;
  {
    const torch::Tensor train_features = features.index_select(0, train_groups);
    feature_mean = train_features.mean({0, 2, 3});
    feature_scale = train_features.std({0, 2, 3}, /*unbiased=*/false);
    feature_scale =
        torch::where(feature_scale > 1e-8, feature_scale, torch::ones_like(feature_scale));
  }
  const torch::Tensor train_rates = rates.index_select(0, train_trials);
  const torch::Tensor mean_rate = train_rates.mean(0).clamp_min(1e-3);
  const torch::Tensor neuron_weight =
      spec.loss == SurrogateLoss::kMse
          ? 1.0 / train_rates.var(0, /*unbiased=*/false).clamp_min(1e-3)
          : 1.0 / mean_rate;

  const torch::Tensor heldout_rates = rates.index_select(0, heldout_trials);
  const torch::Tensor heldout_group_idx = group_of.index_select(0, heldout_trials);
  // Held-out features once per stimulus, and each held-out trial's row in them.
  const torch::Tensor heldout_groups = std::get<0>(torch::sort(perm.narrow(0, 0, num_heldout_groups)));
  const torch::Tensor heldout_features = features.index_select(0, heldout_groups);  // for metrics
  torch::Tensor row_of_group = torch::full({num_groups}, -1, torch::kLong);
  row_of_group.index_copy_(0, heldout_groups, torch::arange(num_heldout_groups, torch::kLong));
  const torch::Tensor heldout_rows = row_of_group.index_select(0, heldout_group_idx);

  SurrogateHeadOptions options;
  options.features = front_end->feature_shape();
  options.core_channels = spec.core_channels;
  options.num_neurons = num_neurons;
  options.output = spec.output;
  options.readout = spec.readout;
  if (features.size(1) != options.features.channels ||
      features.size(2) != options.features.height || features.size(3) != options.features.width) {
    return absl::InvalidArgumentError(absl::StrCat(
        "training_data.images: [", absl::StrJoin(data.images.sizes(), ", "),
        "] give features [", absl::StrJoin(features.sizes(), ", "), "]; the front end '",
        front_end->Describe(), "' expects images giving [N, ", options.features.channels, ", ",
        options.features.height, ", ", options.features.width, "]"));
  }
  // Training reads the features standardized and position-major (the
  // layout of SurrogateHeadImpl::ForwardPositionMajor, 4x cheaper per step);
  // every member standardizes alike, so one copy serves them all.
  const torch::Tensor standardized =
      StandardizedPositionMajor(features, feature_mean, feature_scale);  // [G, h*w, F]
  const torch::Tensor heldout_standardized = standardized.index_select(0, heldout_groups);
  features = torch::Tensor();

  const torch::Tensor centers =
      spec.readout == ReadoutMask::kGaussian
          ? ReceptiveFieldCenters(standardized, group_of.index_select(0, train_trials),
                                  train_rates, options.features.height, options.features.width)
          : torch::Tensor();

  FitMetrics m;
  std::vector<SurrogateHead> heads;
  const int64_t n_train = train_trials.size(0);
  for (int64_t member = 0; member < spec.ensemble_size; ++member) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(Mix(seed, 1 + member));
    SurrogateHead head(options);
    head->Reset(feature_mean, feature_scale, mean_rate, gen, centers);
    const torch::Tensor boot = train_trials.index_select(
        0, torch::randint(n_train, {n_train}, gen, torch::kLong));
    torch::optim::Adam adam(head->parameters(),
                            torch::optim::AdamOptions(spec.learning_rate));
    double best = std::numeric_limits<double>::infinity();
    ParamState best_state = Snapshot(head);
    int64_t since_best = 0, epoch = 0;
    for (; epoch < spec.max_epochs && since_best < spec.patience; ++epoch) {
      const torch::Tensor order = boot.index_select(0, torch::randperm(n_train, gen, torch::kLong));
      for (int64_t start = 0; start < n_train; start += spec.batch_size) {
        if (Cancelled(cancel)) return CancelledStatus();
        const torch::Tensor trials = order.narrow(0, start, std::min(spec.batch_size, n_train - start));
        const torch::Tensor x = standardized.index_select(0, group_of.index_select(0, trials));
        const torch::Tensor y = rates.index_select(0, trials);
        torch::AutoGradMode grad(true);
        adam.zero_grad();
        // A Gaussian readout reads each trial at its own draw (Lurz et al. 2021).
        const torch::Tensor position_noise =
            spec.readout == ReadoutMask::kGaussian
                ? torch::randn({trials.size(0), num_neurons, 2}, gen)
                : torch::Tensor();
        torch::Tensor loss = Loss(head->ForwardPositionMajor(x, position_noise), y,
                                  neuron_weight, spec.loss) +
                             head->Regularization(spec.l1_mask, spec.l1_features);
        if (spec.weight_decay > 0) {
          for (const torch::Tensor& p : head->CoreParameters()) {
            loss = loss + spec.weight_decay * p.pow(2).sum();
          }
        }
        loss.backward();
        adam.step();
        ++m.steps;
      }
      const torch::Tensor pred =
          head->ForwardPositionMajor(heldout_standardized).index_select(0, heldout_rows);
      const double heldout = Loss(pred, heldout_rates, neuron_weight, spec.loss).item<double>();
      if (heldout < best) {
        best = heldout;
        best_state = Snapshot(head);
        since_best = 0;
      } else {
        ++since_best;
      }
    }
    Restore(head, best_state);
    m.member_epochs.push_back(epoch);
    heads.push_back(std::move(head));
  }

  auto model = std::make_shared<const Surrogate>(version, front_end, std::move(heads));

  // Metrics of the ensemble mean on the held-out trials.
  m.version = version;
  m.num_trials = n;
  m.num_train_trials = n_train;
  m.num_heldout_trials = heldout_trials.size(0);
  m.num_stimuli = num_groups;
  const torch::Tensor pred =
      model->PredictMembersFromFeatures(heldout_features).mean(0).index_select(0, heldout_rows);
  m.heldout_loss = Loss(pred, heldout_rates, neuron_weight, spec.loss).item<double>();
  // Held-out trials are in data order (nonzero is ascending), so each
  // group's rows come in the order its presentations were shown.
  const std::vector<int64_t> group_of_heldout_row(
      heldout_group_idx.data_ptr<int64_t>(),
      heldout_group_idx.data_ptr<int64_t>() + heldout_group_idx.numel());
  std::map<int64_t, int64_t> presentations;
  for (int64_t g : group_of_heldout_row) ++presentations[g];
  for (const auto& [g, count] : presentations) m.num_heldout_repeated += count >= 2;
  for (int64_t j = 0; j < num_neurons; ++j) {
    m.heldout_correlation.push_back(Pearson(pred.select(1, j), heldout_rates.select(1, j)));
    m.heldout_feve.push_back(FractionOfExplainableVarianceExplained(
        pred.select(1, j), heldout_rates.select(1, j), group_of_heldout_row));
  }
  if (metrics != nullptr) *metrics = std::move(m);
  return model;
}

}  // namespace stimloop
