// Known response models for testing the model-based optimizers: their
// optima are known in closed form, and a fixed model source hands them out.
#ifndef STIMLOOP_TESTS_OPTIMIZERS_FAKE_MODELS_H_
#define STIMLOOP_TESTS_OPTIMIZERS_FAKE_MODELS_H_

#include <cmath>
#include <cstdint>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "models/response_model.h"
#include "optimizers/optimizer.h"
#include <torch/serialize/archive.h>
#include <torch/types.h>

namespace stimloop::testing {

// A Gabor pattern [C, H, W] (zero mean, unit max), wavelength in pixels.
inline torch::Tensor GaborTemplate(int64_t channels, int64_t size, double wavelength,
                                   double orientation) {
  const torch::Tensor coords = torch::arange(size, torch::kDouble) - (size - 1) / 2.0;
  const torch::Tensor y = coords.view({-1, 1}).expand({size, size});
  const torch::Tensor x = coords.view({1, -1}).expand({size, size});
  const torch::Tensor u = x * std::cos(orientation) + y * std::sin(orientation);
  const double sigma = size / 6.0;
  torch::Tensor g = torch::exp(-(x * x + y * y) / (2 * sigma * sigma)) *
                    torch::cos(2 * M_PI * u / wavelength);
  g = g - g.mean();
  g = g / g.abs().max();
  return g.to(torch::kFloat).unsqueeze(0).expand({channels, size, size}).contiguous();
}

// A linear-nonlinear "simple cell" ensemble: member m has the template
// scaled by (1 + spread * m); rate = peak * (relu(<w_m, x - 0.5>) / d*)^2,
// d* = 0.5 * sum|w_0|, so the member-0 optimum over the [0, 1] box is
// x = (w > 0), with rate `peak`. One neuron.
class TemplateModel : public ResponseModel {
 public:
  TemplateModel(torch::Tensor w, int64_t version, int64_t members = 3, double spread = 0.1,
                double peak = 50)
      : w_(std::move(w)), version_(version), members_(members), spread_(spread), peak_(peak) {
    scale_ = 0.5 * w_.abs().sum().item<double>();
  }
  int64_t version() const override { return version_; }
  int64_t num_members() const override { return members_; }
  torch::Tensor PredictMembers(const torch::Tensor& images) const override {
    const torch::Tensor drive = (images - 0.5).flatten(1).matmul(w_.flatten()) / scale_;
    std::vector<torch::Tensor> members;
    for (int64_t m = 0; m < members_; ++m) {
      members.push_back(peak_ * (drive * (1 + spread_ * m)).clamp_min(0).pow(2));
    }
    return torch::stack(members).unsqueeze(2);  // [M, N, 1]
  }
  torch::Tensor Optimum() const { return (w_ > 0).to(torch::kFloat); }
  double peak() const { return peak_; }

 private:
  torch::Tensor w_;
  int64_t version_, members_;
  double spread_, peak_, scale_;
};

// Predicts `gain` * mean pixel value (member m: times 1 + 0.1 m).
class BrightnessModel : public ResponseModel {
 public:
  explicit BrightnessModel(int64_t version, double gain = 50) : version_(version), gain_(gain) {}
  int64_t version() const override { return version_; }
  int64_t num_members() const override { return 2; }
  torch::Tensor PredictMembers(const torch::Tensor& images) const override {
    const torch::Tensor mean = images.flatten(1).mean(1) * gain_;
    return torch::stack({mean, mean * 1.1}).unsqueeze(2);
  }

 private:
  int64_t version_;
  double gain_;
};

// Hands out whatever model the test sets.
class FixedModelSource : public ModelSource {
 public:
  std::shared_ptr<const ResponseModel> Latest() const override { return model_; }
  void Set(std::shared_ptr<const ResponseModel> model) { model_ = std::move(model); }

 private:
  std::shared_ptr<const ResponseModel> model_;
};

inline torch::Tensor StackImages(const std::vector<Candidate>& candidates) {
  std::vector<torch::Tensor> images;
  for (const Candidate& c : candidates) images.push_back(c.image);
  return torch::stack(images);
}

inline std::string SaveState(const Optimizer& optimizer) {
  torch::serialize::OutputArchive archive;
  optimizer.Save(archive);
  std::ostringstream out;
  archive.save_to(out);
  return out.str();
}

inline absl::Status LoadState(Optimizer& optimizer, const std::string& bytes) {
  torch::serialize::InputArchive archive;
  std::istringstream in(bytes);
  archive.load_from(in);
  return optimizer.Load(archive);
}

}  // namespace stimloop::testing

#endif  // STIMLOOP_TESTS_OPTIMIZERS_FAKE_MODELS_H_
