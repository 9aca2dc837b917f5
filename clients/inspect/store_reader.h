// Reads a stimloop session store into plain structs, for the inspection
// tools: the SQLite store (<data_dir>/stimloop.sqlite, written by
// server/session_store.h; Open) or a PostgreSQL store shared by replicas
// (server/pg_session_store.h; OpenPostgres, in pg_store_reader.cc).
//
// Verified: every payload read (config, png, rates) is checked against its
// stored CRC-32 (server/store_checksum.h) and a mismatch is DATA_LOSS naming
// the session and the row, "session 'abc' stimulus 17: stored png fails its
// checksum ...". Stores written before checksums (schema 1) are read
// unverified.
//
// Read-only: the file is opened with SQLITE_OPEN_READONLY and never written,
// so it may be read while a server runs on the same data directory (the
// store is in WAL mode: readers do not block the writer); a PostgreSQL
// connection reads in READ ONLY transactions. Each Load* call reads one
// consistent snapshot inside a single read transaction.
#ifndef STIMLOOP_CLIENTS_INSPECT_STORE_READER_H_
#define STIMLOOP_CLIENTS_INSPECT_STORE_READER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "stimloop/v1/stimloop.pb.h"

namespace stimloop {
namespace inspect {

// One row of `list`.
struct SessionSummary {
  std::string id;
  std::string status;  // "open" or "closed"
  absl::Time created;
  std::string optimizer;
  std::string image_space;
  std::string subject;  // config.metadata["subject"], empty when absent
  std::string site;     // config.metadata["site"], empty when absent
  int64_t generations = 0;
  int64_t stimuli = 0;
  int64_t responses = 0;  // presentations with rates
  int64_t skipped = 0;    // presentations reported as skipped
};

// Parses a stored (already checksum-verified) session config into `config`
// and copies its subject and site into `summary`; DATA_LOSS naming the
// session when it does not parse. For every StoreReader.
absl::Status ParseStoredConfig(const std::string& config_bytes, SessionSummary* summary,
                               v1::SessionConfig* config);

struct StoredStimulus {
  std::string id;
  int64_t sequence = 0;
  int64_t generation = 0;
  int64_t position = 0;
  std::string origin;
  bool is_reference = false;
  std::string png;  // the exact bytes shown
  int64_t model_version = 0;
  double predicted_objective = 0;  // NaN when no model predicted it
};

struct StoredResponse {
  int64_t seq = 0;  // journal order
  std::string stimulus_id;
  std::string request_id;
  absl::Time received;
  bool skipped = false;
  std::vector<double> rates;  // empty when skipped
};

struct StoredModelVersion {
  int64_t version = 0;
  absl::Time created;
  std::string metrics_json;
};

// Everything the tools need about one session.
struct SessionData {
  SessionSummary summary;
  v1::SessionConfig config;
  std::string config_json;                // as the server stored it
  std::vector<StoredStimulus> stimuli;    // by sequence
  std::vector<StoredResponse> responses;  // by journal order
  // By version; empty when none, or when the store has no model_versions
  // table.
  std::vector<StoredModelVersion> model_versions;
};

class StoreReader {
 public:
  // Opens <data_dir>/stimloop.sqlite read-only. NOT_FOUND when the file is
  // missing, FAILED_PRECONDITION when it is not a stimloop store.
  static absl::StatusOr<std::unique_ptr<StoreReader>> Open(const std::string& data_dir);
  // Connects to a PostgreSQL store (a libpq URI). UNAVAILABLE when the
  // server cannot be reached, FAILED_PRECONDITION when the database is not
  // a stimloop store or has a newer schema.
  static absl::StatusOr<std::unique_ptr<StoreReader>> OpenPostgres(const std::string& uri);
  virtual ~StoreReader() = default;
  StoreReader(const StoreReader&) = delete;
  StoreReader& operator=(const StoreReader&) = delete;

  // Every session, oldest first; DATA_LOSS when a config fails its
  // checksum.
  virtual absl::StatusOr<std::vector<SessionSummary>> ListSessions() = 0;
  // One session; NOT_FOUND for an unknown id, DATA_LOSS for a row that
  // cannot be decoded or fails its checksum.
  virtual absl::StatusOr<SessionData> LoadSession(const std::string& session_id) = 0;

  // The file, or "PostgreSQL host:port/dbname".
  const std::string& path() const { return path_; }

 protected:
  explicit StoreReader(std::string path) : path_(std::move(path)) {}

 private:
  const std::string path_;
};

}  // namespace inspect
}  // namespace stimloop

#endif  // STIMLOOP_CLIENTS_INSPECT_STORE_READER_H_
