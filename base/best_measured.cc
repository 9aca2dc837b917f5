#include "base/best_measured.h"

#include <algorithm>

namespace stimloop {

int MinPresentationsForBest(const std::vector<MeasuredImage>& images, bool repeats_on) {
  const bool any_repeated = std::any_of(images.begin(), images.end(), [](const MeasuredImage& m) {
    return m.presentations >= 2;
  });
  return repeats_on && any_repeated ? 2 : 1;
}

std::vector<bool> EligibleForBest(const std::vector<MeasuredImage>& images, bool repeats_on) {
  const bool after_validation =
      std::any_of(images.begin(), images.end(),
                  [](const MeasuredImage& m) { return m.in_validation_block; });
  const int min_presentations = after_validation ? 1 : MinPresentationsForBest(images, repeats_on);
  std::vector<bool> eligible(images.size());
  for (size_t i = 0; i < images.size(); ++i) {
    eligible[i] = images[i].presentations >= min_presentations &&
                  (!after_validation || images[i].in_validation_block);
  }
  return eligible;
}

std::vector<size_t> RankMeasuredImages(const std::vector<MeasuredImage>& images,
                                       bool repeats_on) {
  const std::vector<bool> eligible = EligibleForBest(images, repeats_on);
  std::vector<size_t> ranked;
  for (size_t i = 0; i < images.size(); ++i) {
    if (images[i].presentations > 0) ranked.push_back(i);
  }
  std::sort(ranked.begin(), ranked.end(), [&](size_t a, size_t b) {
    if (eligible[a] != eligible[b]) return static_cast<bool>(eligible[a]);
    const double ma = images[a].mean_objective, mb = images[b].mean_objective;
    return ma != mb ? ma > mb : a < b;
  });
  return ranked;
}

std::optional<size_t> BestMeasuredImage(const std::vector<MeasuredImage>& images,
                                        bool repeats_on) {
  const std::vector<size_t> ranked = RankMeasuredImages(images, repeats_on);
  if (ranked.empty()) return std::nullopt;
  return ranked.front();
}

}  // namespace stimloop
