// Writes a stored session to files for analysis elsewhere: `top` (the best
// stimuli as PNG with a CSV index) and `export` (the whole session as a
// folder readable from Python and MATLAB). PNG files hold the exact bytes
// stored (and shown to the neuron), never a re-encoding.
#ifndef STIMLOOP_CLIENTS_INSPECT_EXPORT_H_
#define STIMLOOP_CLIENTS_INSPECT_EXPORT_H_

#include <string>

#include "absl/status/status.h"
#include "clients/inspect/session_stats.h"
#include "clients/inspect/store_reader.h"

namespace stimloop {
namespace inspect {

// Writes into `out_dir` (created when missing) the top `k` stimuli by mean
// measured objective as <rank>_<stimulus id>.png and top.csv (rank,
// stimulus_id, generation, origin, mean_objective, presentations, file).
// REQUIRES: k > 0.
absl::Status WriteTopStimuli(const SessionData& data, const SessionStats& stats, int k,
                             const std::string& out_dir);

// Writes into `out_dir` (created when missing): stimuli/<stimulus id>.png
// for every stimulus, stimuli.csv, responses.csv (one row per reported
// presentation, skipped ones included), config.json and README.txt.
absl::Status ExportSession(const SessionData& data, const SessionStats& stats,
                           const std::string& out_dir);

// `field` quoted for CSV when it holds a comma, quote or line break.
std::string CsvField(const std::string& field);

// A file name made from a stimulus id: anything but [A-Za-z0-9._-] becomes '_'.
std::string SafeFileName(const std::string& id);

}  // namespace inspect
}  // namespace stimloop

#endif  // STIMLOOP_CLIENTS_INSPECT_EXPORT_H_
