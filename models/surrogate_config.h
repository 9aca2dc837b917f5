// What a session config says about its surrogate, parsed and validated.
//
// Numeric parameters come from the map "surrogate.params" (all optional):
//
//   key                 default  range          meaning
//   ensemble_size       5        [1, 32]        ensemble members M
//   max_epochs          200      [1, 100000]    passes over the training split
//   patience            20       [1, 100000]    epochs without a better held-out
//                                               loss before training stops
//   warm_start          1        {0, 1}         1: a refit starts from the session's previous
//                                               version (models/trainer.h), every fit holding
//                                               out the same stimuli; 0: every fit from
//                                               scratch, held-out stimuli drawn per fit
//                                               (BENCHMARKS.md, "Refit and proposal cost")
//   warm_patience       3        [1, 100000]    patience of a warm-started refit
//   feature_cache       1        {0, 1}         1: each stimulus' front-end features are
//                                               computed once and kept for the session's
//                                               refits (models/feature_cache.h; memory
//                                               F*h*w*4 bytes per stimulus); 0: every
//                                               refit computes them anew. Same models.
//   batch_size          64       [1, 65536]     trials per Adam step
//   learning_rate       0.01     [1e-6, 1]      Adam step size
//   weight_decay        0        [0, 1]         L2 on the trainable core
//   l1_mask             10       [0, 100]       L1 on the readout's free spatial masks
//                                               (chosen with bench/surrogate_fit:
//                                               docs/experiments.md; the Gaussian
//                                               readout reads one point, no L1)
//   l1_features         0.1      [0, 100]       L1 on the readout's feature weights
//   holdout_fraction    0.2      [0.05, 0.5]    share of distinct stimuli held
//                                               out for early stopping/metrics
//   loss                0        {0, 1}         0 Poisson NLL, 1 mean squared error
//   output              0        {0, 1}         rate nonlinearity: 0 softplus, 1 exp
//   readout             0        {0, 1}         the readout's "where": 0 a free spatial
//                                               mask (Klindt et al. 2017), 1 Gaussian
//                                               (the features at one learned point,
//                                               Lurz et al. 2021; models/readout.h;
//                                               use l1_features 3 with it:
//                                               docs/experiments.md)
//   core_channels       16       [0, 256]       hidden channels of the trainable
//                                               1x1 core (0: readout sees the
//                                               front end's features directly)
//   normalization       0        {0, 1}         1: the rate is divided by a learned
//                                               pool of the same features (divisive
//                                               normalization, models/surrogate.h)
//   min_trials          50       [8, 1e9]       FitSurrogate refuses fewer trials
//   model_class         0        {0, 1, 2}      0 the flexible model (front end,
//                                               core, readout: models/surrogate.h);
//                                               1 the parametric Gabor model, one
//                                               quadrature Gabor pair per neuron with
//                                               linear and energy subunits
//                                               (models/gabor_model.h); the keys from
//                                               max_epochs to core_channels and the
//                                               gabor_* bank keys do not apply to it;
//                                               2 both in one ensemble, the parametric
//                                               members joining when they predict the
//                                               held-out trials at least as well
//                                               (models/paired_fit.h)
//   parametric_starts   8        [1, 256]       model_class 1 and 2: starts fitted per
//                                               neuron and member (models/gabor_fit.h;
//                                               with 2, one of them is the previous
//                                               version's fit)
//   parametric_steps    300      [10, 100000]   model_class 1 and 2: Adam steps per fit
//   gabor_scales        4        [1, 8]         Gabor front end: number of scales
//   gabor_orientations  8        [2, 16]        orientations over [0, pi)
//   gabor_min_wavelength 0.1     [0.02, 1]      shortest wavelength, fraction of
//                                               min(height, width)
//   gabor_max_wavelength 0.4     [0.02, 2]      longest (>= the shortest)
//   gabor_sigma_ratio   0.45     [0.1, 2]       envelope sigma / wavelength
//   gabor_stride        4        [1, 16]        feature grid stride in pixels
//
// When refits happen and which version a generation uses (refit_every,
// refit_lag) is the refit scheduler's part of the same map:
// models/refit_scheduler.h.
//
// Unknown keys and values out of range are INVALID_ARGUMENT naming
// "surrogate.params.<key>" (base/params.h).
//
// Paths (strings of the session config, checked when the surrogate is made,
// see models/torchscript_model.h): frontend_path replaces the Gabor front
// end with a TorchScript module; model_path replaces the whole surrogate
// (then nothing is ever refit). At most one of them may be set; neither
// with model_class 1, and no model_path with model_class 2 (INVALID_ARGUMENT
// naming the path).
#ifndef STIMLOOP_MODELS_SURROGATE_CONFIG_H_
#define STIMLOOP_MODELS_SURROGATE_CONFIG_H_

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "base/params.h"

namespace stimloop {

enum class SurrogateLoss { kPoisson = 0, kMse = 1 };
enum class RateNonlinearity { kSoftplus = 0, kExp = 1 };
enum class ReadoutMask { kFree = 0, kGaussian = 1 };
enum class SurrogateClass { kFlexible = 0, kParametricGabor = 1, kPaired = 2 };

struct GaborBankSpec {
  int64_t scales = 4;
  int64_t orientations = 8;
  double min_wavelength = 0.1;  // fraction of min(height, width)
  double max_wavelength = 0.4;
  double sigma_ratio = 0.45;
  int64_t stride = 4;
};

struct SurrogateSpec {
  int64_t ensemble_size = 5;
  int64_t max_epochs = 200;
  int64_t patience = 20;
  bool warm_start = true;
  int64_t warm_patience = 3;
  bool feature_cache = true;
  int64_t batch_size = 64;
  double learning_rate = 0.01;
  double weight_decay = 0;
  double l1_mask = 10;
  double l1_features = 0.1;
  double holdout_fraction = 0.2;
  SurrogateLoss loss = SurrogateLoss::kPoisson;
  RateNonlinearity output = RateNonlinearity::kSoftplus;
  ReadoutMask readout = ReadoutMask::kFree;
  int64_t core_channels = 16;
  bool normalization = false;
  int64_t min_trials = 50;
  SurrogateClass model_class = SurrogateClass::kFlexible;
  int64_t parametric_starts = 8;
  int64_t parametric_steps = 300;
  GaborBankSpec gabor;
  std::string frontend_path;  // TorchScript front end, or empty
  std::string model_path;     // TorchScript whole model, or empty
};

// The name of the map in error messages.
inline constexpr char kSurrogateParamsPrefix[] = "surrogate.params";

// Reads the keys above through `reader` (over "surrogate.params") into
// `spec`, over its current values; bad values are recorded in the reader
// (ParamReader::Finish reports them and any key nobody read).
void ReadSurrogateParams(ParamReader& reader, SurrogateSpec* spec);

// Sets the paths of `spec` after checking them against each other and the
// model class (not opened here). INVALID_ARGUMENT naming the path; `spec` is
// unchanged then.
absl::Status SetSurrogatePaths(std::string frontend_path, std::string model_path,
                               SurrogateSpec* spec);

// Reads `params` (the "surrogate.params" map, every key a surrogate key)
// over the defaults above, then the paths.
// INVALID_ARGUMENT names the first bad field; "config.surrogate.model_path"
// when both paths are set. The paths are not opened here.
absl::StatusOr<SurrogateSpec> ParseSurrogateSpec(const std::map<std::string, double>& params,
                                                 std::string frontend_path = "",
                                                 std::string model_path = "");

}  // namespace stimloop

#endif  // STIMLOOP_MODELS_SURROGATE_CONFIG_H_
