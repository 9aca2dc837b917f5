// PgSessionStore's leases (server/session_leases.h) with two replicas on
// one real PostgreSQL database: the owner's address in the error for the
// other, takeover after expiry (expired here by SQL, not by waiting), the
// fence on the old owner's writes, renewal reporting lost sessions, closed
// sessions needing no owner; and Open's errors for bad URIs.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "server/pg_session_store.h"
#include "tests/server/pg_test_cluster.h"

namespace stimloop {
namespace {

using ::testing::HasSubstr;

v1::SessionConfig Config() {
  v1::SessionConfig config;
  config.mutable_image()->set_height(16);
  config.mutable_image()->set_width(16);
  config.mutable_image()->set_channels(1);
  config.set_num_neurons(1);
  config.mutable_optimizer()->set_name("genetic");
  config.mutable_image_space()->set_name("spectral");
  config.set_generation_size(2);
  config.set_seed(3);
  return config;
}

std::vector<StimulusEntry> Generation(int64_t generation) {
  std::vector<StimulusEntry> out(2);
  for (int i = 0; i < 2; ++i) {
    out[i].sequence = (generation - 1) * 2 + i + 1;
    out[i].id = "s-" + std::to_string(out[i].sequence);
    out[i].generation = generation;
    out[i].origin = "genetic";
    out[i].png = "png " + std::to_string(out[i].sequence);
  }
  return out;
}

class PgLeasesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    STIMLOOP_START_POSTGRES_OR_SKIP(cluster);
    cluster_ = std::move(cluster);
    auto uri = cluster_->CreateDatabase("leases");
    ASSERT_TRUE(uri.ok()) << uri.status();
    uri_ = *uri;
  }

  std::unique_ptr<PgSessionStore> Replica(const std::string& id, const std::string& address) {
    PgStoreOptions options;
    options.replica_id = id;
    options.address = address;
    auto store = PgSessionStore::Open(uri_, options);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }

  // Expires every lease now, as the owner's death would after its TTL.
  void ExpireLeases() {
    ASSERT_TRUE(
        cluster_->Exec("leases", "UPDATE leases SET expires_at = now() - interval '1 second'")
            .ok());
  }

  std::unique_ptr<PgTestCluster> cluster_;
  std::string uri_;
};

TEST_F(PgLeasesTest, LiveOwnersSessionIsRefusedWithItsAddress) {
  auto a = Replica("replica-a", "10.0.0.1:50051");
  auto b = Replica("replica-b", "10.0.0.2:50051");
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->SessionCreated("s", Config(), absl::Now()).ok());
  EXPECT_TRUE(a->Holds("s"));
  EXPECT_FALSE(b->Holds("s"));

  auto claimed = b->Claim("s");
  ASSERT_FALSE(claimed.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(claimed.status())) << claimed.status();
  EXPECT_EQ(claimed.status().message(),
            "session_id: session 's' is owned by replica 'replica-a' at 10.0.0.1:50051; send "
            "its requests there");
  EXPECT_EQ(OwnerAddressFromError(claimed.status().message()), "10.0.0.1:50051");
  EXPECT_EQ(OwnerAddressFromError("session_id: no session 's'"), std::nullopt);

  // b's writes are fenced with the same error; nothing is written.
  const absl::Status write = b->GenerationProposed("s", 1, Generation(1), "state", 0, 0);
  EXPECT_TRUE(absl::IsFailedPrecondition(write)) << write;
  EXPECT_THAT(std::string(write.message()), HasSubstr("owned by replica 'replica-a'"));
  EXPECT_EQ(*cluster_->Query("leases", "SELECT count(*) FROM generations"), "0");

  auto held = a->Claim("s");
  ASSERT_TRUE(held.ok()) << held.status();
  EXPECT_EQ(*held, SessionLeases::Claimed::kHeld);
  const absl::Status unknown = b->Claim("nope").status();
  EXPECT_TRUE(absl::IsNotFound(unknown)) << unknown;
  EXPECT_THAT(std::string(unknown.message()), HasSubstr("no session 'nope'"));
}

TEST_F(PgLeasesTest, ExpiredLeaseIsTakenOverAndTheOldOwnerIsFenced) {
  auto a = Replica("replica-a", "10.0.0.1:50051");
  auto b = Replica("replica-b", "10.0.0.2:50051");
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->SessionCreated("s", Config(), absl::Now()).ok());
  ASSERT_TRUE(a->GenerationProposed("s", 1, Generation(1), "state 1", 0, 0).ok());
  ExpireLeases();

  auto claimed = b->Claim("s");
  ASSERT_TRUE(claimed.ok()) << claimed.status();
  EXPECT_EQ(*claimed, SessionLeases::Claimed::kTakenOver);
  EXPECT_TRUE(b->Holds("s"));
  EXPECT_EQ(*cluster_->Query("leases", "SELECT owner || ' ' || address FROM leases"),
            "replica-b 10.0.0.2:50051");
  EXPECT_EQ(*cluster_->Query("leases", "SELECT count(*) FROM events WHERE kind = 'taken_over'"),
            "1");

  // The old owner cannot write any more (its lease was taken, though it
  // thinks it holds it until its renewal says otherwise).
  const absl::Status fenced = a->StimuliHandedOut("s", {"s-1"});
  EXPECT_TRUE(absl::IsFailedPrecondition(fenced)) << fenced;
  EXPECT_THAT(std::string(fenced.message()), HasSubstr("at 10.0.0.2:50051"));
  EXPECT_FALSE(a->Holds("s"));
  EXPECT_EQ(
      *cluster_->Query("leases", "SELECT count(*) FROM stimuli WHERE handed_out_ns IS NOT NULL"),
      "0");
  ASSERT_TRUE(b->StimuliHandedOut("s", {"s-1"}).ok());

  // Once b's lease expired too, a's write is still refused: its copy of the
  // session is stale. It must claim and reload.
  ExpireLeases();
  const absl::Status stale = a->StimuliHandedOut("s", {"s-2"});
  EXPECT_TRUE(absl::IsUnavailable(stale)) << stale;
  EXPECT_THAT(std::string(stale.message()),
              HasSubstr("this replica no longer holds the lease of session 's'"));
}

TEST_F(PgLeasesTest, RenewReportsLostSessionsAndReleaseFreesThem) {
  auto a = Replica("replica-a", "10.0.0.1:50051");
  auto b = Replica("replica-b", "10.0.0.2:50051");
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->SessionCreated("kept", Config(), absl::FromUnixSeconds(1)).ok());
  ASSERT_TRUE(a->SessionCreated("lost", Config(), absl::FromUnixSeconds(2)).ok());
  auto lost = a->Renew();
  ASSERT_TRUE(lost.ok()) << lost.status();
  EXPECT_TRUE(lost->empty());

  ASSERT_TRUE(cluster_
                  ->Exec("leases",
                         "UPDATE leases SET expires_at = now() - interval '1 "
                         "second' WHERE session_id = 'lost'")
                  .ok());
  ASSERT_TRUE(b->Claim("lost").ok());
  lost = a->Renew();
  ASSERT_TRUE(lost.ok()) << lost.status();
  EXPECT_EQ(*lost, std::vector<std::string>{"lost"});
  EXPECT_TRUE(a->Holds("kept"));
  EXPECT_FALSE(a->Holds("lost"));

  // A graceful stop releases: b takes "kept" over at once.
  ASSERT_TRUE(a->ReleaseAll().ok());
  EXPECT_FALSE(a->Holds("kept"));
  auto claimed = b->Claim("kept");
  ASSERT_TRUE(claimed.ok()) << claimed.status();
  EXPECT_EQ(*claimed, SessionLeases::Claimed::kNew);
}

// After a failed write the in-memory copy may differ from the store: the
// replica stops counting the session as held until it claims (and the
// server reloads) it again.
TEST_F(PgLeasesTest, FailedWriteMakesTheSessionReloadBeforeItServesAgain) {
  auto a = Replica("replica-a", "10.0.0.1:50051");
  ASSERT_TRUE(a);
  ASSERT_TRUE(a->SessionCreated("s", Config(), absl::Now()).ok());
  ASSERT_TRUE(a->GenerationProposed("s", 1, Generation(1), "state 1", 0, 0).ok());
  const std::vector<ResponseEntry> responses = {{"s-1", {1.0}, false}};
  v1::ReportResponsesAck ack;
  ASSERT_TRUE(a->ResponsesReported("s", "r", "digest", responses, ack, absl::Now()).ok());
  EXPECT_TRUE(a->Holds("s"));
  const absl::Status again = a->ResponsesReported("s", "r", "digest", responses, ack, absl::Now());
  EXPECT_TRUE(absl::IsAlreadyExists(again)) << again;
  EXPECT_FALSE(a->Holds("s"));
  auto claimed = a->Claim("s");
  ASSERT_TRUE(claimed.ok()) << claimed.status();
  EXPECT_EQ(*claimed, SessionLeases::Claimed::kHeld);
  EXPECT_TRUE(a->Holds("s"));
}

TEST_F(PgLeasesTest, ClosedSessionNeedsNoOwner) {
  auto a = Replica("replica-a", "10.0.0.1:50051");
  auto b = Replica("replica-b", "10.0.0.2:50051");
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->SessionCreated("s", Config(), absl::Now()).ok());
  ASSERT_TRUE(a->SessionClosed("s", absl::Now()).ok());
  auto claimed = b->Claim("s");
  ASSERT_TRUE(claimed.ok()) << claimed.status();
  EXPECT_EQ(*claimed, SessionLeases::Claimed::kClosed);
  EXPECT_FALSE(b->Holds("s"));
  EXPECT_EQ(*cluster_->Query("leases", "SELECT count(*) FROM leases"), "0");
}

TEST_F(PgLeasesTest, ClaimBeforeTheAddressIsKnownIsUnavailable) {
  auto a = Replica("replica-a", "10.0.0.1:50051");
  auto b = Replica("replica-b", "");
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->SessionCreated("s", Config(), absl::Now()).ok());
  const absl::Status early = b->Claim("s").status();
  EXPECT_TRUE(absl::IsUnavailable(early)) << early;
  EXPECT_THAT(std::string(early.message()), HasSubstr("no advertised address yet"));
}

// Sessions journaled from several threads at once, on the pool's
// connections, are all committed whole.
TEST_F(PgLeasesTest, SessionsJournaledConcurrentlyAreAllCommitted) {
  PgStoreOptions options;
  options.replica_id = "replica-a";
  options.address = "10.0.0.1:50051";
  options.connections = 3;
  auto opened = PgSessionStore::Open(uri_, options);
  ASSERT_TRUE(opened.ok()) << opened.status();
  PgSessionStore& store = **opened;
  constexpr int kSessions = 8;
  std::vector<std::thread> threads;
  std::vector<absl::Status> errors(kSessions);
  for (int i = 0; i < kSessions; ++i) {
    threads.emplace_back([&, i]() {
      const std::string id = "s" + std::to_string(i);
      absl::Status s = store.SessionCreated(id, Config(), absl::Now());
      for (int g = 1; g <= 5 && s.ok(); ++g) {
        std::vector<StimulusEntry> stimuli = Generation(g);
        for (StimulusEntry& e : stimuli) e.id = id + "-" + std::to_string(e.sequence);
        s = store.GenerationProposed(id, g, stimuli, "state", 0, 0);
        if (s.ok()) s = store.StimuliHandedOut(id, {stimuli[0].id});
        const std::vector<ResponseEntry> responses = {{stimuli[0].id, {1.0 * g}, false}};
        if (s.ok()) {
          s = store.ResponsesReported(id, "r" + std::to_string(g), "digest", responses,
                                      v1::ReportResponsesAck(), absl::Now());
        }
      }
      errors[i] = s;
    });
  }
  for (std::thread& t : threads) t.join();
  for (int i = 0; i < kSessions; ++i) {
    EXPECT_TRUE(errors[i].ok()) << "session " << i << ": " << errors[i];
    auto loaded = store.LoadSession("s" + std::to_string(i));
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    EXPECT_EQ(loaded->generation, 5);
    EXPECT_EQ(loaded->stimuli.size(), 10u);
    EXPECT_EQ(loaded->responses.size(), 5u);
    EXPECT_TRUE(store.Holds("s" + std::to_string(i)));
  }
  auto open = store.OpenSessionIds();
  ASSERT_TRUE(open.ok()) << open.status();
  EXPECT_EQ(open->size(), static_cast<size_t>(kSessions));
}

TEST(PgStoreOpenTest, BadUriIsInvalidArgumentAndNoServerIsUnavailable) {
  auto bad = PgSessionStore::Open("postgresql://host:notaport:x/db?bogus_option=1");
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(bad.status())) << bad.status();
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("not a PostgreSQL connection URI"));

  // Port 1 on loopback: nothing listens there.
  auto none = PgSessionStore::Open("postgresql://stimloop@127.0.0.1:1/stimloop?connect_timeout=2");
  ASSERT_FALSE(none.ok());
  EXPECT_TRUE(absl::IsUnavailable(none.status())) << none.status();
  EXPECT_THAT(std::string(none.status().message()), HasSubstr("cannot connect to PostgreSQL"));
}

}  // namespace
}  // namespace stimloop
