// stimloop-inspect on a PostgreSQL store (--store=postgresql://...): the
// same hand-driven session run by the real server on SQLite and on a real
// PostgreSQL reads back the same through StoreReader, the command line
// lists and shows it, and a damaged PNG is DATA_LOSS naming the row.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "clients/inspect/store_reader.h"
#include "tests/integration/test_server.h"
#include "tests/server/pg_test_cluster.h"

namespace stimloop {
namespace inspect {
namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string Tool() {
  const char* build = std::getenv("STIMLOOP_BUILD_DIR");
  return std::string(build == nullptr ? "." : build) + "/clients/stimloop-inspect";
}

// Runs three generations with fixed rates (every fifth skipped) on a server
// started with `args`; the session id.
std::string PlayThreeGenerations(const std::string& dir, const std::vector<std::string>& args) {
  std::filesystem::create_directories(dir);
  auto server =
      ServerProcess::Start(DefaultServerBinary(), dir + "/data", dir + "/server.log", args);
  EXPECT_TRUE(server.ok()) << server.status();
  if (!server.ok()) return "";
  auto client = ConnectTo(**server);
  if (client == nullptr) return "";
  auto session = client->CreateSession(SmallConfig(11));
  EXPECT_TRUE(session.ok()) << session.status();
  if (!session.ok()) return "";
  for (int g = 0; g < 3; ++g) {
    auto batch = client->NextStimuli(session->id(), 0);
    EXPECT_TRUE(batch.ok()) << batch.status();
    if (!batch.ok()) return "";
    std::vector<v1::Response> responses;
    for (int i = 0; i < batch->stimuli_size(); ++i) {
      v1::Response r;
      r.set_stimulus_id(batch->stimuli(i).id());
      if (i % 5 == 4) {
        r.set_skipped(true);
      } else {
        r.add_rates(0.5 * i + g);
      }
      responses.push_back(std::move(r));
    }
    EXPECT_TRUE(client->ReportResponses(session->id(), absl::StrCat("r", g), responses).ok());
  }
  auto stopped = (*server)->Stop();
  EXPECT_TRUE(stopped.ok() && *stopped == 0);
  return session->id();
}

TEST(PgInspectTest, PostgresStoreReadsBackAsTheSqliteStoreDoes) {
  STIMLOOP_START_POSTGRES_OR_SKIP(cluster);
  auto uri = cluster->CreateDatabase("inspect");
  ASSERT_TRUE(uri.ok()) << uri.status();
  const std::string dir = FreshTempDir("pg-inspect");
  const std::string sqlite_id = PlayThreeGenerations(dir + "/sqlite", {});
  const std::string pg_id = PlayThreeGenerations(dir + "/pg", {"--store=" + *uri});
  ASSERT_FALSE(sqlite_id.empty() || pg_id.empty());

  auto sqlite = StoreReader::Open(dir + "/sqlite/data");
  ASSERT_TRUE(sqlite.ok()) << sqlite.status();
  auto pg = StoreReader::OpenPostgres(*uri);
  ASSERT_TRUE(pg.ok()) << pg.status();
  EXPECT_EQ((*pg)->path(), absl::StrCat("PostgreSQL 127.0.0.1:", cluster->port(), "/inspect"));

  auto listed = (*pg)->ListSessions();
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].id, pg_id);
  EXPECT_EQ((*listed)[0].status, "open");
  EXPECT_EQ((*listed)[0].generations, 3);
  EXPECT_EQ((*listed)[0].stimuli, 30);
  EXPECT_EQ((*listed)[0].responses, 24);
  EXPECT_EQ((*listed)[0].skipped, 6);

  auto a = (*sqlite)->LoadSession(sqlite_id);
  auto b = (*pg)->LoadSession(pg_id);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(a->config.SerializeAsString(), b->config.SerializeAsString());
  EXPECT_EQ(a->config_json, b->config_json);
  ASSERT_EQ(a->stimuli.size(), b->stimuli.size());
  for (size_t i = 0; i < a->stimuli.size(); ++i) {
    EXPECT_EQ(a->stimuli[i].png, b->stimuli[i].png) << i;
    EXPECT_EQ(a->stimuli[i].sequence, b->stimuli[i].sequence);
    EXPECT_EQ(a->stimuli[i].origin, b->stimuli[i].origin);
    EXPECT_EQ(a->stimuli[i].is_reference, b->stimuli[i].is_reference);
  }
  ASSERT_EQ(a->responses.size(), b->responses.size());
  for (size_t i = 0; i < a->responses.size(); ++i) {
    EXPECT_EQ(a->responses[i].rates, b->responses[i].rates) << i;
    EXPECT_EQ(a->responses[i].skipped, b->responses[i].skipped) << i;
    EXPECT_EQ(a->responses[i].request_id, b->responses[i].request_id) << i;
  }
  const absl::Status unknown = (*pg)->LoadSession("nope").status();
  EXPECT_TRUE(absl::IsNotFound(unknown)) << unknown;
  EXPECT_TRUE(absl::StrContains(unknown.message(), "SESSION: no session 'nope' in PostgreSQL"))
      << unknown;

  // The command line, with --store instead of --data_dir.
  const std::string out = dir + "/list.txt";
  ASSERT_EQ(std::system(("'" + Tool() + "' list --store='" + *uri + "' > '" + out + "'").c_str()),
            0);
  EXPECT_TRUE(absl::StrContains(ReadAll(out), pg_id)) << ReadAll(out);
  const std::string bad = dir + "/bad.txt";
  EXPECT_NE(std::system(("'" + Tool() + "' list --store=mysql://x > '" + bad + "' 2>&1").c_str()),
            0);
  EXPECT_TRUE(absl::StrContains(ReadAll(bad), "--store: expected a PostgreSQL URI"))
      << ReadAll(bad);

  // A damaged PNG is DATA_LOSS naming the session and the stimulus.
  ASSERT_TRUE(cluster
                  ->Exec("inspect", absl::StrCat("UPDATE stimuli SET png = png || '\\x00'::bytea "
                                                 "WHERE session_id = '",
                                                 pg_id, "' AND sequence = 4"))
                  .ok());
  auto damaged = (*pg)->LoadSession(pg_id);
  ASSERT_FALSE(damaged.ok());
  EXPECT_EQ(damaged.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(damaged.status().message().rfind(
                absl::StrCat("session '", pg_id, "' stimulus 4: stored png fails its checksum"), 0),
            0u)
      << damaged.status();
}

TEST(PgInspectTest, DatabaseWithoutAStoreIsRefused) {
  STIMLOOP_START_POSTGRES_OR_SKIP(cluster);
  auto uri = cluster->CreateDatabase("empty");
  ASSERT_TRUE(uri.ok()) << uri.status();
  auto reader = StoreReader::OpenPostgres(*uri);
  ASSERT_FALSE(reader.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(reader.status())) << reader.status();
  EXPECT_TRUE(absl::StrContains(reader.status().message(),
                                "is not a stimloop store (no schema_version table)"))
      << reader.status();
}

}  // namespace
}  // namespace inspect
}  // namespace stimloop
