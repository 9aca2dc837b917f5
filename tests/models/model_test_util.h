// Helpers shared by the surrogate tests (surrogate_test.cc,
// gabor_model_test.cc): simulated cells of the tests' image size and the
// correlation their predictions are judged by.
#ifndef STIMLOOP_TESTS_MODELS_MODEL_TEST_UTIL_H_
#define STIMLOOP_TESTS_MODELS_MODEL_TEST_UTIL_H_

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <utility>

#include "models/simulated_neuron.h"

namespace stimloop {

// Image side of the tests' cells, pixels.
inline constexpr int64_t kTestImageSize = 64;

// Pearson correlation of two tensors of any shape (flattened).
inline double Correlation(const torch::Tensor& a, const torch::Tensor& b) {
  const torch::Tensor x = a.to(torch::kDouble).flatten() - a.to(torch::kDouble).mean();
  const torch::Tensor y = b.to(torch::kDouble).flatten() - b.to(torch::kDouble).mean();
  return ((x * y).sum() / (x.norm() * y.norm())).item<double>();
}

// A kTestImageSize x kTestImageSize cell, grayscale unless `channels` is 3
// (a test failure if the spec is refused).
inline std::unique_ptr<SimulatedNeuron> Neuron(CellKind kind, uint64_t seed,
                                               int64_t channels = 1) {
  SimulatedNeuronSpec spec;
  spec.kind = kind;
  spec.seed = seed;
  spec.channels = channels;
  spec.height = spec.width = kTestImageSize;
  absl::StatusOr<std::unique_ptr<SimulatedNeuron>> neuron = SimulatedNeuron::Create(spec);
  EXPECT_TRUE(neuron.ok()) << neuron.status();
  return std::move(*neuron);
}

}  // namespace stimloop

#endif  // STIMLOOP_TESTS_MODELS_MODEL_TEST_UTIL_H_
