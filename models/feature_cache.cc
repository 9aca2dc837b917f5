#include "models/feature_cache.h"

#include <torch/torch.h>

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace stimloop {

FeatureCache::FeatureCache(std::shared_ptr<const FrontEnd> front_end)
    : front_end_(std::move(front_end)) {}

int64_t FeatureCache::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int64_t>(rows_.size());
}

absl::StatusOr<torch::Tensor> FeatureCache::Features(const torch::Tensor& images,
                                                     const std::vector<int64_t>& ids,
                                                     const std::atomic<bool>* cancel) {
  if (images.dim() != 4 || images.size(0) != static_cast<int64_t>(ids.size())) {
    return absl::InvalidArgumentError(absl::StrCat("feature cache: ", ids.size(),
                                                   " stimulus ids for images of ", images.dim(),
                                                   " dimensions, first ", images.size(0)));
  }
  torch::NoGradGuard no_grad;
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<int64_t> rows;
  rows.reserve(ids.size());
  for (size_t g = 0; g < ids.size(); ++g) {
    auto found = row_of_id_.find(ids[g]);
    if (found != row_of_id_.end()) {
      rows.push_back(found->second);
      continue;
    }
    if (cancel != nullptr && cancel->load(std::memory_order_relaxed)) {
      return absl::CancelledError("feature cache: cancelled");
    }
    torch::Tensor features;
    try {
      features =
          front_end_->Forward(images.narrow(0, static_cast<int64_t>(g), 1).to(torch::kFloat));
    } catch (const c10::Error& e) {
      return absl::InvalidArgumentError(absl::StrCat("the front end '", front_end_->Describe(),
                                                     "' rejects the images: ",
                                                     e.what_without_backtrace()));
    }
    row_of_id_.emplace(ids[g], static_cast<int64_t>(rows_.size()));
    rows.push_back(static_cast<int64_t>(rows_.size()));
    rows_.push_back(features[0].clone());  // its own storage, not a view of the batch
  }
  if (rows.empty()) {
    const FeatureShape& shape = front_end_->feature_shape();
    return torch::empty({0, shape.channels, shape.height, shape.width});
  }
  std::vector<torch::Tensor> asked;
  asked.reserve(rows.size());
  for (int64_t row : rows) asked.push_back(rows_[static_cast<size_t>(row)]);
  return torch::stack(asked, 0);
}

}  // namespace stimloop
