// The simulated cells beyond the V1 Gabor cells: v4, deepnet, endstopped
// and color (models/simulated_{v4,deepnet,endstopped,color}.h). What every
// family promises (an optimum no search in the tests beats, determinism,
// finite differentiable rates, clear errors), then what makes each family
// what it is. 32 x 32 images unless a test says otherwise (creating a cell
// with an estimated optimum costs ~0.2-1 s there).
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "clients/simulated_trials.h"
#include "models/simulated_color.h"
#include "models/simulated_neuron.h"
#include "models/simulated_v4.h"
#include "optimizers/image_space.h"

namespace stimloop {
namespace {

constexpr double kPi = 3.14159265358979323846;
// How far above an estimated optimum a fresh ascent may land: the estimate
// is the best of ~100 ascents; measured, 128 more from the best of 2000
// random images gain at most ~1% (deepnet), 0.0% (v4, endstopped).
constexpr double kEstimateTolerance = 0.02;

std::unique_ptr<SimulatedNeuron> Make(CellKind kind, uint64_t seed, int64_t size = 32,
                                      int64_t channels = 0) {
  SimulatedNeuronSpec spec;
  spec.kind = kind;
  spec.seed = seed;
  spec.height = spec.width = size;
  spec.channels = channels != 0 ? channels : kind == CellKind::kColor ? 3 : 1;
  auto neuron = SimulatedNeuron::Create(spec);
  EXPECT_TRUE(neuron.ok()) << neuron.status();
  return std::move(*neuron);
}

torch::Tensor UniformImages(int64_t n, const SimulatedNeuronSpec& spec, at::Generator& gen) {
  return torch::rand({n, spec.channels, spec.height, spec.width}, gen);
}

// Low-pass noise: uniform noise on an 8x8 grid, bilinearly upsampled.
torch::Tensor SmoothImages(int64_t n, const SimulatedNeuronSpec& spec, at::Generator& gen) {
  namespace F = torch::nn::functional;
  return F::interpolate(torch::rand({n, spec.channels, 8, 8}, gen),
                        F::InterpolateFuncOptions()
                            .size(std::vector<int64_t>{spec.height, spec.width})
                            .mode(torch::kBilinear)
                            .align_corners(false));
}

// Draws from the spectral image space's prior (1/f images): what the
// optimizers start from.
torch::Tensor SpectralImages(int64_t n, const SimulatedNeuronSpec& spec, at::Generator& gen) {
  ImageSpaceSpec space_spec;
  space_spec.name = "spectral";
  auto space = MakeImageSpace(space_spec, {spec.channels, spec.height, spec.width});
  EXPECT_TRUE(space.ok()) << space.status();
  torch::NoGradGuard no_grad;
  return (*space)->Decode((*space)->SamplePrior(n, gen));
}

// Projected Adam ascent of the cell's rate from `starts` [N, C, H, W]; the
// end points.
torch::Tensor Ascend(const SimulatedNeuron& neuron, const torch::Tensor& starts, int steps) {
  torch::Tensor x = starts.clone().requires_grad_(true);
  torch::optim::Adam adam({x}, torch::optim::AdamOptions(0.03));
  for (int step = 0; step < steps; ++step) {
    adam.zero_grad();
    (-neuron.Rates(x).sum()).backward();
    adam.step();
    torch::NoGradGuard no_grad;
    x.clamp_(0, 1);
  }
  return x.detach();
}

double Rate(const SimulatedNeuron& neuron, const torch::Tensor& image) {  // [C, H, W]
  torch::NoGradGuard no_grad;
  return neuron.Rates(image.unsqueeze(0))[0].item<double>();
}

class FamilyTest : public ::testing::TestWithParam<CellKind> {};

INSTANTIATE_TEST_SUITE_P(SimulatedNeuron, FamilyTest,
                         ::testing::Values(CellKind::kV4, CellKind::kDeepNet, CellKind::kEndStopped,
                                           CellKind::kColor),
                         [](const auto& info) { return std::string(CellKindName(info.param)); });

TEST_P(FamilyTest, OptimumGivesPeakRateAtEverySize) {
  struct Case {
    int64_t size, channels;
    uint64_t seed;
  };
  std::vector<Case> cases = {{32, 0, 1}, {64, 0, 2}, {48, 0, 3}};
  if (GetParam() != CellKind::kColor) cases.push_back({32, 3, 4});
  for (const Case& c : cases) {
    auto neuron = Make(GetParam(), c.seed, c.size, c.channels);
    const int64_t channels = neuron->spec().channels;
    const torch::Tensor& optimum = neuron->Optimum();
    ASSERT_EQ(optimum.sizes(), (std::vector<int64_t>{channels, c.size, c.size}));
    EXPECT_GE(optimum.min().item<double>(), 0);
    EXPECT_LE(optimum.max().item<double>(), 1);
    EXPECT_GT(optimum.max().item<double>() - optimum.min().item<double>(), 0.9);  // not uniform
    const torch::Tensor rate = neuron->Rates(optimum.unsqueeze(0));
    EXPECT_EQ(rate.scalar_type(), torch::kFloat);
    EXPECT_FLOAT_EQ(rate.item<float>(), 50.0f) << "size " << c.size << " seed " << c.seed;
    EXPECT_EQ(neuron->optimum_is_exact(), GetParam() == CellKind::kColor);
  }
}

// Past 64 pixels a side the v4 and endstopped cells compute on a coarser
// grid and the deepnet unit's optimum is found in its 32 x 32 input; any
// shape in the supported range still gets an optimum rated peak_rate.
TEST_P(FamilyTest, OblongAndLargeImagesWork) {
  for (auto [height, width] : {std::pair<int64_t, int64_t>{16, 512}, {100, 72}, {512, 512}}) {
    SimulatedNeuronSpec spec;
    spec.kind = GetParam();
    spec.channels = GetParam() == CellKind::kColor ? 3 : 1;
    spec.height = height;
    spec.width = width;
    spec.seed = 17;
    auto neuron = SimulatedNeuron::Create(spec);
    ASSERT_TRUE(neuron.ok()) << neuron.status();
    const torch::Tensor& optimum = (*neuron)->Optimum();
    ASSERT_EQ(optimum.sizes(), (std::vector<int64_t>{spec.channels, height, width}));
    EXPECT_FLOAT_EQ((*neuron)->Rates(optimum.unsqueeze(0)).item<float>(), 50.0f)
        << height << "x" << width;
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(17);
    torch::NoGradGuard no_grad;
    EXPECT_LT((*neuron)->Rates(SmoothImages(64, spec, gen)).max().item<double>(), 50.0)
        << height << "x" << width;
  }
}

TEST_P(FamilyTest, OptimumBeatsTenThousandRandomImagesOfEachKind) {
  std::vector<std::unique_ptr<SimulatedNeuron>> neurons;
  for (uint64_t seed : {5, 6}) neurons.push_back(Make(GetParam(), seed));
  const SimulatedNeuronSpec& spec = neurons[0]->spec();
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(42);
  for (const char* kind : {"uniform", "smooth", "spectral"}) {
    std::vector<double> best(neurons.size(), 0);
    for (int chunk = 0; chunk < 5; ++chunk) {
      const std::string k = kind;
      const torch::Tensor images = k == "uniform"  ? UniformImages(2000, spec, gen)
                                   : k == "smooth" ? SmoothImages(2000, spec, gen)
                                                   : SpectralImages(2000, spec, gen);
      torch::NoGradGuard no_grad;
      for (size_t i = 0; i < neurons.size(); ++i) {
        best[i] = std::max(best[i], neurons[i]->Rates(images).max().item<double>());
      }
    }
    for (size_t i = 0; i < neurons.size(); ++i) {
      EXPECT_GT(best[i], 0) << kind << " neuron " << i;  // random images reach it at all
      EXPECT_LT(best[i], 0.5 * neurons[i]->optimum_rate()) << kind << " neuron " << i;
    }
  }
}

TEST_P(FamilyTest, OptimumBeatsAGeneticSearch) {
  for (uint64_t seed : {7, 8}) {
    auto neuron = Make(GetParam(), seed);
    auto trials = GeneticSearchTrials(*neuron, 1000, 40, 0.2, seed);
    ASSERT_TRUE(trials.ok()) << trials.status();
    const double best = trials->true_rates.max().item<double>();
    EXPECT_GT(best, 0.05 * neuron->optimum_rate()) << "seed " << seed;  // it learns something
    EXPECT_LT(best, neuron->optimum_rate()) << "seed " << seed;
  }
}

TEST_P(FamilyTest, OptimumBeatsGradientAscentsFromNewStarts) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(9);
  for (uint64_t seed : {9, 10}) {
    auto neuron = Make(GetParam(), seed);
    // Starts the cell responds to: the best 8 of 512 random images (a unit
    // that is silent at a start has no gradient there).
    const torch::Tensor pool = torch::cat(
        {UniformImages(256, neuron->spec(), gen), SmoothImages(256, neuron->spec(), gen)});
    torch::Tensor rates;
    {
      torch::NoGradGuard no_grad;
      rates = neuron->Rates(pool);
    }
    const torch::Tensor starts = pool.index_select(0, std::get<1>(rates.topk(8)));
    const torch::Tensor ends = Ascend(*neuron, starts, 300);
    torch::NoGradGuard no_grad;
    const torch::Tensor found = neuron->Rates(ends) / neuron->optimum_rate();
    const double tolerance = neuron->optimum_is_exact() ? 1e-6 : kEstimateTolerance;
    EXPECT_LE(found.max().item<double>(), 1 + tolerance) << "seed " << seed;
    EXPECT_GT(found.max().item<double>(), 0.5) << "seed " << seed;  // the ascent works
  }
}

TEST_P(FamilyTest, RatesAreFiniteNonNegativeAndDifferentiable) {
  auto neuron = Make(GetParam(), 11);
  const SimulatedNeuronSpec& spec = neuron->spec();
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(11);
  std::vector<torch::Tensor> parts = {UniformImages(64, spec, gen), SmoothImages(64, spec, gen),
                                      neuron->Optimum().unsqueeze(0),
                                      1 - neuron->Optimum().unsqueeze(0)};
  for (float level : {0.0f, 0.5f, 1.0f}) {
    parts.push_back(torch::full({1, spec.channels, spec.height, spec.width}, level));
  }
  torch::Tensor checker =
      (torch::arange(spec.height).view({-1, 1}) + torch::arange(spec.width).view({1, -1}))
          .remainder(2)
          .to(torch::kFloat);
  parts.push_back(checker.expand({1, spec.channels, spec.height, spec.width}));
  const torch::Tensor images = torch::cat(parts).requires_grad_(true);
  const torch::Tensor rates = neuron->Rates(images);
  ASSERT_EQ(rates.sizes(), (std::vector<int64_t>{images.size(0)}));
  EXPECT_TRUE(rates.isfinite().all().item<bool>());
  EXPECT_GE(rates.min().item<double>(), 0);
  rates.sum().backward();
  ASSERT_TRUE(images.grad().defined());
  EXPECT_TRUE(images.grad().isfinite().all().item<bool>());
  EXPECT_GT(images.grad().abs().sum().item<double>(), 0);
}

TEST_P(FamilyTest, UniformImagesGiveZeroRate) {
  auto neuron = Make(GetParam(), 12);
  const SimulatedNeuronSpec& spec = neuron->spec();
  for (float level : {0.0f, 0.25f, 0.5f, 1.0f}) {
    const torch::Tensor image = torch::full({1, spec.channels, spec.height, spec.width}, level);
    EXPECT_NEAR(neuron->Rates(image).item<double>(), 0, 1e-6) << "level " << level;
  }
}

TEST_P(FamilyTest, SameSeedSameCellOtherSeedOther) {
  auto a = Make(GetParam(), 13);
  auto b = Make(GetParam(), 13);
  auto c = Make(GetParam(), 14);
  EXPECT_TRUE(torch::equal(a->Optimum(), b->Optimum()));
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(13);
  const torch::Tensor images = SmoothImages(16, a->spec(), gen);
  EXPECT_TRUE(torch::equal(a->Rates(images), b->Rates(images)));
  EXPECT_FALSE(torch::equal(a->Optimum(), c->Optimum()));
  EXPECT_FALSE(torch::equal(a->Rates(images), c->Rates(images)));
  // Each is driven by its own optimum far more than by the other's.
  EXPECT_LT(Rate(*a, c->Optimum()), 0.6 * a->optimum_rate());
  EXPECT_LT(Rate(*c, a->Optimum()), 0.6 * c->optimum_rate());
}

TEST_P(FamilyTest, RgbCellOfAGrayKindSeesLuminance) {
  if (GetParam() == CellKind::kColor) GTEST_SKIP() << "the color cell sees color";
  auto gray = Make(GetParam(), 15, 32, 1);
  auto rgb = Make(GetParam(), 15, 32, 3);
  EXPECT_TRUE(torch::equal(rgb->Optimum(), gray->Optimum().expand({3, 32, 32})));
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(15);
  const torch::Tensor images = SmoothImages(16, gray->spec(), gen);
  EXPECT_TRUE(torch::allclose(rgb->Rates(images.expand({16, 3, 32, 32})), gray->Rates(images),
                              /*rtol=*/1e-5, /*atol=*/1e-6));
  // Equal and opposite patterns in two channels: isoluminant, no drive.
  const torch::Tensor opt = gray->Optimum()[0];
  const torch::Tensor isoluminant =
      torch::stack({opt, 1 - opt, torch::full({32, 32}, 0.5f)}).unsqueeze(0);
  EXPECT_NEAR(rgb->Rates(isoluminant).item<double>(), 0, 1e-6);
}

TEST_P(FamilyTest, RejectsBadSpecsNamingTheField) {
  struct Case {
    void (*mutate)(SimulatedNeuronSpec&);
    const char* field;
  };
  const Case cases[] = {
      {[](SimulatedNeuronSpec& s) { s.height = 15; }, "height"},
      {[](SimulatedNeuronSpec& s) { s.width = 513; }, "width"},
      {[](SimulatedNeuronSpec& s) { s.channels = 2; }, "channels"},
      {[](SimulatedNeuronSpec& s) { s.peak_rate = -1; }, "peak_rate"},
      {[](SimulatedNeuronSpec& s) { s.exponent = 0; }, "exponent"},
  };
  for (const Case& c : cases) {
    SimulatedNeuronSpec spec;
    spec.kind = GetParam();
    spec.channels = 3;
    c.mutate(spec);
    auto neuron = SimulatedNeuron::Create(spec);
    ASSERT_FALSE(neuron.ok()) << c.field;
    EXPECT_EQ(neuron.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(neuron.status().message().find(c.field), absl::string_view::npos) << neuron.status();
  }
}

TEST(ColorCellTest, GrayImagesAreRefusedNamingChannels) {
  SimulatedNeuronSpec spec;
  spec.kind = CellKind::kColor;
  spec.channels = 1;
  auto neuron = SimulatedNeuron::Create(spec);
  ASSERT_FALSE(neuron.ok());
  EXPECT_EQ(neuron.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(neuron.status().message().find("channels"), absl::string_view::npos);
  EXPECT_NE(neuron.status().message().find("color"), absl::string_view::npos);
  auto population = SimulatedPopulation::Create(spec, 3, /*mix=*/true);
  ASSERT_FALSE(population.ok());
  EXPECT_NE(population.status().message().find("channels"), absl::string_view::npos);
}

// Double opponency: the optimum is chromatic (its luminance alone drives the
// cell much less), and the complementary colors silence it.
TEST(ColorCellTest, IsChromaticallyAndSpatiallyOpponent) {
  int red_green = 0;
  for (uint64_t seed : {1, 2, 3, 4, 5, 6}) {
    auto neuron = Make(CellKind::kColor, seed);
    const ColorAxis axis = DrawColorAxis(neuron->spec());
    if (axis.red_green) {
      ++red_green;
      EXPECT_GT(axis.r, 0);
      EXPECT_LT(axis.g, 0);
    } else {
      EXPECT_GT(axis.b, 0);
      EXPECT_LT(axis.r, 0);
    }
    const torch::Tensor optimum = neuron->Optimum();
    const torch::Tensor luminance = optimum.mean(0, true).expand({3, 32, 32});
    EXPECT_LT(Rate(*neuron, luminance), 0.4 * neuron->optimum_rate()) << "seed " << seed;
    EXPECT_EQ(Rate(*neuron, 1 - optimum), 0) << "seed " << seed;
  }
  EXPECT_GT(red_green, 0);
  EXPECT_LT(red_green, 6);
}

// Size tuning: a grating patch beats the same grating over the full field
// at every phase, and the optimum is gray around its patch.
TEST(EndStoppedCellTest, PrefersAGratingPatchToAFullField) {
  for (uint64_t seed : {1, 2, 3}) {
    auto neuron = Make(CellKind::kEndStopped, seed, 64);
    const GaborParams& g = neuron->gabor();
    std::vector<torch::Tensor> full, patch;
    for (int k = 0; k < 64; ++k) {
      torch::Tensor f = torch::empty({1, 64, 64}), p = torch::empty({1, 64, 64});
      auto fa = f.accessor<float, 3>(), pa = p.accessor<float, 3>();
      for (int64_t y = 0; y < 64; ++y) {
        for (int64_t x = 0; x < 64; ++x) {
          const double dx = x + 0.5 - g.center_x, dy = y + 0.5 - g.center_y;
          const double across = std::cos(g.orientation) * dx + std::sin(g.orientation) * dy;
          const double radius = 1 + 0.5 * (k / 16);  // 1, 1.5, 2, 2.5 sigma
          const float v = std::cos(2 * kPi * across / g.wavelength + 2 * kPi * k / 16) > 0 ? 1 : 0;
          fa[0][y][x] = v;
          pa[0][y][x] = std::hypot(dx, dy) <= radius * g.sigma ? v : 0.5f;
        }
      }
      full.push_back(f);
      patch.push_back(p);
    }
    torch::NoGradGuard no_grad;
    const double best_full = neuron->Rates(torch::stack(full)).max().item<double>();
    const double best_patch = neuron->Rates(torch::stack(patch)).max().item<double>();
    EXPECT_LT(best_full, 0.7 * best_patch) << "seed " << seed;
    EXPECT_GT(best_patch, 0.3 * neuron->optimum_rate()) << "seed " << seed;
    // Contrast in the optimum: high at the center, low in the annulus.
    double center = 0, annulus = 0;
    int64_t n_center = 0, n_annulus = 0;
    auto o = neuron->Optimum().accessor<float, 3>();
    for (int64_t y = 0; y < 64; ++y) {
      for (int64_t x = 0; x < 64; ++x) {
        const double r = std::hypot(x + 0.5 - g.center_x, y + 0.5 - g.center_y) / g.sigma;
        const double c = std::abs(o[0][y][x] - 0.5);
        if (r < 1) center += c, ++n_center;
        if (r > 3 && r < 4) annulus += c, ++n_annulus;
      }
    }
    EXPECT_GT(center / n_center, 0.35) << "seed " << seed;
    EXPECT_LT(annulus / n_annulus, 0.2) << "seed " << seed;
  }
}

// A soft AND: the optimum without any one of its fragments, or with one
// fragment alone, drives the cell much less.
TEST(V4CellTest, NeedsEveryFragment) {
  for (uint64_t seed : {1, 2, 3, 4, 5, 6}) {
    auto neuron = Make(CellKind::kV4, seed);
    const V4Params p = DrawV4Params(neuron->spec());
    ASSERT_GE(p.subunits.size(), 2u);
    ASSERT_LE(p.subunits.size(), 3u);
    const torch::Tensor optimum = neuron->Optimum();
    double alone_sum = 0;
    for (size_t k = 0; k < p.subunits.size(); ++k) {
      torch::Tensor without = optimum.clone(), alone = torch::full_like(optimum, 0.5f);
      auto w = without.accessor<float, 3>(), a = alone.accessor<float, 3>();
      auto o = optimum.accessor<float, 3>();
      for (int64_t y = 0; y < 32; ++y) {
        for (int64_t x = 0; x < 32; ++x) {
          const GaborParams& g = p.subunits[k];
          if (std::hypot(x + 0.5 - g.center_x, y + 0.5 - g.center_y) < 2.5 * g.sigma) {
            w[0][y][x] = 0.5f;
            a[0][y][x] = o[0][y][x];
          }
        }
      }
      EXPECT_LT(Rate(*neuron, without), 0.7 * neuron->optimum_rate()) << "seed " << seed;
      EXPECT_LT(Rate(*neuron, alone), 0.5 * neuron->optimum_rate()) << "seed " << seed;
      alone_sum += Rate(*neuron, alone);
    }
    if (p.subunits.size() == 2) {  // superadditive, unlike a sum of the two
      EXPECT_LT(alone_sum, neuron->optimum_rate()) << "seed " << seed;
    }
  }
}

// Normalization: contrast added around the fragments suppresses.
TEST(V4CellTest, ContrastAroundTheFragmentsSuppresses) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(3);
  for (uint64_t seed : {1, 2, 3, 4, 5, 6, 7, 8}) {
    auto neuron = Make(CellKind::kV4, seed);
    const V4Params p = DrawV4Params(neuron->spec());
    const torch::Tensor optimum = neuron->Optimum();
    torch::Tensor noisy = torch::rand(optimum.sizes(), gen).round();
    auto n = noisy.accessor<float, 3>();
    auto o = optimum.accessor<float, 3>();
    for (int64_t y = 0; y < 32; ++y) {
      for (int64_t x = 0; x < 32; ++x) {
        for (const GaborParams& g : p.subunits) {
          if (std::hypot(x + 0.5 - g.center_x, y + 0.5 - g.center_y) < 2.5 * g.sigma) {
            n[0][y][x] = o[0][y][x];
          }
        }
      }
    }
    EXPECT_LT(Rate(*neuron, noisy), 0.85 * neuron->optimum_rate()) << "seed " << seed;
  }
}

// A unit with a receptive field, sparse and not a linear filter: most
// natural-like images leave it silent, the optimum shifted or reversed in
// contrast drives it much less, and the best image of its linearization at
// an image it responds to falls short of the optimum.
TEST(DeepNetCellTest, IsSparseNonlinearAndLocal) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(4);
  for (uint64_t seed : {1, 2, 3}) {
    auto neuron = Make(CellKind::kDeepNet, seed);
    const torch::Tensor images = SpectralImages(1000, neuron->spec(), gen);
    torch::Tensor rates;
    {
      torch::NoGradGuard no_grad;
      rates = neuron->Rates(images);
    }
    const double active = (rates > 0).to(torch::kDouble).mean().item<double>();
    EXPECT_GT(active, 0.01) << "seed " << seed;
    EXPECT_LT(active, 0.8) << "seed " << seed;

    const torch::Tensor optimum = neuron->Optimum();
    const double peak = neuron->optimum_rate();
    EXPECT_LT(Rate(*neuron, 1 - optimum), 0.5 * peak) << "seed " << seed;
    EXPECT_LT(Rate(*neuron, torch::roll(optimum, {3, 3}, {1, 2})), 0.7 * peak) << "seed " << seed;

    torch::Tensor x = images[rates.argmax().item<int64_t>()].unsqueeze(0).requires_grad_(true);
    neuron->Rates(x).sum().backward();
    const torch::Tensor linear_best = (x.grad()[0] > 0).to(torch::kFloat);
    EXPECT_LT(Rate(*neuron, linear_best), 0.95 * peak) << "seed " << seed;
  }
}

}  // namespace
}  // namespace stimloop
