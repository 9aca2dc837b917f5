// All sessions of one server, by id. Thread-safe; sessions are shared so a
// request can go on with a session while another is being created.
#ifndef STIMLOOP_SERVER_SESSION_MANAGER_H_
#define STIMLOOP_SERVER_SESSION_MANAGER_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/asset_paths.h"
#include "server/session.h"
#include "server/session_journal.h"
#include "server/session_leases.h"
#include "stimloop/v1/stimloop.pb.h"

namespace stimloop {

class SessionManager {
 public:
  // `journal` must outlive the manager. At most `max_open_sessions` sessions
  // may be open at once (RESOURCE_EXHAUSTED beyond). Requests may name
  // server-side files only inside `assets` (server/asset_paths.h; by
  // default no folder: every such path is refused). The sessions' refits
  // and background proposals run on `pool` (base/work_pool.h; null: each
  // session on threads of its own), which must outlive the manager and its
  // sessions.
  SessionManager(SessionJournal* journal, int max_open_sessions, AssetsDir assets = AssetsDir(),
                 WorkPool* pool = nullptr);

  // Validates the config, confines its paths to the assets folder and
  // starts a session with a new unique id.
  absl::StatusOr<std::shared_ptr<Session>> Create(const v1::SessionConfig& config);

  // Adds a session built elsewhere (e.g. restored from the store).
  // ALREADY_EXISTS when its id is taken.
  absl::Status Adopt(std::shared_ptr<Session> session);

  // A session held in memory, or else the loader's (see SetLoader), kept
  // from then on. NOT_FOUND naming session_id when there is no such session.
  absl::StatusOr<std::shared_ptr<Session>> Find(const std::string& session_id);

  // Builds a session that is not in memory (e.g. one closed before the
  // server restarted, from the store); NOT_FOUND when there is none.
  // Called without the manager's lock. Set once, before serving.
  using Loader =
      std::function<absl::StatusOr<std::shared_ptr<Session>>(const std::string& session_id)>;
  void SetLoader(Loader loader) { loader_ = std::move(loader); }

  // Replicas sharing a store (server/session_leases.h): an open session
  // held in memory is served only while `leases` says this replica holds
  // its lease; otherwise Find drops it and asks the loader again (which
  // claims the lease, or answers with the owner's address). Set once,
  // before serving; `leases` must outlive the manager.
  void SetLeases(SessionLeases* leases) { leases_ = leases; }

  // Drops a session from memory (its lease was lost); a later Find loads it
  // again. No-op for an unknown id.
  void Evict(const std::string& session_id);

  // With a shared store, List names every session in it: `ids` lists them
  // (oldest first) and `snapshot` builds a read-only copy of one not held
  // in memory, which is described and not kept. Set once, before serving.
  using Ids = std::function<absl::StatusOr<std::vector<std::string>>()>;
  void SetCatalog(Ids ids, Loader snapshot) {
    catalog_ids_ = std::move(ids);
    catalog_snapshot_ = std::move(snapshot);
  }

  // Every session in memory, newest first; with a catalog (SetCatalog),
  // every session in the store, newest first (one that cannot be read is
  // left out). The catalog's error when it cannot list the store.
  absl::StatusOr<std::vector<std::shared_ptr<Session>>> ListAll() const;
  // Every session in memory, newest first.
  std::vector<std::shared_ptr<Session>> List() const;

 private:
  std::string NewId();

  SessionJournal* const journal_;
  const int max_open_sessions_;
  const AssetsDir assets_;
  WorkPool* const pool_;
  Loader loader_;
  SessionLeases* leases_ = nullptr;
  Ids catalog_ids_;
  Loader catalog_snapshot_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<Session>> sessions_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> order_ ABSL_GUARDED_BY(mu_);  // creation order
};

}  // namespace stimloop

#endif  // STIMLOOP_SERVER_SESSION_MANAGER_H_
