#include "clients/rig_client.h"

#include <chrono>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"

namespace stimloop {

absl::Status FromGrpc(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

absl::StatusOr<std::unique_ptr<RigClient>> RigClient::Connect(const RigClientOptions& options) {
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (options.tls_root_cert_pem.empty()) {
    credentials = grpc::InsecureChannelCredentials();
  } else {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = options.tls_root_cert_pem;
    credentials = grpc::SslCredentials(ssl);
  }
  grpc::ChannelArguments arguments;
  arguments.SetMaxReceiveMessageSize(64 << 20);
  auto channel = grpc::CreateCustomChannel(options.address, credentials, arguments);
  const auto deadline =
      std::chrono::system_clock::now() + absl::ToChronoMilliseconds(options.connect_timeout);
  if (!channel->WaitForConnected(deadline)) {
    return absl::UnavailableError(absl::StrCat("cannot reach stimloop server at ",
                                               options.address, " within ",
                                               absl::FormatDuration(options.connect_timeout)));
  }
  return std::unique_ptr<RigClient>(new RigClient(options, std::move(channel)));
}

RigClient::RigClient(RigClientOptions options, std::shared_ptr<grpc::Channel> channel)
    : options_(std::move(options)),
      channel_(std::move(channel)),
      stub_(v1::StimLoop::NewStub(channel_)) {}

std::unique_ptr<grpc::ClientContext> RigClient::NewContext() const {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() +
                        absl::ToChronoMilliseconds(options_.call_timeout));
  if (!options_.auth_token.empty()) {
    context->AddMetadata("authorization", absl::StrCat("Bearer ", options_.auth_token));
  }
  return context;
}

absl::StatusOr<v1::Session> RigClient::CreateSession(const v1::SessionConfig& config) {
  v1::CreateSessionRequest request;
  *request.mutable_config() = config;
  v1::Session reply;
  auto context = NewContext();
  if (absl::Status s = FromGrpc(stub_->CreateSession(context.get(), request, &reply)); !s.ok()) {
    return s;
  }
  return reply;
}

absl::StatusOr<v1::Session> RigClient::GetSession(const std::string& session_id) {
  v1::GetSessionRequest request;
  request.set_session_id(session_id);
  v1::Session reply;
  auto context = NewContext();
  if (absl::Status s = FromGrpc(stub_->GetSession(context.get(), request, &reply)); !s.ok()) {
    return s;
  }
  return reply;
}

absl::StatusOr<v1::ListSessionsResponse> RigClient::ListSessions() {
  v1::ListSessionsResponse reply;
  auto context = NewContext();
  if (absl::Status s =
          FromGrpc(stub_->ListSessions(context.get(), v1::ListSessionsRequest(), &reply));
      !s.ok()) {
    return s;
  }
  return reply;
}

absl::StatusOr<v1::Session> RigClient::CloseSession(const std::string& session_id) {
  v1::CloseSessionRequest request;
  request.set_session_id(session_id);
  v1::Session reply;
  auto context = NewContext();
  if (absl::Status s = FromGrpc(stub_->CloseSession(context.get(), request, &reply)); !s.ok()) {
    return s;
  }
  return reply;
}

absl::StatusOr<v1::StimulusBatch> RigClient::NextStimuli(
    const std::string& session_id, int max_count,
    const std::optional<v1::ValidationBlock>& validation) {
  v1::NextStimuliRequest request;
  request.set_session_id(session_id);
  request.set_max_count(max_count);
  if (validation.has_value()) *request.mutable_validation() = *validation;
  v1::StimulusBatch reply;
  auto context = NewContext();
  if (absl::Status s = FromGrpc(stub_->NextStimuli(context.get(), request, &reply)); !s.ok()) {
    return s;
  }
  return reply;
}

absl::StatusOr<v1::StimulusBatch> RigClient::NextGeneration(const std::string& session_id) {
  auto generation = NextStimuli(session_id, 0);
  while (generation.ok() && generation->remaining() > 0) {
    auto more = NextStimuli(session_id, 0);
    if (!more.ok()) return more.status();
    for (v1::Stimulus& stimulus : *more->mutable_stimuli()) {
      *generation->add_stimuli() = std::move(stimulus);
    }
    generation->set_remaining(more->remaining());
  }
  return generation;
}

absl::StatusOr<v1::ReportResponsesAck> RigClient::ReportResponses(
    const std::string& session_id, const std::string& request_id,
    const std::vector<v1::Response>& responses) {
  v1::ReportResponsesRequest request;
  request.set_session_id(session_id);
  request.set_request_id(request_id);
  for (const v1::Response& r : responses) *request.add_responses() = r;

  absl::Duration backoff = options_.retry_backoff;
  absl::Status last;
  for (int attempt = 1; attempt <= options_.report_attempts; ++attempt) {
    v1::ReportResponsesAck reply;
    auto context = NewContext();
    last = FromGrpc(stub_->ReportResponses(context.get(), request, &reply));
    if (last.ok()) return reply;
    const bool transient = absl::IsUnavailable(last) || absl::IsDeadlineExceeded(last);
    if (!transient || attempt == options_.report_attempts) break;
    std::this_thread::sleep_for(absl::ToChronoMilliseconds(backoff));
    backoff *= 2;
  }
  return last;
}

}  // namespace stimloop
