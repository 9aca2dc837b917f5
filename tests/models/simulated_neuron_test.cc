#include "models/simulated_neuron.h"

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <vector>

namespace stimloop {
namespace {

constexpr double kPi = 3.14159265358979323846;

std::unique_ptr<SimulatedNeuron> MakeNeuron(CellKind kind, uint64_t seed, int64_t channels = 1,
                                            int64_t height = 64, int64_t width = 64) {
  SimulatedNeuronSpec spec;
  spec.kind = kind;
  spec.seed = seed;
  spec.channels = channels;
  spec.height = height;
  spec.width = width;
  auto neuron = SimulatedNeuron::Create(spec);
  EXPECT_TRUE(neuron.ok()) << neuron.status();
  return std::move(*neuron);
}

torch::Tensor UniformImages(int64_t n, const SimulatedNeuronSpec& spec, at::Generator& gen) {
  return torch::rand({n, spec.channels, spec.height, spec.width}, gen);
}

// Low-pass noise: uniform noise on an 8x8 grid, bilinearly upsampled.
torch::Tensor SmoothImages(int64_t n, const SimulatedNeuronSpec& spec, at::Generator& gen) {
  const torch::Tensor coarse = torch::rand({n, spec.channels, 8, 8}, gen);
  namespace F = torch::nn::functional;
  return F::interpolate(coarse, F::InterpolateFuncOptions()
                                    .size(std::vector<int64_t>{spec.height, spec.width})
                                    .mode(torch::kBilinear)
                                    .align_corners(false));
}

// Full-contrast sinusoidal grating [1, C, H, W] at the neuron's preferred
// orientation and wavelength, with carrier phase `phase`; binarized to 0/1
// when `square`.
torch::Tensor Grating(const SimulatedNeuron& neuron, double phase, bool square = false) {
  const SimulatedNeuronSpec& spec = neuron.spec();
  const GaborParams& g = neuron.gabor();
  torch::Tensor image = torch::empty({spec.height, spec.width});
  auto acc = image.accessor<float, 2>();
  for (int64_t y = 0; y < spec.height; ++y) {
    for (int64_t x = 0; x < spec.width; ++x) {
      const double along = std::cos(g.orientation) * (x + 0.5 - g.center_x) +
                           std::sin(g.orientation) * (y + 0.5 - g.center_y);
      const double v = std::cos(2 * kPi * along / g.wavelength + phase);
      acc[y][x] = square ? (v > 0 ? 1.0f : 0.0f) : static_cast<float>(0.5 + 0.5 * v);
    }
  }
  return image.expand({1, spec.channels, spec.height, spec.width}).contiguous();
}

class BothKindsTest : public ::testing::TestWithParam<CellKind> {};

INSTANTIATE_TEST_SUITE_P(SimulatedNeuron, BothKindsTest,
                         ::testing::Values(CellKind::kSimple, CellKind::kComplex,
                                           CellKind::kPlaid),
                         [](const auto& info) { return std::string(CellKindName(info.param)); });

TEST_P(BothKindsTest, OptimumReachesPeakRateExactly) {
  for (uint64_t seed : {0, 1, 2, 17, 123456789}) {
    for (int64_t channels : {1, 3}) {
      auto neuron = MakeNeuron(GetParam(), seed, channels);
      const torch::Tensor& optimum = neuron->Optimum();
      ASSERT_EQ(optimum.sizes(), (std::vector<int64_t>{channels, 64, 64}));
      EXPECT_TRUE(((optimum == 0) | (optimum == 1)).all().item<bool>());
      EXPECT_GT(optimum.sum().item<double>(), 0);  // not a uniform image
      EXPECT_LT(optimum.mean().item<double>(), 1);
      const torch::Tensor rate = neuron->Rates(optimum.unsqueeze(0));
      ASSERT_EQ(rate.sizes(), (std::vector<int64_t>{1}));
      EXPECT_EQ(rate.scalar_type(), torch::kFloat);
      EXPECT_FLOAT_EQ(rate.item<float>(), 50.0f) << "seed " << seed;
      EXPECT_EQ(neuron->optimum_rate(), 50.0);
    }
  }
}

TEST_P(BothKindsTest, OptimumBeatsRandomImages) {
  // 10,000 uniform-noise and 10,000 smooth images, each shown to 3 neurons.
  std::vector<std::unique_ptr<SimulatedNeuron>> neurons;
  for (uint64_t seed : {3, 4, 5}) neurons.push_back(MakeNeuron(GetParam(), seed));
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(42);
  for (bool smooth : {false, true}) {
    std::vector<float> best(neurons.size(), 0);
    for (int chunk = 0; chunk < 10; ++chunk) {
      const SimulatedNeuronSpec& spec = neurons[0]->spec();
      const torch::Tensor images =
          smooth ? SmoothImages(1000, spec, gen) : UniformImages(1000, spec, gen);
      for (size_t i = 0; i < neurons.size(); ++i) {
        best[i] = std::max(best[i], neurons[i]->Rates(images).max().item<float>());
      }
    }
    for (size_t i = 0; i < neurons.size(); ++i) {
      EXPECT_GT(best[i], 0) << "neuron " << i << " smooth " << smooth;
      EXPECT_LT(best[i], 0.9 * neurons[i]->optimum_rate())
          << "neuron " << i << " smooth " << smooth;
    }
  }
}

TEST_P(BothKindsTest, RandomImagesStayFarBelowPeak) {
  // Random search alone must not solve the problem. Measured at 64x64 over
  // 20 seeds, the 90th percentile of 1000 random images is ~0.2-4% of peak.
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(7);
  auto neuron = MakeNeuron(GetParam(), 8);
  for (bool smooth : {false, true}) {
    const torch::Tensor images =
        smooth ? SmoothImages(1000, neuron->spec(), gen) : UniformImages(1000, neuron->spec(), gen);
    const torch::Tensor rates = neuron->Rates(images);
    EXPECT_GT(rates.max().item<double>(), 0) << "smooth " << smooth;
    EXPECT_LT(rates.quantile(0.9).item<double>(), 0.1 * neuron->optimum_rate())
        << "smooth " << smooth;
  }
}

TEST_P(BothKindsTest, NoSinglePixelFlipImprovesTheOptimum) {
  for (uint64_t seed : {9, 10}) {
    auto neuron = MakeNeuron(GetParam(), seed, 1, 32, 48);
    const torch::Tensor optimum = neuron->Optimum().reshape({-1});
    const int64_t n = optimum.numel();
    torch::Tensor flipped = optimum.unsqueeze(0).repeat({n, 1});
    flipped.diagonal().copy_(1 - optimum);
    const torch::Tensor rates = neuron->Rates(flipped.reshape({n, 1, 32, 48}));
    EXPECT_LE(rates.max().item<double>(), neuron->optimum_rate() * (1 + 1e-9)) << "seed " << seed;
  }
}

TEST_P(BothKindsTest, OptimumBeatsBinaryGratingsAtEveryPhase) {
  auto neuron = MakeNeuron(GetParam(), 11);
  std::vector<torch::Tensor> gratings;
  for (int k = 0; k < 360; ++k) gratings.push_back(Grating(*neuron, 2 * kPi * k / 360, true));
  const torch::Tensor rates = neuron->Rates(torch::cat(gratings));
  EXPECT_LT(rates.max().item<double>(), neuron->optimum_rate());
  EXPECT_GT(rates.max().item<double>(), 0.5 * neuron->optimum_rate());  // it is tuned to them
}

TEST_P(BothKindsTest, UniformImagesGiveZeroRate) {
  auto neuron = MakeNeuron(GetParam(), 12, 3);
  for (float level : {0.0f, 0.25f, 0.5f, 1.0f}) {
    const torch::Tensor image = torch::full({1, 3, 64, 64}, level);
    EXPECT_NEAR(neuron->Rates(image).item<double>(), 0, 1e-9) << "level " << level;
  }
}

TEST_P(BothKindsTest, SameSeedGivesSameNeuron) {
  auto a = MakeNeuron(GetParam(), 13);
  auto b = MakeNeuron(GetParam(), 13);
  EXPECT_EQ(a->gabor().center_x, b->gabor().center_x);
  EXPECT_EQ(a->gabor().center_y, b->gabor().center_y);
  EXPECT_EQ(a->gabor().orientation, b->gabor().orientation);
  EXPECT_EQ(a->gabor().wavelength, b->gabor().wavelength);
  EXPECT_EQ(a->gabor().phase, b->gabor().phase);
  EXPECT_EQ(a->gabor().sigma, b->gabor().sigma);
  EXPECT_TRUE(torch::equal(a->Optimum(), b->Optimum()));
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(1);
  const torch::Tensor images = UniformImages(16, a->spec(), gen);
  EXPECT_TRUE(torch::equal(a->Rates(images), b->Rates(images)));
}

TEST_P(BothKindsTest, DifferentSeedsGiveDifferentReceptiveFields) {
  auto a = MakeNeuron(GetParam(), 14);
  auto b = MakeNeuron(GetParam(), 15);
  EXPECT_NE(a->gabor().center_x, b->gabor().center_x);
  EXPECT_NE(a->gabor().orientation, b->gabor().orientation);
  EXPECT_FALSE(torch::equal(a->Optimum(), b->Optimum()));
  // Each is driven by its own optimum far more than by the other's.
  EXPECT_LT(a->Rates(b->Optimum().unsqueeze(0)).item<double>(), 0.5 * a->optimum_rate());
  EXPECT_LT(b->Rates(a->Optimum().unsqueeze(0)).item<double>(), 0.5 * b->optimum_rate());
}

TEST_P(BothKindsTest, RgbCellSeesLuminance) {
  auto gray = MakeNeuron(GetParam(), 16, 1);
  auto rgb = MakeNeuron(GetParam(), 16, 3);
  EXPECT_TRUE(torch::equal(rgb->Optimum(), gray->Optimum().expand({3, 64, 64})));
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(2);
  const torch::Tensor images = SmoothImages(32, gray->spec(), gen);
  EXPECT_TRUE(torch::allclose(rgb->Rates(images.expand({32, 3, 64, 64})), gray->Rates(images),
                              /*rtol=*/1e-4, /*atol=*/1e-6));
  // Equal and opposite patterns in two channels cancel: isoluminant, no drive.
  const torch::Tensor opt = gray->Optimum();
  const torch::Tensor isoluminant =
      torch::stack({opt[0], 1 - opt[0], torch::full({64, 64}, 0.5f)}).unsqueeze(0);
  EXPECT_NEAR(rgb->Rates(isoluminant).item<double>(), 0, 1e-9);
}

TEST(SimulatedNeuronTest, ComplexCellIsPhaseInvariantSimpleCellIsNot) {
  for (uint64_t seed : {20, 21, 22}) {
    auto simple = MakeNeuron(CellKind::kSimple, seed);
    auto complex = MakeNeuron(CellKind::kComplex, seed);
    std::vector<torch::Tensor> simple_gratings, complex_gratings;
    for (int k = 0; k < 16; ++k) {
      simple_gratings.push_back(Grating(*simple, 2 * kPi * k / 16));
      complex_gratings.push_back(Grating(*complex, 2 * kPi * k / 16));
    }
    const torch::Tensor s = simple->Rates(torch::cat(simple_gratings));
    const torch::Tensor c = complex->Rates(torch::cat(complex_gratings));
    EXPECT_GT(c.min().item<double>(), 0.9 * c.max().item<double>()) << "seed " << seed;
    EXPECT_GT(c.max().item<double>(), 0.1 * complex->optimum_rate()) << "seed " << seed;
    EXPECT_EQ(s.min().item<double>(), 0) << "seed " << seed;  // anti-phase: rectified
    EXPECT_GT(s.max().item<double>(), 0.1 * simple->optimum_rate()) << "seed " << seed;
  }
}

TEST(SimulatedNeuronTest, ExponentShapesSimpleCellOutput) {
  SimulatedNeuronSpec spec;
  spec.seed = 23;
  spec.exponent = 1;
  auto linear = SimulatedNeuron::Create(spec);
  spec.exponent = 3;
  auto cubic = SimulatedNeuron::Create(spec);
  ASSERT_TRUE(linear.ok() && cubic.ok());
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(3);
  const torch::Tensor images = SmoothImages(64, spec, gen);
  const torch::Tensor r1 = (*linear)->Rates(images) / spec.peak_rate;
  const torch::Tensor r3 = (*cubic)->Rates(images) / spec.peak_rate;
  EXPECT_GT(r1.max().item<double>(), 0);
  EXPECT_TRUE(torch::allclose(r3, r1.pow(3), /*rtol=*/1e-4, /*atol=*/1e-7));
}

TEST(SimulatedNeuronTest, ReceptiveFieldScalesWithImageSize) {
  for (auto [height, width] : {std::pair<int64_t, int64_t>{64, 64}, {128, 96}, {16, 512}}) {
    for (uint64_t seed = 0; seed < 100; ++seed) {
      SimulatedNeuronSpec spec;
      spec.seed = seed;
      spec.height = height;
      spec.width = width;
      spec.kind = seed % 2 ? CellKind::kComplex : CellKind::kSimple;
      auto neuron = SimulatedNeuron::Create(spec);
      ASSERT_TRUE(neuron.ok()) << neuron.status();
      const GaborParams& g = (*neuron)->gabor();
      const double size = std::min(height, width);
      EXPECT_GE(g.center_x, 0.25 * width);
      EXPECT_LE(g.center_x, 0.75 * width);
      EXPECT_GE(g.center_y, 0.25 * height);
      EXPECT_LE(g.center_y, 0.75 * height);
      EXPECT_GE(g.sigma, 0.06 * size);
      EXPECT_LE(g.sigma, 0.12 * size);
      EXPECT_GE(g.wavelength, 2 * g.sigma);
      EXPECT_LE(g.wavelength, 3 * g.sigma);
      EXPECT_GE(g.orientation, 0);
      EXPECT_LT(g.orientation, kPi);
      EXPECT_GE(g.phase, 0);
      EXPECT_LT(g.phase, 2 * kPi);
      if (seed < 3) {  // the optimum is exact at every size
        EXPECT_FLOAT_EQ((*neuron)->Rates((*neuron)->Optimum().unsqueeze(0)).item<float>(), 50.0f);
      }
    }
  }
}

TEST(SimulatedNeuronTest, CreateRejectsBadSpecsNamingTheField) {
  struct Case {
    void (*mutate)(SimulatedNeuronSpec&);
    const char* field;
  };
  const Case cases[] = {
      {[](SimulatedNeuronSpec& s) { s.height = 15; }, "height"},
      {[](SimulatedNeuronSpec& s) { s.height = 513; }, "height"},
      {[](SimulatedNeuronSpec& s) { s.width = 8; }, "width"},
      {[](SimulatedNeuronSpec& s) { s.width = 1024; }, "width"},
      {[](SimulatedNeuronSpec& s) { s.channels = 2; }, "channels"},
      {[](SimulatedNeuronSpec& s) { s.channels = 0; }, "channels"},
      {[](SimulatedNeuronSpec& s) { s.peak_rate = 0; }, "peak_rate"},
      {[](SimulatedNeuronSpec& s) { s.peak_rate = -5; }, "peak_rate"},
      {[](SimulatedNeuronSpec& s) { s.peak_rate = std::nan(""); }, "peak_rate"},
      {[](SimulatedNeuronSpec& s) { s.exponent = 0; }, "exponent"},
      {[](SimulatedNeuronSpec& s) { s.exponent = -1; }, "exponent"},
  };
  for (const Case& c : cases) {
    SimulatedNeuronSpec spec;
    c.mutate(spec);
    auto neuron = SimulatedNeuron::Create(spec);
    ASSERT_FALSE(neuron.ok()) << c.field;
    EXPECT_EQ(neuron.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(neuron.status().message().find(c.field), absl::string_view::npos) << neuron.status();
    auto population = SimulatedPopulation::Create(spec, 2, true);
    ASSERT_FALSE(population.ok());
    EXPECT_NE(population.status().message().find(c.field), absl::string_view::npos);
  }
  SimulatedNeuronSpec edge;
  edge.height = 16;
  edge.width = 512;
  edge.channels = 3;
  EXPECT_TRUE(SimulatedNeuron::Create(edge).ok());
}

TEST(SimulatedNeuronTest, CellKindNamesRoundTrip) {
  for (CellKind kind : {CellKind::kSimple, CellKind::kComplex, CellKind::kPlaid}) {
    auto parsed = ParseCellKind(CellKindName(kind));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, kind);
  }
  EXPECT_EQ(CellKindName(CellKind::kSimple), "simple");
  EXPECT_EQ(CellKindName(CellKind::kComplex), "complex");
  auto bad = ParseCellKind("hypercomplex");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("hypercomplex"), absl::string_view::npos);
}

// A plaid cell sums two Gabors: the simple cell of the same seed is one of
// them, so that cell's optimum drives the plaid cell only partly, and a
// grating at the first Gabor's orientation less than at its own optimum.
TEST(SimulatedNeuronTest, PlaidCellNeedsBothOfItsGabors) {
  for (uint64_t seed : {1, 2, 3}) {
    const std::unique_ptr<SimulatedNeuron> plaid = MakeNeuron(CellKind::kPlaid, seed);
    const std::unique_ptr<SimulatedNeuron> simple = MakeNeuron(CellKind::kSimple, seed);
    EXPECT_EQ(plaid->gabor().center_x, simple->gabor().center_x);
    const double partial =
        plaid->Rates(simple->Optimum().unsqueeze(0))[0].item<double>() / plaid->optimum_rate();
    EXPECT_GT(partial, 0.05) << "seed " << seed;
    EXPECT_LT(partial, 0.8) << "seed " << seed;
    EXPECT_FALSE(torch::equal(plaid->Optimum(), simple->Optimum()));
  }
}

TEST(SimulatedPopulationTest, MixAlternatesKindsAndMatchesNeurons) {
  SimulatedNeuronSpec base;
  base.seed = 30;
  auto population = SimulatedPopulation::Create(base, 5, /*mix=*/true);
  ASSERT_TRUE(population.ok()) << population.status();
  ASSERT_EQ(population->size(), 5);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(4);
  const torch::Tensor images = SmoothImages(8, base, gen);
  const torch::Tensor rates = population->Rates(images);
  ASSERT_EQ(rates.sizes(), (std::vector<int64_t>{8, 5}));
  for (int i = 0; i < 5; ++i) {
    const SimulatedNeuron& neuron = population->neuron(i);
    EXPECT_EQ(neuron.spec().kind, i % 2 == 0 ? CellKind::kSimple : CellKind::kComplex);
    EXPECT_TRUE(torch::equal(rates.select(1, i), neuron.Rates(images)));
    for (int j = 0; j < i; ++j) {
      EXPECT_NE(neuron.spec().seed, population->neuron(j).spec().seed);
      EXPECT_NE(neuron.gabor().center_x, population->neuron(j).gabor().center_x);
    }
  }
}

TEST(SimulatedPopulationTest, SameSeedSamePopulationOtherSeedOther) {
  SimulatedNeuronSpec base;
  base.kind = CellKind::kComplex;
  base.seed = 31;
  auto a = SimulatedPopulation::Create(base, 4, /*mix=*/false);
  auto b = SimulatedPopulation::Create(base, 4, /*mix=*/false);
  base.seed = 32;
  auto c = SimulatedPopulation::Create(base, 4, /*mix=*/false);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(a->neuron(i).spec().kind, CellKind::kComplex);
    EXPECT_EQ(a->neuron(i).spec().seed, b->neuron(i).spec().seed);
    EXPECT_TRUE(torch::equal(a->neuron(i).Optimum(), b->neuron(i).Optimum()));
    EXPECT_NE(a->neuron(i).spec().seed, c->neuron(i).spec().seed);
    EXPECT_FALSE(torch::equal(a->neuron(i).Optimum(), c->neuron(i).Optimum()));
  }
}

TEST(SimulatedPopulationTest, RejectsNoNeurons) {
  auto population = SimulatedPopulation::Create(SimulatedNeuronSpec{}, 0, true);
  ASSERT_FALSE(population.ok());
  EXPECT_EQ(population.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(population.status().message().find("num_neurons"), absl::string_view::npos);
}

TEST(SimulatedNeuronTest, EveryCellKindNameRoundTrips) {
  ASSERT_EQ(AllCellKinds().size(), 7u);
  for (CellKind kind : AllCellKinds()) {
    auto parsed = ParseCellKind(CellKindName(kind));
    ASSERT_TRUE(parsed.ok()) << CellKindName(kind);
    EXPECT_EQ(*parsed, kind);
    EXPECT_NE(CellKindNames().find(std::string(CellKindName(kind))), std::string::npos);
  }
  for (const char* name : {"v4", "deepnet", "endstopped", "color"}) {
    EXPECT_TRUE(ParseCellKind(name).ok()) << name;
  }
  auto bad = ParseCellKind("it");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("deepnet"), absl::string_view::npos);  // lists the kinds
}

TEST(SimulatedNeuronTest, OnlyV1CellsHaveAGabor) {
  for (CellKind kind : AllCellKinds()) {
    SimulatedNeuronSpec spec;
    spec.kind = kind;
    spec.channels = 3;
    spec.height = spec.width = 32;
    auto neuron = SimulatedNeuron::Create(spec);
    ASSERT_TRUE(neuron.ok()) << neuron.status();
    const bool v1 = kind != CellKind::kV4 && kind != CellKind::kDeepNet;
    EXPECT_EQ((*neuron)->has_gabor(), v1) << CellKindName(kind);
    if (!v1) EXPECT_THROW((*neuron)->gabor(), c10::Error);
  }
}

// Beyond V1, `mix` has no simple/complex alternation to apply: a V4 array
// is v4 cells, each from its own seed.
TEST(SimulatedPopulationTest, OtherKindsMakeUniformPopulations) {
  SimulatedNeuronSpec base;
  base.kind = CellKind::kEndStopped;
  base.height = base.width = 32;
  base.seed = 33;
  auto population = SimulatedPopulation::Create(base, 3, /*mix=*/true);
  ASSERT_TRUE(population.ok()) << population.status();
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(population->neuron(i).spec().kind, CellKind::kEndStopped);
    for (int j = 0; j < i; ++j) {
      EXPECT_FALSE(torch::equal(population->neuron(i).Optimum(), population->neuron(j).Optimum()));
    }
  }
  base.kind = CellKind::kPlaid;  // a V1 kind: the V1 array, as before
  auto v1 = SimulatedPopulation::Create(base, 2, /*mix=*/true);
  ASSERT_TRUE(v1.ok());
  EXPECT_EQ(v1->neuron(0).spec().kind, CellKind::kSimple);
  EXPECT_EQ(v1->neuron(1).spec().kind, CellKind::kComplex);
}

TEST(PoissonRatesTest, MeanAndVarianceMatchPoissonCounts) {
  // 200,000 draws at 20 spikes/s in a 0.5 s window: 10 spikes on average.
  // The standard error of the mean rate is 0.01 spikes/s and that of the
  // variance (40 (spikes/s)^2) about 0.13, so the tolerances are > 10 SE.
  constexpr double kRate = 20, kWindow = 0.5;
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(5);
  const torch::Tensor rates = torch::full({200000}, kRate);
  const torch::Tensor measured = PoissonRates(rates, kWindow, gen);
  ASSERT_EQ(measured.sizes(), rates.sizes());
  EXPECT_EQ(measured.scalar_type(), torch::kFloat);
  const torch::Tensor counts = measured * kWindow;
  EXPECT_TRUE(torch::equal(counts, counts.round()));  // whole spikes
  EXPECT_GE(counts.min().item<double>(), 0);
  EXPECT_NEAR(measured.mean().item<double>(), kRate, 0.15);
  EXPECT_NEAR(measured.var().item<double>(), kRate / kWindow, 2.0);
}

TEST(PoissonRatesTest, DeterministicForAGeneratorSeedAndZeroStaysZero) {
  const torch::Tensor rates = torch::tensor({0.0f, 5.0f, 50.0f, 0.0f, 100.0f});
  at::Generator g1 = at::make_generator<at::CPUGeneratorImpl>(6);
  at::Generator g2 = at::make_generator<at::CPUGeneratorImpl>(6);
  const torch::Tensor a = PoissonRates(rates, 1.0, g1);
  const torch::Tensor b = PoissonRates(rates, 1.0, g2);
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_EQ(a[0].item<float>(), 0);
  EXPECT_EQ(a[3].item<float>(), 0);
  // The generator advanced: the next draw differs.
  EXPECT_FALSE(torch::equal(PoissonRates(torch::full({64}, 50.0f), 1.0, g1),
                            PoissonRates(torch::full({64}, 50.0f), 1.0, g1)));
}

}  // namespace
}  // namespace stimloop
