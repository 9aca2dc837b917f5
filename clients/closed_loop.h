// Drives one session over gRPC with a SimulatedRig playing the rig: ask,
// "display", measure, report, until a number of responses is reached. Used
// by stimloop-simulate, the integration tests and the benchmarks.
#ifndef STIMLOOP_CLIENTS_CLOSED_LOOP_H_
#define STIMLOOP_CLIENTS_CLOSED_LOOP_H_

#include <functional>
#include <limits>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "clients/rig_client.h"
#include "clients/simulated_rig.h"
#include "stimloop/v1/stimloop.pb.h"

namespace stimloop {

// What happened in one generation, for progress display.
struct GenerationSummary {
  int64_t generation = 0;
  int64_t responses = 0;       // total so far
  double mean_rate = 0;        // target neuron, measured, this generation
  double max_rate = 0;
  double best_measured = 0;    // session's best mean objective so far
  double best_true_fraction = 0;  // true rate of the best measured / the optimum
  absl::Duration elapsed;      // NextStimuli + measure + ReportResponses
};

struct ClosedLoopOptions {
  int64_t responses = 1000;  // stop once this many presentations are reported
  int step = 0;              // stimuli per NextStimuli call; 0: whole generations
  // After `responses`: report the stimuli of the current generation not
  // measured yet as skipped (aborted trials), then show this validation
  // block (ValidationBlock in the proto) in full.
  std::optional<v1::ValidationBlock> validation;
  // Called after every generation; may be empty.
  std::function<void(const GenerationSummary&)> on_generation;
};

struct ClosedLoopResult {
  v1::Session session;  // GetSession at the end (best measured included)
  double best_true_fraction = 0;  // the target neuron's true rate / its optimum
  int64_t generations = 0;
  // With a validation block: best_true_fraction just before it, and the
  // responses it took.
  double best_true_fraction_before_validation = std::numeric_limits<double>::quiet_NaN();
  int64_t validation_responses = 0;
};

// Runs the loop on an existing session whose objective targets neuron
// `target` of the rig's population (the one whose optimum is known).
absl::StatusOr<ClosedLoopResult> RunClosedLoop(RigClient& client, SimulatedRig& rig,
                                               const std::string& session_id, int target,
                                               const ClosedLoopOptions& options);

}  // namespace stimloop

#endif  // STIMLOOP_CLIENTS_CLOSED_LOOP_H_
