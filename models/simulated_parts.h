// Building blocks shared by the simulated neurons (models/simulated_*.h):
// the portable parameter generator, Gabor receptive fields, the exact
// optimum of an energy unit, and the ascent that estimates an optimum where
// no exact one is known. Internal to models/; tests reach the cells through
// models/simulated_neuron.h.
#ifndef STIMLOOP_MODELS_SIMULATED_PARTS_H_
#define STIMLOOP_MODELS_SIMULATED_PARTS_H_

#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <vector>

#include "base/seed.h"
#include "models/simulated_neuron.h"

namespace stimloop {
namespace simulated {

inline constexpr double kPi = 3.14159265358979323846;

// Parameters are drawn from a std::mt19937_64 (its output sequence is fixed
// by the standard) through fixed mappings, never through std::*_distribution
// (whose algorithms are implementation-defined): the same seed draws the same
// cell on every platform.
class ParamGenerator {
 public:
  explicit ParamGenerator(uint64_t seed) : gen_(seed) {}
  // Uniform in [lo, hi) from a 53-bit draw.
  double Uniform(double lo, double hi);
  // Uniform integer in [lo, hi]. REQUIRES: lo <= hi.
  int64_t Int(int64_t lo, int64_t hi);

 private:
  std::mt19937_64 gen_;
};

// The generator of the stream `tag` of `seed`: SplitMix64(seed ^ tag), so a cell
// draws its extra parameters without moving the V1 Gabor's stream
// (SplitMix64(seed), DrawGabor).
ParamGenerator StreamOf(uint64_t seed, uint64_t tag);

// The V1 receptive field of `spec` (simple, complex, plaid, endstopped and
// color cells of one seed share it): center within the central 50% of each
// axis, sigma 0.06-0.12 of min(height, width), wavelength 2-3 sigma, any
// orientation and phase.
GaborParams DrawGabor(const SimulatedNeuronSpec& spec);

// Gabor weights [H*W] (double) with the given phase, made zero-mean by
// subtracting the envelope times the carrier's envelope-weighted mean, so
// that sum(w) == 0 (up to rounding) and a uniform image gives no drive. The
// envelope is cut to 0 beyond `support` sigmas from the center.
std::vector<double> GaborWeights(const GaborParams& g, int64_t height, int64_t width, double phase,
                                 double support = std::numeric_limits<double>::infinity());

// Gabor envelopes cut at this many sigmas (where the Gaussian is 3e-4 of its
// peak) in the banks of the newer cells: pixels beyond every filter's
// support do not matter at all (their optimum shows them gray), and the
// float ascent meets no denormal weights.
inline constexpr double kSupportSigmas = 4.0;

// Sign pattern s in {-1, +1}^n maximizing (<a, s>^2 + <b, s>^2), exactly
// (O(n log n): see the definition).
std::vector<double> BestQuadratureSigns(const std::vector<double>& a, const std::vector<double>& b);

// Columns [H*W, 2 * n] (double): the quadrature pair (phase, phase + pi/2) of
// each Gabor, in order, cut at `support` sigmas.
torch::Tensor QuadratureBank(const std::vector<GaborParams>& gabors, int64_t height, int64_t width,
                             double support = kSupportSigmas);

// 1 where some column of `bank` ([H*W, n]) is nonzero, else 0: [1, 1, H, W]
// float, the pixels the cell sees.
torch::Tensor Support(const torch::Tensor& bank, int64_t height, int64_t width);

// Energy (<w1, x - 0.5>^2 + <w2, x - 0.5>^2) of the best [0, 1] image for
// one quadrature pair (column 2i, 2i + 1 of a QuadratureBank): exact.
double MaxPairEnergy(const torch::Tensor& bank, int64_t pair);

// Energies [N, n] of the n quadrature pairs of `bank` ([H*W, 2n], any
// floating dtype) for luminance images [N, H*W] of the same dtype:
// <w1, x - 0.5>^2 + <w2, x - 0.5>^2 per pair.
torch::Tensor PairEnergies(const torch::Tensor& luminance, const torch::Tensor& bank);

// Luminance [N, H*W] (double) of images [N, C, H, W]: the mean over the
// channels (exact for a gray image repeated on the channels).
torch::Tensor Luminance(const torch::Tensor& images);

// The grid the v4 and endstopped cells compute on: the image itself while
// its short side is at most 64 pixels; above that, means over f x f blocks
// (area resampling), f = ceil(min(H, W) / 64), so that a larger image costs
// what a 64-pixel one does (their banks are dense [pixels, filters]).
// Parameters are drawn in image pixels and mapped onto it.
class WorkingGrid {
 public:
  WorkingGrid(int64_t image_height, int64_t image_width);
  int64_t height() const { return height_; }
  int64_t width() const { return width_; }
  // Image pixels -> working pixels.
  double ToWorkingX(double x) const { return x / scale_x_; }
  double ToWorkingY(double y) const { return y / scale_y_; }
  double ToWorkingLength(double length) const { return 2 * length / (scale_x_ + scale_y_); }
  GaborParams ToWorking(const GaborParams& g) const;
  // Luminance [N, H*W] (any floating dtype) -> [N, h*w]: area means,
  // differentiable; the identity when the grid is the image.
  torch::Tensor Downsample(const torch::Tensor& luminance) const;
  // Working images [N, 1, h, w] -> [N, 1, H, W] (each pixel repeated).
  torch::Tensor Upsample(const torch::Tensor& images) const;

 private:
  int64_t image_height_, image_width_, height_, width_;
  double scale_y_, scale_x_;  // image pixels per working pixel
};

// Random start images [n, 1, H, W] (float, in [0, 1]) drawn from `gen`:
// uniform pixel noise when `smooth` is false, else "value noise" with a
// roughly 1/f spectrum (uniform grids of 4, 8, 16 and 32 cells per side,
// each upsampled bilinearly, weighted by cell size, summed, clipped).
torch::Tensor RandomImages(ParamGenerator& gen, int64_t n, int64_t height, int64_t width,
                           bool smooth);

// A rate function to maximize: images [B, ...] (float) -> [B], differentiable.
using RateFunction = std::function<torch::Tensor(const torch::Tensor&)>;

// 0/1 images [B, ...]: 1 where the gradient of `f` at each of `images` is
// positive, the best image of f's linearization there.
torch::Tensor GradientSignImages(const RateFunction& f, const torch::Tensor& images);

struct AscentOptions {
  int explore_steps = 100;      // every start
  int keep = 8;                 // the best end points of the exploration go on
  int refine_steps = 300;       // for those
  double learning_rate = 0.05;  // Adam's, each stage decayed on a cosine to 1/20 of it
};

// The estimate of an optimum used by the cells without an exact one:
// projected gradient ascent of `f` (Adam on the pixels, each step followed by
// clipping into [0, 1]) from every start at once for explore_steps, then
// from the `keep` best end points for refine_steps more; returns the best by
// `f` among the refined end points, their 0/1 roundings and the starts
// themselves, [1, ...].
torch::Tensor BestOfAscents(const RateFunction& f, const torch::Tensor& starts,
                            const AscentOptions& options);

}  // namespace simulated
}  // namespace stimloop

#endif  // STIMLOOP_MODELS_SIMULATED_PARTS_H_
