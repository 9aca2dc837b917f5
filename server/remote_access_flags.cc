#include "server/remote_access_flags.h"

#include "absl/flags/flag.h"

ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain for TLS. Required, with --tls_key and a token, to listen on "
          "anything but loopback.");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert.");
ABSL_FLAG(std::string, auth_token_file, "",
          "File holding the bearer token every call must send as 'authorization: Bearer "
          "<token>' (surrounding whitespace ignored). Needs TLS. Keep the file readable by "
          "the server's user only.");
ABSL_FLAG(std::string, auth_token, "",
          "The bearer token itself, for tests. Risky: any user on this machine can read it "
          "from the process list (ps); prefer --auth_token_file.");

namespace stimloop {

absl::StatusOr<ServerSecurity> ServerSecurityFromFlags(const std::string& listen) {
  RemoteAccessOptions options;
  options.listen = listen;
  options.tls_cert_file = absl::GetFlag(FLAGS_tls_cert);
  options.tls_key_file = absl::GetFlag(FLAGS_tls_key);
  options.auth_token_file = absl::GetFlag(FLAGS_auth_token_file);
  options.auth_token = absl::GetFlag(FLAGS_auth_token);
  return MakeServerSecurity(options);
}

}  // namespace stimloop
