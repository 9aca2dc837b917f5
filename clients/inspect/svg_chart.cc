#include "clients/inspect/svg_chart.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "clients/inspect/report_html.h"

namespace stimloop {
namespace inspect {
namespace {

// About `count` round tick values covering [lo, hi].
std::vector<double> Ticks(double lo, double hi, int count) {
  const double span = hi - lo;
  const double raw = span / count;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double step = magnitude;
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0}) {
    step = m * magnitude;
    if (step >= raw) break;
  }
  std::vector<double> ticks;
  for (double t = std::ceil(lo / step - 1e-9) * step; t <= hi + step * 1e-9; t += step) {
    ticks.push_back(std::abs(t) < step * 1e-9 ? 0.0 : t);
  }
  return ticks;
}

std::string TickLabel(double v) { return absl::StrFormat("%.4g", v); }

}  // namespace

std::string RenderLineChart(const std::vector<ChartSeries>& series, const ChartOptions& o) {
  constexpr double kLeft = 58, kRight = 16, kTop = 50, kBottom = 44;
  const double plot_w = o.width - kLeft - kRight, plot_h = o.height - kTop - kBottom;
  double x0 = std::numeric_limits<double>::infinity(), x1 = -x0, y0 = x0, y1 = -x0;
  for (const ChartSeries& s : series) {
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      x0 = std::min(x0, s.x[i]);
      x1 = std::max(x1, s.x[i]);
      y0 = std::min(y0, s.y[i]);
      y1 = std::max(y1, s.y[i]);
    }
  }
  std::string svg = absl::StrFormat(
      "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %d %d\" "
      "width=\"%d\" height=\"%d\" role=\"img\" aria-label=\"%s\">"
      "<text class=\"chart-title\" x=\"%g\" y=\"18\">%s</text>",
      o.width, o.height, o.width, o.height, HtmlEscape(o.title), kLeft, HtmlEscape(o.title));
  absl::StrAppendFormat(&svg, "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" class=\"plot\"/>",
                        kLeft, kTop, plot_w, plot_h);
  const bool empty = !std::isfinite(x0);
  if (empty) {
    absl::StrAppendFormat(&svg, "<text class=\"nodata\" x=\"%g\" y=\"%g\">no data</text></svg>",
                          kLeft + plot_w / 2, kTop + plot_h / 2);
    return svg;
  }
  if (x1 == x0) x1 = x0 + 1;
  if (y1 == y0) {
    y0 -= 1;
    y1 += 1;
  }
  const double pad = (y1 - y0) * 0.06;
  y0 -= pad;
  y1 += pad;
  auto px = [&](double x) { return kLeft + (x - x0) / (x1 - x0) * plot_w; };
  auto py = [&](double y) { return kTop + (1 - (y - y0) / (y1 - y0)) * plot_h; };

  for (double t : Ticks(y0, y1, 5)) {
    absl::StrAppendFormat(
        &svg,
        "<line class=\"grid\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>"
        "<text class=\"tick\" text-anchor=\"end\" x=\"%.1f\" y=\"%.1f\">%s</text>",
        kLeft, kLeft + plot_w, py(t), py(t), kLeft - 6, py(t) + 4, TickLabel(t));
  }
  for (double t : Ticks(x0, x1, 8)) {
    if (x1 - x0 >= 2 && std::abs(t - std::round(t)) > 1e-9) continue;  // integer generations
    absl::StrAppendFormat(&svg,
                          "<text class=\"tick\" text-anchor=\"middle\" x=\"%.1f\" y=\"%.1f\">%s"
                          "</text>",
                          px(t), kTop + plot_h + 16, TickLabel(t));
  }
  absl::StrAppendFormat(&svg,
                        "<text class=\"axis\" text-anchor=\"middle\" x=\"%.1f\" y=\"%d\">%s</text>"
                        "<text class=\"axis\" text-anchor=\"middle\" transform=\"translate(14 "
                        "%.1f) rotate(-90)\">%s</text>",
                        kLeft + plot_w / 2, o.height - 6, HtmlEscape(o.x_label), kTop + plot_h / 2,
                        HtmlEscape(o.y_label));

  // The legend: one row under the title, left to right.
  double legend_x = kLeft;
  for (const ChartSeries& s : series) {
    absl::StrAppendFormat(&svg,
                          "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"34\" y2=\"34\" stroke=\"%s\" "
                          "stroke-width=\"2.5\"%s/><text class=\"legend\" x=\"%.1f\" y=\"38\">%s"
                          "</text>",
                          legend_x, legend_x + 16, s.color,
                          s.dashed ? " stroke-dasharray=\"4 3\"" : "", legend_x + 21,
                          HtmlEscape(s.name));
    legend_x += 36 + 6.5 * s.name.size();
  }
  for (const ChartSeries& s : series) {
    std::string path;
    bool pen_down = false;
    std::string dots;
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.y[i]) || !std::isfinite(s.x[i])) {
        pen_down = false;
        continue;
      }
      absl::StrAppendFormat(&path, "%s%.1f %.1f ", pen_down ? "L" : "M", px(s.x[i]), py(s.y[i]));
      pen_down = true;
      if (s.markers) {
        absl::StrAppendFormat(&dots, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>",
                              px(s.x[i]), py(s.y[i]), s.color);
      }
    }
    absl::StrAppendFormat(&svg,
                          "<path class=\"series\" d=\"%s\" fill=\"none\" stroke=\"%s\" "
                          "stroke-width=\"2\" stroke-linejoin=\"round\"%s/>%s",
                          path, s.color, s.dashed ? " stroke-dasharray=\"5 4\"" : "", dots);
  }
  return svg + "</svg>";
}

}  // namespace inspect
}  // namespace stimloop
