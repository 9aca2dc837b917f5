#include "clients/inspect/report_html.h"

#include <google/protobuf/util/json_util.h>

#include <cmath>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "clients/inspect/svg_chart.h"
#include "clients/inspect/text_views.h"

namespace stimloop {
namespace inspect {
namespace {

constexpr char kStyle[] = R"css(
:root { --ink:#1d2430; --muted:#5f6b7a; --line:#e3e7ee; --bg:#f6f7fb; --card:#fff; --accent:#2f6fdf; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
  font:14px/1.45 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
header { background:#1d2a44; color:#fff; padding:22px 32px; }
header h1 { margin:0 0 4px; font-size:22px; font-weight:600; }
header .sub { color:#b9c4da; font-size:13px; }
main { max-width:1180px; margin:0 auto; padding:20px 32px 40px; }
section { background:var(--card); border:1px solid var(--line); border-radius:10px;
  padding:18px 20px; margin:0 0 18px; }
h2 { font-size:16px; margin:0 0 12px; font-weight:600; }
.facts { display:grid; grid-template-columns:repeat(auto-fill,minmax(150px,1fr)); gap:10px; }
.fact { background:var(--bg); border-radius:8px; padding:8px 12px; }
.fact .k { color:var(--muted); font-size:11px; text-transform:uppercase; letter-spacing:.04em; }
.fact .v { font-size:17px; font-weight:600; overflow-wrap:anywhere; }
.charts { display:flex; flex-wrap:wrap; gap:12px; }
svg.chart { background:#fff; max-width:100%; height:auto; }
svg .plot { fill:#fbfcfe; stroke:var(--line); }
svg .grid { stroke:#edf0f5; }
svg .tick, svg .legend { font-size:11px; fill:var(--muted); }
svg .axis { font-size:12px; fill:var(--muted); }
svg .chart-title { font-size:13px; font-weight:600; fill:var(--ink); }
svg .nodata { font-size:13px; fill:var(--muted); text-anchor:middle; }
.grid-best { display:grid; grid-template-columns:repeat(auto-fill,minmax(128px,1fr)); gap:12px; }
figure.stim { margin:0; background:var(--bg); border-radius:8px; padding:8px; text-align:center; }
figure.stim img { width:112px; height:112px; image-rendering:pixelated; border-radius:4px;
  background:#000; }
figure.stim figcaption { font-size:12px; color:var(--muted); }
figure.stim .rank { font-weight:600; color:var(--ink); }
figure.stim .score { font-size:14px; font-weight:600; color:var(--accent); }
table { border-collapse:collapse; width:100%; font-size:13px; }
th, td { text-align:right; padding:4px 8px; border-bottom:1px solid var(--line); }
th { color:var(--muted); font-weight:600; }
th:first-child, td:first-child { text-align:left; }
table.compact { width:auto; min-width:340px; align-self:flex-start; }
.note { color:var(--muted); font-style:italic; }
pre { background:var(--bg); border-radius:8px; padding:12px; overflow:auto; font-size:12px; margin:0; }
footer { color:var(--muted); font-size:12px; text-align:center; padding-bottom:24px; }
)css";

std::string Fact(const std::string& key, const std::string& value) {
  return absl::StrCat("<div class=\"fact\"><div class=\"k\">", HtmlEscape(key),
                      "</div><div class=\"v\">", HtmlEscape(value), "</div></div>");
}

std::string ObjectiveLabel(const v1::SessionConfig& c) {
  switch (c.objective().kind_case()) {
    case v1::Objective::kWeightedSum:
      return "weighted sum";
    case v1::Objective::kPopulationControl:
      return absl::StrCat("population control, target ",
                          c.objective().population_control().target());
    default:
      return absl::StrCat("neuron ", c.objective().single_neuron().index());
  }
}

std::string RatesText(const std::vector<double>& rates) {
  constexpr size_t kShown = 4;
  std::vector<std::string> parts;
  for (size_t i = 0; i < rates.size() && i < kShown; ++i) {
    parts.push_back(absl::StrFormat("%.3g", rates[i]));
  }
  std::string out = absl::StrJoin(parts, ", ");
  if (rates.size() > kShown) absl::StrAppend(&out, ", … (", rates.size(), ")");
  return out;
}

std::string ProgressSection(const SessionStats& stats) {
  ChartSeries mean{"mean", "#2f6fdf"}, max{"max", "#e0782f"}, best{"best so far", "#2a9d5c"};
  best.dashed = true;
  ChartSeries reference{"reference mean", "#8a5cc7"};
  reference.markers = true;
  bool any_reference = false;
  for (const GenerationStats& g : stats.generations) {
    for (ChartSeries* s : {&mean, &max, &best, &reference}) s->x.push_back(g.generation);
    mean.y.push_back(g.mean_objective);
    max.y.push_back(g.max_objective);
    best.y.push_back(g.best_so_far);
    reference.y.push_back(g.reference_mean);
    any_reference |= !std::isnan(g.reference_mean);
  }
  std::string out = "<section id=\"progress\"><h2>Progress</h2><div class=\"charts\">";
  out += RenderLineChart({mean, max, best},
                         {"Measured objective per generation", "generation", "objective"});
  if (!any_reference) {
    return out +
           "</div><p class=\"note\">No reference images in this session "
           "(config.reference_images.per_generation is 0).</p></section>";
  }
  ChartSeries optimized = mean;
  optimized.name = "optimized mean";
  out += RenderLineChart({optimized, reference},
                         {"Reference images vs optimized stimuli", "generation", "objective"});
  return out + "</div></section>";
}

std::string BestSection(const SessionStats& stats, int count) {
  const auto top = TopStimuli(stats, count);
  std::string out = absl::StrFormat(
      "<section id=\"best\"><h2>Best stimuli <span class=\"note\">(top %d by mean measured "
      "objective)</span></h2>",
      top.size());
  if (top.empty()) return out + "<p class=\"note\">No measured stimuli yet.</p></section>";
  out += "<div class=\"grid-best\">";
  int rank = 0;
  for (const ScoredStimulus* s : top) {
    ++rank;
    absl::StrAppendFormat(
        &out,
        "<figure class=\"stim\"><img class=\"best-stimulus\" alt=\"%s\" title=\"%s\" "
        "src=\"data:image/png;base64,%s\"><figcaption><div><span class=\"rank\">#%d</span> "
        "gen %d</div><div class=\"score\">%s</div><div>%d presentation%s</div>"
        "<div>rates: %s</div></figcaption></figure>",
        HtmlEscape(s->stimulus->id), HtmlEscape(s->stimulus->id + " (" + s->stimulus->origin + ")"),
        absl::Base64Escape(s->stimulus->png), rank, s->stimulus->generation,
        FormatNumber(s->mean_objective), s->presentations, s->presentations == 1 ? "" : "s",
        HtmlEscape(RatesText(s->mean_rates)));
  }
  return out + "</div></section>";
}

std::string ModelSection(const SessionData& data, const SessionStats& stats) {
  std::string out = "<section id=\"models\"><h2>Model quality</h2>";
  if (stats.models.empty()) {
    return out + absl::StrFormat(
                     "<p class=\"note\">No surrogate model was fitted in this session "
                     "(optimizer %s).</p></section>",
                     HtmlEscape(data.summary.optimizer));
  }
  ChartSeries r{"held-out r", "#2f6fdf"};
  r.markers = true;
  for (const ModelQuality& m : stats.models) {
    r.x.push_back(m.version);
    r.y.push_back(m.heldout_r);
  }
  out += "<div class=\"charts\">";
  out += RenderLineChart({r},
                         {"Held-out correlation by model version", "model version", "correlation"});
  out += "<table class=\"compact\"><tr><th>version</th><th>created</th><th>held-out r</th></tr>";
  for (size_t i = 0; i < stats.models.size(); ++i) {
    absl::StrAppend(&out, "<tr><td>", stats.models[i].version, "</td><td>",
                    FormatUtc(data.model_versions[i].created), "</td><td>",
                    FormatNumber(stats.models[i].heldout_r), "</td></tr>");
  }
  return out + "</table></div></section>";
}

std::string GenerationTable(const SessionStats& stats) {
  std::string out =
      "<section id=\"generations\"><h2>Generations</h2><table><tr><th>generation</th>"
      "<th>stimuli</th><th>presentations</th><th>mean</th><th>max</th><th>best so far</th>"
      "<th>predicted</th><th>measured (pred.)</th><th>model</th><th>reference mean</th></tr>";
  for (const GenerationStats& g : stats.generations) {
    absl::StrAppend(&out, "<tr><td>", g.generation, "</td><td>", g.stimuli, "</td><td>",
                    g.presentations, "</td><td>", FormatNumber(g.mean_objective), "</td><td>",
                    FormatNumber(g.max_objective), "</td><td>", FormatNumber(g.best_so_far),
                    "</td><td>", FormatNumber(g.mean_predicted), "</td><td>",
                    FormatNumber(g.mean_measured_of_predicted), "</td><td>",
                    g.model_version > 0 ? absl::StrCat(g.model_version) : "-", "</td><td>",
                    FormatNumber(g.reference_mean), "</td></tr>");
  }
  return out + "</table></section>";
}

}  // namespace

std::string HtmlEscape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string RenderReportHtml(const SessionData& data, const SessionStats& stats,
                             const ReportOptions& options) {
  const SessionSummary& s = data.summary;
  const v1::SessionConfig& c = data.config;
  const ScoredStimulus* best_image = BestMeasured(stats);
  const double best = best_image != nullptr ? best_image->mean_objective : std::nan("");
  std::string out = absl::StrFormat(
      "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" "
      "content=\"width=device-width, initial-scale=1\"><title>stimloop session %s</title>"
      "<style>%s</style></head><body><header><h1>Session <span id=\"session-id\">%s</span></h1>"
      "<div class=\"sub\">%s · %s in %s space · objective: %s · created %s</div></header><main>",
      HtmlEscape(s.id), kStyle, HtmlEscape(s.id), HtmlEscape(s.status), HtmlEscape(s.optimizer),
      HtmlEscape(s.image_space), HtmlEscape(ObjectiveLabel(c)), HtmlEscape(FormatUtc(s.created)));
  out += "<section id=\"summary\"><h2>Summary</h2><div class=\"facts\">";
  out += Fact("subject", s.subject.empty() ? "-" : s.subject);
  out += Fact("site", s.site.empty() ? "-" : s.site);
  out += Fact("neurons", absl::StrCat(c.num_neurons()));
  out += Fact("image",
              absl::StrCat(c.image().height(), "×", c.image().width(), "×", c.image().channels()));
  out += Fact("generations", absl::StrCat(s.generations));
  out += Fact("stimuli", absl::StrCat(s.stimuli));
  out += Fact("responses", absl::StrCat(s.responses));
  out += Fact("skipped", absl::StrCat(s.skipped));
  out += Fact("best mean objective", FormatNumber(best));
  out += Fact("model versions", absl::StrCat(data.model_versions.size()));
  out += "</div></section>";
  out += ProgressSection(stats);
  out += BestSection(stats, options.best_stimuli);
  out += ModelSection(data, stats);
  out += GenerationTable(stats);
  std::string json;
  google::protobuf::util::JsonPrintOptions json_options;
  json_options.add_whitespace = true;
  json_options.preserve_proto_field_names = true;
  if (!google::protobuf::util::MessageToJsonString(c, &json, json_options).ok()) {
    json = data.config_json;
  }
  absl::StrAppend(&out, "<section id=\"config\"><h2>Config</h2><pre>", HtmlEscape(json),
                  "</pre></section></main><footer>stimloop-inspect report · ",
                  HtmlEscape(FormatUtc(absl::Now())), "</footer></body></html>\n");
  return out;
}

}  // namespace inspect
}  // namespace stimloop
