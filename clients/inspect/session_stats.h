// What the inspection tools compute from a stored session: the measured
// objective of every response (from the session's own objective config),
// per-stimulus means, per-generation summaries, the best stimuli and the
// model versions' held-out correlation. Pure functions of SessionData.
#ifndef STIMLOOP_CLIENTS_INSPECT_SESSION_STATS_H_
#define STIMLOOP_CLIENTS_INSPECT_SESSION_STATS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "clients/inspect/store_reader.h"
#include "optimizers/objective.h"
#include "stimloop/v1/stimloop.pb.h"

namespace stimloop {
namespace inspect {

// The core objective spec of a stored config (single neuron, weighted sum
// or population control; an unset objective is neuron 0, as the server
// resolves it). INVALID_ARGUMENT when it does not fit num_neurons.
absl::StatusOr<Objective> ObjectiveFromConfig(const v1::SessionConfig& config);

// A stimulus with its measured responses summarized.
struct ScoredStimulus {
  const StoredStimulus* stimulus = nullptr;  // points into SessionData
  int presentations = 0;                     // responses with rates
  int skipped = 0;
  double mean_objective = 0;       // NaN when presentations == 0
  std::vector<double> mean_rates;  // per neuron; empty when none
  bool in_validation_block = false;  // images only: a validation block re-showed it
};

struct GenerationStats {
  int64_t generation = 0;
  int stimuli = 0;            // optimizer stimuli (not reference, not repeat)
  int measured = 0;           // optimizer stimuli with >= 1 presentation
  int presentations = 0;      // responses with rates, optimizer stimuli
  double mean_objective = 0;  // over measured stimuli' means; NaN if none
  double max_objective = 0;   // best measured stimulus mean; NaN if none
  // The best measured image's mean objective once this generation was
  // measured (the session's rule, base/best_measured.h); NaN if none.
  double best_so_far = 0;
  // Stimuli with a predicted objective and a measurement.
  int predicted = 0;
  double mean_predicted = 0;              // NaN when predicted == 0
  double mean_measured_of_predicted = 0;  // NaN when predicted == 0
  double predicted_measured_r = 0;        // Pearson r; NaN when < 3 or degenerate
  int64_t model_version = 0;              // newest version among its stimuli; 0: none
  // Reference images of this generation.
  int reference_presentations = 0;
  double reference_mean = 0;  // mean objective over their presentations; NaN if none
};

struct ModelQuality {
  int64_t version = 0;
  double heldout_r = 0;  // NaN when the metrics carry none
};

struct SessionStats {
  std::vector<ScoredStimulus> stimuli;       // parallel to SessionData::stimuli
  // One per distinct non-reference image (identical PNG bytes pooled, as
  // the server pools repeats), in order of first showing; `stimulus` is the
  // first showing, the rest summarize every presentation of the image.
  std::vector<ScoredStimulus> images;
  std::vector<GenerationStats> generations;  // by generation, 1..last
  std::vector<ModelQuality> models;          // by version
  bool repeats_on = false;                   // the config re-shows leading images
};

// REQUIRES: `data` outlives the result (ScoredStimulus points into it).
// INVALID_ARGUMENT when the objective config is unusable; DATA_LOSS when a
// response's rate count differs from num_neurons or names an unknown
// stimulus.
absl::StatusOr<SessionStats> ComputeStats(const SessionData& data);

// The measured images (SessionStats::images: repeats pooled, references
// apart), best first by the rule of the session's best_measured
// (base/best_measured.h: eligible images by mean objective, then the rest),
// at most k (k <= 0: all). The first is what GetSession calls best_measured.
std::vector<const ScoredStimulus*> TopStimuli(const SessionStats& stats, int k);

// The session's best measured image (the first of TopStimuli); nullptr
// before any response.
const ScoredStimulus* BestMeasured(const SessionStats& stats);

// Held-out correlation from a model version's metrics JSON: "heldout_r"
// when present, else the mean of the finite "heldout_correlation.<i>"
// values; NaN when neither is there or the JSON does not parse.
double HeldoutCorrelation(const std::string& metrics_json);

// The held-out correlation of `version`, NaN when unknown.
double HeldoutCorrelationOf(const SessionStats& stats, int64_t version);

}  // namespace inspect
}  // namespace stimloop

#endif  // STIMLOOP_CLIENTS_INSPECT_SESSION_STATS_H_
