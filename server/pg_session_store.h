// The session store in a PostgreSQL database (--store=postgresql://...),
// shared by the replicas of a cluster. Keeps DurableStore's guarantees
// (server/durable_store.h): every journal call is one transaction, committed
// (PostgreSQL's synchronous_commit, on by default) before it returns; a
// request_id counts once per session (ALREADY_EXISTS); every payload carries
// its CRC-32, verified by LoadSession (DATA_LOSS naming session and row);
// the schema is versioned (server/pg_schema.h), a foreign or newer one
// refused on Open.
//
// Ownership (server/session_leases.h): SessionCreated takes the new
// session's lease in the same transaction; every other write of a session
// first checks, in its transaction, that this replica's lease on it stands
// (the fence). A write for a session this replica does not own fails with
// OwnedElsewhereError (another live owner) or UNAVAILABLE (the lease was
// lost and has since expired: retry, the session is reloaded). After any
// failed write of a session (e.g. a lost connection, where the commit's
// outcome is unknown) Holds is false for it until it is claimed again, so
// the server reloads it from the store instead of going on from a copy
// that may differ.
//
// Thread-safe: each call runs on a connection of a small pool
// (PgStoreOptions::connections), so different sessions commit in
// parallel; a session's own writes are ordered by its lease row (the
// fence locks it). A lost connection is re-established on its next use; a
// transaction it cut short fails with UNAVAILABLE.
//
// Files: Open, the journal writes here; LoadSession in
// pg_session_store_load.cc; the leases in pg_session_leases.cc.
#ifndef STIMLOOP_SERVER_PG_SESSION_STORE_H_
#define STIMLOOP_SERVER_PG_SESSION_STORE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "base/pg_connection.h"
#include "base/pg_pool.h"
#include "server/durable_store.h"
#include "server/session_leases.h"

namespace stimloop {

struct PgStoreOptions {
  // This replica's id in lease rows; empty: "<hostname>-<pid>-<random>".
  std::string replica_id;
  // The address other replicas send clients to (SetAddress may set it later).
  std::string address;
  // How long a lease lasts without renewal (renew about every ttl / 3).
  absl::Duration lease_ttl = absl::Seconds(10);
  // Connections to the database (base/pg_pool.h): journal calls of
  // different sessions commit in parallel on them.
  int connections = 4;
};

class PgSessionStore : public DurableStore, public SessionLeases {
 public:
  // Connects with `conninfo` (a libpq URI or connection string), checks and
  // migrates the schema. UNAVAILABLE when the server cannot be reached,
  // INVALID_ARGUMENT for a URI that does not parse, FAILED_PRECONDITION for
  // a foreign or newer schema (pg_schema.h).
  static absl::StatusOr<std::unique_ptr<PgSessionStore>> Open(const std::string& conninfo,
                                                              const PgStoreOptions& options = {});
  ~PgSessionStore() override = default;

  // SessionJournal.
  absl::Status SessionCreated(const std::string& session_id, const v1::SessionConfig& config,
                              absl::Time created) override;
  absl::Status GenerationProposed(const std::string& session_id, int64_t generation,
                                  absl::Span<const StimulusEntry> stimuli,
                                  const std::string& optimizer_state,
                                  int64_t responses_told, size_t handed_out) override;
  absl::Status StimuliHandedOut(const std::string& session_id,
                                absl::Span<const std::string> stimulus_ids) override;
  absl::Status ResponsesReported(const std::string& session_id, const std::string& request_id,
                                 const std::string& content_digest,
                                 absl::Span<const ResponseEntry> responses,
                                 const v1::ReportResponsesAck& ack, absl::Time received) override;
  absl::Status SessionClosed(const std::string& session_id, absl::Time closed) override;
  absl::Status ModelVersionFitted(const std::string& session_id, int64_t version,
                                  const std::map<std::string, double>& metrics,
                                  const std::string& checkpoint) override;

  // DurableStore.
  absl::Status RecordModelVersion(const std::string& session_id, int64_t version,
                                  absl::string_view metrics_json, absl::string_view checkpoint,
                                  absl::Time created) override;
  absl::Status RecordEvent(const std::string& session_id, absl::string_view kind,
                           absl::string_view detail, absl::Time time) override;
  absl::StatusOr<std::vector<std::string>> OpenSessionIds() override;
  absl::StatusOr<std::vector<std::string>> AllSessionIds() override;
  absl::StatusOr<JournaledSession> LoadSession(const std::string& session_id) override;
  std::string Describe() const override { return where_; }
  SessionLeases* leases() override { return this; }

  // SessionLeases (pg_session_leases.cc).
  absl::StatusOr<Claimed> Claim(const std::string& session_id) override;
  bool Holds(const std::string& session_id) override;
  absl::StatusOr<std::vector<std::string>> Renew() override;
  absl::Status ReleaseAll() override;
  void SetAddress(const std::string& address) override;
  absl::Duration ttl() const override { return ttl_; }
  const std::string& replica_id() const override { return replica_id_; }

 private:
  PgSessionStore(std::unique_ptr<PgPool> pool, std::string where, std::string replica_id,
                 std::string address, absl::Duration ttl);

  // Runs `body` inside BEGIN ... COMMIT on `c` (ROLLBACK on error).
  absl::Status InTransaction(PgConnection& c, absl::string_view what,
                             absl::FunctionRef<absl::Status()> body);
  // InTransaction for a write of `session_id`; on error, this replica no
  // longer counts as holding it (Holds), so that the session is reloaded
  // from the store before it serves again.
  absl::Status InSessionTransaction(PgConnection& c, const std::string& session_id,
                                    absl::string_view what, absl::FunctionRef<absl::Status()> body);
  // The fence, inside a transaction on `c`: OK when this replica owns the
  // lease of `session_id` (extending it, and locking the lease row until
  // the transaction ends), else the error every write of it gets.
  absl::Status Fence(PgConnection& c, const std::string& session_id);
  absl::Status InsertEvent(PgConnection& c, const std::string& session_id, absl::string_view kind,
                           absl::string_view detail, absl::Time time);
  absl::StatusOr<std::vector<std::string>> SessionIds(const char* sql);
  PgParams TtlParams() const;
  std::string Address();

  const std::string where_;  // "PostgreSQL host:port/dbname"
  const std::string replica_id_;
  const absl::Duration ttl_;
  const std::unique_ptr<PgPool> pool_;
  absl::Mutex mu_;
  std::string address_ ABSL_GUARDED_BY(mu_);
  // Sessions this replica holds, with the local time until which the lease
  // is known valid.
  absl::flat_hash_map<std::string, absl::Time> held_ ABSL_GUARDED_BY(mu_);
};

}  // namespace stimloop

#endif  // STIMLOOP_SERVER_PG_SESSION_STORE_H_
