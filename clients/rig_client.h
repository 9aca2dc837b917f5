// A C++ client for stimloop.v1.StimLoop, the template for connecting a rig.
// Every call has a deadline; ReportResponses retries transient failures
// (UNAVAILABLE, DEADLINE_EXCEEDED) with the same request_id, which the server
// counts once. Errors come back as absl::Status with the server's code and
// message. Thread-compatible: one client per thread, or external locking.
//
// Replicas (several servers on one PostgreSQL store, README "Running several
// servers"): with `replicas`, every call that the server answers with the
// owner error (base/session_owner.h) is sent again to the owner's address,
// and every call that finds its server UNAVAILABLE is sent again to the
// next address, until `failover_timeout` (long enough for a dead owner's
// lease to expire). A report is resent with the same request_id, counted
// once. A NextStimuli whose server died before its reply arrived is asked
// again elsewhere: the stimuli it may have handed out stay answerable, but
// the rig never sees them (the next batch follows them).
#ifndef STIMLOOP_CLIENTS_RIG_CLIENT_H_
#define STIMLOOP_CLIENTS_RIG_CLIENT_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/session_owner.h"
#include "stimloop/v1/stimloop.grpc.pb.h"

namespace stimloop {

struct RigClientOptions {
  std::string address = "127.0.0.1:50051";
  absl::Duration connect_timeout = absl::Seconds(10);
  absl::Duration call_timeout = absl::Seconds(30);
  int report_attempts = 5;                          // ReportResponses tries
  absl::Duration retry_backoff = absl::Milliseconds(200);  // doubled per retry
  // TLS: PEM root certificate to trust; empty for a plaintext loopback server.
  std::string tls_root_cert_pem;
  // Bearer token sent on every call when non-empty.
  std::string auth_token;
  // Other replicas of the same store, tried after `address`; empty: one
  // server, no following.
  std::vector<std::string> replicas;
  // How long a call keeps following (owner errors, replicas down) before it
  // returns the last error.
  absl::Duration failover_timeout = absl::Seconds(30);
};

class RigClient {
 public:
  // Connects and waits until the channel is ready (UNAVAILABLE after
  // connect_timeout); with replicas, to the first address that answers.
  static absl::StatusOr<std::unique_ptr<RigClient>> Connect(const RigClientOptions& options);

  absl::StatusOr<v1::Session> CreateSession(const v1::SessionConfig& config);
  absl::StatusOr<v1::Session> GetSession(const std::string& session_id);
  absl::StatusOr<v1::ListSessionsResponse> ListSessions();
  absl::StatusOr<v1::Session> CloseSession(const std::string& session_id);
  // max_count 0: the rest of the current generation. With `validation`,
  // the new generation is that validation block (see ValidationBlock).
  absl::StatusOr<v1::StimulusBatch> NextStimuli(
      const std::string& session_id, int max_count,
      const std::optional<v1::ValidationBlock>& validation = std::nullopt);
  // The rest of the current generation (or a whole new one) as one batch:
  // NextStimuli(0) until `remaining` is 0, since a generation of large images
  // comes in several batches (NextStimuliRequest.max_count). Assumes this
  // client is the only one taking the session's stimuli meanwhile.
  absl::StatusOr<v1::StimulusBatch> NextGeneration(const std::string& session_id);
  // Retried with the same request_id on transient failures.
  absl::StatusOr<v1::ReportResponsesAck> ReportResponses(
      const std::string& session_id, const std::string& request_id,
      const std::vector<v1::Response>& responses);

  // The address calls go to now.
  const std::string& current_address() const { return current_; }

 private:
  RigClient(RigClientOptions options, std::string address,
            std::shared_ptr<grpc::Channel> channel);
  // A context with the call deadline and the auth token.
  std::unique_ptr<grpc::ClientContext> NewContext() const;
  // Sends later calls to `address`.
  void MoveTo(const std::string& address);
  // Runs `call` (stub, context, reply) -> grpc::Status, following the
  // session's owner and live replicas as the class comment says; with
  // `retry_transient`, also retries UNAVAILABLE / DEADLINE_EXCEEDED on one
  // server up to report_attempts times.
  template <typename Reply, typename Call>
  absl::StatusOr<Reply> Follow(Call call, bool retry_transient);

  RigClientOptions options_;
  std::vector<std::string> addresses_;  // address, then replicas
  std::string current_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::StimLoop::Stub> stub_;
};

// grpc::Status -> absl::Status with the same code and message.
absl::Status FromGrpc(const grpc::Status& status);

}  // namespace stimloop

#endif  // STIMLOOP_CLIENTS_RIG_CLIENT_H_
