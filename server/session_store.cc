#include "server/session_store.h"

#include <fcntl.h>
#include <google/protobuf/util/json_util.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/echo.h"
#include "base/sqlite_statement.h"
#include "server/session_store_marker.h"
#include "server/store_checksum.h"
#include "server/store_encoding.h"
#include "server/store_schema.h"
#include "server/wal_checkpointer.h"

namespace stimloop {

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
  if (absl::Status s = StoreExec(db, "PRAGMA temp_store = MEMORY", "configuring"); !s.ok()) {
    return s;
  }
  if (absl::Status s = RegisterStoreFunctions(db); !s.ok()) return s;
  if (absl::Status s = CheckAndMigrateSchema(db, path, options.check_integrity); !s.ok()) {
    return s;
  }
  if (options.new_store || !HasStoreMarker(data_dir)) {
    if (absl::Status s = WriteStoreMarker(data_dir, absl::Now()); !s.ok()) return s;
  }
  const char* sync = options.sync == StoreOptions::Sync::kFull ? "PRAGMA synchronous = FULL"
                                                               : "PRAGMA synchronous = NORMAL";
  if (absl::Status s = StoreExec(db, sync, "configuring"); !s.ok()) return s;
  if (absl::Status s = StoreExec(db, "PRAGMA foreign_keys = ON", "configuring"); !s.ok()) {
    return s;
  }
  // Checkpoints run on a thread of their own, not inside some commit.
  auto checkpointer = WalCheckpointer::Start(db, path);
  if (!checkpointer.ok()) return checkpointer.status();
  {
    absl::MutexLock lock(&store->mu_);
    store->checkpointer_ = *std::move(checkpointer);
  }
  return store;
}

SessionStore::SessionStore(std::string path, sqlite3* db, int lock_fd)
    : path_(std::move(path)), lock_fd_(lock_fd), db_(db) {}

SessionStore::~SessionStore() {
  absl::MutexLock lock(&mu_);
  checkpointer_.reset();  // before the writer it hooks into closes
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
  if (absl::Status s = StoreExec(db_, "BEGIN IMMEDIATE", what); !s.ok()) return s;
  absl::Status status = body();
  if (status.ok()) status = StoreExec(db_, "COMMIT", what);
  if (!status.ok() && !sqlite3_get_autocommit(db_)) {
    StoreExec(db_, "ROLLBACK", what).IgnoreError();
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
  auto config_json = ConfigJson(config);
  if (!config_json.ok()) return config_json.status();
  const std::string& json = *config_json;
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
                                              int64_t responses_told, size_t handed_out) {
  if (handed_out > stimuli.size()) {
    return absl::InternalError(absl::StrCat("session store: ", handed_out, " of ",
                                            stimuli.size(), " stimuli handed out"));
  }
  const int64_t now = Nanos(absl::Now());
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
                         .Int(now)
                         .Int(responses_told)
                         .Blob(optimizer_state)
                         .Int(StoreChecksum(optimizer_state))
                         .Run();
    if (!s.ok()) return s;
    constexpr const char* kStimulus =
        "INSERT INTO stimuli (id, session_id, sequence, generation, position, origin, "
        "is_reference, png, png_crc32, code, code_crc32, model_version, predicted_objective, "
        "handed_out_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
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
      q.Int(e.model_version).Double(e.predicted_objective);
      if (i < handed_out) {
        q.Int(now);
      } else {
        q.Null();
      }
      if (absl::Status s = q.Run(); !s.ok()) return s;
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
  return SessionIds("SELECT id FROM sessions WHERE status = 'open' ORDER BY created_ns, id");
}

absl::StatusOr<std::vector<std::string>> SessionStore::AllSessionIds() {
  return SessionIds("SELECT id FROM sessions ORDER BY created_ns, id");
}

absl::StatusOr<std::vector<std::string>> SessionStore::SessionIds(const char* sql) {
  absl::MutexLock lock(&mu_);
  auto stmt = Prepared(sql);
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


absl::Status SessionStore::ModelVersionFitted(const std::string& session_id, int64_t version,
                                              const std::map<std::string, double>& metrics,
                                              const std::string& checkpoint) {
  const std::string json = ModelMetricsJson(metrics);
  const absl::Time now = absl::Now();
  if (absl::Status s = RecordModelVersion(session_id, version, json, checkpoint, now); !s.ok()) {
    return s;
  }
  return RecordEvent(session_id, kEventRefitFinished, absl::StrCat("{\"version\": ", version, "}"),
                     now);
}

}  // namespace stimloop
