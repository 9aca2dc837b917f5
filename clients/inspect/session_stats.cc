#include "clients/inspect/session_stats.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/best_measured.h"

namespace stimloop {
namespace inspect {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double Mean(const std::vector<double>& v) {
  if (v.empty()) return kNaN;
  double sum = 0;
  for (double x : v) sum += x;
  return sum / v.size();
}

double Pearson(const std::vector<double>& x, const std::vector<double>& y) {
  if (x.size() < 3) return kNaN;
  const double mx = Mean(x), my = Mean(y);
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) * (x[i] - mx);
    syy += (y[i] - my) * (y[i] - my);
  }
  if (sxx <= 0 || syy <= 0) return kNaN;
  return sxy / std::sqrt(sxx * syy);
}

double NumberOf(const google::protobuf::Value& v) {
  if (v.kind_case() == google::protobuf::Value::kNumberValue) return v.number_value();
  double d;
  if (v.kind_case() == google::protobuf::Value::kStringValue &&
      absl::SimpleAtod(v.string_value(), &d)) {
    return d;
  }
  return kNaN;
}

}  // namespace

absl::StatusOr<Objective> ObjectiveFromConfig(const v1::SessionConfig& config) {
  ObjectiveSpec spec;
  const v1::Objective& o = config.objective();
  switch (o.kind_case()) {
    case v1::Objective::KIND_NOT_SET:  // the server's default: the first neuron
    case v1::Objective::kSingleNeuron:
      spec.kind = ObjectiveSpec::Kind::kSingleNeuron;
      spec.index = o.single_neuron().index();
      break;
    case v1::Objective::kWeightedSum:
      spec.kind = ObjectiveSpec::Kind::kWeightedSum;
      spec.weights.assign(o.weighted_sum().weights().begin(), o.weighted_sum().weights().end());
      break;
    case v1::Objective::kPopulationControl:
      spec.kind = ObjectiveSpec::Kind::kPopulationControl;
      spec.index = o.population_control().target();
      spec.others_weight = o.population_control().others_weight() == 0
                               ? 1.0
                               : o.population_control().others_weight();
      break;
  }
  return Objective::Create(spec, config.num_neurons());
}

absl::StatusOr<SessionStats> ComputeStats(const SessionData& data) {
  auto objective = ObjectiveFromConfig(data.config);
  if (!objective.ok()) return objective.status();
  const int neurons = data.config.num_neurons();

  SessionStats stats;
  stats.stimuli.resize(data.stimuli.size());
  absl::flat_hash_map<std::string, size_t> index;
  for (size_t i = 0; i < data.stimuli.size(); ++i) {
    stats.stimuli[i].stimulus = &data.stimuli[i];
    index[data.stimuli[i].id] = i;
  }
  std::vector<std::vector<double>> objectives(data.stimuli.size());
  // generation -> objectives of reference presentations.
  std::map<int64_t, std::vector<double>> reference;
  for (const StoredResponse& r : data.responses) {
    auto it = index.find(r.stimulus_id);
    if (it == index.end()) {
      return absl::DataLossError(
          absl::StrCat("response ", r.seq, ": unknown stimulus '", r.stimulus_id, "'"));
    }
    ScoredStimulus& s = stats.stimuli[it->second];
    if (r.skipped) {
      ++s.skipped;
      continue;
    }
    if (static_cast<int>(r.rates.size()) != neurons) {
      return absl::DataLossError(absl::StrCat("response ", r.seq, ": ", r.rates.size(),
                                              " rates, the config has ", neurons, " neurons"));
    }
    const double value = objective->Evaluate(r.rates);
    objectives[it->second].push_back(value);
    if (s.mean_rates.empty()) s.mean_rates.assign(neurons, 0.0);
    for (int n = 0; n < neurons; ++n) s.mean_rates[n] += r.rates[n];
    ++s.presentations;
    if (s.stimulus->is_reference) reference[s.stimulus->generation].push_back(value);
  }

  // Identical images pooled, before the per-stimulus sums become means.
  absl::flat_hash_map<std::string_view, size_t> image_of_png;
  std::vector<std::vector<double>> image_objectives;
  constexpr size_t kNoImage = static_cast<size_t>(-1);
  std::vector<size_t> image_of_stimulus(stats.stimuli.size(), kNoImage);
  for (size_t i = 0; i < stats.stimuli.size(); ++i) {
    const ScoredStimulus& s = stats.stimuli[i];
    if (s.stimulus->is_reference) continue;
    auto [it, inserted] = image_of_png.try_emplace(s.stimulus->png, stats.images.size());
    if (inserted) {
      stats.images.push_back({s.stimulus, 0, 0, 0, {}, false});
      image_objectives.emplace_back();
    }
    image_of_stimulus[i] = it->second;
    ScoredStimulus& image = stats.images[it->second];
    image.in_validation_block |= s.stimulus->origin == "validation";
    image.presentations += s.presentations;
    image.skipped += s.skipped;
    if (!s.mean_rates.empty()) {  // still sums here
      if (image.mean_rates.empty()) image.mean_rates.assign(neurons, 0.0);
      for (int n = 0; n < neurons; ++n) image.mean_rates[n] += s.mean_rates[n];
    }
    image_objectives[it->second].insert(image_objectives[it->second].end(),
                                        objectives[i].begin(), objectives[i].end());
  }
  for (size_t k = 0; k < stats.images.size(); ++k) {
    ScoredStimulus& image = stats.images[k];
    image.mean_objective = Mean(image_objectives[k]);
    for (double& rate : image.mean_rates) rate /= image.presentations;
  }

  int64_t last_generation = 0;
  for (size_t i = 0; i < stats.stimuli.size(); ++i) {
    ScoredStimulus& s = stats.stimuli[i];
    s.mean_objective = Mean(objectives[i]);
    for (double& rate : s.mean_rates) rate /= s.presentations;
    last_generation = std::max(last_generation, s.stimulus->generation);
  }

  stats.generations.resize(last_generation);
  for (int64_t g = 0; g < last_generation; ++g) stats.generations[g].generation = g + 1;
  std::vector<std::vector<double>> means(last_generation), predicted(last_generation),
      measured(last_generation);
  for (const ScoredStimulus& s : stats.stimuli) {
    if (s.stimulus->generation < 1) continue;
    GenerationStats& g = stats.generations[s.stimulus->generation - 1];
    g.model_version = std::max(g.model_version, s.stimulus->model_version);
    // Repeats and validation blocks re-show earlier images: not the
    // generation's proposals.
    if (s.stimulus->is_reference || s.stimulus->origin == "repeat" ||
        s.stimulus->origin == "validation") {
      continue;
    }
    ++g.stimuli;
    g.presentations += s.presentations;
    if (s.presentations == 0) continue;
    ++g.measured;
    means[g.generation - 1].push_back(s.mean_objective);
    if (!std::isnan(s.stimulus->predicted_objective)) {
      predicted[g.generation - 1].push_back(s.stimulus->predicted_objective);
      measured[g.generation - 1].push_back(s.mean_objective);
    }
  }
  stats.repeats_on = data.config.repeats().per_generation() > 0;
  // The best measured image as it stood after each generation: the images'
  // presentations up to that generation, ranked by the session's rule.
  std::vector<std::vector<size_t>> stimuli_of_generation(last_generation + 1);
  for (size_t i = 0; i < stats.stimuli.size(); ++i) {
    const int64_t g = stats.stimuli[i].stimulus->generation;
    if (image_of_stimulus[i] != kNoImage && g >= 0) stimuli_of_generation[g].push_back(i);
  }
  std::vector<MeasuredImage> so_far(stats.images.size());
  std::vector<double> objective_sum(stats.images.size(), 0.0);
  auto add_generation = [&](int64_t g) {
    for (size_t i : stimuli_of_generation[g]) {
      const size_t k = image_of_stimulus[i];
      MeasuredImage& m = so_far[k];
      m.in_validation_block |= stats.stimuli[i].stimulus->origin == "validation";
      for (double value : objectives[i]) objective_sum[k] += value;
      m.presentations += static_cast<int>(objectives[i].size());
      if (m.presentations > 0) m.mean_objective = objective_sum[k] / m.presentations;
    }
  };
  add_generation(0);
  for (GenerationStats& g : stats.generations) {
    const auto& m = means[g.generation - 1];
    g.mean_objective = Mean(m);
    g.max_objective = m.empty() ? kNaN : *std::max_element(m.begin(), m.end());
    add_generation(g.generation);
    const std::optional<size_t> best = BestMeasuredImage(so_far, stats.repeats_on);
    g.best_so_far = best.has_value() ? so_far[*best].mean_objective : kNaN;
    g.predicted = static_cast<int>(predicted[g.generation - 1].size());
    g.mean_predicted = Mean(predicted[g.generation - 1]);
    g.mean_measured_of_predicted = Mean(measured[g.generation - 1]);
    g.predicted_measured_r = Pearson(predicted[g.generation - 1], measured[g.generation - 1]);
    auto ref = reference.find(g.generation);
    if (ref != reference.end()) {
      g.reference_presentations = static_cast<int>(ref->second.size());
      g.reference_mean = Mean(ref->second);
    } else {
      g.reference_mean = kNaN;
    }
  }

  for (const StoredModelVersion& m : data.model_versions) {
    stats.models.push_back({m.version, HeldoutCorrelation(m.metrics_json)});
  }
  return stats;
}

std::vector<const ScoredStimulus*> TopStimuli(const SessionStats& stats, int k) {
  std::vector<MeasuredImage> images;
  images.reserve(stats.images.size());
  for (const ScoredStimulus& s : stats.images) {
    images.push_back({s.presentations > 0 ? s.mean_objective : 0.0, s.presentations,
                      s.in_validation_block});
  }
  std::vector<const ScoredStimulus*> out;
  for (size_t i : RankMeasuredImages(images, stats.repeats_on)) {
    if (k > 0 && static_cast<int>(out.size()) == k) break;
    out.push_back(&stats.images[i]);
  }
  return out;
}

const ScoredStimulus* BestMeasured(const SessionStats& stats) {
  const std::vector<const ScoredStimulus*> top = TopStimuli(stats, 1);
  return top.empty() ? nullptr : top.front();
}

double HeldoutCorrelation(const std::string& metrics_json) {
  google::protobuf::Struct metrics;
  if (!google::protobuf::util::JsonStringToMessage(metrics_json, &metrics).ok()) return kNaN;
  auto direct = metrics.fields().find("heldout_r");
  if (direct != metrics.fields().end()) return NumberOf(direct->second);
  std::vector<double> values;
  for (const auto& [key, value] : metrics.fields()) {
    if (!absl::StartsWith(key, "heldout_correlation.")) continue;
    const double v = NumberOf(value);
    if (std::isfinite(v)) values.push_back(v);
  }
  return Mean(values);
}

double HeldoutCorrelationOf(const SessionStats& stats, int64_t version) {
  for (const ModelQuality& m : stats.models) {
    if (m.version == version) return m.heldout_r;
  }
  return kNaN;
}

}  // namespace inspect
}  // namespace stimloop
