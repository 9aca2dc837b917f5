// The one SQLite statement wrapper, shared by the session store
// (server/session_store.cc) and the read-only store reader of
// stimloop-inspect (clients/inspect/store_reader.cc).
//
//   SqliteStatement q(db, "SELECT a, b FROM t WHERE id = ?", "store: reading t");
//   q.Text(id);
//   while (q.Next()) Use(q.ColumnInt(0), q.ColumnBytes(1));
//   if (!q.status().ok()) return q.status();
//
// Errors carry "<what>: <sqlite message>" and a code by SQLite's result code
// (SqliteStatus). Not thread-safe: one statement, one thread at a time.
#ifndef STIMLOOP_BASE_SQLITE_STATEMENT_H_
#define STIMLOOP_BASE_SQLITE_STATEMENT_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

struct sqlite3;
struct sqlite3_stmt;

namespace stimloop {

// `rc` (a SQLite result code, extended or not) as a status with message
// "<what>: <sqlite3_errmsg(db)>" (sqlite3_errstr(rc) when db is null):
// NOT_FOUND for a foreign-key violation, ALREADY_EXISTS for a primary-key or
// unique one; RESOURCE_EXHAUSTED when the disk is full; UNAVAILABLE for busy,
// locked, I/O, open, read-only and permission errors; DATA_LOSS for a corrupt
// file or one that is not a database; INTERNAL otherwise.
// REQUIRES: rc is an error (not SQLITE_OK, SQLITE_ROW or SQLITE_DONE).
absl::Status SqliteStatus(sqlite3* db, int rc, absl::string_view what);

// Runs `sql` (statements without results: pragmas, DDL, BEGIN/COMMIT);
// errors as SqliteStatus.
absl::Status SqliteExec(sqlite3* db, const char* sql, absl::string_view what);

// One use of a statement: binds parameters in order, steps, reads columns.
class SqliteStatement {
 public:
  // Prepares `sql` on `db` and finalizes it on destruction; a failure to
  // prepare is reported by Step, Run, Next and status.
  SqliteStatement(sqlite3* db, absl::string_view sql, std::string what);
  // Uses `stmt`, prepared on `db` and owned by the caller (a cached
  // statement): resets it and clears its bindings on destruction.
  SqliteStatement(sqlite3* db, sqlite3_stmt* stmt, std::string what);
  ~SqliteStatement();
  SqliteStatement(const SqliteStatement&) = delete;
  SqliteStatement& operator=(const SqliteStatement&) = delete;

  // Bind the next parameter (1, 2, ...). Double binds NaN as NULL. Text and
  // Blob bind without copying: the bytes must outlive the statement's use.
  SqliteStatement& Int(int64_t v);
  SqliteStatement& Double(double v);
  SqliteStatement& Text(absl::string_view v);
  SqliteStatement& Blob(absl::string_view v);
  SqliteStatement& Null();

  // True when a row is ready, false when done; the first error otherwise.
  absl::StatusOr<bool> Step();
  // Runs a statement that returns no rows (or ignores them).
  absl::Status Run();
  // As Step, for loops: false when done or on error (then see status()).
  bool Next();
  // The first error of preparing, binding or stepping; OK when none.
  const absl::Status& status() const { return status_; }

  // Columns of the current row (from 0).
  bool IsNull(int col) const;
  int64_t ColumnInt(int col) const;
  // NaN for NULL.
  double ColumnDouble(int col) const;
  // The bytes of a BLOB or TEXT column; empty for NULL.
  std::string ColumnBytes(int col) const;
  // nullopt for NULL.
  std::optional<int64_t> ColumnOptionalInt(int col) const;

 private:
  SqliteStatement& Check(int rc);

  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  bool owned_;
  std::string what_;
  int bound_ = 0;
  absl::Status status_;
};

}  // namespace stimloop

#endif  // STIMLOOP_BASE_SQLITE_STATEMENT_H_
