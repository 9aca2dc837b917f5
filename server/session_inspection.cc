// Session's read-only inspection: statistics per generation, stimuli with
// their responses, the best stimuli, and waiting for progress. See
// session.h; the RPCs are GetSessionStats, ListStimuli, GetBestStimuli and
// WatchSession in proto/stimloop/v1/stimloop.proto.
#include <algorithm>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/session.h"

namespace stimloop {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr int kMaxBest = 1000;

}  // namespace

void Session::FillRecord(const Record& record, bool with_image, v1::StimulusRecord* out) const {
  FillStimulus(record, with_image, out->mutable_stimulus());
  out->set_mean_objective(record.mean_objective());
  out->set_presentations(record.presentations);
  out->set_skipped(record.skipped);
  for (const std::vector<double>& rates : record.rates) {
    out->add_presentation()->mutable_rates()->Add(rates.begin(), rates.end());
  }
}

v1::GenerationStats Session::GenerationStatsOf(int64_t g) const {
  v1::GenerationStats stats;
  stats.set_generation(g);
  double sum = 0, max = -std::numeric_limits<double>::infinity();
  double reference_sum = 0;
  int references = 0;
  for (const Record& r : records_) {
    if (r.entry.generation != g) continue;
    const double mean = r.mean_objective();
    if (r.entry.is_reference) {
      if (r.presentations > 0) {
        reference_sum += mean;
        ++references;
      }
      continue;
    }
    if (r.is_repeat() || r.is_validation()) continue;  // not the optimizer's proposal
    stats.set_stimuli(stats.stimuli() + 1);
    stats.set_model_version(std::max(stats.model_version(), r.entry.model_version));
    if (r.presentations == 0) continue;
    stats.set_answered(stats.answered() + 1);
    sum += mean;
    max = std::max(max, mean);
  }
  stats.set_mean_objective(stats.answered() > 0 ? sum / stats.answered() : kNaN);
  stats.set_max_objective(stats.answered() > 0 ? max : kNaN);
  stats.set_reference_mean_objective(references > 0 ? reference_sum / references : kNaN);
  return stats;
}

void Session::Stats(v1::SessionStats* out) const {
  absl::MutexLock lock(&mu_);
  out->set_session_id(id_);
  *out->mutable_counts() = Counts();
  for (int64_t g = 1; g <= generation_; ++g) *out->add_generations() = GenerationStatsOf(g);
}

absl::Status Session::ListStimuli(int64_t first, int64_t last, bool include_png,
                                  v1::ListStimuliResponse* out) const {
  absl::MutexLock lock(&mu_);
  if (first < 0 || last < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "first_generation, last_generation: must be >= 0, got ", first, ", ", last));
  }
  if (first == 0) first = 1;
  if (last == 0) last = generation_;
  if (last < first) {
    return absl::InvalidArgumentError(absl::StrCat("last_generation: ", last,
                                                   " is before first_generation ", first));
  }
  for (const Record& r : records_) {
    if (r.entry.generation >= first && r.entry.generation <= last) {
      FillRecord(r, include_png, out->add_stimuli());
    }
  }
  return absl::OkStatus();
}

absl::Status Session::BestStimuli(int k, bool include_png, v1::ListStimuliResponse* out) const {
  if (k < 1 || k > kMaxBest) {
    return absl::InvalidArgumentError(absl::StrCat("k: ", k, " is outside [1, ", kMaxBest, "]"));
  }
  absl::MutexLock lock(&mu_);
  // Best first by the rule of best_measured, so that the first is it.
  const std::vector<PooledImage> images = PooledImages();
  const std::vector<size_t> ranked = RankMeasuredImages(MeasuredImages(images), RepeatsOn());
  const size_t n = std::min(ranked.size(), static_cast<size_t>(k));
  for (size_t i = 0; i < n; ++i) FillPooledRecord(images[ranked[i]], include_png, out->add_stimuli());
  return absl::OkStatus();
}

bool Session::AwaitProgress(int64_t* seen, absl::Duration timeout,
                            v1::SessionProgress* out) const {
  // Generation g is complete once g + 1 has been proposed.
  const int64_t last_seen = *seen;
  auto progressed = [this, last_seen]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return closed_ || std::max<int64_t>(0, generation_ - 1) > last_seen;
  };
  if (!mu_.LockWhenWithTimeout(absl::Condition(&progressed), timeout)) {
    mu_.Unlock();
    return false;
  }
  const int64_t complete = std::max<int64_t>(0, generation_ - 1);
  *out->mutable_counts() = Counts();
  out->set_status(closed_ ? v1::SESSION_STATUS_CLOSED : v1::SESSION_STATUS_OPEN);
  if (complete > 0) *out->mutable_latest() = GenerationStatsOf(complete);
  const std::optional<PooledImage> best = BestMeasured();
  out->set_best_objective(best.has_value() ? best->mean_objective() : kNaN);
  *seen = complete;
  mu_.Unlock();
  return true;
}

}  // namespace stimloop
