// Reports under the real server (issue 26): a request_id names one report's
// content, also once the session is closed and across a restart; a stored
// rate damaged outside the server is refused on resume with an error naming
// the session and the row, instead of a session that jams later.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/store_checksum.h"
#include "tests/integration/test_server.h"
#include "tests/server/store_test_util.h"

namespace stimloop {
namespace {

using ::testing::HasSubstr;

// The store file of a stopped server's data directory.
std::string StoreFile(const std::string& data_dir) { return data_dir + "/stimloop.sqlite"; }

v1::Response Rates(const std::string& id, std::vector<double> rates) {
  v1::Response r;
  r.set_stimulus_id(id);
  r.mutable_rates()->Add(rates.begin(), rates.end());
  return r;
}

v1::Response Skipped(const std::string& id) {
  v1::Response r;
  r.set_stimulus_id(id);
  r.set_skipped(true);
  return r;
}

// A server on one data directory that can be stopped and started again.
class Restartable {
 public:
  explicit Restartable(const std::string& name) : dir_(FreshTempDir(name)) {}

  RigClient& Start() {
    auto server = ServerProcess::Start(DefaultServerBinary(), data_dir(),
                                       dir_ + "/server" + std::to_string(++starts_) + ".log");
    EXPECT_TRUE(server.ok()) << server.status();
    if (server.ok()) {
      server_ = *std::move(server);
      client_ = ConnectTo(*server_);
    }
    return *client_;
  }
  void Stop() {
    auto stopped = server_->Stop();
    EXPECT_TRUE(stopped.ok() && *stopped == 0);
    client_.reset();
    server_.reset();
  }
  std::string data_dir() const { return dir_ + "/data"; }

 private:
  std::string dir_;
  int starts_ = 0;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<RigClient> client_;
};

// The same request_id with the same content is a retry; with other content
// it is ALREADY_EXISTS naming request_id and nothing is stored. Before, a
// rig whose trial counter restarted got OK (duplicate) and lost its data.
void ExpectRequestIdsHold(RigClient& client, const std::string& id,
                          const std::vector<v1::Response>& first,
                          const v1::ReportResponsesAck& first_ack) {
  auto retry = client.ReportResponses(id, "trial-1", first);
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_TRUE(retry->duplicate());
  EXPECT_EQ(retry->accepted(), first_ack.accepted());
  EXPECT_EQ(retry->counts().DebugString(), first_ack.counts().DebugString());

  auto before = client.GetSession(id);
  ASSERT_TRUE(before.ok()) << before.status();
  std::vector<v1::Response> other = first;
  other[0].set_rates(0, other[0].rates(0) + 1);
  for (const auto& content : {other, std::vector<v1::Response>{first[0]}}) {
    auto reused = client.ReportResponses(id, "trial-1", content);
    ASSERT_FALSE(reused.ok());
    EXPECT_EQ(reused.status().code(), absl::StatusCode::kAlreadyExists) << reused.status();
    EXPECT_THAT(std::string(reused.status().message()),
                HasSubstr("request_id: 'trial-1' already names a report of session '" + id +
                          "' with other content (2 responses); nothing was stored"));
  }
  auto after = client.GetSession(id);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->counts().DebugString(), before->counts().DebugString());
}

TEST(ReportIntegrityTest, RequestIdNamesOneContentAlsoWhenClosedAndAfterARestart) {
  Restartable server("request-ids");
  RigClient* client = &server.Start();
  std::vector<std::string> ids;
  std::vector<std::vector<v1::Response>> firsts;
  std::vector<v1::ReportResponsesAck> acks;
  for (int k = 0; k < 2; ++k) {  // the second one is closed
    auto session = client->CreateSession(SmallConfig(k + 1));
    ASSERT_TRUE(session.ok()) << session.status();
    auto batch = client->NextStimuli(session->id(), 0);
    ASSERT_TRUE(batch.ok()) << batch.status();
    const std::vector<v1::Response> first = {Rates(batch->stimuli(0).id(), {3}),
                                             Skipped(batch->stimuli(1).id())};
    auto ack = client->ReportResponses(session->id(), "trial-1", first);
    ASSERT_TRUE(ack.ok()) << ack.status();
    EXPECT_FALSE(ack->duplicate());
    // Later reports do not change what a retry of the first gets back.
    ASSERT_TRUE(
        client->ReportResponses(session->id(), "trial-2", {Rates(batch->stimuli(2).id(), {1})})
            .ok());
    ids.push_back(session->id());
    firsts.push_back(first);
    acks.push_back(*ack);
  }
  for (int k = 0; k < 2; ++k) ExpectRequestIdsHold(*client, ids[k], firsts[k], acks[k]);

  ASSERT_TRUE(client->CloseSession(ids[1]).ok());
  ExpectRequestIdsHold(*client, ids[1], firsts[1], acks[1]);
  auto late = client->ReportResponses(ids[1], "trial-3", {firsts[1][0]});
  EXPECT_EQ(late.status().code(), absl::StatusCode::kFailedPrecondition) << late.status();
  EXPECT_THAT(std::string(late.status().message()), HasSubstr("is closed"));

  // The digests are in the store: the open session is resumed, the closed
  // one read on demand, and both still tell a retry from a reuse.
  server.Stop();
  client = &server.Start();
  for (int k = 0; k < 2; ++k) ExpectRequestIdsHold(*client, ids[k], firsts[k], acks[k]);
}

// A stored rate changed outside the server (NaN, or beyond kMaxRate) used to
// be resumed from and jam the session at its next generation ("observations:
// nan is not finite"). Now the session is refused on resume, by name and
// row, and the other sessions go on.
TEST(ReportIntegrityTest, DamagedStoredRateIsDataLossNamingTheSessionAndRow) {
  Restartable server("damaged-rate");
  RigClient* client = &server.Start();
  std::vector<std::string> ids;
  for (int k = 0; k < 3; ++k) {
    auto session = client->CreateSession(SmallConfig(k + 1));
    ASSERT_TRUE(session.ok()) << session.status();
    auto batch = client->NextStimuli(session->id(), 0);
    ASSERT_TRUE(batch.ok()) << batch.status();
    std::vector<v1::Response> responses;
    for (const v1::Stimulus& s : batch->stimuli()) responses.push_back(Rates(s.id(), {2}));
    ASSERT_TRUE(client->ReportResponses(session->id(), "all", responses).ok());
    ids.push_back(session->id());
  }
  server.Stop();

  // Little-endian float64: NaN, and 1e308.
  const std::vector<std::string> blobs = {"X'000000000000f87f'", "X'a0c8eb85f3cce17f'"};
  const std::vector<std::string> bytes = {std::string("\x00\x00\x00\x00\x00\x00\xf8\x7f", 8),
                                          std::string("\xa0\xc8\xeb\x85\xf3\xcc\xe1\x7f", 8)};
  const std::vector<std::string> shown = {"nan must be finite and non-negative",
                                          "1e+308 is above the maximum rate 1e+09"};
  std::vector<std::string> rows;
  for (int k = 0; k < 2; ++k) {
    const std::string stimulus = ids[k] + "-3";
    rows.push_back(
        Sql(StoreFile(server.data_dir()),
            "SELECT seq FROM responses WHERE stimulus_id = '" + stimulus + "'"));
    ASSERT_FALSE(rows.back().empty());
    // As an older build stored them: the checksum matches the bytes.
    Sql(StoreFile(server.data_dir()),
        absl::StrCat("UPDATE responses SET rates = ", blobs[k], ", rates_crc32 = ",
                     StoreChecksum(bytes[k]), " WHERE stimulus_id = '", stimulus, "'"));
  }

  client = &server.Start();
  for (int k = 0; k < 2; ++k) {
    const std::string expected = "journal of session '" + ids[k] + "': responses row " + rows[k] +
                                 " (stimulus '" + ids[k] + "-3'): rates[0]: " + shown[k] +
                                 "; the session cannot resume from it";
    auto get = client->GetSession(ids[k]);
    ASSERT_FALSE(get.ok());
    EXPECT_EQ(get.status().code(), absl::StatusCode::kDataLoss) << get.status();
    EXPECT_EQ(std::string(get.status().message()), expected);
    auto next = client->NextStimuli(ids[k], 0);
    EXPECT_EQ(next.status().code(), absl::StatusCode::kDataLoss) << next.status();
  }
  auto healthy = client->NextStimuli(ids[2], 0);
  ASSERT_TRUE(healthy.ok()) << healthy.status();
  EXPECT_EQ(healthy->generation(), 2);
}

}  // namespace
}  // namespace stimloop
