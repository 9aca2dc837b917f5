// The store contract (server/durable_store.h), run against both stores:
// SQLite in a data directory and PostgreSQL in a throwaway server
// (tests/server/pg_test_cluster.h). Round trips of every journal call, a
// request_id counting once, rollback on error, checksums verified on load
// (DATA_LOSS naming session and row), foreign and newer schemas refused.
// What only SQLite has (WAL, the lock file, the marker, migrations from
// SQLite schema 1, corrupt files) stays in store_test.cc.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/open_store.h"
#include "server/report_digest.h"
#include "tests/server/pg_test_cluster.h"
#include "tests/server/store_test_journal.h"
#include "tests/server/store_test_util.h"

namespace stimloop {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

v1::SessionConfig Config() { return StoreTestConfig(); }

std::vector<StimulusEntry> Generation(const std::string& session, int64_t generation,
                                      int64_t first_sequence, int count) {
  return StoreTestGeneration(session, generation, first_sequence, count);
}

v1::ReportResponsesAck Ack(int accepted, int64_t responses) {
  return StoreTestAck(accepted, responses);
}

// One store kind: opens stores and damages them behind the store's back.
class StoreContractTest : public ::testing::TestWithParam<std::string> {
 protected:
  bool postgres() const { return GetParam() == "postgresql"; }

  void SetUp() override {
    if (postgres()) {
      STIMLOOP_START_POSTGRES_OR_SKIP(cluster);
      cluster_ = std::move(cluster);
      auto uri = cluster_->CreateDatabase("contract");
      ASSERT_TRUE(uri.ok()) << uri.status();
      uri_ = *uri;
    } else {
      std::string name = absl::StrCat(
          "contract-", ::testing::UnitTest::GetInstance()->current_test_info()->name());
      for (char& c : name) {
        if (c == '/') c = '-';
      }
      dir_ = FreshStoreTestDir(name);
    }
  }

  absl::StatusOr<std::unique_ptr<DurableStore>> Open() {
    PgStoreOptions options;
    options.replica_id = "test-replica";
    options.address = "127.0.0.1:1";
    return OpenDurableStore(postgres() ? uri_ : "", dir_, StoreOptions(), options);
  }

  std::string SqlitePath() const { return dir_ + "/" + SessionStore::kFileName; }

  // Inverts the middle byte of `column` in the first row of `table` matching
  // `where` (twice restores it). False when nothing matched.
  bool Flip(const std::string& table, const std::string& column, const std::string& where) {
    if (!postgres()) return FlipStoredByte(SqlitePath(), table, column, where);
    const std::string middle = absl::StrCat("length(", column, ") / 2");
    const std::string sql =
        absl::StrCat("UPDATE ", table, " SET ", column, " = set_byte(", column, ", ", middle,
                     ", 255 - get_byte(", column, ", ", middle,
                     ")) WHERE ctid = (SELECT ctid FROM ", table, " WHERE ", where, " LIMIT 1)");
    auto conn = PgConnection::Connect(uri_);
    if (!conn.ok()) return false;
    auto changed = (*conn)->Exec(sql.c_str(), "damaging a row");
    EXPECT_TRUE(changed.ok()) << changed.status();
    return changed.ok() && changed->affected() == 1;
  }

  // The first column of the first row of `sql`, as text.
  std::string Query(const std::string& sql) {
    if (!postgres()) return Sql(SqlitePath(), sql);
    auto out = cluster_->Query("contract", sql);
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? *out : "";
  }

  // The kinds of the events of `session_id` (empty: the server-wide ones
  // too), in log order, comma-separated.
  std::string EventKinds(const std::string& session_id = "") {
    const std::string where =
        session_id.empty() ? "" : absl::StrCat(" WHERE session_id = '", session_id, "'");
    if (postgres())
      return Query(absl::StrCat("SELECT string_agg(kind, ',' ORDER BY seq) FROM events", where));
    return Query(absl::StrCat("SELECT group_concat(kind) FROM (SELECT kind FROM events", where,
                              " ORDER BY seq)"));
  }

  // A field of the stored config_json, by its path of names.
  std::string ConfigJsonField(const std::string& first, const std::string& second) {
    if (postgres()) {
      return Query(
          absl::StrCat("SELECT config_json::jsonb #>> '{", first, ",", second, "}' FROM sessions"));
    }
    return Query(absl::StrCat("SELECT json_extract(config_json, '$.", first, ".", second,
                              "') FROM sessions"));
  }

  std::unique_ptr<PgTestCluster> cluster_;
  std::string uri_;
  std::string dir_;
};

TEST_P(StoreContractTest, MoreHandedOutThanProposedIsRefusedAndStoresNothing) {
  auto opened = Open();
  ASSERT_TRUE(opened.ok()) << opened.status();
  DurableStore& store = **opened;
  ASSERT_TRUE(store.SessionCreated("s1", Config(), absl::Now()).ok());
  const absl::Status s = store.GenerationProposed("s1", 1, Generation("s1", 1, 1, 3), "x", 0, 4);
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(s.message()), HasSubstr("4 of 3 stimuli handed out"));
  auto loaded = store.LoadSession("s1");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->generation, 0);
  EXPECT_TRUE(loaded->stimuli.empty());
}

TEST_P(StoreContractTest, LoadSessionReturnsWhatWasJournaled) {
  auto opened = Open();
  ASSERT_TRUE(opened.ok()) << opened.status();
  DurableStore& store = **opened;
  const absl::Time created = absl::FromUnixNanos(1700000000123456789);
  ASSERT_TRUE(store.SessionCreated("s1", Config(), created).ok());
  const auto g1 = Generation("s1", 1, 1, 3);
  const auto g2 = Generation("s1", 2, 4, 3);
  ASSERT_TRUE(store.GenerationProposed("s1", 1, g1, "state-1", 0, 0).ok());
  ASSERT_TRUE(store.StimuliHandedOut("s1", {"s1-1", "s1-2", "s1-3"}).ok());
  std::vector<ResponseEntry> responses = {
      {"s1-1", {1.0, 2.5}, false}, {"s1-2", {}, true}, {"s1-1", {0.1, 1e-300}, false}};
  const std::string digest = *ReportDigest(responses);
  ASSERT_TRUE(store.ResponsesReported("s1", "r1", digest, responses, Ack(3, 2), absl::Now()).ok());
  // The first stimulus of generation 2 handed out with it, in its commit.
  ASSERT_TRUE(store.GenerationProposed("s1", 2, g2, std::string("state\0two", 9), 2, 1).ok());
  ASSERT_TRUE(store.ModelVersionFitted("s1", 1, {{"num_trials", 3}}, "checkpoint").ok());

  // Read back through a second connection after reopening: it was committed.
  opened->reset();
  auto reopened = Open();
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  auto loaded = (*reopened)->LoadSession("s1");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->id, "s1");
  EXPECT_FALSE(loaded->closed);
  EXPECT_EQ(loaded->created, created);
  EXPECT_EQ(loaded->config.SerializeAsString(), Config().SerializeAsString());
  EXPECT_EQ(loaded->generation, 2);
  EXPECT_EQ(loaded->optimizer_state, std::string("state\0two", 9));
  EXPECT_EQ(loaded->responses_told, 2);
  EXPECT_EQ(loaded->generation_responses_told, (std::vector<int64_t>{0, 2}));
  ASSERT_EQ(loaded->stimuli.size(), 6u);
  for (size_t i = 0; i < 6; ++i) {
    const StimulusEntry& want = i < 3 ? g1[i] : g2[i - 3];
    const JournaledStimulus& got = loaded->stimuli[i];
    EXPECT_EQ(got.entry.id, want.id);
    EXPECT_EQ(got.entry.sequence, want.sequence);
    EXPECT_EQ(got.entry.generation, want.generation);
    EXPECT_EQ(got.position, static_cast<int>(i % 3));
    EXPECT_EQ(got.entry.origin, want.origin);
    EXPECT_EQ(got.entry.is_reference, want.is_reference);
    EXPECT_EQ(got.entry.png, want.png);
    EXPECT_EQ(got.entry.code, want.code);
    EXPECT_EQ(got.entry.model_version, want.model_version);
    if (std::isnan(want.predicted_objective)) {
      EXPECT_TRUE(std::isnan(got.entry.predicted_objective));
    } else {
      EXPECT_EQ(got.entry.predicted_objective, want.predicted_objective);
    }
    EXPECT_EQ(got.handed_out, i < 4) << i;
  }
  ASSERT_EQ(loaded->responses.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(loaded->responses[i].stimulus_id, responses[i].stimulus_id);
    EXPECT_EQ(loaded->responses[i].rates, responses[i].rates);  // bit for bit
    EXPECT_EQ(loaded->responses[i].skipped, responses[i].skipped);
  }
  ASSERT_EQ(loaded->response_rows.size(), 3u);
  EXPECT_LT(loaded->response_rows[0], loaded->response_rows[1]);
  ASSERT_EQ(loaded->acks.size(), 1u);
  EXPECT_EQ(loaded->acks[0].request_id, "r1");
  EXPECT_EQ(loaded->acks[0].ack.SerializeAsString(), Ack(3, 2).SerializeAsString());
  EXPECT_EQ(loaded->acks[0].content_digest, digest);
  ASSERT_EQ(loaded->recent_models.size(), 1u);
  EXPECT_EQ(loaded->recent_models[0].version, 1);
  EXPECT_EQ(loaded->recent_models[0].num_trials, 3);
  EXPECT_EQ(loaded->recent_models[0].checkpoint, "checkpoint");
  EXPECT_EQ(Query("SELECT metadata_json FROM sessions"), R"({"subject":"M1 \"quoted\""})");
  EXPECT_EQ(ConfigJsonField("optimizer", "name"), "genetic");
}

TEST_P(StoreContractTest, ClosedSessionsAreNotOpenButListed) {
  auto store = Open();
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE((*store)->SessionCreated("a", Config(), absl::FromUnixSeconds(1)).ok());
  ASSERT_TRUE((*store)->SessionCreated("b", Config(), absl::FromUnixSeconds(2)).ok());
  ASSERT_TRUE((*store)->SessionClosed("a", absl::FromUnixSeconds(3)).ok());
  auto open = (*store)->OpenSessionIds();
  ASSERT_TRUE(open.ok()) << open.status();
  EXPECT_EQ(*open, std::vector<std::string>{"b"});
  auto all = (*store)->AllSessionIds();
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(*all, (std::vector<std::string>{"a", "b"}));
  auto a = (*store)->LoadSession("a");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_TRUE(a->closed);
  const absl::Status closed = (*store)->SessionClosed("nope", absl::Now());
  EXPECT_TRUE(absl::IsNotFound(closed)) << closed;
  EXPECT_THAT(std::string(closed.message()), HasSubstr("no session 'nope'"));
  const absl::Status loaded = (*store)->LoadSession("nope").status();
  EXPECT_TRUE(absl::IsNotFound(loaded)) << loaded;
  EXPECT_THAT(std::string(loaded.message()), HasSubstr("session_id: no session 'nope'"));
  EXPECT_EQ(EventKinds("a"), "created,closed");
}

TEST_P(StoreContractTest, RepeatedRequestIdIsRejectedAndChangesNothing) {
  auto store = Open();
  ASSERT_TRUE(store.ok()) << store.status();
  DurableStore& s = **store;
  ASSERT_TRUE(s.SessionCreated("s", Config(), absl::Now()).ok());
  ASSERT_TRUE(s.GenerationProposed("s", 1, Generation("s", 1, 1, 3), "x", 0, 0).ok());
  ASSERT_TRUE(s.StimuliHandedOut("s", {"s-1"}).ok());
  std::vector<ResponseEntry> r = {{"s-1", {1, 2}, false}};
  ASSERT_TRUE(s.ResponsesReported("s", "r", "digest", r, Ack(1, 1), absl::Now()).ok());
  absl::Status again = s.ResponsesReported("s", "r", "digest", r, Ack(1, 2), absl::Now());
  EXPECT_TRUE(absl::IsAlreadyExists(again)) << again;
  EXPECT_THAT(std::string(again.message()),
              HasSubstr("request_id: 'r' is already journaled for session 's'"));
  auto loaded = s.LoadSession("s");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->responses.size(), 1u);
  ASSERT_EQ(loaded->acks.size(), 1u);
  EXPECT_EQ(loaded->acks[0].ack.counts().responses(), 1);
  // A stimulus of no session is refused, and the transaction rolled back.
  const absl::Status bad = s.StimuliHandedOut("s", {"s-2", "other-1"});
  EXPECT_TRUE(absl::IsNotFound(bad)) << bad;
  EXPECT_THAT(std::string(bad.message()),
              HasSubstr("stimulus_ids: 'other-1' is not a stimulus of session 's'"));
  loaded = s.LoadSession("s");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_FALSE(loaded->stimuli[1].handed_out);
  // The store goes on after the failed transactions.
  EXPECT_TRUE(s.StimuliHandedOut("s", {"s-2"}).ok());
}

TEST_P(StoreContractTest, ModelVersionsAndEventsAreRecorded) {
  auto store = Open();
  ASSERT_TRUE(store.ok()) << store.status();
  DurableStore& s = **store;
  ASSERT_TRUE(s.SessionCreated("s", Config(), absl::Now()).ok());
  ASSERT_TRUE(s.RecordModelVersion("s", 1, R"({"heldout_r":0.5})", "ckpt", absl::Now()).ok());
  const absl::Status twice = s.RecordModelVersion("s", 1, "{}", "", absl::Now());
  EXPECT_TRUE(absl::IsAlreadyExists(twice)) << twice;
  EXPECT_THAT(std::string(twice.message()), HasSubstr("already has model version 1"));
  const absl::Status unknown = s.RecordModelVersion("zz", 1, "{}", "", absl::Now());
  EXPECT_TRUE(absl::IsNotFound(unknown)) << unknown;
  EXPECT_THAT(std::string(unknown.message()), HasSubstr("no session 'zz'"));
  ASSERT_TRUE(s.RecordEvent("s", kEventRefitStarted, "", absl::Now()).ok());
  ASSERT_TRUE(s.RecordEvent("", kEventError, "server-wide", absl::Now()).ok());
  EXPECT_EQ(EventKinds(), "created,refit_started,error");
  EXPECT_EQ(Query("SELECT detail FROM events WHERE session_id IS NULL"), "server-wide");
  if (postgres()) {
    EXPECT_EQ(Query("SELECT metrics_json::jsonb ->> 'heldout_r' FROM model_versions"), "0.5");
  } else {
    EXPECT_EQ(Query("SELECT json_extract(metrics_json, '$.heldout_r') FROM model_versions"), "0.5");
  }
}

struct Damage {
  const char* table;
  const char* column;
  const char* where;
  const char* message;  // the start of the error
};

TEST_P(StoreContractTest, DamagedPayloadIsDataLossNamingSessionAndRow) {
  auto store = Open();
  ASSERT_TRUE(store.ok()) << store.status();
  DurableStore& s = **store;
  ASSERT_TRUE(s.SessionCreated("s1", Config(), absl::Now()).ok());
  ASSERT_TRUE(
      s.GenerationProposed("s1", 1, Generation("s1", 1, 1, 3), "optimizer state 1", 0, 0).ok());
  ASSERT_TRUE(s.StimuliHandedOut("s1", {"s1-1", "s1-2"}).ok());
  const std::vector<ResponseEntry> responses = {
      {"s1-1", {1.0, 2.0}, false}, {"s1-2", {}, true}, {"s1-2", {3.0, 4.0}, false}};
  ASSERT_TRUE(
      s.ResponsesReported("s1", "r1", *ReportDigest(responses), responses, Ack(3, 2), absl::Now())
          .ok());
  ASSERT_TRUE(
      s.GenerationProposed("s1", 2, Generation("s1", 2, 4, 3), "optimizer state 2", 2, 0).ok());
  ASSERT_TRUE(s.ModelVersionFitted("s1", 1, {{"num_trials", 2}}, "checkpoint one").ok());
  ASSERT_TRUE(s.ModelVersionFitted("s1", 2, {{"num_trials", 2}}, "checkpoint two").ok());
  ASSERT_TRUE(s.LoadSession("s1").ok());

  const Damage damages[] = {
      {"stimuli", "png", "sequence = 3",
       "session 's1' stimulus 3: stored png fails its checksum (crc32 "},
      {"stimuli", "code", "sequence = 2",
       "session 's1' stimulus 2: stored code fails its checksum"},
      {"generations", "optimizer_state", "generation = 2",
       "session 's1' generation 2: stored optimizer_state fails its checksum"},
      {"model_versions", "checkpoint", "version = 2",
       "session 's1' model version 2: stored checkpoint fails its checksum"},
      {"sessions", "config", "id = 's1'", "session 's1': stored config fails its checksum"},
      {"responses", "rates", "seq = 3", "session 's1' response 3: stored rates fails its checksum"},
      {"reports", "ack", "request_id = 'r1'",
       "session 's1' report 'r1': stored ack fails its checksum"},
  };
  for (const Damage& damage : damages) {
    ASSERT_TRUE(Flip(damage.table, damage.column, damage.where)) << damage.column;
    auto loaded = s.LoadSession("s1");
    ASSERT_FALSE(loaded.ok()) << damage.column << " was read back damaged";
    EXPECT_EQ(loaded.status().code(), absl::StatusCode::kDataLoss) << loaded.status();
    EXPECT_THAT(std::string(loaded.status().message()), StartsWith(damage.message));
    ASSERT_TRUE(Flip(damage.table, damage.column, damage.where)) << damage.column;
    EXPECT_TRUE(s.LoadSession("s1").ok()) << damage.column << " restored";
  }
}

TEST_P(StoreContractTest, NewerSchemaIsRefused) {
  { ASSERT_TRUE(Open().ok()); }
  if (postgres()) {
    ASSERT_TRUE(cluster_->Exec("contract", "UPDATE schema_version SET version = 99").ok());
  } else {
    Sql(SqlitePath(), "PRAGMA user_version = 99");
  }
  auto store = Open();
  ASSERT_FALSE(store.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(store.status())) << store.status();
  EXPECT_THAT(std::string(store.status().message()),
              HasSubstr("has schema version 99, newer than this build reads"));
}

TEST_P(StoreContractTest, ForeignDatabaseIsRefusedAndLeftUntouched) {
  if (postgres()) {
    ASSERT_TRUE(
        cluster_->Exec("contract", "CREATE TABLE photos (id INT PRIMARY KEY, name TEXT)").ok());
  } else {
    Sql(SqlitePath(), "CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT)");
  }
  auto store = Open();
  ASSERT_FALSE(store.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(store.status())) << store.status();
  EXPECT_THAT(std::string(store.status().message()), HasSubstr("another application"));
  EXPECT_EQ(Query("SELECT count(*) FROM photos"), "0");
  if (postgres()) {
    EXPECT_EQ(Query("SELECT to_regclass('sessions') IS NULL"), "true");
  }
}

INSTANTIATE_TEST_SUITE_P(BothStores, StoreContractTest, ::testing::Values("sqlite", "postgresql"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

}  // namespace
}  // namespace stimloop
