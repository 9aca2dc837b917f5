// Color cell: a V1 double-opponent cell (RGB images only).
//
// Double-opponent cells are both chromatically and spatially opponent: an
// oriented receptive field whose subregions have opposite cone-opponent
// signs, e.g. L-M (red-green) or S-(L+M) (blue-yellow), so they respond to
// chromatic edges and gratings and, more weakly, to luminance ones (Conway
// 2001; Johnson, Hawken & Shapley 2001, 2008; Shapley & Hawken 2011).
//
// Model (linear-nonlinear, like the simple cell of models/simulated_gabor.h):
//   drive = sum_c a_c <g, x_c - 0.5>,
//   rate  = peak_rate * (max(drive, 0) / drive*)^exponent,
// with g the Gabor of simulated::DrawGabor (the simple cell's of the same
// seed) and a the cell's channel weights on R, G, B: a chromatic axis, red-
// green (1, -1, 0) with probability 2/3 (L-M cells are the majority) or
// blue-yellow (-1/2, -1/2, 1), plus a luminance leak b (1, 1, 1) / 3 with b
// drawn in [0.2, 1.0] (the best achromatic image drives the cell 10-43%
// (red-green) or 10-60% (blue-yellow) as much as its optimum). The sign of
// the opponency is the Gabor's phase.
// Optimum (exact): x_c = 1 where a_c g > 0, else 0, channel by channel.
// A uniform image (any color) gives rate 0: g is zero-mean.
// Gray images carry no chromatic contrast, so 1-channel specs are
// INVALID_ARGUMENT (a luminance fallback would be a mislabelled simple cell).
#ifndef STIMLOOP_MODELS_SIMULATED_COLOR_H_
#define STIMLOOP_MODELS_SIMULATED_COLOR_H_

#include <memory>

#include "absl/status/statusor.h"
#include "models/simulated_neuron.h"

namespace stimloop {

// The channel weights a_R, a_G, a_B of a color cell of this spec.
struct ColorAxis {
  bool red_green = true;  // else blue-yellow
  double luminance = 0;   // the leak b
  double r = 0, g = 0, b = 0;
};
ColorAxis DrawColorAxis(const SimulatedNeuronSpec& spec);

// REQUIRES: spec is valid (SimulatedNeuron::Create checks it), kind color.
absl::StatusOr<std::unique_ptr<SimulatedNeuron>> CreateColorCell(const SimulatedNeuronSpec& spec);

}  // namespace stimloop

#endif  // STIMLOOP_MODELS_SIMULATED_COLOR_H_
