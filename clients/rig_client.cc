#include "clients/rig_client.h"

#include <algorithm>
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

namespace {

std::shared_ptr<grpc::Channel> MakeChannel(const RigClientOptions& options,
                                           const std::string& address) {
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
  return grpc::CreateCustomChannel(address, credentials, arguments);
}

}  // namespace

absl::StatusOr<std::unique_ptr<RigClient>> RigClient::Connect(const RigClientOptions& options) {
  std::vector<std::string> addresses = {options.address};
  addresses.insert(addresses.end(), options.replicas.begin(), options.replicas.end());
  const auto deadline =
      std::chrono::system_clock::now() + absl::ToChronoMilliseconds(options.connect_timeout);
  // Each address in turn until one is ready or the time is up.
  do {
    for (const std::string& address : addresses) {
      auto channel = MakeChannel(options, address);
      const auto wait = addresses.size() == 1
                            ? deadline
                            : std::min(deadline, std::chrono::system_clock::now() +
                                                     std::chrono::milliseconds(500));
      if (channel->WaitForConnected(wait)) {
        return std::unique_ptr<RigClient>(new RigClient(options, address, std::move(channel)));
      }
    }
  } while (std::chrono::system_clock::now() < deadline);
  return absl::UnavailableError(absl::StrCat(
      "cannot reach stimloop server at ", options.address,
      options.replicas.empty() ? "" : " or its replicas", " within ",
      absl::FormatDuration(options.connect_timeout)));
}

RigClient::RigClient(RigClientOptions options, std::string address,
                     std::shared_ptr<grpc::Channel> channel)
    : options_(std::move(options)),
      current_(std::move(address)),
      channel_(std::move(channel)),
      stub_(v1::StimLoop::NewStub(channel_)) {
  addresses_ = {options_.address};
  addresses_.insert(addresses_.end(), options_.replicas.begin(), options_.replicas.end());
}

void RigClient::MoveTo(const std::string& address) {
  current_ = address;
  channel_ = MakeChannel(options_, address);
  stub_ = v1::StimLoop::NewStub(channel_);
}

template <typename Reply, typename Call>
absl::StatusOr<Reply> RigClient::Follow(Call call, bool retry_transient) {
  const absl::Time deadline = absl::Now() + options_.failover_timeout;
  absl::Duration backoff = options_.retry_backoff;
  int attempts = 0;
  while (true) {
    Reply reply;
    auto context = NewContext();
    const absl::Status status = FromGrpc(call(stub_.get(), context.get(), &reply));
    if (status.ok()) return reply;
    ++attempts;
    const bool following = addresses_.size() > 1;
    if (auto owner = OwnerAddressFromError(status.message());
        following && owner.has_value() && absl::Now() < deadline) {
      // Another replica owns the session: go there. A dead owner answers
      // UNAVAILABLE, which moves on below until its lease expires and a
      // live replica takes the session over.
      if (*owner == current_) std::this_thread::sleep_for(absl::ToChronoMilliseconds(backoff));
      MoveTo(*owner);
      continue;
    }
    const bool transient =
        absl::IsUnavailable(status) || (retry_transient && absl::IsDeadlineExceeded(status));
    if (!transient) return status;
    if (following) {
      if (absl::Now() >= deadline) return status;
      // The next address after the current one (the current may be an
      // owner's address that is not in the list).
      auto it = std::find(addresses_.begin(), addresses_.end(), current_);
      MoveTo(it == addresses_.end() || it + 1 == addresses_.end() ? addresses_.front() : *(it + 1));
    } else if (!retry_transient || attempts >= options_.report_attempts) {
      return status;
    }
    std::this_thread::sleep_for(absl::ToChronoMilliseconds(backoff));
    backoff = std::min(backoff * 2, absl::Seconds(1));
  }
}

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
  return Follow<v1::Session>(
      [&](v1::StimLoop::Stub* stub, grpc::ClientContext* context, v1::Session* reply) {
        return stub->CreateSession(context, request, reply);
      },
      /*retry_transient=*/false);
}

absl::StatusOr<v1::Session> RigClient::GetSession(const std::string& session_id) {
  v1::GetSessionRequest request;
  request.set_session_id(session_id);
  return Follow<v1::Session>(
      [&](v1::StimLoop::Stub* stub, grpc::ClientContext* context, v1::Session* reply) {
        return stub->GetSession(context, request, reply);
      },
      /*retry_transient=*/false);
}

absl::StatusOr<v1::ListSessionsResponse> RigClient::ListSessions() {
  return Follow<v1::ListSessionsResponse>(
      [&](v1::StimLoop::Stub* stub, grpc::ClientContext* context,
          v1::ListSessionsResponse* reply) {
        return stub->ListSessions(context, v1::ListSessionsRequest(), reply);
      },
      /*retry_transient=*/false);
}

absl::StatusOr<v1::Session> RigClient::CloseSession(const std::string& session_id) {
  v1::CloseSessionRequest request;
  request.set_session_id(session_id);
  return Follow<v1::Session>(
      [&](v1::StimLoop::Stub* stub, grpc::ClientContext* context, v1::Session* reply) {
        return stub->CloseSession(context, request, reply);
      },
      /*retry_transient=*/false);
}

absl::StatusOr<v1::StimulusBatch> RigClient::NextStimuli(
    const std::string& session_id, int max_count,
    const std::optional<v1::ValidationBlock>& validation) {
  v1::NextStimuliRequest request;
  request.set_session_id(session_id);
  request.set_max_count(max_count);
  if (validation.has_value()) *request.mutable_validation() = *validation;
  return Follow<v1::StimulusBatch>(
      [&](v1::StimLoop::Stub* stub, grpc::ClientContext* context, v1::StimulusBatch* reply) {
        return stub->NextStimuli(context, request, reply);
      },
      /*retry_transient=*/false);
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

  return Follow<v1::ReportResponsesAck>(
      [&](v1::StimLoop::Stub* stub, grpc::ClientContext* context,
          v1::ReportResponsesAck* reply) { return stub->ReportResponses(context, request, reply); },
      /*retry_transient=*/true);
}

}  // namespace stimloop
