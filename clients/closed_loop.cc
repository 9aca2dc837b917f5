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

void PreferSyncRefits(v1::SessionConfig* config) {
  if (!UsesSurrogate(config->optimizer().name())) return;
  auto& params = *config->mutable_surrogate()->mutable_params();
  if (params.count("refit_sync") == 0) params["refit_sync"] = 1;
}

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

  while (responses < options.responses) {
    const absl::Time start = absl::Now();
    int step = options.step;
    if (step > 0) step = static_cast<int>(std::min<int64_t>(step, options.responses - responses));
    auto batch = client.NextStimuli(session_id, step);
    if (!batch.ok()) return batch.status();
    if (batch->generation() != current.generation) {
      if (absl::Status s = finish_generation(); !s.ok()) return s;
      current.generation = batch->generation();
      current.max_rate = 0;
    }
    std::vector<v1::Response> report;
    for (const v1::Stimulus& stimulus : batch->stimuli()) {
      if (responses + static_cast<int64_t>(report.size()) >= options.responses) break;
      auto rates = rig.Measure(stimulus.png());
      if (!rates.ok()) return rates.status();
      v1::Response response;
      response.set_stimulus_id(stimulus.id());
      response.mutable_rates()->Add(rates->begin(), rates->end());
      report.push_back(std::move(response));
      if (stimulus.is_reference()) continue;
      rate_sum += (*rates)[target];
      current.max_rate = std::max(current.max_rate, (*rates)[target]);
      ++in_generation;
    }
    if (report.empty()) break;
    auto ack = client.ReportResponses(session_id, absl::StrCat(session_id, "-report-", ++report_number),
                                      report);
    if (!ack.ok()) return ack.status();
    responses = ack->counts().responses();
    elapsed += absl::Now() - start;
  }
  if (absl::Status s = finish_generation(); !s.ok()) return s;

  auto final_session = client.GetSession(session_id);
  if (!final_session.ok()) return final_session.status();
  auto fraction = BestTrueFraction(*final_session, rig, target);
  if (!fraction.ok()) return fraction.status();
  result.session = *std::move(final_session);
  result.best_true_fraction = *fraction;
  return result;
}

}  // namespace stimloop
