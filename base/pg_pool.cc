#include "base/pg_pool.h"

#include <utility>

namespace stimloop {

PgPool::PgPool(std::string conninfo, std::unique_ptr<PgConnection> first, int size)
    : conninfo_(std::move(conninfo)), size_(size < 1 ? 1 : size) {
  idle_.push_back(std::move(first));
  open_ = 1;
}

absl::StatusOr<PgPool::Handle> PgPool::Acquire() {
  {
    absl::MutexLock lock(&mu_);
    auto available = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return !idle_.empty() || open_ < size_;
    };
    mu_.Await(absl::Condition(&available));
    if (!idle_.empty()) {
      std::unique_ptr<PgConnection> conn = std::move(idle_.back());
      idle_.pop_back();
      return Handle(this, std::move(conn));
    }
    ++open_;  // reserved; connected below, outside the lock
  }
  auto conn = PgConnection::Connect(conninfo_);
  if (!conn.ok()) {
    absl::MutexLock lock(&mu_);
    --open_;
    return conn.status();
  }
  return Handle(this, *std::move(conn));
}

void PgPool::Release(std::unique_ptr<PgConnection> conn) {
  absl::MutexLock lock(&mu_);
  idle_.push_back(std::move(conn));
}

}  // namespace stimloop
