#include "optimizers/params.h"

#include <map>
#include <string>

#include "gtest/gtest.h"

namespace stimloop {
namespace {

TEST(ParamReaderTest, ReturnsValuesAndDefaults) {
  const std::map<std::string, double> map = {{"rate", 0.25}, {"count", 7}};
  ParamReader params(map, "optimizer.params");
  EXPECT_DOUBLE_EQ(params.Get("rate", 0.5, 0.0, 1.0), 0.25);
  EXPECT_EQ(params.GetInt("count", 3, 1, 10), 7);
  EXPECT_DOUBLE_EQ(params.Get("absent", 0.5, 0.0, 1.0), 0.5);
  EXPECT_TRUE(params.Finish().ok());
}

TEST(ParamReaderTest, OutOfRangeNamesTheFieldAndReturnsTheDefault) {
  const std::map<std::string, double> map = {{"rate", 2}};
  ParamReader params(map, "optimizer.params");
  EXPECT_DOUBLE_EQ(params.Get("rate", 0.5, 0.0, 1.0), 0.5);
  const absl::Status status = params.Finish();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "optimizer.params.rate: 2 is outside [0, 1]");
}

TEST(ParamReaderTest, RejectsNonFiniteAndFractionalIntegers) {
  const std::map<std::string, double> nan = {{"rate", std::nan("")}};
  ParamReader a(nan, "p");
  a.Get("rate", 0.5, 0.0, 1.0);
  EXPECT_NE(a.Finish().message().find("p.rate: nan"), std::string::npos) << a.Finish();
  const std::map<std::string, double> half = {{"count", 2.5}};
  ParamReader b(half, "p");
  EXPECT_EQ(b.GetInt("count", 3, 0, 10), 3);
  EXPECT_EQ(b.Finish().message(), "p.count: 2.5 is not a whole number");
}

TEST(ParamReaderTest, UnknownKeysAreReportedWithTheKnownOnes) {
  const std::map<std::string, double> map = {{"rate", 0.1}, {"sped", 3}};
  ParamReader params(map, "image_space.params");
  params.Get("rate", 0.5, 0.0, 1.0);
  params.Get("speed", 1.0, 0.0, 10.0);
  const absl::Status status = params.Finish();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "image_space.params.sped: unknown parameter (known: rate, speed)");
}

TEST(ParamReaderTest, TheFirstErrorWins) {
  const std::map<std::string, double> map = {{"a", -1}, {"b", -1}, {"c", 0}};
  ParamReader params(map, "p");
  params.Get("a", 0, 0, 1);
  params.Get("b", 0, 0, 1);
  EXPECT_EQ(params.Finish().message(), "p.a: -1 is outside [0, 1]");
}

}  // namespace
}  // namespace stimloop
