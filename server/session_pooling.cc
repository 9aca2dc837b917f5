// Session's pooling of the presentations of one image and its choice of
// repeats (RepeatsConfig in proto/stimloop/v1/stimloop.proto): which records
// show the same image, the best measured image, the images to re-show (in
// the next generation, or in a validation block).
#include <algorithm>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/hash/hash.h"
#include "base/best_measured.h"
#include "server/session.h"

namespace stimloop {

void Session::IndexImage(size_t index) {
  Record& record = records_[index];
  record.first_showing = index;
  if (record.entry.is_reference) return;
  const size_t hash = absl::Hash<std::string_view>{}(record.entry.png);
  auto [it, inserted] = first_showing_by_hash_.try_emplace(hash, index);
  if (!inserted && records_[it->second].entry.png == record.entry.png) {
    record.first_showing = it->second;
  }
}

std::vector<Session::PooledImage> Session::PooledImages() const {
  std::vector<PooledImage> images;
  std::vector<size_t> slot_of(records_.size());  // first record -> images index
  for (size_t i = 0; i < records_.size(); ++i) {
    const Record& r = records_[i];
    if (r.entry.is_reference) continue;
    if (r.first_showing == i) {
      slot_of[i] = images.size();
      images.emplace_back();
    }
    PooledImage& image = images[slot_of[r.first_showing]];
    image.records.push_back(i);
    image.objective_sum += r.objective_sum;
    image.presentations += r.presentations;
    if (r.outstanding()) ++image.outstanding;
  }
  return images;
}

std::vector<MeasuredImage> Session::MeasuredImages(const std::vector<PooledImage>& images) const {
  std::vector<MeasuredImage> measured;
  measured.reserve(images.size());
  for (const PooledImage& image : images) {
    const bool in_block = std::any_of(image.records.begin(), image.records.end(),
                                      [this](size_t i) { return records_[i].is_validation(); });
    measured.push_back({image.presentations > 0 ? image.mean_objective() : 0.0,
                        image.presentations, in_block});
  }
  return measured;
}

bool Session::RepeatsOn() const { return config_.proto.repeats().per_generation() > 0; }

std::optional<Session::PooledImage> Session::BestMeasured() const {
  std::vector<PooledImage> images = PooledImages();
  const std::optional<size_t> best = BestMeasuredImage(MeasuredImages(images), RepeatsOn());
  if (!best.has_value()) return std::nullopt;
  return std::move(images[*best]);
}

std::vector<size_t> Session::ValidationSources(int k) const {
  // Candidates by the rule best_measured follows before any block: a new
  // block may re-show images an earlier block did not.
  std::vector<PooledImage> images = PooledImages();
  std::vector<MeasuredImage> measured = MeasuredImages(images);
  for (MeasuredImage& m : measured) m.in_validation_block = false;
  const std::vector<size_t> ranked = RankMeasuredImages(measured, RepeatsOn());
  const std::vector<bool> eligible = EligibleForBest(measured, RepeatsOn());
  std::vector<size_t> sources;
  for (size_t i : ranked) {
    if (static_cast<int>(sources.size()) == k || !eligible[i]) break;
    sources.push_back(images[i].records.front());
  }
  return sources;
}

std::vector<size_t> Session::RepeatSources() const {
  const v1::RepeatsConfig& repeats = config_.proto.repeats();
  if (repeats.per_generation() == 0) return {};
  std::vector<PooledImage> eligible = PooledImages();
  eligible.erase(std::remove_if(eligible.begin(), eligible.end(),
                                [&](const PooledImage& p) {
                                  return p.presentations == 0 ||
                                         p.presentations + p.outstanding >=
                                             repeats.max_presentations();
                                }),
                 eligible.end());
  const size_t n = std::min(eligible.size(), static_cast<size_t>(repeats.per_generation()));
  std::partial_sort(eligible.begin(), eligible.begin() + n, eligible.end(),
                    PooledImage::Better);
  std::vector<size_t> sources;
  for (size_t i = 0; i < n; ++i) sources.push_back(eligible[i].records.front());
  return sources;
}

void Session::FillPooledRecord(const PooledImage& image, bool with_image,
                               v1::StimulusRecord* out) const {
  FillStimulus(records_[image.records.front()], with_image, out->mutable_stimulus());
  out->set_mean_objective(image.mean_objective());
  out->set_presentations(image.presentations);
  int skipped = 0;
  for (size_t i : image.records) {
    const Record& r = records_[i];
    skipped += r.skipped;
    for (const std::vector<double>& rates : r.rates) {
      out->add_presentation()->mutable_rates()->Add(rates.begin(), rates.end());
    }
  }
  out->set_skipped(skipped);
}

}  // namespace stimloop
