#include "server/wal_checkpointer.h"

#include <sqlite3.h>

#include "absl/strings/str_cat.h"
#include "base/sqlite_statement.h"

namespace stimloop {

absl::StatusOr<std::unique_ptr<WalCheckpointer>> WalCheckpointer::Start(sqlite3* writer,
                                                                         const std::string& path,
                                                                         int threshold_pages) {
  sqlite3* own = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &own, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                                 nullptr);
  if (rc != SQLITE_OK) {
    absl::Status status =
        SqliteStatus(own, rc, absl::StrCat("session store: opening '", path, "' to checkpoint"));
    sqlite3_close(own);
    return status;
  }
  // Reading the journal mode opens the WAL on this connection too (until a
  // connection has read the file, it checkpoints nothing).
  std::string mode;
  {
    SqliteStatement q(own, "PRAGMA journal_mode", "session store: checkpointer");
    if (q.Next()) mode = q.ColumnBytes(0);
    if (!q.status().ok()) {
      absl::Status status = q.status();
      sqlite3_close(own);
      return status;
    }
  }
  if (mode != "wal") {
    sqlite3_close(own);
    return absl::FailedPreconditionError(
        absl::StrCat("session store: '", path, "' is in journal mode '", mode, "', not WAL"));
  }
  return std::unique_ptr<WalCheckpointer>(new WalCheckpointer(writer, own, threshold_pages));
}

WalCheckpointer::WalCheckpointer(sqlite3* writer, sqlite3* own, int threshold_pages)
    : writer_(writer), own_(own), threshold_pages_(threshold_pages), thread_([this] { Run(); }) {
  sqlite3_wal_hook(writer_, &WalCheckpointer::OnCommit, this);
}

WalCheckpointer::~WalCheckpointer() {
  sqlite3_wal_hook(writer_, nullptr, nullptr);
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
  sqlite3_close(own_);
}

int64_t WalCheckpointer::completed() const {
  absl::MutexLock lock(&mu_);
  return completed_;
}

int WalCheckpointer::OnCommit(void* self, sqlite3* /*db*/, const char* /*name*/, int pages) {
  auto* checkpointer = static_cast<WalCheckpointer*>(self);
  if (pages >= checkpointer->threshold_pages_) {
    absl::MutexLock lock(&checkpointer->mu_);
    checkpointer->wanted_ = true;
  }
  return SQLITE_OK;
}

void WalCheckpointer::Run() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](WalCheckpointer* c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(c->mu_) {
            return c->wanted_ || c->stopping_;
          },
          this));
      if (stopping_) return;
      wanted_ = false;
    }
    int wal_frames = 0;
    int copied = 0;
    const int rc = sqlite3_wal_checkpoint_v2(own_, nullptr, SQLITE_CHECKPOINT_PASSIVE,
                                             &wal_frames, &copied);
    if (rc == SQLITE_OK && wal_frames >= 0 && copied == wal_frames) {
      absl::MutexLock lock(&mu_);
      ++completed_;
    }
  }
}

}  // namespace stimloop
