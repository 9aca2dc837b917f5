// PgSessionStore::LoadSession: reads one session's journal back
// (server/session_restore.h) in one REPEATABLE READ snapshot, verifying
// every payload's checksum as the SQLite store does.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/echo.h"
#include "server/pg_session_store.h"
#include "server/store_checksum.h"
#include "server/store_encoding.h"

namespace stimloop {

absl::StatusOr<JournaledSession> PgSessionStore::LoadSession(const std::string& session_id) {
  auto handle = pool_->Acquire();
  if (!handle.ok()) return handle.status();
  PgConnection& c = **handle;
  JournaledSession out;
  out.id = session_id;
  const std::string where = absl::StrCat("session store: session '", session_id, "': ");
  // Rows named in checksum errors: "session 'abc' stimulus 17".
  const std::string session_row = absl::StrCat("session '", session_id, "'");
  PgParams id;
  id.Text(session_id);

  auto body = [&]() -> absl::Status {
    auto q = c.Exec(
        "SELECT status, created_ns, config, config_crc32 FROM sessions "
        "WHERE id = $1",
        id, "session store: select from sessions");
    if (!q.ok()) return q.status();
    if (q->rows() == 0) {
      return absl::NotFoundError(
          absl::StrCat("session_id: no session ", QuotedEcho(session_id), " in the store"));
    }
    out.closed = q->Bytes(0, 0) == "closed";
    out.created = absl::FromUnixNanos(q->Int(0, 1));
    const std::string config = q->Bytes(0, 2);
    if (absl::Status s = VerifyStoredChecksum(session_row, "config", config, q->OptionalInt(0, 3));
        !s.ok()) {
      return s;
    }
    if (!out.config.ParseFromString(config)) {
      return absl::DataLossError(absl::StrCat(where, "sessions.config does not parse"));
    }

    q = c.Exec(
        "SELECT generation, responses_told, optimizer_state, optimizer_state_crc32 "
        "FROM generations WHERE session_id = $1 ORDER BY generation",
        id, "session store: select from generations");
    if (!q.ok()) return q.status();
    for (int r = 0; r < q->rows(); ++r) {
      const int64_t generation = q->Int(r, 0);
      if (generation != static_cast<int64_t>(out.generation_responses_told.size()) + 1) {
        return absl::DataLossError(absl::StrCat(where, "generation ", generation,
                                                " follows generation ",
                                                out.generation_responses_told.size()));
      }
      out.generation_responses_told.push_back(q->Int(r, 1));
    }
    if (q->rows() > 0) {
      const int last = q->rows() - 1;
      out.generation = q->Int(last, 0);
      out.responses_told = q->Int(last, 1);
      out.optimizer_state = q->Bytes(last, 2);
      if (absl::Status s =
              VerifyStoredChecksum(absl::StrCat(session_row, " generation ", out.generation),
                                   "optimizer_state", out.optimizer_state, q->OptionalInt(last, 3));
          !s.ok()) {
        return s;
      }
    }

    q = c.Exec(
        "SELECT id, sequence, generation, position, origin, is_reference, png, code, "
        "model_version, predicted_objective, handed_out_ns, png_crc32, code_crc32 FROM stimuli "
        "WHERE session_id = $1 ORDER BY sequence",
        id, "session store: select from stimuli");
    if (!q.ok()) return q.status();
    for (int r = 0; r < q->rows(); ++r) {
      JournaledStimulus s;
      StimulusEntry& e = s.entry;
      e.id = q->Bytes(r, 0);
      e.sequence = q->Int(r, 1);
      e.generation = q->Int(r, 2);
      s.position = static_cast<int>(q->Int(r, 3));
      e.origin = q->Bytes(r, 4);
      e.is_reference = q->Bool(r, 5);
      e.png = q->Bytes(r, 6);
      const std::string stimulus_row = absl::StrCat(session_row, " stimulus ", e.sequence);
      if (absl::Status st = VerifyStoredChecksum(stimulus_row, "png", e.png, q->OptionalInt(r, 11));
          !st.ok()) {
        return st;
      }
      if (!q->IsNull(r, 7)) {
        const std::string code = q->Bytes(r, 7);
        if (absl::Status st =
                VerifyStoredChecksum(stimulus_row, "code", code, q->OptionalInt(r, 12));
            !st.ok()) {
          return st;
        }
        if (!DecodeArray(code, &e.code)) {
          return absl::DataLossError(
              absl::StrCat(where, "stimuli.code of '", e.id, "' is not a float32 array"));
        }
      }
      e.model_version = q->Int(r, 8);
      e.predicted_objective =
          q->IsNull(r, 9) ? std::numeric_limits<double>::quiet_NaN() : q->Double(r, 9);
      s.handed_out = !q->IsNull(r, 10);
      out.stimuli.push_back(std::move(s));
    }

    q = c.Exec(
        "SELECT stimulus_id, skipped, rates, rates_crc32, seq FROM responses "
        "WHERE session_id = $1 ORDER BY seq",
        id, "session store: select from responses");
    if (!q.ok()) return q.status();
    for (int r = 0; r < q->rows(); ++r) {
      ResponseEntry e;
      e.stimulus_id = q->Bytes(r, 0);
      e.skipped = q->Bool(r, 1);
      if (!e.skipped) {
        const std::string rates = q->Bytes(r, 2);
        if (absl::Status s =
                VerifyStoredChecksum(absl::StrCat(session_row, " response ", q->Int(r, 4)), "rates",
                                     rates, q->OptionalInt(r, 3));
            !s.ok()) {
          return s;
        }
        if (!DecodeArray(rates, &e.rates)) {
          return absl::DataLossError(absl::StrCat(where, "responses.rates for '", e.stimulus_id,
                                                  "' is not a float64 array"));
        }
      }
      out.responses.push_back(std::move(e));
      out.response_rows.push_back(q->Int(r, 4));
    }

    PgParams recent;
    recent.Text(session_id).Int(kJournaledModelVersions);
    q = c.Exec(
        "SELECT version, (metrics_json::jsonb ->> 'num_trials')::double precision, checkpoint, "
        "checkpoint_crc32 FROM model_versions WHERE session_id = $1 "
        "ORDER BY version DESC LIMIT $2",
        recent, "session store: select from model_versions");
    if (!q.ok()) return q.status();
    for (int r = 0; r < q->rows(); ++r) {
      JournaledModelVersion m;
      m.version = q->Int(r, 0);
      if (q->IsNull(r, 1)) {
        return absl::DataLossError(
            absl::StrCat(where, "model version ", m.version, " has no num_trials metric"));
      }
      m.num_trials = static_cast<int64_t>(q->Double(r, 1));
      m.checkpoint = q->Bytes(r, 2);
      if (absl::Status s =
              VerifyStoredChecksum(absl::StrCat(session_row, " model version ", m.version),
                                   "checkpoint", m.checkpoint, q->OptionalInt(r, 3));
          !s.ok()) {
        return s;
      }
      out.recent_models.push_back(std::move(m));
    }
    std::reverse(out.recent_models.begin(), out.recent_models.end());

    q = c.Exec(
        "SELECT request_id, ack, content_digest, ack_crc32 FROM reports WHERE session_id = $1", id,
        "session store: select from reports");
    if (!q.ok()) return q.status();
    for (int r = 0; r < q->rows(); ++r) {
      JournaledAck& a = out.acks.emplace_back();
      a.request_id = q->Bytes(r, 0);
      const std::string ack_bytes = q->Bytes(r, 1);
      if (absl::Status s =
              VerifyStoredChecksum(absl::StrCat(session_row, " report ", QuotedEcho(a.request_id)),
                                   "ack", ack_bytes, q->OptionalInt(r, 3));
          !s.ok()) {
        return s;
      }
      if (!a.ack.ParseFromString(ack_bytes)) {
        return absl::DataLossError(
            absl::StrCat(where, "reports.ack of request '", a.request_id, "' does not parse"));
      }
      a.content_digest = q->Bytes(r, 2);
    }
    return absl::OkStatus();
  };

  const char* what = "session store: loading a session";
  if (absl::Status s = c.Begin("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", what); !s.ok()) {
    return s;
  }
  absl::Status status = body();
  if (!status.ok()) {
    c.Rollback();
    return status;
  }
  if (absl::Status s = c.Commit(what); !s.ok()) return s;
  return out;
}

}  // namespace stimloop
