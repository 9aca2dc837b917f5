#include "clients/inspect/store_reader.h"

#include <sqlite3.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/sqlite_statement.h"
#include "server/store_checksum.h"

namespace stimloop {
namespace inspect {
namespace {

// The store's PRAGMA application_id ("STLP", server/session_store.h).
constexpr int64_t kApplicationId = 0x53544C50;

absl::Status Exec(sqlite3* db, const char* sql, absl::string_view what) {
  return SqliteExec(db, sql, absl::StrCat("store: ", what));
}

// A read transaction: every query inside sees one snapshot.
class ReadTransaction {
 public:
  explicit ReadTransaction(sqlite3* db) : db_(db) {
    status_ = Exec(db, "BEGIN DEFERRED", "begin read");
  }
  ~ReadTransaction() {
    if (status_.ok()) sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr);
  }
  const absl::Status& status() const { return status_; }

 private:
  sqlite3* db_;
  absl::Status status_;
};

absl::Time FromNanos(int64_t ns) { return absl::FromUnixNanos(ns); }

// `column`, or NULL in a store written before checksums (schema 1).
std::string ChecksumColumn(bool checksums, const char* column) {
  return checksums ? column : "NULL";
}

// Column 10 is the config's checksum (NULL without checksums).
std::string SummarySql(bool checksums) {
  return absl::StrCat(
      "SELECT s.id, s.status, s.created_ns, s.optimizer, s.image_space, s.config, "
      "(SELECT COUNT(*) FROM generations g WHERE g.session_id = s.id), "
      "(SELECT COUNT(*) FROM stimuli t WHERE t.session_id = s.id), "
      "(SELECT COUNT(*) FROM responses r WHERE r.session_id = s.id AND r.skipped = 0), "
      "(SELECT COUNT(*) FROM responses r WHERE r.session_id = s.id AND r.skipped != 0), ",
      ChecksumColumn(checksums, "s.config_crc32"), " FROM sessions s");
}

// Verifies a payload against its checksum when the store has checksums.
absl::Status Verify(bool checksums, absl::string_view row, absl::string_view column,
                    absl::string_view bytes, std::optional<int64_t> recorded) {
  if (!checksums) return absl::OkStatus();
  return VerifyStoredChecksum(row, column, bytes, recorded);
}

absl::Status ReadSummary(const SqliteStatement& q, bool checksums, SessionSummary* out,
                         v1::SessionConfig* config) {
  out->id = q.ColumnBytes(0);
  out->status = q.ColumnBytes(1);
  out->created = FromNanos(q.ColumnInt(2));
  out->optimizer = q.ColumnBytes(3);
  out->image_space = q.ColumnBytes(4);
  const std::string config_bytes = q.ColumnBytes(5);
  if (absl::Status s = Verify(checksums, absl::StrCat("session '", out->id, "'"), "config",
                              config_bytes, q.ColumnOptionalInt(10));
      !s.ok()) {
    return s;
  }
  if (absl::Status s = ParseStoredConfig(config_bytes, out, config); !s.ok()) return s;
  out->generations = q.ColumnInt(6);
  out->stimuli = q.ColumnInt(7);
  out->responses = q.ColumnInt(8);
  out->skipped = q.ColumnInt(9);
  return absl::OkStatus();
}

class SqliteStoreReader : public StoreReader {
 public:
  SqliteStoreReader(std::string path, sqlite3* db) : StoreReader(std::move(path)), db_(db) {}
  ~SqliteStoreReader() override { sqlite3_close(db_); }
  absl::StatusOr<std::vector<SessionSummary>> ListSessions() override;
  absl::StatusOr<SessionData> LoadSession(const std::string& session_id) override;

  bool checksums_ = false;  // the store keeps <column>_crc32 (schema 2 on)

 private:
  sqlite3* const db_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<StoreReader>> StoreReader::Open(const std::string& data_dir) {
  const std::string path = (std::filesystem::path(data_dir) / "stimloop.sqlite").string();
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error)) {
    return absl::NotFoundError(absl::StrCat("--data_dir: no store '", path, "'"));
  }
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string message = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    return absl::UnavailableError(absl::StrCat("store: cannot open '", path, "': ", message));
  }
  auto reader = std::make_unique<SqliteStoreReader>(path, db);
  sqlite3_busy_timeout(db, 10000);
  SqliteStatement q(db, "PRAGMA application_id", "store: reading the application_id");
  const bool row = q.Next();
  if (absl::Status s = q.status(); !s.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("'", path, "' is not a readable SQLite store: ", s.message()));
  }
  if (!row || q.ColumnInt(0) != kApplicationId) {
    if (std::filesystem::file_size(path, error) == 0 && !error) {
      return absl::FailedPreconditionError(
          absl::StrCat("'", path, "' is empty (0 bytes): not a stimloop store, or a lost one"));
    }
    return absl::FailedPreconditionError(
        absl::StrCat("'", path, "' is not a stimloop store (application_id)"));
  }
  // Stores of schema 2 on carry a checksum next to every payload.
  SqliteStatement columns(db, "SELECT 1 FROM pragma_table_info('stimuli') WHERE name = 'png_crc32'",
                          "store: reading the schema");
  reader->checksums_ = columns.Next();
  if (absl::Status s = columns.status(); !s.ok()) return s;
  return std::unique_ptr<StoreReader>(std::move(reader));
}

absl::StatusOr<std::vector<SessionSummary>> SqliteStoreReader::ListSessions() {
  ReadTransaction txn(db_);
  if (!txn.status().ok()) return txn.status();
  SqliteStatement q(db_, absl::StrCat(SummarySql(checksums_), " ORDER BY s.created_ns, s.id"),
                    "store: listing sessions");
  std::vector<SessionSummary> out;
  while (q.Next()) {
    SessionSummary summary;
    v1::SessionConfig config;
    if (absl::Status s = ReadSummary(q, checksums_, &summary, &config); !s.ok()) return s;
    out.push_back(std::move(summary));
  }
  if (absl::Status s = q.status(); !s.ok()) return s;
  return out;
}

absl::StatusOr<SessionData> SqliteStoreReader::LoadSession(const std::string& session_id) {
  ReadTransaction txn(db_);
  if (!txn.status().ok()) return txn.status();
  SessionData data;
  {
    SqliteStatement q(db_, absl::StrCat(SummarySql(checksums_), " WHERE s.id = ?"),
                      "store: reading the session");
    q.Text(session_id);
    if (!q.Next()) {
      if (absl::Status s = q.status(); !s.ok()) return s;
      return absl::NotFoundError(
          absl::StrCat("SESSION: no session '", session_id, "' in '", path(), "'"));
    }
    if (absl::Status s = ReadSummary(q, checksums_, &data.summary, &data.config); !s.ok()) {
      return s;
    }
  }
  {
    SqliteStatement q(db_, "SELECT config_json FROM sessions WHERE id = ?",
                      "store: reading the config");
    q.Text(session_id);
    if (q.Next()) data.config_json = q.ColumnBytes(0);
    if (absl::Status s = q.status(); !s.ok()) return s;
  }
  {
    SqliteStatement q(db_,
                      absl::StrCat("SELECT id, sequence, generation, position, origin, "
                                   "is_reference, png, model_version, predicted_objective, ",
                                   ChecksumColumn(checksums_, "png_crc32"),
                                   " FROM stimuli WHERE session_id = ? ORDER BY sequence"),
                      "store: reading stimuli");
    q.Text(session_id);
    while (q.Next()) {
      StoredStimulus s;
      s.id = q.ColumnBytes(0);
      s.sequence = q.ColumnInt(1);
      s.generation = q.ColumnInt(2);
      s.position = q.ColumnInt(3);
      s.origin = q.ColumnBytes(4);
      s.is_reference = q.ColumnInt(5) != 0;
      s.png = q.ColumnBytes(6);
      if (absl::Status v =
              Verify(checksums_, absl::StrCat("session '", session_id, "' stimulus ", s.sequence),
                     "png", s.png, q.ColumnOptionalInt(9));
          !v.ok()) {
        return v;
      }
      s.model_version = q.ColumnInt(7);
      s.predicted_objective = q.ColumnDouble(8);
      data.stimuli.push_back(std::move(s));
    }
    if (absl::Status s = q.status(); !s.ok()) return s;
  }
  {
    SqliteStatement q(db_,
                      absl::StrCat("SELECT seq, stimulus_id, request_id, received_ns, skipped, "
                                   "rates, ",
                                   ChecksumColumn(checksums_, "rates_crc32"),
                                   " FROM responses WHERE session_id = ? ORDER BY seq"),
                      "store: reading responses");
    q.Text(session_id);
    while (q.Next()) {
      StoredResponse r;
      r.seq = q.ColumnInt(0);
      r.stimulus_id = q.ColumnBytes(1);
      r.request_id = q.ColumnBytes(2);
      r.received = FromNanos(q.ColumnInt(3));
      r.skipped = q.ColumnInt(4) != 0;
      if (!r.skipped) {
        const std::string bytes = q.ColumnBytes(5);
        if (absl::Status v =
                Verify(checksums_, absl::StrCat("session '", session_id, "' response ", r.seq),
                       "rates", bytes, q.ColumnOptionalInt(6));
            !v.ok()) {
          return v;
        }
        if (bytes.size() % sizeof(double) != 0) {
          return absl::DataLossError(absl::StrCat("store: response ", r.seq, ": rates blob of ",
                                                  bytes.size(),
                                                  " bytes is not an array of doubles"));
        }
        r.rates.resize(bytes.size() / sizeof(double));  // little-endian, as written
        if (!bytes.empty()) std::memcpy(r.rates.data(), bytes.data(), bytes.size());
      }
      data.responses.push_back(std::move(r));
    }
    if (absl::Status s = q.status(); !s.ok()) return s;
  }
  bool has_model_versions = false;
  {
    SqliteStatement q(
        db_, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'model_versions'",
        "store: looking for model_versions");
    has_model_versions = q.Next();
    if (absl::Status s = q.status(); !s.ok()) return s;
  }
  if (has_model_versions) {
    SqliteStatement q(db_,
                      "SELECT version, created_ns, metrics_json FROM model_versions "
                      "WHERE session_id = ? ORDER BY version",
                      "store: reading model versions");
    q.Text(session_id);
    while (q.Next()) {
      data.model_versions.push_back({q.ColumnInt(0), FromNanos(q.ColumnInt(1)), q.ColumnBytes(2)});
    }
    if (absl::Status s = q.status(); !s.ok()) return s;
  }
  return data;
}

absl::Status ParseStoredConfig(const std::string& config_bytes, SessionSummary* summary,
                               v1::SessionConfig* config) {
  if (!config->ParseFromString(config_bytes)) {
    return absl::DataLossError(
        absl::StrCat("store: session '", summary->id, "': config does not parse"));
  }
  auto find = [&](const char* key) {
    auto it = config->metadata().find(key);
    return it == config->metadata().end() ? std::string() : it->second;
  };
  summary->subject = find("subject");
  summary->site = find("site");
  return absl::OkStatus();
}

}  // namespace inspect
}  // namespace stimloop
