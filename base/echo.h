// Client input quoted in an error message. Every message that repeats a
// value the client sent (a session id, stimulus id, request id, config
// name, key or path) passes it through Echo or QuotedEcho, so that a
// megabyte-long or binary value comes back short and printable: an error
// must fit the client's metadata limit (gRPC's default is 8 KiB for all
// headers together) and stay readable, or the client sees
// RESOURCE_EXHAUSTED or garbage instead of the error.
//
#ifndef STIMLOOP_BASE_ECHO_H_
#define STIMLOOP_BASE_ECHO_H_

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"

namespace stimloop {

// Most characters of a value an error message repeats, escapes included.
inline constexpr size_t kMaxEchoedChars = 64;

// `value` as printable ASCII: bytes 0x20..0x7e as they are, except '\\' and
// '\'' (escaped as \\ and \'); \n, \r and \t; every other byte as \xNN (so
// non-ASCII UTF-8 shows as its bytes). Cut at the last whole escape within
// kMaxEchoedChars characters; a cut value ends in "..." followed by
// " (<size> bytes)", its size before escaping.
std::string Echo(absl::string_view value);

// Echo in single quotes: "'abc'", or "'abc...' (1048576 bytes)" when cut.
std::string QuotedEcho(absl::string_view value);

}  // namespace stimloop

#endif  // STIMLOOP_BASE_ECHO_H_
