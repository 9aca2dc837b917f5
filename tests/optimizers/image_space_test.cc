#include "optimizers/image_space.h"

#include <string>

#include "gtest/gtest.h"
#include "optimizers/optimizer.h"
#include "optimizers/spectral_space.h"
#include "tests/optimizers/toy_loop.h"

namespace stimloop {
namespace {

using ::stimloop::testing::MakeSpace;

absl::Status BuildStatus(const std::string& name, std::map<std::string, double> params,
                         ImageShape shape = {1, 32, 32}) {
  ImageSpaceSpec spec;
  spec.name = name;
  spec.params = std::move(params);
  return MakeImageSpace(spec, shape).status();
}

TEST(ImageSpaceTest, QuantizeRoundsToTheEightBitGrid) {
  const torch::Tensor x = torch::tensor({-0.5f, 0.0f, 0.31f, 1.0f / 510.0f + 1e-4f, 0.999f, 2.0f});
  const torch::Tensor q = QuantizeImages(x);
  const torch::Tensor expected =
      torch::tensor({0.0f, 0.0f, 79.0f / 255, 1.0f / 255, 1.0f, 1.0f});
  EXPECT_TRUE(torch::allclose(q, expected, 0, 1e-7));
  // Already on the grid: unchanged, bit for bit.
  EXPECT_TRUE(torch::equal(QuantizeImages(q), q));
  // Every value is k / 255 for a whole k.
  const torch::Tensor k = q * 255;
  EXPECT_TRUE(torch::allclose(k, torch::round(k), 0, 1e-4));
}

TEST(ImageSpaceTest, Uint8RoundTripIsExactOnTheGrid) {
  const torch::Tensor all = torch::arange(256, torch::kLong).to(torch::kUInt8);
  const torch::Tensor floats = FromUint8(all);
  EXPECT_EQ(floats.scalar_type(), torch::kFloat);
  EXPECT_FLOAT_EQ(floats[255].item<float>(), 1.0f);
  EXPECT_TRUE(torch::equal(ToUint8(floats), all));
  EXPECT_TRUE(torch::equal(QuantizeImages(floats), floats));
  EXPECT_TRUE(torch::equal(ToUint8(torch::tensor({-1.0f, 0.5f, 3.0f})),
                           torch::tensor({0, 128, 255}, torch::kLong).to(torch::kUInt8)));
}

TEST(ImageSpaceTest, UnknownNamesListTheKnownOnes) {
  const absl::Status unknown = BuildStatus("fourier", {});
  EXPECT_EQ(unknown.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(unknown.message().find("image_space.name"), std::string::npos) << unknown;
  EXPECT_NE(unknown.message().find("pixel, spectral"), std::string::npos) << unknown;
  const absl::Status torchscript = BuildStatus("torchscript", {});
  EXPECT_EQ(torchscript.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(torchscript.message().find("image_space.name: 'torchscript'"), std::string::npos)
      << torchscript;
}

TEST(ImageSpaceTest, BadParametersNameTheField) {
  const absl::Status unknown = BuildStatus("pixel", {{"cutoff", 4}});
  EXPECT_EQ(unknown.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(unknown.message().find("image_space.params.cutoff"), std::string::npos) << unknown;
  const absl::Status range = BuildStatus("spectral", {{"contrast", 5}});
  EXPECT_EQ(range.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(range.message().find("image_space.params.contrast: 5 is outside"),
            std::string::npos)
      << range;
  const absl::Status whole = BuildStatus("spectral", {{"cutoff", 2.5}});
  EXPECT_NE(whole.message().find("image_space.params.cutoff"), std::string::npos) << whole;
  EXPECT_TRUE(BuildStatus("spectral", {{"cutoff", 8}, {"contrast", 0.2}, {"falloff", 1.5}})
                  .ok());
  EXPECT_EQ(BuildStatus("pixel", {}, {1, 0, 32}).code(), absl::StatusCode::kInvalidArgument);
}

TEST(PixelSpaceTest, EncodeIsExactAndProjectClamps) {
  auto space = MakeSpace("pixel", {3, 8, 6});
  ASSERT_EQ(space->code_size(), 3 * 8 * 6);
  at::Generator generator = MakeGenerator(1, "test");
  const torch::Tensor codes = space->SamplePrior(5, generator);
  ASSERT_EQ(codes.sizes(), (torch::IntArrayRef{5, 144}));
  EXPECT_GE(codes.min().item<float>(), 0.0f);
  EXPECT_LE(codes.max().item<float>(), 1.0f);
  const torch::Tensor images = space->Decode(codes);
  ASSERT_EQ(images.sizes(), (torch::IntArrayRef{5, 3, 8, 6}));
  EXPECT_TRUE(torch::equal(space->Encode(images), codes));
  EXPECT_TRUE(torch::equal(images[2][1][4][3], codes[2][1 * 48 + 4 * 6 + 3]));
  const torch::Tensor projected = space->Project(torch::tensor({{-1.0f, 0.25f, 7.0f}}));
  EXPECT_TRUE(torch::equal(projected, torch::tensor({{0.0f, 0.25f, 1.0f}})));
}

TEST(SpectralSpaceTest, EncodeInvertsDecodeWhereNothingClips) {
  auto space = MakeSpace("spectral", {2, 24, 20}, {{"cutoff", 6}, {"contrast", 0.15}});
  ASSERT_EQ(space->code_size(), 2 * 6 * 6);
  at::Generator generator = MakeGenerator(2, "test");
  // Small codes: every pixel stays well inside (0, 1).
  const torch::Tensor codes = 0.3 * space->SamplePrior(4, generator);
  const torch::Tensor images = space->Decode(codes);
  ASSERT_GT(images.min().item<float>(), 0.0f);
  ASSERT_LT(images.max().item<float>(), 1.0f);
  EXPECT_TRUE(torch::allclose(space->Encode(images), codes, 1e-4, 1e-4));
}

TEST(SpectralSpaceTest, CutoffIsLimitedByTheImageSide) {
  auto space = MakeSpace("spectral", {1, 16, 40}, {{"cutoff", 20}});
  const auto& spectral = dynamic_cast<const SpectralSpace&>(*space);
  EXPECT_EQ(spectral.rows(), 16);
  EXPECT_EQ(spectral.cols(), 20);
  EXPECT_EQ(space->code_size(), 16 * 20);
}

TEST(SpectralSpaceTest, PriorImagesHaveTheRequestedContrastAndAreSmooth) {
  auto space = MakeSpace("spectral", {1, 64, 64}, {{"contrast", 0.1}});
  at::Generator generator = MakeGenerator(3, "test");
  const torch::Tensor images = space->Decode(space->SamplePrior(200, generator));
  EXPECT_NEAR(images.mean().item<double>(), 0.5, 0.02);
  EXPECT_NEAR(images.std().item<double>(), 0.1, 0.02);
  // 1/f: neighbouring pixels are highly correlated, unlike white noise.
  const torch::Tensor left = images.slice(3, 0, 63) - 0.5;
  const torch::Tensor right = images.slice(3, 1, 64) - 0.5;
  const double correlation =
      ((left * right).sum() / (left.norm() * right.norm())).item<double>();
  EXPECT_GT(correlation, 0.9);
  // Falloff 0 (white spectrum up to the cutoff) is rougher.
  auto white = MakeSpace("spectral", {1, 64, 64}, {{"contrast", 0.1}, {"falloff", 0}});
  const torch::Tensor w = white->Decode(white->SamplePrior(200, generator));
  const torch::Tensor wl = w.slice(3, 0, 63) - 0.5, wr = w.slice(3, 1, 64) - 0.5;
  EXPECT_LT(((wl * wr).sum() / (wl.norm() * wr.norm())).item<double>(), correlation);
}

TEST(SpectralSpaceTest, DecodeIsDifferentiable) {
  auto space = MakeSpace("spectral", {1, 16, 16}, {{"cutoff", 4}, {"contrast", 0.15}});
  at::Generator generator = MakeGenerator(4, "test");
  const torch::Tensor codes = (0.5 * space->SamplePrior(2, generator)).requires_grad_(true);
  const torch::Tensor images = space->Decode(codes);
  images.sum().backward();
  ASSERT_TRUE(codes.grad().defined());
  // Only the DC coefficient changes the sum of an unclipped image.
  const torch::Tensor grad = codes.grad();
  EXPECT_GT(grad[0][0].item<float>(), 0.0f);
  EXPECT_LT(grad.slice(1, 1).abs().max().item<float>(), 1e-3f);
}

TEST(SpectralSpaceTest, DecodeIsTheUnclippedDecodeClampedToTheBox) {
  auto space = MakeSpace("spectral", {1, 16, 16}, {{"cutoff", 8}, {"contrast", 1.0}});
  at::Generator generator = MakeGenerator(5, "test");
  const torch::Tensor codes = space->SamplePrior(4, generator);
  const torch::Tensor unclipped = space->DecodeUnclipped(codes);
  // Contrast 1 leaves the box often: the test means something.
  EXPECT_GT((unclipped > 1).sum().item<int64_t>() + (unclipped < 0).sum().item<int64_t>(), 16);
  EXPECT_TRUE(torch::equal(space->Decode(codes), unclipped.clamp(0, 1)));
  auto pixel = MakeSpace("pixel", {1, 4, 4});
  const torch::Tensor pixel_codes = torch::rand({2, 16});
  EXPECT_TRUE(torch::equal(pixel->DecodeUnclipped(pixel_codes), pixel->Decode(pixel_codes)));
}

TEST(PixelSpaceTest, DecodeIsDifferentiable) {
  auto space = MakeSpace("pixel", {1, 4, 4});
  const torch::Tensor codes = torch::full({1, 16}, 0.5f).requires_grad_(true);
  (space->Decode(codes) * 2).sum().backward();
  EXPECT_TRUE(torch::equal(codes.grad(), torch::full({1, 16}, 2.0f)));
}

TEST(ImageSpaceTest, PriorSamplesDependOnlyOnTheGenerator) {
  for (const char* name : {"pixel", "spectral"}) {
    auto space = MakeSpace(name, {1, 16, 16});
    at::Generator a = MakeGenerator(9, "x"), b = MakeGenerator(9, "x"), c = MakeGenerator(9, "y");
    const torch::Tensor first = space->SamplePrior(3, a);
    EXPECT_TRUE(torch::equal(first, space->SamplePrior(3, b))) << name;
    EXPECT_FALSE(torch::equal(first, space->SamplePrior(3, c))) << name;
  }
}

}  // namespace
}  // namespace stimloop
