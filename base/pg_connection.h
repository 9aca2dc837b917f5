// The one libpq wrapper: a connection, a statement's parameters and its
// result, owned RAII-style. Shared by the PostgreSQL session store
// (server/pg_session_store.h), its schema (server/pg_schema.h) and the
// inspection tool's store reader.
//
//   auto conn = PgConnection::Connect("postgresql://127.0.0.1:5432/stimloop");
//   PgParams p;
//   p.Text(id).Int(17).Bytes(png);
//   auto rows = conn->Exec("SELECT a, b FROM t WHERE id = $1 AND n = $2 AND png = $3",
//                          p, "store: reading t");
//   for (int r = 0; r < rows->rows(); ++r) Use(rows->Int(r, 0), rows->Bytes(r, 1));
//
// Every parameter is sent and every result read in binary form, so bytes,
// integers and doubles go through exactly. Errors read "<what>: <server
// message>" with a code by SQLSTATE (PgStatus). Not thread-safe: one
// connection, one thread at a time (the store serializes its calls).
#ifndef STIMLOOP_BASE_PG_CONNECTION_H_
#define STIMLOOP_BASE_PG_CONNECTION_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

struct pg_conn;
struct pg_result;

namespace stimloop {

// A statement's parameters ($1, $2, ... in the order added), kept by value.
class PgParams {
 public:
  PgParams& Int(int64_t v);
  // NaN is sent as NULL (as the SQLite store binds it).
  PgParams& Double(double v);
  PgParams& Text(absl::string_view v);
  PgParams& Bytes(absl::string_view v);
  PgParams& Bool(bool v);
  PgParams& Null();

  int size() const { return static_cast<int>(values_.size()); }
  const std::vector<unsigned int>& types() const { return types_; }
  std::vector<const char*> values() const;
  std::vector<int> lengths() const;
  std::vector<int> formats() const;

 private:
  std::vector<std::string> values_;
  std::vector<bool> null_;
  std::vector<unsigned int> types_;  // PostgreSQL type oids
};

// A result, freed on destruction. Column accessors check the column's type
// and return 0 / empty for NULL (IsNull tells).
class PgResult {
 public:
  explicit PgResult(pg_result* result) : result_(result) {}
  ~PgResult();
  PgResult(PgResult&& other) noexcept : result_(other.result_) { other.result_ = nullptr; }
  PgResult& operator=(PgResult&& other) noexcept;
  PgResult(const PgResult&) = delete;
  PgResult& operator=(const PgResult&) = delete;

  int rows() const;
  // Rows changed by an INSERT/UPDATE/DELETE.
  int64_t affected() const;
  bool IsNull(int row, int column) const;
  // int2, int4 or int8; also a numeric text column holding an integer.
  int64_t Int(int row, int column) const;
  std::optional<int64_t> OptionalInt(int row, int column) const;
  double Double(int row, int column) const;      // float8 (or float4)
  std::string Bytes(int row, int column) const;  // text or bytea: the raw bytes
  bool Bool(int row, int column) const;

 private:
  friend class PgConnection;
  pg_result* result_;
};

// `sqlstate` (five characters) as a status with `message`: ALREADY_EXISTS
// for a unique violation (23505), NOT_FOUND for a foreign-key one (23503),
// RESOURCE_EXHAUSTED for a full disk or too many connections (53xxx),
// UNAVAILABLE for connection errors, a shutdown or a serialization or lock
// failure (08xxx, 57Pxx, 40xxx, 55P03), INVALID_ARGUMENT for data the
// server refuses (22xxx), INTERNAL otherwise.
absl::Status PgStatus(absl::string_view sqlstate, std::string message);

class PgConnection {
 public:
  // Connects with a libpq connection string or URI (postgresql://...).
  // UNAVAILABLE with libpq's message when the server cannot be reached or
  // refuses; INVALID_ARGUMENT when `conninfo` does not parse.
  static absl::StatusOr<std::unique_ptr<PgConnection>> Connect(const std::string& conninfo);
  ~PgConnection();
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  // Runs one statement; errors as PgStatus, with "<what>: " before the
  // server's message. When the connection was lost before the call, it is
  // re-established once first (a statement is never sent twice).
  absl::StatusOr<PgResult> Exec(const char* sql, const PgParams& params, absl::string_view what);
  absl::StatusOr<PgResult> Exec(const char* sql, absl::string_view what) {
    return Exec(sql, PgParams(), what);
  }
  // Runs SQL without parameters or results, several statements allowed
  // (DDL); transactions go through Begin/Commit/Rollback.
  absl::Status Run(const char* sql, absl::string_view what);

  // A transaction: `begin_sql` is "BEGIN" or "BEGIN ISOLATION LEVEL ...".
  // Until Commit or Rollback, a lost connection is UNAVAILABLE for every
  // statement, never silently re-established. Commit's error means the
  // transaction did not commit, except an UNAVAILABLE one, where the
  // outcome is unknown.
  absl::Status Begin(const char* begin_sql, absl::string_view what);
  absl::Status Commit(absl::string_view what);
  void Rollback();

  // "host:port/dbname" of the connection, without user or password.
  std::string Describe() const;

 private:
  explicit PgConnection(pg_conn* conn) : conn_(conn) {}
  absl::Status EnsureConnected(absl::string_view what);
  // EnsureConnected outside a transaction; inside, UNAVAILABLE when lost.
  absl::Status Ready(absl::string_view what);
  // OK for a command or query that succeeded, else its error as PgStatus.
  absl::Status CheckResult(pg_result* result, absl::string_view what);
  pg_conn* conn_;
  bool in_transaction_ = false;
};

}  // namespace stimloop

#endif  // STIMLOOP_BASE_PG_CONNECTION_H_
