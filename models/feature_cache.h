// The front-end features of a session's stimuli, kept across refits.
//
// The front end is fixed (models/surrogate_frontend.h), so a stimulus'
// features never change: each is computed once, the first time a fit needs
// it, and every later refit reads it back instead of running the front end
// over all stimuli again (at 64x64 about 0.3 ms per stimulus on one
// thread, a second of every refit at 3000 stimuli: BENCHMARKS.md, "Refit
// and proposal cost").
//
// Each stimulus is computed alone (a batch of one), so its features do not
// depend on which refit first needed it nor on the stimuli beside it: a
// session resumed with an empty cache gets the same bits as the one that
// filled it incrementally. Memory: F * h * w * 4 bytes per stimulus held
// for the session's life (96 features of 8x8 at 32x32: 24 KiB; of 16x16 at
// 64x64: 96 KiB, so ~290 MB for 3000 stimuli), and a copy of the asked
// rows while a fit reads them. `surrogate.params.feature_cache` 0 turns it
// off (models/surrogate_config.h).
//
// Thread-safe: calls are serialized.
#ifndef STIMLOOP_MODELS_FEATURE_CACHE_H_
#define STIMLOOP_MODELS_FEATURE_CACHE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include <torch/types.h>

#include "absl/status/statusor.h"
#include "models/surrogate_frontend.h"

namespace stimloop {

class FeatureCache {
 public:
  // REQUIRES: front_end non-null.
  explicit FeatureCache(std::shared_ptr<const FrontEnd> front_end);

  const std::shared_ptr<const FrontEnd>& front_end() const { return front_end_; }

  // Features [G, F, h, w] of `images` [G, C, H, W], row g the stimulus
  // ids[g] (ids distinct; an id seen before must come with the same image:
  // its stored features are returned). New ids are computed and kept.
  // CANCELLED when `*cancel` (may be null) becomes true between images;
  // INVALID_ARGUMENT when ids and images disagree in number, or the front
  // end rejects the images (c10::Error's message).
  absl::StatusOr<torch::Tensor> Features(const torch::Tensor& images,
                                         const std::vector<int64_t>& ids,
                                         const std::atomic<bool>* cancel);

  // Stimuli held.
  int64_t size() const;

 private:
  std::shared_ptr<const FrontEnd> front_end_;
  mutable std::mutex mu_;
  std::unordered_map<int64_t, int64_t> row_of_id_;  // guarded by mu_
  std::vector<torch::Tensor> rows_;  // [F, h, w] per stimulus; guarded by mu_
};

}  // namespace stimloop

#endif  // STIMLOOP_MODELS_FEATURE_CACHE_H_
