#include "base/sqlite_statement.h"

#include <cmath>
#include <limits>
#include <utility>

#include <sqlite3.h>

#include "absl/strings/str_cat.h"

namespace stimloop {

absl::Status SqliteStatus(sqlite3* db, int rc, absl::string_view what) {
  const std::string message =
      absl::StrCat(what, ": ", db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  switch (rc & 0xff) {
    case SQLITE_CONSTRAINT:
      if (rc == SQLITE_CONSTRAINT_FOREIGNKEY) return absl::NotFoundError(message);
      if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE) {
        return absl::AlreadyExistsError(message);
      }
      return absl::InternalError(message);
    case SQLITE_FULL:
      return absl::ResourceExhaustedError(message);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PERM:
      return absl::UnavailableError(message);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::DataLossError(message);
    default:
      return absl::InternalError(message);
  }
}

absl::Status SqliteExec(sqlite3* db, const char* sql, absl::string_view what) {
  const int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
  return rc == SQLITE_OK ? absl::OkStatus() : SqliteStatus(db, rc, what);
}

SqliteStatement::SqliteStatement(sqlite3* db, absl::string_view sql, std::string what)
    : db_(db), owned_(true), what_(std::move(what)) {
  Check(sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &stmt_, nullptr));
}

SqliteStatement::SqliteStatement(sqlite3* db, sqlite3_stmt* stmt, std::string what)
    : db_(db), stmt_(stmt), owned_(false), what_(std::move(what)) {}

SqliteStatement::~SqliteStatement() {
  if (owned_) {
    sqlite3_finalize(stmt_);
  } else {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
}

SqliteStatement& SqliteStatement::Check(int rc) {
  if (rc != SQLITE_OK && status_.ok()) status_ = SqliteStatus(db_, rc, what_);
  return *this;
}

SqliteStatement& SqliteStatement::Int(int64_t v) {
  if (!status_.ok()) return *this;
  return Check(sqlite3_bind_int64(stmt_, ++bound_, v));
}

SqliteStatement& SqliteStatement::Double(double v) {
  if (!status_.ok()) return *this;
  return Check(std::isnan(v) ? sqlite3_bind_null(stmt_, ++bound_)
                             : sqlite3_bind_double(stmt_, ++bound_, v));
}

SqliteStatement& SqliteStatement::Text(absl::string_view v) {
  if (!status_.ok()) return *this;
  return Check(
      sqlite3_bind_text64(stmt_, ++bound_, v.data(), v.size(), SQLITE_STATIC, SQLITE_UTF8));
}

SqliteStatement& SqliteStatement::Blob(absl::string_view v) {
  if (!status_.ok()) return *this;
  return Check(
      sqlite3_bind_blob64(stmt_, ++bound_, v.empty() ? "" : v.data(), v.size(), SQLITE_STATIC));
}

SqliteStatement& SqliteStatement::Null() {
  if (!status_.ok()) return *this;
  return Check(sqlite3_bind_null(stmt_, ++bound_));
}

absl::StatusOr<bool> SqliteStatement::Step() {
  if (!status_.ok()) return status_;
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  status_ = SqliteStatus(db_, rc, what_);
  return status_;
}

absl::Status SqliteStatement::Run() {
  absl::StatusOr<bool> row = Step();
  return row.ok() ? absl::OkStatus() : row.status();
}

bool SqliteStatement::Next() {
  absl::StatusOr<bool> row = Step();
  return row.ok() && *row;
}

bool SqliteStatement::IsNull(int col) const {
  return sqlite3_column_type(stmt_, col) == SQLITE_NULL;
}

int64_t SqliteStatement::ColumnInt(int col) const { return sqlite3_column_int64(stmt_, col); }

double SqliteStatement::ColumnDouble(int col) const {
  return IsNull(col) ? std::numeric_limits<double>::quiet_NaN()
                     : sqlite3_column_double(stmt_, col);
}

std::string SqliteStatement::ColumnBytes(int col) const {
  const void* data = sqlite3_column_blob(stmt_, col);
  const int size = sqlite3_column_bytes(stmt_, col);
  return data == nullptr ? std::string() : std::string(static_cast<const char*>(data), size);
}

std::optional<int64_t> SqliteStatement::ColumnOptionalInt(int col) const {
  if (IsNull(col)) return std::nullopt;
  return ColumnInt(col);
}

}  // namespace stimloop
