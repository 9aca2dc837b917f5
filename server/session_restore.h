// What the journal holds about one session, as read back to rebuild it after
// a restart: the input of Session::Restore (server/session_restore.cc), the
// output of SessionStore::LoadSession (server/session_store.h).
//
// How a session is rebuilt from it (Session::Restore):
//   - records: every stimulus, indexed by sequence - 1, with handed_out;
//   - responses are replayed in journal order: presentations, skipped and the
//     objective sum per stimulus (summed in the same order as the live
//     session did, so the means are bit for bit the same);
//   - told_presentations: the non-skipped responses before the last
//     generation's `responses_told` watermark were told to the optimizer;
//   - the hand-out queue: stimuli of the last generation not yet handed out,
//     in hand-out order (position);
//   - the optimizer: built from the config (MakeOptimizer) and loaded from
//     the state saved right after it proposed the last generation;
//   - acks: every journaled report with its content digest, so a retried
//     request_id gets its first acknowledgement back, and a reused one with
//     other content is told apart (server/report_digest.h);
//   - every stored rate is checked again as Report checks it (finite, in
//     [0, kMaxRate]): a damaged value is DATA_LOSS naming its row, not a
//     session that jams at its next generation.
#ifndef STIMLOOP_SERVER_SESSION_RESTORE_H_
#define STIMLOOP_SERVER_SESSION_RESTORE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "server/session_journal.h"
#include "stimloop/v1/stimloop.pb.h"

namespace stimloop {

// One journaled stimulus and whether it was handed out.
struct JournaledStimulus {
  StimulusEntry entry;
  int position = 0;  // hand-out order within its generation, 0-based
  bool handed_out = false;
};

// How many of a session's newest surrogate versions are read back: enough
// for any refit lag (at least kMaxRefitLag + 1, models/refit_scheduler.h).
inline constexpr int kJournaledModelVersions = 8;

// A journaled report's acknowledgement and content digest.
struct JournaledAck {
  std::string request_id;
  v1::ReportResponsesAck ack;
  std::string content_digest;  // ReportDigest (server/report_digest.h)
};

// A journaled surrogate version of a session with refits.
struct JournaledModelVersion {
  int64_t version = 0;
  int64_t num_trials = 0;  // examples it was fitted on (its metric "num_trials")
  std::string checkpoint;  // SerializeSurrogate's bytes
};

struct JournaledSession {
  std::string id;
  v1::SessionConfig config;  // as stored: validated, defaults filled in
  absl::Time created;
  bool closed = false;
  // The last proposed generation (0: none yet), the optimizer state saved
  // right after proposing it, and how many non-skipped responses (in journal
  // order) the optimizer had learned from when it did.
  int64_t generation = 0;
  std::string optimizer_state;
  int64_t responses_told = 0;
  // responses_told of every generation: [g - 1] for generation g.
  std::vector<int64_t> generation_responses_told;
  std::vector<JournaledStimulus> stimuli;  // by sequence: stimuli[i].entry.sequence == i + 1
  std::vector<ResponseEntry> responses;    // journal order
  // Where responses[k] is stored (the store's responses.seq), to name it in
  // errors; empty when the journal has no rows.
  std::vector<int64_t> response_rows;
  std::vector<JournaledAck> acks;
  // The kJournaledModelVersions newest versions (all when fewer), ascending;
  // empty before the first fit.
  std::vector<JournaledModelVersion> recent_models;
};

}  // namespace stimloop

#endif  // STIMLOOP_SERVER_SESSION_RESTORE_H_
