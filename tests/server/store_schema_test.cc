// The schema on its own, on a plain SQLite connection: a fresh file gets
// the current schema, a migrated one is left alone, and foreign, newer and
// non-SQLite files are refused without being written to.
#include "server/store_schema.h"

#include <sqlite3.h>

#include <string>

#include <gtest/gtest.h>

#include "tests/server/store_test_util.h"

namespace stimloop {
namespace {

// Opens `path`, registers the store's functions and checks/migrates it.
absl::Status OpenAndMigrate(const std::string& path) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  absl::Status status = RegisterStoreFunctions(db);
  if (status.ok()) status = CheckAndMigrateSchema(db, path, /*check_integrity=*/true);
  sqlite3_close(db);
  return status;
}

TEST(StoreSchemaTest, AFreshFileGetsTheCurrentSchemaOnce) {
  const std::string path = FreshStoreTestDir("schema-fresh") + "/s.sqlite";
  ASSERT_TRUE(OpenAndMigrate(path).ok());
  EXPECT_EQ(Sql(path, "PRAGMA application_id"), std::to_string(kStoreApplicationId));
  EXPECT_EQ(Sql(path, "PRAGMA user_version"), std::to_string(kStoreSchemaVersion));
  EXPECT_EQ(Sql(path, "PRAGMA journal_mode"), "wal");
  const std::string objects = Sql(path, "SELECT count(*) FROM sqlite_schema");
  // Opening again migrates nothing.
  ASSERT_TRUE(OpenAndMigrate(path).ok());
  EXPECT_EQ(Sql(path, "SELECT count(*) FROM sqlite_schema"), objects);
}

TEST(StoreSchemaTest, AnotherApplicationsDatabaseIsRefusedUntouched) {
  const std::string path = FreshStoreTestDir("schema-foreign") + "/s.sqlite";
  ExecSql(path, "CREATE TABLE notes (text TEXT); PRAGMA application_id = 7");
  const absl::Status s = OpenAndMigrate(path);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(std::string(s.message()).find("another application"), std::string::npos) << s;
  EXPECT_EQ(Sql(path, "PRAGMA user_version"), "0");
  EXPECT_EQ(Sql(path, "SELECT count(*) FROM sqlite_schema"), "1");
}

TEST(StoreSchemaTest, ANewerSchemaIsRefused) {
  const std::string path = FreshStoreTestDir("schema-newer") + "/s.sqlite";
  ASSERT_TRUE(OpenAndMigrate(path).ok());
  ExecSql(path, "PRAGMA user_version = " + std::to_string(kStoreSchemaVersion + 1));
  const absl::Status s = OpenAndMigrate(path);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(std::string(s.message()).find("newer than this build reads"), std::string::npos)
      << s;
}

TEST(StoreSchemaTest, ANegativeSchemaVersionIsDataLossUntouched) {
  const std::string path = FreshStoreTestDir("schema-negative") + "/s.sqlite";
  ASSERT_TRUE(OpenAndMigrate(path).ok());
  ExecSql(path, "PRAGMA user_version = -14");
  const std::string objects = Sql(path, "SELECT count(*) FROM sqlite_schema");
  const absl::Status s = OpenAndMigrate(path);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_NE(std::string(s.message()).find("schema version -14"), std::string::npos) << s;
  EXPECT_EQ(Sql(path, "PRAGMA user_version"), "-14");
  EXPECT_EQ(Sql(path, "SELECT count(*) FROM sqlite_schema"), objects);
}

TEST(StoreSchemaTest, AFileThatIsNotSqliteIsDataLoss) {
  const std::string path = FreshStoreTestDir("schema-garbage") + "/s.sqlite";
  {
    std::ofstream out(path, std::ios::binary);
    out << std::string(4096, 'x');
  }
  const absl::Status s = OpenAndMigrate(path);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_EQ(ReadBytes(path), std::string(4096, 'x'));
}

}  // namespace
}  // namespace stimloop
