#include "models/torchscript_model.h"

#include <fstream>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/echo.h"
#include "models/gabor_frontend.h"

namespace stimloop {
namespace {

constexpr char kFrontEndField[] = "config.surrogate.frontend_path";
constexpr char kModelField[] = "config.surrogate.model_path";

absl::Status Invalid(const char* field, const std::string& path, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", QuotedEcho(path), " ", what));
}

std::string Shape(const torch::Tensor& t) { return absl::StrJoin(t.sizes(), ", "); }

// The first line of a LibTorch error, without its backtrace.
std::string Brief(const c10::Error& e) {
  std::string what = e.what_without_backtrace();
  if (size_t nl = what.find('\n'); nl != std::string::npos) what.resize(nl);
  return what;
}

// Mid-gray and a horizontal ramp, [2, C, H, W].
torch::Tensor DummyImages(const ModelImageShape& s) {
  torch::Tensor gray = torch::full({1, s.channels, s.height, s.width}, 0.5f);
  torch::Tensor ramp = torch::linspace(0, 1, s.width).view({1, 1, 1, s.width})
                           .expand({1, s.channels, s.height, s.width});
  return torch::cat({gray, ramp}, 0).contiguous();
}

absl::StatusOr<torch::jit::Module> LoadModule(const char* field, const std::string& path) {
  if (path.empty()) return absl::InvalidArgumentError(absl::StrCat(field, ": empty path"));
  if (!std::ifstream(path).good()) return Invalid(field, path, "does not exist or is unreadable");
  try {
    torch::jit::Module module = torch::jit::load(path, torch::kCPU);
    module.eval();
    for (torch::Tensor p : module.parameters()) p.set_requires_grad(false);
    if (!module.find_method("forward")) return Invalid(field, path, "has no forward method");
    return module;
  } catch (const c10::Error& e) {
    return Invalid(field, path, absl::StrCat("is not a loadable TorchScript module: ", Brief(e)));
  } catch (const std::exception& e) {
    return Invalid(field, path, absl::StrCat("is not a loadable TorchScript module: ", e.what()));
  }
}

// Runs forward on the dummy batch; the output must be one finite float tensor.
absl::StatusOr<torch::Tensor> RunDummy(const char* field, const std::string& path,
                                       torch::jit::Module& module, const ModelImageShape& shape) {
  const torch::Tensor images = DummyImages(shape);
  c10::IValue out;
  try {
    torch::NoGradGuard no_grad;
    out = module.forward({images});
  } catch (const std::exception& e) {
    std::string what = e.what();
    if (size_t nl = what.find('\n'); nl != std::string::npos) what.resize(nl);
    return Invalid(field, path,
                   absl::StrCat("failed on a dummy batch [2, ", shape.channels, ", ", shape.height,
                                ", ", shape.width, "] of images in [0, 1]: ", what));
  }
  if (!out.isTensor()) {
    return Invalid(field, path, absl::StrCat("forward must return one tensor, got ",
                                             out.tagKind()));
  }
  torch::Tensor t = out.toTensor();
  if (!t.is_floating_point()) {
    return Invalid(field, path, absl::StrCat("forward must return a float tensor, got ",
                                             c10::toString(t.scalar_type())));
  }
  if (t.dim() >= 1 && t.size(0) != images.size(0)) {
    return Invalid(field, path, absl::StrCat("forward returned [", Shape(t), "] for a batch of ",
                                             images.size(0), " images: the first dimension must be N"));
  }
  if (t.numel() > 0 && !torch::isfinite(t).all().item<bool>()) {
    return Invalid(field, path, "forward returned values that are not finite (NaN or Inf)");
  }
  return t;
}

}  // namespace

TorchScriptFrontEnd::TorchScriptFrontEnd(std::string path, torch::jit::Module module,
                                         FeatureShape shape)
    : path_(std::move(path)), module_(std::move(module)), shape_(shape) {}

absl::StatusOr<std::shared_ptr<const TorchScriptFrontEnd>> TorchScriptFrontEnd::Load(
    const std::string& path, const ModelImageShape& shape) {
  absl::StatusOr<torch::jit::Module> module = LoadModule(kFrontEndField, path);
  if (!module.ok()) return module.status();
  absl::StatusOr<torch::Tensor> out = RunDummy(kFrontEndField, path, *module, shape);
  if (!out.ok()) return out.status();
  if (out->dim() != 4 || out->numel() == 0) {
    return Invalid(kFrontEndField, path,
                   absl::StrCat("forward must return features [N, F, h, w] (rank 4, non-empty); "
                                "got [", Shape(*out), "]"));
  }
  FeatureShape features{out->size(1), out->size(2), out->size(3)};
  return std::shared_ptr<const TorchScriptFrontEnd>(
      new TorchScriptFrontEnd(path, std::move(*module), features));
}

torch::Tensor TorchScriptFrontEnd::Forward(const torch::Tensor& images) const {
  return module_.forward({images.to(torch::kFloat)}).toTensor().to(torch::kFloat);
}

TorchScriptSurrogate::TorchScriptSurrogate(torch::jit::Module module)
    : module_(std::move(module)) {}

absl::StatusOr<std::shared_ptr<const TorchScriptSurrogate>> TorchScriptSurrogate::Load(
    const std::string& path, const ModelImageShape& shape, int64_t num_neurons) {
  absl::StatusOr<torch::jit::Module> module = LoadModule(kModelField, path);
  if (!module.ok()) return module.status();
  absl::StatusOr<torch::Tensor> out = RunDummy(kModelField, path, *module, shape);
  if (!out.ok()) return out.status();
  if (out->dim() != 2 || out->size(1) != num_neurons) {
    return Invalid(kModelField, path,
                   absl::StrCat("forward must return rates [N, num_neurons] = [N, ", num_neurons,
                                "]; got [", Shape(*out), "]"));
  }
  if ((*out < 0).any().item<bool>()) {
    return Invalid(kModelField, path,
                   absl::StrCat("forward returned negative rates (min ",
                                out->min().item<double>(), "); rates must be >= 0"));
  }
  return std::shared_ptr<const TorchScriptSurrogate>(new TorchScriptSurrogate(std::move(*module)));
}

torch::Tensor TorchScriptSurrogate::PredictMembers(const torch::Tensor& images) const {
  return module_.forward({images.to(torch::kFloat)}).toTensor().to(torch::kFloat).unsqueeze(0);
}

absl::StatusOr<std::shared_ptr<const FrontEnd>> MakeFrontEnd(const SurrogateSpec& spec,
                                                             const ModelImageShape& shape) {
  if (!spec.model_path.empty()) {
    return absl::FailedPreconditionError(
        "config.surrogate.model_path: a whole TorchScript model has no front end");
  }
  if (!spec.frontend_path.empty()) {
    absl::StatusOr<std::shared_ptr<const TorchScriptFrontEnd>> front_end =
        TorchScriptFrontEnd::Load(spec.frontend_path, shape);
    if (!front_end.ok()) return front_end.status();
    return std::shared_ptr<const FrontEnd>(*std::move(front_end));
  }
  return std::shared_ptr<const FrontEnd>(
      std::make_shared<const GaborFrontEnd>(spec.gabor, shape.channels, shape.height, shape.width));
}

}  // namespace stimloop
