// The checksum of every payload the session store keeps (LevelDB's rule:
// every record carries its checksum, and a mismatch is reported as
// corruption with its place, never returned as data).
//
// zlib's CRC-32 of the exact stored bytes, kept in an INTEGER column next to
// the payload (`<column>_crc32`, server/store_schema.md). It is the value of
// Python's zlib.crc32(blob), so notebooks can verify rows without stimloop.
// Shared by the store (server/session_store.cc) and the read-only store
// reader of the inspection tools (clients/inspect/store_reader.cc), so both
// report a damaged row in the same words.
#ifndef STIMLOOP_SERVER_STORE_CHECKSUM_H_
#define STIMLOOP_SERVER_STORE_CHECKSUM_H_

#include <zlib.h>

#include <cstdint>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace stimloop {

// CRC-32 (zlib, ISO-HDLC polynomial) of `bytes`.
inline uint32_t StoreChecksum(absl::string_view bytes) {
  return static_cast<uint32_t>(
      crc32_z(0, reinterpret_cast<const Bytef*>(bytes.data()), bytes.size()));
}

// OK when `recorded` is StoreChecksum(bytes). Otherwise DATA_LOSS
//   "<row>: stored <column> fails its checksum (crc32 …, recorded …)"
// or, when the row has no checksum (`recorded` empty),
//   "<row>: stored <column> has no checksum".
// `row` names the session and the row, e.g. "session 'abc' stimulus 17".
inline absl::Status VerifyStoredChecksum(absl::string_view row, absl::string_view column,
                                         absl::string_view bytes, std::optional<int64_t> recorded) {
  if (!recorded.has_value()) {
    return absl::DataLossError(absl::StrCat(row, ": stored ", column, " has no checksum"));
  }
  const uint32_t actual = StoreChecksum(bytes);
  if (*recorded == static_cast<int64_t>(actual)) return absl::OkStatus();
  return absl::DataLossError(
      absl::StrFormat("%s: stored %s fails its checksum (crc32 %08x, recorded %08x)", row, column,
                      actual, static_cast<uint32_t>(*recorded)));
}

}  // namespace stimloop

#endif  // STIMLOOP_SERVER_STORE_CHECKSUM_H_
