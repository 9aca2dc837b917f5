// The real server binary on a loopback port, driven by the simulated rig
// over gRPC: the closed loop end to end.
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "clients/closed_loop.h"
#include "clients/simulated_rig.h"
#include "health.grpc.pb.h"
#include "tests/integration/test_server.h"

namespace stimloop {
namespace {

SimulatedRig MakeRig(uint64_t seed, int neurons = 1) {
  SimulatedNeuronSpec spec;
  spec.height = spec.width = 32;
  spec.seed = seed;
  auto population = SimulatedPopulation::Create(spec, neurons, neurons > 1);
  EXPECT_TRUE(population.ok()) << population.status();
  return SimulatedRig(*std::move(population), 0.2, seed);
}

TEST(ClosedLoopTest, GeneticSessionRunsAndImproves) {
  auto server = StartTestServer("closed-loop");
  ASSERT_NE(server, nullptr);
  auto client = ConnectTo(*server);
  ASSERT_NE(client, nullptr);
  SimulatedRig rig = MakeRig(3);
  auto session = client->CreateSession(SmallConfig(3));
  ASSERT_TRUE(session.ok()) << session.status();

  std::vector<GenerationSummary> generations;
  ClosedLoopOptions options;
  options.responses = 300;
  options.on_generation = [&](const GenerationSummary& g) { generations.push_back(g); };
  auto result = RunClosedLoop(*client, rig, session->id(), 0, options);
  ASSERT_TRUE(result.ok()) << result.status();

  EXPECT_EQ(result->session.counts().responses(), 300);
  EXPECT_EQ(result->session.counts().generations(), 30);
  ASSERT_EQ(generations.size(), 30u);
  ASSERT_TRUE(result->session.has_best_measured());
  EXPECT_FALSE(result->session.best_measured().stimulus().png().empty());
  EXPECT_GT(result->best_true_fraction, 0.0);
  EXPECT_LE(result->best_true_fraction, 1.0);
  // Later generations respond more than the first ones.
  double early = 0, late = 0;
  for (int i = 0; i < 5; ++i) early += generations[i].mean_rate;
  for (int i = 25; i < 30; ++i) late += generations[i].mean_rate;
  EXPECT_GT(late, early);

  auto stopped = server->Stop();
  ASSERT_TRUE(stopped.ok()) << stopped.status();
  EXPECT_EQ(*stopped, 0) << "graceful shutdown should exit 0";
}

TEST(ClosedLoopTest, StepsOfOneStimulusWalkThroughGenerations) {
  auto server = StartTestServer("steps");
  ASSERT_NE(server, nullptr);
  auto client = ConnectTo(*server);
  SimulatedRig rig = MakeRig(4);
  auto session = client->CreateSession(SmallConfig(4));
  ASSERT_TRUE(session.ok());
  ClosedLoopOptions options;
  options.responses = 25;
  options.step = 1;
  auto result = RunClosedLoop(*client, rig, session->id(), 0, options);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->session.counts().responses(), 25);
  EXPECT_EQ(result->session.counts().generations(), 3);  // 10 + 10 + 5
  EXPECT_EQ(result->session.counts().pending(), 0);
}

TEST(ClosedLoopTest, LargeImagesComeInBatchesAndNextGenerationCollectsThem) {
  // 24 noise images of 512x512 RGB (~19 MB of PNG) pass the 16 MiB cap on a
  // batch: NextStimuli(0) returns part of the generation, NextGeneration all
  // of it, each reply under the client's 64 MiB receive limit.
  auto server = StartTestServer("large-images");
  ASSERT_NE(server, nullptr);
  auto client = ConnectTo(*server);
  v1::SessionConfig config = SmallConfig(5);
  config.mutable_image()->set_height(512);
  config.mutable_image()->set_width(512);
  config.mutable_image()->set_channels(3);
  config.mutable_optimizer()->set_name("random");
  config.mutable_image_space()->set_name("pixel");
  config.set_generation_size(24);
  auto session = client->CreateSession(config);
  ASSERT_TRUE(session.ok()) << session.status();
  auto part = client->NextStimuli(session->id(), 0);
  ASSERT_TRUE(part.ok()) << part.status();
  EXPECT_GT(part->remaining(), 0);
  EXPECT_EQ(part->stimuli_size() + part->remaining(), 24);
  auto rest = client->NextGeneration(session->id());
  ASSERT_TRUE(rest.ok()) << rest.status();
  EXPECT_EQ(rest->stimuli_size(), part->remaining());
  EXPECT_EQ(rest->remaining(), 0);
  EXPECT_EQ(rest->generation(), 1);

  std::vector<v1::Response> responses;
  for (const auto* batch : {&*part, &*rest}) {
    for (const v1::Stimulus& stimulus : batch->stimuli()) {
      responses.emplace_back().set_stimulus_id(stimulus.id());
      responses.back().add_rates(1.0);
    }
  }
  ASSERT_TRUE(client->ReportResponses(session->id(), "gen-1", responses).ok());
  auto second = client->NextGeneration(session->id());
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->stimuli_size(), 24);
  EXPECT_EQ(second->generation(), 2);
}

TEST(ClosedLoopTest, ValidationBlockEndsTheLoopMidGeneration) {
  auto server = StartTestServer("validation-block");
  ASSERT_NE(server, nullptr);
  auto client = ConnectTo(*server);
  SimulatedRig rig = MakeRig(5);
  auto session = client->CreateSession(SmallConfig(5));
  ASSERT_TRUE(session.ok());
  ClosedLoopOptions options;
  options.responses = 25;  // generation 3 half shown: its other 5 are skipped
  options.step = 4;
  v1::ValidationBlock block;
  block.set_candidates(3);
  block.set_presentations(4);
  options.validation = block;
  auto result = RunClosedLoop(*client, rig, session->id(), 0, options);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->validation_responses, 12);
  const v1::SessionCounts& counts = result->session.counts();
  EXPECT_EQ(counts.generations(), 4);
  EXPECT_EQ(counts.responses(), 25 + 12);
  EXPECT_EQ(counts.skipped(), 5);
  EXPECT_EQ(counts.pending(), 0);
  // The best is one of the three validated images: 4 more presentations.
  EXPECT_GE(result->session.best_measured().presentations(), 5);
  EXPECT_NE(result->session.best_measured().stimulus().origin(), "validation")
      << "best_measured names the stimulus that first showed the image";
  EXPECT_GT(result->best_true_fraction, 0.0);
  EXPECT_FALSE(std::isnan(result->best_true_fraction_before_validation));
}

TEST(ClosedLoopTest, SameSeedAndResponsesGiveIdenticalStimuli) {
  auto server = StartTestServer("determinism");
  ASSERT_NE(server, nullptr);
  auto client = ConnectTo(*server);
  std::vector<std::vector<std::string>> pngs(2);
  for (int run = 0; run < 2; ++run) {
    SimulatedRig rig = MakeRig(5);
    auto session = client->CreateSession(SmallConfig(5));
    ASSERT_TRUE(session.ok());
    for (int g = 0; g < 6; ++g) {
      auto batch = client->NextStimuli(session->id(), 0);
      ASSERT_TRUE(batch.ok());
      std::vector<v1::Response> responses;
      for (const auto& s : batch->stimuli()) {
        pngs[run].push_back(s.png());
        auto rates = rig.Measure(s.png());
        ASSERT_TRUE(rates.ok());
        v1::Response r;
        r.set_stimulus_id(s.id());
        r.mutable_rates()->Add(rates->begin(), rates->end());
        responses.push_back(r);
      }
      ASSERT_TRUE(client->ReportResponses(session->id(), "g" + std::to_string(g), responses).ok());
    }
  }
  ASSERT_EQ(pngs[0].size(), 60u);
  EXPECT_EQ(pngs[0], pngs[1]);
}

TEST(ClosedLoopTest, RetriedReportCountsOnce) {
  auto server = StartTestServer("retry");
  ASSERT_NE(server, nullptr);
  auto client = ConnectTo(*server);
  auto session = client->CreateSession(SmallConfig());
  ASSERT_TRUE(session.ok());
  auto batch = client->NextStimuli(session->id(), 2);
  ASSERT_TRUE(batch.ok());
  v1::Response r;
  r.set_stimulus_id(batch->stimuli(0).id());
  r.add_rates(12);
  auto first = client->ReportResponses(session->id(), "trial-1", {r});
  auto again = client->ReportResponses(session->id(), "trial-1", {r});
  ASSERT_TRUE(first.ok() && again.ok());
  EXPECT_FALSE(first->duplicate());
  EXPECT_TRUE(again->duplicate());
  EXPECT_EQ(again->counts().responses(), 1);
  auto now = client->GetSession(session->id());
  EXPECT_EQ(now->counts().responses(), 1);
  EXPECT_EQ(now->counts().pending(), 1);  // the second stimulus
}

TEST(ClosedLoopTest, RepeatedPresentationsAreAveraged) {
  auto server = StartTestServer("repeats");
  ASSERT_NE(server, nullptr);
  auto client = ConnectTo(*server);
  auto session = client->CreateSession(SmallConfig());
  ASSERT_TRUE(session.ok());
  auto batch = client->NextStimuli(session->id(), 0);
  ASSERT_TRUE(batch.ok());
  std::vector<v1::Response> responses;
  for (double rate : {10.0, 20.0, 60.0}) {
    v1::Response r;
    r.set_stimulus_id(batch->stimuli(3).id());
    r.add_rates(rate);
    responses.push_back(r);
  }
  ASSERT_TRUE(client->ReportResponses(session->id(), "repeats", responses).ok());
  auto now = client->GetSession(session->id());
  ASSERT_TRUE(now.ok());
  EXPECT_EQ(now->best_measured().stimulus().id(), batch->stimuli(3).id());
  EXPECT_DOUBLE_EQ(now->best_measured().mean_objective(), 30.0);
  EXPECT_EQ(now->best_measured().presentations(), 3);
}

TEST(ClosedLoopTest, HealthServiceAndSessionListAnswer) {
  auto server = StartTestServer("health");
  ASSERT_NE(server, nullptr);
  auto channel = grpc::CreateChannel(server->address(), grpc::InsecureChannelCredentials());
  auto health = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  ASSERT_TRUE(health->Check(&context, request, &response).ok());
  EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);

  auto client = ConnectTo(*server);
  auto a = client->CreateSession(SmallConfig(1));
  auto b = client->CreateSession(SmallConfig(2));
  ASSERT_TRUE(a.ok() && b.ok());
  auto list = client->ListSessions();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->sessions_size(), 2);
  EXPECT_EQ(list->sessions(0).id(), b->id());  // newest first
  EXPECT_EQ(list->sessions(1).id(), a->id());
}

// A gradient_ascent session asks for its next generation in the background
// (server/session.h, "Proposing ahead"); SIGTERM during that Ask cancels it
// and the server exits 0 at once instead of finishing the ascent.
TEST(ClosedLoopTest, ServerStopsPromptlyWhileTheNextGenerationIsAskedAhead) {
  auto server = StartTestServer("stop-during-ask");
  ASSERT_NE(server, nullptr);
  auto client = ConnectTo(*server);
  ASSERT_NE(client, nullptr);
  SimulatedRig rig = MakeRig(4);
  v1::SessionConfig config = SmallConfig(4);
  config.mutable_optimizer()->set_name("gradient_ascent");
  // 10,000 steps of 40 images: minutes on a CPU.
  (*config.mutable_optimizer()->mutable_params())["steps"] = 10000;
  config.set_generation_size(40);
  // The first refit (80 responses) is requested when generation 3 is
  // committed; generation 4's Ask waits for it (lag 1), then ascends.
  (*config.mutable_surrogate()->mutable_params())["refit_every"] = 80;
  auto session = client->CreateSession(config);
  ASSERT_TRUE(session.ok()) << session.status();
  ClosedLoopOptions options;
  options.responses = 120;  // generations 1-3, all proposed from the prior
  auto result = RunClosedLoop(*client, rig, session->id(), 0, options);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->session.counts().generations(), 3);

  absl::SleepFor(absl::Seconds(5));  // the refit on 80 trials ends; the ascent runs
  auto stopped = server->Stop(absl::Seconds(60));
  ASSERT_TRUE(stopped.ok()) << stopped.status();
  EXPECT_EQ(*stopped, 0) << "graceful shutdown should exit 0";
}

}  // namespace
}  // namespace stimloop
