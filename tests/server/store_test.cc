// SessionStore, what only the SQLite store has: its schema in WAL mode,
// migrations from SQLite schema 1, and the checks on open (foreign,
// garbage, corrupt, newer, locked). The round trips of every journal call,
// on both stores, are in store_contract_test.cc.
#include "server/session_store.h"

#include <sqlite3.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/report_digest.h"
#include "tests/server/store_test_journal.h"
#include "tests/server/store_test_util.h"

namespace stimloop {
namespace {

using ::testing::HasSubstr;

v1::SessionConfig Config() { return StoreTestConfig(); }

std::vector<StimulusEntry> Generation(const std::string& session, int64_t generation,
                                      int64_t first_sequence, int count) {
  return StoreTestGeneration(session, generation, first_sequence, count);
}

v1::ReportResponsesAck Ack(int accepted, int64_t responses) {
  return StoreTestAck(accepted, responses);
}

TEST(SessionStoreTest, CreatesAVersionedSchemaInWalMode) {
  const std::string dir = FreshStoreTestDir("schema");
  {
    auto store = SessionStore::Open(dir);
    ASSERT_TRUE(store.ok()) << store.status();
    EXPECT_EQ((*store)->path(), dir + "/stimloop.sqlite");
  }
  const std::string path = dir + "/stimloop.sqlite";
  EXPECT_EQ(Sql(path, "PRAGMA application_id"), std::to_string(SessionStore::kApplicationId));
  EXPECT_EQ(Sql(path, "PRAGMA user_version"), std::to_string(SessionStore::kSchemaVersion));
  EXPECT_EQ(Sql(path, "PRAGMA journal_mode"), "wal");
  EXPECT_EQ(Sql(path, "SELECT count(*) FROM sqlite_schema WHERE type = 'table'"), "7");
  // Reopening an existing store works and keeps it.
  auto again = SessionStore::Open(dir);
  ASSERT_TRUE(again.ok()) << again.status();
}

// Schema 1 -> 2 (issue 26): reports gain content_digest; rows written by
// schema 1 have none, and LoadSession computes it from their responses.
TEST(SessionStoreTest, Version1StoreIsMigratedAndItsReportsGetDigests) {
  const std::string dir = FreshStoreTestDir("migrate1");
  const std::vector<ResponseEntry> responses = {{"s-1", {1, 2}, false}, {"s-2", {}, true}};
  {
    auto store = SessionStore::Open(dir);
    ASSERT_TRUE(store.ok()) << store.status();
    SessionStore& s = **store;
    ASSERT_TRUE(s.SessionCreated("s", Config(), absl::Now()).ok());
    ASSERT_TRUE(s.GenerationProposed("s", 1, Generation("s", 1, 1, 3), "x", 0, 0).ok());
    ASSERT_TRUE(s.StimuliHandedOut("s", {"s-1", "s-2"}).ok());
    ASSERT_TRUE(s.ResponsesReported("s", "r", "", responses, Ack(2, 1), absl::Now()).ok());
  }
  // What schema 1 wrote: no digest or checksum columns, user_version 1.
  const std::string path = dir + "/" + SessionStore::kFileName;
  Sql(path, "ALTER TABLE reports DROP COLUMN content_digest");
  for (const char* table_column :
       {"sessions config", "generations optimizer_state", "stimuli png", "stimuli code",
        "responses rates", "reports ack", "model_versions checkpoint"}) {
    const std::vector<std::string> parts = absl::StrSplit(table_column, ' ');
    Sql(path, absl::StrCat("ALTER TABLE ", parts[0], " DROP COLUMN ", parts[1], "_crc32"));
  }
  Sql(path, "PRAGMA user_version = 1");
  ASSERT_EQ(Sql(path, "PRAGMA user_version"), "1");

  auto store = SessionStore::Open(dir);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ(Sql(path, "PRAGMA user_version"), std::to_string(SessionStore::kSchemaVersion));
  EXPECT_EQ(Sql(path, "SELECT count(*) FROM reports WHERE content_digest IS NULL"), "1");
  auto loaded = (*store)->LoadSession("s");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_EQ(loaded->acks.size(), 1u);
  EXPECT_EQ(loaded->acks[0].content_digest, *ReportDigest(responses));
}

TEST(SessionStoreTest, ForeignSqliteFileIsRefusedAndLeftUntouched) {
  const std::string dir = FreshStoreTestDir("foreign");
  const std::string path = dir + "/stimloop.sqlite";
  Sql(path, "CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT)");
  const std::string before = ReadBytes(path);
  auto store = SessionStore::Open(dir);
  ASSERT_FALSE(store.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(store.status())) << store.status();
  EXPECT_THAT(std::string(store.status().message()), HasSubstr("another application"));
  EXPECT_THAT(std::string(store.status().message()), HasSubstr(path));
  EXPECT_EQ(ReadBytes(path), before);
}

TEST(SessionStoreTest, NonSqliteFileIsRefused) {
  const std::string dir = FreshStoreTestDir("garbage");
  std::ofstream(dir + "/stimloop.sqlite") << std::string(8192, 'x');
  auto store = SessionStore::Open(dir);
  ASSERT_FALSE(store.ok());
  EXPECT_TRUE(absl::IsDataLoss(store.status())) << store.status();
  EXPECT_THAT(std::string(store.status().message()), HasSubstr("not a SQLite database"));
  EXPECT_EQ(ReadBytes(dir + "/stimloop.sqlite"), std::string(8192, 'x'));
}

TEST(SessionStoreTest, CorruptStoreIsRefused) {
  const std::string dir = FreshStoreTestDir("corrupt");
  {
    auto store = SessionStore::Open(dir);
    ASSERT_TRUE(store.ok());
    ASSERT_TRUE((*store)->SessionCreated("s", Config(), absl::Now()).ok());
    ASSERT_TRUE((*store)->GenerationProposed("s", 1, Generation("s", 1, 1, 3), "x", 0, 0).ok());
  }  // closing checkpoints the WAL into the main file
  const std::string path = dir + "/stimloop.sqlite";
  std::string bytes = ReadBytes(path);
  const size_t page = std::stoul(Sql(path, "PRAGMA page_size"));
  ASSERT_GE(bytes.size(), 4 * page);
  // Scribble over every page but the first (the header stays valid).
  for (size_t p = 1; p * page < bytes.size(); ++p) {
    for (size_t i = 0; i < 64; ++i) bytes[p * page + i] = static_cast<char>(0xA5 ^ i);
  }
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  auto store = SessionStore::Open(dir);
  ASSERT_FALSE(store.ok());
  EXPECT_TRUE(absl::IsDataLoss(store.status())) << store.status();
  EXPECT_THAT(std::string(store.status().message()), HasSubstr("corrupt"));
}

TEST(SessionStoreTest, NewerSchemaIsRefused) {
  const std::string dir = FreshStoreTestDir("newer");
  { ASSERT_TRUE(SessionStore::Open(dir).ok()); }
  Sql(dir + "/stimloop.sqlite", "PRAGMA user_version = 99");
  auto store = SessionStore::Open(dir);
  ASSERT_FALSE(store.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(store.status()));
  EXPECT_THAT(std::string(store.status().message()), HasSubstr("schema version 99"));
}

TEST(SessionStoreTest, SecondStoreOnOneDirectoryIsRefused) {
  const std::string dir = FreshStoreTestDir("locked");
  auto first = SessionStore::Open(dir);
  ASSERT_TRUE(first.ok());
  auto second = SessionStore::Open(dir);
  ASSERT_FALSE(second.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(second.status()));
  EXPECT_THAT(std::string(second.status().message()), HasSubstr("in use"));
  first->reset();
  EXPECT_TRUE(SessionStore::Open(dir).ok());
}

TEST(SessionStoreTest, MissingDataDirIsAnErrorNamingIt) {
  auto store = SessionStore::Open(FreshStoreTestDir("missing") + "/not-there");
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(std::string(store.status().message()), HasSubstr("data_dir"));
}

}  // namespace
}  // namespace stimloop

namespace stimloop {
namespace {

TEST(StoreModelVersionTest, FittedVersionIsStoredWithMeanHeldOutCorrelation) {
  const std::string dir = ::testing::TempDir() + "/stimloop-store-model-" +
                          std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  auto store = SessionStore::Open(dir);
  ASSERT_TRUE(store.ok()) << store.status();
  v1::SessionConfig config;
  config.set_num_neurons(2);
  ASSERT_TRUE((*store)->SessionCreated("s1", config, absl::Now()).ok());
  ASSERT_TRUE((*store)
                  ->ModelVersionFitted("s1", 1,
                                       {{"heldout_correlation.0", 0.8},
                                        {"heldout_correlation.1", 0.4},
                                        {"heldout_feve.0", std::nan("")}},
                                       "checkpoint-bytes")
                  .ok());
  // The same version twice is refused: versions are immutable.
  EXPECT_EQ((*store)->ModelVersionFitted("s1", 1, {}, "").code(),
            absl::StatusCode::kAlreadyExists);

  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2((dir + "/" + SessionStore::kFileName).c_str(), &db,
                            SQLITE_OPEN_READONLY, nullptr),
            SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db,
                               "SELECT metrics_json, checkpoint FROM model_versions "
                               "WHERE session_id = 's1' AND version = 1",
                               -1, &stmt, nullptr),
            SQLITE_OK);
  ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
  const std::string json = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
  const std::string checkpoint(static_cast<const char*>(sqlite3_column_blob(stmt, 1)),
                               sqlite3_column_bytes(stmt, 1));
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  EXPECT_THAT(json, ::testing::HasSubstr("\"heldout_r\": 0.6"));
  EXPECT_THAT(json, ::testing::HasSubstr("\"heldout_feve.0\": null"));
  EXPECT_EQ(checkpoint, "checkpoint-bytes");
  store->reset();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace stimloop
