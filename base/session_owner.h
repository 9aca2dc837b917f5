// The error a replica answers for a session that another live replica owns
// (server/session_leases.h), in one place for the server that writes it
// and the clients that follow it:
//   FAILED_PRECONDITION
//   "session_id: session '<id>' is owned by replica '<replica id>' at
//    <host:port>; send its requests there"
#ifndef STIMLOOP_BASE_SESSION_OWNER_H_
#define STIMLOOP_BASE_SESSION_OWNER_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace stimloop {

// The error for a session owned by the live replica `owner` at `address`.
inline absl::Status OwnedElsewhereError(absl::string_view session_id, absl::string_view owner,
                                        absl::string_view address) {
  return absl::FailedPreconditionError(absl::StrCat("session_id: session '", session_id,
                                                    "' is owned by replica '", owner, "' at ",
                                                    address, "; send its requests there"));
}

// The owner's address in an OwnedElsewhereError's message; nullopt for any
// other message.
inline std::optional<std::string> OwnerAddressFromError(absl::string_view message) {
  constexpr absl::string_view kAt = "' at ";
  constexpr absl::string_view kEnd = "; send its requests there";
  if (message.find("' is owned by replica '") == absl::string_view::npos) return std::nullopt;
  const size_t end = message.rfind(kEnd);
  if (end == absl::string_view::npos) return std::nullopt;
  const size_t at = message.rfind(kAt, end);
  if (at == absl::string_view::npos) return std::nullopt;
  return std::string(message.substr(at + kAt.size(), end - at - kAt.size()));
}

}  // namespace stimloop

#endif  // STIMLOOP_BASE_SESSION_OWNER_H_
