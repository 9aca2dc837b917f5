#include "base/pg_connection.h"

#include <endian.h>
#include <libpq-fe.h>

#include <cmath>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace stimloop {
namespace {

// PostgreSQL type oids (catalog/pg_type.h).
constexpr unsigned int kBoolOid = 16;
constexpr unsigned int kByteaOid = 17;
constexpr unsigned int kInt8Oid = 20;
constexpr unsigned int kInt2Oid = 21;
constexpr unsigned int kInt4Oid = 23;
constexpr unsigned int kTextOid = 25;
constexpr unsigned int kFloat4Oid = 700;
constexpr unsigned int kFloat8Oid = 701;

std::string BigEndian64(uint64_t v) {
  const uint64_t be = htobe64(v);
  return std::string(reinterpret_cast<const char*>(&be), sizeof(be));
}

uint64_t ReadBigEndian(const char* p, int size) {
  uint64_t v = 0;
  for (int i = 0; i < size; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

std::string TrimmedError(const char* message) {
  return std::string(absl::StripTrailingAsciiWhitespace(message == nullptr ? "" : message));
}

}  // namespace

PgParams& PgParams::Int(int64_t v) {
  values_.push_back(BigEndian64(static_cast<uint64_t>(v)));
  null_.push_back(false);
  types_.push_back(kInt8Oid);
  return *this;
}

PgParams& PgParams::Double(double v) {
  if (std::isnan(v)) {
    values_.emplace_back();
    null_.push_back(true);
  } else {
    uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof(bits));
    values_.push_back(BigEndian64(bits));
    null_.push_back(false);
  }
  types_.push_back(kFloat8Oid);
  return *this;
}

PgParams& PgParams::Text(absl::string_view v) {
  values_.emplace_back(v);
  null_.push_back(false);
  types_.push_back(kTextOid);
  return *this;
}

PgParams& PgParams::Bytes(absl::string_view v) {
  values_.emplace_back(v);
  null_.push_back(false);
  types_.push_back(kByteaOid);
  return *this;
}

PgParams& PgParams::Bool(bool v) {
  values_.push_back(std::string(1, v ? '\1' : '\0'));
  null_.push_back(false);
  types_.push_back(kBoolOid);
  return *this;
}

PgParams& PgParams::Null() {
  values_.emplace_back();
  null_.push_back(true);
  types_.push_back(0);  // the server infers it
  return *this;
}

std::vector<const char*> PgParams::values() const {
  std::vector<const char*> out;
  for (size_t i = 0; i < values_.size(); ++i) {
    out.push_back(null_[i] ? nullptr : values_[i].data());
  }
  return out;
}

std::vector<int> PgParams::lengths() const {
  std::vector<int> out;
  for (const std::string& v : values_) out.push_back(static_cast<int>(v.size()));
  return out;
}

std::vector<int> PgParams::formats() const { return std::vector<int>(values_.size(), 1); }

PgResult::~PgResult() {
  if (result_ != nullptr) PQclear(result_);
}

PgResult& PgResult::operator=(PgResult&& other) noexcept {
  if (this != &other) {
    if (result_ != nullptr) PQclear(result_);
    result_ = other.result_;
    other.result_ = nullptr;
  }
  return *this;
}

int PgResult::rows() const { return PQntuples(result_); }

int64_t PgResult::affected() const {
  int64_t n = 0;
  return absl::SimpleAtoi(PQcmdTuples(result_), &n) ? n : 0;
}

bool PgResult::IsNull(int row, int column) const { return PQgetisnull(result_, row, column) != 0; }

int64_t PgResult::Int(int row, int column) const {
  if (IsNull(row, column)) return 0;
  const char* p = PQgetvalue(result_, row, column);
  const int size = PQgetlength(result_, row, column);
  switch (PQftype(result_, column)) {
    case kInt2Oid:
      return static_cast<int16_t>(ReadBigEndian(p, size));
    case kInt4Oid:
      return static_cast<int32_t>(ReadBigEndian(p, size));
    case kInt8Oid:
      return static_cast<int64_t>(ReadBigEndian(p, size));
    case kBoolOid:
      return p[0] != 0;
    default: {
      int64_t v = 0;
      return absl::SimpleAtoi(absl::string_view(p, size), &v) ? v : 0;
    }
  }
}

std::optional<int64_t> PgResult::OptionalInt(int row, int column) const {
  if (IsNull(row, column)) return std::nullopt;
  return Int(row, column);
}

double PgResult::Double(int row, int column) const {
  if (IsNull(row, column)) return 0;
  const char* p = PQgetvalue(result_, row, column);
  const int size = PQgetlength(result_, row, column);
  switch (PQftype(result_, column)) {
    case kFloat8Oid: {
      const uint64_t bits = ReadBigEndian(p, size);
      double v;
      std::memcpy(&v, &bits, sizeof(v));
      return v;
    }
    case kFloat4Oid: {
      const uint32_t bits = static_cast<uint32_t>(ReadBigEndian(p, size));
      float v;
      std::memcpy(&v, &bits, sizeof(v));
      return v;
    }
    default:
      return static_cast<double>(Int(row, column));
  }
}

std::string PgResult::Bytes(int row, int column) const {
  if (IsNull(row, column)) return std::string();
  return std::string(PQgetvalue(result_, row, column), PQgetlength(result_, row, column));
}

bool PgResult::Bool(int row, int column) const { return Int(row, column) != 0; }

absl::Status PgStatus(absl::string_view sqlstate, std::string message) {
  if (sqlstate == "23505") return absl::AlreadyExistsError(std::move(message));
  if (sqlstate == "23503") return absl::NotFoundError(std::move(message));
  if (absl::StartsWith(sqlstate, "53")) return absl::ResourceExhaustedError(std::move(message));
  if (sqlstate.empty() || absl::StartsWith(sqlstate, "08") || absl::StartsWith(sqlstate, "57P") ||
      absl::StartsWith(sqlstate, "40") || sqlstate == "55P03") {
    return absl::UnavailableError(std::move(message));
  }
  if (absl::StartsWith(sqlstate, "22")) return absl::InvalidArgumentError(std::move(message));
  return absl::InternalError(std::move(message));
}

absl::StatusOr<std::unique_ptr<PgConnection>> PgConnection::Connect(const std::string& conninfo) {
  char* parse_error = nullptr;
  PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &parse_error);
  if (options == nullptr) {
    std::string message = TrimmedError(parse_error);
    PQfreemem(parse_error);
    return absl::InvalidArgumentError(
        absl::StrCat("store: not a PostgreSQL connection URI: ", message));
  }
  PQconninfoFree(options);
  pg_conn* conn = PQconnectdb(conninfo.c_str());
  if (conn == nullptr) return absl::ResourceExhaustedError("store: libpq: out of memory");
  std::unique_ptr<PgConnection> out(new PgConnection(conn));
  if (PQstatus(conn) != CONNECTION_OK) {
    return absl::UnavailableError(absl::StrCat("store: cannot connect to PostgreSQL (",
                                               out->Describe(),
                                               "): ", TrimmedError(PQerrorMessage(conn))));
  }
  // Quiet NOTICEs (e.g. "relation already exists, skipping") off stderr.
  PQsetNoticeProcessor(
      conn, [](void*, const char*) {}, nullptr);
  return out;
}

PgConnection::~PgConnection() { PQfinish(conn_); }

absl::Status PgConnection::EnsureConnected(absl::string_view what) {
  if (PQstatus(conn_) == CONNECTION_OK) return absl::OkStatus();
  PQreset(conn_);
  if (PQstatus(conn_) == CONNECTION_OK) return absl::OkStatus();
  return absl::UnavailableError(absl::StrCat(what, ": lost the connection to PostgreSQL (",
                                             Describe(),
                                             "): ", TrimmedError(PQerrorMessage(conn_))));
}

absl::StatusOr<PgResult> PgConnection::Exec(const char* sql, const PgParams& params,
                                            absl::string_view what) {
  if (absl::Status s = Ready(what); !s.ok()) return s;
  const std::vector<const char*> values = params.values();
  const std::vector<int> lengths = params.lengths();
  const std::vector<int> formats = params.formats();
  PgResult result(PQexecParams(conn_, sql, params.size(), params.types().data(), values.data(),
                               lengths.data(), formats.data(), /*resultFormat=*/1));
  if (absl::Status s = CheckResult(result.result_, what); !s.ok()) return s;
  return result;
}

absl::Status PgConnection::CheckResult(pg_result* result, absl::string_view what) {
  const ExecStatusType status = result == nullptr ? PGRES_FATAL_ERROR : PQresultStatus(result);
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return absl::OkStatus();
  const char* sqlstate = result == nullptr ? nullptr : PQresultErrorField(result, PG_DIAG_SQLSTATE);
  const char* message = result == nullptr ? PQerrorMessage(conn_) : PQresultErrorMessage(result);
  if (message == nullptr || *message == '\0') message = PQerrorMessage(conn_);
  return PgStatus(sqlstate == nullptr ? "" : sqlstate,
                  absl::StrCat(what, ": ", TrimmedError(message)));
}

absl::Status PgConnection::Ready(absl::string_view what) {
  // Reconnect only outside a transaction: a transaction that lost its
  // connection was rolled back by the server, and its caller must see that
  // instead of having the rest of it run on a new connection.
  if (!in_transaction_) return EnsureConnected(what);
  if (PQstatus(conn_) != CONNECTION_OK) {
    return absl::UnavailableError(
        absl::StrCat(what, ": lost the connection to PostgreSQL (", Describe(),
                     ") inside a transaction, which the server rolled back"));
  }
  return absl::OkStatus();
}

absl::Status PgConnection::Begin(const char* sql, absl::string_view what) {
  if (absl::Status s = Run(sql, what); !s.ok()) return s;
  in_transaction_ = true;
  return absl::OkStatus();
}

absl::Status PgConnection::Commit(absl::string_view what) {
  absl::Status s = Run("COMMIT", what);
  in_transaction_ = false;
  return s;
}

void PgConnection::Rollback() {
  if (PQstatus(conn_) == CONNECTION_OK) {
    PgResult result(PQexec(conn_, "ROLLBACK"));
  }
  in_transaction_ = false;
}

absl::Status PgConnection::Run(const char* sql, absl::string_view what) {
  if (absl::Status s = Ready(what); !s.ok()) return s;
  PgResult result(PQexec(conn_, sql));
  return CheckResult(result.result_, what);
}

std::string PgConnection::Describe() const {
  const char* host = PQhost(conn_);
  const char* port = PQport(conn_);
  const char* db = PQdb(conn_);
  return absl::StrCat(host == nullptr ? "" : host, ":", port == nullptr ? "" : port, "/",
                      db == nullptr ? "" : db);
}

}  // namespace stimloop
