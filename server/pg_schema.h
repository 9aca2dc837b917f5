// The PostgreSQL store's schema: its identity and version (the one-row
// table schema_version: application 'stimloop', version), the migrations
// that bring an older database to this build's version, and the checks run
// before anything is written. server/store_schema.md documents the tables
// (the same as SQLite's, plus leases).
#ifndef STIMLOOP_SERVER_PG_SCHEMA_H_
#define STIMLOOP_SERVER_PG_SCHEMA_H_

#include "absl/status/status.h"
#include "base/pg_connection.h"

namespace stimloop {

// schema_version.application of a stimloop store.
inline constexpr char kPgStoreApplication[] = "stimloop";
// schema_version.version this build writes; older databases are migrated.
inline constexpr int kPgStoreSchemaVersion = 1;

// Checks that the connected database (its current schema) is empty or a
// stimloop store this build can read, and creates or migrates the schema
// in one transaction, serialized against replicas opening at the same time
// (an advisory lock). A foreign database is not written to.
// FAILED_PRECONDITION naming `where` for tables of another application or
// a newer schema version; DATA_LOSS for a damaged schema_version table.
absl::Status CheckAndMigratePgSchema(PgConnection& conn, const std::string& where);

}  // namespace stimloop

#endif  // STIMLOOP_SERVER_PG_SCHEMA_H_
