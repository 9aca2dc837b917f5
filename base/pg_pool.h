// A small pool of libpq connections (base/pg_connection.h) to one
// database, so that commits of different sessions need not wait for each
// other (PostgreSQL then groups their WAL flushes). Connections are made
// when first needed, up to `size`; Acquire waits for a free one. A
// connection that lost its server is re-established by PgConnection itself
// on its next use. Thread-safe.
#ifndef STIMLOOP_BASE_PG_POOL_H_
#define STIMLOOP_BASE_PG_POOL_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "base/pg_connection.h"

namespace stimloop {

class PgPool {
 public:
  // A connection taken from the pool, given back on destruction.
  class Handle {
   public:
    Handle(PgPool* pool, std::unique_ptr<PgConnection> conn)
        : pool_(pool), conn_(std::move(conn)) {}
    Handle(Handle&&) = default;
    Handle& operator=(Handle&&) = default;
    ~Handle() {
      if (conn_ != nullptr) pool_->Release(std::move(conn_));
    }
    PgConnection& operator*() const { return *conn_; }
    PgConnection* operator->() const { return conn_.get(); }

   private:
    PgPool* pool_;
    std::unique_ptr<PgConnection> conn_;
  };

  // Keeps `first` (already connected) and connects more with `conninfo`.
  // REQUIRES: size >= 1.
  PgPool(std::string conninfo, std::unique_ptr<PgConnection> first, int size);
  PgPool(const PgPool&) = delete;
  PgPool& operator=(const PgPool&) = delete;

  // A free connection, waiting for one when `size` are in use; the error of
  // connecting a new one (PgConnection::Connect).
  absl::StatusOr<Handle> Acquire();

 private:
  void Release(std::unique_ptr<PgConnection> conn);

  const std::string conninfo_;
  const int size_;
  absl::Mutex mu_;
  std::vector<std::unique_ptr<PgConnection>> idle_ ABSL_GUARDED_BY(mu_);
  int open_ ABSL_GUARDED_BY(mu_) = 0;  // idle or in use
};

}  // namespace stimloop

#endif  // STIMLOOP_BASE_PG_POOL_H_
