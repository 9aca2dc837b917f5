// Where a Session writes down what must outlive the process. The Session
// calls it in the order that keeps the durability property:
//   - a generation is journaled (stimuli + optimizer state after Ask) before
//     any of its stimuli is handed out;
//   - responses are journaled, and committed, before they are acknowledged
//     or reach the optimizer.
// A journal error fails the request and leaves the in-memory session
// unchanged. The stores implement it (server/durable_store.h); InMemoryJournal
// keeps nothing; ReadOnlyJournal refuses every write.
#ifndef STIMLOOP_SERVER_SESSION_JOURNAL_H_
#define STIMLOOP_SERVER_SESSION_JOURNAL_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "stimloop/v1/stimloop.pb.h"

namespace stimloop {

// StimulusEntry.origin (Stimulus.origin in the proto) of what the session
// adds to the optimizer's proposals; an optimizer's own stimuli carry its
// name.
inline constexpr char kReferenceOrigin[] = "reference";    // a reference image
inline constexpr char kRepeatOrigin[] = "repeat";          // a repeat (RepeatsConfig)
inline constexpr char kValidationOrigin[] = "validation";  // a validation block's

// One stimulus as it is journaled.
struct StimulusEntry {
  std::string id;
  int64_t sequence = 0;  // 1-based within the session
  int64_t generation = 0;
  std::string origin;
  bool is_reference = false;
  std::string png;             // exactly what the rig displays
  std::vector<float> code;     // the optimizer's code; empty when none
  int64_t model_version = 0;
  double predicted_objective = 0;  // NaN when no model predicted it
};

// One presentation as it is journaled.
struct ResponseEntry {
  std::string stimulus_id;
  std::vector<double> rates;  // empty when skipped
  bool skipped = false;
};

class SessionJournal {
 public:
  virtual ~SessionJournal() = default;

  virtual absl::Status SessionCreated(const std::string& session_id,
                                      const v1::SessionConfig& config,
                                      absl::Time created) = 0;
  // A new generation and the optimizer state right after proposing it;
  // `responses_told` is how many responses (in journal order) the optimizer
  // had learned from when it proposed this generation. The first
  // `handed_out` stimuli (<= stimuli.size()) go to the rig with the
  // NextStimuli call that proposed the generation: they are journaled as
  // handed out in the same transaction, as StimuliHandedOut would.
  virtual absl::Status GenerationProposed(const std::string& session_id, int64_t generation,
                                          absl::Span<const StimulusEntry> stimuli,
                                          const std::string& optimizer_state,
                                          int64_t responses_told, size_t handed_out) = 0;
  // Stimuli handed to the rig by NextStimuli.
  virtual absl::Status StimuliHandedOut(const std::string& session_id,
                                        absl::Span<const std::string> stimulus_ids) = 0;
  // A report, committed before return. `ack` is what a retry with the same
  // request_id gets back, and `content_digest` (server/report_digest.h) what
  // the retry's content must match.
  virtual absl::Status ResponsesReported(const std::string& session_id,
                                         const std::string& request_id,
                                         const std::string& content_digest,
                                         absl::Span<const ResponseEntry> responses,
                                         const v1::ReportResponsesAck& ack,
                                         absl::Time received) = 0;
  virtual absl::Status SessionClosed(const std::string& session_id, absl::Time closed) = 0;
  // A surrogate version finished fitting (models/session_models.h lists the
  // metrics); called on the refit worker before any stimulus can name it.
  virtual absl::Status ModelVersionFitted(const std::string& session_id, int64_t version,
                                          const std::map<std::string, double>& metrics,
                                          const std::string& checkpoint) = 0;
};

// Keeps nothing: sessions live as long as the process.
class InMemoryJournal : public SessionJournal {
 public:
  absl::Status SessionCreated(const std::string&, const v1::SessionConfig&,
                              absl::Time) override {
    return absl::OkStatus();
  }
  absl::Status GenerationProposed(const std::string&, int64_t,
                                  absl::Span<const StimulusEntry>, const std::string&, int64_t,
                                  size_t) override {
    return absl::OkStatus();
  }
  absl::Status StimuliHandedOut(const std::string&, absl::Span<const std::string>) override {
    return absl::OkStatus();
  }
  absl::Status ResponsesReported(const std::string&, const std::string&, const std::string&,
                                 absl::Span<const ResponseEntry>,
                                 const v1::ReportResponsesAck&, absl::Time) override {
    return absl::OkStatus();
  }
  absl::Status SessionClosed(const std::string&, absl::Time) override {
    return absl::OkStatus();
  }
  absl::Status ModelVersionFitted(const std::string&, int64_t,
                                  const std::map<std::string, double>&,
                                  const std::string&) override {
    return absl::OkStatus();
  }
};

// Refuses every write (FAILED_PRECONDITION): for read-only copies of a
// session that another replica owns (ListSessions of a shared store).
class ReadOnlyJournal : public SessionJournal {
 public:
  absl::Status SessionCreated(const std::string&, const v1::SessionConfig&,
                              absl::Time) override {
    return Refused();
  }
  absl::Status GenerationProposed(const std::string&, int64_t,
                                  absl::Span<const StimulusEntry>, const std::string&, int64_t,
                                  size_t) override {
    return Refused();
  }
  absl::Status StimuliHandedOut(const std::string&, absl::Span<const std::string>) override {
    return Refused();
  }
  absl::Status ResponsesReported(const std::string&, const std::string&, const std::string&,
                                 absl::Span<const ResponseEntry>,
                                 const v1::ReportResponsesAck&, absl::Time) override {
    return Refused();
  }
  absl::Status SessionClosed(const std::string&, absl::Time) override { return Refused(); }
  absl::Status ModelVersionFitted(const std::string&, int64_t,
                                  const std::map<std::string, double>&,
                                  const std::string&) override {
    return Refused();
  }

 private:
  static absl::Status Refused() {
    return absl::FailedPreconditionError("session_id: a read-only copy of the session");
  }
};

}  // namespace stimloop

#endif  // STIMLOOP_SERVER_SESSION_JOURNAL_H_
