// The content digest of a report (ReportResponses), stored with its
// request_id so that a retry can be told from a reused request_id: a retry
// with the same content gets the stored acknowledgement back, other content
// under a known request_id is an error (Session::Report).
//
// The digest is SHA-256 (OpenSSL libcrypto) over a canonical encoding of the
// responses, in report order, all integers little-endian:
//   u64 number of responses, then for each response
//   u64 length of stimulus_id, its bytes, u8 skipped (0 or 1),
//   u64 number of rates, each rate as the u64 of its IEEE-754 bits (-0 as +0).
// It depends on the values only, never on how the client serialized them,
// and is the same on every platform (server/store_schema.md documents it for
// readers of reports.content_digest).
#ifndef STIMLOOP_SERVER_REPORT_DIGEST_H_
#define STIMLOOP_SERVER_REPORT_DIGEST_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "server/session_journal.h"
#include "stimloop/v1/stimloop.pb.h"

namespace stimloop {

// Bytes in a digest.
inline constexpr size_t kReportDigestSize = 32;

// The digest (kReportDigestSize raw bytes) of a report's responses: as
// received, and as journaled. Both give the same bytes for the same content.
// INTERNAL only when libcrypto fails (out of memory).
absl::StatusOr<std::string> ReportDigest(
    const google::protobuf::RepeatedPtrField<v1::Response>& responses);
absl::StatusOr<std::string> ReportDigest(absl::Span<const ResponseEntry> responses);

}  // namespace stimloop

#endif  // STIMLOOP_SERVER_REPORT_DIGEST_H_
