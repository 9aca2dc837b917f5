// Checkpoints a SQLite WAL on a thread of its own, so that no journal write
// pays for it.
//
// SQLite's default copies the WAL back into the database file inside the
// COMMIT that takes the WAL past 1000 pages, so that one commit pays for
// all of them (measured: docs/experiments.md, "Checkpoints off the request
// path"). As the SQLite documentation advises, the writer's automatic
// checkpoint is turned off and PASSIVE checkpoints run from another
// connection instead.
//
// Start replaces the writer's WAL hook (which also turns its automatic
// checkpoint off) with one that wakes this thread once the WAL holds
// `threshold_pages` pages; the thread then runs a PASSIVE checkpoint on its
// own connection to the same file. PASSIVE never waits for readers or the
// writer, and the writer never waits for it; the WAL restarts from its
// beginning at the first write after a checkpoint that copied every frame.
// A checkpoint that fails (busy: an inspection tool is checkpointing) is
// retried at the next wake-up. Durability is unchanged: a commit is durable
// in the WAL whether or not a checkpoint has copied it yet.
//
// The destructor removes the hook and joins the thread. REQUIRES: the
// writer's owner serializes the destruction with its writes (the hook runs
// inside the writer's COMMIT), and the writer outlives this.
#ifndef STIMLOOP_SERVER_WAL_CHECKPOINTER_H_
#define STIMLOOP_SERVER_WAL_CHECKPOINTER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

struct sqlite3;

namespace stimloop {

class WalCheckpointer {
 public:
  // SQLite's own default threshold (SQLITE_DEFAULT_WAL_AUTOCHECKPOINT).
  static constexpr int kDefaultThresholdPages = 1000;

  // Opens a second connection to `path` (the writer's file) and starts the
  // thread. Errors: UNAVAILABLE when the file cannot be opened,
  // FAILED_PRECONDITION when it is not in WAL mode.
  static absl::StatusOr<std::unique_ptr<WalCheckpointer>> Start(
      sqlite3* writer, const std::string& path, int threshold_pages = kDefaultThresholdPages);
  ~WalCheckpointer();

  WalCheckpointer(const WalCheckpointer&) = delete;
  WalCheckpointer& operator=(const WalCheckpointer&) = delete;

  // Checkpoints that ran to the end so far (every WAL frame copied).
  int64_t completed() const;

 private:
  WalCheckpointer(sqlite3* writer, sqlite3* own, int threshold_pages);
  static int OnCommit(void* self, sqlite3* db, const char* name, int pages);
  void Run();

  sqlite3* const writer_;
  sqlite3* const own_;  // used by the thread only
  const int threshold_pages_;
  mutable absl::Mutex mu_;
  bool wanted_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int64_t completed_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;  // last: starts once the rest is set
};

}  // namespace stimloop

#endif  // STIMLOOP_SERVER_WAL_CHECKPOINTER_H_
