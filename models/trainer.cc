#include "models/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <map>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace stimloop {
namespace {

constexpr int64_t kFeatureChunk = 128;

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

// Whether `previous` can start a fit of `options` with `ensemble_size`
// members on `front_end`: the same members, heads and front end.
bool CanWarmStart(const Surrogate* previous, const SurrogateHeadOptions& options,
                  int64_t ensemble_size, const FrontEnd& front_end) {
  if (previous == nullptr || previous->num_members() != ensemble_size ||
      previous->front_end()->Describe() != front_end.Describe()) {
    return false;
  }
  const SurrogateHeadOptions& o = previous->members().front()->options();
  return o.features.channels == options.features.channels &&
         o.features.height == options.features.height &&
         o.features.width == options.features.width &&
         o.core_channels == options.core_channels && o.num_neurons == options.num_neurons &&
         o.output == options.output && o.readout == options.readout &&
         o.normalization == options.normalization;
}

}  // namespace

absl::StatusOr<std::shared_ptr<const Surrogate>> FitSurrogate(
    const TrainingData& data, const SurrogateSpec& spec,
    std::shared_ptr<const FrontEnd> front_end, int64_t version, uint64_t seed,
    const std::atomic<bool>* cancel, FitMetrics* metrics, const Surrogate* warm_start,
    FeatureCache* cache) {
  if (front_end == nullptr) return absl::InvalidArgumentError("front_end: null");
  absl::StatusOr<TrainingSplit> split =
      SplitTrainingData(data, spec.min_trials, spec.holdout_fraction, seed);
  if (!split.ok()) return split.status();
  const int64_t n = data.images.size(0);
  const std::vector<int64_t>& group = split->group;
  const int64_t num_groups = split->num_groups;
  const torch::Tensor& group_of = split->group_of;
  const torch::Tensor& heldout_group = split->heldout_group;
  const torch::Tensor& heldout_groups = split->heldout_groups;
  const torch::Tensor& train_trials = split->train_trials;
  const torch::Tensor& heldout_trials = split->heldout_trials;
  const int64_t num_heldout_groups = heldout_groups.size(0);
  torch::NoGradGuard outer_no_grad;  // re-enabled only around training steps
  const torch::Tensor rates = data.rates.to(torch::kFloat).contiguous();
  const int64_t num_neurons = rates.size(1);

  // Features once per distinct stimulus.
  std::vector<int64_t> first_trial(num_groups, -1);
  for (int64_t i = 0; i < n; ++i) {
    if (first_trial[group[i]] < 0) first_trial[group[i]] = i;
  }
  const torch::Tensor unique_images =
      data.images.index_select(0, torch::tensor(first_trial, torch::kLong)).to(torch::kFloat);
  torch::Tensor features;  // [G, F, h, w]
  if (cache != nullptr && !data.stimulus_ids.empty() && cache->front_end() == front_end) {
    std::vector<int64_t> group_ids(static_cast<size_t>(num_groups));
    for (int64_t g = 0; g < num_groups; ++g) group_ids[g] = data.stimulus_ids[first_trial[g]];
    absl::StatusOr<torch::Tensor> cached = cache->Features(unique_images, group_ids, cancel);
    if (!cached.ok()) {
      if (absl::IsCancelled(cached.status())) return FitCancelledStatus();
      return absl::InvalidArgumentError(
          absl::StrCat("training_data.images: ", cached.status().message()));
    }
    features = *std::move(cached);
  } else {
    std::vector<torch::Tensor> chunks;
    try {
      for (int64_t start = 0; start < num_groups; start += kFeatureChunk) {
        if (FitCancelled(cancel)) return FitCancelledStatus();
        chunks.push_back(front_end->Forward(
            unique_images.narrow(0, start, std::min(kFeatureChunk, num_groups - start))));
      }
    } catch (const c10::Error& e) {
      return absl::InvalidArgumentError(absl::StrCat("training_data.images: the front end '",
                                                     front_end->Describe(), "' rejects them: ",
                                                     e.what_without_backtrace()));
    }
    features = torch::cat(chunks, 0).contiguous();
  }

  SurrogateHeadOptions options;
  options.features = front_end->feature_shape();
  options.core_channels = spec.core_channels;
  options.num_neurons = num_neurons;
  options.output = spec.output;
  options.readout = spec.readout;
  options.normalization = spec.normalization;
  if (features.size(1) != options.features.channels ||
      features.size(2) != options.features.height || features.size(3) != options.features.width) {
    return absl::InvalidArgumentError(absl::StrCat(
        "training_data.images: [", absl::StrJoin(data.images.sizes(), ", "),
        "] give features [", absl::StrJoin(features.sizes(), ", "), "]; the front end '",
        front_end->Describe(), "' expects images giving [N, ", options.features.channels, ", ",
        options.features.height, ", ", options.features.width, "]"));
  }
  const bool warm = spec.warm_start && CanWarmStart(warm_start, options, spec.ensemble_size,
                                                    *front_end);

  // Standardization and initial rates from the training split; a warm
  // start keeps the previous version's standardization (its heads' inputs).
  const torch::Tensor train_groups =
      torch::nonzero(~heldout_group).flatten();
  torch::Tensor feature_mean, feature_scale;
  if (warm) {
    feature_mean = warm_start->members().front()->feature_mean().flatten();
    feature_scale = warm_start->members().front()->feature_scale().flatten();
  } else {
    const torch::Tensor train_features = features.index_select(0, train_groups);
    feature_mean = train_features.mean({0, 2, 3});
    feature_scale = train_features.std({0, 2, 3}, /*unbiased=*/false);
    feature_scale =
        torch::where(feature_scale > 1e-8, feature_scale, torch::ones_like(feature_scale));
  }
  const torch::Tensor train_rates = rates.index_select(0, train_trials);
  const torch::Tensor mean_rate = train_rates.mean(0).clamp_min(1e-3);
  const torch::Tensor neuron_weight = NeuronWeights(train_rates, spec.loss);

  const torch::Tensor heldout_rates = rates.index_select(0, heldout_trials);
  const torch::Tensor heldout_group_idx = group_of.index_select(0, heldout_trials);
  // Held-out features once per stimulus, and each held-out trial's row in them.
  const torch::Tensor heldout_features = features.index_select(0, heldout_groups);  // for metrics
  torch::Tensor row_of_group = torch::full({num_groups}, -1, torch::kLong);
  row_of_group.index_copy_(0, heldout_groups, torch::arange(num_heldout_groups, torch::kLong));
  const torch::Tensor heldout_rows = row_of_group.index_select(0, heldout_group_idx);

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
    auto gen = at::make_generator<at::CPUGeneratorImpl>(FitStream(seed, 1 + member));
    SurrogateHead head(options);
    head->Reset(feature_mean, feature_scale, mean_rate, gen, centers);
    if (warm) Restore(head, Snapshot(warm_start->members()[static_cast<size_t>(member)]));
    const torch::Tensor boot =
        train_trials.index_select(0, torch::randint(n_train, {n_train}, gen, torch::kLong));
    torch::optim::Adam adam(head->parameters(), torch::optim::AdamOptions(spec.learning_rate));
    auto heldout_loss = [&] {
      const torch::Tensor pred =
          head->ForwardPositionMajor(heldout_standardized).index_select(0, heldout_rows);
      return WeightedLoss(pred, heldout_rates, neuron_weight, spec.loss).item<double>();
    };
    // A warm member keeps its starting point unless training improves on it.
    double best = warm ? heldout_loss() : std::numeric_limits<double>::infinity();
    ParamState best_state = Snapshot(head);
    const int64_t patience = warm ? spec.warm_patience : spec.patience;
    int64_t since_best = 0, epoch = 0;
    for (; epoch < spec.max_epochs && since_best < patience; ++epoch) {
      const torch::Tensor order = boot.index_select(0, torch::randperm(n_train, gen, torch::kLong));
      for (int64_t start = 0; start < n_train; start += spec.batch_size) {
        if (FitCancelled(cancel)) return FitCancelledStatus();
        const torch::Tensor trials =
            order.narrow(0, start, std::min(spec.batch_size, n_train - start));
        const torch::Tensor x = standardized.index_select(0, group_of.index_select(0, trials));
        const torch::Tensor y = rates.index_select(0, trials);
        torch::AutoGradMode grad(true);
        adam.zero_grad();
        // A Gaussian readout reads each trial at its own draw (Lurz et al. 2021).
        const torch::Tensor position_noise =
            spec.readout == ReadoutMask::kGaussian
                ? torch::randn({trials.size(0), num_neurons, 2}, gen)
                : torch::Tensor();
        torch::Tensor loss = WeightedLoss(head->ForwardPositionMajor(x, position_noise), y,
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
      const double heldout = heldout_loss();
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
  const torch::Tensor pred =
      model->PredictMembersFromFeatures(heldout_features).mean(0).index_select(0, heldout_rows);
  FillHeldOutMetrics(*split, rates, pred, neuron_weight, spec.loss, &m);
  if (metrics != nullptr) *metrics = std::move(m);
  return model;
}

}  // namespace stimloop
