#include "optimizers/mei_parts.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include <torch/csrc/autograd/custom_function.h>

namespace stimloop {
namespace {

struct ClampToBoxFunction : public torch::autograd::Function<ClampToBoxFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* context,
                               const torch::Tensor& images) {
    context->save_for_backward({images});
    return images.clamp(0.0, 1.0);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* context,
                                                 torch::autograd::variable_list gradients) {
    const torch::Tensor x = context->get_saved_variables()[0];
    const torch::Tensor& g = gradients[0];
    const torch::Tensor passes =
        ((x >= 0) & (x <= 1)) | ((x > 1) & (g > 0)) | ((x < 0) & (g < 0));
    return {g * passes};
  }
};

}  // namespace

torch::Tensor ClampToBox(const torch::Tensor& images) {
  if (!images.requires_grad()) return images.clamp(0.0, 1.0);
  return ClampToBoxFunction::apply(images);
}

torch::Tensor Jitter::operator()(const torch::Tensor& images, at::Generator& generator) const {
  if (max_shift_ == 0) return images;
  const torch::Tensor shifts = torch::randint(-max_shift_, max_shift_ + 1, {2}, generator,
                                              torch::TensorOptions().dtype(torch::kLong));
  return torch::roll(images, {shifts[0].item<int64_t>(), shifts[1].item<int64_t>()}, {2, 3});
}

GradientBlur::GradientBlur(double sigma) : sigma_(sigma) {
  if (sigma_ <= 0) return;
  const int64_t radius = static_cast<int64_t>(std::ceil(3 * sigma_));
  const torch::Tensor x = torch::arange(-radius, radius + 1, torch::kFloat);
  kernel_ = torch::exp(-(x * x) / (2 * sigma_ * sigma_));
  kernel_ = kernel_ / kernel_.sum();
}

torch::Tensor GradientBlur::operator()(const torch::Tensor& gradient) const {
  if (!kernel_.defined()) return gradient;
  const int64_t channels = gradient.size(1);
  const int64_t radius = (kernel_.size(0) - 1) / 2;
  const torch::Tensor k = kernel_.to(gradient.options());
  const torch::Tensor kh = k.view({1, 1, -1, 1}).expand({channels, 1, -1, 1});
  const torch::Tensor kw = k.view({1, 1, 1, -1}).expand({channels, 1, 1, -1});
  torch::Tensor g = at::replication_pad2d(gradient, {0, 0, radius, radius});
  g = at::conv2d(g, kh, c10::optional<at::Tensor>(), at::IntArrayRef{1}, at::IntArrayRef{0},
                 at::IntArrayRef{1}, channels);
  g = at::replication_pad2d(g, {radius, radius, 0, 0});
  return at::conv2d(g, kw, c10::optional<at::Tensor>(), at::IntArrayRef{1},
                    at::IntArrayRef{0}, at::IntArrayRef{1}, channels);
}

torch::Tensor ImageConstraint::operator()(const torch::Tensor& images) const {
  torch::Tensor x = images;
  if (max_rms_contrast_ > 0) {
    const torch::Tensor mean = x.mean({1, 2, 3}, /*keepdim=*/true);
    const torch::Tensor deviation = x - mean;
    const torch::Tensor rms = deviation.pow(2).mean({1, 2, 3}, true).add(1e-12).sqrt();
    const torch::Tensor scale = torch::clamp_max(max_rms_contrast_ / rms, 1.0);
    x = mean + deviation * scale;
  }
  return ClampToBox(x);
}

PredictedObjective PredictObjective(const ResponseModel& model, const Objective& objective,
                                    const torch::Tensor& images) {
  const torch::Tensor rates = model.PredictMembers(images);  // [M, N, K]
  const int64_t members = rates.size(0), n = rates.size(1);
  const torch::Tensor per_member =
      objective.Evaluate(rates.reshape({members * n, rates.size(2)})).view({members, n});
  PredictedObjective out;
  out.mean = per_member.mean(0);
  out.spread = members > 1 ? per_member.std(0, /*unbiased=*/false) : torch::zeros_like(out.mean);
  out.members = per_member;
  return out;
}

PredictedObjective PredictObjectiveNoGrad(const ResponseModel& model, const Objective& objective,
                                          const torch::Tensor& images, int64_t chunk) {
  at::NoGradGuard no_grad;
  std::vector<torch::Tensor> means, spreads, members;
  for (int64_t start = 0; start < images.size(0); start += chunk) {
    const int64_t end = std::min(images.size(0), start + chunk);
    PredictedObjective p = PredictObjective(model, objective, images.slice(0, start, end));
    means.push_back(p.mean.to(torch::kDouble));
    spreads.push_back(p.spread.to(torch::kDouble));
    members.push_back(p.members.to(torch::kDouble));
  }
  if (means.empty()) {
    return {torch::empty({0}, torch::kDouble), torch::empty({0}, torch::kDouble),
            torch::empty({model.num_members(), 0}, torch::kDouble)};
  }
  return {torch::cat(means), torch::cat(spreads), torch::cat(members, 1)};
}

torch::Tensor CosineSimilarities(const torch::Tensor& images) {
  const torch::Tensor x = (images - 0.5).flatten(1);
  const torch::Tensor unit = x / x.norm(2, 1, /*keepdim=*/true).clamp_min(1e-8);
  return unit.matmul(unit.t());
}

torch::Tensor MeanPairwiseCosine(const torch::Tensor& images) {
  const int64_t n = images.size(0);
  if (n < 2) return torch::zeros({}, images.options());
  const torch::Tensor s = CosineSimilarities(images);
  return (s.sum() - s.diagonal().sum()) / static_cast<double>(n * (n - 1));
}

}  // namespace stimloop
