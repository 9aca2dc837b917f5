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
    const std::string message(session.status().message());
    EXPECT_EQ(session.status().code(), absl::StatusCode::kInvalidArgument) << message;
    EXPECT_THAT(message, HasSubstr(field));
    EXPECT_LT(message.size(), 400u) << "an error echoes client input uncut";
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

// Issue 26, 3: only the id the server wrote names a stimulus; a sequence
// with a sign, space or leading zero used to pass the id check and fail in
// the store ("FOREIGN KEY constraint failed").
TEST_F(ValidationTest, NonCanonicalStimulusIdsAreNotFound) {
  v1::StimulusBatch batch;
  const std::string id = OpenSessionWithStimuli(&batch);
  ASSERT_EQ(batch.stimuli(0).id(), id + "-1");
  const std::vector<std::string> sequences = {
      "01", "+1", " 1", "1 ", "-1", "1\n", "\t1", "1.0", "0x1", "0001", "", "0",
      "1" + std::string(40, '0')};
  for (const std::string& sequence : sequences) {
    SCOPED_TRACE("sequence '" + sequence + "'");
    ExpectReportRejected(id, {Rates(id + "-" + sequence, {1})}, absl::StatusCode::kNotFound,
                         "responses[0].stimulus_id: '" + id + "-");
    ExpectReportRejected(id, {Rates(id + "-1", {1}), Rates(id + "-" + sequence, {1})},
                         absl::StatusCode::kNotFound, "responses[1].stimulus_id");
  }
  auto ack = client_->ReportResponses(id, "canonical", {Rates(id + "-1", {1})});
  ASSERT_TRUE(ack.ok()) << ack.status();
  EXPECT_EQ(ack->counts().responses(), 1);
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

// Issue 26, 1: rates and weights have ranges in which no objective, sum or
// mean can overflow. Two presentations at 1e308, or weights [1, 1] with
// rates [1e308, 1e308], used to make a pooled mean inf: every later
// NextStimuli failed with INTERNAL.
TEST_F(ValidationTest, RatesAndWeightsThatCouldOverflowAreInvalidAndTheSessionGoesOn) {
  v1::StimulusBatch batch;
  const std::string id = OpenSessionWithStimuli(&batch);
  const std::string first = batch.stimuli(0).id();
  ExpectReportRejected(id, {Rates(first, {1e308}), Rates(first, {1e308})},
                       absl::StatusCode::kInvalidArgument,
                       "responses[0].rates[0]: 1e+308 is above the maximum rate 1e+09");
  ExpectReportRejected(id, {Rates(first, {1}), Rates(first, {1.0000001e9})},
                       absl::StatusCode::kInvalidArgument,
                       "responses[1].rates[0]: 1000000100 is above the maximum rate 1e+09");
  // The largest rate twice, and the rest of the generation: the session goes on.
  std::vector<v1::Response> responses = {Rates(first, {1e9}), Rates(first, {1e9})};
  for (int i = 1; i < batch.stimuli_size(); ++i) {
    responses.push_back(Rates(batch.stimuli(i).id(), {1}));
  }
  auto ack = client_->ReportResponses(id, "largest", responses);
  ASSERT_TRUE(ack.ok()) << ack.status();
  auto next = client_->NextStimuli(id, 0);
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->generation(), 2);
  auto session = client_->GetSession(id);
  ASSERT_TRUE(session.ok());
  EXPECT_EQ(session->best_measured().mean_objective(), 1e9);

  v1::SessionConfig config = SmallConfig();
  config.set_num_neurons(2);
  config.mutable_objective()->mutable_weighted_sum()->add_weights(1);
  config.mutable_objective()->mutable_weighted_sum()->add_weights(1);
  auto weighted = client_->CreateSession(config);
  ASSERT_TRUE(weighted.ok()) << weighted.status();
  auto shown = client_->NextStimuli(weighted->id(), 0);
  ASSERT_TRUE(shown.ok());
  ExpectReportRejected(weighted->id(), {Rates(shown->stimuli(0).id(), {1e308, 1e308})},
                       absl::StatusCode::kInvalidArgument,
                       "responses[0].rates[0]: 1e+308 is above the maximum rate");
  ack = client_->ReportResponses(weighted->id(), "r", {Rates(shown->stimuli(0).id(), {1e9, 1e9})});
  ASSERT_TRUE(ack.ok()) << ack.status();

  config.mutable_objective()->mutable_weighted_sum()->set_weights(1, -2e6);
  ExpectCreateRejected(
      config, "config.objective.weighted_sum.weights[1]: -2e+06 is outside [-1e+06, 1e+06]");
  config.mutable_objective()->mutable_population_control()->set_others_weight(1.5e6);
  ExpectCreateRejected(config,
                       "config.objective.population_control.others_weight: 1.5e+06 must be finite "
                       "and in [0, 1e+06]");
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

// Issue 26, 6: a field the chosen optimizer, image space or setting never
// reads used to be accepted silently (a model_path with genetic, a
// generator_path with spectral).
TEST_F(ValidationTest, FieldsTheSessionWouldNotUseAreInvalid) {
  for (const std::string optimizer : {"random", "genetic", "cmaes"}) {
    SCOPED_TRACE(optimizer);
    v1::SessionConfig config = SmallConfig();
    config.mutable_optimizer()->set_name(optimizer);
    config.mutable_surrogate()->set_model_path("/models/v4.pt");
    ExpectCreateRejected(config, "config.surrogate.model_path: set, but optimizer '" +
                                     optimizer +
                                     "' uses no surrogate (gradient_ascent and "
                                     "adaptive_sampling do); leave it empty");
    config.mutable_surrogate()->Clear();
    config.mutable_surrogate()->set_frontend_path("/models/frontend.pt");
    ExpectCreateRejected(config, "config.surrogate.frontend_path: set, but optimizer '" +
                                     optimizer + "' uses no surrogate");
    config.mutable_surrogate()->Clear();
    (*config.mutable_surrogate()->mutable_params())["refit_every"] = 40;
    (*config.mutable_surrogate()->mutable_params())["ensemble_size"] = 3;
    ExpectCreateRejected(config, "config.surrogate.params.ensemble_size: set, but optimizer '" +
                                     optimizer + "' uses no surrogate");
    config.mutable_surrogate()->Clear();
    config.mutable_optimizer()->set_candidate_pool_dir("/images");
    ExpectCreateRejected(config, "config.optimizer.candidate_pool_dir: set, but optimizer '" +
                                     optimizer +
                                     "' reads no candidate pool (adaptive_sampling does)");
  }
  for (const std::string space : {"spectral", "pixel"}) {
    v1::SessionConfig config = SmallConfig();
    config.mutable_image_space()->set_name(space);
    config.mutable_image_space()->set_generator_path("/models/generator.pt");
    ExpectCreateRejected(config, "config.image_space.generator_path: set, but image space '" +
                                     space + "' uses no generator (torchscript does)");
  }
  v1::SessionConfig config = SmallConfig();
  config.mutable_reference_images()->set_dir("/images");
  ExpectCreateRejected(
      config, "config.reference_images.dir: set, but reference_images.per_generation is 0");
  // An unknown name is reported as such, not as a field it would not use.
  config = SmallConfig();
  config.mutable_optimizer()->set_name("annealing");
  config.mutable_surrogate()->set_model_path("/models/v4.pt");
  ExpectCreateRejected(config, "config.optimizer.name: unknown optimizer 'annealing'");
}

// Issue 26, 6: a request gRPC cannot parse (invalid UTF-8 in a proto3
// string) got INTERNAL with an empty message. gRPC parses before the server
// sees the request, so the field cannot be named (server/unparsed_request.h);
// the answer says what is wrong instead.
TEST_F(ValidationTest, InvalidUtf8InAStringIsInvalidArgument) {
  const std::string invalid = "caf\xe9";  // Latin-1, not UTF-8
  auto get = client_->GetSession(invalid);
  ASSERT_FALSE(get.ok());
  EXPECT_EQ(get.status().code(), absl::StatusCode::kInvalidArgument) << get.status();
  EXPECT_EQ(std::string(get.status().message()),
            "GetSession: the request is not a valid stimloop.v1.GetSessionRequest: a string "
            "field holds invalid UTF-8 (proto3 strings must be UTF-8; the server log names the "
            "field), or the bytes are not that message");

  v1::StimulusBatch batch;
  const std::string id = OpenSessionWithStimuli(&batch);
  ExpectReportRejected(id, {Rates(batch.stimuli(0).id() + invalid, {1})},
                       absl::StatusCode::kInvalidArgument,
                       "ReportResponses: the request is not a valid "
                       "stimloop.v1.ReportResponsesRequest: a string field holds invalid UTF-8");
  v1::SessionConfig config = SmallConfig();
  (*config.mutable_metadata())["subject"] = invalid;
  ExpectCreateRejected(config, "CreateSession: the request is not a valid "
                               "stimloop.v1.CreateSessionRequest: a string field holds invalid");
  // The session is unchanged and goes on.
  auto ack = client_->ReportResponses(id, "after", {Rates(batch.stimuli(0).id(), {1})});
  ASSERT_TRUE(ack.ok()) << ack.status();
  EXPECT_EQ(ack->counts().responses(), 1);
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

// Issue 26, 4: a value the client sent comes back in an error message cut to
// 64 characters and escaped, never whole (a 1 MB session id used to come
// back in full, which the client's metadata limit turned into
// RESOURCE_EXHAUSTED).
TEST_F(ValidationTest, EchoedValuesAreCappedAndPrintable) {
  const std::string huge(1 << 20, 's');
  const std::string cut = std::string(64, 's') + "...' (1048576 bytes)";
  auto get = client_->GetSession(huge);
  ASSERT_FALSE(get.ok());
  const std::string message(get.status().message());
  EXPECT_EQ(get.status().code(), absl::StatusCode::kNotFound) << message.substr(0, 300);
  EXPECT_EQ(message, "session_id: no session '" + cut);
  auto next = client_->NextStimuli(huge, 0);
  EXPECT_EQ(next.status().code(), absl::StatusCode::kNotFound);
  EXPECT_LT(next.status().message().size(), 200u);

  v1::StimulusBatch batch;
  const std::string id = OpenSessionWithStimuli(&batch);
  ExpectReportRejected(id, {Rates(huge, {1})}, absl::StatusCode::kNotFound,
                       "responses[0].stimulus_id: '" + cut + " is not a stimulus of session");
  ExpectReportRejected(id, {Rates(id + "-1\x01\n", {1})}, absl::StatusCode::kNotFound,
                       "responses[0].stimulus_id: '" + id + "-1\\x01\\n' is not a stimulus");

  v1::SessionConfig config = SmallConfig();
  config.mutable_optimizer()->set_name(huge);
  ExpectCreateRejected(config, "config.optimizer.name: unknown optimizer '" + cut + " (known:");
  config = SmallConfig();
  (*config.mutable_optimizer()->mutable_params())[huge] = 1;
  ExpectCreateRejected(config, "config.optimizer.params." + std::string(64, 's') +
                                   "... (1048576 bytes): unknown parameter");
  config = SmallConfig();
  (*config.mutable_metadata())[huge] = "v";
  ExpectCreateRejected(config, "config.metadata['" + cut + "]: keys are 1..64");
  config = SmallConfig();
  config.mutable_image_space()->set_name(huge);
  ExpectCreateRejected(config, "config.image_space.name: unknown image space '" + cut);
}

}  // namespace
}  // namespace stimloop
