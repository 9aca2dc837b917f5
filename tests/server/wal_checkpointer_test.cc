// The WAL is checkpointed by the checkpointer's thread, not by the writer's
// commits: with it the WAL restarts after each checkpoint and stays the size
// of one transaction; every row stays readable.
#include "server/wal_checkpointer.h"

#include <sqlite3.h>

#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "absl/time/clock.h"
#include "base/sqlite_statement.h"
#include "tests/server/store_test_util.h"

namespace stimloop {
namespace {

constexpr int kPageSize = 4096;
constexpr int kBlobBytes = 25 * kPageSize;  // each transaction: ~25 pages

sqlite3* OpenWalDb(const std::string& path) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db,
                            SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                            nullptr),
            SQLITE_OK);
  EXPECT_TRUE(SqliteExec(db, "PRAGMA page_size = 4096", "test").ok());
  EXPECT_TRUE(SqliteExec(db, "PRAGMA journal_mode = WAL", "test").ok());
  EXPECT_TRUE(SqliteExec(db, "CREATE TABLE t (x BLOB)", "test").ok());
  return db;
}

void InsertBlob(sqlite3* db) {
  SqliteStatement q(db, "INSERT INTO t (x) VALUES (zeroblob(?))", "test");
  ASSERT_TRUE(q.Int(kBlobBytes).Run().ok()) << q.status();
}

// Waits (at most 60 s: a loaded machine) until `n` checkpoints completed.
bool AwaitCompleted(const WalCheckpointer& checkpointer, int64_t n) {
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (checkpointer.completed() < n) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(2));
  }
  return true;
}

// A WAL-mode database t(x BLOB) in a fresh directory, closed after the test.
class WalCheckpointerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = FreshStoreTestDir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    path_ = dir_ + "/test.sqlite";
    db_ = OpenWalDb(path_);
  }
  void TearDown() override {
    EXPECT_EQ(sqlite3_close(db_), SQLITE_OK);
    std::filesystem::remove_all(dir_);
  }

  std::string dir_, path_;
  sqlite3* db_ = nullptr;
};

TEST_F(WalCheckpointerTest, CheckpointsOnItsThreadAndTheWalRestarts) {
  {
    auto checkpointer = WalCheckpointer::Start(db_, path_, /*threshold_pages=*/16);
    ASSERT_TRUE(checkpointer.ok()) << checkpointer.status();
    constexpr int kWrites = 40;
    for (int i = 1; i <= kWrites; ++i) {
      InsertBlob(db_);
      // Every commit passes the threshold, so each is followed by one
      // checkpoint of everything written so far.
      ASSERT_TRUE(AwaitCompleted(**checkpointer, i)) << "write " << i;
    }
    // Without checkpoints the WAL would hold all 40 transactions (~4 MB);
    // restarted after each, it holds about one.
    const auto wal_bytes = std::filesystem::file_size(path_ + "-wal");
    EXPECT_LT(wal_bytes, 4u * kBlobBytes) << "the WAL was not restarted";
    EXPECT_EQ((*checkpointer)->completed(), kWrites);

    SqliteStatement q(db_, "SELECT count(*), sum(length(x)) FROM t", "test");
    ASSERT_TRUE(q.Next()) << q.status();
    EXPECT_EQ(q.ColumnInt(0), kWrites);
    EXPECT_EQ(q.ColumnInt(1), int64_t{kWrites} * kBlobBytes);
  }
  // The hook is gone with the checkpointer: commits go on, and nothing
  // checkpoints them (the writer's own automatic checkpoint stays off).
  InsertBlob(db_);
}

TEST_F(WalCheckpointerTest, SmallCommitsDoNotWakeIt) {
  auto checkpointer = WalCheckpointer::Start(db_, path_, /*threshold_pages=*/1000);
  ASSERT_TRUE(checkpointer.ok()) << checkpointer.status();
  for (int i = 0; i < 5; ++i) InsertBlob(db_);  // ~125 pages in all
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ((*checkpointer)->completed(), 0);
}

TEST_F(WalCheckpointerTest, AFileNotInWalModeIsRefused) {
  const std::string path = dir_ + "/rollback.sqlite";
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ASSERT_TRUE(SqliteExec(db, "CREATE TABLE t (x BLOB)", "test").ok());
  auto checkpointer = WalCheckpointer::Start(db, path);
  EXPECT_EQ(checkpointer.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(checkpointer.status().message().find("not WAL"), std::string::npos)
      << checkpointer.status();
  sqlite3_close(db);
}

TEST_F(WalCheckpointerTest, AMissingFileIsUnavailable) {
  auto checkpointer = WalCheckpointer::Start(db_, "/nonexistent-dir/none.sqlite");
  EXPECT_EQ(checkpointer.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(checkpointer.status().message().find("/nonexistent-dir/none.sqlite"),
            std::string::npos)
      << checkpointer.status();
}

}  // namespace
}  // namespace stimloop
