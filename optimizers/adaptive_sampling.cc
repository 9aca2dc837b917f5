#include "optimizers/adaptive_sampling.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "optimizers/mei_parts.h"
#include "base/params.h"
#include <ATen/core/grad_mode.h>
#include <torch/serialize/archive.h>

namespace stimloop {
namespace {

constexpr char kFormat[] = "stimloop.adaptive_sampling/1";

}  // namespace

AdaptiveSampling::AdaptiveSampling(std::shared_ptr<const ImageSpace> space,
                                   std::shared_ptr<const Objective> objective,
                                   std::shared_ptr<const ModelSource> models,
                                   std::vector<NamedImage> pool,
                                   const AdaptiveSamplingParams& params, uint64_t seed)
    : space_(std::move(space)),
      objective_(std::move(objective)),
      models_(std::move(models)),
      pool_(std::move(pool)),
      params_(params),
      generator_(MakeGenerator(seed, "adaptive_sampling")),
      shown_(pool_.size(), false) {
  if (!pool_.empty()) {
    std::vector<torch::Tensor> images;
    images.reserve(pool_.size());
    for (const NamedImage& image : pool_) images.push_back(image.image.to(torch::kFloat));
    pool_images_ = torch::stack(images);
  }
}

std::vector<int64_t> AdaptiveSampling::SelectGreedy(const torch::Tensor& utility,
                                                    const torch::Tensor& similarity,
                                                    const std::vector<bool>& eligible, int count,
                                                    double similarity_penalty) {
  const torch::Tensor u = utility.to(torch::kDouble).contiguous();
  const torch::Tensor s = similarity.to(torch::kDouble).clamp_min(0).contiguous();
  const int64_t p = u.size(0);
  const double* up = u.data_ptr<double>();
  const double* sp = s.data_ptr<double>();
  std::vector<double> penalty(p, 0.0);  // max similarity to any chosen image
  std::vector<bool> open = eligible;
  std::vector<int64_t> chosen;
  for (int k = 0; k < count; ++k) {
    int64_t best = -1;
    double best_value = -std::numeric_limits<double>::infinity();
    for (int64_t i = 0; i < p; ++i) {
      if (!open[i]) continue;
      const double value = up[i] - similarity_penalty * penalty[i];
      if (value > best_value) {
        best_value = value;
        best = i;
      }
    }
    if (best < 0) break;
    chosen.push_back(best);
    open[best] = false;
    for (int64_t i = 0; i < p; ++i) penalty[i] = std::max(penalty[i], sp[best * p + i]);
  }
  return chosen;
}

namespace {

int64_t VersionOf(const std::shared_ptr<const ResponseModel>& model) {
  return model == nullptr ? 0 : model->version();
}

}  // namespace

absl::Status AdaptiveSampling::PrepareAsk(int count, int64_t first_id) {
  return memo_.Prepare(*this, count, first_id, VersionOf(models_->Latest()));
}

absl::StatusOr<std::vector<Candidate>> AdaptiveSampling::Ask(int count, int64_t first_id) {
  if (count <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("count: ", count, " must be positive"));
  }
  const std::shared_ptr<const ResponseModel> model = models_->Latest();
  if (auto prepared = memo_.Take(*this, count, first_id, VersionOf(model))) {
    return *std::move(prepared);
  }
  const bool use_model = model != nullptr && asks_ >= params_.prior_generations;
  at::NoGradGuard no_grad;

  std::vector<Candidate> candidates;
  torch::Tensor predicted;  // [count] mean objective, when a model exists
  if (!pool_.empty()) {
    std::vector<bool> eligible(pool_.size(), true);
    if (!params_.allow_repeats) {
      for (size_t i = 0; i < pool_.size(); ++i) eligible[i] = !shown_[i];
    }
    const int64_t left = std::count(eligible.begin(), eligible.end(), true);
    if (left < count) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "optimizer.candidate_pool_dir: ", left, " of ", pool_.size(),
          " pool images are left unshown, the generation needs ", count,
          " (set optimizer.params.allow_repeats to 1 to show images again)"));
    }
    std::vector<int64_t> chosen;
    PredictedObjective all;
    if (use_model) {
      all = PredictObjectiveNoGrad(*model, *objective_, pool_images_);
      torch::Tensor utility = all.mean + params_.beta * all.spread;
      chosen = SelectGreedy(utility, CosineSimilarities(pool_images_), eligible, count,
                            params_.similarity_penalty * (utility.max() - utility.min())
                                                             .item<double>());
    } else {
      const torch::Tensor order = torch::randperm(static_cast<int64_t>(pool_.size()), generator_);
      for (int64_t i = 0; i < order.size(0) && static_cast<int>(chosen.size()) < count; ++i) {
        const int64_t index = order[i].item<int64_t>();
        if (eligible[index]) chosen.push_back(index);
      }
    }
    candidates.resize(count);
    for (int i = 0; i < count; ++i) {
      const int64_t index = chosen[i];
      Candidate& c = candidates[i];
      c.id = first_id + i;
      c.image = pool_[index].image.clone();
      c.origin = absl::StrCat("pool:", pool_[index].name);
      shown_[index] = true;
    }
  } else if (use_model) {
    const torch::Tensor codes = space_->Project(space_->SamplePrior(params_.pool_size, generator_));
    const torch::Tensor images = QuantizeImages(space_->Decode(codes));
    const PredictedObjective all = PredictObjectiveNoGrad(*model, *objective_, images);
    const torch::Tensor utility = all.mean + params_.beta * all.spread;
    const std::vector<int64_t> chosen =
        SelectGreedy(utility, CosineSimilarities(images),
                     std::vector<bool>(params_.pool_size, true), count,
                     params_.similarity_penalty * (utility.max() - utility.min()).item<double>());
    if (static_cast<int>(chosen.size()) < count) {
      return absl::InvalidArgumentError(
          absl::StrCat("optimizer.params.pool_size: ", params_.pool_size,
                       " prior draws cannot fill a generation of ", count));
    }
    const torch::Tensor picked = images.index_select(0, torch::tensor(chosen));
    const torch::Tensor picked_codes = space_->Encode(picked);
    candidates.resize(count);
    for (int i = 0; i < count; ++i) {
      Candidate& c = candidates[i];
      c.id = first_id + i;
      c.code = picked_codes[i].clone();
      c.image = picked[i].clone();
      c.origin = "adaptive_sampling";
    }
  } else {
    candidates = MakeCandidates(*space_, space_->SamplePrior(count, generator_), first_id, "prior");
  }

  if (model != nullptr) {
    std::vector<torch::Tensor> images;
    for (const Candidate& c : candidates) images.push_back(c.image);
    predicted = PredictObjectiveNoGrad(*model, *objective_, torch::stack(images)).mean;
    for (int i = 0; i < count; ++i) {
      candidates[i].model_version = model->version();
      candidates[i].predicted_objective = predicted[i].item<double>();
    }
  }
  ledger_.Add(first_id, count);
  ++asks_;
  return candidates;
}

absl::Status AdaptiveSampling::Tell(absl::Span<const Observation> observations) {
  return CheckObservations(observations, ledger_, name());
}

torch::Tensor AdaptiveSampling::BestGuess() const {
  const std::shared_ptr<const ResponseModel> model = models_->Latest();
  if (model == nullptr || pool_.empty()) return {};
  const PredictedObjective all = PredictObjectiveNoGrad(*model, *objective_, pool_images_);
  return pool_[all.mean.argmax().item<int64_t>()].image;
}

void AdaptiveSampling::Save(torch::serialize::OutputArchive& archive) const {
  archive.write("format", c10::IValue(std::string(kFormat)));
  SaveGenerator(archive, "generator", generator_);
  ledger_.Save(archive, "ledger");
  archive.write("asks", c10::IValue(asks_));
  torch::Tensor shown = torch::zeros({static_cast<int64_t>(shown_.size())}, torch::kUInt8);
  for (size_t i = 0; i < shown_.size(); ++i) shown[i] = shown_[i] ? 1 : 0;
  archive.write("shown", shown);
}

absl::Status AdaptiveSampling::Load(torch::serialize::InputArchive& archive) {
  if (absl::Status s = CheckFormat(archive, kFormat); !s.ok()) return s;
  absl::StatusOr<at::Generator> generator = LoadGenerator(archive, "generator");
  if (!generator.ok()) return generator.status();
  absl::StatusOr<IdLedger> ledger = IdLedger::Load(archive, "ledger");
  if (!ledger.ok()) return ledger.status();
  absl::StatusOr<int64_t> asks = ReadInt(archive, "asks");
  if (!asks.ok()) return asks.status();
  absl::StatusOr<torch::Tensor> shown = ReadTensor(archive, "shown");
  if (!shown.ok()) return shown.status();
  if (shown->dim() != 1 || shown->size(0) != static_cast<int64_t>(pool_.size())) {
    return absl::DataLossError(absl::StrCat("optimizer state: 'shown' has ", shown->numel(),
                                            " entries, the pool ", pool_.size(), " images"));
  }
  const torch::Tensor flags = shown->to(torch::kUInt8).contiguous();
  generator_ = *std::move(generator);
  ledger_ = *std::move(ledger);
  asks_ = *asks;
  for (size_t i = 0; i < shown_.size(); ++i) shown_[i] = flags.data_ptr<uint8_t>()[i] != 0;
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Optimizer>> MakeAdaptiveSampling(const OptimizerSpec& spec,
                                                                const OptimizerContext& context) {
  ParamReader p(spec.params, "optimizer.params");
  AdaptiveSamplingParams params;
  params.prior_generations = p.GetInt("prior_generations", 1, 0, 1000000);
  params.beta = p.Get("beta", 0.5, 0, 100);
  params.similarity_penalty = p.Get("similarity_penalty", 0.5, 0, 100);
  params.pool_size = p.GetInt("pool_size", 1000, 1, 100000);
  params.allow_repeats = p.GetInt("allow_repeats", 0, 0, 1) != 0;
  if (absl::Status s = p.Finish(); !s.ok()) return s;
  if (context.models == nullptr) {
    return absl::FailedPreconditionError(
        "optimizer.name: adaptive_sampling needs a surrogate model source");
  }
  std::vector<NamedImage> pool;
  if (!spec.candidate_pool_dir.empty()) {
    auto loaded = LoadImageFolder(spec.candidate_pool_dir, context.image_space->shape(),
                                  "optimizer.candidate_pool_dir");
    if (!loaded.ok()) return loaded.status();
    pool = *std::move(loaded);
  }
  return std::make_unique<AdaptiveSampling>(context.image_space, context.objective, context.models,
                                            std::move(pool), params, context.seed);
}

}  // namespace stimloop
