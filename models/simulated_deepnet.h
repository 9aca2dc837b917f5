// Deep-network unit: one unit of a seed-drawn convolutional network.
//
// The model neurons of Bashivan, Kar & DiCarlo (2019) and Walker et al.
// (2019) are units of deep convolutional networks (ReLU layers with
// striding); their optimal images are textured, spatially structured
// patterns that no single linear filter or energy unit captures. This cell
// is such a unit, with weights drawn from the seed instead of trained.
//
// The network sees the luminance at a working resolution of 32 x 32 (area
// resampling: exact 2 x 2 means at 64 x 64, the image itself at 32 x 32), as
// a model neuron sees its network's input, and the contrast x - 0.5:
//   conv1  8 kernels 7 x 7: 6 Gabors (orientations 30 degrees apart +-15,
//          wavelength 3-6 px, sigma 1-1.6 px, any phase) and an ON and an
//          OFF center-surround difference of Gaussians (center sigma 0.7-1.2
//          px, surround twice it); zero-mean, unit norm
//   conv2  16 x 8 x 3 x 3, stride 2     He-uniform weights
//   conv3  16 x 16 x 3 x 3, stride 2    He-uniform weights
//   unit   1 x 16 x 3 x 3: one channel of a fourth conv layer, He-uniform,
//          at one position (a unit of the feature map, not a spatially
//          pooled channel: as a recorded neuron, it has one receptive field)
// with ELUs after conv1-3 (the nonlinearity of Walker et al.'s network; with
// thresholded ReLUs instead, ascents stall in many more local optima) and a
// ReLU at the unit: rate = peak_rate * max(z, 0) / z*. The unit's receptive
// field is 21 x 21 working pixels (2/3 of the image side), at an offset of
// 2-9 pixels on each axis (center within the central 20-60%); the network is
// evaluated on that crop alone (valid convolutions: the same as the padded
// network's unit there, as its field never reaches the border).
// Biases, set once on 256 smooth random images (1/f-like value noise drawn
// from the seed) with the weights: every channel is scaled to unit standard
// deviation of its input to the nonlinearity and shifted to threshold it
// tau_c deviations above its mean (hidden channels: tau_c in [0, 0.5]; the
// unit: tau in [0.5, 1.5], and at least 0.01 above its input at gray), so
// the unit is sparse (about 10-60% of random images drive it), every
// uniform image gives rate 0, and no layer is linear. Every weight is drawn
// from the seed with the fixed generator (simulated::ParamGenerator); the
// calibration uses LibTorch float convolutions, so a platform may differ in
// the last bits.
// Optimum: estimated (simulated::BestOfAscents, on z, which has a gradient
// where the unit is silent) from 48 uniform and 48 smooth random images and
// 8 sign patterns of z's gradient at random images, in the image's own
// pixels through the resampling up to 128 x 128 pixels, above that in the
// 32 x 32 input, each of its pixels then repeated over the block it averages
// (exact when 32 divides the sides); pixels outside the unit's field are
// gray. z* is z at that image.
#ifndef STIMLOOP_MODELS_SIMULATED_DEEPNET_H_
#define STIMLOOP_MODELS_SIMULATED_DEEPNET_H_

#include <memory>

#include "absl/status/statusor.h"
#include "models/simulated_neuron.h"

namespace stimloop {

// REQUIRES: spec is valid (SimulatedNeuron::Create checks it), kind deepnet.
absl::StatusOr<std::unique_ptr<SimulatedNeuron>> CreateDeepNetCell(const SimulatedNeuronSpec& spec);

}  // namespace stimloop

#endif  // STIMLOOP_MODELS_SIMULATED_DEEPNET_H_
