// The one definition of a session's "best measured image", used by the
// server (GetSession's best_measured, GetBestStimuli, WatchSession's
// best_objective, the validation block's candidates) and by the inspection
// tools (show, top, report), so that every place names the same image.
// Stated for the wire in stimloop.proto at Session.best_measured.
//
// An image is one of the optimizer's images with every presentation of it
// pooled (repeats and validation blocks re-show it under new ids); reference
// images are not candidates. The caller lists the images in order of first
// showing.
#ifndef STIMLOOP_BASE_BEST_MEASURED_H_
#define STIMLOOP_BASE_BEST_MEASURED_H_

#include <cstddef>
#include <optional>
#include <vector>

namespace stimloop {

struct MeasuredImage {
  double mean_objective = 0;  // over every presentation; unused when none
  int presentations = 0;      // responses with rates
  bool in_validation_block = false;  // a proposed validation block re-shows it
};

// The fewest presentations an image needs to be the best when no
// validation block was proposed: 2 when repeats are on and some image was
// shown twice (a single lucky trial does not win), else 1.
int MinPresentationsForBest(const std::vector<MeasuredImage>& images, bool repeats_on);

// Whether images[i] may be the best: once a validation block was proposed,
// only the images in one (with a presentation); before, those with at
// least MinPresentationsForBest presentations.
std::vector<bool> EligibleForBest(const std::vector<MeasuredImage>& images, bool repeats_on);

// The measured images (presentations > 0), best first: the eligible ones by
// higher mean objective, then the others the same way; ties go to the
// earlier first showing (the lower index). The first, when there is one,
// is the session's best measured image.
std::vector<size_t> RankMeasuredImages(const std::vector<MeasuredImage>& images,
                                       bool repeats_on);

// The index of the best measured image; nullopt before any response.
std::optional<size_t> BestMeasuredImage(const std::vector<MeasuredImage>& images,
                                        bool repeats_on);

}  // namespace stimloop

#endif  // STIMLOOP_BASE_BEST_MEASURED_H_
