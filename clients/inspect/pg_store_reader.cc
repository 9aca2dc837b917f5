// StoreReader::OpenPostgres: the inspection tools' reader of a PostgreSQL
// store (server/store_schema.md, "The PostgreSQL store"). Read-only: the
// session's default is READ ONLY, and each Load* call is one REPEATABLE
// READ snapshot. Every payload read is verified against its checksum, as
// the SQLite reader does.
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/pg_connection.h"
#include "clients/inspect/store_reader.h"
#include "server/pg_schema.h"
#include "server/store_checksum.h"

namespace stimloop {
namespace inspect {
namespace {

constexpr char kSummarySql[] =
    "SELECT s.id, s.status, s.created_ns, s.optimizer, s.image_space, s.config, "
    "(SELECT COUNT(*) FROM generations g WHERE g.session_id = s.id), "
    "(SELECT COUNT(*) FROM stimuli t WHERE t.session_id = s.id), "
    "(SELECT COUNT(*) FROM responses r WHERE r.session_id = s.id AND NOT r.skipped), "
    "(SELECT COUNT(*) FROM responses r WHERE r.session_id = s.id AND r.skipped), "
    "s.config_crc32 FROM sessions s ";

absl::Status ReadSummary(const PgResult& q, int r, SessionSummary* out, v1::SessionConfig* config) {
  out->id = q.Bytes(r, 0);
  out->status = q.Bytes(r, 1);
  out->created = absl::FromUnixNanos(q.Int(r, 2));
  out->optimizer = q.Bytes(r, 3);
  out->image_space = q.Bytes(r, 4);
  const std::string config_bytes = q.Bytes(r, 5);
  if (absl::Status s = VerifyStoredChecksum(absl::StrCat("session '", out->id, "'"), "config",
                                            config_bytes, q.OptionalInt(r, 10));
      !s.ok()) {
    return s;
  }
  if (absl::Status s = ParseStoredConfig(config_bytes, out, config); !s.ok()) return s;
  out->generations = q.Int(r, 6);
  out->stimuli = q.Int(r, 7);
  out->responses = q.Int(r, 8);
  out->skipped = q.Int(r, 9);
  return absl::OkStatus();
}

class PgStoreReader : public StoreReader {
 public:
  PgStoreReader(std::string where, std::unique_ptr<PgConnection> conn)
      : StoreReader(std::move(where)), conn_(std::move(conn)) {}

  absl::StatusOr<std::vector<SessionSummary>> ListSessions() override {
    std::vector<SessionSummary> out;
    absl::Status status = InSnapshot([&]() -> absl::Status {
      auto q = conn_->Exec(absl::StrCat(kSummarySql, "ORDER BY s.created_ns, s.id").c_str(),
                           "store: listing sessions");
      if (!q.ok()) return q.status();
      for (int r = 0; r < q->rows(); ++r) {
        SessionSummary summary;
        v1::SessionConfig config;
        if (absl::Status s = ReadSummary(*q, r, &summary, &config); !s.ok()) return s;
        out.push_back(std::move(summary));
      }
      return absl::OkStatus();
    });
    if (!status.ok()) return status;
    return out;
  }

  absl::StatusOr<SessionData> LoadSession(const std::string& session_id) override {
    SessionData data;
    absl::Status status = InSnapshot([&]() { return Load(session_id, &data); });
    if (!status.ok()) return status;
    return data;
  }

 private:
  template <typename Body>
  absl::Status InSnapshot(Body body) {
    const char* what = "store: reading";
    if (absl::Status s = conn_->Begin("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", what);
        !s.ok()) {
      return s;
    }
    absl::Status status = body();
    if (!status.ok()) {
      conn_->Rollback();
      return status;
    }
    return conn_->Commit(what);
  }

  absl::Status Load(const std::string& session_id, SessionData* data) {
    PgParams id;
    id.Text(session_id);
    auto q = conn_->Exec(absl::StrCat(kSummarySql, "WHERE s.id = $1").c_str(), id,
                         "store: reading the session");
    if (!q.ok()) return q.status();
    if (q->rows() == 0) {
      return absl::NotFoundError(
          absl::StrCat("SESSION: no session '", session_id, "' in ", path()));
    }
    if (absl::Status s = ReadSummary(*q, 0, &data->summary, &data->config); !s.ok()) return s;
    q = conn_->Exec("SELECT config_json FROM sessions WHERE id = $1", id,
                    "store: reading the config");
    if (!q.ok()) return q.status();
    if (q->rows() == 1) data->config_json = q->Bytes(0, 0);

    q = conn_->Exec(
        "SELECT id, sequence, generation, position, origin, is_reference, png, model_version, "
        "predicted_objective, png_crc32 FROM stimuli WHERE session_id = $1 ORDER BY sequence",
        id, "store: reading stimuli");
    if (!q.ok()) return q.status();
    for (int r = 0; r < q->rows(); ++r) {
      StoredStimulus s;
      s.id = q->Bytes(r, 0);
      s.sequence = q->Int(r, 1);
      s.generation = q->Int(r, 2);
      s.position = q->Int(r, 3);
      s.origin = q->Bytes(r, 4);
      s.is_reference = q->Bool(r, 5);
      s.png = q->Bytes(r, 6);
      if (absl::Status v =
              VerifyStoredChecksum(absl::StrCat("session '", session_id, "' stimulus ", s.sequence),
                                   "png", s.png, q->OptionalInt(r, 9));
          !v.ok()) {
        return v;
      }
      s.model_version = q->Int(r, 7);
      // NULL (no prediction) reads as 0, as the SQLite reader's does.
      s.predicted_objective = q->Double(r, 8);
      data->stimuli.push_back(std::move(s));
    }

    q = conn_->Exec(
        "SELECT seq, stimulus_id, request_id, received_ns, skipped, rates, rates_crc32 "
        "FROM responses WHERE session_id = $1 ORDER BY seq",
        id, "store: reading responses");
    if (!q.ok()) return q.status();
    for (int row = 0; row < q->rows(); ++row) {
      StoredResponse r;
      r.seq = q->Int(row, 0);
      r.stimulus_id = q->Bytes(row, 1);
      r.request_id = q->Bytes(row, 2);
      r.received = absl::FromUnixNanos(q->Int(row, 3));
      r.skipped = q->Bool(row, 4);
      if (!r.skipped) {
        const std::string bytes = q->Bytes(row, 5);
        if (absl::Status v =
                VerifyStoredChecksum(absl::StrCat("session '", session_id, "' response ", r.seq),
                                     "rates", bytes, q->OptionalInt(row, 6));
            !v.ok()) {
          return v;
        }
        if (bytes.size() % sizeof(double) != 0) {
          return absl::DataLossError(absl::StrCat("store: response ", r.seq, ": rates of ",
                                                  bytes.size(),
                                                  " bytes is not an array of doubles"));
        }
        r.rates.resize(bytes.size() / sizeof(double));  // little-endian, as written
        if (!bytes.empty()) std::memcpy(r.rates.data(), bytes.data(), bytes.size());
      }
      data->responses.push_back(std::move(r));
    }

    q = conn_->Exec(
        "SELECT version, created_ns, metrics_json FROM model_versions WHERE session_id = $1 "
        "ORDER BY version",
        id, "store: reading model versions");
    if (!q.ok()) return q.status();
    for (int r = 0; r < q->rows(); ++r) {
      data->model_versions.push_back(
          {q->Int(r, 0), absl::FromUnixNanos(q->Int(r, 1)), q->Bytes(r, 2)});
    }
    return absl::OkStatus();
  }

  std::unique_ptr<PgConnection> conn_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<StoreReader>> StoreReader::OpenPostgres(const std::string& uri) {
  auto conn = PgConnection::Connect(uri);
  if (!conn.ok()) return conn.status();
  const std::string where = absl::StrCat("PostgreSQL ", (*conn)->Describe());
  if (absl::Status s = (*conn)->Run("SET default_transaction_read_only = on", "store: connecting");
      !s.ok()) {
    return s;
  }
  auto table = (*conn)->Exec("SELECT to_regclass('schema_version') IS NOT NULL",
                             "store: reading the schema");
  if (!table.ok()) return table.status();
  if (!table->Bool(0, 0)) {
    return absl::FailedPreconditionError(
        absl::StrCat(where, " is not a stimloop store (no schema_version table)"));
  }
  auto version =
      (*conn)->Exec("SELECT application, version FROM schema_version", "store: reading the schema");
  if (!version.ok()) return version.status();
  if (version->rows() != 1 || version->Bytes(0, 0) != kPgStoreApplication) {
    return absl::FailedPreconditionError(
        absl::StrCat(where, " is not a stimloop store (schema_version.application)"));
  }
  if (version->Int(0, 1) > kPgStoreSchemaVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat(where, " has schema version ", version->Int(0, 1),
                     ", newer than this build reads (", kPgStoreSchemaVersion, ")"));
  }
  return std::unique_ptr<StoreReader>(std::make_unique<PgStoreReader>(where, *std::move(conn)));
}

}  // namespace inspect
}  // namespace stimloop
