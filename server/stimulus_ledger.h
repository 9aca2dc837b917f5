// The stimuli of one session and what was measured for each: the records by
// sequence, the queue of stimuli not yet handed out, the pooling of every
// presentation of one image (repeats, validation blocks, any identical PNG),
// the best measured image (base/best_measured.h, the rule
// Session.best_measured states in the proto), the images to repeat or to
// validate, what the optimizer has not heard of yet, and the session's
// counts. It journals nothing and checks nothing it is told: the Session
// checks requests first (server/request_checks.h) and calls it after the
// journal commit. Not thread-safe: the owning Session serializes calls.
#ifndef STIMLOOP_SERVER_STIMULUS_LEDGER_H_
#define STIMLOOP_SERVER_STIMULUS_LEDGER_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "base/best_measured.h"
#include "optimizers/optimizer.h"
#include "server/session_journal.h"
#include "stimloop/v1/stimloop.pb.h"

namespace stimloop {

class StimulusLedger {
 public:
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
    bool is_validation() const { return entry.origin == kValidationOrigin; }
    // Proposed by the optimizer (not a reference image, repeat or
    // validation stimulus): the only records it is told about.
    bool proposed_by_optimizer() const {
      return !entry.is_reference && !is_repeat() && !is_validation();
    }
    // Proposed (handed out or not) and neither answered nor skipped.
    bool outstanding() const { return presentations == 0 && skipped == 0; }
    // Mean measured objective over the presentations; NaN before the first.
    double mean_objective() const {
      return presentations > 0 ? objective_sum / presentations
                               : std::numeric_limits<double>::quiet_NaN();
    }
  };

  // One image of the optimizer's (references aside) and every record that
  // showed it, pooled.
  struct PooledImage {
    std::vector<size_t> records;  // ascending; records.front() showed it first
    double objective_sum = 0;
    int presentations = 0;
    int outstanding = 0;  // records still waiting for a response
    // REQUIRES: presentations > 0.
    double mean_objective() const { return objective_sum / presentations; }
  };

  // Stimulus ids are "<session_id>-<sequence>"; `repeats` is the session's
  // RepeatsConfig (which images RepeatSources picks, and whether a single
  // presentation may be the best).
  StimulusLedger(std::string session_id, v1::RepeatsConfig repeats);

  // Records by index (= sequence - 1).
  size_t size() const { return records_.size(); }
  const Record& record(size_t index) const { return records_[index]; }
  const std::vector<Record>& records() const { return records_; }
  // The newest generation (0: none yet).
  int64_t generation() const { return generation_; }
  int64_t responses() const { return responses_; }

  // Adds generation `generation` (becomes generation()), its stimuli queued
  // for hand-out in the order given. REQUIRES: their sequences are size() +
  // 1 ... size() + entries.size(), in any order.
  void AddGeneration(int64_t generation, std::vector<StimulusEntry> entries);

  // Restoring from the journal (server/session_restore.cc): the stimuli in
  // sequence order, then the queue in hand-out order, then the responses.
  // REQUIRES: entry.sequence == size() + 1.
  void RestoreStimulus(StimulusEntry entry, bool handed_out);
  void RestoreQueued(size_t index) { waiting_.push_back(index); }
  void RestoreGeneration(int64_t generation) { generation_ = generation; }

  // The hand-out queue: how many wait, the k-th of them (index), and
  // handing out the first `count` (returns their indices, in order).
  // REQUIRES: k < waiting(), count <= waiting().
  size_t waiting() const { return waiting_.size(); }
  size_t waiting_at(size_t k) const { return waiting_[k]; }
  std::vector<size_t> HandOut(size_t count);

  // The index of the stimulus `stimulus_id` names, which must be exactly an
  // id the session wrote: "<session id>-<sequence>", the sequence in decimal
  // without sign, space or leading zero. NOT_FOUND naming `field` otherwise
  // ("<field>: '<id-05>' is not a stimulus of session '<id>'").
  absl::StatusOr<size_t> Find(const std::string& stimulus_id, const std::string& field) const;

  // A presentation of record `index` with its rates and objective; `told`
  // (restoring only) when the optimizer had already heard of it.
  void AddPresentation(size_t index, std::vector<double> rates, double objective,
                       bool told = false);
  void AddSkip(size_t index);

  v1::SessionCounts Counts() const;
  // Counts() once `responses` (for records `indices`, parallel) are added.
  v1::SessionCounts CountsAfter(absl::Span<const ResponseEntry> responses,
                                absl::Span<const size_t> indices) const;

  // Every optimizer stimulus whose mean changed since the optimizer last
  // heard of it, as observations (their indices in *indices); MarkTold
  // records that the optimizer heard of them.
  std::vector<Observation> Untold(std::vector<size_t>* indices) const;
  void MarkTold(absl::Span<const size_t> indices);

  // The stimulus id the surrogate learns record `index` under: the sequence
  // of the record that first showed its image, so that every presentation
  // of one image (repeats, validation blocks) is one stimulus to the fit:
  // on one side of its held-out split, and a repeat for its FEVE.
  int64_t ImageId(size_t index) const {
    return records_[records_[index].first_showing].entry.sequence;
  }

  // Every non-reference image, in order of first showing.
  std::vector<PooledImage> PooledImages() const;
  // The best measured image; nullopt before any response.
  std::optional<PooledImage> BestMeasured() const;
  // The `k` best measured images, best first (the first is BestMeasured).
  std::vector<PooledImage> Best(size_t k) const;
  // The first records of the images to repeat in the next generation (see
  // RepeatsConfig in the proto), best first: measured, and shown (or
  // waiting) fewer than max_presentations times.
  std::vector<size_t> RepeatSources() const;
  // The first records of the `k` images a validation block re-shows: the
  // leading eligible images by the rule best_measured follows before any
  // block, best first; fewer when fewer qualify.
  std::vector<size_t> ValidationSources(int k) const;

  // Statistics of generation g (1-based): the optimizer's proposals and the
  // reference images.
  v1::GenerationStats GenerationStats(int64_t g) const;

  // The proto views of a record and of a pooled image (its first record,
  // with the pooled mean and every presentation of the image).
  void FillStimulus(size_t index, bool with_image, v1::Stimulus* out) const;
  void FillRecord(size_t index, bool with_image, v1::StimulusRecord* out) const;
  void FillPooled(const PooledImage& image, bool with_image, v1::StimulusRecord* out) const;

 private:
  bool repeats_on() const { return repeats_.per_generation() > 0; }
  // Sets records_[index].first_showing (records before it must be indexed).
  void IndexImage(size_t index);
  // `images` as base/best_measured.h sees them (parallel).
  std::vector<MeasuredImage> MeasuredImages(const std::vector<PooledImage>& images) const;
  // Pending bookkeeping before record `index` is answered or skipped.
  void Answering(size_t index);

  const std::string session_id_;
  const v1::RepeatsConfig repeats_;
  int64_t generation_ = 0;
  std::vector<Record> records_;  // index = sequence - 1
  // Hash of a record's PNG -> the first non-reference record with that hash
  // (IndexImage compares the bytes, so a collision only stops pooling).
  absl::flat_hash_map<size_t, size_t> first_showing_by_hash_;
  std::deque<size_t> waiting_;  // not handed out, in hand-out order
  int64_t responses_ = 0;       // presentations, in journal order
  int64_t skipped_ = 0;
  int64_t pending_ = 0;  // handed out, neither answered nor skipped
};

}  // namespace stimloop

#endif  // STIMLOOP_SERVER_STIMULUS_LEDGER_H_
