// The parts of model-based image optimization, after the sinzlab `mei`
// library (Walker et al. 2019, Nat Neurosci 22:2060): each trick is a small
// object with one job, and gradient_ascent's loop composes them. Images are
// float [N, C, H, W] in [0, 1]; every part is deterministic given its inputs
// (randomness only through the generator passed in).
//
//   transform     Jitter: a random circular shift each step, so the image
//                 must drive the model wherever it lands by a few pixels
//                 (Walker et al.: "jitter"; Olah et al. 2017 "transformation
//                 robustness").
//   precondition  GradientBlur: Gaussian blur of the image gradient, which
//                 suppresses the high-frequency patterns a model is most
//                 wrong about (Walker et al.: gradient blurring).
//   constraint    ImageConstraint: the [0, 1] pixel box and an optional
//                 RMS-contrast budget (Walker et al. fix the image norm).
//   stopper       FixedSteps.
//   score         PredictObjective: the ensemble's predicted objective,
//                 member mean and member standard deviation.
//   diversity     MeanPairwiseCosine: similarity within a batch, to penalize.
#ifndef STIMLOOP_OPTIMIZERS_MEI_PARTS_H_
#define STIMLOOP_OPTIMIZERS_MEI_PARTS_H_

#include <cstdint>

#include "models/response_model.h"
#include "optimizers/objective.h"
#include <torch/types.h>

namespace stimloop {

// Shifts the whole batch circularly by (dy, dx), each uniform in
// [-max_shift, max_shift], drawn from `generator`. Differentiable. Identity
// when max_shift is 0 (and then draws nothing).
class Jitter {
 public:
  explicit Jitter(int64_t max_shift) : max_shift_(max_shift) {}
  torch::Tensor operator()(const torch::Tensor& images, at::Generator& generator) const;
  int64_t max_shift() const { return max_shift_; }

 private:
  int64_t max_shift_;
};

// Blurs a gradient [N, C, H, W] with a Gaussian of standard deviation
// `sigma` pixels (separable, kernel radius ceil(3 sigma), edges replicated),
// channel by channel. Identity when sigma is 0.
class GradientBlur {
 public:
  explicit GradientBlur(double sigma);
  torch::Tensor operator()(const torch::Tensor& gradient) const;

 private:
  double sigma_;
  torch::Tensor kernel_;  // [K] float, sums to 1; undefined when sigma is 0
};

// Clamps images to [0, 1]. Forward it is clamp(0, 1); its gradient also
// reaches a pixel outside the box when a descent step would move it back
// in (above 1 with a positive gradient of the loss, below 0 with a
// negative one), so a pixel that saturated on the wrong side can be pulled
// back; a plain clamp's zero gradient there leaves it stuck for good.
torch::Tensor ClampToBox(const torch::Tensor& images);

// Maps images into the feasible set, differentiably: when
// max_rms_contrast > 0, each image's deviation from its own mean is scaled
// down (never up) so its RMS contrast (standard deviation over all pixels)
// is at most max_rms_contrast; then pixels are clamped to [0, 1]
// (ClampToBox).
class ImageConstraint {
 public:
  explicit ImageConstraint(double max_rms_contrast) : max_rms_contrast_(max_rms_contrast) {}
  torch::Tensor operator()(const torch::Tensor& images) const;

 private:
  double max_rms_contrast_;
};

// Stops after a fixed number of steps.
class FixedSteps {
 public:
  explicit FixedSteps(int64_t steps) : steps_(steps) {}
  // True once `step` (0-based) steps have been taken.
  bool Stop(int64_t step) const { return step >= steps_; }
  int64_t steps() const { return steps_; }

 private:
  int64_t steps_;
};

// The ensemble's predicted objective for each image: objective(member
// rates) for every member ([M, N]), their mean over members and their
// standard deviation over members (0 for one member), both [N]. All
// differentiable with respect to images.
struct PredictedObjective {
  torch::Tensor mean;
  torch::Tensor spread;
  torch::Tensor members;
};
PredictedObjective PredictObjective(const ResponseModel& model, const Objective& objective,
                                    const torch::Tensor& images);

// As PredictObjective, without gradients, in chunks of `chunk` images.
PredictedObjective PredictObjectiveNoGrad(const ResponseModel& model, const Objective& objective,
                                          const torch::Tensor& images, int64_t chunk = 256);

// Cosine similarities [N, N] between the images' deviations from mid-gray
// (x - 0.5, flattened); 0 for an all-gray image. Differentiable.
torch::Tensor CosineSimilarities(const torch::Tensor& images);

// The mean of CosineSimilarities over pairs i != j; 0 when N < 2.
torch::Tensor MeanPairwiseCosine(const torch::Tensor& images);

}  // namespace stimloop

#endif  // STIMLOOP_OPTIMIZERS_MEI_PARTS_H_
