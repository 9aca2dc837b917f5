// A lost store (missing or cut to 0 bytes where the data directory's marker
// says one was created) is DATA_LOSS naming the file and --new_store, never
// a silent fresh start; a first start on an empty directory still just
// works, and a new store is made only when the operator asks for one.
#include "server/session_store_marker.h"

#include <filesystem>
#include <fstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "server/session_store.h"
#include "tests/server/store_test_util.h"

namespace stimloop {
namespace {

using ::testing::HasSubstr;

v1::SessionConfig Config() {
  v1::SessionConfig config;
  config.set_num_neurons(1);
  config.mutable_optimizer()->set_name("genetic");
  config.mutable_image_space()->set_name("spectral");
  return config;
}

// A data directory whose store holds session "kept", closed again (the WAL
// folded into the main file).
std::string DirWithOneSession(const std::string& name) {
  const std::string dir = FreshStoreTestDir(name);
  auto store = SessionStore::Open(dir);
  EXPECT_TRUE(store.ok()) << store.status();
  if (store.ok()) EXPECT_TRUE((*store)->SessionCreated("kept", Config(), absl::Now()).ok());
  return dir;
}

std::string StorePath(const std::string& dir) { return dir + "/" + SessionStore::kFileName; }

TEST(StoreMarkerTest, FirstStartOnAnEmptyDirectoryCreatesStoreAndMarker) {
  const std::string dir = FreshStoreTestDir("marker-first");
  EXPECT_FALSE(HasStoreMarker(dir));
  auto store = SessionStore::Open(dir);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_TRUE(HasStoreMarker(dir));
  EXPECT_TRUE(std::filesystem::exists(dir + "/" + kStoreMarkerFileName));
  EXPECT_THAT(ReadBytes(dir + "/" + kStoreMarkerFileName), HasSubstr("--new_store"));
}

TEST(StoreMarkerTest, EmptyStoreFileWithoutMarkerIsAFirstStart) {
  // What a server killed between creating the file and its schema leaves.
  const std::string dir = FreshStoreTestDir("marker-empty-first");
  std::ofstream(StorePath(dir)).close();
  auto store = SessionStore::Open(dir);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_TRUE(HasStoreMarker(dir));
}

TEST(StoreMarkerTest, EmptyStoreWhereOneWasCreatedIsDataLossNamingFileAndFlag) {
  const std::string dir = DirWithOneSession("marker-empty");
  std::ofstream(StorePath(dir), std::ios::trunc).close();  // cut to 0 bytes
  auto store = SessionStore::Open(dir);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss);
  const std::string message(store.status().message());
  EXPECT_THAT(message, HasSubstr("'" + StorePath(dir) + "' is empty (0 bytes)"));
  EXPECT_THAT(message, HasSubstr(kStoreMarkerFileName));
  EXPECT_THAT(message, HasSubstr("--new_store"));
  EXPECT_EQ(ReadBytes(StorePath(dir)), "") << "the empty file must stay as it was";
}

TEST(StoreMarkerTest, MissingStoreWhereOneWasCreatedIsDataLoss) {
  const std::string dir = DirWithOneSession("marker-missing");
  std::filesystem::remove(StorePath(dir));
  auto store = SessionStore::Open(dir);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(store.status().message()),
              HasSubstr("'" + StorePath(dir) + "' is missing"));
  EXPECT_FALSE(std::filesystem::exists(StorePath(dir))) << "nothing may be created";
}

TEST(StoreMarkerTest, NewStoreBeginsAnEmptyStoreWhereOneWasLost) {
  const std::string dir = DirWithOneSession("marker-new");
  std::ofstream(StorePath(dir), std::ios::trunc).close();
  StoreOptions options;
  options.new_store = true;
  auto store = SessionStore::Open(dir, options);
  ASSERT_TRUE(store.ok()) << store.status();
  auto open = (*store)->OpenSessionIds();
  ASSERT_TRUE(open.ok());
  EXPECT_TRUE(open->empty());
  store->reset();
  // From then on it is the directory's store: opened without the flag.
  EXPECT_TRUE(SessionStore::Open(dir).ok());
}

TEST(StoreMarkerTest, NewStoreNeverOverwritesAStoreThatHoldsData) {
  const std::string dir = DirWithOneSession("marker-new-refused");
  const std::string before = ReadBytes(StorePath(dir));
  StoreOptions options;
  options.new_store = true;
  auto store = SessionStore::Open(dir, options);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(store.status().message()),
              HasSubstr("--new_store: '" + StorePath(dir) + "' already holds a session store"));
  EXPECT_EQ(ReadBytes(StorePath(dir)), before);
  auto kept = SessionStore::Open(dir);
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_TRUE((*kept)->LoadSession("kept").ok());
}

TEST(StoreMarkerTest, NewStoreRefusesALeftoverLogOfTheLostStore) {
  const std::string dir = DirWithOneSession("marker-new-wal");
  std::ofstream(StorePath(dir), std::ios::trunc).close();
  std::ofstream(StorePath(dir) + "-wal") << std::string(100, 'w');
  StoreOptions options;
  options.new_store = true;
  auto store = SessionStore::Open(dir, options);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(store.status().message()), HasSubstr(StorePath(dir) + "-wal"));
}

TEST(StoreMarkerTest, StoreFromBeforeMarkersGetsOneAndIsThenGuarded) {
  const std::string dir = DirWithOneSession("marker-legacy");
  std::filesystem::remove(dir + "/" + kStoreMarkerFileName);
  {
    auto store = SessionStore::Open(dir);
    ASSERT_TRUE(store.ok()) << store.status();
    EXPECT_TRUE(HasStoreMarker(dir));
  }
  std::filesystem::remove(StorePath(dir));
  EXPECT_EQ(SessionStore::Open(dir).status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace stimloop
