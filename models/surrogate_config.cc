#include "models/surrogate_config.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace stimloop {

void ReadSurrogateParams(ParamReader& r, SurrogateSpec* spec) {
  SurrogateSpec& s = *spec;
  s.ensemble_size = r.GetInt("ensemble_size", s.ensemble_size, 1, 32);
  s.max_epochs = r.GetInt("max_epochs", s.max_epochs, 1, 100000);
  s.patience = r.GetInt("patience", s.patience, 1, 100000);
  s.warm_start = r.GetInt("warm_start", s.warm_start ? 1 : 0, 0, 1) != 0;
  s.warm_patience = r.GetInt("warm_patience", s.warm_patience, 1, 100000);
  s.feature_cache = r.GetInt("feature_cache", s.feature_cache ? 1 : 0, 0, 1) != 0;
  s.batch_size = r.GetInt("batch_size", s.batch_size, 1, 65536);
  s.learning_rate = r.Get("learning_rate", s.learning_rate, 1e-6, 1);
  s.weight_decay = r.Get("weight_decay", s.weight_decay, 0, 1);
  s.l1_mask = r.Get("l1_mask", s.l1_mask, 0, 100);
  s.l1_features = r.Get("l1_features", s.l1_features, 0, 100);
  s.holdout_fraction = r.Get("holdout_fraction", s.holdout_fraction, 0.05, 0.5);
  s.loss = static_cast<SurrogateLoss>(r.GetInt("loss", 0, 0, 1));
  s.output = static_cast<RateNonlinearity>(r.GetInt("output", 0, 0, 1));
  s.readout = static_cast<ReadoutMask>(r.GetInt("readout", 0, 0, 1));
  s.core_channels = r.GetInt("core_channels", s.core_channels, 0, 256);
  s.normalization = r.GetInt("normalization", s.normalization ? 1 : 0, 0, 1) != 0;
  s.min_trials = r.GetInt("min_trials", s.min_trials, 8, 1000000000);
  s.model_class = static_cast<SurrogateClass>(
      r.GetInt("model_class", static_cast<int64_t>(s.model_class), 0, 2));
  s.parametric_starts = r.GetInt("parametric_starts", s.parametric_starts, 1, 256);
  s.parametric_steps = r.GetInt("parametric_steps", s.parametric_steps, 10, 100000);
  GaborBankSpec& g = s.gabor;
  g.scales = r.GetInt("gabor_scales", g.scales, 1, 8);
  g.orientations = r.GetInt("gabor_orientations", g.orientations, 2, 16);
  g.min_wavelength = r.Get("gabor_min_wavelength", g.min_wavelength, 0.02, 1);
  g.max_wavelength = r.Get("gabor_max_wavelength", g.max_wavelength, 0.02, 2);
  g.sigma_ratio = r.Get("gabor_sigma_ratio", g.sigma_ratio, 0.1, 2);
  g.stride = r.GetInt("gabor_stride", g.stride, 1, 16);
  if (g.max_wavelength < g.min_wavelength) {
    r.Reject("gabor_max_wavelength", absl::StrCat(g.max_wavelength, " is below gabor_min_wavelength ",
                                                  g.min_wavelength));
  }
}

absl::Status SetSurrogatePaths(std::string frontend_path, std::string model_path,
                               SurrogateSpec* spec) {
  const SurrogateSpec& s = *spec;
  if (!frontend_path.empty() && !model_path.empty()) {
    return absl::InvalidArgumentError(
        "config.surrogate.model_path: set either model_path (a whole TorchScript model) or "
        "frontend_path (a TorchScript front end), not both");
  }
  if (s.model_class == SurrogateClass::kParametricGabor &&
      (!frontend_path.empty() || !model_path.empty())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config.surrogate.", frontend_path.empty() ? "model_path" : "frontend_path",
        ": surrogate.params.model_class 1 (the parametric Gabor model) reads pixels and takes "
        "no TorchScript front end or model; drop the path or use model_class 0"));
  }
  if (s.model_class == SurrogateClass::kPaired && !model_path.empty()) {
    return absl::InvalidArgumentError(
        "config.surrogate.model_path: surrogate.params.model_class 2 (both model classes) "
        "fits its models; a whole TorchScript model replaces them: use model_class 0 with it");
  }
  spec->frontend_path = std::move(frontend_path);
  spec->model_path = std::move(model_path);
  return absl::OkStatus();
}

absl::StatusOr<SurrogateSpec> ParseSurrogateSpec(const std::map<std::string, double>& params,
                                                 std::string frontend_path,
                                                 std::string model_path) {
  SurrogateSpec s;
  ParamReader r(params, kSurrogateParamsPrefix);
  ReadSurrogateParams(r, &s);
  if (absl::Status status = r.Finish(); !status.ok()) return status;
  if (absl::Status status = SetSurrogatePaths(std::move(frontend_path), std::move(model_path), &s);
      !status.ok()) {
    return status;
  }
  return s;
}

}  // namespace stimloop
