#include "clients/inspect/export.h"

#include <google/protobuf/util/json_util.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "clients/inspect/text_views.h"

namespace stimloop {
namespace inspect {
namespace {

absl::Status WriteFile(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write '", path.string(), "'"));
  return absl::OkStatus();
}

absl::Status MakeDir(const std::filesystem::path& dir) {
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) {
    return absl::InternalError(
        absl::StrCat("--out: cannot create '", dir.string(), "': ", error.message()));
  }
  return absl::OkStatus();
}

// Full precision, empty for NaN (pandas and readtable read it as missing).
std::string Num(double v) { return std::isnan(v) ? "" : absl::StrFormat("%.17g", v); }

std::string IsoTime(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", t, absl::UTCTimeZone());
}

constexpr char kReadme[] = R"(stimloop session export
=======================

session: %s
objective: %s
exported at: %s

Files
-----
stimuli/<stimulus_id>.png  every stimulus, the exact 8-bit PNG shown to the
                           neuron (grayscale or RGB).
stimuli.csv    one row per stimulus: stimulus_id, sequence (1-based order
               within the session), generation, position (within its
               generation), origin (optimizer name, "prior", "reference",
               "pool:<file>"), is_reference (0/1), model_version (0: no
               model), predicted_objective (empty when no model predicted
               it), presentations (responses with rates), mean_objective
               (empty when never measured), file (path of the PNG).
responses.csv  one row per reported presentation, in the order received:
               stimulus_id, generation, origin, is_reference, request_id,
               received (UTC, ISO 8601), skipped (0/1), objective (the
               session objective computed from the rates; empty when
               skipped), rate_0 .. rate_<N-1> (one column per neuron; empty
               when skipped).
config.json    the session config (stimloop.v1.SessionConfig as protobuf
               JSON).

Python (numpy, pandas)
----------------------
    import json, pandas as pd, numpy as np
    from PIL import Image   # or imageio.v3.imread
    stimuli = pd.read_csv("stimuli.csv")
    responses = pd.read_csv("responses.csv")
    config = json.load(open("config.json"))
    rates = responses.filter(like="rate_").to_numpy()     # [presentations, neurons]
    img = np.asarray(Image.open(stimuli.file[0]))          # uint8 [H, W] or [H, W, 3]
    mean_by_stimulus = responses[responses.skipped == 0].groupby("stimulus_id").objective.mean()

MATLAB
------
    stimuli = readtable('stimuli.csv', 'TextType', 'string');
    responses = readtable('responses.csv', 'TextType', 'string');
    config = jsondecode(fileread('config.json'));
    rates = responses{:, startsWith(responses.Properties.VariableNames, 'rate_')};
    img = imread(stimuli.file(1));                         %% uint8
    means = groupsummary(responses(responses.skipped == 0, :), 'stimulus_id', 'mean', 'objective');
)";

std::string ObjectiveText(const v1::SessionConfig& config) {
  switch (config.objective().kind_case()) {
    case v1::Objective::kWeightedSum:
      return "weighted sum of the rates (config.objective.weighted_sum.weights)";
    case v1::Objective::kPopulationControl:
      return absl::StrCat("population control: rate_",
                          config.objective().population_control().target(),
                          " - others_weight * mean of the other rates");
    default:
      return absl::StrCat("rate_", config.objective().single_neuron().index());
  }
}

}  // namespace

std::string CsvField(const std::string& field) {
  if (field.find_first_of(",\"\r\n") == std::string::npos) return field;
  std::string out = "\"";
  for (char c : field) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string SafeFileName(const std::string& id) {
  std::string out = id;
  for (char& c : out) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) c = '_';
  }
  if (out.empty() || out[0] == '.') out.insert(0, "_");
  return out;
}

absl::Status WriteTopStimuli(const SessionData& data, const SessionStats& stats, int k,
                             const std::string& out_dir) {
  if (k <= 0) return absl::InvalidArgumentError(absl::StrCat("--k: ", k, " must be positive"));
  if (absl::Status s = MakeDir(out_dir); !s.ok()) return s;
  std::string csv = "rank,stimulus_id,generation,origin,mean_objective,presentations,file\n";
  int rank = 0;
  for (const ScoredStimulus* s : TopStimuli(stats, k)) {
    ++rank;
    const std::string file = absl::StrFormat("%03d_%s.png", rank, SafeFileName(s->stimulus->id));
    if (absl::Status st = WriteFile(std::filesystem::path(out_dir) / file, s->stimulus->png);
        !st.ok()) {
      return st;
    }
    absl::StrAppend(&csv, rank, ",", CsvField(s->stimulus->id), ",", s->stimulus->generation, ",",
                    CsvField(s->stimulus->origin), ",", Num(s->mean_objective), ",",
                    s->presentations, ",", file, "\n");
  }
  return WriteFile(std::filesystem::path(out_dir) / "top.csv", csv);
}

absl::Status ExportSession(const SessionData& data, const SessionStats& stats,
                           const std::string& out_dir) {
  const std::filesystem::path dir(out_dir);
  if (absl::Status s = MakeDir(dir / "stimuli"); !s.ok()) return s;
  auto objective = ObjectiveFromConfig(data.config);
  if (!objective.ok()) return objective.status();

  absl::flat_hash_map<std::string, const StoredStimulus*> by_id;
  std::string stimuli_csv =
      "stimulus_id,sequence,generation,position,origin,is_reference,model_version,"
      "predicted_objective,presentations,mean_objective,file\n";
  for (const ScoredStimulus& s : stats.stimuli) {
    const StoredStimulus& st = *s.stimulus;
    by_id[st.id] = &st;
    const std::string file = absl::StrCat("stimuli/", SafeFileName(st.id), ".png");
    if (absl::Status w = WriteFile(dir / file, st.png); !w.ok()) return w;
    absl::StrAppend(&stimuli_csv, CsvField(st.id), ",", st.sequence, ",", st.generation, ",",
                    st.position, ",", CsvField(st.origin), ",", st.is_reference ? 1 : 0, ",",
                    st.model_version, ",", Num(st.predicted_objective), ",", s.presentations, ",",
                    Num(s.mean_objective), ",", file, "\n");
  }
  if (absl::Status w = WriteFile(dir / "stimuli.csv", stimuli_csv); !w.ok()) return w;

  const int neurons = data.config.num_neurons();
  std::string responses_csv =
      "stimulus_id,generation,origin,is_reference,request_id,received,skipped,objective";
  for (int n = 0; n < neurons; ++n) absl::StrAppend(&responses_csv, ",rate_", n);
  responses_csv += "\n";
  for (const StoredResponse& r : data.responses) {
    auto it = by_id.find(r.stimulus_id);
    if (it == by_id.end()) {
      return absl::DataLossError(
          absl::StrCat("response ", r.seq, ": unknown stimulus '", r.stimulus_id, "'"));
    }
    const StoredStimulus& st = *it->second;
    absl::StrAppend(&responses_csv, CsvField(st.id), ",", st.generation, ",", CsvField(st.origin),
                    ",", st.is_reference ? 1 : 0, ",", CsvField(r.request_id), ",",
                    IsoTime(r.received), ",", r.skipped ? 1 : 0, ",",
                    r.skipped ? "" : Num(objective->Evaluate(r.rates)));
    for (int n = 0; n < neurons; ++n) {
      absl::StrAppend(&responses_csv, ",",
                      n < static_cast<int>(r.rates.size()) ? Num(r.rates[n]) : "");
    }
    responses_csv += "\n";
  }
  if (absl::Status w = WriteFile(dir / "responses.csv", responses_csv); !w.ok()) return w;

  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  if (auto s = google::protobuf::util::MessageToJsonString(data.config, &json, options); !s.ok()) {
    return absl::InternalError(absl::StrCat("config as JSON: ", s.ToString()));
  }
  if (absl::Status w = WriteFile(dir / "config.json", json + "\n"); !w.ok()) return w;
  return WriteFile(dir / "README.txt",
                   absl::StrFormat(kReadme, data.summary.id, ObjectiveText(data.config),
                                   FormatUtc(absl::Now())));
}

}  // namespace inspect
}  // namespace stimloop
