#include "optimizers/gradient_ascent.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/params.h"
#include <ATen/core/grad_mode.h>
#include <torch/serialize/archive.h>

namespace stimloop {
namespace {

constexpr char kFormat[] = "stimloop.gradient_ascent/1";

// How far each code coordinate must move to sweep some pixel across the
// whole [0, 1] box, from the code of a mid-gray image: 1 / max_pixel
// |d image / d code_k|, by finite differences in chunks of coordinates
// (exact for linear spaces: 1 for the pixel space, 1 / (a_uv max|B_uv|) for
// the spectral space). Adam steps are scaled by it, a diagonal
// preconditioner that puts every coordinate in pixel-box units.
torch::Tensor CodeRange(const ImageSpace& space) {
  at::NoGradGuard no_grad;
  constexpr double kDelta = 1e-3;
  const ImageShape& shape = space.shape();
  const torch::Tensor base =
      space.Encode(torch::full({1, shape.channels, shape.height, shape.width}, 0.5));
  const torch::Tensor base_image = space.Decode(base).flatten(1);
  const int64_t d = space.code_size();
  std::vector<torch::Tensor> ranges;
  for (int64_t start = 0; start < d; start += 256) {
    const int64_t n = std::min<int64_t>(256, d - start);
    torch::Tensor codes = base.repeat({n, 1});
    codes.slice(1, start, start + n) += kDelta * torch::eye(n);
    const torch::Tensor change =
        (space.Decode(codes).flatten(1) - base_image).abs().amax(1) / kDelta;
    ranges.push_back(1.0 / change.clamp_min(1e-6));
  }
  return torch::cat(ranges).clamp_max(1e6);
}

}  // namespace

GradientAscent::GradientAscent(std::shared_ptr<const ImageSpace> space,
                               std::shared_ptr<const Objective> objective,
                               std::shared_ptr<const ModelSource> models,
                               const GradientAscentParams& params, uint64_t seed)
    : space_(std::move(space)),
      objective_(std::move(objective)),
      models_(std::move(models)),
      params_(params),
      seed_(seed),
      code_range_(CodeRange(*space_)),
      jitter_(params.jitter),
      blur_(params.blur_sigma),
      constraint_(params.max_rms_contrast),
      stopper_(params.steps),
      generator_(MakeGenerator(seed, "gradient_ascent")) {}

torch::Tensor GradientAscent::Render(const torch::Tensor& codes) const {
  at::NoGradGuard no_grad;
  return QuantizeImages(constraint_(space_->Decode(space_->Project(codes))));
}

torch::Tensor GradientAscent::Ascend(const ResponseModel& model, const torch::Tensor& start_codes,
                                     at::Generator& generator,
                                     const torch::Tensor& start_members) const {
  constexpr double kBeta1 = 0.9, kBeta2 = 0.999, kEpsilon = 1e-8;  // Kingma & Ba 2015
  const int64_t n = start_codes.size(0);
  torch::Tensor codes = space_->Project(start_codes.detach().to(torch::kFloat)).clone();
  torch::Tensor m = torch::zeros_like(codes), v = torch::zeros_like(codes);
  for (int64_t step = 0; !stopper_.Stop(step) && !cancelled_; ++step) {
    codes.requires_grad_(true);
    // Forward as Render (before quantization); ClampToBox lets the gradient
    // pull pixels that saturated on the wrong side back into the box.
    torch::Tensor images = constraint_(ClampToBox(space_->DecodeUnclipped(codes)));
    if (images.requires_grad()) {
      images.register_hook([this](const torch::Tensor& g) { return blur_(g); });
    }
    const PredictedObjective predicted =
        PredictObjective(model, *objective_, jitter_(images, generator));
    torch::Tensor score = predicted.mean;
    if (params_.ucb_beta > 0) score = score + params_.ucb_beta * predicted.spread;
    if (start_members.defined()) {
      const torch::Tensor own =
          predicted.members.gather(0, start_members.clamp_min(0).unsqueeze(0)).squeeze(0);
      score = torch::where(start_members >= 0, own, score);
    }
    const torch::Tensor scale = score.detach().abs().mean() + 1e-6;
    torch::Tensor loss = -score.sum() / scale;
    if (params_.diversity > 0 && n > 1) {
      loss = loss + params_.diversity * static_cast<double>(n) * MeanPairwiseCosine(images);
    }
    loss.backward();
    const torch::Tensor gradient = codes.grad();
    codes = codes.detach();
    if (!gradient.defined()) break;  // the model ignores the image
    at::NoGradGuard no_grad;
    m = kBeta1 * m + (1 - kBeta1) * gradient;
    v = kBeta2 * v + (1 - kBeta2) * gradient * gradient;
    const double t = static_cast<double>(step + 1);
    const double progress = static_cast<double>(step) / static_cast<double>(stopper_.steps());
    const double rate = params_.learning_rate * (1.0 - 0.9 * progress);
    const torch::Tensor update = (m / (1 - std::pow(kBeta1, t))) /
                                 ((v / (1 - std::pow(kBeta2, t))).sqrt() + kEpsilon);
    codes = space_->Project(codes - rate * code_range_ * update);
  }
  return codes.detach();
}

torch::Tensor GradientAscent::InitialGuess(const ResponseModel& model, int64_t n,
                                           at::Generator& generator) const {
  const torch::Tensor codes = space_->SamplePrior(n * params_.init_candidates, generator);
  if (params_.init_candidates == 1) return codes;
  const PredictedObjective predicted = PredictObjectiveNoGrad(
      model, *objective_, constraint_(space_->Decode(space_->Project(codes))));
  const torch::Tensor score = predicted.mean + params_.ucb_beta * predicted.spread;
  // Stable order: ties keep the order of the draws.
  const torch::Tensor order = std::get<1>(score.sort(/*stable=*/true, 0, /*descending=*/true));
  return codes.index_select(0, order.slice(0, 0, n));
}

torch::Tensor GradientAscent::ThompsonMembers(int64_t n, int64_t members) const {
  const int64_t k = std::llround(params_.thompson * static_cast<double>(n));
  if (k == 0) return torch::Tensor();
  torch::Tensor assigned = torch::full({n}, -1, torch::kLong);
  for (int64_t j = 0; j < k; ++j) assigned[n - k + j] = (asks_ + j) % members;
  return assigned;
}

namespace {

int64_t VersionOf(const std::shared_ptr<const ResponseModel>& model) {
  return model == nullptr ? 0 : model->version();
}

}  // namespace

absl::Status GradientAscent::PrepareAsk(int count, int64_t first_id) {
  return memo_.Prepare(*this, count, first_id, VersionOf(models_->Latest()));
}

absl::StatusOr<std::vector<Candidate>> GradientAscent::Ask(int count, int64_t first_id) {
  if (count <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("count: ", count, " must be positive"));
  }
  const std::shared_ptr<const ResponseModel> model = models_->Latest();
  if (auto prepared = memo_.Take(*this, count, first_id, VersionOf(model))) {
    return *std::move(prepared);
  }
  std::vector<Candidate> candidates;
  if (asks_ < params_.prior_generations || model == nullptr) {
    candidates = MakeCandidates(*space_, space_->SamplePrior(count, generator_), first_id, "prior");
  } else {
    const torch::Tensor members = ThompsonMembers(count, model->num_members());
    const torch::Tensor codes =
        Ascend(*model, InitialGuess(*model, count, generator_), generator_, members);
    if (cancelled_) return absl::CancelledError("gradient_ascent: Ask cancelled");
    const torch::Tensor images = Render(codes);
    at::NoGradGuard no_grad;
    const torch::Tensor shown_codes = space_->Encode(images);
    candidates.resize(count);
    for (int i = 0; i < count; ++i) {
      Candidate& c = candidates[i];
      c.id = first_id + i;
      c.code = shown_codes[i].clone();
      c.image = images[i].clone();
      c.origin = "gradient_ascent";
    }
  }
  if (model != nullptr) {
    torch::Tensor images = torch::stack([&] {
      std::vector<torch::Tensor> v;
      for (const Candidate& c : candidates) v.push_back(c.image);
      return v;
    }());
    const torch::Tensor predicted = PredictObjectiveNoGrad(*model, *objective_, images).mean;
    for (int i = 0; i < count; ++i) {
      candidates[i].model_version = model->version();
      candidates[i].predicted_objective = predicted[i].item<double>();
    }
  }
  ledger_.Add(first_id, count);
  ++asks_;
  return candidates;
}

absl::Status GradientAscent::Tell(absl::Span<const Observation> observations) {
  return CheckObservations(observations, ledger_, name());
}

torch::Tensor GradientAscent::BestGuess() const {
  const std::shared_ptr<const ResponseModel> model = models_->Latest();
  if (model == nullptr) return {};
  std::lock_guard<std::mutex> lock(best_guess_mu_);
  if (best_guess_version_ != model->version() || !best_guess_.defined()) {
    at::Generator generator = MakeGenerator(seed_, "gradient_ascent.best_guess");
    constexpr int64_t kStarts = 8;
    const torch::Tensor images =
        Render(Ascend(*model, InitialGuess(*model, kStarts, generator), generator));
    const torch::Tensor predicted = PredictObjectiveNoGrad(*model, *objective_, images).mean;
    best_guess_ = images[predicted.argmax().item<int64_t>()].clone();
    best_guess_version_ = model->version();
  }
  return best_guess_;
}

void GradientAscent::Save(torch::serialize::OutputArchive& archive) const {
  archive.write("format", c10::IValue(std::string(kFormat)));
  SaveGenerator(archive, "generator", generator_);
  ledger_.Save(archive, "ledger");
  archive.write("asks", c10::IValue(asks_));
}

absl::Status GradientAscent::Load(torch::serialize::InputArchive& archive) {
  if (absl::Status s = CheckFormat(archive, kFormat); !s.ok()) return s;
  absl::StatusOr<at::Generator> generator = LoadGenerator(archive, "generator");
  if (!generator.ok()) return generator.status();
  absl::StatusOr<IdLedger> ledger = IdLedger::Load(archive, "ledger");
  if (!ledger.ok()) return ledger.status();
  absl::StatusOr<int64_t> asks = ReadInt(archive, "asks");
  if (!asks.ok()) return asks.status();
  generator_ = *std::move(generator);
  ledger_ = *std::move(ledger);
  asks_ = *asks;
  return absl::OkStatus();
}

double DefaultBlurSigma(const ImageShape& shape) {
  return static_cast<double>(std::min(shape.height, shape.width)) / 64.0;
}

absl::StatusOr<std::unique_ptr<Optimizer>> MakeGradientAscent(const OptimizerSpec& spec,
                                                              const OptimizerContext& context) {
  ParamReader p(spec.params, "optimizer.params");
  GradientAscentParams params;
  params.prior_generations = p.GetInt("prior_generations", 1, 0, 1000000);
  params.init_candidates = p.GetInt("init_candidates", 4, 1, 1000);
  params.steps = p.GetInt("steps", 100, 1, 10000);
  params.learning_rate = p.Get("learning_rate", 0.06, 1e-9, 10);
  params.jitter = p.GetInt("jitter", 0, 0, 64);
  params.blur_sigma = p.Get("blur_sigma", DefaultBlurSigma(context.image_space->shape()), 0, 16);
  params.max_rms_contrast = p.Get("max_rms_contrast", 0.0, 0, 0.5);
  params.diversity = p.Get("diversity", 0.1, 0, 100);
  params.ucb_beta = p.Get("ucb_beta", 0.0, 0, 100);
  params.thompson = p.Get("thompson", 0.5, 0, 1);
  if (absl::Status s = p.Finish(); !s.ok()) return s;
  if (context.models == nullptr) {
    return absl::FailedPreconditionError(
        "optimizer.name: gradient_ascent needs a surrogate model source");
  }
  return std::make_unique<GradientAscent>(context.image_space, context.objective, context.models,
                                          params, context.seed);
}

}  // namespace stimloop
