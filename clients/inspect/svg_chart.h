// A small inline-SVG line chart for the HTML report: numeric x and y axes
// with rounded ticks, one polyline per series (NaN points break a line),
// and a legend. No scripts, no external resources.
#ifndef STIMLOOP_CLIENTS_INSPECT_SVG_CHART_H_
#define STIMLOOP_CLIENTS_INSPECT_SVG_CHART_H_

#include <string>
#include <vector>

namespace stimloop {
namespace inspect {

struct ChartSeries {
  std::string name;
  std::string color;         // CSS color
  std::vector<double> x, y;  // same length; NaN y values are gaps
  bool dashed = false;
  bool markers = false;  // a dot at every point
};

struct ChartOptions {
  std::string title;
  std::string x_label;
  std::string y_label;
  int width = 520;
  int height = 300;
};

// An <svg> element (class "chart"). Without finite points it draws the
// axes frame and the text "no data".
std::string RenderLineChart(const std::vector<ChartSeries>& series, const ChartOptions& options);

}  // namespace inspect
}  // namespace stimloop

#endif  // STIMLOOP_CLIENTS_INSPECT_SVG_CHART_H_
