// The surrogate ensemble and its trainer, on simulated neurons.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "clients/simulated_trials.h"
#include "models/gabor_frontend.h"
#include "models/simulated_neuron.h"
#include "models/surrogate.h"
#include "models/surrogate_config.h"
#include "models/torchscript_model.h"
#include "models/trainer.h"
#include "tests/models/model_test_util.h"

namespace stimloop {
namespace {

constexpr int64_t kSize = kTestImageSize;
constexpr double kWindowS = 0.2;

SurrogateSpec Spec(std::map<std::string, double> params = {}) {
  absl::StatusOr<SurrogateSpec> spec = ParseSurrogateSpec(params);
  EXPECT_TRUE(spec.ok()) << spec.status();
  return *spec;
}

std::shared_ptr<const FrontEnd> Gabor(const SurrogateSpec& spec) {
  absl::StatusOr<std::shared_ptr<const FrontEnd>> front_end = MakeFrontEnd(spec, {1, kSize, kSize});
  EXPECT_TRUE(front_end.ok()) << front_end.status();
  return *front_end;
}

// ParseSurrogateSpec refuses `params` with a message containing `message`.
void ExpectSpecError(const std::map<std::string, double>& params, const std::string& message) {
  absl::StatusOr<SurrogateSpec> spec = ParseSurrogateSpec(params);
  ASSERT_FALSE(spec.ok()) << message;
  EXPECT_NE(spec.status().message().find(message), std::string::npos) << spec.status();
}

TEST(SurrogateSpecTest, DefaultsAndErrorsNameTheField) {
  const SurrogateSpec spec = Spec();
  EXPECT_EQ(spec.ensemble_size, 5);
  EXPECT_EQ(spec.loss, SurrogateLoss::kPoisson);
  absl::StatusOr<SurrogateSpec> bad = ParseSurrogateSpec({{"ensemble_size", 0}});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("surrogate.params.ensemble_size"), std::string::npos)
      << bad.status();
  ExpectSpecError({{"learning_rat", 0.1}}, "surrogate.params.learning_rat: unknown");
  ExpectSpecError({{"loss", 0.5}}, "not a whole number");
  EXPECT_EQ(spec.readout, ReadoutMask::kFree);
  EXPECT_EQ(Spec({{"readout", 1}}).readout, ReadoutMask::kGaussian);
  ExpectSpecError({{"readout", 2}}, "surrogate.params.readout: 2 is outside [0, 1]");
  EXPECT_TRUE(spec.warm_start);
  EXPECT_EQ(spec.warm_patience, 3);
  EXPECT_FALSE(Spec({{"warm_start", 0}}).warm_start);
  ExpectSpecError({{"warm_patience", 0}},
                  "surrogate.params.warm_patience: 0 is outside [1, 100000]");
  EXPECT_TRUE(spec.feature_cache);
  EXPECT_FALSE(Spec({{"feature_cache", 0}}).feature_cache);
  ExpectSpecError({{"feature_cache", 2}}, "surrogate.params.feature_cache: 2 is outside [0, 1]");
  bad = ParseSurrogateSpec({}, "a.pt", "b.pt");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("config.surrogate.model_path"), std::string::npos);
}

// The bank's kernels, written out pixel by pixel from their definition
// (models/gabor_frontend.h): [2 O, k, k], even then odd, zero mean, unit norm.
torch::Tensor DirectKernels(double wavelength, double sigma, int64_t radius,
                            int64_t orientations) {
  const int64_t k = 2 * radius + 1;
  torch::Tensor kernels = torch::empty({2 * orientations, k, k}, torch::kDouble);
  torch::Tensor envelope = torch::empty({k, k}, torch::kDouble);
  for (int64_t o = 0; o < orientations; ++o) {
    const double theta = M_PI * o / orientations;
    for (int64_t y = 0; y < k; ++y) {
      for (int64_t x = 0; x < k; ++x) {
        const double dx = x - radius, dy = y - radius;
        const double along = std::cos(theta) * dx + std::sin(theta) * dy;
        const double e = std::exp(-(dx * dx + dy * dy) / (2 * sigma * sigma));
        envelope[y][x] = e;
        kernels[o][y][x] = e * std::cos(2 * M_PI * along / wavelength);
        kernels[orientations + o][y][x] = e * std::sin(2 * M_PI * along / wavelength);
      }
    }
  }
  const torch::Tensor dc = kernels.sum({1, 2}, true) / envelope.sum();
  kernels = kernels - dc * envelope.unsqueeze(0);
  return (kernels / kernels.pow(2).sum({1, 2}, true).sqrt()).to(torch::kFloat);
}

// The separable computation equals the 2-D Gabor convolution it replaces,
// in value and in gradient, for gray and color images, square or not, at
// any stride.
TEST(GaborFrontEndTest, SeparableBankEqualsTheTwoDimensionalConvolution) {
  struct Case {
    int64_t channels, height, width, stride;
  };
  for (const Case& c : {Case{1, 64, 64, 4}, Case{3, 24, 40, 3}, Case{1, 17, 17, 1}}) {
    SCOPED_TRACE(testing::Message() << c.channels << "x" << c.height << "x" << c.width
                                    << " stride " << c.stride);
    GaborBankSpec spec;
    spec.stride = c.stride;
    GaborBank bank(spec, c.channels, c.height, c.width);
    torch::manual_seed(5);
    const torch::Tensor images = torch::rand({3, c.channels, c.height, c.width});
    // Against the 2-D convolution with Kernels2d, whose kernels are checked
    // against the definition, pixel by pixel.
    const torch::Tensor features = bank->forward(images);
    const torch::Tensor reference = bank->ForwardByConvolution(images);
    ASSERT_EQ(features.sizes(), reference.sizes());
    EXPECT_LT((features - reference).abs().max().item<float>(), 1e-4);
    // And the same gradient with respect to the images (what the ascent uses).
    const torch::Tensor weights = torch::randn(features.sizes());
    auto image_gradient = [&](auto forward) {
      const torch::Tensor x = images.clone().requires_grad_(true);
      (forward(x) * weights).sum().backward();
      return x.grad();
    };
    const torch::Tensor gradient =
        image_gradient([&](const torch::Tensor& x) { return bank->forward(x); });
    const torch::Tensor reference_gradient =
        image_gradient([&](const torch::Tensor& x) { return bank->ForwardByConvolution(x); });
    EXPECT_GT(reference_gradient.abs().max().item<float>(), 0);
    EXPECT_LT((gradient - reference_gradient).abs().max().item<float>(),
              1e-4 * reference_gradient.abs().max().item<float>());
    for (int64_t s = 0; s < spec.scales; ++s) {
      const double wavelength = bank->wavelengths()[s];
      const torch::Tensor kernels = bank->Kernels2d(s);
      EXPECT_LT((kernels - DirectKernels(wavelength, spec.sigma_ratio * wavelength,
                                         kernels.size(-1) / 2, spec.orientations))
                    .abs()
                    .max()
                    .item<float>(),
                1e-6);
    }
  }
}

// The bank's matrices are built for one image size; another size, or the
// wrong number of channels, is an error that names what was expected.
TEST(GaborFrontEndTest, ImagesOfAnotherShapeAreRejectedWithTheExpectedShape) {
  GaborBank bank(GaborBankSpec{}, 1, 32, 48);
  try {
    bank->forward(torch::rand({2, 1, 48, 32}));
    ADD_FAILURE() << "a 48x32 image passed a 32x48 bank";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what_without_backtrace()).find("must be 32x48 pixels, not 48x32"),
              std::string::npos)
        << e.what_without_backtrace();
  }
  try {
    bank->forward(torch::rand({2, 3, 32, 48}));
    ADD_FAILURE() << "3 channels passed a 1-channel bank";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what_without_backtrace()).find("images must be [N, 1, H, W]"),
              std::string::npos)
        << e.what_without_backtrace();
  }
  EXPECT_EQ(bank->forward(torch::rand({2, 1, 32, 48})).size(3), 12);
}

// RGB images are filtered as three planes: luminance, red-green and
// blue-yellow. A gray image drives only the luminance plane's channels, an
// isoluminant red-green grating only the red-green plane's, so a readout can
// tell a colour-opponent cell from a luminance one.
TEST(GaborFrontEndTest, ColourImagesAreSeenAsLuminanceAndOpponentPlanes) {
  const GaborBankSpec spec;
  GaborBank gray_bank(spec, 1, 32, 32);
  GaborBank colour_bank(spec, 3, 32, 32);
  const int64_t per_plane = gray_bank->num_features();
  ASSERT_EQ(colour_bank->num_features(), 3 * per_plane);
  auto plane_energy = [&](const torch::Tensor& features, int64_t plane) {
    return features.narrow(1, plane * per_plane, per_plane).pow(2).sum().item<double>();
  };
  const torch::Tensor x = torch::arange(32, torch::kFloat).view({1, 32});
  const torch::Tensor grating = 0.4f * torch::sin(x * (2 * 3.14159265f / 8)).expand({32, 32});
  // Gray: the same grating on every channel.
  const torch::Tensor gray = (0.5f + grating).expand({1, 3, 32, 32});
  const torch::Tensor gray_features = colour_bank->forward(gray);
  EXPECT_GT(plane_energy(gray_features, 0), 1.0);
  EXPECT_LT(plane_energy(gray_features, 1), 1e-6);
  EXPECT_LT(plane_energy(gray_features, 2), 1e-6);
  // The luminance plane of an RGB image is what a gray bank sees.
  EXPECT_LT((gray_features.narrow(1, 0, per_plane) - gray_bank->forward(gray.narrow(1, 0, 1)))
                .abs()
                .max()
                .item<float>(),
            1e-5);
  // Isoluminant red-green: R and G in counter-phase, B constant.
  const torch::Tensor red_green =
      torch::stack({0.5f + grating, 0.5f - grating, torch::full({32, 32}, 0.5f)}).unsqueeze(0);
  const torch::Tensor colour_features = colour_bank->forward(red_green);
  EXPECT_LT(plane_energy(colour_features, 0), 1e-6);
  EXPECT_GT(plane_energy(colour_features, 1), 1.0);
  EXPECT_LT(plane_energy(colour_features, 2), 1e-6);
}

TEST(GaborFrontEndTest, QuadratureEnergyIsPhaseInvariant) {
  const SurrogateSpec spec = Spec();
  GaborFrontEnd front_end(spec.gabor, 1, kSize, kSize);
  const FeatureShape& shape = front_end.feature_shape();
  EXPECT_EQ(shape.channels, 3 * 4 * 8);
  EXPECT_EQ(shape.height, kSize / 4);  // default stride 4
  EXPECT_EQ(front_end.bank()->buffers().size(), 7u);  // 3 row passes, 3 column passes, DC
  EXPECT_TRUE(front_end.bank()->parameters().empty());  // nothing trainable
  // Gratings at the second scale's wavelength, orientation 0, two phases.
  const double wavelength = front_end.bank()->wavelengths()[1];
  const torch::Tensor x = torch::arange(kSize, torch::kFloat);
  std::vector<torch::Tensor> images;
  for (double phase : {0.0, 1.3}) {
    images.push_back((0.5 + 0.3 * torch::cos(2 * M_PI * x / wavelength + phase))
                         .view({1, 1, 1, kSize})
                         .expand({1, 1, kSize, kSize}));
  }
  const torch::Tensor features = front_end.Forward(torch::cat(images, 0));
  ASSERT_EQ(features.sizes(), (std::vector<int64_t>{2, 96, 16, 16}));
  // Scale 1's channels start at 24: even 24..31, odd 32..39, energy 40..47.
  const torch::Tensor center = features.select(3, 8).select(2, 8);  // [2, 96]
  const float energy0 = center[0][40].item<float>(), energy1 = center[1][40].item<float>();
  EXPECT_NEAR(energy0, energy1, 0.05 * energy0);
  EXPECT_GT(std::abs(center[0][24].item<float>() - center[1][24].item<float>()),
            0.1 * std::sqrt(energy0));  // the linear channels see the phase
  // The preferred orientation drives the energy channels most.
  EXPECT_EQ(center[0].narrow(0, 40, 8).argmax().item<int64_t>(), 0);
  // Mid-gray gives zero features.
  EXPECT_NEAR(front_end.Forward(torch::full({1, 1, kSize, kSize}, 0.5f)).abs().max().item<float>(),
              0, 1e-5);
}

// A simple cell's trials: what a closed loop shows it (a genetic search
// driven by the cell: clients/simulated_trials.h), one search to fit, another
// to test on.
struct SearchTrials {
  std::unique_ptr<SimulatedNeuron> neuron;
  TrainingData fit;      // 500 trials of one search
  SimulatedTrials test;  // 1000 of another
};

SearchTrials SimpleCellSearches() {
  SearchTrials s;
  s.neuron = Neuron(CellKind::kSimple, 3);
  auto trials = GeneticSearchTrials(*s.neuron, 500, 40, kWindowS, 11);
  auto test = GeneticSearchTrials(*s.neuron, 1000, 40, kWindowS, 12);
  if (!trials.ok() || !test.ok()) {
    ADD_FAILURE() << trials.status() << test.status();
    return s;
  }
  s.fit.images = trials->images;
  s.fit.rates = trials->rates;
  s.test = *std::move(test);
  return s;
}

// Issue 4's acceptance target: a simple cell learned from 500 noisy trials,
// measured on the stimuli a closed loop shows (a genetic search driven by
// the cell: clients/simulated_trials.h; random images barely drive a V1
// cell, ~0.1 spikes per trial). Correlation with the cell's noiseless rates
// on 1000 stimuli of another search; the held-out correlation against noisy
// single trials is bounded by the Poisson noise (~1.2 spikes per trial).
TEST(SurrogateFitTest, LearnsSimpleCellFrom500NoisyTrials) {
  const SearchTrials searches = SimpleCellSearches();
  const SimulatedTrials* test = &searches.test;
  const SurrogateSpec spec = Spec();
  FitMetrics metrics;
  absl::StatusOr<std::shared_ptr<const Surrogate>> model =
      FitSurrogate(searches.fit, spec, Gabor(spec), 1, 7, nullptr, &metrics);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->version(), 1);
  EXPECT_EQ((*model)->num_members(), 5);
  EXPECT_EQ(metrics.num_trials, 500);
  // A fifth of the distinct stimuli (the search shows its elites again, so
  // the trials are a little more than a fifth).
  EXPECT_GE(metrics.num_heldout_trials, 95);
  EXPECT_LE(metrics.num_heldout_trials, 130);
  ASSERT_EQ(metrics.heldout_correlation.size(), 1u);
  EXPECT_GT(metrics.heldout_correlation[0], 0.4);  // against noisy single trials
  torch::NoGradGuard no_grad;
  const torch::Tensor predicted = (*model)->PredictMean(test->images).select(1, 0);
  const double truth = Correlation(predicted, test->true_rates.select(1, 0));
  std::printf("held-out correlation %.3f (noisy trials), %.3f (noiseless, new stimuli)\n",
              metrics.heldout_correlation[0], truth);
  EXPECT_GT(truth, 0.8);
  EXPECT_GE(predicted.min().item<float>(), 0);
}

// The Gaussian readout (readout 1) learns the same cell from the same trials,
// and its center lands on the cell's receptive field: a "where" of three
// numbers in place of a free 16 x 16 mask.
TEST(SurrogateFitTest, GaussianReadoutLearnsSimpleCellFrom500NoisyTrials) {
  const SearchTrials searches = SimpleCellSearches();
  const SimulatedTrials* test = &searches.test;
  const SurrogateSpec spec = Spec({{"readout", 1}});
  absl::StatusOr<std::shared_ptr<const Surrogate>> model =
      FitSurrogate(searches.fit, spec, Gabor(spec), 1, 7, nullptr, nullptr);
  ASSERT_TRUE(model.ok()) << model.status();
  torch::NoGradGuard no_grad;
  const torch::Tensor predicted = (*model)->PredictMean(test->images).select(1, 0);
  const double truth = Correlation(predicted, test->true_rates.select(1, 0));
  EXPECT_GT(truth, 0.8);
  // Feature position j is centered on pixel stride * j.
  const GaborParams& rf = searches.neuron->gabor();
  const int64_t grid = (*model)->front_end()->feature_shape().height;
  for (const SurrogateHead& head : (*model)->members()) {
    const torch::Tensor center = head->readout()->named_parameters()["center"][0];
    const double y = (center[0].item<double>() + 1) / 2 * (grid - 1) * spec.gabor.stride;
    const double x = (center[1].item<double>() + 1) / 2 * (grid - 1) * spec.gabor.stride;
    const double width =
        head->readout()->named_parameters()["width"][0].abs().item<double>() / 2 * (grid - 1);
    std::printf("member center (%.1f, %.1f) px, width %.1f px; cell (%.1f, %.1f), sigma %.1f px\n",
                x, y, width * spec.gabor.stride, rf.center_x, rf.center_y, rf.sigma);
    EXPECT_LT(std::hypot(x - rf.center_x, y - rf.center_y), rf.sigma);
  }
  std::printf("noiseless correlation %.3f\n", truth);
}

// The Gaussian readout reads one point, bilinearly: its mask sums to 1 and
// sits on the grid positions around the center; while training each trial's
// point is center + |width| * noise; the center climbs toward the features
// that drive the neuron.
TEST(ReadoutTest, GaussianReadoutReadsOnePointAndFollowsTheDrive) {
  FactorizedReadout readout(2, 16, 12, 2, ReadoutMask::kGaussian);
  torch::Tensor center = readout->named_parameters()["center"];
  torch::Tensor width = readout->named_parameters()["width"];
  {
    torch::NoGradGuard no_grad;
    center.copy_(torch::tensor({{-1.0f, -1.0f}, {0.24f, 0.5f}}));
    width.copy_(torch::tensor({0.0f, -0.2f}));  // its absolute value is used
    readout->weights().fill_(1.0);
  }
  const torch::Tensor mask = readout->mask();
  ASSERT_EQ(mask.sizes(), (std::vector<int64_t>{2, 16, 12}));
  EXPECT_NEAR(mask[0][0][0].item<double>(), 1.0, 1e-6);  // the corner (0, 0)
  // (0.24 + 1) / 2 * 15 = 9.3 rows, (0.5 + 1) / 2 * 11 = 8.25 columns.
  EXPECT_NEAR(mask[1][9][8].item<double>(), 0.7 * 0.75, 1e-5);
  EXPECT_NEAR(mask[1][10][9].item<double>(), 0.3 * 0.25, 1e-5);
  EXPECT_NEAR(mask[1].sum().item<double>(), 1.0, 1e-5);

  // Noise (1, -1) with width 0.2: the point (0.44, 0.3), rows 10.8, columns 7.15.
  const torch::Tensor noise = torch::tensor({{{0.0f, 0.0f}, {1.0f, -1.0f}}});
  const torch::Tensor sampled = readout->SampledMask(noise);
  ASSERT_EQ(sampled.sizes(), (std::vector<int64_t>{1, 2, 16, 12}));
  EXPECT_TRUE(torch::allclose(sampled[0][0], mask[0]));
  EXPECT_NEAR(sampled[0][1][10][7].item<double>(), 0.2 * 0.85, 1e-4);
  EXPECT_NEAR(sampled[0][1][11][8].item<double>(), 0.8 * 0.15, 1e-4);
  EXPECT_THROW(readout->SampledMask(torch::zeros({1, 3, 2})), c10::Error);

  // Features bright at row 10, column 8: the drive's gradient moves neuron
  // 1's center down (y up) and left (x down, from 8.25).
  torch::Tensor features = torch::zeros({1, 2, 16, 12});
  features.index_put_({0, torch::indexing::Slice(), 10, 8}, 1.0);
  for (torch::Tensor& p : readout->parameters()) p.mutable_grad() = torch::Tensor();
  readout->forward(features).select(1, 1).sum().backward();
  EXPECT_GT(center.grad()[1][0].item<double>(), 0);
  EXPECT_LT(center.grad()[1][1].item<double>(), 0);
  // No L1 on a mask that always sums to 1: only the weights' term.
  EXPECT_NEAR(readout->Regularization(10, 0.5).item<double>(), 0.5, 1e-6);
  // A free mask reads everywhere it is nonzero and takes its L1 penalty.
  FactorizedReadout free(2, 16, 12, 2);
  EXPECT_EQ(free->mask_kind(), ReadoutMask::kFree);
  EXPECT_THROW(free->SampledMask(noise), c10::Error);
}

// A Gaussian readout starts where the features explain the responses: a
// feature at one grid position drives the rates, noise everywhere else.
TEST(ReadoutTest, ReceptiveFieldCentersFindTheDrivingPosition) {
  auto generator = at::make_generator<at::CPUGeneratorImpl>(3);
  const int64_t rows = 300, height = 6, width = 5, channels = 4;
  const torch::Tensor features = torch::randn({rows, height * width, channels}, generator);
  // Two trials per row; neuron 0 reads feature 2 at (4, 1), neuron 1
  // feature 0 at (0, 4), each through a rectifier with Poisson-like noise.
  const torch::Tensor group = torch::arange(rows).repeat_interleave(2);
  const torch::Tensor drive0 = features.select(1, 4 * width + 1).select(1, 2);
  const torch::Tensor drive1 = features.select(1, 0 * width + 4).select(1, 0);
  torch::Tensor rates = torch::stack({torch::relu(drive0), torch::relu(drive1)}, 1)
                            .index_select(0, group);
  rates = rates + 0.5 * torch::rand(rates.sizes(), generator);
  const torch::Tensor centers = ReceptiveFieldCenters(features, group, rates, height, width);
  ASSERT_EQ(centers.sizes(), (std::vector<int64_t>{2, 2}));
  // Row 4 of 0..5 and column 1 of 0..4 in [-1, 1] units; row 0, column 4.
  EXPECT_NEAR(centers[0][0].item<double>(), 4 * 2.0 / 5 - 1, 1e-6);
  EXPECT_NEAR(centers[0][1].item<double>(), 1 * 2.0 / 4 - 1, 1e-6);
  EXPECT_NEAR(centers[1][0].item<double>(), -1, 1e-6);
  EXPECT_NEAR(centers[1][1].item<double>(), 1, 1e-6);
}

// Small, fast fits on 32 x 32 images for the mechanics.
constexpr int64_t kSmall = 32;

TrainingData SmallTrials(int64_t n, int64_t repeats, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  SimulatedNeuronSpec spec;
  spec.kind = CellKind::kComplex;
  spec.seed = 5;
  spec.height = spec.width = kSmall;
  auto neuron = SimulatedNeuron::Create(spec);
  EXPECT_TRUE(neuron.ok());
  TrainingData data;
  const torch::Tensor distinct = torch::rand({n / repeats, 1, 4, 4}, gen);
  namespace F = torch::nn::functional;
  const torch::Tensor images = torch::round(F::interpolate(distinct, F::InterpolateFuncOptions()
                                                                         .size(std::vector<int64_t>{kSmall, kSmall})
                                                                         .mode(torch::kBilinear)
                                                                         .align_corners(false)) *
                                            255) /
                               255;
  data.images = images.repeat_interleave(repeats, 0);
  // Ten times the cell's rate, so that repeats show explainable variance.
  const torch::Tensor rates = (*neuron)->Rates(data.images) * 10;
  data.rates = torch::stack({PoissonRates(rates, kWindowS, gen), PoissonRates(rates * 0.5, kWindowS, gen)}, 1);
  return data;
}

SurrogateSpec SmallSpec() { return Spec({{"ensemble_size", 3}, {"max_epochs", 4}, {"gabor_stride", 2}}); }

std::shared_ptr<const FrontEnd> SmallGabor(const SurrogateSpec& spec) {
  absl::StatusOr<std::shared_ptr<const FrontEnd>> front_end =
      MakeFrontEnd(spec, {1, kSmall, kSmall});
  EXPECT_TRUE(front_end.ok()) << front_end.status();
  return *front_end;
}

torch::Tensor Probe() {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1234);
  return torch::rand({6, 1, kSmall, kSmall}, gen);
}

TEST(SurrogateFitTest, SeedDeterminesTheFitAndMembersDiffer) {
  const TrainingData data = SmallTrials(160, 1, 2);
  const SurrogateSpec spec = SmallSpec();
  const auto front_end = SmallGabor(spec);
  auto a = FitSurrogate(data, spec, front_end, 3, 11, nullptr, nullptr);
  auto b = FitSurrogate(data, spec, front_end, 3, 11, nullptr, nullptr);
  auto c = FitSurrogate(data, spec, front_end, 3, 12, nullptr, nullptr);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok()) << a.status() << b.status() << c.status();
  torch::NoGradGuard no_grad;
  const torch::Tensor pa = (*a)->PredictMembers(Probe());
  ASSERT_EQ(pa.sizes(), (std::vector<int64_t>{3, 6, 2}));
  EXPECT_TRUE(torch::equal(pa, (*b)->PredictMembers(Probe())));
  EXPECT_FALSE(torch::equal(pa, (*c)->PredictMembers(Probe())));
  EXPECT_FALSE(torch::allclose(pa[0], pa[1]));  // own initialization and resample
  EXPECT_FALSE(torch::allclose(pa[1], pa[2]));
  EXPECT_GE(pa.min().item<float>(), 0);
  EXPECT_EQ((*a)->version(), 3);
}

// A refit that starts from the session's previous version (models/trainer.h)
// reaches a model close to a fit from scratch in a fraction of the Adam
// steps, and is a function of its inputs.
TEST(SurrogateFitTest, WarmStartFromThePreviousVersionIsCheaperAndAsGood) {
  const SearchTrials searches = SimpleCellSearches();
  const SurrogateSpec spec = Spec({{"warm_start", 1}});
  const auto front_end = Gabor(spec);
  const TrainingData earlier{searches.fit.images.narrow(0, 0, 460),
                             searches.fit.rates.narrow(0, 0, 460), {}};
  auto previous = FitSurrogate(earlier, spec, front_end, 1, 7, nullptr, nullptr);
  ASSERT_TRUE(previous.ok()) << previous.status();
  FitMetrics scratch_metrics, warm_metrics, again_metrics;
  auto scratch = FitSurrogate(searches.fit, spec, front_end, 2, 8, nullptr, &scratch_metrics);
  auto warm = FitSurrogate(searches.fit, spec, front_end, 2, 8, nullptr, &warm_metrics,
                           previous->get());
  auto again = FitSurrogate(searches.fit, spec, front_end, 2, 8, nullptr, &again_metrics,
                            previous->get());
  ASSERT_TRUE(scratch.ok() && warm.ok() && again.ok())
      << scratch.status() << warm.status() << again.status();
  EXPECT_LT(3 * warm_metrics.steps, scratch_metrics.steps);
  for (int64_t epochs : warm_metrics.member_epochs) EXPECT_LE(epochs, 2 * spec.warm_patience);
  torch::NoGradGuard no_grad;
  const torch::Tensor truth = searches.test.true_rates.select(1, 0);
  const double scratch_truth =
      Correlation((*scratch)->PredictMean(searches.test.images).select(1, 0), truth);
  const double warm_truth =
      Correlation((*warm)->PredictMean(searches.test.images).select(1, 0), truth);
  std::printf("truth correlation: from scratch %.3f (%lld steps), warm %.3f (%lld steps)\n",
              scratch_truth, static_cast<long long>(scratch_metrics.steps), warm_truth,
              static_cast<long long>(warm_metrics.steps));
  // One warm refit of 40 trials lands near the fit from scratch (0.870 vs
  // 0.891 here; chained over a session it went above it: BENCHMARKS.md).
  EXPECT_GT(warm_truth, 0.8);
  EXPECT_GT(warm_truth, scratch_truth - 0.05);
  EXPECT_TRUE(torch::equal((*warm)->PredictMembers(searches.test.images),
                           (*again)->PredictMembers(searches.test.images)));
  // It keeps the previous version's standardization.
  EXPECT_TRUE(torch::equal((*warm)->members()[0]->feature_mean(),
                           (*previous)->members()[0]->feature_mean()));
}

// warm_start 0, or a previous version that does not match the spec (another
// ensemble size), fits from scratch: the same model as without one.
TEST(SurrogateFitTest, AWarmStartThatDoesNotApplyFitsFromScratch) {
  const TrainingData data = SmallTrials(160, 1, 2);
  SurrogateSpec spec = SmallSpec();
  spec.warm_start = true;
  const auto front_end = SmallGabor(spec);
  SurrogateSpec two_members = spec;
  two_members.ensemble_size = 2;
  auto other = FitSurrogate(data, two_members, front_end, 1, 3, nullptr, nullptr);
  auto same = FitSurrogate(data, spec, front_end, 1, 3, nullptr, nullptr);
  ASSERT_TRUE(other.ok() && same.ok());
  SurrogateSpec off = spec;
  off.warm_start = false;
  auto scratch = FitSurrogate(data, spec, front_end, 2, 11, nullptr, nullptr);
  auto mismatched = FitSurrogate(data, spec, front_end, 2, 11, nullptr, nullptr, other->get());
  auto turned_off = FitSurrogate(data, off, front_end, 2, 11, nullptr, nullptr, same->get());
  auto warm = FitSurrogate(data, spec, front_end, 2, 11, nullptr, nullptr, same->get());
  ASSERT_TRUE(scratch.ok() && mismatched.ok() && turned_off.ok() && warm.ok());
  torch::NoGradGuard no_grad;
  const torch::Tensor expected = (*scratch)->PredictMembers(Probe());
  EXPECT_TRUE(torch::equal(expected, (*mismatched)->PredictMembers(Probe())));
  EXPECT_TRUE(torch::equal(expected, (*turned_off)->PredictMembers(Probe())));
  EXPECT_FALSE(torch::equal(expected, (*warm)->PredictMembers(Probe())));
}

TEST(SurrogateFitTest, PredictionsAreDifferentiableInImagesOnly) {
  const SurrogateSpec spec = SmallSpec();
  auto model = FitSurrogate(SmallTrials(80, 1, 3), spec, SmallGabor(spec), 1, 1, nullptr, nullptr);
  ASSERT_TRUE(model.ok()) << model.status();
  torch::Tensor images = Probe().requires_grad_(true);
  (*model)->PredictMembers(images).sum().backward();
  ASSERT_TRUE(images.grad().defined());
  EXPECT_GT(images.grad().abs().sum().item<double>(), 0);
  for (const SurrogateHead& head : (*model)->members()) {
    for (const torch::Tensor& p : head->parameters()) EXPECT_FALSE(p.grad().defined());
  }
}

TEST(SurrogateFitTest, CancellationStopsAFit) {
  const TrainingData data = SmallTrials(160, 1, 4);
  // Without the flag this fit would run for 100000 epochs.
  const SurrogateSpec spec = Spec({{"max_epochs", 100000}, {"patience", 100000}, {"gabor_stride", 2}});
  std::atomic<bool> cancel{true};
  auto result = FitSurrogate(data, spec, SmallGabor(spec), 1, 1, &cancel, nullptr);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kCancelled) << result.status();
  cancel = false;
  std::thread canceller([&cancel] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    cancel = true;
  });
  result = FitSurrogate(data, spec, SmallGabor(spec), 1, 1, &cancel, nullptr);
  canceller.join();
  EXPECT_EQ(result.status().code(), absl::StatusCode::kCancelled) << result.status();
}

// With a holdout seed the split is made group by group: a stimulus held out
// at 100 trials is still held out at 160, and about the asked share is.
TEST(TrainingSplitTest, AHoldoutSeedKeepsHeldOutStimuliHeldOutAsDataGrow) {
  TrainingData all = SmallTrials(160, 1, 5);
  all.holdout_seed = 42;
  TrainingData early{all.images.narrow(0, 0, 100), all.rates.narrow(0, 0, 100), {}, 42};
  auto a = SplitTrainingData(early, 8, 0.2, /*seed=*/1);
  auto b = SplitTrainingData(all, 8, 0.2, /*seed=*/2);  // the fit seed does not matter
  ASSERT_TRUE(a.ok() && b.ok()) << a.status() << b.status();
  ASSERT_EQ(a->num_groups, 100);
  for (int64_t g = 0; g < a->num_groups; ++g) {
    EXPECT_EQ(a->heldout_group[g].item<bool>(), b->heldout_group[g].item<bool>()) << g;
  }
  const int64_t held = b->heldout_groups.size(0);
  EXPECT_GE(held, 16);
  EXPECT_LE(held, 50);
}

TEST(SurrogateFitTest, RepeatsGiveFeveAndStayOnOneSideOfTheSplit) {
  const TrainingData data = SmallTrials(240, 4, 5);  // 60 stimuli, 4 repeats each
  const SurrogateSpec spec = SmallSpec();
  FitMetrics metrics;
  auto model = FitSurrogate(data, spec, SmallGabor(spec), 2, 9, nullptr, &metrics);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(metrics.num_stimuli, 60);
  EXPECT_EQ(metrics.num_heldout_trials, 4 * 12);  // 20% of the stimuli, all their repeats
  EXPECT_EQ(metrics.num_heldout_repeated, 12);
  ASSERT_EQ(metrics.heldout_feve.size(), 2u);
  ASSERT_EQ(metrics.heldout_correlation.size(), 2u);
  for (double feve : metrics.heldout_feve) {
    EXPECT_TRUE(std::isfinite(feve));
    EXPECT_LT(feve, 1.0);
  }
  EXPECT_EQ(metrics.member_epochs.size(), 3u);
  // Explicit ids say the same as identical pixels.
  TrainingData with_ids = data;
  for (int64_t i = 0; i < 240; ++i) with_ids.stimulus_ids.push_back(i / 4);
  FitMetrics metrics_ids;
  auto model_ids = FitSurrogate(with_ids, spec, SmallGabor(spec), 2, 9, nullptr, &metrics_ids);
  ASSERT_TRUE(model_ids.ok());
  EXPECT_EQ(metrics_ids.heldout_feve, metrics.heldout_feve);
}

// FEVE on repeats a closed loop chose: 20000 stimuli with true rates in
// [0, 20] spikes per trial, one Poisson trial each, and the quarter with
// the highest first trial shown 3 more times (as the session's repeats
// pick images on their measured mean). The estimate must find what each
// predictor explains of the true rates of those stimuli.
TEST(FeveTest, RepeatsChosenOnTheirFirstTrialDoNotBiasIt) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> uniform(0, 20);
  const int n = 20000;
  std::vector<double> truth(n);
  std::vector<double> y;
  std::vector<int64_t> groups;
  for (int i = 0; i < n; ++i) {
    truth[i] = uniform(rng);
    y.push_back(std::poisson_distribution<int>(truth[i])(rng));
    groups.push_back(i);
  }
  std::vector<int> order(n);
  for (int i = 0; i < n; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return y[a] > y[b]; });
  std::vector<int> repeated(order.begin(), order.begin() + n / 4);
  for (int i : repeated) {
    for (int k = 0; k < 3; ++k) {
      y.push_back(std::poisson_distribution<int>(truth[i])(rng));
      groups.push_back(i);
    }
  }
  // A perfect predictor and one that explains ~0.72 of the repeated
  // stimuli's true variance (0.8 r + 2).
  auto predict = [&](double scale, double offset) {
    std::vector<double> p;
    for (int64_t g : groups) p.push_back(scale * truth[g] + offset);
    return torch::tensor(p, torch::kDouble);
  };
  auto explained = [&](double scale, double offset) {  // on the true rates
    double mean = 0, var = 0, err = 0;
    for (int i : repeated) mean += truth[i] / repeated.size();
    for (int i : repeated) {
      var += (truth[i] - mean) * (truth[i] - mean);
      err += std::pow(scale * truth[i] + offset - truth[i], 2);
    }
    return 1 - err / var;
  };
  const torch::Tensor rates = torch::tensor(y, torch::kDouble);
  // Tolerances: the estimate's spread over generator seeds (~0.03), far
  // from what counting the first trials reads (0.24-0.36 for `partial`).
  EXPECT_NEAR(FractionOfExplainableVarianceExplained(predict(1, 0), rates, groups), 1.0, 0.06);
  const double partial = explained(0.8, 2);
  EXPECT_GT(partial, 0.6);
  EXPECT_LT(partial, 0.85);
  EXPECT_NEAR(FractionOfExplainableVarianceExplained(predict(0.8, 2), rates, groups), partial,
              0.08);
  // A constant predictor explains nothing.
  EXPECT_NEAR(FractionOfExplainableVarianceExplained(predict(0, 15), rates, groups),
              explained(0, 15), 0.15);
  // Without stimuli shown three times or more there is nothing to measure.
  EXPECT_TRUE(std::isnan(FractionOfExplainableVarianceExplained(
      torch::ones({4}), torch::tensor({1.0, 2.0, 3.0, 4.0}), {0, 0, 1, 1})));
}

TEST(SurrogateFitTest, BadDataIsRejectedNamingTheField) {
  const SurrogateSpec spec = SmallSpec();
  TrainingData data = SmallTrials(80, 1, 6);
  data.rates[3][1] = -1;
  auto result = FitSurrogate(data, spec, SmallGabor(spec), 1, 1, nullptr, nullptr);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(result.status().message().find("training_data.rates"), std::string::npos);
  data = SmallTrials(80, 1, 6);
  data.stimulus_ids = {1, 2};
  result = FitSurrogate(data, spec, SmallGabor(spec), 1, 1, nullptr, nullptr);
  EXPECT_NE(result.status().message().find("training_data.stimulus_ids"), std::string::npos);
  data = SmallTrials(40, 1, 6);  // below min_trials = 50
  result = FitSurrogate(data, spec, SmallGabor(spec), 1, 1, nullptr, nullptr);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
  data = SmallTrials(80, 1, 6);
  result = FitSurrogate(data, spec, Gabor(spec), 1, 1, nullptr, nullptr);  // 64 x 64 front end
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(result.status().message().find("training_data.images"), std::string::npos);
}

// The ensemble is evaluated from stacked parameters; it must be what every
// member's own forward gives, with and without the core, for both output
// nonlinearities and both masks, and differentiable in the images the same
// way.
TEST(SurrogateFitTest, StackedEnsembleEqualsEveryMembersForward) {
  for (const auto& [core_channels, output, readout, normalization] :
       std::vector<std::tuple<double, double, double, double>>{{16, 0, 0, 0},
                                                               {0, 0, 0, 0},
                                                               {4, 1, 0, 0},
                                                               {16, 0, 1, 0},
                                                               {0, 0, 1, 0},
                                                               {16, 0, 0, 1},
                                                               {0, 1, 1, 1}}) {
    SCOPED_TRACE(::testing::Message() << "core_channels " << core_channels << ", output " << output
                                      << ", readout " << readout << ", normalization "
                                      << normalization);
    SurrogateSpec spec = Spec({{"ensemble_size", 3},
                               {"max_epochs", 4},
                               {"gabor_stride", 2},
                               {"core_channels", core_channels},
                               {"output", output},
                               {"readout", readout},
                               {"normalization", normalization}});
    const auto front_end = SmallGabor(spec);
    auto model = FitSurrogate(SmallTrials(80, 2, 5), spec, front_end, 1, 1, nullptr, nullptr);
    ASSERT_TRUE(model.ok()) << model.status();

    torch::Tensor stacked_images = Probe().requires_grad_(true);
    const torch::Tensor stacked = (*model)->PredictMembers(stacked_images);
    torch::Tensor member_images = Probe().requires_grad_(true);
    const torch::Tensor features = front_end->Forward(member_images);
    std::vector<torch::Tensor> rates;
    for (const SurrogateHead& head : (*model)->members()) rates.push_back(head->forward(features));
    const torch::Tensor members = torch::stack(rates, 0);

    ASSERT_EQ(stacked.sizes(), members.sizes());
    EXPECT_TRUE(torch::allclose(stacked, members, /*rtol=*/1e-4, /*atol=*/1e-6))
        << "largest difference " << (stacked - members).abs().max().item<double>();
    EXPECT_GT(members.std().item<double>(), 0);  // not a constant that any code would match
    stacked.sum().backward();
    members.sum().backward();
    EXPECT_TRUE(torch::allclose(stacked_images.grad(), member_images.grad(), 1e-3, 1e-6))
        << "largest gradient difference "
        << (stacked_images.grad() - member_images.grad()).abs().max().item<double>();
  }
}

// The trainer's layout: a head fed standardized position-major features
// gives forward's rates and the same gradients in every parameter (what Adam
// steps on), with and without the core, for 3 neurons, both outputs and both
// masks, with and without the normalization pool.
TEST(SurrogateHeadTest, PositionMajorForwardEqualsForward) {
  for (const auto& [core_channels, output, readout, normalization] :
       std::vector<std::tuple<int64_t, RateNonlinearity, ReadoutMask, bool>>{
           {16, RateNonlinearity::kSoftplus, ReadoutMask::kFree, false},
           {0, RateNonlinearity::kSoftplus, ReadoutMask::kFree, false},
           {4, RateNonlinearity::kExp, ReadoutMask::kFree, false},
           {16, RateNonlinearity::kSoftplus, ReadoutMask::kGaussian, false},
           {16, RateNonlinearity::kSoftplus, ReadoutMask::kFree, true},
           {0, RateNonlinearity::kExp, ReadoutMask::kGaussian, true}}) {
    SCOPED_TRACE(::testing::Message()
                 << "core_channels " << core_channels << ", readout " << static_cast<int>(readout)
                 << ", normalization " << normalization);
    const SurrogateSpec spec = Spec({{"gabor_stride", 2}});
    const auto front_end = SmallGabor(spec);
    const torch::Tensor features = front_end->Forward(Probe());
    const torch::Tensor mean = features.mean({0, 2, 3}), scale = features.std({0, 2, 3}) + 0.1;
    auto generator = at::make_generator<at::CPUGeneratorImpl>(5);
    SurrogateHeadOptions options;
    options.features = front_end->feature_shape();
    options.core_channels = core_channels;
    options.num_neurons = 3;
    options.output = output;
    options.readout = readout;
    options.normalization = normalization;
    SurrogateHead head(options);
    head->Reset(mean, scale, torch::full({3}, 2.0), generator);
    {
      torch::NoGradGuard no_grad;  // readout weights far from their tiny initial values
      for (torch::Tensor& p : head->parameters()) p.add_(torch::randn(p.sizes(), generator) * 0.1);
    }
    auto gradients = [&](const torch::Tensor& rates) {
      for (torch::Tensor& p : head->parameters()) p.mutable_grad() = torch::Tensor();
      (rates * torch::arange(1, rates.numel() + 1, torch::kFloat).view(rates.sizes()))
          .sum()
          .backward();
      std::vector<torch::Tensor> out;
      for (const torch::Tensor& p : head->parameters()) {
        // The Gaussian readout's width is only used by the training draws.
        out.push_back(p.grad().defined() ? p.grad().clone() : torch::Tensor());
      }
      return out;
    };
    const torch::Tensor expected = head->forward(features);
    const std::vector<torch::Tensor> expected_grads = gradients(expected);
    const torch::Tensor actual =
        head->ForwardPositionMajor(StandardizedPositionMajor(features, mean, scale));
    const std::vector<torch::Tensor> actual_grads = gradients(actual);

    ASSERT_EQ(actual.sizes(), expected.sizes());
    EXPECT_GT(expected.std().item<double>(), 0);
    EXPECT_TRUE(torch::allclose(actual, expected, 1e-4, 1e-6))
        << "largest difference " << (actual - expected).abs().max().item<double>();
    ASSERT_EQ(actual_grads.size(), expected_grads.size());
    for (size_t i = 0; i < actual_grads.size(); ++i) {
      ASSERT_EQ(actual_grads[i].defined(), expected_grads[i].defined()) << "parameter " << i;
      if (!expected_grads[i].defined()) continue;
      // Relative to the largest entry: elementwise, small entries are sums
      // of large terms of both signs and differ in float rounding alone.
      const double largest = expected_grads[i].abs().max().item<double>();
      const double difference = (actual_grads[i] - expected_grads[i]).abs().max().item<double>();
      EXPECT_GT(largest, 0) << "parameter " << i;
      EXPECT_LT(difference, 1e-4 * largest) << "parameter " << i << " (largest " << largest << ")";
    }
  }
}

TEST(SurrogateCheckpointTest, RoundTripGivesIdenticalPredictions) {
  for (const auto& [readout, normalization] :
       std::vector<std::pair<ReadoutMask, bool>>{{ReadoutMask::kFree, false},
                                                 {ReadoutMask::kGaussian, false},
                                                 {ReadoutMask::kFree, true}}) {
    SCOPED_TRACE(::testing::Message() << "readout " << static_cast<int>(readout)
                                      << ", normalization " << normalization);
    SurrogateSpec spec = SmallSpec();
    spec.readout = readout;
    spec.normalization = normalization;
    const auto front_end = SmallGabor(spec);
    auto model = FitSurrogate(SmallTrials(80, 1, 7), spec, front_end, 4, 1, nullptr, nullptr);
    ASSERT_TRUE(model.ok()) << model.status();
    torch::NoGradGuard no_grad;
    const torch::Tensor expected = (*model)->PredictMembers(Probe());

    absl::StatusOr<std::string> bytes = SerializeSurrogate(**model);
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    auto restored = DeserializeSurrogate(*bytes, front_end);
    ASSERT_TRUE(restored.ok()) << restored.status();
    EXPECT_EQ((*restored)->version(), 4);
    EXPECT_TRUE(torch::equal((*restored)->PredictMembers(Probe()), expected));

    const std::string path = ::testing::TempDir() + "/surrogate_v4.pt";
    ASSERT_TRUE(SaveSurrogate(**model, path).ok());
    auto loaded = LoadSurrogate(path, front_end);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    EXPECT_TRUE(torch::equal((*loaded)->PredictMembers(Probe()), expected));
    std::remove(path.c_str());

    // Another front end does not fit the checkpoint.
    auto mismatch = DeserializeSurrogate(*bytes, Gabor(spec));
    EXPECT_EQ(mismatch.status().code(), absl::StatusCode::kInvalidArgument);
    auto garbage = DeserializeSurrogate("not a checkpoint", front_end);
    EXPECT_EQ(garbage.status().code(), absl::StatusCode::kInvalidArgument);
  }
}

// The checkpoint's "readout" key: absent in checkpoints written before the
// Gaussian readout (they load as the free mask), refused when unknown. The
// archive is written here key by key as SaveSurrogate writes it.
TEST(SurrogateCheckpointTest, ReadoutKeyAbsentMeansFreeAndUnknownIsRefused) {
  const SurrogateSpec spec = SmallSpec();
  const auto front_end = SmallGabor(spec);
  auto model = FitSurrogate(SmallTrials(80, 1, 7), spec, front_end, 4, 1, nullptr, nullptr);
  ASSERT_TRUE(model.ok()) << model.status();
  auto archive_bytes = [&](const c10::optional<int64_t>& readout) {
    const Surrogate& m = **model;
    const SurrogateHeadOptions& o = m.members().front()->options();
    torch::serialize::OutputArchive archive;
    auto put = [&](const char* key, int64_t value) {
      archive.write(key, torch::tensor(value, torch::kLong));
    };
    archive.write("format", c10::IValue(std::string("stimloop.surrogate.v1")));
    archive.write("frontend", c10::IValue(front_end->Describe()));
    put("version", m.version());
    put("num_members", m.num_members());
    put("feature_channels", o.features.channels);
    put("feature_height", o.features.height);
    put("feature_width", o.features.width);
    put("core_channels", o.core_channels);
    put("num_neurons", o.num_neurons);
    put("output", static_cast<int64_t>(o.output));
    if (readout.has_value()) put("readout", *readout);
    for (int64_t i = 0; i < m.num_members(); ++i) {
      torch::serialize::OutputArchive sub;
      m.members()[i]->save(sub);
      archive.write("member_" + std::to_string(i), sub);
    }
    std::ostringstream out;
    archive.save_to(out);
    return out.str();
  };
  torch::NoGradGuard no_grad;
  auto older = DeserializeSurrogate(archive_bytes(c10::nullopt), front_end);
  ASSERT_TRUE(older.ok()) << older.status();
  EXPECT_EQ((*older)->members().front()->options().readout, ReadoutMask::kFree);
  EXPECT_TRUE(torch::equal((*older)->PredictMembers(Probe()), (*model)->PredictMembers(Probe())));

  auto unknown = DeserializeSurrogate(archive_bytes(7), front_end);
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(unknown.status().message().find("unknown readout mask 7 (0 free, 1 Gaussian)"),
            std::string::npos)
      << unknown.status();
}

}  // namespace
}  // namespace stimloop
