#include "clients/inspect/text_views.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace stimloop {
namespace inspect {
namespace {

std::string OrDash(const std::string& s) { return s.empty() ? "-" : s; }

// `s` cut to `width` characters, the cut marked with '~', so columns align.
std::string Fit(const std::string& s, size_t width) {
  return s.size() <= width ? s : s.substr(0, width - 1) + "~";
}

std::string ObjectiveName(const v1::SessionConfig& config) {
  const v1::Objective& o = config.objective();
  switch (o.kind_case()) {
    case v1::Objective::kWeightedSum:
      return "weighted_sum";
    case v1::Objective::kPopulationControl:
      return absl::StrCat("population_control(target=", o.population_control().target(), ")");
    default:
      return absl::StrCat("single_neuron(", o.single_neuron().index(), ")");
  }
}

}  // namespace

std::string FormatUtc(absl::Time t) {
  return absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", t, absl::UTCTimeZone());
}

std::string FormatNumber(double v) { return std::isnan(v) ? "-" : absl::StrFormat("%.4g", v); }

std::string FormatSessionList(const std::vector<SessionSummary>& sessions) {
  constexpr char kRow[] = "%-24s %-23s %-10s %-12s %-17s %-11s %-6s %5s %7s %9s %7s\n";
  std::string out =
      absl::StrFormat(kRow, "session", "created", "subject", "site", "optimizer", "image_space",
                      "status", "gens", "stimuli", "responses", "skipped");
  for (const SessionSummary& s : sessions) {
    absl::StrAppendFormat(&out, kRow, s.id, FormatUtc(s.created), Fit(OrDash(s.subject), 10),
                          Fit(OrDash(s.site), 12), Fit(s.optimizer, 17), Fit(s.image_space, 11),
                          s.status, absl::StrCat(s.generations), absl::StrCat(s.stimuli),
                          absl::StrCat(s.responses), absl::StrCat(s.skipped));
  }
  if (sessions.empty()) out += "(no sessions)\n";
  return out;
}

std::string FormatSessionShow(const SessionData& data, const SessionStats& stats) {
  const SessionSummary& s = data.summary;
  std::string out = absl::StrFormat(
      "session %s (%s), created %s\n"
      "  %s in %s space, objective %s, %d neurons, %dx%dx%d, seed %d\n"
      "  %d generations, %d stimuli, %d responses, %d skipped, %d model versions\n\n",
      s.id, s.status, FormatUtc(s.created), s.optimizer, s.image_space, ObjectiveName(data.config),
      data.config.num_neurons(), data.config.image().height(), data.config.image().width(),
      data.config.image().channels(), data.config.seed(), s.generations, s.stimuli, s.responses,
      s.skipped, data.model_versions.size());
  constexpr char kRow[] = "%4s %5s %6s %10s %10s %10s %5s %10s %10s %6s %5s %8s %9s\n";
  absl::StrAppendFormat(&out, kRow, "gen", "stim", "pres", "mean_obj", "max_obj", "best", "n_pred",
                        "predicted", "measured", "r", "model", "model_r", "ref_mean");
  for (const GenerationStats& g : stats.generations) {
    absl::StrAppendFormat(
        &out, kRow, absl::StrCat(g.generation), absl::StrCat(g.stimuli),
        absl::StrCat(g.presentations), FormatNumber(g.mean_objective),
        FormatNumber(g.max_objective), FormatNumber(g.best_so_far), absl::StrCat(g.predicted),
        FormatNumber(g.mean_predicted), FormatNumber(g.mean_measured_of_predicted),
        FormatNumber(g.predicted_measured_r),
        g.model_version > 0 ? absl::StrCat(g.model_version) : "-",
        g.model_version > 0 ? FormatNumber(HeldoutCorrelationOf(stats, g.model_version)) : "-",
        FormatNumber(g.reference_mean));
  }
  return out;
}

}  // namespace inspect
}  // namespace stimloop
