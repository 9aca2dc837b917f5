// One closed-loop experiment: its config, optimizer, stimuli and responses.
//
// The loop (see proto/stimloop/v1/stimloop.proto for the rig's view):
//   Next: hands out stimuli of the current generation; when none are left it
//     tells the optimizer every measurement that changed since the last
//     generation (the mean objective per stimulus), asks it for a new
//     generation, interleaves reference images and repeats of the leading
//     images (RepeatsConfig), quantizes to 8 bits, journals the generation,
//     then hands out.
//   Presentations of the same image (identical PNG: repeats, or any
//     duplicate) are pooled for best_measured and BestStimuli; each record
//     keeps its own, and the optimizer hears only of its own stimuli.
//   Validate: at a boundary, proposes a validation block instead (the
//     leading images, and optionally the optimizer's best guess, shown again
//     in rounds; ValidationBlock in the proto). The optimizer is told what
//     changed but not asked; what was prepared for the next Ask goes unused.
//   Report: validates the whole report (all or nothing), journals it
//     (committed), then applies it. A request_id seen before returns the
//     first acknowledgement and changes nothing.
//
// Proposing ahead (optimizers with a slow Ask, Optimizer::PrepareAsk: the
// model-based ones). As soon as generation g is committed, the optimizer
// prepares generation g+1's Ask in the background, on the server's WorkPool
// (base/work_pool.h), after the scheduler's BeforeAsk(g+1), so with exactly
// the model version the data assigns to it (models/refit_scheduler.h); Next
// at the boundary tells the
// optimizer what changed and asks, which takes what was prepared: the rig
// waits only when the assigned fit plus the preparation end after the rig
// has shown generation g. PrepareAsk never changes the optimizer's state,
// so stimuli are identical, bit for bit, whether it ran, and a restored
// session simply prepares again. Not with refit_lag 0, whose refit must
// include the measurements of generation g.
//
// Thread-safe: every public method takes the session's lock. A failed call
// leaves the session as it was. While a background PrepareAsk runs, it alone
// uses the optimizer: Next at a boundary waits for it without holding the
// lock, and runs the preparation itself when it is still queued behind
// other sessions' work.
// Describe computes the best guess of the model-based optimizers (seconds:
// gradient ascent) without the lock, as their BestGuess is thread-safe.
//
// Session coordinates; the pieces each do one job: request checks
// (server/request_checks.h), the records and what was measured
// (server/stimulus_ledger.h), a generation's entries
// (server/generation_builder.h), the background PrepareAsk
// (server/background_proposer.h), the journal (server/session_journal.h).
// The validation block is in server/validation_block.cc, inspection in
// server/session_inspection.cc, Restore in server/session_restore.cc.
#ifndef STIMLOOP_SERVER_SESSION_H_
#define STIMLOOP_SERVER_SESSION_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "models/refit_scheduler.h"
#include "models/session_models.h"
#include "optimizers/image_io.h"
#include "optimizers/optimizer.h"
#include "server/asset_paths.h"
#include "server/background_proposer.h"
#include "server/request_checks.h"
#include "server/session_config.h"
#include "server/session_journal.h"
#include "server/stimulus_ledger.h"
#include "stimloop/v1/stimloop.pb.h"

namespace stimloop {

struct JournaledSession;  // server/session_restore.h

// A batch holds at most this many bytes of PNG (but always one stimulus),
// so that a whole generation of large images (up to 1000 of 512x512 RGB, up
// to ~0.8 MB each) never passes a client's 64 MiB receive limit; the rest
// comes with the next NextStimuli (StimulusBatch.remaining).
inline constexpr size_t kMaxBatchPngBytes = size_t{16} << 20;

// How many stimuli one NextStimuli hands out from the front of a queue of
// `waiting` whose k-th PNG is png_bytes(k) bytes: max_count (0: all), at
// most kMaxBatchPngBytes of PNG but at least one. REQUIRES: waiting >= 1.
size_t BatchCount(size_t waiting, int max_count, absl::FunctionRef<size_t(size_t)> png_bytes);

class Session {
 public:
  // Builds a session from a validated config: image space, objective,
  // optimizer and reference images. Errors name the config field
  // ("config.optimizer.params.x: ..."), also for a field the session would
  // not use (CheckNoUnusedFields). `journal` must outlive the session. The
  // session's refits and background proposals run on `pool`
  // (base/work_pool.h; null: threads of the session's own), which must
  // outlive it.
  static absl::StatusOr<std::unique_ptr<Session>> Create(std::string id,
                                                         ResolvedConfig config,
                                                         absl::Time created,
                                                         SessionJournal* journal,
                                                         WorkPool* pool = nullptr);

  // Rebuilds a session from what the journal holds (see
  // server/session_restore.h), so that it goes on exactly as the session that
  // wrote it would have: same counts, acks, hand-out queue and optimizer
  // state. Journals nothing. INVALID_ARGUMENT naming the field for a config
  // that no longer builds; DATA_LOSS naming the session and the row when the
  // journal contradicts itself or holds a value Report would have refused (a
  // rate that is not finite or outside [0, kMaxRate]), so that a damaged
  // session is refused here rather than jammed at its next generation.
  // `journal` must outlive the session. The config's server-side paths are
  // resolved in `assets` (server/asset_paths.h; by default none: a session
  // that names a file does not restore). `pool` as for Create.
  static absl::StatusOr<std::unique_ptr<Session>> Restore(const JournaledSession& journaled,
                                                          SessionJournal* journal,
                                                          const AssetsDir& assets = AssetsDir(),
                                                          WorkPool* pool = nullptr);

  // Hands out up to `max_count` stimuli (0: the rest of the current
  // generation), at most kMaxBatchPngBytes of PNG but at least one; a batch
  // never spans two generations.
  absl::Status Next(int max_count, v1::StimulusBatch* batch);

  // Proposes a validation block (ValidationBlock in the proto) as the next
  // generation, then hands out up to `max_count` of its stimuli as Next
  // does. INVALID_ARGUMENT for a field out of range ("validation.<field>:
  // ..."); FAILED_PRECONDITION when the session is closed, when stimuli of
  // the current generation are not all handed out, when no image was
  // measured yet, or when a best guess is asked for and the optimizer holds
  // none. Computes the best guess (seconds for gradient ascent) without the
  // lock when the optimizer allows it, as Describe does.
  absl::Status Validate(const v1::ValidationBlock& block, int max_count,
                        v1::StimulusBatch* batch);

  // Accepts measured responses; `ack` is filled on success. A request_id
  // names one report's content (server/report_digest.h): the same
  // request_id with the same responses again is a retry, answered with the
  // first acknowledgement (duplicate set, nothing counted again), also once
  // the session is closed; with other responses it is ALREADY_EXISTS naming
  // request_id, and nothing is stored. Otherwise INVALID_ARGUMENT (or
  // NOT_FOUND for an unknown stimulus id) naming the first bad field,
  // FAILED_PRECONDITION when closed; nothing is taken from a rejected report.
  absl::Status Report(const std::string& request_id,
                      const google::protobuf::RepeatedPtrField<v1::Response>& responses,
                      v1::ReportResponsesAck* ack);

  // No stimuli or responses are accepted after this. Closing twice is OK.
  absl::Status Close();

  // Config, status, counts and, when `with_images`, the best stimuli.
  void Describe(bool with_images, v1::Session* out) const;

  // Inspection (server/session_inspection.cc); read-only.
  // Per-generation statistics.
  void Stats(v1::SessionStats* out) const;
  // Stimuli of generations [first, last] (0: from 1 / to the newest).
  absl::Status ListStimuli(int64_t first, int64_t last, bool include_png,
                           v1::ListStimuliResponse* out) const;
  // The k best optimizer stimuli by mean measured objective. REQUIRES: k > 0.
  absl::Status BestStimuli(int k, bool include_png, v1::ListStimuliResponse* out) const;
  // Waits up to `timeout` until the number of complete generations exceeds
  // *seen (start with -1: answers at once) or the session is closed; then
  // fills `out`, sets *seen and returns true. Returns false on timeout.
  bool AwaitProgress(int64_t* seen, absl::Duration timeout, v1::SessionProgress* out) const;

  const std::string& id() const { return id_; }
  bool is_open() const;

  // Stops the refit scheduler, cancels a background PrepareAsk and joins it.
  ~Session();

 private:
  // An accepted report: what a retry gets back, and the digest of the
  // content that a retry must match.
  struct StoredAck {
    v1::ReportResponsesAck ack;
    std::string content_digest;  // ReportDigest, server/report_digest.h
  };

  Session(std::string id, ResolvedConfig config, absl::Time created, SessionJournal* journal,
          WorkPool* pool);

  // Everything Create does but journaling: image space, objective,
  // optimizer (fresh, from the seed) and reference images.
  static absl::StatusOr<std::unique_ptr<Session>> Build(std::string id, ResolvedConfig config,
                                                        absl::Time created,
                                                        SessionJournal* journal, WorkPool* pool);

  // Tells the optimizer what changed, asks it for a generation, builds the
  // entries (references and repeats interleaved), journals and commits them.
  // The NextStimuli call that proposes it (asking for max_count) hands out
  // its first *handed_out stimuli, journaled as handed out in the same
  // transaction: one commit at a boundary, not two.
  absl::Status ProposeGeneration(int max_count, size_t* handed_out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Makes a journaled generation current: marks what the optimizer was told,
  // requests the boundary's refit, queues the stimuli for hand-out, starts
  // the next PrepareAsk.
  void CommitGeneration(int64_t generation, std::vector<StimulusEntry> entries,
                        const std::vector<size_t>& told) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Hands out up to max_count (0: all) stimuli of the current generation,
  // within kMaxBatchPngBytes (BatchCount). `journaled` > 0: that many,
  // whose hand-out ProposeGeneration journaled already. REQUIRES:
  // ledger_.waiting() > 0.
  absl::Status HandOut(int max_count, v1::StimulusBatch* batch, size_t journaled = 0)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Keeps the optimizer's state in *before (committed_state_ once there is
  // one), then tells it every optimizer stimulus whose mean changed since
  // it last heard of it (their record indices in *told). On failure the
  // optimizer is as it was.
  absl::Status TellChanges(std::vector<size_t>* told, std::string* before)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Puts the optimizer back in state `before`; returns `status`, or the
  // error of doing so.
  absl::Status UndoOptimizer(const std::string& before, absl::Status status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The validation block's generation: `presentations` rounds over the
  // images of `sources` (first records) and `guess` (a PNG; empty: none).
  // Tells the optimizer what changed, as every boundary does, but does not
  // Ask it.
  absl::Status ProposeValidationBlock(const std::vector<size_t>& sources, int presentations,
                                      const std::string& guess_png, int64_t guess_version)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // FAILED_PRECONDITION unless a validation block can start now: open, at a
  // boundary, with a response.
  absl::Status CheckValidationBoundary() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Starts the next generation's PrepareAsk (propose_ahead_ only; called
  // once per committed or restored generation).
  void StartProposalAhead() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // REQUIRES: proposer_.running(). Runs the background proposal on this
  // thread when it is still queued behind other sessions' work (the rig is
  // waiting for it now), else releases mu_ until it ends, stimuli appear or
  // the session closes. Callers look again: anything may have changed.
  void AwaitProposer() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool AheadIdleOrStimuliLeft() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !proposer_.running() || ledger_.waiting() > 0 || closed_;
  }
  absl::Status ClosedError() const;
  // Report's checks, all before anything changes: the responses as entries
  // to journal, with the index in the ledger of each one's stimulus.
  absl::Status CheckResponses(const google::protobuf::RepeatedPtrField<v1::Response>& responses,
                              std::vector<ResponseEntry>* entries,
                              std::vector<size_t>* indices) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Report for a request_id seen before: `stored` again (duplicate set) when
  // `responses` are the content it acknowledged, ALREADY_EXISTS otherwise.
  absl::Status AnswerRetry(const StoredAck& stored, const std::string& request_id,
                           const google::protobuf::RepeatedPtrField<v1::Response>& responses,
                           v1::ReportResponsesAck* ack) const;
  // Restore's last step for sessions with refits_ (server/session_restore.h).
  absl::Status ResumeRefits(const JournaledSession& journaled) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sets out->optimizer_best_png from optimizer.BestGuess() (if any).
  static void SetBestGuess(const Optimizer& optimizer, v1::Session* out);

  const std::string id_;
  const ResolvedConfig config_;
  const absl::Time created_;
  SessionJournal* const journal_;
  std::shared_ptr<const ImageSpace> image_space_;
  std::shared_ptr<const Objective> objective_;
  std::vector<NamedImage> references_;

  mutable absl::Mutex mu_;
  std::unique_ptr<Optimizer> optimizer_ ABSL_GUARDED_BY(mu_);
  // Surrogate refits (issue 4): set for model-based optimizers whose
  // surrogate is trained (not a fixed TorchScript model). Thread-safe
  // itself; fed in Report after the journal commit, told of generation
  // boundaries in ProposeGeneration (see models/refit_scheduler.h).
  std::shared_ptr<RefitScheduler> refits_;
  CheckpointLoader load_checkpoint_;  // set with refits_; used by Restore
  bool propose_ahead_ = false;        // see "Proposing ahead"; set by Build
  BackgroundProposer proposer_;       // shares mu_
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  // The optimizer's state as last journaled (or restored); empty before the
  // first generation. Only Tell, Ask and Load change that state (PrepareAsk
  // does not), so it is the next boundary's undo point without serializing
  // the optimizer again (for CMA-ES over a large code, about a megabyte).
  std::string committed_state_ ABSL_GUARDED_BY(mu_);
  StimulusLedger ledger_ ABSL_GUARDED_BY(mu_);
  // Every accepted report by request_id.
  absl::flat_hash_map<std::string, StoredAck> acks_ ABSL_GUARDED_BY(mu_);
};

}  // namespace stimloop

#endif  // STIMLOOP_SERVER_SESSION_H_
