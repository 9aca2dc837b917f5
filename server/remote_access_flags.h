// The server's security flags (--tls_cert, --tls_key, --auth_token_file,
// --auth_token), linked into the stimloop-server binary only. The policy they
// feed is in server/remote_access.h.
#ifndef STIMLOOP_SERVER_REMOTE_ACCESS_FLAGS_H_
#define STIMLOOP_SERVER_REMOTE_ACCESS_FLAGS_H_

#include <string>

#include "absl/status/statusor.h"
#include "server/remote_access.h"

namespace stimloop {

// MakeServerSecurity() for `listen` and the parsed security flags. Call
// after absl::ParseCommandLine.
absl::StatusOr<ServerSecurity> ServerSecurityFromFlags(const std::string& listen);

}  // namespace stimloop

#endif  // STIMLOOP_SERVER_REMOTE_ACCESS_FLAGS_H_
