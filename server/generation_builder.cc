#include "server/generation_builder.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace stimloop {
namespace {

// Fills what every entry of a generation carries.
void Number(const std::string& session_id, int64_t generation, int64_t sequence,
            StimulusEntry* e) {
  e->sequence = sequence;
  e->id = absl::StrCat(session_id, "-", sequence);
  e->generation = generation;
}

}  // namespace

std::vector<Candidate> ReferenceCandidates(absl::Span<const NamedImage> references,
                                           int per_generation, int64_t generation,
                                           int64_t first_id) {
  std::vector<Candidate> out;
  if (references.empty() || per_generation <= 0) return out;
  for (int j = 0; j < per_generation; ++j) {
    const NamedImage& image =
        references[((generation - 1) * per_generation + j) % references.size()];
    Candidate c;
    c.id = first_id + j;
    c.image = image.image;
    c.origin = kReferenceOrigin;
    out.push_back(std::move(c));
  }
  return out;
}

absl::StatusOr<std::vector<StimulusEntry>> BuildGeneration(
    const std::string& session_id, int64_t generation, int64_t first_id,
    std::vector<Candidate> candidates, std::vector<Candidate> references,
    absl::Span<const StimulusEntry* const> repeats) {
  // An extra is a reference image (references[j]) or a repeat (repeats[j]).
  struct Extra {
    int64_t id;
    const Candidate* reference;
    const StimulusEntry* repeat;
  };
  const int64_t first_extra = first_id + static_cast<int64_t>(candidates.size());
  std::vector<Extra> extras;
  for (const Candidate& r : references) {
    extras.push_back({first_extra + static_cast<int64_t>(extras.size()), &r, nullptr});
  }
  for (const StimulusEntry* shown : repeats) {
    extras.push_back({first_extra + static_cast<int64_t>(extras.size()), nullptr, shown});
  }

  auto from_candidate = [&](const Candidate& c, int64_t sequence) -> absl::StatusOr<StimulusEntry> {
    StimulusEntry e;
    Number(session_id, generation, sequence, &e);
    e.origin = c.origin;
    e.is_reference = c.origin == kReferenceOrigin;
    auto png = EncodePng(ToUint8(c.image));
    if (!png.ok()) return png.status();
    e.png = *std::move(png);
    if (c.code.defined()) {
      torch::Tensor code = c.code.to(torch::kFloat).contiguous();
      e.code.assign(code.data_ptr<float>(), code.data_ptr<float>() + code.numel());
    }
    e.model_version = c.model_version;
    e.predicted_objective = c.predicted_objective;
    return e;
  };

  const size_t total = candidates.size() + extras.size();
  std::vector<StimulusEntry> entries;
  entries.reserve(total);
  size_t next_candidate = 0, next_extra = 0;
  for (size_t slot = 0; slot < total; ++slot) {
    const bool extra_slot = next_extra < extras.size() &&
                            slot >= (2 * next_extra + 1) * total / (2 * extras.size());
    if (!extra_slot) {
      const Candidate& c = candidates[next_candidate++];
      auto e = from_candidate(c, c.id);
      if (!e.ok()) return e.status();
      entries.push_back(*std::move(e));
      continue;
    }
    const Extra& extra = extras[next_extra++];
    if (extra.reference != nullptr) {
      auto e = from_candidate(*extra.reference, extra.id);
      if (!e.ok()) return e.status();
      entries.push_back(*std::move(e));
      continue;
    }
    // The very bytes shown before, so the presentations pool.
    StimulusEntry e;
    Number(session_id, generation, extra.id, &e);
    e.origin = kRepeatOrigin;
    e.png = extra.repeat->png;
    e.code = extra.repeat->code;
    e.model_version = extra.repeat->model_version;
    e.predicted_objective = extra.repeat->predicted_objective;
    entries.push_back(std::move(e));
  }
  for (size_t i = 0; i < candidates.size(); ++i) {
    if (candidates[i].id != first_id + static_cast<int64_t>(i)) {
      return absl::InternalError(absl::StrCat("optimizer returned id ", candidates[i].id,
                                              " at position ", i, ", expected ",
                                              first_id + static_cast<int64_t>(i)));
    }
  }
  return entries;
}

std::vector<StimulusEntry> BuildValidationBlock(const std::string& session_id,
                                                int64_t generation, int64_t first_id,
                                                absl::Span<const StimulusEntry> shown,
                                                int presentations, uint64_t seed) {
  at::Generator generator = MakeGenerator(seed, absl::StrCat("validation.", generation));
  std::vector<StimulusEntry> entries;
  entries.reserve(shown.size() * static_cast<size_t>(presentations));
  for (int round = 0; round < presentations; ++round) {
    const torch::Tensor order =
        torch::randperm(static_cast<int64_t>(shown.size()), generator, torch::kLong);
    for (int64_t k = 0; k < order.size(0); ++k) {
      StimulusEntry e = shown[static_cast<size_t>(order[k].item<int64_t>())];
      Number(session_id, generation, first_id + static_cast<int64_t>(entries.size()), &e);
      e.origin = kValidationOrigin;
      e.is_reference = false;
      entries.push_back(std::move(e));
    }
  }
  return entries;
}

}  // namespace stimloop
