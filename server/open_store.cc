#include "server/open_store.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/echo.h"

namespace stimloop {

bool IsPostgresUri(const std::string& store) {
  return absl::StartsWith(store, "postgresql://") || absl::StartsWith(store, "postgres://");
}

absl::StatusOr<std::unique_ptr<DurableStore>> OpenDurableStore(const std::string& store,
                                                               const std::string& data_dir,
                                                               const StoreOptions& sqlite_options,
                                                               const PgStoreOptions& pg_options) {
  if (store.empty()) {
    auto opened = SessionStore::Open(data_dir, sqlite_options);
    if (!opened.ok()) return opened.status();
    return std::unique_ptr<DurableStore>(*std::move(opened));
  }
  if (!IsPostgresUri(store)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--store: expected a PostgreSQL URI (postgresql://host:port/dbname) or nothing (the "
        "SQLite store in --data_dir), got ",
        QuotedEcho(store)));
  }
  auto opened = PgSessionStore::Open(store, pg_options);
  if (!opened.ok()) return opened.status();
  return std::unique_ptr<DurableStore>(*std::move(opened));
}

}  // namespace stimloop
