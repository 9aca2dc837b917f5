// Every payload the store keeps carries a CRC-32: damage that leaves the
// database valid (one flipped byte in a blob) is DATA_LOSS naming the
// session and the row when the row is read, never data; a schema-1 store
// gets its checksums computed when it is migrated.
#include <ostream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "server/report_digest.h"
#include "server/session_store.h"
#include "server/store_checksum.h"
#include "tests/server/store_test_util.h"

namespace stimloop {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

v1::SessionConfig Config() {
  v1::SessionConfig config;
  config.mutable_image()->set_height(16);
  config.mutable_image()->set_width(16);
  config.set_num_neurons(2);
  config.mutable_optimizer()->set_name("genetic");
  config.mutable_image_space()->set_name("spectral");
  config.set_generation_size(2);
  return config;
}

std::vector<StimulusEntry> Generation(int64_t generation) {
  std::vector<StimulusEntry> out(2);
  for (int i = 0; i < 2; ++i) {
    StimulusEntry& e = out[i];
    e.sequence = 2 * (generation - 1) + i + 1;
    e.id = "s1-" + std::to_string(e.sequence);
    e.generation = generation;
    e.origin = "genetic";
    e.png = "\x89PNG image bytes of stimulus " + std::to_string(e.sequence);
    e.code = {0.25f, static_cast<float>(e.sequence)};
  }
  return out;
}

// Session s1 with a row of every kind: its config, two generations (with
// optimizer states), four stimuli (PNG and code), three responses, one
// report and two model versions (checkpoints).
void JournalOneSession(SessionStore& store) {
  ASSERT_TRUE(store.SessionCreated("s1", Config(), absl::Now()).ok());
  ASSERT_TRUE(store.GenerationProposed("s1", 1, Generation(1), "optimizer state 1", 0, 0).ok());
  ASSERT_TRUE(store.StimuliHandedOut("s1", {"s1-1", "s1-2"}).ok());
  v1::ReportResponsesAck ack;
  ack.set_accepted(3);
  const std::vector<ResponseEntry> responses = {
      {"s1-1", {1.0, 2.0}, false}, {"s1-2", {}, true}, {"s1-2", {3.0, 4.0}, false}};
  ASSERT_TRUE(store.ResponsesReported("s1", "r1", *ReportDigest(responses), responses, ack,
                                      absl::Now())
                  .ok());
  ASSERT_TRUE(store.GenerationProposed("s1", 2, Generation(2), "optimizer state 2", 2, 0).ok());
  ASSERT_TRUE(store.ModelVersionFitted("s1", 1, {{"num_trials", 2}}, "checkpoint one").ok());
  ASSERT_TRUE(store.ModelVersionFitted("s1", 2, {{"num_trials", 2}}, "checkpoint two").ok());
}

TEST(StoreChecksumTest, IsZlibsCrc32SoReadersCanCheckRowsThemselves) {
  // The CRC-32 check value; Python: zlib.crc32(b"123456789") == 0xCBF43926.
  EXPECT_EQ(StoreChecksum("123456789"), 0xCBF43926u);
  EXPECT_EQ(StoreChecksum(""), 0u);
}

TEST(StoreChecksumTest, EveryPayloadIsStoredWithItsChecksum) {
  const std::string dir = FreshStoreTestDir("checksum-columns");
  auto store = SessionStore::Open(dir);
  ASSERT_TRUE(store.ok()) << store.status();
  JournalOneSession(**store);
  const std::string path = (*store)->path();
  const std::string crc_of_png = std::to_string(StoreChecksum(Generation(1)[0].png));
  EXPECT_EQ(Sql(path, "SELECT png_crc32 FROM stimuli WHERE id = 's1-1'"), crc_of_png);
  EXPECT_EQ(Sql(path, "SELECT optimizer_state_crc32 FROM generations WHERE generation = 2"),
            std::to_string(StoreChecksum("optimizer state 2")));
  EXPECT_EQ(Sql(path, "SELECT checkpoint_crc32 FROM model_versions WHERE version = 1"),
            std::to_string(StoreChecksum("checkpoint one")));
  // A NULL payload (a skipped trial's rates) has a NULL checksum.
  EXPECT_EQ(Sql(path,
                "SELECT count(*) FROM responses WHERE rates IS NULL "
                "AND rates_crc32 IS NULL"),
            "1");
  for (const char* check :
       {"SELECT count(*) FROM sessions WHERE config_crc32 IS NULL",
        "SELECT count(*) FROM stimuli WHERE png_crc32 IS NULL OR code_crc32 IS NULL",
        "SELECT count(*) FROM responses WHERE rates IS NOT NULL AND rates_crc32 IS NULL",
        "SELECT count(*) FROM reports WHERE ack_crc32 IS NULL"}) {
    EXPECT_EQ(Sql(path, check), "0") << check;
  }
  EXPECT_TRUE((*store)->LoadSession("s1").ok());
}

struct Damage {
  const char* table;
  const char* column;
  const char* where;
  const char* message;  // the start of the error
};

// Names the case in test listings (instead of its bytes).
void PrintTo(const Damage& damage, std::ostream* os) { *os << damage.column; }

class DamagedPayloadTest : public ::testing::TestWithParam<Damage> {};

TEST_P(DamagedPayloadTest, IsDataLossNamingSessionAndRow) {
  const Damage& damage = GetParam();
  const std::string dir = FreshStoreTestDir(std::string("damaged-") + damage.column);
  auto store = SessionStore::Open(dir);
  ASSERT_TRUE(store.ok()) << store.status();
  JournalOneSession(**store);
  ASSERT_TRUE(FlipStoredByte((*store)->path(), damage.table, damage.column, damage.where));

  auto loaded = (*store)->LoadSession("s1");
  ASSERT_FALSE(loaded.ok()) << damage.column << " was read back damaged";
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kDataLoss) << loaded.status();
  EXPECT_THAT(std::string(loaded.status().message()), StartsWith(damage.message));
  // Reading is repeatable and changes nothing: the same error again.
  EXPECT_EQ((*store)->LoadSession("s1").status(), loaded.status());
}

INSTANTIATE_TEST_SUITE_P(
    EveryPayload, DamagedPayloadTest,
    ::testing::Values(
        Damage{"stimuli", "png", "sequence = 3",
               "session 's1' stimulus 3: stored png fails its checksum (crc32 "},
        Damage{"stimuli", "code", "sequence = 2",
               "session 's1' stimulus 2: stored code fails its checksum"},
        Damage{"generations", "optimizer_state", "generation = 2",
               "session 's1' generation 2: stored optimizer_state fails its checksum"},
        Damage{"model_versions", "checkpoint", "version = 2",
               "session 's1' model version 2: stored checkpoint fails its checksum"},
        Damage{"sessions", "config", "id = 's1'", "session 's1': stored config fails its checksum"},
        Damage{"responses", "rates", "seq = 3",
               "session 's1' response 3: stored rates fails its checksum"},
        Damage{"reports", "ack", "request_id = 'r1'",
               "session 's1' report 'r1': stored ack fails its checksum"}),
    [](const ::testing::TestParamInfo<Damage>& info) { return std::string(info.param.column); });

TEST(StoreChecksumTest, MissingChecksumIsDataLoss) {
  const std::string dir = FreshStoreTestDir("checksum-missing");
  auto store = SessionStore::Open(dir);
  ASSERT_TRUE(store.ok()) << store.status();
  JournalOneSession(**store);
  ExecSql((*store)->path(), "UPDATE stimuli SET png_crc32 = NULL WHERE sequence = 4");
  auto loaded = (*store)->LoadSession("s1");
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(loaded.status().message(), "session 's1' stimulus 4: stored png has no checksum");
}

// A store as schema 1 wrote it: the same tables without the checksum
// columns and the reports' content digests.
void DowngradeToSchema1(const std::string& path) {
  ExecSql(path,
          "ALTER TABLE sessions DROP COLUMN config_crc32;"
          "ALTER TABLE generations DROP COLUMN optimizer_state_crc32;"
          "ALTER TABLE stimuli DROP COLUMN png_crc32;"
          "ALTER TABLE stimuli DROP COLUMN code_crc32;"
          "ALTER TABLE responses DROP COLUMN rates_crc32;"
          "ALTER TABLE reports DROP COLUMN ack_crc32;"
          "ALTER TABLE model_versions DROP COLUMN checkpoint_crc32;"
          "ALTER TABLE reports DROP COLUMN content_digest;"
          "PRAGMA user_version = 1;");
}

TEST(StoreChecksumTest, MigrationChecksumsTheRowsOfASchema1Store) {
  const std::string dir = FreshStoreTestDir("checksum-migration");
  std::string path;
  {
    auto store = SessionStore::Open(dir);
    ASSERT_TRUE(store.ok()) << store.status();
    JournalOneSession(**store);
    path = (*store)->path();
  }
  DowngradeToSchema1(path);
  ASSERT_EQ(Sql(path,
                "SELECT count(*) FROM pragma_table_info('stimuli') "
                "WHERE name = 'png_crc32'"),
            "0");

  auto store = SessionStore::Open(dir);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ(Sql(path, "PRAGMA user_version"), std::to_string(SessionStore::kSchemaVersion));
  EXPECT_EQ(Sql(path, "SELECT png_crc32 FROM stimuli WHERE id = 's1-1'"),
            std::to_string(StoreChecksum(Generation(1)[0].png)));
  EXPECT_EQ(Sql(path, "SELECT count(*) FROM responses WHERE rates_crc32 IS NOT NULL"), "2");
  auto loaded = (*store)->LoadSession("s1");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->optimizer_state, "optimizer state 2");
  ASSERT_FALSE(loaded->recent_models.empty());
  EXPECT_EQ(loaded->recent_models.back().checkpoint, "checkpoint two");

  // From now on the migrated rows are verified like new ones.
  ASSERT_TRUE(FlipStoredByte(path, "stimuli", "png", "sequence = 1"));
  EXPECT_THAT(std::string((*store)->LoadSession("s1").status().message()),
              HasSubstr("session 's1' stimulus 1: stored png fails its checksum"));
}

}  // namespace
}  // namespace stimloop
