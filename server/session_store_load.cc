// SessionStore::LoadSession: reads one session's journal back
// (server/session_restore.h), verifying every payload's checksum.
#include <sqlite3.h>

#include <algorithm>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "base/echo.h"
#include "base/sqlite_statement.h"
#include "server/report_digest.h"
#include "server/session_store.h"
#include "server/store_checksum.h"
#include "server/store_encoding.h"
#include "server/store_schema.h"

namespace stimloop {
namespace {

// Reports journaled by schema version 1 have no content digest: computes it
// from their responses (request_ids[k] is the report of responses[k]),
// which hold the whole content. A report whose responses are all gone is
// DATA_LOSS.
absl::StatusOr<JournaledSession> FillMissingDigests(const std::vector<std::string>& request_ids,
                                                     JournaledSession* session) {
  for (JournaledAck& a : session->acks) {
    if (!a.content_digest.empty()) continue;
    std::vector<ResponseEntry> responses;
    for (size_t k = 0; k < request_ids.size(); ++k) {
      if (request_ids[k] == a.request_id) responses.push_back(session->responses[k]);
    }
    if (responses.empty()) {
      return absl::DataLossError(absl::StrCat("session store: session '", session->id,
                                              "': report ", QuotedEcho(a.request_id),
                                              " has no responses"));
    }
    auto digest = ReportDigest(responses);
    if (!digest.ok()) return digest.status();
    a.content_digest = *std::move(digest);
  }
  return std::move(*session);
}

}  // namespace

absl::StatusOr<JournaledSession> SessionStore::LoadSession(const std::string& session_id) {
  absl::MutexLock lock(&mu_);
  JournaledSession out;
  out.id = session_id;
  const std::string where = absl::StrCat("session store: session '", session_id, "': ");
  // Rows named in checksum errors: "session 'abc' stimulus 17".
  const std::string session_row = absl::StrCat("session '", session_id, "'");
  // One read transaction: a consistent snapshot.
  if (absl::Status s = StoreExec(db_, "BEGIN", "loading a session"); !s.ok()) return s;
  absl::Cleanup end = [this] { StoreExec(db_, "COMMIT", "loading a session").IgnoreError(); };

  auto stmt =
      Prepared("SELECT status, created_ns, config, config_crc32 FROM sessions WHERE id = ?");
  if (!stmt.ok()) return stmt.status();
  {
    SqliteStatement q(db_, *stmt, "session store: select from sessions");
    auto row = q.Text(session_id).Step();
    if (!row.ok()) return row.status();
    if (!*row) {
      return absl::NotFoundError(
          absl::StrCat("session_id: no session ", QuotedEcho(session_id), " in the store"));
    }
    out.closed = q.ColumnBytes(0) == "closed";
    out.created = absl::FromUnixNanos(q.ColumnInt(1));
    const std::string config = q.ColumnBytes(2);
    if (absl::Status s =
            VerifyStoredChecksum(session_row, "config", config, q.ColumnOptionalInt(3));
        !s.ok()) {
      return s;
    }
    if (!out.config.ParseFromString(config)) {
      return absl::DataLossError(absl::StrCat(where, "sessions.config does not parse"));
    }
  }

  stmt = Prepared(
      "SELECT generation, responses_told, optimizer_state, optimizer_state_crc32 "
      "FROM generations "
      "WHERE session_id = ? ORDER BY generation DESC LIMIT 1");
  if (!stmt.ok()) return stmt.status();
  {
    SqliteStatement q(db_, *stmt, "session store: select from generations");
    auto row = q.Text(session_id).Step();
    if (!row.ok()) return row.status();
    if (*row) {
      out.generation = q.ColumnInt(0);
      out.responses_told = q.ColumnInt(1);
      out.optimizer_state = q.ColumnBytes(2);
      if (absl::Status s =
              VerifyStoredChecksum(absl::StrCat(session_row, " generation ", out.generation),
                                   "optimizer_state", out.optimizer_state, q.ColumnOptionalInt(3));
          !s.ok()) {
        return s;
      }
    }
  }
  stmt = Prepared(
      "SELECT generation, responses_told FROM generations WHERE session_id = ? "
      "ORDER BY generation");
  if (!stmt.ok()) return stmt.status();
  {
    SqliteStatement q(db_, *stmt, "session store: select from generations");
    q.Text(session_id);
    while (true) {
      auto row = q.Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      if (q.ColumnInt(0) != static_cast<int64_t>(out.generation_responses_told.size()) + 1) {
        return absl::DataLossError(absl::StrCat(where, "generation ", q.ColumnInt(0),
                                                " follows generation ",
                                                out.generation_responses_told.size()));
      }
      out.generation_responses_told.push_back(q.ColumnInt(1));
    }
  }

  stmt = Prepared(
      "SELECT id, sequence, generation, position, origin, is_reference, png, code, "
      "model_version, predicted_objective, handed_out_ns, png_crc32, code_crc32 FROM stimuli "
      "WHERE session_id = ? ORDER BY sequence");
  if (!stmt.ok()) return stmt.status();
  {
    SqliteStatement q(db_, *stmt, "session store: select from stimuli");
    q.Text(session_id);
    while (true) {
      auto row = q.Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      JournaledStimulus s;
      StimulusEntry& e = s.entry;
      e.id = q.ColumnBytes(0);
      e.sequence = q.ColumnInt(1);
      e.generation = q.ColumnInt(2);
      s.position = static_cast<int>(q.ColumnInt(3));
      e.origin = q.ColumnBytes(4);
      e.is_reference = q.ColumnInt(5) != 0;
      e.png = q.ColumnBytes(6);
      const std::string stimulus_row = absl::StrCat(session_row, " stimulus ", e.sequence);
      if (absl::Status s =
              VerifyStoredChecksum(stimulus_row, "png", e.png, q.ColumnOptionalInt(11));
          !s.ok()) {
        return s;
      }
      if (!q.IsNull(7)) {
        const std::string code = q.ColumnBytes(7);
        if (absl::Status s =
                VerifyStoredChecksum(stimulus_row, "code", code, q.ColumnOptionalInt(12));
            !s.ok()) {
          return s;
        }
        if (!DecodeArray(code, &e.code)) {
          return absl::DataLossError(absl::StrCat(where, "stimuli.code of '", e.id,
                                                  "' is not a float32 array"));
        }
      }
      e.model_version = q.ColumnInt(8);
      e.predicted_objective = q.IsNull(9) ? std::numeric_limits<double>::quiet_NaN()
                                          : q.ColumnDouble(9);
      s.handed_out = !q.IsNull(10);
      out.stimuli.push_back(std::move(s));
    }
  }

  stmt = Prepared(
      "SELECT stimulus_id, skipped, rates, rates_crc32, seq, request_id FROM responses "
      "WHERE session_id = ? ORDER BY seq");
  if (!stmt.ok()) return stmt.status();
  std::vector<std::string> response_request_ids;  // of out.responses[k]
  {
    SqliteStatement q(db_, *stmt, "session store: select from responses");
    q.Text(session_id);
    while (true) {
      auto row = q.Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      ResponseEntry r;
      r.stimulus_id = q.ColumnBytes(0);
      r.skipped = q.ColumnInt(1) != 0;
      if (!r.skipped) {
        const std::string rates = q.ColumnBytes(2);
        if (absl::Status s =
                VerifyStoredChecksum(absl::StrCat(session_row, " response ", q.ColumnInt(4)),
                                     "rates", rates, q.ColumnOptionalInt(3));
            !s.ok()) {
          return s;
        }
        if (!DecodeArray(rates, &r.rates)) {
          return absl::DataLossError(absl::StrCat(where, "responses.rates for '", r.stimulus_id,
                                                  "' is not a float64 array"));
        }
      }
      out.responses.push_back(std::move(r));
      out.response_rows.push_back(q.ColumnInt(4));
      response_request_ids.push_back(q.ColumnBytes(5));
    }
  }

  stmt = Prepared(
      "SELECT version, json_extract(metrics_json, '$.num_trials'), checkpoint, "
      "checkpoint_crc32 FROM model_versions WHERE session_id = ? "
      "ORDER BY version DESC LIMIT ?");
  if (!stmt.ok()) return stmt.status();
  {
    SqliteStatement q(db_, *stmt, "session store: select from model_versions");
    q.Text(session_id).Int(kJournaledModelVersions);
    while (true) {
      auto row = q.Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      JournaledModelVersion m;
      m.version = q.ColumnInt(0);
      if (q.IsNull(1)) {
        return absl::DataLossError(absl::StrCat(where, "model version ", m.version,
                                                " has no num_trials metric"));
      }
      m.num_trials = q.ColumnInt(1);
      m.checkpoint = q.ColumnBytes(2);
      if (absl::Status s =
              VerifyStoredChecksum(absl::StrCat(session_row, " model version ", m.version),
                                   "checkpoint", m.checkpoint, q.ColumnOptionalInt(3));
          !s.ok()) {
        return s;
      }
      out.recent_models.push_back(std::move(m));
    }
    std::reverse(out.recent_models.begin(), out.recent_models.end());
  }

  stmt = Prepared(
      "SELECT request_id, ack, content_digest, ack_crc32 FROM reports WHERE session_id = ?");
  if (!stmt.ok()) return stmt.status();
  {
    SqliteStatement q(db_, *stmt, "session store: select from reports");
    q.Text(session_id);
    while (true) {
      auto row = q.Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      JournaledAck& a = out.acks.emplace_back();
      a.request_id = q.ColumnBytes(0);
      const std::string ack_bytes = q.ColumnBytes(1);
      if (absl::Status s =
              VerifyStoredChecksum(absl::StrCat(session_row, " report ", QuotedEcho(a.request_id)),
                                   "ack", ack_bytes, q.ColumnOptionalInt(3));
          !s.ok()) {
        return s;
      }
      if (!a.ack.ParseFromString(ack_bytes)) {
        return absl::DataLossError(
            absl::StrCat(where, "reports.ack of request '", a.request_id, "' does not parse"));
      }
      a.content_digest = q.ColumnBytes(2);
    }
  }
  return FillMissingDigests(response_request_ids, &out);
}

}  // namespace stimloop
