// The durable session journal: one SQLite file, <data_dir>/stimloop.sqlite.
// The schema is documented in server/store_schema.md (read that to query the
// store from elsewhere, e.g. the inspection tools).
//
// Durability: every journal call is one transaction, committed before the
// call returns. The file runs in WAL mode; with the default
// synchronous=FULL the WAL is fsync'ed at every commit, so an acknowledged
// response survives SIGKILL of the server and, as far as the disk honours
// fsync, power loss too. With synchronous=NORMAL (StoreOptions::sync) a
// commit survives SIGKILL (the WAL write has reached the kernel before the
// call returns) but the newest commits may roll back on power loss; the file
// stays consistent either way.
//
// Integrity: Open refuses (FAILED_PRECONDITION / DATA_LOSS with a message
// naming the file) a file that is not SQLite, a SQLite file of another
// application (application_id), a schema newer than this build, and a file
// that fails PRAGMA quick_check. It never repairs or overwrites such a file.
// An older schema is migrated in one transaction. A store file that is
// missing or empty where the data directory's marker says a store was
// created is DATA_LOSS unless StoreOptions::new_store
// (server/session_store_marker.h). Every stored payload carries a CRC-32
// (server/store_checksum.h), written with it and verified by LoadSession: a
// mismatch is DATA_LOSS naming the session and the row.
//
// Confinement: the store writes only inside the data directory (the
// database, its -wal and -shm files and a lock file); temporary tables live
// in memory. A lock file (flock) keeps a second server off the same
// directory; readers that open the SQLite file directly (inspection tools)
// are not blocked.
//
// Thread-safe: one connection, every call serialized by a mutex. A second
// connection checkpoints the WAL on a thread of its own
// (server/wal_checkpointer.h), so no journal call pays for a checkpoint.
//
// Files: Open and the journal writes in session_store.cc, LoadSession in
// session_store_load.cc, the schema and its migrations in store_schema.h,
// column encodings in store_encoding.h; statements go through
// base/sqlite_statement.h.
#ifndef STIMLOOP_SERVER_SESSION_STORE_H_
#define STIMLOOP_SERVER_SESSION_STORE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/durable_store.h"
#include "server/session_journal.h"
#include "server/session_restore.h"
#include "server/store_schema.h"
#include "server/wal_checkpointer.h"

struct sqlite3;
struct sqlite3_stmt;

namespace stimloop {

struct StoreOptions {
  enum class Sync { kFull, kNormal };
  Sync sync = Sync::kFull;
  // How long a write waits for a lock held by another connection (a reader
  // checkpointing, an inspection tool) before it fails.
  absl::Duration busy_timeout = absl::Seconds(10);
  // Runs PRAGMA quick_check on open (cost: one pass over the file).
  bool check_integrity = true;
  // Begins a new, empty store where the data directory's marker says one
  // was lost (server/session_store_marker.h); refused when the store file
  // holds data. The server's --new_store.
  bool new_store = false;
};

class SessionStore : public DurableStore {
 public:
  static constexpr char kFileName[] = "stimloop.sqlite";
  static constexpr char kLockFileName[] = "stimloop.lock";
  // server/store_schema.h.
  static constexpr int32_t kApplicationId = kStoreApplicationId;
  static constexpr int kSchemaVersion = kStoreSchemaVersion;

  // Opens <data_dir>/stimloop.sqlite, creating it (and its schema) when
  // missing on a first start, and writes the data directory's marker.
  // REQUIRES: data_dir exists. Errors name the file and say what is wrong:
  // FAILED_PRECONDITION for a foreign or newer file or a directory in use by
  // another server, DATA_LOSS for a corrupt file or a lost one (see
  // StoreOptions::new_store), and the I/O error otherwise.
  static absl::StatusOr<std::unique_ptr<SessionStore>> Open(const std::string& data_dir,
                                                            const StoreOptions& options = {});
  ~SessionStore() override;

  SessionStore(const SessionStore&) = delete;
  SessionStore& operator=(const SessionStore&) = delete;

  // SessionJournal. Each is one committed transaction. SessionCreated and
  // SessionClosed also log an event. A request_id journaled twice for one
  // session is ALREADY_EXISTS (the Session answers retries from its acks).
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
                                 const v1::ReportResponsesAck& ack,
                                 absl::Time received) override;
  absl::Status SessionClosed(const std::string& session_id, absl::Time closed) override;
  // Stores the version (RecordModelVersion) with its metrics as JSON plus
  // "heldout_r", the mean held-out correlation over neurons, and logs a
  // refit_finished event.
  absl::Status ModelVersionFitted(const std::string& session_id, int64_t version,
                                  const std::map<std::string, double>& metrics,
                                  const std::string& checkpoint) override;

  // A fitted surrogate version with its metrics (a JSON object, e.g.
  // {"heldout_r": 0.61}) and its checkpoint bytes (may be empty).
  // ALREADY_EXISTS when the session already has this version; NOT_FOUND for
  // an unknown session.
  absl::Status RecordModelVersion(const std::string& session_id, int64_t version,
                                  absl::string_view metrics_json,
                                  absl::string_view checkpoint, absl::Time created) override;

  // Appends to the event log; `kind` is one of kEvent*, `detail` free text
  // or JSON. An empty session_id logs a server-wide event.
  absl::Status RecordEvent(const std::string& session_id, absl::string_view kind,
                           absl::string_view detail, absl::Time time) override;

  // Ids of the sessions whose status is open, oldest first.
  absl::StatusOr<std::vector<std::string>> OpenSessionIds() override;
  // Ids of every session, oldest first.
  absl::StatusOr<std::vector<std::string>> AllSessionIds() override;

  // Everything journaled about one session (see server/session_restore.h).
  // NOT_FOUND for an unknown id; DATA_LOSS when a row cannot be decoded or
  // a payload fails its checksum ("session 'abc' stimulus 17: stored png
  // fails its checksum ...").
  absl::StatusOr<JournaledSession> LoadSession(const std::string& session_id) override;

  // <data_dir>/stimloop.sqlite.
  const std::string& path() const { return path_; }
  std::string Describe() const override { return path_; }

 private:
  SessionStore(std::string path, sqlite3* db, int lock_fd);

  // Runs `body` inside BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error).
  absl::Status InTransaction(absl::string_view what, absl::FunctionRef<absl::Status()> body)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The prepared statement for `sql` (a string literal), prepared once.
  absl::StatusOr<sqlite3_stmt*> Prepared(const char* sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The first column of every row of `sql` (a string literal).
  absl::StatusOr<std::vector<std::string>> SessionIds(const char* sql);
  absl::Status InsertEvent(const std::string& session_id, absl::string_view kind,
                           absl::string_view detail, absl::Time time)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string path_;
  const int lock_fd_;
  absl::Mutex mu_;
  sqlite3* const db_ ABSL_PT_GUARDED_BY(mu_);
  absl::flat_hash_map<const char*, sqlite3_stmt*> statements_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<WalCheckpointer> checkpointer_ ABSL_GUARDED_BY(mu_);
};

}  // namespace stimloop

#endif  // STIMLOOP_SERVER_SESSION_STORE_H_
