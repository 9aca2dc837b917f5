#include "base/seed.h"

#include "gtest/gtest.h"

namespace stimloop {
namespace {

// These values are part of every stored session: a change here changes what
// resumed and replayed sessions propose.
TEST(SeedTest, SplitMix64KnownValues) {
  // The first two outputs of the reference SplitMix64 generator from state 0.
  EXPECT_EQ(SplitMix64(0), 0xe220a8397b1dcdafULL);
  EXPECT_EQ(SplitMix64(kSplitMix64Gamma), 0x6e789e6aa1b965f4ULL);
  EXPECT_EQ(SplitMix64(1), 0x910a2dec89025cc1ULL);
}

TEST(SeedTest, SplitMix64AtIsTheSequenceFromTheSeed) {
  EXPECT_EQ(SplitMix64At(0, 0), 0xe220a8397b1dcdafULL);
  EXPECT_EQ(SplitMix64At(0, 1), 0x6e789e6aa1b965f4ULL);
  EXPECT_EQ(SplitMix64At(5, 3), 0x196e4ec2da05b945ULL);
}

TEST(SeedTest, DeriveSeedMixesTheStreamThenTheSeed) {
  EXPECT_EQ(DeriveSeed(42, 7), 0x6eab8625df268fbcULL);
  EXPECT_EQ(DeriveSeed(42, 7), SplitMix64(42 ^ SplitMix64(7)));
  EXPECT_NE(DeriveSeed(42, 7), DeriveSeed(42, 8));
  EXPECT_NE(DeriveSeed(42, 7), DeriveSeed(43, 7));
}

TEST(SeedTest, LabelHashIsFnv1a) {
  EXPECT_EQ(LabelHash(""), 0xcbf29ce484222325ULL);
  EXPECT_EQ(LabelHash("a"), 0xaf63dc4c8601ec8cULL);
  EXPECT_EQ(LabelHash("optimizer"), 0xe6a516a96b7551b4ULL);
}

}  // namespace
}  // namespace stimloop
