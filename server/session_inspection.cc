// Session's read-only inspection: statistics per generation, stimuli with
// their responses, the best stimuli, and waiting for progress. See
// session.h; the RPCs are GetSessionStats, ListStimuli, GetBestStimuli and
// WatchSession in proto/stimloop/v1/stimloop.proto.
#include <algorithm>
#include <limits>
#include <vector>

#include "server/session.h"

namespace stimloop {

void Session::Stats(v1::SessionStats* out) const {
  absl::MutexLock lock(&mu_);
  out->set_session_id(id_);
  *out->mutable_counts() = ledger_.Counts();
  for (int64_t g = 1; g <= ledger_.generation(); ++g) {
    *out->add_generations() = ledger_.GenerationStats(g);
  }
}

absl::Status Session::ListStimuli(int64_t first, int64_t last, bool include_png,
                                  v1::ListStimuliResponse* out) const {
  absl::MutexLock lock(&mu_);
  auto range = ResolveGenerationRange(first, last, ledger_.generation());
  if (!range.ok()) return range.status();
  for (size_t i = 0; i < ledger_.size(); ++i) {
    const int64_t g = ledger_.record(i).entry.generation;
    if (g >= range->first && g <= range->last) ledger_.FillRecord(i, include_png, out->add_stimuli());
  }
  return absl::OkStatus();
}

absl::Status Session::BestStimuli(int k, bool include_png, v1::ListStimuliResponse* out) const {
  if (absl::Status s = CheckBestCount(k); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  // Best first by the rule of best_measured, so that the first is it.
  for (const StimulusLedger::PooledImage& image : ledger_.Best(static_cast<size_t>(k))) {
    ledger_.FillPooled(image, include_png, out->add_stimuli());
  }
  return absl::OkStatus();
}

bool Session::AwaitProgress(int64_t* seen, absl::Duration timeout,
                            v1::SessionProgress* out) const {
  // Generation g is complete once g + 1 has been proposed.
  const int64_t last_seen = *seen;
  auto progressed = [this, last_seen]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return closed_ || std::max<int64_t>(0, ledger_.generation() - 1) > last_seen;
  };
  if (!mu_.LockWhenWithTimeout(absl::Condition(&progressed), timeout)) {
    mu_.Unlock();
    return false;
  }
  const int64_t complete = std::max<int64_t>(0, ledger_.generation() - 1);
  *out->mutable_counts() = ledger_.Counts();
  out->set_status(closed_ ? v1::SESSION_STATUS_CLOSED : v1::SESSION_STATUS_OPEN);
  if (complete > 0) *out->mutable_latest() = ledger_.GenerationStats(complete);
  const auto best = ledger_.BestMeasured();
  out->set_best_objective(best.has_value() ? best->mean_objective()
                                           : std::numeric_limits<double>::quiet_NaN());
  *seen = complete;
  mu_.Unlock();
  return true;
}

}  // namespace stimloop
