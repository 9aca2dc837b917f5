#include "server/session_config.h"

#include <algorithm>
#include <map>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/echo.h"

namespace stimloop {

absl::Status CheckRange(absl::string_view field, int64_t value, int64_t min, int64_t max) {
  if (value < min || value > max) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": ", value, " is outside [", min, ", ", max, "]"));
  }
  return absl::OkStatus();
}

namespace {

constexpr int kMaxMetadataEntries = 64;
constexpr size_t kMaxMetadataKey = 64;
constexpr size_t kMaxMetadataValue = 4096;

absl::Status Unused(absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat(field, ": set, but ", why, "; leave it empty"));
}

// "config.surrogate.params.<key>" of the first key in sorted order (the
// message does not depend on the map's order). REQUIRES: params not empty.
std::string FirstSurrogateParam(const google::protobuf::Map<std::string, double>& params) {
  auto first = std::min_element(params.begin(), params.end(),
                                [](const auto& a, const auto& b) { return a.first < b.first; });
  return absl::StrCat("config.surrogate.params.", Echo(first->first));
}

// The surrogate's fields, for optimizer `name`.
absl::Status CheckSurrogateUsed(const std::string& name, const v1::SurrogateConfig& surrogate) {
  if (!UsesSurrogate(name)) {
    const std::string why = absl::StrCat(
        "optimizer ", QuotedEcho(name), " uses no surrogate (gradient_ascent and "
        "adaptive_sampling do)");
    if (!surrogate.model_path().empty()) return Unused("config.surrogate.model_path", why);
    if (!surrogate.frontend_path().empty()) return Unused("config.surrogate.frontend_path", why);
    if (!surrogate.params().empty()) return Unused(FirstSurrogateParam(surrogate.params()), why);
    return absl::OkStatus();
  }
  if (!surrogate.model_path().empty() && !surrogate.params().empty()) {
    return Unused(FirstSurrogateParam(surrogate.params()),
                  "config.surrogate.model_path names a fixed model, which is never fitted");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckNoUnusedFields(const ResolvedConfig& config) {
  const v1::SessionConfig& p = config.proto;
  const std::string& optimizer = p.optimizer().name();
  if (absl::Status s = CheckSurrogateUsed(optimizer, p.surrogate()); !s.ok()) return s;
  if (!p.optimizer().candidate_pool_dir().empty() && optimizer != "adaptive_sampling") {
    return Unused("config.optimizer.candidate_pool_dir",
                  absl::StrCat("optimizer ", QuotedEcho(optimizer),
                               " reads no candidate pool (adaptive_sampling does)"));
  }
  if (!p.image_space().generator_path().empty() && p.image_space().name() != "torchscript") {
    return Unused("config.image_space.generator_path",
                  absl::StrCat("image space ", QuotedEcho(p.image_space().name()),
                               " uses no generator (torchscript does)"));
  }
  if (!p.reference_images().dir().empty() && p.reference_images().per_generation() == 0) {
    return Unused("config.reference_images.dir",
                  "reference_images.per_generation is 0, so no reference image is shown");
  }
  return absl::OkStatus();
}

absl::StatusOr<ResolvedConfig> ResolveConfig(const v1::SessionConfig& config) {
  ResolvedConfig out;
  out.proto = config;
  v1::SessionConfig& p = out.proto;

  if (!config.has_image()) return absl::InvalidArgumentError("config.image: required");
  if (p.image().channels() == 0) p.mutable_image()->set_channels(1);
  absl::Status status = CheckRange("config.image.height", p.image().height(), kMinImageSide,
                                   kMaxImageSide);
  if (status.ok()) {
    status = CheckRange("config.image.width", p.image().width(), kMinImageSide, kMaxImageSide);
  }
  if (!status.ok()) return status;
  if (p.image().channels() != 1 && p.image().channels() != 3) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config.image.channels: ", p.image().channels(), " must be 1 (gray) or 3 (RGB)"));
  }
  out.shape = {p.image().channels(), p.image().height(), p.image().width()};

  if (absl::Status s = CheckRange("config.num_neurons", p.num_neurons(), 1, kMaxNeurons);
      !s.ok()) {
    return s;
  }
  if (p.generation_size() == 0) p.set_generation_size(kDefaultGenerationSize);
  if (absl::Status s =
          CheckRange("config.generation_size", p.generation_size(), 1, kMaxGenerationSize);
      !s.ok()) {
    return s;
  }

  const v1::Objective& objective = p.objective();
  switch (objective.kind_case()) {
    case v1::Objective::KIND_NOT_SET:  // default: the first neuron
    case v1::Objective::kSingleNeuron:
      out.objective.kind = ObjectiveSpec::Kind::kSingleNeuron;
      out.objective.index = objective.single_neuron().index();
      break;
    case v1::Objective::kWeightedSum:
      out.objective.kind = ObjectiveSpec::Kind::kWeightedSum;
      out.objective.weights.assign(objective.weighted_sum().weights().begin(),
                                   objective.weighted_sum().weights().end());
      break;
    case v1::Objective::kPopulationControl: {
      out.objective.kind = ObjectiveSpec::Kind::kPopulationControl;
      out.objective.index = objective.population_control().target();
      const double w = objective.population_control().others_weight();
      out.objective.others_weight = w == 0 ? 1.0 : w;
      break;
    }
  }

  // The default strategy: with no optimizer named, the portfolio in the
  // spectral space, re-showing the leading images (unless the config says
  // how) so that the best measured image is measured more than once.
  const bool default_strategy = p.optimizer().name().empty();
  if (default_strategy) {
    p.mutable_optimizer()->set_name(kDefaultOptimizer);
    if (p.image_space().name().empty()) p.mutable_image_space()->set_name(kDefaultImageSpace);
    if (!config.has_repeats()) {
      p.mutable_repeats()->set_per_generation(
          std::min(kDefaultStrategyRepeats, p.generation_size() / 2));
    }
    // Both model classes in one ensemble, unless the config fixes the model
    // (model_path) or names a class itself. Written into the stored config,
    // so a resumed session keeps the strategy it started with.
    auto& surrogate = *p.mutable_surrogate()->mutable_params();
    if (p.surrogate().model_path().empty() && surrogate.count("model_class") == 0) {
      for (const auto& [key, value] : kDefaultStrategySurrogate) {
        if (surrogate.count(key) == 0) surrogate[key] = value;
      }
    }
  }
  out.optimizer.name = p.optimizer().name();
  out.optimizer.params.insert(p.optimizer().params().begin(), p.optimizer().params().end());
  out.optimizer.candidate_pool_dir = p.optimizer().candidate_pool_dir();

  if (p.image_space().name().empty()) {
    return absl::InvalidArgumentError(
        "config.image_space.name: required when an optimizer is named (pixel, spectral, "
        "torchscript)");
  }
  out.image_space.name = p.image_space().name();
  out.image_space.params.insert(p.image_space().params().begin(),
                                p.image_space().params().end());
  out.image_space.generator_path = p.image_space().generator_path();

  if (p.metadata_size() > kMaxMetadataEntries) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config.metadata: ", p.metadata_size(), " entries, at most ", kMaxMetadataEntries));
  }
  for (const auto& [key, value] : p.metadata()) {
    if (key.empty() || key.size() > kMaxMetadataKey || value.size() > kMaxMetadataValue) {
      return absl::InvalidArgumentError(absl::StrCat(
          "config.metadata[", QuotedEcho(key), "]: keys are 1..",
          kMaxMetadataKey, " characters, values at most ", kMaxMetadataValue));
    }
  }

  const v1::ReferenceImagesConfig& reference = p.reference_images();
  if (absl::Status s = CheckRange("config.reference_images.per_generation",
                                  reference.per_generation(), 0, p.generation_size());
      !s.ok()) {
    return s;
  }
  if (reference.per_generation() > 0 && reference.dir().empty()) {
    return absl::InvalidArgumentError(
        "config.reference_images.dir: required when per_generation > 0");
  }
  out.reference_images_dir = reference.dir();

  v1::RepeatsConfig& repeats = *p.mutable_repeats();
  if (absl::Status s = CheckRange("config.repeats.per_generation", repeats.per_generation(), 0,
                                  p.generation_size());
      !s.ok()) {
    return s;
  }
  if (repeats.max_presentations() == 0) repeats.set_max_presentations(kDefaultMaxPresentations);
  if (absl::Status s = CheckRange("config.repeats.max_presentations",
                                  repeats.max_presentations(), 2, kMaxPresentations);
      !s.ok()) {
    return s;
  }

  out.surrogate.spec.frontend_path = p.surrogate().frontend_path();
  out.surrogate.spec.model_path = p.surrogate().model_path();
  if (UsesSurrogate(out.optimizer.name)) {
    const std::map<std::string, double> params(p.surrogate().params().begin(),
                                               p.surrogate().params().end());
    auto surrogate = ParseSurrogateSettings(params, p.surrogate().frontend_path(),
                                            p.surrogate().model_path());
    if (!surrogate.ok()) return surrogate.status();
    out.surrogate = *std::move(surrogate);
  }
  return out;
}

}  // namespace stimloop
