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
//   Report: validates the whole report (all or nothing), journals it
//     (committed), then applies it. A request_id seen before returns the
//     first acknowledgement and changes nothing.
//
// Proposing ahead (model-based optimizers, gradient_ascent and
// adaptive_sampling): their Ask takes seconds on a CPU and what it proposes
// depends only on the model version and the optimizer's own state, never on
// the measurements Tell hands it (Tell only checks ids). So as soon as
// generation g is committed, generation g+1's Ask starts on a background
// thread (after the scheduler's BeforeAsk, so in sync mode it sees exactly
// the version it would have seen at the boundary) and Next at the boundary
// only commits its result: the rig waits only when refit plus Ask take
// longer than showing a whole generation. Stimuli are identical to asking at
// the boundary, bit for bit in sync mode, and a restored session starts the
// same background Ask again. Not with refit_lag 0, whose refit must include
// the measurements of generation g.
//
// Thread-safe: every public method takes the session's lock. A failed call
// leaves the session as it was. While a background Ask runs, it alone uses
// the optimizer: Next at a boundary waits for it without holding the lock.
// Describe computes the best guess of the model-based optimizers (seconds:
// gradient ascent) without the lock, as their BestGuess is thread-safe.
#ifndef STIMLOOP_SERVER_SESSION_H_
#define STIMLOOP_SERVER_SESSION_H_

#include <cstdint>
#include <deque>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "models/refit_scheduler.h"
#include "models/session_models.h"
#include "optimizers/image_io.h"
#include "optimizers/optimizer.h"
#include "server/session_config.h"
#include "server/session_journal.h"
#include "stimloop/v1/stimloop.pb.h"

namespace stimloop {

struct JournaledSession;  // server/session_restore.h

inline constexpr int kMaxStimuliPerRequest = 1000;
inline constexpr int kMaxResponsesPerReport = 10000;
inline constexpr size_t kMaxRequestIdLength = 128;
inline constexpr char kRepeatOrigin[] = "repeat";  // Stimulus.origin of repeats

class Session {
 public:
  // Builds a session from a validated config: image space, objective,
  // optimizer and reference images. Errors name the config field
  // ("config.optimizer.params.x: ..."). `journal` must outlive the session.
  static absl::StatusOr<std::unique_ptr<Session>> Create(std::string id,
                                                         ResolvedConfig config,
                                                         absl::Time created,
                                                         SessionJournal* journal);

  // Rebuilds a session from what the journal holds (see
  // server/session_restore.h), so that it goes on exactly as the session that
  // wrote it would have: same counts, acks, hand-out queue and optimizer
  // state. Journals nothing. INVALID_ARGUMENT naming the field for a config
  // that no longer builds; DATA_LOSS when the journal contradicts itself.
  // `journal` must outlive the session.
  static absl::StatusOr<std::unique_ptr<Session>> Restore(const JournaledSession& journaled,
                                                          SessionJournal* journal);

  // Hands out up to `max_count` stimuli (0: the rest of the current
  // generation); a batch never spans two generations.
  absl::Status Next(int max_count, v1::StimulusBatch* batch);

  // Accepts measured responses; `ack` is filled on success.
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

  // Stops the refit scheduler, cancels a background Ask and joins it.
  ~Session();

 private:
  // A stimulus and what was measured for it.
  struct Record {
    StimulusEntry entry;
    bool handed_out = false;
    int presentations = 0;
    double objective_sum = 0;
    int skipped = 0;
    int told_presentations = 0;  // presentations when the optimizer last heard of it
    std::vector<std::vector<double>> rates;  // every presentation, in journal order
    // Index of the first record showing the same image (its own index when
    // none before it): presentations of one image are pooled under it.
    size_t first_showing = 0;

    bool is_repeat() const { return entry.origin == kRepeatOrigin; }
    // Proposed (handed out or not) and neither answered nor skipped.
    bool outstanding() const { return presentations == 0 && skipped == 0; }

    void AddPresentation(std::vector<double> presentation_rates, double objective) {
      ++presentations;
      objective_sum += objective;
      rates.push_back(std::move(presentation_rates));
    }
    // Mean measured objective over the presentations; NaN before the first.
    double mean_objective() const {
      return presentations > 0 ? objective_sum / presentations
                               : std::numeric_limits<double>::quiet_NaN();
    }
  };

  Session(std::string id, ResolvedConfig config, absl::Time created, SessionJournal* journal);

  // Everything Create does but journaling: image space, objective,
  // optimizer (fresh, from the seed) and reference images.
  static absl::StatusOr<std::unique_ptr<Session>> Build(std::string id, ResolvedConfig config,
                                                        absl::Time created,
                                                        SessionJournal* journal);

  absl::Status ProposeGeneration() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Starts the next generation's Ask on ahead_thread_ (propose_ahead_ only).
  void StartProposalAhead() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Body of ahead_thread_: BeforeAsk, Ask, then stores the candidates in
  // ahead_ (on failure the optimizer is restored and nothing is stored).
  void ProposeAhead(Optimizer* optimizer, int count, int64_t first_id);
  bool AheadIdleOrStimuliLeft() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !ahead_running_ || !not_handed_out_.empty() || closed_;
  }
  // Reference images for generation `generation`, cycling through the folder.
  std::vector<Candidate> ReferenceCandidates(int64_t generation, int64_t first_id) const;
  // Parses "<session id>-<sequence>" into an index of records_, or an error
  // naming `field`.
  absl::StatusOr<size_t> FindRecord(const std::string& stimulus_id,
                                    const std::string& field) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::SessionCounts Counts() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // One image of the optimizer's (references aside) and every record that
  // showed it, pooled.
  struct PooledImage {
    std::vector<size_t> records;  // ascending; records.front() showed it first
    double objective_sum = 0;
    int presentations = 0;
    int outstanding = 0;  // records still waiting for a response
    double mean_objective() const { return objective_sum / presentations; }
    // Ranking of measured images: higher mean first, ties by first showing
    // (deterministic).
    static bool Better(const PooledImage& a, const PooledImage& b) {
      const double ma = a.mean_objective(), mb = b.mean_objective();
      return ma != mb ? ma > mb : a.records.front() < b.records.front();
    }
  };
  // Every non-reference image, in order of first showing.
  std::vector<PooledImage> PooledImages() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sets records_[index].first_showing (records before it must be indexed).
  void IndexImage(size_t index) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The measured image with the highest pooled mean objective (the first of
  // equals); with repeats on, among images with 2+ presentations when one
  // exists (see Session.best_measured in the proto). nullopt before any
  // response.
  std::optional<PooledImage> BestMeasured() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The first records of the images to repeat in the next generation (see
  // RepeatsConfig in the proto), best first.
  std::vector<size_t> RepeatSources() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // FillRecord for a pooled image: its first record, with the pooled mean
  // and every presentation of the image.
  void FillPooledRecord(const PooledImage& image, bool with_image,
                        v1::StimulusRecord* out) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Restore's last step for sessions with refits_ (server/session_restore.h).
  absl::Status ResumeRefits(const JournaledSession& journaled) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FillStimulus(const Record& record, bool with_image, v1::Stimulus* out) const;
  // Sets out->optimizer_best_png from optimizer.BestGuess() (if any).
  static void SetBestGuess(const Optimizer& optimizer, v1::Session* out);
  void FillRecord(const Record& record, bool with_image, v1::StimulusRecord* out) const;
  // Statistics of generation g (1-based) from records_.
  v1::GenerationStats GenerationStatsOf(int64_t g) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

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
  // The background Ask of generation generation_ + 1: running, and its
  // candidates when it succeeded (consumed by ProposeGeneration once
  // committed; a failed one leaves none, so the boundary asks again).
  bool ahead_running_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<std::vector<Candidate>> ahead_ ABSL_GUARDED_BY(mu_);
  std::thread ahead_thread_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  int64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<Record> records_ ABSL_GUARDED_BY(mu_);  // index = sequence - 1
  // Hash of a record's PNG -> the first non-reference record with that hash
  // (IndexImage compares the bytes, so a collision only stops pooling).
  absl::flat_hash_map<size_t, size_t> first_showing_by_hash_ ABSL_GUARDED_BY(mu_);
  std::deque<size_t> not_handed_out_ ABSL_GUARDED_BY(mu_);
  int64_t responses_ ABSL_GUARDED_BY(mu_) = 0;  // presentations, in journal order
  int64_t skipped_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t pending_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<std::string, v1::ReportResponsesAck> acks_ ABSL_GUARDED_BY(mu_);
};

}  // namespace stimloop

#endif  // STIMLOOP_SERVER_SESSION_H_
