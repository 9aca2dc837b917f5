// End-stopped cell: a V1 complex cell suppressed by an iso-oriented surround
// that is strongest at its end zones.
//
// End-stopped ("hypercomplex") cells respond best to a bar or grating of
// limited length and less to a longer one (Hubel & Wiesel 1965; Dobbins,
// Zucker & Cynader 1987); most V1 cells are also suppressed by a grating
// extending into the surround, most by iso-oriented ones, the suppression
// often strongest at the ends (Cavanaugh, Bair & Movshon 2002 a, b, whose
// ratio-of-Gaussians model is the divisive form used here).
//
// Model, on the luminance contrast x - 0.5:
//   center   E_c = the energy of a quadrature Gabor pair (the complex cell of
//            models/simulated_gabor.h of the same seed), s_c = E_c / E_c*
//            with E_c* its exact maximum over the pixel box;
//   surround S = sum_j u_j E_j / E_c*: energies of Gabor pairs of the
//            center's size and wavelength at 4 orientations (the center's,
//            and 45, 90, 135 degrees from it) on a square grid of spacing 1.5
//            sigma within 5 sigma of the center, weighted
//            u_j = ring(r_j) * ends(angle_j) * tuning(orientation_j):
//            ring(r) = exp(-(r - 3 sigma)^2 / (2 sigma^2)), an annulus;
//            ends = e + (1 - e) cos^2(angle between the direction to the
//            filter and the stripes' long axis), strongest at the end zones;
//            tuning = 1 for the center's orientation, c for the others
//            (iso-oriented suppression strongest);
//   rate     = peak_rate * R / R*, R = s_c / (1 + k S).
// Drawn from the seed: the center (simulated::DrawGabor: center in the
// central 50% of each axis, sigma 0.06-0.12 of the image, wavelength 2-3
// sigma), e in [0.1, 0.6] (0.1: end zones only, nearly pure end-stopping;
// 0.6: a nearly uniform annulus), c in [0.2, 0.5], and the suppression
// strength kappa in [1.5, 6], with k = kappa / S(full-field grating): a
// full-field square-wave grating at the preferred orientation, wavelength
// and phase gives R ~ 1 / (1 + kappa), a suppression index of ~0.5-0.8
// against the optimum, the range Cavanaugh et al. 2002 report.
// Gabor envelopes are cut at simulated::kSupportSigmas. Images whose short
// side passes 64 pixels are seen through simulated::WorkingGrid's block
// means (gabor() stays in image pixels).
// Its optimum is a grating patch of limited length (and width) in a gray
// annulus, not a full-field pattern. Estimated (simulated::BestOfAscents)
// from 15 structured starts (the center's exact optimal pattern cut to
// windows 1-3 sigma long and 1.5-4 sigma wide, gray outside), 24 uniform and
// 24 smooth random images and 8 sign patterns of the rate's gradient at
// random images; pixels no filter sees are gray; R* is its rate.
#ifndef STIMLOOP_MODELS_SIMULATED_ENDSTOPPED_H_
#define STIMLOOP_MODELS_SIMULATED_ENDSTOPPED_H_

#include <memory>

#include "absl/status/statusor.h"
#include "models/simulated_neuron.h"

namespace stimloop {

// REQUIRES: spec is valid (SimulatedNeuron::Create checks it), kind endstopped.
absl::StatusOr<std::unique_ptr<SimulatedNeuron>> CreateEndStoppedCell(
    const SimulatedNeuronSpec& spec);

}  // namespace stimloop

#endif  // STIMLOOP_MODELS_SIMULATED_ENDSTOPPED_H_
