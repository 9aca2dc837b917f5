#include "optimizers/image_io.h"

#include <gtest/gtest.h>

namespace stimloop {
namespace {

// A decoded image owns its pixels: for one channel, a view into OpenCV's
// buffer would survive the decode and read freed memory.
TEST(ImageIoTest, DecodedGrayImageOwnsItsPixels) {
  torch::Tensor image = torch::arange(0, 256, torch::kInt32).reshape({1, 16, 16}).to(torch::kUInt8);
  auto png = EncodePng(image);
  ASSERT_TRUE(png.ok());
  auto decoded = DecodeImage(*png);
  ASSERT_TRUE(decoded.ok());
  // Churn the heap so freed buffers get reused.
  std::vector<std::vector<uint8_t>> churn;
  for (int i = 0; i < 64; ++i) churn.emplace_back(256, static_cast<uint8_t>(i));
  EXPECT_TRUE(torch::equal(*decoded, image));
  EXPECT_TRUE(decoded->is_contiguous());
}

TEST(ImageIoTest, RgbRoundTripKeepsChannelOrder) {
  torch::Tensor image = torch::zeros({3, 16, 16}, torch::kUInt8);
  image[0].fill_(200);  // red
  image[2].fill_(20);   // blue
  auto png = EncodePng(image);
  ASSERT_TRUE(png.ok());
  auto decoded = DecodeImage(*png);
  ASSERT_TRUE(decoded.ok());
  EXPECT_TRUE(torch::equal(*decoded, image));
}

TEST(ImageIoTest, BadBytesAreInvalid) {
  EXPECT_EQ(DecodeImage("not a png").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodeImage("").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodePng(torch::zeros({2, 4, 4}, torch::kUInt8)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace stimloop
