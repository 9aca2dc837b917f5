// The data directory's record that it holds a session store:
// <data_dir>/stimloop.marker, written once the store's schema is committed
// (and on the first open of a store made before markers existed). With it,
// a store file that later goes missing or is cut to 0 bytes is an error that
// names the file, not a silent fresh start that hides the lost sessions; the
// operator starts a new store only by asking for one (--new_store).
//
// A data directory without the marker is a first start: the store is
// created there as before.
#ifndef STIMLOOP_SERVER_SESSION_STORE_MARKER_H_
#define STIMLOOP_SERVER_SESSION_STORE_MARKER_H_

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace stimloop {

inline constexpr char kStoreMarkerFileName[] = "stimloop.marker";

// Whether the store file at `store_path` (in `data_dir`) may be opened, and
// created when missing or empty. OK when it holds data, or when it is
// missing or empty and either no marker is present (a first start) or
// `new_store` is set (the operator asked for a new, empty store).
// DATA_LOSS naming the file, the marker and --new_store when the marker is
// present and the file is missing or empty; FAILED_PRECONDITION when
// `new_store` is set but the file holds data (it is never overwritten) or
// its -wal file does (SQLite would replay it into the new store).
absl::Status CheckStoreFileExpected(const std::string& data_dir, const std::string& store_path,
                                    bool new_store);

// True when `data_dir` has the marker.
bool HasStoreMarker(const std::string& data_dir);

// Writes the marker (replacing one), with `now` in its text: to a temporary
// file, fsync'ed, renamed into place, then the directory fsync'ed.
absl::Status WriteStoreMarker(const std::string& data_dir, absl::Time now);

}  // namespace stimloop

#endif  // STIMLOOP_SERVER_SESSION_STORE_MARKER_H_
