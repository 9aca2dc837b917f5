// V1 Gabor cells with an exact optimum: simple, complex and plaid.
//
// Simple cell (linear-nonlinear): drive = <w, x - 0.5> with w a Gabor
//   receptive field; rate = peak_rate * (max(drive, 0) / drive*)^exponent,
//   where drive* is the largest drive any image in [0, 1] reaches.
// Complex cell (energy model): a quadrature pair of Gabors w1, w2;
//   rate = peak_rate * (<w1, x-0.5>^2 + <w2, x-0.5>^2) / energy*.
// Both reach exactly peak_rate at their optimum over the [0, 1] pixel box:
//   simple: x = 1 where w > 0, else 0 (the sign pattern of the weights);
//   complex: the best sign pattern of cos(t) w1 + sin(t) w2 over the phase
//   angle t in the pair's plane, found exactly by visiting every interval
//   between the angles where one weight changes sign.
// Plaid cell (linear-nonlinear, outside the one-Gabor class of the
//   parametric surrogate, models/gabor_model.h): as a simple cell, with w the
//   normalized sum of two Gabors of the same size and wavelength at the same
//   place, oriented 45-90 degrees apart (the second orientation and phase
//   drawn from their own stream of the seed, so its first Gabor is the simple
//   cell's of the same seed); optimum: the sign pattern of w.
// Receptive field position, orientation, spatial frequency, phase and size
// are drawn from the neuron's seed (simulated::DrawGabor): center within
// the central 50% of each axis, sigma 0.06-0.12 of min(height, width),
// wavelength 2-3 sigma, any orientation and phase.
// Weights are zero-mean, so any uniform image (gray included) gives rate 0.
// For RGB images the cell sees luminance: the same weights on every channel.
#ifndef STIMLOOP_MODELS_SIMULATED_GABOR_H_
#define STIMLOOP_MODELS_SIMULATED_GABOR_H_

#include <memory>

#include "absl/status/statusor.h"
#include "models/simulated_neuron.h"

namespace stimloop {

// REQUIRES: spec is valid (SimulatedNeuron::Create checks it) and
// spec.kind is simple, complex or plaid.
absl::StatusOr<std::unique_ptr<SimulatedNeuron>> CreateGaborCell(const SimulatedNeuronSpec& spec);

}  // namespace stimloop

#endif  // STIMLOOP_MODELS_SIMULATED_GABOR_H_
