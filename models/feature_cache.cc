#include "models/feature_cache.h"

#include <torch/torch.h>

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace stimloop {

FeatureCache::FeatureCache(std::shared_ptr<const FrontEnd> front_end)
    : front_end_(std::move(front_end)) {}

int64_t FeatureCache::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return size_;
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
      features = front_end_->Forward(images.narrow(0, static_cast<int64_t>(g), 1).to(torch::kFloat));
    } catch (const c10::Error& e) {
      return absl::InvalidArgumentError(absl::StrCat("the front end '", front_end_->Describe(),
                                                     "' rejects the images: ",
                                                     e.what_without_backtrace()));
    }
    if (!rows_.defined() || size_ == rows_.size(0)) {
      std::vector<int64_t> shape = features.sizes().vec();
      shape[0] = std::max<int64_t>(64, 2 * size_);
      torch::Tensor grown = torch::empty(shape, features.options());
      if (size_ > 0) grown.narrow(0, 0, size_).copy_(rows_.narrow(0, 0, size_));
      rows_ = grown;
    }
    rows_.narrow(0, size_, 1).copy_(features);
    row_of_id_.emplace(ids[g], size_);
    rows.push_back(size_++);
  }
  return rows_.index_select(0, torch::tensor(rows, torch::kLong));
}

}  // namespace stimloop
