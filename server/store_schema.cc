#include "server/store_schema.h"

#include <sqlite3.h>

#include <algorithm>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/sqlite_statement.h"
#include "server/store_checksum.h"

namespace stimloop {
namespace {

// Migration i brings the schema from user_version i to i + 1. Append only:
// a released migration is never edited. server/store_schema.md documents
// the result.
constexpr const char* kMigrations[] = {
    // 0 -> 1: the first schema.
    R"sql(
CREATE TABLE sessions (
  id TEXT PRIMARY KEY,
  status TEXT NOT NULL CHECK (status IN ('open', 'closed')),
  created_ns INTEGER NOT NULL,
  closed_ns INTEGER,
  optimizer TEXT NOT NULL,
  image_space TEXT NOT NULL,
  config BLOB NOT NULL,
  config_json TEXT NOT NULL,
  metadata_json TEXT NOT NULL
);
CREATE TABLE generations (
  session_id TEXT NOT NULL REFERENCES sessions (id),
  generation INTEGER NOT NULL,
  proposed_ns INTEGER NOT NULL,
  responses_told INTEGER NOT NULL,
  optimizer_state BLOB NOT NULL,
  PRIMARY KEY (session_id, generation)
);
CREATE TABLE stimuli (
  id TEXT PRIMARY KEY,
  session_id TEXT NOT NULL REFERENCES sessions (id),
  sequence INTEGER NOT NULL,
  generation INTEGER NOT NULL,
  position INTEGER NOT NULL,
  origin TEXT NOT NULL,
  is_reference INTEGER NOT NULL,
  png BLOB NOT NULL,
  code BLOB,
  model_version INTEGER NOT NULL,
  predicted_objective REAL,
  handed_out_ns INTEGER,
  UNIQUE (session_id, sequence)
);
CREATE TABLE responses (
  seq INTEGER PRIMARY KEY,
  session_id TEXT NOT NULL REFERENCES sessions (id),
  stimulus_id TEXT NOT NULL REFERENCES stimuli (id),
  request_id TEXT NOT NULL,
  received_ns INTEGER NOT NULL,
  skipped INTEGER NOT NULL,
  rates BLOB
);
CREATE INDEX responses_by_session ON responses (session_id, seq);
CREATE INDEX responses_by_stimulus ON responses (stimulus_id);
CREATE TABLE reports (
  session_id TEXT NOT NULL REFERENCES sessions (id),
  request_id TEXT NOT NULL,
  received_ns INTEGER NOT NULL,
  responses INTEGER NOT NULL,
  ack BLOB NOT NULL,
  PRIMARY KEY (session_id, request_id)
);
CREATE TABLE model_versions (
  session_id TEXT NOT NULL REFERENCES sessions (id),
  version INTEGER NOT NULL,
  created_ns INTEGER NOT NULL,
  metrics_json TEXT NOT NULL,
  checkpoint BLOB NOT NULL,
  PRIMARY KEY (session_id, version)
);
CREATE TABLE events (
  seq INTEGER PRIMARY KEY,
  session_id TEXT,
  time_ns INTEGER NOT NULL,
  kind TEXT NOT NULL,
  detail TEXT NOT NULL
);
CREATE INDEX events_by_session ON events (session_id, seq);
)sql",
    // 1 -> 2: the digest of each report's content, to tell a retry from a
    // reused request_id (NULL in rows of version 1: LoadSession computes it
    // from the report's responses).
    R"sql(
ALTER TABLE reports ADD COLUMN content_digest BLOB;
)sql",
    // 2 -> 3: a checksum (store_checksum.h) next to every stored payload,
    // computed here for the rows already stored; NULL where the payload is.
    R"sql(
ALTER TABLE sessions ADD COLUMN config_crc32 INTEGER;
UPDATE sessions SET config_crc32 = stimloop_crc32(config);
ALTER TABLE generations ADD COLUMN optimizer_state_crc32 INTEGER;
UPDATE generations SET optimizer_state_crc32 = stimloop_crc32(optimizer_state);
ALTER TABLE stimuli ADD COLUMN png_crc32 INTEGER;
ALTER TABLE stimuli ADD COLUMN code_crc32 INTEGER;
UPDATE stimuli SET png_crc32 = stimloop_crc32(png), code_crc32 = stimloop_crc32(code);
ALTER TABLE responses ADD COLUMN rates_crc32 INTEGER;
UPDATE responses SET rates_crc32 = stimloop_crc32(rates);
ALTER TABLE reports ADD COLUMN ack_crc32 INTEGER;
UPDATE reports SET ack_crc32 = stimloop_crc32(ack);
ALTER TABLE model_versions ADD COLUMN checkpoint_crc32 INTEGER;
UPDATE model_versions SET checkpoint_crc32 = stimloop_crc32(checkpoint);
)sql",
};
static_assert(sizeof(kMigrations) / sizeof(kMigrations[0]) == kStoreSchemaVersion,
              "one migration per schema version");

// SQL stimloop_crc32(payload): StoreChecksum of a BLOB, NULL for NULL. The
// migrations use it to checksum the rows stored before there were checksums.
void SqlChecksum(sqlite3_context* context, int /*argc*/, sqlite3_value** args) {
  if (sqlite3_value_type(args[0]) == SQLITE_NULL) {
    sqlite3_result_null(context);
    return;
  }
  const void* data = sqlite3_value_blob(args[0]);
  const int size = sqlite3_value_bytes(args[0]);
  sqlite3_result_int64(
      context, StoreChecksum(absl::string_view(static_cast<const char*>(data), size)));
}

// The first column of every row of `sql`, as text.
absl::StatusOr<std::vector<std::string>> Column(sqlite3* db, const char* sql,
                                                absl::string_view what) {
  SqliteStatement q(db, sql, absl::StrCat("session store: ", what));
  std::vector<std::string> out;
  while (q.Next()) out.push_back(q.ColumnBytes(0));
  if (!q.status().ok()) return q.status();
  return out;
}

absl::StatusOr<int64_t> Number(sqlite3* db, const char* sql, absl::string_view what) {
  auto rows = Column(db, sql, what);
  if (!rows.ok()) return rows.status();
  int64_t value = 0;
  if (rows->size() != 1 || !absl::SimpleAtoi((*rows)[0], &value)) {
    return absl::InternalError(absl::StrCat("session store: ", what, ": unexpected result"));
  }
  return value;
}

absl::Status Exec(sqlite3* db, const char* sql, absl::string_view what) {
  return StoreExec(db, sql, what);
}

}  // namespace

absl::Status CheckAndMigrateSchema(sqlite3* db, const std::string& path, bool check_integrity) {
  // Read-only checks first: a foreign file must not be touched.
  auto application_id = Number(db, "PRAGMA application_id", "reading the application_id");
  if (!application_id.ok()) {
    if (absl::IsDataLoss(application_id.status())) {
      return absl::DataLossError(absl::StrCat(
          "'", path, "' is not a stimloop store: not a SQLite database, or its header is "
          "corrupt (", application_id.status().message(), "). Move it away or choose another "
          "--data_dir; the server does not overwrite it."));
    }
    return application_id.status();
  }
  auto version = Number(db, "PRAGMA user_version", "reading the schema version");
  if (!version.ok()) return version.status();
  auto objects = Number(db, "SELECT count(*) FROM sqlite_schema", "reading the schema");
  if (!objects.ok()) return objects.status();

  const bool fresh = *application_id == 0 && *version == 0 && *objects == 0;
  if (!fresh && *application_id != kStoreApplicationId) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "'%s' is a SQLite database of another application (application_id 0x%08x, %d schema "
        "objects), not a stimloop store (application_id 0x%08x). Move it away or choose "
        "another --data_dir; the server does not touch it.",
        path, static_cast<uint32_t>(*application_id), *objects,
        static_cast<uint32_t>(kStoreApplicationId)));
  }
  if (*version < 0) {  // found by fuzz/store_fuzzer: it indexed kMigrations
    return absl::DataLossError(absl::StrCat("'", path, "' has schema version ", *version,
                                            ", which no stimloop writes: the file is damaged"));
  }
  if (*version > kStoreSchemaVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "'", path, "' has schema version ", *version, ", newer than this build reads (",
        kStoreSchemaVersion, "); run a newer stimloop-server"));
  }
  if (!fresh && check_integrity) {
    auto check = Column(db, "PRAGMA quick_check", "checking integrity");
    if (!check.ok() || check->size() != 1 || (*check)[0] != "ok") {
      std::string detail;
      if (!check.ok()) {
        detail = std::string(check.status().message());
      } else {
        check->resize(std::min<size_t>(check->size(), 5));
        detail = absl::StrJoin(*check, "; ");
      }
      return absl::DataLossError(absl::StrCat(
          "'", path, "' is corrupt (PRAGMA quick_check: ", detail,
          "). Restore it from a backup or move it away; the server does not repair it."));
    }
  }

  auto mode = Column(db, "PRAGMA journal_mode=WAL", "switching to WAL");
  if (!mode.ok()) return mode.status();
  if (mode->size() != 1 || (*mode)[0] != "wal") {
    return absl::UnavailableError(
        absl::StrCat("session store: '", path, "' cannot use WAL journal mode"));
  }
  if (*version == kStoreSchemaVersion) return absl::OkStatus();

  if (absl::Status s = Exec(db, "BEGIN IMMEDIATE", "migrating the schema"); !s.ok()) return s;
  absl::Status status;
  for (int64_t v = *version; v < kStoreSchemaVersion && status.ok(); ++v) {
    status = Exec(db, kMigrations[v], absl::StrCat("migrating the schema to version ", v + 1));
  }
  if (status.ok()) {
    const std::string pragmas =
        absl::StrCat("PRAGMA application_id = ", kStoreApplicationId,
                     "; PRAGMA user_version = ", kStoreSchemaVersion);
    status = Exec(db, pragmas.c_str(), "writing the schema version");
  }
  if (status.ok()) status = Exec(db, "COMMIT", "migrating the schema");
  if (!status.ok()) Exec(db, "ROLLBACK", "migrating the schema").IgnoreError();
  return status;
}

absl::Status RegisterStoreFunctions(sqlite3* db) {
  if (const int rc = sqlite3_create_function_v2(
          db, "stimloop_crc32", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_DIRECTONLY,
          nullptr, SqlChecksum, nullptr, nullptr, nullptr);
      rc != SQLITE_OK) {
    return SqliteStatus(db, rc, "session store: registering stimloop_crc32");
  }
  return absl::OkStatus();
}

absl::Status StoreExec(sqlite3* db, const char* sql, absl::string_view what) {
  return SqliteExec(db, sql, absl::StrCat("session store: ", what));
}

}  // namespace stimloop
