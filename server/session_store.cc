#include "server/session_store.h"

#include <fcntl.h>
#include <google/protobuf/util/json_util.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <optional>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/echo.h"
#include "base/sqlite_statement.h"
#include "server/report_digest.h"
#include "server/session_store_marker.h"
#include "server/store_checksum.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the store writes codes and rates as little-endian arrays; port EncodeArray first"
#endif

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
static_assert(sizeof(kMigrations) / sizeof(kMigrations[0]) == SessionStore::kSchemaVersion,
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

int64_t Nanos(absl::Time t) { return absl::ToUnixNanos(t); }

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

template <typename T>
std::string EncodeArray(const std::vector<T>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

template <typename T>
bool DecodeArray(const std::string& bytes, std::vector<T>* out) {
  if (bytes.size() % sizeof(T) != 0) return false;
  out->resize(bytes.size() / sizeof(T));
  if (!bytes.empty()) std::memcpy(out->data(), bytes.data(), bytes.size());
  return true;
}

std::string JsonString(absl::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += absl::StrFormat("\\u%04x", c);
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

std::string MetadataJson(const v1::SessionConfig& config) {
  std::vector<std::pair<std::string, std::string>> entries(config.metadata().begin(),
                                                           config.metadata().end());
  std::sort(entries.begin(), entries.end());
  std::vector<std::string> parts;
  for (const auto& [key, value] : entries) {
    parts.push_back(absl::StrCat(JsonString(key), ":", JsonString(value)));
  }
  return absl::StrCat("{", absl::StrJoin(parts, ","), "}");
}

// Runs SQL without results (pragmas, DDL, BEGIN/COMMIT).
absl::Status Exec(sqlite3* db, const char* sql, absl::string_view what) {
  return SqliteExec(db, sql, absl::StrCat("session store: ", what));
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

// Checks that `db` (at `path`) is empty, or a stimloop store this build can
// read and that passes quick_check; creates or migrates the schema.
absl::Status CheckAndMigrate(sqlite3* db, const std::string& path, const StoreOptions& options) {
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
  if (!fresh && *application_id != SessionStore::kApplicationId) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "'%s' is a SQLite database of another application (application_id 0x%08x, %d schema "
        "objects), not a stimloop store (application_id 0x%08x). Move it away or choose "
        "another --data_dir; the server does not touch it.",
        path, static_cast<uint32_t>(*application_id), *objects,
        static_cast<uint32_t>(SessionStore::kApplicationId)));
  }
  if (*version > SessionStore::kSchemaVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "'", path, "' has schema version ", *version, ", newer than this build reads (",
        SessionStore::kSchemaVersion, "); run a newer stimloop-server"));
  }
  if (!fresh && options.check_integrity) {
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
  if (*version == SessionStore::kSchemaVersion) return absl::OkStatus();

  if (absl::Status s = Exec(db, "BEGIN IMMEDIATE", "migrating the schema"); !s.ok()) return s;
  absl::Status status;
  for (int64_t v = *version; v < SessionStore::kSchemaVersion && status.ok(); ++v) {
    status = Exec(db, kMigrations[v], absl::StrCat("migrating the schema to version ", v + 1));
  }
  if (status.ok()) {
    const std::string pragmas =
        absl::StrCat("PRAGMA application_id = ", SessionStore::kApplicationId,
                     "; PRAGMA user_version = ", SessionStore::kSchemaVersion);
    status = Exec(db, pragmas.c_str(), "writing the schema version");
  }
  if (status.ok()) status = Exec(db, "COMMIT", "migrating the schema");
  if (!status.ok()) Exec(db, "ROLLBACK", "migrating the schema").IgnoreError();
  return status;
}

}  // namespace

absl::StatusOr<std::unique_ptr<SessionStore>> SessionStore::Open(const std::string& data_dir,
                                                                  const StoreOptions& options) {
  std::error_code error;
  if (!std::filesystem::is_directory(data_dir, error)) {
    return absl::FailedPreconditionError(
        absl::StrCat("data_dir: '", data_dir, "' is not a directory"));
  }
  const std::string lock_path = (std::filesystem::path(data_dir) / kLockFileName).string();
  const int lock_fd = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("data_dir: cannot open '", lock_path, "': ", std::strerror(errno)));
  }
  if (flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    const int e = errno;
    close(lock_fd);
    if (e == EWOULDBLOCK) {
      return absl::FailedPreconditionError(absl::StrCat(
          "data_dir: '", data_dir, "' is in use by another stimloop-server (", lock_path,
          " is locked)"));
    }
    return absl::UnavailableError(
        absl::StrCat("data_dir: cannot lock '", lock_path, "': ", std::strerror(e)));
  }

  const std::string path = (std::filesystem::path(data_dir) / kFileName).string();
  // A lost store must not pass for a first start (session_store_marker.h).
  if (absl::Status s = CheckStoreFileExpected(data_dir, path, options.new_store); !s.ok()) {
    close(lock_fd);
    return s;
  }
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &db,
                                 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                                 nullptr);
  std::unique_ptr<SessionStore> store(new SessionStore(path, db, lock_fd));
  if (rc != SQLITE_OK)
    return SqliteStatus(db, rc, absl::StrCat("session store: opening '", path, "'"));
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, static_cast<int>(absl::ToInt64Milliseconds(options.busy_timeout)));
  // Temporary tables and indices in memory: nothing is written outside
  // data_dir.
  if (absl::Status s = Exec(db, "PRAGMA temp_store = MEMORY", "configuring"); !s.ok()) return s;
  if (const int rc = sqlite3_create_function_v2(
          db, "stimloop_crc32", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_DIRECTONLY,
          nullptr, SqlChecksum, nullptr, nullptr, nullptr);
      rc != SQLITE_OK) {
    return SqliteStatus(db, rc, "session store: registering stimloop_crc32");
  }
  if (absl::Status s = CheckAndMigrate(db, path, options); !s.ok()) return s;
  if (options.new_store || !HasStoreMarker(data_dir)) {
    if (absl::Status s = WriteStoreMarker(data_dir, absl::Now()); !s.ok()) return s;
  }
  const char* sync = options.sync == StoreOptions::Sync::kFull ? "PRAGMA synchronous = FULL"
                                                               : "PRAGMA synchronous = NORMAL";
  if (absl::Status s = Exec(db, sync, "configuring"); !s.ok()) return s;
  if (absl::Status s = Exec(db, "PRAGMA foreign_keys = ON", "configuring"); !s.ok()) return s;
  return store;
}

SessionStore::SessionStore(std::string path, sqlite3* db, int lock_fd)
    : path_(std::move(path)), lock_fd_(lock_fd), db_(db) {}

SessionStore::~SessionStore() {
  absl::MutexLock lock(&mu_);
  for (auto& [sql, stmt] : statements_) sqlite3_finalize(stmt);
  sqlite3_close(db_);  // checkpoints the WAL when this is the last connection
  close(lock_fd_);
}

absl::StatusOr<sqlite3_stmt*> SessionStore::Prepared(const char* sql) {
  if (auto it = statements_.find(sql); it != statements_.end()) return it->second;
  sqlite3_stmt* stmt = nullptr;
  const int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK)
    return SqliteStatus(db_, rc, absl::StrCat("session store: preparing '", sql, "'"));
  statements_.emplace(sql, stmt);
  return stmt;
}

absl::Status SessionStore::InTransaction(absl::string_view what,
                                         absl::FunctionRef<absl::Status()> body) {
  if (absl::Status s = Exec(db_, "BEGIN IMMEDIATE", what); !s.ok()) return s;
  absl::Status status = body();
  if (status.ok()) status = Exec(db_, "COMMIT", what);
  if (!status.ok() && !sqlite3_get_autocommit(db_)) {
    Exec(db_, "ROLLBACK", what).IgnoreError();
  }
  return status;
}

absl::Status SessionStore::InsertEvent(const std::string& session_id, absl::string_view kind,
                                       absl::string_view detail, absl::Time time) {
  constexpr const char* kSql =
      "INSERT INTO events (session_id, time_ns, kind, detail) VALUES (?, ?, ?, ?)";
  auto stmt = Prepared(kSql);
  if (!stmt.ok()) return stmt.status();
  SqliteStatement q(db_, *stmt, "session store: insert into events");
  if (session_id.empty()) {
    q.Null();
  } else {
    q.Text(session_id);
  }
  return q.Int(Nanos(time)).Text(kind).Text(detail).Run();
}

absl::Status SessionStore::SessionCreated(const std::string& session_id,
                                          const v1::SessionConfig& config, absl::Time created) {
  std::string json;
  google::protobuf::util::JsonPrintOptions json_options;
  json_options.preserve_proto_field_names = true;
  if (auto s = google::protobuf::util::MessageToJsonString(config, &json, json_options);
      !s.ok()) {
    return absl::InternalError(absl::StrCat("session store: config as JSON: ", s.ToString()));
  }
  const std::string config_bytes = config.SerializeAsString();
  const std::string metadata = MetadataJson(config);
  absl::MutexLock lock(&mu_);
  return InTransaction("insert into sessions", [&]() -> absl::Status {
    constexpr const char* kSql =
        "INSERT INTO sessions (id, status, created_ns, optimizer, image_space, config, "
        "config_crc32, config_json, metadata_json) VALUES (?, 'open', ?, ?, ?, ?, ?, ?, ?)";
    auto stmt = Prepared(kSql);
    if (!stmt.ok()) return stmt.status();
    absl::Status s = SqliteStatement(db_, *stmt, "session store: insert into sessions")
                         .Text(session_id)
                         .Int(Nanos(created))
                         .Text(config.optimizer().name())
                         .Text(config.image_space().name())
                         .Blob(config_bytes)
                         .Int(StoreChecksum(config_bytes))
                         .Text(json)
                         .Text(metadata)
                         .Run();
    if (!s.ok()) return s;
    return InsertEvent(session_id, kEventCreated, "", created);
  });
}

absl::Status SessionStore::GenerationProposed(const std::string& session_id, int64_t generation,
                                              absl::Span<const StimulusEntry> stimuli,
                                              const std::string& optimizer_state,
                                              int64_t responses_told) {
  absl::MutexLock lock(&mu_);
  return InTransaction("insert into generations", [&]() -> absl::Status {
    constexpr const char* kGeneration =
        "INSERT INTO generations (session_id, generation, proposed_ns, responses_told, "
        "optimizer_state, optimizer_state_crc32) VALUES (?, ?, ?, ?, ?, ?)";
    auto stmt = Prepared(kGeneration);
    if (!stmt.ok()) return stmt.status();
    absl::Status s = SqliteStatement(db_, *stmt, "session store: insert into generations")
                         .Text(session_id)
                         .Int(generation)
                         .Int(Nanos(absl::Now()))
                         .Int(responses_told)
                         .Blob(optimizer_state)
                         .Int(StoreChecksum(optimizer_state))
                         .Run();
    if (!s.ok()) return s;
    constexpr const char* kStimulus =
        "INSERT INTO stimuli (id, session_id, sequence, generation, position, origin, "
        "is_reference, png, png_crc32, code, code_crc32, model_version, predicted_objective) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    stmt = Prepared(kStimulus);
    if (!stmt.ok()) return stmt.status();
    for (size_t i = 0; i < stimuli.size(); ++i) {
      const StimulusEntry& e = stimuli[i];
      const std::string code = EncodeArray(e.code);  // bound by reference: outlives q's use
      SqliteStatement q(db_, *stmt, "session store: insert into stimuli");
      q.Text(e.id)
          .Text(session_id)
          .Int(e.sequence)
          .Int(e.generation)
          .Int(static_cast<int64_t>(i))
          .Text(e.origin)
          .Int(e.is_reference ? 1 : 0)
          .Blob(e.png)
          .Int(StoreChecksum(e.png));
      if (e.code.empty()) {
        q.Null().Null();
      } else {
        q.Blob(code).Int(StoreChecksum(code));
      }
      if (absl::Status s = q.Int(e.model_version).Double(e.predicted_objective).Run(); !s.ok()) {
        return s;
      }
    }
    return absl::OkStatus();
  });
}

absl::Status SessionStore::StimuliHandedOut(const std::string& session_id,
                                            absl::Span<const std::string> stimulus_ids) {
  const int64_t now = Nanos(absl::Now());
  absl::MutexLock lock(&mu_);
  return InTransaction("update stimuli", [&]() -> absl::Status {
    constexpr const char* kSql =
        "UPDATE stimuli SET handed_out_ns = ? WHERE id = ? AND session_id = ?";
    auto stmt = Prepared(kSql);
    if (!stmt.ok()) return stmt.status();
    for (const std::string& id : stimulus_ids) {
      absl::Status s = SqliteStatement(db_, *stmt, "session store: update stimuli")
                           .Int(now)
                           .Text(id)
                           .Text(session_id)
                           .Run();
      if (!s.ok()) return s;
      if (sqlite3_changes(db_) != 1) {
        return absl::NotFoundError(absl::StrCat("session store: stimulus_ids: '", id,
                                                "' is not a stimulus of session '",
                                                session_id, "'"));
      }
    }
    return absl::OkStatus();
  });
}

absl::Status SessionStore::ResponsesReported(const std::string& session_id,
                                             const std::string& request_id,
                                             const std::string& content_digest,
                                             absl::Span<const ResponseEntry> responses,
                                             const v1::ReportResponsesAck& ack,
                                             absl::Time received) {
  const std::string ack_bytes = ack.SerializeAsString();
  absl::MutexLock lock(&mu_);
  return InTransaction("insert into reports", [&]() -> absl::Status {
    constexpr const char* kReport =
        "INSERT INTO reports (session_id, request_id, received_ns, responses, ack, "
        "content_digest, ack_crc32) VALUES (?, ?, ?, ?, ?, ?, ?)";
    auto stmt = Prepared(kReport);
    if (!stmt.ok()) return stmt.status();
    absl::Status s = SqliteStatement(db_, *stmt, "session store: insert into reports")
                         .Text(session_id)
                         .Text(request_id)
                         .Int(Nanos(received))
                         .Int(static_cast<int64_t>(responses.size()))
                         .Blob(ack_bytes)
                         .Blob(content_digest)
                         .Int(StoreChecksum(ack_bytes))
                         .Run();
    if (absl::IsAlreadyExists(s)) {
      return absl::AlreadyExistsError(absl::StrCat("request_id: ", QuotedEcho(request_id),
                                                   " is already journaled for session '",
                                                   session_id, "'"));
    }
    if (!s.ok()) return s;
    constexpr const char* kResponse =
        "INSERT INTO responses (session_id, stimulus_id, request_id, received_ns, skipped, "
        "rates, rates_crc32) VALUES (?, ?, ?, ?, ?, ?, ?)";
    stmt = Prepared(kResponse);
    if (!stmt.ok()) return stmt.status();
    for (const ResponseEntry& r : responses) {
      const std::string rates = EncodeArray(r.rates);  // bound by reference: outlives q's use
      SqliteStatement q(db_, *stmt, "session store: insert into responses");
      q.Text(session_id)
          .Text(r.stimulus_id)
          .Text(request_id)
          .Int(Nanos(received))
          .Int(r.skipped ? 1 : 0);
      if (r.skipped) {
        q.Null().Null();
      } else {
        q.Blob(rates).Int(StoreChecksum(rates));
      }
      if (absl::Status s = q.Run(); !s.ok()) return s;
    }
    return absl::OkStatus();
  });
}

absl::Status SessionStore::SessionClosed(const std::string& session_id, absl::Time closed) {
  absl::MutexLock lock(&mu_);
  return InTransaction("update sessions", [&]() -> absl::Status {
    constexpr const char* kSql =
        "UPDATE sessions SET status = 'closed', closed_ns = ? WHERE id = ?";
    auto stmt = Prepared(kSql);
    if (!stmt.ok()) return stmt.status();
    if (absl::Status s = SqliteStatement(db_, *stmt, "session store: update sessions")
                             .Int(Nanos(closed))
                             .Text(session_id)
                             .Run();
        !s.ok()) {
      return s;
    }
    if (sqlite3_changes(db_) != 1) {
      return absl::NotFoundError(
          absl::StrCat("session store: session_id: no session '", session_id, "'"));
    }
    return InsertEvent(session_id, kEventClosed, "", closed);
  });
}

absl::Status SessionStore::RecordModelVersion(const std::string& session_id, int64_t version,
                                              absl::string_view metrics_json,
                                              absl::string_view checkpoint,
                                              absl::Time created) {
  absl::MutexLock lock(&mu_);
  return InTransaction("insert into model_versions", [&]() -> absl::Status {
    constexpr const char* kSql =
        "INSERT INTO model_versions (session_id, version, created_ns, metrics_json, "
        "checkpoint, checkpoint_crc32) VALUES (?, ?, ?, ?, ?, ?)";
    auto stmt = Prepared(kSql);
    if (!stmt.ok()) return stmt.status();
    absl::Status s = SqliteStatement(db_, *stmt, "session store: insert into model_versions")
                         .Text(session_id)
                         .Int(version)
                         .Int(Nanos(created))
                         .Text(metrics_json)
                         .Blob(checkpoint)
                         .Int(StoreChecksum(checkpoint))
                         .Run();
    if (absl::IsAlreadyExists(s)) {
      return absl::AlreadyExistsError(absl::StrCat(
          "version: session '", session_id, "' already has model version ", version));
    }
    if (absl::IsNotFound(s)) {
      return absl::NotFoundError(absl::StrCat("session_id: no session '", session_id, "'"));
    }
    return s;
  });
}

absl::Status SessionStore::RecordEvent(const std::string& session_id, absl::string_view kind,
                                       absl::string_view detail, absl::Time time) {
  absl::MutexLock lock(&mu_);
  return InTransaction("insert into events",
                       [&]() { return InsertEvent(session_id, kind, detail, time); });
}

absl::StatusOr<std::vector<std::string>> SessionStore::OpenSessionIds() {
  absl::MutexLock lock(&mu_);
  auto stmt = Prepared("SELECT id FROM sessions WHERE status = 'open' ORDER BY created_ns, id");
  if (!stmt.ok()) return stmt.status();
  SqliteStatement q(db_, *stmt, "session store: select from sessions");
  std::vector<std::string> ids;
  while (true) {
    auto row = q.Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    ids.push_back(q.ColumnBytes(0));
  }
  return ids;
}

absl::StatusOr<JournaledSession> SessionStore::LoadSession(const std::string& session_id) {
  absl::MutexLock lock(&mu_);
  JournaledSession out;
  out.id = session_id;
  const std::string where = absl::StrCat("session store: session '", session_id, "': ");
  // Rows named in checksum errors: "session 'abc' stimulus 17".
  const std::string session_row = absl::StrCat("session '", session_id, "'");
  // One read transaction: a consistent snapshot.
  if (absl::Status s = Exec(db_, "BEGIN", "loading a session"); !s.ok()) return s;
  absl::Cleanup end = [this] { Exec(db_, "COMMIT", "loading a session").IgnoreError(); };

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

namespace stimloop {

absl::Status SessionStore::ModelVersionFitted(const std::string& session_id, int64_t version,
                                              const std::map<std::string, double>& metrics,
                                              const std::string& checkpoint) {
  // JSON numbers cannot be NaN: undefined metrics are written as null.
  std::vector<std::string> fields;
  double correlation_sum = 0;
  int correlations = 0;
  for (const auto& [name, value] : metrics) {
    fields.push_back(absl::StrFormat("\"%s\": %s", name,
                                     std::isfinite(value) ? absl::StrCat(value) : "null"));
    if (absl::StartsWith(name, "heldout_correlation.") && std::isfinite(value)) {
      correlation_sum += value;
      ++correlations;
    }
  }
  if (correlations > 0) {
    fields.push_back(absl::StrCat("\"heldout_r\": ", correlation_sum / correlations));
  }
  const std::string json = absl::StrCat("{", absl::StrJoin(fields, ", "), "}");
  const absl::Time now = absl::Now();
  if (absl::Status s = RecordModelVersion(session_id, version, json, checkpoint, now); !s.ok()) {
    return s;
  }
  return RecordEvent(session_id, kEventRefitFinished, absl::StrCat("{\"version\": ", version, "}"),
                     now);
}

}  // namespace stimloop
