#include "clients/closed_loop.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "optimizers/optimizer.h"

namespace stimloop {
namespace {

// The target neuron's true rate for the session's best measured stimulus,
// as a fraction of that neuron's optimum; 0 before any response.
absl::StatusOr<double> BestTrueFraction(const v1::Session& session, const SimulatedRig& rig,
                                        int target) {
  if (!session.has_best_measured()) return 0.0;
  auto rates = rig.TrueRates(session.best_measured().stimulus().png());
  if (!rates.ok()) return rates.status();
  return (*rates)[target] / rig.population().neuron(target).optimum_rate();
}

}  // namespace

absl::StatusOr<ClosedLoopResult> RunClosedLoop(RigClient& client, SimulatedRig& rig,
                                               const std::string& session_id, int target,
                                               const ClosedLoopOptions& options) {
  auto session = client.GetSession(session_id);
  if (!session.ok()) return session.status();
  if (target < 0 || target >= rig.population().size() ||
      session->config().num_neurons() != rig.population().size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the rig simulates ", rig.population().size(), " neurons (target ", target,
        "), the session expects ", session->config().num_neurons()));
  }

  ClosedLoopResult result;
  int64_t responses = session->counts().responses();
  int64_t report_number = 0;
  GenerationSummary current;
  int64_t in_generation = 0;
  double rate_sum = 0;
  absl::Duration elapsed;

  auto finish_generation = [&]() -> absl::Status {
    if (in_generation == 0) return absl::OkStatus();
    auto now = client.GetSession(session_id);
    if (!now.ok()) return now.status();
    auto fraction = BestTrueFraction(*now, rig, target);
    if (!fraction.ok()) return fraction.status();
    current.responses = responses;
    current.mean_rate = rate_sum / in_generation;
    current.best_measured = now->best_measured().mean_objective();
    current.best_true_fraction = *fraction;
    current.elapsed = elapsed;
    if (options.on_generation) options.on_generation(current);
    ++result.generations;
    in_generation = 0;
    rate_sum = 0;
    elapsed = absl::ZeroDuration();
    current = GenerationSummary();
    return absl::OkStatus();
  };

  auto report = [&](const std::vector<v1::Response>& responses_to_report) -> absl::Status {
    auto ack = client.ReportResponses(
        session_id, absl::StrCat(session_id, "-report-", ++report_number), responses_to_report);
    if (!ack.ok()) return ack.status();
    responses = ack->counts().responses();
    return absl::OkStatus();
  };
  // Measures a batch's stimuli, up to `limit` responses in all; the ones
  // left are appended to *unmeasured.
  auto measure = [&](const v1::StimulusBatch& batch, int64_t limit,
                     std::vector<v1::Response>* measured,
                     std::vector<std::string>* unmeasured) -> absl::Status {
    if (batch.generation() != current.generation) {
      if (absl::Status s = finish_generation(); !s.ok()) return s;
      current.generation = batch.generation();
      current.max_rate = 0;
    }
    for (const v1::Stimulus& stimulus : batch.stimuli()) {
      if (responses + static_cast<int64_t>(measured->size()) >= limit) {
        unmeasured->push_back(stimulus.id());
        continue;
      }
      auto rates = rig.Measure(stimulus.png());
      if (!rates.ok()) return rates.status();
      v1::Response response;
      response.set_stimulus_id(stimulus.id());
      response.mutable_rates()->Add(rates->begin(), rates->end());
      measured->push_back(std::move(response));
      if (stimulus.is_reference()) continue;
      rate_sum += (*rates)[target];
      current.max_rate = std::max(current.max_rate, (*rates)[target]);
      ++in_generation;
    }
    return absl::OkStatus();
  };

  int32_t remaining = 0;  // of the current generation, not handed out yet
  std::vector<std::string> unmeasured;
  while (responses < options.responses) {
    const absl::Time start = absl::Now();
    int step = options.step;
    if (step > 0) step = static_cast<int>(std::min<int64_t>(step, options.responses - responses));
    auto batch = client.NextStimuli(session_id, step);
    if (!batch.ok()) return batch.status();
    remaining = batch->remaining();
    std::vector<v1::Response> measured;
    if (absl::Status s = measure(*batch, options.responses, &measured, &unmeasured); !s.ok()) {
      return s;
    }
    if (measured.empty()) break;
    if (absl::Status s = report(measured); !s.ok()) return s;
    elapsed += absl::Now() - start;
  }
  if (absl::Status s = finish_generation(); !s.ok()) return s;

  if (options.validation.has_value()) {
    auto before = client.GetSession(session_id);
    if (!before.ok()) return before.status();
    auto fraction = BestTrueFraction(*before, rig, target);
    if (!fraction.ok()) return fraction.status();
    result.best_true_fraction_before_validation = *fraction;
    const int64_t responses_before = responses;
    // The block starts at a generation boundary: what is left of the
    // current generation is aborted (reported skipped).
    if (remaining > 0) {
      auto rest = client.NextGeneration(session_id);
      if (!rest.ok()) return rest.status();
      for (const v1::Stimulus& stimulus : rest->stimuli()) unmeasured.push_back(stimulus.id());
    }
    if (!unmeasured.empty()) {
      std::vector<v1::Response> skipped(unmeasured.size());
      for (size_t i = 0; i < unmeasured.size(); ++i) {
        skipped[i].set_stimulus_id(unmeasured[i]);
        skipped[i].set_skipped(true);
      }
      if (absl::Status s = report(skipped); !s.ok()) return s;
    }
    std::optional<v1::ValidationBlock> block = options.validation;
    do {
      const absl::Time start = absl::Now();
      auto batch = client.NextStimuli(session_id, options.step, block);
      if (!batch.ok()) return batch.status();
      block.reset();  // the rest of the block comes without it
      remaining = batch->remaining();
      std::vector<v1::Response> measured;
      std::vector<std::string> none;
      if (absl::Status s = measure(*batch, std::numeric_limits<int64_t>::max(), &measured, &none);
          !s.ok()) {
        return s;
      }
      if (absl::Status s = report(measured); !s.ok()) return s;
      elapsed += absl::Now() - start;
    } while (remaining > 0);
    if (absl::Status s = finish_generation(); !s.ok()) return s;
    result.validation_responses = responses - responses_before;
  }

  auto final_session = client.GetSession(session_id);
  if (!final_session.ok()) return final_session.status();
  auto fraction = BestTrueFraction(*final_session, rig, target);
  if (!fraction.ok()) return fraction.status();
  result.session = *std::move(final_session);
  result.best_true_fraction = *fraction;
  return result;
}

}  // namespace stimloop
