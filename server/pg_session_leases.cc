// PgSessionStore's leases (server/session_leases.h): the lease row of each
// open session, claimed, renewed, checked by every write (the fence) and
// released. Expiry is the database's clock (clock_timestamp()), so replicas
// need not agree on the time; Holds is this machine's conservative view.
#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "base/echo.h"
#include "server/pg_session_store.h"

namespace stimloop {
namespace {

absl::Status NoSession(absl::string_view session_id) {
  return absl::NotFoundError(
      absl::StrCat("session_id: no session ", QuotedEcho(session_id), " in the store"));
}

}  // namespace

PgParams PgSessionStore::TtlParams() const {
  PgParams p;
  p.Int(absl::ToInt64Microseconds(ttl_));
  return p;
}

void PgSessionStore::SetAddress(const std::string& address) {
  absl::MutexLock lock(&mu_);
  address_ = address;
}

absl::StatusOr<SessionLeases::Claimed> PgSessionStore::Claim(const std::string& session_id) {
  const std::string address = Address();
  if (address.empty()) {
    return absl::UnavailableError(
        "session store: this replica is starting (no advertised address yet); retry");
  }
  auto handle = pool_->Acquire();
  if (!handle.ok()) return handle.status();
  PgConnection& c = **handle;
  const absl::Time start = absl::Now();
  Claimed claimed = Claimed::kNew;
  absl::Status status = InTransaction(c, "claiming a lease", [&]() -> absl::Status {
    PgParams id;
    id.Text(session_id);
    auto session = c.Exec("SELECT status FROM sessions WHERE id = $1 FOR SHARE", id,
                          "session store: select from sessions");
    if (!session.ok()) return session.status();
    if (session->rows() == 0) return NoSession(session_id);
    if (session->Bytes(0, 0) == "closed") {
      claimed = Claimed::kClosed;
      return absl::OkStatus();
    }
    auto lease = c.Exec(
        "SELECT owner, address, expires_at > clock_timestamp() FROM leases "
        "WHERE session_id = $1 FOR UPDATE",
        id, "session store: select from leases");
    if (!lease.ok()) return lease.status();
    std::string previous;
    if (lease->rows() == 1) {
      previous = lease->Bytes(0, 0);
      if (previous != replica_id_ && lease->Bool(0, 2)) {
        return OwnedElsewhereError(session_id, previous, lease->Bytes(0, 1));
      }
      claimed = previous == replica_id_ ? Claimed::kHeld : Claimed::kTakenOver;
    }
    // Takes the row only from this replica or an expired owner: a replica
    // that inserted it concurrently keeps it (no row returned).
    PgParams p = TtlParams();
    p.Text(session_id).Text(replica_id_).Text(address);
    auto taken = c.Exec(
        "INSERT INTO leases AS l (session_id, owner, address, acquired_at, expires_at) "
        "VALUES ($2, $3, $4, clock_timestamp(), clock_timestamp() + $1 * interval "
        "'1 microsecond') "
        "ON CONFLICT (session_id) DO UPDATE SET owner = EXCLUDED.owner, "
        "address = EXCLUDED.address, expires_at = EXCLUDED.expires_at, "
        "acquired_at = CASE WHEN l.owner = EXCLUDED.owner THEN l.acquired_at "
        "ELSE EXCLUDED.acquired_at END "
        "WHERE l.owner = EXCLUDED.owner OR l.expires_at <= clock_timestamp() "
        "RETURNING l.owner",
        p, "session store: claiming a lease");
    if (!taken.ok()) return taken.status();
    if (taken->rows() != 1) {
      auto now = c.Exec("SELECT owner, address FROM leases WHERE session_id = $1", id,
                        "session store: select from leases");
      if (!now.ok()) return now.status();
      if (now->rows() != 1) {
        return absl::UnavailableError(absl::StrCat("session store: session '", session_id,
                                                   "': its lease changed hands; retry"));
      }
      return OwnedElsewhereError(session_id, now->Bytes(0, 0), now->Bytes(0, 1));
    }
    if (claimed == Claimed::kTakenOver) {
      return InsertEvent(c, session_id, kEventTakenOver,
                         absl::StrCat("from replica ", QuotedEcho(previous), " by replica ",
                                      QuotedEcho(replica_id_)),
                         absl::Now());
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  if (claimed != Claimed::kClosed) {
    absl::MutexLock lock(&mu_);
    held_[session_id] = start + ttl_;
  }
  return claimed;
}

absl::Status PgSessionStore::Fence(PgConnection& c, const std::string& session_id) {
  const absl::Time start = absl::Now();
  PgParams p = TtlParams();
  p.Text(session_id).Text(replica_id_);
  auto renewed = c.Exec(
      "UPDATE leases SET expires_at = clock_timestamp() + $1 * interval '1 microsecond' "
      "WHERE session_id = $2 AND owner = $3",
      p, "session store: renewing a lease");
  if (!renewed.ok()) return renewed.status();
  {
    absl::MutexLock lock(&mu_);
    if (renewed->affected() == 1) {
      held_[session_id] = start + ttl_;
      return absl::OkStatus();
    }
    held_.erase(session_id);
  }
  PgParams id;
  id.Text(session_id);
  auto session =
      c.Exec("SELECT 1 FROM sessions WHERE id = $1", id, "session store: select from sessions");
  if (!session.ok()) return session.status();
  if (session->rows() == 0) return NoSession(session_id);
  auto lease = c.Exec(
      "SELECT owner, address, expires_at > clock_timestamp() FROM leases WHERE session_id = $1", id,
      "session store: select from leases");
  if (!lease.ok()) return lease.status();
  if (lease->rows() == 1 && lease->Bool(0, 2)) {
    return OwnedElsewhereError(session_id, lease->Bytes(0, 0), lease->Bytes(0, 1));
  }
  return absl::UnavailableError(absl::StrCat(
      "session_id: this replica no longer holds the lease of session '", session_id,
      "' (it expired and was taken over); retry: the session is reloaded from the store"));
}

bool PgSessionStore::Holds(const std::string& session_id) {
  absl::MutexLock lock(&mu_);
  auto it = held_.find(session_id);
  return it != held_.end() && absl::Now() < it->second;
}

absl::StatusOr<std::vector<std::string>> PgSessionStore::Renew() {
  auto handle = pool_->Acquire();
  if (!handle.ok()) return handle.status();
  PgConnection& c = **handle;
  const absl::Time start = absl::Now();
  PgParams p = TtlParams();
  p.Text(replica_id_);
  auto rows = c.Exec(
      "UPDATE leases SET expires_at = clock_timestamp() + $1 * interval '1 microsecond' "
      "WHERE owner = $2 RETURNING session_id",
      p, "session store: renewing leases");
  if (!rows.ok()) return rows.status();
  absl::flat_hash_set<std::string> kept;
  for (int r = 0; r < rows->rows(); ++r) kept.insert(rows->Bytes(r, 0));
  std::vector<std::string> lost;
  absl::MutexLock lock(&mu_);
  for (auto it = held_.begin(); it != held_.end();) {
    if (kept.contains(it->first)) {
      it->second = std::max(it->second, start + ttl_);
      ++it;
    } else if (it->second >= start + ttl_) {
      ++it;  // claimed (on another connection) after this renewal began
    } else {
      lost.push_back(it->first);
      held_.erase(it++);
    }
  }
  return lost;
}

absl::Status PgSessionStore::ReleaseAll() {
  auto handle = pool_->Acquire();
  if (!handle.ok()) return handle.status();
  PgConnection& c = **handle;
  PgParams p;
  p.Text(replica_id_);
  absl::Status s =
      c.Exec("DELETE FROM leases WHERE owner = $1", p, "session store: releasing leases").status();
  absl::MutexLock lock(&mu_);
  held_.clear();
  return s;
}

}  // namespace stimloop
