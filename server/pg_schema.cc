#include "server/pg_schema.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace stimloop {
namespace {

// Migration i brings the schema from version i to i + 1. Append only: a
// released migration is never edited. server/store_schema.md documents
// the result.
constexpr const char* kMigrations[] = {
    // 0 -> 1: the first schema: SQLite's version 3, with leases.
    R"sql(
CREATE TABLE sessions (
  id TEXT PRIMARY KEY,
  status TEXT NOT NULL CHECK (status IN ('open', 'closed')),
  created_ns BIGINT NOT NULL,
  closed_ns BIGINT,
  optimizer TEXT NOT NULL,
  image_space TEXT NOT NULL,
  config BYTEA NOT NULL,
  config_crc32 BIGINT,
  config_json TEXT NOT NULL,
  metadata_json TEXT NOT NULL
);
CREATE TABLE generations (
  session_id TEXT NOT NULL REFERENCES sessions (id),
  generation BIGINT NOT NULL,
  proposed_ns BIGINT NOT NULL,
  responses_told BIGINT NOT NULL,
  optimizer_state BYTEA NOT NULL,
  optimizer_state_crc32 BIGINT,
  PRIMARY KEY (session_id, generation)
);
CREATE TABLE stimuli (
  id TEXT PRIMARY KEY,
  session_id TEXT NOT NULL REFERENCES sessions (id),
  sequence BIGINT NOT NULL,
  generation BIGINT NOT NULL,
  position BIGINT NOT NULL,
  origin TEXT NOT NULL,
  is_reference BOOLEAN NOT NULL,
  png BYTEA NOT NULL,
  png_crc32 BIGINT,
  code BYTEA,
  code_crc32 BIGINT,
  model_version BIGINT NOT NULL,
  predicted_objective DOUBLE PRECISION,
  handed_out_ns BIGINT,
  UNIQUE (session_id, sequence)
);
CREATE TABLE responses (
  seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  session_id TEXT NOT NULL REFERENCES sessions (id),
  stimulus_id TEXT NOT NULL REFERENCES stimuli (id),
  request_id TEXT NOT NULL,
  received_ns BIGINT NOT NULL,
  skipped BOOLEAN NOT NULL,
  rates BYTEA,
  rates_crc32 BIGINT
);
CREATE INDEX responses_by_session ON responses (session_id, seq);
CREATE INDEX responses_by_stimulus ON responses (stimulus_id);
CREATE TABLE reports (
  session_id TEXT NOT NULL REFERENCES sessions (id),
  request_id TEXT NOT NULL,
  received_ns BIGINT NOT NULL,
  responses BIGINT NOT NULL,
  ack BYTEA NOT NULL,
  ack_crc32 BIGINT,
  content_digest BYTEA NOT NULL,
  PRIMARY KEY (session_id, request_id)
);
CREATE TABLE model_versions (
  session_id TEXT NOT NULL REFERENCES sessions (id),
  version BIGINT NOT NULL,
  created_ns BIGINT NOT NULL,
  metrics_json TEXT NOT NULL,
  checkpoint BYTEA NOT NULL,
  checkpoint_crc32 BIGINT,
  PRIMARY KEY (session_id, version)
);
CREATE TABLE events (
  seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  session_id TEXT,
  time_ns BIGINT NOT NULL,
  kind TEXT NOT NULL,
  detail TEXT NOT NULL
);
CREATE INDEX events_by_session ON events (session_id, seq);
CREATE TABLE leases (
  session_id TEXT PRIMARY KEY REFERENCES sessions (id),
  owner TEXT NOT NULL,
  address TEXT NOT NULL,
  acquired_at TIMESTAMPTZ NOT NULL,
  expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX leases_by_owner ON leases (owner);
)sql",
};
static_assert(sizeof(kMigrations) / sizeof(kMigrations[0]) == kPgStoreSchemaVersion,
              "one migration per schema version");

// Any key, the same in every replica: serializes schema checks.
constexpr char kLockSql[] = "SELECT pg_advisory_xact_lock(5391435196450214224)";

absl::Status Check(PgConnection& conn, const std::string& where) {
  auto table = conn.Exec("SELECT to_regclass('schema_version') IS NOT NULL", "reading the schema");
  if (!table.ok()) return table.status();
  if (!table->Bool(0, 0)) {
    auto others = conn.Exec(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'v', 'p')",
        "reading the schema");
    if (!others.ok()) return others.status();
    const int64_t tables = others->Int(0, 0);
    if (tables > 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          where, " holds ", tables,
          " tables of another application and no stimloop "
          "schema_version table; choose another database (or schema); the server does not "
          "touch it."));
    }
    return absl::OkStatus();  // empty: migrated from version 0
  }
  auto rows = conn.Exec("SELECT application, version FROM schema_version", "reading the schema");
  if (!rows.ok()) return rows.status();
  if (rows->rows() != 1) {
    return absl::DataLossError(absl::StrCat(where, ": schema_version has ", rows->rows(),
                                            " rows, not one: the schema is damaged"));
  }
  const std::string application = rows->Bytes(0, 0);
  const int64_t version = rows->Int(0, 1);
  if (application != kPgStoreApplication) {
    return absl::FailedPreconditionError(absl::StrCat(
        where, " is a database of another application (schema_version.application '", application,
        "'), not a stimloop store; choose another database; the server does not "
        "touch it."));
  }
  if (version < 1) {
    return absl::DataLossError(absl::StrCat(where, " has schema version ", version,
                                            ", which no stimloop writes: the schema is damaged"));
  }
  if (version > kPgStoreSchemaVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat(where, " has schema version ", version, ", newer than this build reads (",
                     kPgStoreSchemaVersion, "); run a newer stimloop-server"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckAndMigratePgSchema(PgConnection& conn, const std::string& where) {
  if (absl::Status s = conn.Begin("BEGIN", "session store: checking the schema"); !s.ok()) {
    return s;
  }
  absl::Status status = conn.Exec(kLockSql, "session store: locking the schema").status();
  if (status.ok()) status = Check(conn, where);
  int64_t version = 0;
  if (status.ok()) {
    auto table = conn.Exec("SELECT to_regclass('schema_version') IS NOT NULL",
                           "session store: reading the schema");
    status = table.status();
    if (status.ok() && table->Bool(0, 0)) {
      auto v = conn.Exec("SELECT version FROM schema_version", "session store: reading the schema");
      status = v.status();
      if (status.ok()) version = v->Int(0, 0);
    }
  }
  if (status.ok() && version == 0) {
    status = conn.Run(
        "CREATE TABLE schema_version (application TEXT NOT NULL, version "
        "INTEGER NOT NULL)",
        "session store: creating schema_version");
    if (status.ok()) {
      PgParams p;
      p.Text(kPgStoreApplication);
      status = conn.Exec("INSERT INTO schema_version VALUES ($1, 0)", p,
                         "session store: writing the schema version")
                   .status();
    }
  }
  for (int64_t v = version; v < kPgStoreSchemaVersion && status.ok(); ++v) {
    status = conn.Run(kMigrations[v],
                      absl::StrCat("session store: migrating the schema to version ", v + 1));
    if (status.ok()) {
      PgParams p;
      p.Int(v + 1);
      status = conn.Exec("UPDATE schema_version SET version = $1", p,
                         "session store: writing the schema version")
                   .status();
    }
  }
  if (!status.ok()) {
    conn.Rollback();
    return status;
  }
  return conn.Commit("session store: migrating the schema");
}

}  // namespace stimloop
