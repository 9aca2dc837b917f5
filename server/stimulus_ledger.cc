#include "server/stimulus_ledger.h"

#include <algorithm>
#include <string_view>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "base/echo.h"

namespace stimloop {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// The sequence that `digits` spells as the session writes it: decimal
// digits only, no sign, space or leading zero ("5", never "05", "+5", " 5"),
// so that each stimulus has exactly one id; 0 for anything else.
int64_t ParseSequence(absl::string_view digits) {
  constexpr size_t kMaxDigits = 18;  // below 2^63: no overflow
  if (digits.empty() || digits.size() > kMaxDigits || digits[0] == '0') return 0;
  int64_t sequence = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return 0;
    sequence = sequence * 10 + (c - '0');
  }
  return sequence;
}

// Ranking of measured images for repeats: higher mean first, ties by first
// showing (deterministic).
bool Better(const StimulusLedger::PooledImage& a, const StimulusLedger::PooledImage& b) {
  const double ma = a.mean_objective(), mb = b.mean_objective();
  return ma != mb ? ma > mb : a.records.front() < b.records.front();
}

}  // namespace

StimulusLedger::StimulusLedger(std::string session_id, v1::RepeatsConfig repeats)
    : session_id_(std::move(session_id)), repeats_(std::move(repeats)) {}

void StimulusLedger::AddGeneration(int64_t generation, std::vector<StimulusEntry> entries) {
  generation_ = generation;
  const size_t first_new = records_.size();
  records_.resize(records_.size() + entries.size());
  for (StimulusEntry& e : entries) {
    const size_t index = static_cast<size_t>(e.sequence - 1);
    waiting_.push_back(index);
    records_[index].entry = std::move(e);
  }
  for (size_t i = first_new; i < records_.size(); ++i) IndexImage(i);
}

void StimulusLedger::RestoreStimulus(StimulusEntry entry, bool handed_out) {
  Record& record = records_.emplace_back();
  record.entry = std::move(entry);
  record.handed_out = handed_out;
  if (handed_out) ++pending_;
  IndexImage(records_.size() - 1);
}

std::vector<size_t> StimulusLedger::HandOut(size_t count) {
  std::vector<size_t> indices;
  indices.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    const size_t index = waiting_.front();
    waiting_.pop_front();
    records_[index].handed_out = true;
    ++pending_;
    indices.push_back(index);
  }
  return indices;
}

absl::StatusOr<size_t> StimulusLedger::Find(const std::string& stimulus_id,
                                             const std::string& field) const {
  absl::string_view sequence_digits = stimulus_id;
  const int64_t sequence = absl::ConsumePrefix(&sequence_digits, absl::StrCat(session_id_, "-"))
                               ? ParseSequence(sequence_digits)
                               : 0;
  if (sequence < 1 || sequence > static_cast<int64_t>(records_.size())) {
    return absl::NotFoundError(absl::StrCat(field, ": ", QuotedEcho(stimulus_id),
                                            " is not a stimulus of session '", session_id_,
                                            "'"));
  }
  return static_cast<size_t>(sequence - 1);
}

void StimulusLedger::Answering(size_t index) {
  const Record& r = records_[index];
  if (r.handed_out && r.outstanding()) --pending_;
}

void StimulusLedger::AddPresentation(size_t index, std::vector<double> rates, double objective,
                                     bool told) {
  Answering(index);
  Record& r = records_[index];
  ++r.presentations;
  r.objective_sum += objective;
  r.rates.push_back(std::move(rates));
  if (told && r.proposed_by_optimizer()) ++r.told_presentations;
  ++responses_;
}

void StimulusLedger::AddSkip(size_t index) {
  Answering(index);
  ++records_[index].skipped;
  ++skipped_;
}

v1::SessionCounts StimulusLedger::Counts() const {
  v1::SessionCounts counts;
  counts.set_generations(generation_);
  counts.set_stimuli(static_cast<int64_t>(records_.size()));
  counts.set_responses(responses_);
  counts.set_skipped(skipped_);
  counts.set_pending(pending_);
  return counts;
}

v1::SessionCounts StimulusLedger::CountsAfter(absl::Span<const ResponseEntry> responses,
                                              absl::Span<const size_t> indices) const {
  v1::SessionCounts counts = Counts();
  absl::flat_hash_set<size_t> answered;
  for (size_t k = 0; k < responses.size(); ++k) {
    const Record& r = records_[indices[k]];
    if (r.handed_out && r.outstanding()) answered.insert(indices[k]);
    if (responses[k].skipped) {
      counts.set_skipped(counts.skipped() + 1);
    } else {
      counts.set_responses(counts.responses() + 1);
    }
  }
  counts.set_pending(counts.pending() - static_cast<int64_t>(answered.size()));
  return counts;
}

std::vector<Observation> StimulusLedger::Untold(std::vector<size_t>* indices) const {
  std::vector<Observation> observations;
  for (size_t i = 0; i < records_.size(); ++i) {
    const Record& r = records_[i];
    if (!r.proposed_by_optimizer() || r.presentations == r.told_presentations) continue;
    observations.push_back({r.entry.sequence, r.mean_objective(), r.presentations});
    indices->push_back(i);
  }
  return observations;
}

void StimulusLedger::MarkTold(absl::Span<const size_t> indices) {
  for (size_t i : indices) records_[i].told_presentations = records_[i].presentations;
}

void StimulusLedger::IndexImage(size_t index) {
  Record& record = records_[index];
  record.first_showing = index;
  if (record.entry.is_reference) return;
  const size_t hash = absl::Hash<std::string_view>{}(record.entry.png);
  auto [it, inserted] = first_showing_by_hash_.try_emplace(hash, index);
  if (!inserted && records_[it->second].entry.png == record.entry.png) {
    record.first_showing = it->second;
  }
}

std::vector<StimulusLedger::PooledImage> StimulusLedger::PooledImages() const {
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

std::vector<MeasuredImage> StimulusLedger::MeasuredImages(
    const std::vector<PooledImage>& images) const {
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

std::optional<StimulusLedger::PooledImage> StimulusLedger::BestMeasured() const {
  std::vector<PooledImage> images = PooledImages();
  const std::optional<size_t> best = BestMeasuredImage(MeasuredImages(images), repeats_on());
  if (!best.has_value()) return std::nullopt;
  return std::move(images[*best]);
}

std::vector<StimulusLedger::PooledImage> StimulusLedger::Best(size_t k) const {
  std::vector<PooledImage> images = PooledImages();
  const std::vector<size_t> ranked = RankMeasuredImages(MeasuredImages(images), repeats_on());
  std::vector<PooledImage> best;
  for (size_t i = 0; i < ranked.size() && i < k; ++i) best.push_back(std::move(images[ranked[i]]));
  return best;
}

std::vector<size_t> StimulusLedger::ValidationSources(int k) const {
  // Candidates by the rule best_measured follows before any block: a new
  // block may re-show images an earlier block did not.
  std::vector<PooledImage> images = PooledImages();
  std::vector<MeasuredImage> measured = MeasuredImages(images);
  for (MeasuredImage& m : measured) m.in_validation_block = false;
  const std::vector<size_t> ranked = RankMeasuredImages(measured, repeats_on());
  const std::vector<bool> eligible = EligibleForBest(measured, repeats_on());
  std::vector<size_t> sources;
  for (size_t i : ranked) {
    if (static_cast<int>(sources.size()) == k || !eligible[i]) break;
    sources.push_back(images[i].records.front());
  }
  return sources;
}

std::vector<size_t> StimulusLedger::RepeatSources() const {
  if (!repeats_on()) return {};
  std::vector<PooledImage> eligible = PooledImages();
  eligible.erase(std::remove_if(eligible.begin(), eligible.end(),
                                [&](const PooledImage& p) {
                                  return p.presentations == 0 ||
                                         p.presentations + p.outstanding >=
                                             repeats_.max_presentations();
                                }),
                 eligible.end());
  const size_t n = std::min(eligible.size(), static_cast<size_t>(repeats_.per_generation()));
  std::partial_sort(eligible.begin(), eligible.begin() + n, eligible.end(), Better);
  std::vector<size_t> sources;
  for (size_t i = 0; i < n; ++i) sources.push_back(eligible[i].records.front());
  return sources;
}

v1::GenerationStats StimulusLedger::GenerationStats(int64_t g) const {
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
    if (!r.proposed_by_optimizer()) continue;  // a repeat or validation stimulus
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

void StimulusLedger::FillStimulus(size_t index, bool with_image, v1::Stimulus* out) const {
  const StimulusEntry& e = records_[index].entry;
  out->set_id(e.id);
  out->set_generation(e.generation);
  out->set_origin(e.origin);
  if (with_image) out->set_png(e.png);
  out->set_model_version(e.model_version);
  out->set_is_reference(e.is_reference);
  out->set_predicted_objective(e.predicted_objective);
}

void StimulusLedger::FillRecord(size_t index, bool with_image, v1::StimulusRecord* out) const {
  const Record& record = records_[index];
  FillStimulus(index, with_image, out->mutable_stimulus());
  out->set_mean_objective(record.mean_objective());
  out->set_presentations(record.presentations);
  out->set_skipped(record.skipped);
  for (const std::vector<double>& rates : record.rates) {
    out->add_presentation()->mutable_rates()->Add(rates.begin(), rates.end());
  }
}

void StimulusLedger::FillPooled(const PooledImage& image, bool with_image,
                                v1::StimulusRecord* out) const {
  FillStimulus(image.records.front(), with_image, out->mutable_stimulus());
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
