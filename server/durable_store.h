// The session store as the server uses it: the journal (server/
// session_journal.h) plus what the server reads back and logs. Two
// implementations keep the same guarantees:
//   - SessionStore (server/session_store.h): one SQLite file in --data_dir,
//     the default, one server per file;
//   - PgSessionStore (server/pg_session_store.h): a PostgreSQL database
//     shared by several replicas (--store=postgresql://...), with a lease
//     per session (server/session_leases.h).
// Both: every journal call is one transaction, committed before it returns;
// a request_id journaled twice for one session is ALREADY_EXISTS; every
// stored payload carries a CRC-32 (server/store_checksum.h) verified by
// LoadSession, a mismatch being DATA_LOSS naming the session and the row;
// the schema is versioned and migrated, and a foreign or newer one refused.
// Thread-safe.
#ifndef STIMLOOP_SERVER_DURABLE_STORE_H_
#define STIMLOOP_SERVER_DURABLE_STORE_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/session_journal.h"
#include "server/session_restore.h"

namespace stimloop {

class SessionLeases;

// Event kinds of the events table.
inline constexpr char kEventCreated[] = "created";
inline constexpr char kEventResumed[] = "resumed";
inline constexpr char kEventRefitStarted[] = "refit_started";
inline constexpr char kEventRefitFinished[] = "refit_finished";
inline constexpr char kEventClosed[] = "closed";
inline constexpr char kEventError[] = "error";
inline constexpr char kEventTakenOver[] = "taken_over";

class DurableStore : public SessionJournal {
 public:
  // A fitted surrogate version with its metrics (a JSON object, e.g.
  // {"heldout_r": 0.61}) and its checkpoint bytes (may be empty).
  // ALREADY_EXISTS when the session already has this version; NOT_FOUND for
  // an unknown session.
  virtual absl::Status RecordModelVersion(const std::string& session_id, int64_t version,
                                          absl::string_view metrics_json,
                                          absl::string_view checkpoint, absl::Time created) = 0;

  // Appends to the event log; `kind` is one of kEvent*, `detail` free text
  // or JSON. An empty session_id logs a server-wide event.
  virtual absl::Status RecordEvent(const std::string& session_id, absl::string_view kind,
                                   absl::string_view detail, absl::Time time) = 0;

  // Ids of the sessions whose status is open, oldest first.
  virtual absl::StatusOr<std::vector<std::string>> OpenSessionIds() = 0;
  // Ids of every session, open or closed, oldest first.
  virtual absl::StatusOr<std::vector<std::string>> AllSessionIds() = 0;

  // Everything journaled about one session (see server/session_restore.h).
  // NOT_FOUND for an unknown id; DATA_LOSS when a row cannot be decoded or
  // a payload fails its checksum ("session 'abc' stimulus 17: stored png
  // fails its checksum ...").
  virtual absl::StatusOr<JournaledSession> LoadSession(const std::string& session_id) = 0;

  // Where the store is, for logs: a file path, or host:port/dbname (never a
  // password).
  virtual std::string Describe() const = 0;

  // The session leases of a store shared by replicas; null for a store that
  // one server owns whole.
  virtual SessionLeases* leases() { return nullptr; }
};

}  // namespace stimloop

#endif  // STIMLOOP_SERVER_DURABLE_STORE_H_
