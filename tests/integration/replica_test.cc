// Two stimloop-server replicas on one real PostgreSQL store
// (tests/server/pg_test_cluster.h): a session runs through the first; the
// second refuses it naming the first's address; the first is SIGKILLed
// with a batch handed out and not yet reported; the second takes the
// session over once the lease expires and goes on with no acknowledged
// response lost, the retried report answered from the store, and every
// stimulus equal, byte for byte, to an uninterrupted run's.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/session_leases.h"
#include "server/store_checksum.h"
#include "tests/integration/test_server.h"
#include "tests/server/pg_test_cluster.h"

namespace stimloop {
namespace {

using ::testing::HasSubstr;

constexpr int kGenerations = 8;
constexpr int kKillAfterBatch = 4;  // 1-based: the batch handed out before the kill

// A deterministic rate for an image: the same PNG gets the same rate in
// every run.
std::vector<v1::Response> RatesFor(const v1::StimulusBatch& batch) {
  std::vector<v1::Response> out;
  for (const v1::Stimulus& s : batch.stimuli()) {
    v1::Response r;
    r.set_stimulus_id(s.id());
    r.add_rates(static_cast<double>(StoreChecksum(s.png()) % 1000) / 10.0);
    out.push_back(std::move(r));
  }
  return out;
}

std::unique_ptr<ServerProcess> StartReplica(const std::string& dir, const std::string& name,
                                            const std::string& uri) {
  auto server = ServerProcess::Start(
      DefaultServerBinary(), dir + "/" + name, dir + "/" + name + ".log",
      {"--store=" + uri, "--replica_id=" + name, "--lease_ttl=1s", "--workers=1"});
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? *std::move(server) : nullptr;
}

std::unique_ptr<RigClient> Client(const ServerProcess& server) {
  RigClientOptions options;
  options.address = server.address();
  options.report_attempts = 1;  // the test retries itself
  auto client = RigClient::Connect(options);
  EXPECT_TRUE(client.ok()) << client.status();
  return client.ok() ? *std::move(client) : nullptr;
}

struct PlayedSession {
  std::map<std::string, std::string> pngs;  // by stimulus id
  std::vector<int64_t> model_versions;      // of every stimulus, in hand-out order
  v1::SessionCounts counts;
};

// Calls `call` until it is not the owner error of a live replica (the
// dead owner's lease expiring), with a deadline.
template <typename Call>
auto UntilTakenOver(Call call) -> decltype(call()) {
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (true) {
    auto result = call();
    if (result.ok() || !absl::IsFailedPrecondition(result.status()) ||
        !OwnerAddressFromError(result.status().message()).has_value() || absl::Now() > deadline) {
      return result;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

// Plays kGenerations generations on `uri`'s store. With `failover`, the
// session starts on replica A and A is SIGKILLed after batch
// kKillAfterBatch is handed out; the rest goes to replica B.
void PlaySession(PgTestCluster& cluster, const std::string& db, const v1::SessionConfig& config,
                 bool failover, PlayedSession* run) {
  auto uri = cluster.CreateDatabase(db);
  ASSERT_TRUE(uri.ok()) << uri.status();
  const std::string dir = FreshTempDir(db);
  auto a = StartReplica(dir, "replica-a", *uri);
  ASSERT_NE(a, nullptr);
  std::unique_ptr<ServerProcess> b;
  std::unique_ptr<RigClient> to_b;
  if (failover) {
    b = StartReplica(dir, "replica-b", *uri);
    ASSERT_NE(b, nullptr);
    to_b = Client(*b);
    ASSERT_NE(to_b, nullptr);
  }
  auto to_a = Client(*a);
  ASSERT_NE(to_a, nullptr);
  RigClient* client = to_a.get();

  auto session = client->CreateSession(config);
  ASSERT_TRUE(session.ok()) << session.status();
  const std::string id = session->id();
  int64_t acknowledged = 0;
  std::string last_request_id;
  std::vector<v1::Response> last_responses;
  for (int g = 1; g <= kGenerations; ++g) {
    auto batch = client->NextStimuli(id, 0);
    ASSERT_TRUE(batch.ok()) << "generation " << g << ": " << batch.status();
    for (const v1::Stimulus& s : batch->stimuli()) {
      run->pngs[s.id()] = s.png();
      run->model_versions.push_back(s.model_version());
    }
    const std::vector<v1::Response> responses = RatesFor(*batch);
    const std::string request_id = absl::StrCat("report-", g);

    if (failover && g == 1) {
      // While A lives, B refuses the session and names A's address.
      auto refused = to_b->GetSession(id);
      ASSERT_FALSE(refused.ok());
      EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition) << refused.status();
      EXPECT_EQ(refused.status().message(),
                absl::StrCat("session_id: session '", id, "' is owned by replica 'replica-a' at ",
                             a->address(), "; send its requests there"));
      // ListSessions on B lists it all the same.
      auto listed = to_b->ListSessions();
      ASSERT_TRUE(listed.ok()) << listed.status();
      ASSERT_EQ(listed->sessions_size(), 1);
      EXPECT_EQ(listed->sessions(0).id(), id);
    }
    if (failover && g == kKillAfterBatch) {
      a->Kill();  // SIGKILL with the batch handed out, not reported
      client = to_b.get();
      // The last acknowledged report, retried on B, is answered from the
      // store once B has taken the session over.
      auto retried = UntilTakenOver(
          [&]() { return client->ReportResponses(id, last_request_id, last_responses); });
      ASSERT_TRUE(retried.ok()) << retried.status();
      EXPECT_TRUE(retried->duplicate());
      EXPECT_EQ(retried->counts().responses(), acknowledged);
      auto now = client->GetSession(id);
      ASSERT_TRUE(now.ok()) << now.status();
      EXPECT_EQ(now->counts().responses(), acknowledged) << "acknowledged responses lost";
    }
    auto ack = client->ReportResponses(id, request_id, responses);
    ASSERT_TRUE(ack.ok()) << "generation " << g << ": " << ack.status();
    EXPECT_FALSE(ack->duplicate());
    EXPECT_EQ(ack->counts().responses(), acknowledged + static_cast<int64_t>(responses.size()));
    acknowledged = ack->counts().responses();
    last_request_id = request_id;
    last_responses = responses;
  }
  auto end = client->GetSession(id);
  ASSERT_TRUE(end.ok()) << end.status();
  run->counts = end->counts();
  EXPECT_EQ(run->counts.responses(), acknowledged);
  if (failover) {
    auto stopped = b->Stop();
    EXPECT_TRUE(stopped.ok() && *stopped == 0) << "graceful stop of replica B";
  } else {
    auto stopped = a->Stop();
    EXPECT_TRUE(stopped.ok() && *stopped == 0) << "graceful stop of replica A";
  }
}

// Runs `config` with a failover and without; both must hand out the same
// stimuli and end with the same counts.
void ExpectFailoverIsExact(const std::string& name, const v1::SessionConfig& config,
                           PlayedSession* failover_out = nullptr) {
  STIMLOOP_START_POSTGRES_OR_SKIP(cluster);
  PlayedSession failover, reference;
  PlaySession(*cluster, name + "-failover", config, /*failover=*/true, &failover);
  ASSERT_FALSE(::testing::Test::HasFatalFailure());
  PlaySession(*cluster, name + "-reference", config, /*failover=*/false, &reference);
  ASSERT_FALSE(::testing::Test::HasFatalFailure());

  EXPECT_EQ(failover.counts.SerializeAsString(), reference.counts.SerializeAsString())
      << "failover: " << failover.counts.ShortDebugString()
      << "\nreference: " << reference.counts.ShortDebugString();
  ASSERT_EQ(failover.pngs.size(), reference.pngs.size());
  ASSERT_EQ(failover.pngs.size(), static_cast<size_t>(kGenerations * config.generation_size()));
  int differ = 0;
  auto f = failover.pngs.begin();
  for (auto r = reference.pngs.begin(); r != reference.pngs.end(); ++r, ++f) {
    // Session ids differ between the runs; sequence numbers do not.
    EXPECT_EQ(f->first.substr(f->first.rfind('-')), r->first.substr(r->first.rfind('-')));
    if (f->second != r->second) ++differ;
  }
  EXPECT_EQ(differ, 0) << "stimuli differ after the takeover";
  EXPECT_EQ(failover.model_versions, reference.model_versions);
  if (failover_out != nullptr) *failover_out = std::move(failover);
}

TEST(ReplicaTest, SessionContinuesExactlyOnAnotherReplicaAfterSigkill) {
  ExpectFailoverIsExact("replica-genetic", SmallConfig(20261205));
}

// A model-based session: the surrogate versions fitted on A are restored
// on B, and B's refits go on as A's would have.
TEST(ReplicaTest, ModelBasedSessionContinuesExactlyOnAnotherReplicaAfterSigkill) {
  v1::SessionConfig config = SmallConfig(20261206);
  config.mutable_optimizer()->set_name("gradient_ascent");
  auto& optimizer = *config.mutable_optimizer()->mutable_params();
  optimizer["prior_generations"] = 1;
  optimizer["steps"] = 10;
  auto& surrogate = *config.mutable_surrogate()->mutable_params();
  surrogate["ensemble_size"] = 2;
  surrogate["max_epochs"] = 5;
  surrogate["min_trials"] = 8;
  surrogate["gabor_scales"] = 2;
  surrogate["gabor_orientations"] = 4;
  PlayedSession failover;
  ExpectFailoverIsExact("replica-model", config, &failover);
  ASSERT_FALSE(failover.model_versions.empty());
  // Generations after the takeover were proposed by fitted versions.
  EXPECT_GE(failover.model_versions.back(), kGenerations - 2);
}

// RigClient with both replicas' addresses follows the session: a client of
// the wrong replica is sent to the owner, and after the owner's SIGKILL the
// rig's calls move to the live replica (which takes the session over) with
// no error reaching the rig and no acknowledged response lost.
TEST(ReplicaTest, RigClientFollowsTheOwnerAndFailsOver) {
  STIMLOOP_START_POSTGRES_OR_SKIP(cluster);
  auto uri = cluster->CreateDatabase("follow");
  ASSERT_TRUE(uri.ok()) << uri.status();
  const std::string dir = FreshTempDir("replica-follow");
  auto a = StartReplica(dir, "replica-a", *uri);
  auto b = StartReplica(dir, "replica-b", *uri);
  ASSERT_TRUE(a != nullptr && b != nullptr);

  RigClientOptions options;
  options.address = a->address();
  options.replicas = {b->address()};
  options.retry_backoff = absl::Milliseconds(50);
  auto rig = RigClient::Connect(options);
  ASSERT_TRUE(rig.ok()) << rig.status();
  auto session = (*rig)->CreateSession(SmallConfig(20261207));
  ASSERT_TRUE(session.ok()) << session.status();
  const std::string id = session->id();

  // A client that starts at B is sent to A, the owner.
  RigClientOptions other = options;
  other.address = b->address();
  other.replicas = {a->address()};
  auto viewer = RigClient::Connect(other);
  ASSERT_TRUE(viewer.ok()) << viewer.status();
  auto seen = (*viewer)->GetSession(id);
  ASSERT_TRUE(seen.ok()) << seen.status();
  EXPECT_EQ((*viewer)->current_address(), a->address());

  int64_t acknowledged = 0;
  for (int g = 1; g <= 4; ++g) {
    auto batch = (*rig)->NextStimuli(id, 0);
    ASSERT_TRUE(batch.ok()) << "generation " << g << ": " << batch.status();
    if (g == 3) a->Kill();  // with the batch handed out, not reported
    auto ack = (*rig)->ReportResponses(id, absl::StrCat("report-", g), RatesFor(*batch));
    ASSERT_TRUE(ack.ok()) << "generation " << g << ": " << ack.status();
    EXPECT_EQ(ack->counts().responses(), acknowledged + batch->stimuli_size());
    acknowledged = ack->counts().responses();
  }
  EXPECT_EQ((*rig)->current_address(), b->address());
  auto end = (*rig)->GetSession(id);
  ASSERT_TRUE(end.ok()) << end.status();
  EXPECT_EQ(end->counts().responses(), acknowledged);
}

// A --store the server cannot use stops it at start with the reason.
TEST(ReplicaTest, UnusableStoreFlagStopsTheServerWithItsReason) {
  const std::string dir = FreshTempDir("replica-bad-store");
  auto foreign = ServerProcess::Start(DefaultServerBinary(), dir + "/data", dir + "/foreign.log",
                                      {"--store=mysql://db/stimloop"}, absl::Seconds(30));
  ASSERT_FALSE(foreign.ok());
  EXPECT_THAT(std::string(foreign.status().message()),
              HasSubstr("--store: expected a PostgreSQL URI (postgresql://host:port/dbname) or "
                        "nothing (the SQLite store in --data_dir)"));
  auto unreachable = ServerProcess::Start(
      DefaultServerBinary(), dir + "/data", dir + "/unreachable.log",
      {"--store=postgresql://stimloop@127.0.0.1:1/stimloop?connect_timeout=2"}, absl::Seconds(30));
  ASSERT_FALSE(unreachable.ok());
  EXPECT_THAT(std::string(unreachable.status().message()),
              HasSubstr("cannot open the session store: store: cannot connect to PostgreSQL "
                        "(127.0.0.1:1/stimloop)"));
}

}  // namespace
}  // namespace stimloop
