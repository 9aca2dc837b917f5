// Who may reach the server: loopback by default, anything wider only with
// TLS and a bearer token (DESIGN.md, "Safe defaults").
//
// Policy, decided once at start from --listen and the security flags:
//   - A loopback address (127.0.0.0/8, [::1], localhost) may run plaintext.
//   - Any other address (0.0.0.0, [::], a hostname, a LAN IP, unix:...) needs
//     a TLS certificate and key AND a bearer token, or the server refuses to
//     start.
//   - A token is only accepted together with TLS, on any address: a bearer
//     token sent in plaintext can be read by anyone on the path.
//   - Whatever is configured is enforced, on loopback too.
//
// When a token is configured it is checked on every call of every service
// (StimLoop and reflection) except grpc.health.v1.Health, which stays open
// so that load balancers and orchestrators can probe liveness without the
// secret; it reveals only whether the server is serving.
#ifndef STIMLOOP_SERVER_REMOTE_ACCESS_H_
#define STIMLOOP_SERVER_REMOTE_ACCESS_H_

#include <map>
#include <memory>
#include <string>

#include <grpcpp/security/auth_metadata_processor.h>
#include <grpcpp/security/server_credentials.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace stimloop {

// True when `listen` ("HOST:PORT" as given to --listen; IPv6 hosts in
// brackets) binds only loopback interfaces: an IPv4 address in 127.0.0.0/8,
// the IPv6 loopback ::1 (also written out in full, or IPv4-mapped
// ::ffff:127.x.y.z), or the name "localhost". Everything else, including
// malformed addresses, is remote.
bool IsLoopbackListenAddress(absl::string_view listen);

// Compares two secrets in time that depends only on the length of
// `presented`, never on where the first difference lies or on the length of
// `expected`.
bool ConstantTimeEquals(absl::string_view presented, absl::string_view expected);

// Reads a bearer token from `path`: the file's content without surrounding
// whitespace. INVALID_ARGUMENT when the file cannot be read, is empty, or the
// token holds characters that cannot travel in an HTTP/2 header value
// (anything outside printable ASCII, or a space).
absl::StatusOr<std::string> ReadTokenFile(const std::string& path);

// Checks "authorization: Bearer <token>" on every call except the health
// service. Missing or wrong token: UNAUTHENTICATED. The authorization entry
// is consumed, so handlers never see the token. Thread-safe.
class BearerTokenProcessor : public grpc::AuthMetadataProcessor {
 public:
  explicit BearerTokenProcessor(std::string token) : token_(std::move(token)) {}

  // The check is a cheap comparison: run it on the call's own thread.
  bool IsBlocking() const override { return false; }

  grpc::Status Process(const InputMetadata& auth_metadata, grpc::AuthContext* context,
                       OutputMetadata* consumed_auth_metadata,
                       OutputMetadata* response_metadata) override;

 private:
  const std::string token_;
};

// The security flags of the server, as given.
struct RemoteAccessOptions {
  std::string listen;
  std::string tls_cert_file;    // PEM certificate chain
  std::string tls_key_file;     // PEM private key
  std::string auth_token_file;  // file holding the bearer token
  std::string auth_token;       // the token itself (visible in `ps`; tests)
};

// What to listen with.
struct ServerSecurity {
  std::shared_ptr<grpc::ServerCredentials> credentials;
  bool tls = false;
  bool token = false;
  // One line for the operator, e.g. "TLS, bearer token required".
  std::string Describe() const;
};

// Applies the policy above to `options`: the credentials to listen with, or
// FAILED_PRECONDITION (a remote address without TLS and a token, a token
// without TLS) or INVALID_ARGUMENT (a certificate without its key, both
// token flags, unreadable files) with a message for the operator that names
// the flags to add.
absl::StatusOr<ServerSecurity> MakeServerSecurity(const RemoteAccessOptions& options);

}  // namespace stimloop

#endif  // STIMLOOP_SERVER_REMOTE_ACCESS_H_
