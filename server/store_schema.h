// The store's schema: its identity (PRAGMA application_id), the version
// this build writes, the migrations that bring an older file to it, and the
// checks run before a file is touched. server/store_schema.md documents the
// tables.
#ifndef STIMLOOP_SERVER_STORE_SCHEMA_H_
#define STIMLOOP_SERVER_STORE_SCHEMA_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

struct sqlite3;

namespace stimloop {

// PRAGMA application_id of a stimloop store: "STLP".
inline constexpr int32_t kStoreApplicationId = 0x53544C50;
// PRAGMA user_version this build writes; older files are migrated.
inline constexpr int kStoreSchemaVersion = 3;

// Registers the SQL function stimloop_crc32(payload) on `db`: the
// StoreChecksum (server/store_checksum.h) of a BLOB, NULL for NULL. The
// migrations need it.
absl::Status RegisterStoreFunctions(sqlite3* db);

// Checks that `db` (the file at `path`, named in errors) is empty, or a
// stimloop store this build can read that passes PRAGMA quick_check (when
// `check_integrity`); switches it to WAL; creates or migrates the schema in
// one transaction. A foreign file is not written to. FAILED_PRECONDITION for
// another application's database or a newer schema, DATA_LOSS for a file
// that is not SQLite or fails quick_check, UNAVAILABLE without WAL.
absl::Status CheckAndMigrateSchema(sqlite3* db, const std::string& path, bool check_integrity);

// Runs SQL without results (pragmas, DDL, BEGIN/COMMIT); errors read
// "session store: <what>: ...".
absl::Status StoreExec(sqlite3* db, const char* sql, absl::string_view what);

}  // namespace stimloop

#endif  // STIMLOOP_SERVER_STORE_SCHEMA_H_
