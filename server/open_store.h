// Opens the session store the server was told to use: the SQLite store in
// the data directory by default, or a PostgreSQL database shared by
// replicas when --store is a libpq URI ("postgresql://..." or
// "postgres://...").
#ifndef STIMLOOP_SERVER_OPEN_STORE_H_
#define STIMLOOP_SERVER_OPEN_STORE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/durable_store.h"
#include "server/pg_session_store.h"
#include "server/session_store.h"

namespace stimloop {

// True when `store` names a PostgreSQL database.
bool IsPostgresUri(const std::string& store);

// `store` empty: SessionStore::Open(data_dir, sqlite_options); a PostgreSQL
// URI: PgSessionStore::Open(store, pg_options). INVALID_ARGUMENT naming
// --store for anything else; otherwise the store's own errors.
absl::StatusOr<std::unique_ptr<DurableStore>> OpenDurableStore(const std::string& store,
                                                               const std::string& data_dir,
                                                               const StoreOptions& sqlite_options,
                                                               const PgStoreOptions& pg_options);

}  // namespace stimloop

#endif  // STIMLOOP_SERVER_OPEN_STORE_H_
