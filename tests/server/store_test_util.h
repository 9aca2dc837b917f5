// Test helpers that look at and damage a session store file with plain
// SQLite, beside the store's own code: for the store, integration and
// inspection tests.
#ifndef STIMLOOP_TESTS_SERVER_STORE_TEST_UTIL_H_
#define STIMLOOP_TESTS_SERVER_STORE_TEST_UTIL_H_

#include <sqlite3.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include <gtest/gtest.h>

namespace stimloop {

// A fresh, empty directory under the system temp dir.
inline std::string FreshStoreTestDir(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("stimloop-store-test-" + name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

inline std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Runs `sql` on a plain SQLite connection to `path`; returns the first
// column of the first row, if any.
inline std::string Sql(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  std::string out;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK)
      << sqlite3_errmsg(db);
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    if (out.empty() && sqlite3_column_text(stmt, 0) != nullptr) {
      out = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    }
  }
  EXPECT_EQ(rc, SQLITE_DONE) << sqlite3_errmsg(db);
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return out;
}

// Runs one or more statements without results.
inline void ExecSql(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  char* error = nullptr;
  EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error), SQLITE_OK)
      << (error != nullptr ? error : "") << " in " << sql;
  sqlite3_free(error);
  sqlite3_close(db);
}

// Flips the bits of the middle byte of `column` in the first row of `table`
// matching `where` (SQL), as damage that leaves the database valid would.
// False when no row matches or the value is empty.
inline bool FlipStoredByte(const std::string& path, const std::string& table,
                           const std::string& column, const std::string& where) {
  sqlite3* db = nullptr;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) return false;
  sqlite3_busy_timeout(db, 10000);
  sqlite3_stmt* stmt = nullptr;
  const std::string select =
      "SELECT rowid, " + column + " FROM " + table + " WHERE " + where + " LIMIT 1";
  std::string bytes;
  int64_t rowid = 0;
  if (sqlite3_prepare_v2(db, select.c_str(), -1, &stmt, nullptr) == SQLITE_OK &&
      sqlite3_step(stmt) == SQLITE_ROW) {
    rowid = sqlite3_column_int64(stmt, 0);
    const void* data = sqlite3_column_blob(stmt, 1);
    if (data != nullptr)
      bytes.assign(static_cast<const char*>(data), sqlite3_column_bytes(stmt, 1));
  }
  sqlite3_finalize(stmt);
  bool flipped = false;
  if (!bytes.empty()) {
    bytes[bytes.size() / 2] = static_cast<char>(~bytes[bytes.size() / 2]);
    const std::string update = "UPDATE " + table + " SET " + column + " = ? WHERE rowid = ?";
    if (sqlite3_prepare_v2(db, update.c_str(), -1, &stmt, nullptr) == SQLITE_OK) {
      sqlite3_bind_blob64(stmt, 1, bytes.data(), bytes.size(), SQLITE_TRANSIENT);
      sqlite3_bind_int64(stmt, 2, rowid);
      flipped = sqlite3_step(stmt) == SQLITE_DONE && sqlite3_changes(db) == 1;
    }
    sqlite3_finalize(stmt);
  }
  sqlite3_close(db);
  return flipped;
}

}  // namespace stimloop

#endif  // STIMLOOP_TESTS_SERVER_STORE_TEST_UTIL_H_
