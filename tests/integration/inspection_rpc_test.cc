// Inspection over gRPC against the real server: statistics per generation,
// stimuli with their responses, the best stimuli, and the progress stream.
#include <cmath>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "clients/closed_loop.h"
#include "clients/simulated_rig.h"
#include "tests/integration/test_server.h"

namespace stimloop {
namespace {

using ::testing::HasSubstr;

SimulatedRig MakeRig(uint64_t seed) {
  SimulatedNeuronSpec spec;
  spec.height = spec.width = 32;
  spec.seed = seed;
  return SimulatedRig(*SimulatedPopulation::Create(spec, 1, false), 0.2, seed);
}

std::unique_ptr<grpc::ClientContext> Context() {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  return context;
}

TEST(InspectionRpcTest, StatsStimuliBestAndProgressStream) {
  auto server = StartTestServer("inspection");
  ASSERT_NE(server, nullptr);
  auto client = ConnectTo(*server);
  ASSERT_NE(client, nullptr);
  auto session = client->CreateSession(SmallConfig(8));
  ASSERT_TRUE(session.ok()) << session.status();
  auto channel = grpc::CreateChannel(server->address(), grpc::InsecureChannelCredentials());
  auto stub = v1::StimLoop::NewStub(channel);

  // A notebook follows the session from the start.
  std::vector<v1::SessionProgress> progress;
  grpc::Status watch_status;
  std::thread watcher([&]() {
    auto context = Context();
    v1::GetSessionRequest request;
    request.set_session_id(session->id());
    auto reader = stub->WatchSession(context.get(), request);
    v1::SessionProgress message;
    while (reader->Read(&message)) progress.push_back(message);
    watch_status = reader->Finish();
  });

  SimulatedRig rig = MakeRig(8);
  ClosedLoopOptions options;
  options.responses = 40;  // generations 1-4 answered
  ASSERT_TRUE(RunClosedLoop(*client, rig, session->id(), 0, options).ok());
  v1::StimulusBatch fifth;
  {
    auto batch = client->NextStimuli(session->id(), 0);  // proposes generation 5
    ASSERT_TRUE(batch.ok());
    fifth = *batch;
  }

  v1::SessionStats stats;
  {
    v1::GetSessionRequest request;
    request.set_session_id(session->id());
    auto context = Context();
    ASSERT_TRUE(stub->GetSessionStats(context.get(), request, &stats).ok());
  }
  ASSERT_EQ(stats.generations_size(), 5);
  for (int g = 0; g < 4; ++g) {
    EXPECT_EQ(stats.generations(g).generation(), g + 1);
    EXPECT_EQ(stats.generations(g).stimuli(), 10);
    EXPECT_EQ(stats.generations(g).answered(), 10);
    EXPECT_LE(stats.generations(g).mean_objective(), stats.generations(g).max_objective());
    EXPECT_TRUE(std::isnan(stats.generations(g).reference_mean_objective()));
  }
  EXPECT_EQ(stats.generations(4).answered(), 0);
  EXPECT_EQ(stats.counts().responses(), 40);

  v1::ListStimuliResponse second;
  {
    v1::ListStimuliRequest request;
    request.set_session_id(session->id());
    request.set_first_generation(2);
    request.set_last_generation(2);
    auto context = Context();
    ASSERT_TRUE(stub->ListStimuli(context.get(), request, &second).ok());
  }
  ASSERT_EQ(second.stimuli_size(), 10);
  for (const auto& record : second.stimuli()) {
    EXPECT_EQ(record.stimulus().generation(), 2);
    EXPECT_TRUE(record.stimulus().png().empty());  // not asked for
    ASSERT_EQ(record.presentation_size(), 1);
    EXPECT_EQ(record.presentation(0).rates_size(), 1);
    EXPECT_DOUBLE_EQ(record.mean_objective(), record.presentation(0).rates(0));
  }

  v1::ListStimuliResponse best;
  {
    v1::GetBestStimuliRequest request;
    request.set_session_id(session->id());
    request.set_k(5);
    request.set_include_png(true);
    auto context = Context();
    ASSERT_TRUE(stub->GetBestStimuli(context.get(), request, &best).ok());
  }
  ASSERT_EQ(best.stimuli_size(), 5);
  for (int i = 1; i < 5; ++i) {
    EXPECT_GE(best.stimuli(i - 1).mean_objective(), best.stimuli(i).mean_objective());
  }
  EXPECT_FALSE(best.stimuli(0).stimulus().png().empty());
  auto now = client->GetSession(session->id());
  ASSERT_TRUE(now.ok());
  EXPECT_DOUBLE_EQ(best.stimuli(0).mean_objective(), now->best_measured().mean_objective());

  ASSERT_TRUE(client->CloseSession(session->id()).ok());
  watcher.join();
  EXPECT_TRUE(watch_status.ok()) << watch_status.error_message();
  ASSERT_GE(progress.size(), 2u);
  EXPECT_EQ(progress.back().status(), v1::SESSION_STATUS_CLOSED);
  EXPECT_EQ(progress.back().latest().generation(), 4);  // complete: 5 was proposed
  EXPECT_EQ(progress.back().latest().answered(), 10);
  for (size_t i = 1; i < progress.size(); ++i) {
    EXPECT_GE(progress[i].latest().generation(), progress[i - 1].latest().generation());
  }
}

TEST(InspectionRpcTest, BadRequestsNameTheField) {
  auto server = StartTestServer("inspection-bad");
  ASSERT_NE(server, nullptr);
  auto client = ConnectTo(*server);
  auto session = client->CreateSession(SmallConfig());
  ASSERT_TRUE(session.ok());
  auto stub = v1::StimLoop::NewStub(
      grpc::CreateChannel(server->address(), grpc::InsecureChannelCredentials()));

  v1::GetBestStimuliRequest best;
  best.set_session_id(session->id());
  best.set_k(0);
  v1::ListStimuliResponse reply;
  auto context = Context();
  grpc::Status status = stub->GetBestStimuli(context.get(), best, &reply);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("k: 0"));

  v1::ListStimuliRequest list;
  list.set_session_id(session->id());
  list.set_first_generation(3);
  list.set_last_generation(2);
  context = Context();
  status = stub->ListStimuli(context.get(), list, &reply);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("last_generation"));

  best.set_k(1001);
  context = Context();
  status = stub->GetBestStimuli(context.get(), best, &reply);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("k: 1001 is outside [1, 1000]"));

  list.set_first_generation(-1);
  list.set_last_generation(0);
  context = Context();
  status = stub->ListStimuli(context.get(), list, &reply);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("must be >= 0, got -1"));

  v1::GetSessionRequest unknown;
  unknown.set_session_id("nope");
  v1::SessionStats stats;
  context = Context();
  status = stub->GetSessionStats(context.get(), unknown, &stats);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  context = Context();
  auto reader = stub->WatchSession(context.get(), unknown);
  v1::SessionProgress progress;
  EXPECT_FALSE(reader->Read(&progress));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
}

}  // namespace
}  // namespace stimloop
