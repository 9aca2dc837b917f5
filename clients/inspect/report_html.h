// `stimloop-inspect report`: one self-contained HTML page about a session
// (no external resources: images as data: URIs, inline CSS and SVG):
// progress curves (mean, max and best-so-far objective per generation;
// reference images per generation), a grid of the best stimuli with their
// mean responses and presentation counts, model quality over versions, and
// the config.
#ifndef STIMLOOP_CLIENTS_INSPECT_REPORT_HTML_H_
#define STIMLOOP_CLIENTS_INSPECT_REPORT_HTML_H_

#include <string>

#include "clients/inspect/session_stats.h"
#include "clients/inspect/store_reader.h"

namespace stimloop {
namespace inspect {

struct ReportOptions {
  int best_stimuli = 24;  // cells in the best-stimuli grid
};

// The page as one string (UTF-8).
std::string RenderReportHtml(const SessionData& data, const SessionStats& stats,
                             const ReportOptions& options = {});

// `text` with &, <, >, " and ' escaped for HTML text and attributes.
std::string HtmlEscape(const std::string& text);

}  // namespace inspect
}  // namespace stimloop

#endif  // STIMLOOP_CLIENTS_INSPECT_REPORT_HTML_H_
