#include "base/best_measured.h"

#include <vector>

#include "gtest/gtest.h"

namespace stimloop {
namespace {

MeasuredImage Image(double mean, int presentations, bool validated = false) {
  return {mean, presentations, validated};
}

TEST(BestMeasuredTest, NoneBeforeAnyResponse) {
  EXPECT_FALSE(BestMeasuredImage({}, false).has_value());
  EXPECT_FALSE(BestMeasuredImage({Image(0, 0), Image(0, 0)}, true).has_value());
}

TEST(BestMeasuredTest, HighestMeanWinsWithoutRepeats) {
  const std::vector<MeasuredImage> images = {Image(3, 1), Image(9, 1), Image(5, 3)};
  EXPECT_EQ(BestMeasuredImage(images, false), 1u);
  EXPECT_EQ(RankMeasuredImages(images, false), (std::vector<size_t>{1, 2, 0}));
}

TEST(BestMeasuredTest, WithRepeatsASingleLuckyTrialDoesNotWin) {
  // Image 0 had one trial at 65; image 1 was shown twice (mean 47.5).
  const std::vector<MeasuredImage> images = {Image(65, 1), Image(47.5, 2), Image(10, 3)};
  EXPECT_EQ(MinPresentationsForBest(images, true), 2);
  EXPECT_EQ(BestMeasuredImage(images, true), 1u);
  // The single-trial image still ranks, after the eligible ones.
  EXPECT_EQ(RankMeasuredImages(images, true), (std::vector<size_t>{1, 2, 0}));
  // Without repeats configured, presentations do not matter.
  EXPECT_EQ(BestMeasuredImage(images, false), 0u);
}

TEST(BestMeasuredTest, WithRepeatsButNoneShownTwiceEveryMeasuredImageCounts) {
  const std::vector<MeasuredImage> images = {Image(1, 1), Image(4, 1), Image(0, 0)};
  EXPECT_EQ(MinPresentationsForBest(images, true), 1);
  EXPECT_EQ(BestMeasuredImage(images, true), 1u);
  EXPECT_EQ(RankMeasuredImages(images, true), (std::vector<size_t>{1, 0}));
}

TEST(BestMeasuredTest, AfterAValidationBlockOnlyItsImagesAreCandidates) {
  const std::vector<MeasuredImage> images = {Image(90, 2), Image(50, 6, true), Image(60, 5, true),
                                             Image(70, 0, true)};
  EXPECT_EQ(BestMeasuredImage(images, true), 2u);
  EXPECT_EQ(RankMeasuredImages(images, true), (std::vector<size_t>{2, 1, 0}));
  const std::vector<bool> eligible = EligibleForBest(images, true);
  EXPECT_EQ(eligible, (std::vector<bool>{false, true, true, false}));
}

TEST(BestMeasuredTest, TiesGoToTheEarlierFirstShowing) {
  const std::vector<MeasuredImage> images = {Image(2, 1), Image(5, 1), Image(5, 1)};
  EXPECT_EQ(BestMeasuredImage(images, false), 1u);
  EXPECT_EQ(RankMeasuredImages(images, false), (std::vector<size_t>{1, 2, 0}));
}

}  // namespace
}  // namespace stimloop
