#include "server/session_config.h"

#include "absl/strings/str_cat.h"

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

}  // namespace

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

  if (p.optimizer().name().empty()) {
    return absl::InvalidArgumentError(
        "config.optimizer.name: required (random, genetic, cmaes, gradient_ascent, "
        "adaptive_sampling)");
  }
  out.optimizer.name = p.optimizer().name();
  out.optimizer.params.insert(p.optimizer().params().begin(), p.optimizer().params().end());
  out.optimizer.candidate_pool_dir = p.optimizer().candidate_pool_dir();

  if (p.image_space().name().empty()) {
    return absl::InvalidArgumentError(
        "config.image_space.name: required (pixel, spectral, torchscript)");
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
          "config.metadata['", key.substr(0, kMaxMetadataKey), "']: keys are 1..",
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
  out.surrogate_frontend_path = p.surrogate().frontend_path();
  out.surrogate_model_path = p.surrogate().model_path();

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
  return out;
}

}  // namespace stimloop
