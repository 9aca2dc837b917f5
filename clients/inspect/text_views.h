// The plain-text tables of `stimloop-inspect list` and `show`.
#ifndef STIMLOOP_CLIENTS_INSPECT_TEXT_VIEWS_H_
#define STIMLOOP_CLIENTS_INSPECT_TEXT_VIEWS_H_

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "clients/inspect/session_stats.h"
#include "clients/inspect/store_reader.h"

namespace stimloop {
namespace inspect {

// One header line, then one line per session: id, created (UTC), subject,
// site, optimizer, image space, status, generations, stimuli, responses,
// skipped. Empty fields print as '-'; long text is cut to its column, the
// cut marked with '~'.
std::string FormatSessionList(const std::vector<SessionSummary>& sessions);

// A header (session, config summary, counts), then one line per
// generation: stimuli, presentations, mean and max measured objective,
// best so far, predicted vs measured (n, means, r), model version and its
// held-out r, reference images' mean objective. Missing values print '-'.
std::string FormatSessionShow(const SessionData& data, const SessionStats& stats);

// "2026-11-23 16:49:20 UTC".
std::string FormatUtc(absl::Time t);
// "%.4g", or "-" for NaN.
std::string FormatNumber(double v);

}  // namespace inspect
}  // namespace stimloop

#endif  // STIMLOOP_CLIENTS_INSPECT_TEXT_VIEWS_H_
