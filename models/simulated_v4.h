// V4 cell: a normalized conjunction of oriented subunits at different places.
//
// V4 cells are tuned to shape: to conjunctions of boundary fragments of
// given orientation and curvature at given positions around an object's
// center (Pasupathy & Connor 2001), well modelled by a combination of
// oriented, phase-invariant (complex-like) subunits at several positions in
// a receptive field larger than V1's (Cadieu et al. 2007), with the
// subunits' signals combined nonlinearly (Brincat & Connor 2004) and the
// response divisively normalized (Heeger 1992; Carandini & Heeger 2012).
//
// Model, on the luminance contrast x - 0.5:
//   subunits s_k = E_k / E_k*, k = 1..K (K = 2 or 3): E_k the energy of a
//            quadrature Gabor pair, E_k* its exact maximum over the box;
//   soft AND D = eps * (prod_k (1 + s_k / eps)^(1/K) - 1)
//              = geometric mean of (eps + s_k), minus eps: small eps is an
//            AND (each subunit needed), large eps tends to the mean;
//   pool     P = (1 - m) P_tuned + m P_untuned, each 1 at the "structured"
//            image (each subunit's exact optimal pattern within 2 sigma_s
//            of its center, gray elsewhere): P_tuned the energy of Gabor
//            pairs of the subunits' scale at 4 orientations (0, 45, 90, 135
//            degrees) on a square grid of spacing 2 sigma_s within 2
//            sigma_rf of the RF center, P_untuned the squared contrast of
//            every pixel the pool sees, both weighted by
//            exp(-d^2 / (2 sigma_rf^2)) of the distance d to the RF center
//            (orientation-tuned and broadband normalization: contrast
//            anywhere in the RF suppresses);
//   rate     = peak_rate * R / R*, R = D / (sigma_n + P).
// Drawn from the seed: RF center in the central 20% of each axis, sigma_rf
// 0.12-0.16 of min(height, width); subunit sigma_s 0.05-0.07 of it,
// wavelength 2-3 sigma_s (one scale for all subunits); subunits at 0.8-1.2
// sigma_rf from the RF center, in directions 120 degrees (+-30) apart for
// K = 3, 90-180 degrees apart for K = 2; orientations uniform, redrawn until
// every pair differs by at least 30 degrees; eps in [0.03, 0.2] (with K = 2
// one subunit alone gives D = 15-29% of the conjunction's; with the lower
// pool of a lone fragment, 25-45% of the optimum's rate); sigma_n in
// [0.1, 0.5]; m in [0.4, 0.8] (full-contrast noise around the fragments
// brings the rate down to ~45-80%). Gabor envelopes are cut at simulated::kSupportSigmas.
// The subunits have no position tolerance beyond their own phase invariance
// (no max over shifted copies as in Cadieu et al.'s C2 layer). Images whose
// short side passes 64 pixels are seen through simulated::WorkingGrid's
// block means (same cell, same cost as at 64; the optimum is the working
// one repeated over the blocks).
// Optimum: a few oriented grating fragments at the subunits' places in a
// gray field, estimated (simulated::BestOfAscents) from 4 structured starts
// (as the structured image, with radii 1.5-3 sigma_s), 40 uniform and 40
// smooth random images and 8 sign patterns of the rate's gradient at random
// images; pixels no filter sees are gray; R* is its rate.
#ifndef STIMLOOP_MODELS_SIMULATED_V4_H_
#define STIMLOOP_MODELS_SIMULATED_V4_H_

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "models/simulated_neuron.h"

namespace stimloop {

// In image pixels.
struct V4Params {
  double center_x = 0, center_y = 0;  // RF center, pixels
  double sigma_rf = 0;                // pixels
  std::vector<GaborParams> subunits;  // K = 2 or 3, one sigma and wavelength
  double eps = 0;                     // soft AND constant
  double sigma_n = 0;                 // normalization constant, in units of P_ref
  double untuned = 0;                 // the untuned contrast's share m of the pool
};
V4Params DrawV4Params(const SimulatedNeuronSpec& spec);

// REQUIRES: spec is valid (SimulatedNeuron::Create checks it), kind v4.
absl::StatusOr<std::unique_ptr<SimulatedNeuron>> CreateV4Cell(const SimulatedNeuronSpec& spec);

}  // namespace stimloop

#endif  // STIMLOOP_MODELS_SIMULATED_V4_H_
