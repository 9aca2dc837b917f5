// Every class of bad input gets the documented status code and a message
// naming the field, and leaves the session unchanged. Runs against the real
// server binary.
#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/integration/test_server.h"

namespace stimloop {
namespace {

using ::testing::HasSubstr;

class ValidationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = StartTestServer("validation").release();
    ASSERT_NE(server_, nullptr);
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(server_, nullptr);
    client_ = ConnectTo(*server_);
    ASSERT_NE(client_, nullptr);
  }

  // A session with one generation handed out.
  std::string OpenSessionWithStimuli(v1::StimulusBatch* batch) {
    auto session = client_->CreateSession(SmallConfig());
    EXPECT_TRUE(session.ok()) << session.status();
    auto next = client_->NextStimuli(session->id(), 0);
    EXPECT_TRUE(next.ok()) << next.status();
    *batch = *next;
    return session->id();
  }

  static v1::Response Rates(const std::string& id, std::vector<double> rates) {
    v1::Response r;
    r.set_stimulus_id(id);
    r.mutable_rates()->Add(rates.begin(), rates.end());
    return r;
  }

  void ExpectCreateRejected(const v1::SessionConfig& config, const std::string& field) {
    auto session = client_->CreateSession(config);
    ASSERT_FALSE(session.ok());
    EXPECT_EQ(session.status().code(), absl::StatusCode::kInvalidArgument) << session.status();
    EXPECT_THAT(std::string(session.status().message()), HasSubstr(field));
  }

  void ExpectReportRejected(const std::string& session_id, std::vector<v1::Response> responses,
                            absl::StatusCode code, const std::string& message) {
    auto before = client_->GetSession(session_id);
    ASSERT_TRUE(before.ok());
    auto ack = client_->ReportResponses(session_id, "bad-report", responses);
    ASSERT_FALSE(ack.ok());
    EXPECT_EQ(ack.status().code(), code) << ack.status();
    EXPECT_THAT(std::string(ack.status().message()), HasSubstr(message));
    auto after = client_->GetSession(session_id);
    ASSERT_TRUE(after.ok());
    EXPECT_EQ(after->counts().DebugString(), before->counts().DebugString())
        << "a rejected report changed the session";
  }

  static ServerProcess* server_;
  std::unique_ptr<RigClient> client_;
};

ServerProcess* ValidationTest::server_ = nullptr;

TEST_F(ValidationTest, UnknownSessionIsNotFound) {
  auto batch = client_->NextStimuli("no-such-session", 0);
  ASSERT_FALSE(batch.ok());
  EXPECT_EQ(batch.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(batch.status().message()), HasSubstr("session_id"));
  EXPECT_THAT(std::string(batch.status().message()), HasSubstr("no-such-session"));
  auto get = client_->GetSession("no-such-session");
  EXPECT_EQ(get.status().code(), absl::StatusCode::kNotFound);
  auto close = client_->CloseSession("no-such-session");
  EXPECT_EQ(close.status().code(), absl::StatusCode::kNotFound);
  auto report = client_->ReportResponses("no-such-session", "r1", {Rates("x", {1})});
  EXPECT_EQ(report.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ValidationTest, UnknownStimulusIsNotFound) {
  v1::StimulusBatch batch;
  const std::string id = OpenSessionWithStimuli(&batch);
  ExpectReportRejected(id, {Rates(id + "-999999", {1})}, absl::StatusCode::kNotFound,
                       "responses[0].stimulus_id");
  ExpectReportRejected(id, {Rates("garbage", {1})}, absl::StatusCode::kNotFound,
                       "is not a stimulus of session");
}

TEST_F(ValidationTest, StimulusOfAnotherSessionIsNotFound) {
  v1::StimulusBatch first, second;
  const std::string a = OpenSessionWithStimuli(&first);
  const std::string b = OpenSessionWithStimuli(&second);
  ExpectReportRejected(a, {Rates(second.stimuli(0).id(), {1})}, absl::StatusCode::kNotFound,
                       "is not a stimulus of session '" + a + "'");
}

TEST_F(ValidationTest, WrongNumberOfRatesIsInvalid) {
  v1::StimulusBatch batch;
  const std::string id = OpenSessionWithStimuli(&batch);
  ExpectReportRejected(id, {Rates(batch.stimuli(0).id(), {1, 2})},
                       absl::StatusCode::kInvalidArgument,
                       "responses[0].rates: has 2 values, expected num_neurons = 1");
  ExpectReportRejected(id, {Rates(batch.stimuli(0).id(), {})},
                       absl::StatusCode::kInvalidArgument, "responses[0].rates: has 0 values");
}

TEST_F(ValidationTest, NanRateIsInvalid) {
  v1::StimulusBatch batch;
  const std::string id = OpenSessionWithStimuli(&batch);
  ExpectReportRejected(id,
                       {Rates(batch.stimuli(0).id(), {3}),
                        Rates(batch.stimuli(1).id(), {std::nan("")})},
                       absl::StatusCode::kInvalidArgument, "responses[1].rates[0]: nan");
}

TEST_F(ValidationTest, InfiniteRateIsInvalid) {
  v1::StimulusBatch batch;
  const std::string id = OpenSessionWithStimuli(&batch);
  ExpectReportRejected(id,
                       {Rates(batch.stimuli(0).id(), {std::numeric_limits<double>::infinity()})},
                       absl::StatusCode::kInvalidArgument, "must be finite and non-negative");
}

TEST_F(ValidationTest, NegativeRateIsInvalid) {
  v1::StimulusBatch batch;
  const std::string id = OpenSessionWithStimuli(&batch);
  ExpectReportRejected(id, {Rates(batch.stimuli(0).id(), {-0.5})},
                       absl::StatusCode::kInvalidArgument, "responses[0].rates[0]: -0.5");
}

TEST_F(ValidationTest, SkippedResponseWithRatesIsInvalid) {
  v1::StimulusBatch batch;
  const std::string id = OpenSessionWithStimuli(&batch);
  v1::Response response = Rates(batch.stimuli(0).id(), {1});
  response.set_skipped(true);
  ExpectReportRejected(id, {response}, absl::StatusCode::kInvalidArgument,
                       "a skipped response carries no rates");
}

TEST_F(ValidationTest, EmptyReportAndRequestIdAreInvalid) {
  v1::StimulusBatch batch;
  const std::string id = OpenSessionWithStimuli(&batch);
  ExpectReportRejected(id, {}, absl::StatusCode::kInvalidArgument, "responses: 0 responses");
  auto ack = client_->ReportResponses(id, "", {Rates(batch.stimuli(0).id(), {1})});
  ASSERT_FALSE(ack.ok());
  EXPECT_EQ(ack.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(ack.status().message()), HasSubstr("request_id"));
}

TEST_F(ValidationTest, StimulusNotHandedOutIsFailedPrecondition) {
  auto session = client_->CreateSession(SmallConfig());
  ASSERT_TRUE(session.ok());
  auto one = client_->NextStimuli(session->id(), 1);
  ASSERT_TRUE(one.ok());
  ASSERT_EQ(one->stimuli_size(), 1);
  // The second stimulus of the generation exists but was not handed out.
  ExpectReportRejected(session->id(), {Rates(session->id() + "-2", {1})},
                       absl::StatusCode::kFailedPrecondition, "has not been handed out");
}

TEST_F(ValidationTest, MaxCountOutOfRangeIsInvalid) {
  auto session = client_->CreateSession(SmallConfig());
  ASSERT_TRUE(session.ok());
  for (int bad : {-1, 1001}) {
    auto batch = client_->NextStimuli(session->id(), bad);
    ASSERT_FALSE(batch.ok());
    EXPECT_EQ(batch.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(batch.status().message()), HasSubstr("max_count"));
  }
  auto after = client_->GetSession(session->id());
  EXPECT_EQ(after->counts().stimuli(), 0);
}

TEST_F(ValidationTest, ImageSizeOutOfRangeIsInvalid) {
  v1::SessionConfig config = SmallConfig();
  config.mutable_image()->set_height(8);
  ExpectCreateRejected(config, "config.image.height: 8 is outside [16, 512]");
  config = SmallConfig();
  config.mutable_image()->set_width(513);
  ExpectCreateRejected(config, "config.image.width: 513");
  config = SmallConfig();
  config.mutable_image()->set_channels(2);
  ExpectCreateRejected(config, "config.image.channels: 2");
  config = SmallConfig();
  config.clear_image();
  ExpectCreateRejected(config, "config.image: required");
}

TEST_F(ValidationTest, CountsOutOfRangeAreInvalid) {
  v1::SessionConfig config = SmallConfig();
  config.set_num_neurons(0);
  ExpectCreateRejected(config, "config.num_neurons: 0");
  config = SmallConfig();
  config.set_generation_size(5000);
  ExpectCreateRejected(config, "config.generation_size: 5000");
  config = SmallConfig();
  config.mutable_objective()->mutable_single_neuron()->set_index(3);
  ExpectCreateRejected(config, "config.objective.single_neuron.index: 3");
  config = SmallConfig();
  config.mutable_objective()->mutable_weighted_sum()->add_weights(1);
  config.mutable_objective()->mutable_weighted_sum()->add_weights(1);
  ExpectCreateRejected(config, "config.objective.weighted_sum.weights");
}

TEST_F(ValidationTest, UnknownOptimizerIsInvalid) {
  v1::SessionConfig config = SmallConfig();
  config.mutable_optimizer()->set_name("simulated_annealing");
  ExpectCreateRejected(config, "config.optimizer.name: unknown optimizer 'simulated_annealing'");
}

TEST_F(ValidationTest, NamedOptimizerNeedsAnImageSpace) {
  v1::SessionConfig config = SmallConfig();
  config.mutable_image_space()->set_name("");
  ExpectCreateRejected(config, "config.image_space.name: required when an optimizer is named");
}

// CreateSession with only the image format and the number of neurons runs
// the default strategy, with its defaults written into the stored config.
TEST_F(ValidationTest, NoOptimizerRunsTheDefaultStrategy) {
  v1::SessionConfig config;
  config.mutable_image()->set_height(32);
  config.mutable_image()->set_width(32);
  config.set_num_neurons(1);
  auto session = client_->CreateSession(config);
  ASSERT_TRUE(session.ok()) << session.status();
  EXPECT_EQ(session->config().optimizer().name(), "portfolio");
  EXPECT_EQ(session->config().image_space().name(), "spectral");
  EXPECT_EQ(session->config().repeats().per_generation(), 4);
  auto next = client_->NextStimuli(session->id(), 0);
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->stimuli_size(), 40);
}

TEST_F(ValidationTest, UnknownImageSpaceIsInvalid) {
  v1::SessionConfig config = SmallConfig();
  config.mutable_image_space()->set_name("wavelet");
  ExpectCreateRejected(config, "config.image_space.name");
}

TEST_F(ValidationTest, OptimizerParametersAreChecked) {
  v1::SessionConfig config = SmallConfig();
  (*config.mutable_optimizer()->mutable_params())["no_such_parameter"] = 1;
  ExpectCreateRejected(config, "config.optimizer.params.no_such_parameter: unknown parameter");
  config = SmallConfig();
  (*config.mutable_optimizer()->mutable_params())["mutation_rate"] = 7;
  ExpectCreateRejected(config, "config.optimizer.params.mutation_rate: 7");
}

TEST_F(ValidationTest, ClosedSessionRefusesWork) {
  v1::StimulusBatch batch;
  const std::string id = OpenSessionWithStimuli(&batch);
  auto closed = client_->CloseSession(id);
  ASSERT_TRUE(closed.ok()) << closed.status();
  EXPECT_EQ(closed->status(), v1::SESSION_STATUS_CLOSED);
  ExpectReportRejected(id, {Rates(batch.stimuli(0).id(), {1})},
                       absl::StatusCode::kFailedPrecondition, "is closed");
  auto next = client_->NextStimuli(id, 0);
  ASSERT_FALSE(next.ok());
  EXPECT_EQ(next.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(next.status().message()), HasSubstr("is closed"));
}

TEST_F(ValidationTest, RejectedReportLeavesSessionUsable) {
  v1::StimulusBatch batch;
  const std::string id = OpenSessionWithStimuli(&batch);
  // One good and one bad response: nothing is taken.
  ExpectReportRejected(id,
                       {Rates(batch.stimuli(0).id(), {5}), Rates(batch.stimuli(1).id(), {-1})},
                       absl::StatusCode::kInvalidArgument, "responses[1].rates[0]");
  auto ack = client_->ReportResponses(id, "good", {Rates(batch.stimuli(0).id(), {5})});
  ASSERT_TRUE(ack.ok()) << ack.status();
  EXPECT_EQ(ack->counts().responses(), 1);
}

}  // namespace
}  // namespace stimloop
