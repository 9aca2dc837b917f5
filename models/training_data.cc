#include "models/training_data.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/seed.h"

namespace stimloop {
namespace {

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

double Pearson(const torch::Tensor& a, const torch::Tensor& b) {
  const torch::Tensor x = a.to(torch::kDouble) - a.to(torch::kDouble).mean();
  const torch::Tensor y = b.to(torch::kDouble) - b.to(torch::kDouble).mean();
  const double den = std::sqrt(x.pow(2).sum().item<double>() * y.pow(2).sum().item<double>());
  if (!(den > 0)) return std::numeric_limits<double>::quiet_NaN();
  return (x * y).sum().item<double>() / den;
}

}  // namespace

bool FitCancelled(const std::atomic<bool>* cancel) {
  return cancel != nullptr && cancel->load(std::memory_order_relaxed);
}

absl::Status FitCancelledStatus() {
  return absl::CancelledError("surrogate fit cancelled: superseded by newer data");
}

uint64_t FitStream(uint64_t seed, uint64_t stream) {
  return SplitMix64At(seed, stream);
}

absl::Status ValidateTrainingData(const TrainingData& data) {
  const torch::Tensor& x = data.images;
  const torch::Tensor& y = data.rates;
  if (!x.defined() || x.dim() != 4 || !x.is_floating_point()) {
    return absl::InvalidArgumentError("training_data.images: must be a float tensor [N, C, H, W]");
  }
  if (!y.defined() || y.dim() != 2 || y.size(0) != x.size(0) || y.size(1) < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "training_data.rates: must be [N, num_neurons] with N = ", x.size(0), " images"));
  }
  if (!torch::isfinite(y).all().item<bool>() || (y < 0).any().item<bool>()) {
    return absl::InvalidArgumentError("training_data.rates: must be finite and >= 0");
  }
  if (!data.stimulus_ids.empty() && static_cast<int64_t>(data.stimulus_ids.size()) != x.size(0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("training_data.stimulus_ids: ", data.stimulus_ids.size(), " ids for ",
                     x.size(0), " trials"));
  }
  return absl::OkStatus();
}

absl::StatusOr<TrainingSplit> SplitTrainingData(const TrainingData& data, int64_t min_trials,
                                                double holdout_fraction, uint64_t seed) {
  if (absl::Status s = ValidateTrainingData(data); !s.ok()) return s;
  const int64_t n = data.images.size(0);
  if (n < min_trials) {
    return absl::FailedPreconditionError(absl::StrCat(
        "training_data: ", n, " trials, fewer than surrogate.params.min_trials = ", min_trials));
  }
  TrainingSplit split;
  split.group = GroupTrials(data, &split.num_groups);
  const int64_t num_groups = split.num_groups;
  if (num_groups < 4) {
    return absl::FailedPreconditionError(
        absl::StrCat("training_data: ", num_groups, " distinct stimuli; at least 4 are needed"));
  }
  split.group_of = torch::tensor(split.group, torch::kLong);
  torch::Tensor perm;  // the groups in order; the first num_heldout are held out
  int64_t num_heldout = 0;
  if (data.holdout_seed.has_value()) {
    // Each group by its own draw; perm orders the groups by draw.
    std::vector<std::pair<uint64_t, int64_t>> draws;
    draws.reserve(static_cast<size_t>(num_groups));
    for (int64_t g = 0; g < num_groups; ++g) {
      draws.emplace_back(SplitMix64At(*data.holdout_seed, static_cast<uint64_t>(g)), g);
    }
    std::sort(draws.begin(), draws.end());
    std::vector<int64_t> order;
    order.reserve(draws.size());
    for (const auto& [draw, g] : draws) {
      order.push_back(g);
      if (static_cast<double>(draw) < std::ldexp(holdout_fraction, 64)) ++num_heldout;  // draw / 2^64
    }
    perm = torch::tensor(order, torch::kLong);
    num_heldout = std::clamp<int64_t>(num_heldout, 1, num_groups - 2);
  } else {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(FitStream(seed, 0));
    perm = torch::randperm(num_groups, gen, torch::kLong);
    num_heldout = std::clamp<int64_t>(
        std::llround(holdout_fraction * static_cast<double>(num_groups)), 1, num_groups - 2);
  }
  split.heldout_group = torch::zeros({num_groups}, torch::kBool);
  split.heldout_group.index_fill_(0, perm.narrow(0, 0, num_heldout), true);
  split.heldout_groups = std::get<0>(torch::sort(perm.narrow(0, 0, num_heldout)));
  const torch::Tensor trial_heldout = split.heldout_group.index_select(0, split.group_of);
  split.train_trials = torch::nonzero(~trial_heldout).flatten();
  split.heldout_trials = torch::nonzero(trial_heldout).flatten();
  return split;
}

torch::Tensor NeuronWeights(const torch::Tensor& train_rates, SurrogateLoss loss) {
  return loss == SurrogateLoss::kMse ? 1.0 / train_rates.var(0, /*unbiased=*/false).clamp_min(1e-3)
                                     : 1.0 / train_rates.mean(0).clamp_min(1e-3);
}

torch::Tensor ElementLoss(const torch::Tensor& pred, const torch::Tensor& y, SurrogateLoss loss) {
  return loss == SurrogateLoss::kMse ? (pred - y).pow(2) : pred - y * torch::log(pred + 1e-6);
}

torch::Tensor WeightedLoss(const torch::Tensor& pred, const torch::Tensor& y,
                           const torch::Tensor& neuron_weight, SurrogateLoss loss) {
  return (ElementLoss(pred, y, loss) * neuron_weight).mean();
}

void FillHeldOutMetrics(const TrainingSplit& split, const torch::Tensor& rates,
                        const torch::Tensor& heldout_pred, const torch::Tensor& neuron_weight,
                        SurrogateLoss loss, FitMetrics* metrics) {
  FitMetrics& m = *metrics;
  const torch::Tensor heldout_rates = rates.index_select(0, split.heldout_trials);
  m.num_trials = rates.size(0);
  m.num_train_trials = split.train_trials.size(0);
  m.num_heldout_trials = split.heldout_trials.size(0);
  m.num_stimuli = split.num_groups;
  m.heldout_loss = WeightedLoss(heldout_pred, heldout_rates, neuron_weight, loss).item<double>();
  // Held-out trials are in data order (nonzero is ascending), so each
  // group's rows come in the order its presentations were shown.
  const torch::Tensor heldout_group_idx = split.group_of.index_select(0, split.heldout_trials);
  const std::vector<int64_t> group_of_heldout_row(
      heldout_group_idx.data_ptr<int64_t>(),
      heldout_group_idx.data_ptr<int64_t>() + heldout_group_idx.numel());
  std::map<int64_t, int64_t> presentations;
  for (int64_t g : group_of_heldout_row) ++presentations[g];
  m.num_heldout_repeated = 0;
  for (const auto& [g, count] : presentations) m.num_heldout_repeated += count >= 2;
  m.heldout_correlation.clear();
  m.heldout_feve.clear();
  for (int64_t j = 0; j < rates.size(1); ++j) {
    m.heldout_correlation.push_back(Pearson(heldout_pred.select(1, j), heldout_rates.select(1, j)));
    m.heldout_feve.push_back(FractionOfExplainableVarianceExplained(
        heldout_pred.select(1, j), heldout_rates.select(1, j), group_of_heldout_row));
  }
}

double FractionOfExplainableVarianceExplained(const torch::Tensor& pred, const torch::Tensor& rates,
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

}  // namespace stimloop
