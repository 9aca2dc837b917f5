#include "base/params.h"

#include <cmath>
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

TEST(ParamReaderTest, InfiniteValuesAreOutOfRange) {
  const std::map<std::string, double> map = {{"rate", HUGE_VAL}};
  ParamReader params(map, "p");
  EXPECT_DOUBLE_EQ(params.Get("rate", 0.5, 0.0, 1e300), 0.5);
  const absl::Status status = params.Finish();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "p.rate: inf is outside [0, 1e+300]");
}

TEST(ParamReaderTest, IntegersOutOfRangeNameTheRange) {
  const std::map<std::string, double> map = {{"lag", 5}};
  ParamReader params(map, "surrogate.params");
  EXPECT_EQ(params.GetInt("lag", 1, 0, 4), 1);
  const absl::Status status = params.Finish();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "surrogate.params.lag: 5 is outside [0, 4]");
}

TEST(ParamReaderTest, RejectRecordsACrossKeyProblem) {
  const std::map<std::string, double> map = {{"lo", 3}, {"hi", 2}};
  ParamReader params(map, "p");
  const double lo = params.Get("lo", 0, 0, 10);
  const double hi = params.Get("hi", 0, 0, 10);
  if (hi < lo) params.Reject("hi", "2 is below lo 3");
  const absl::Status status = params.Finish();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "p.hi: 2 is below lo 3");
}

TEST(ParamReaderTest, UnknownKeysAreEchoedShortAndPrintable) {
  const std::map<std::string, double> map = {{std::string("bad\x01key", 7), 1}};
  ParamReader params(map, "p");
  const absl::Status status = params.Finish();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "p.bad\\x01key: unknown parameter (known: )");
}

TEST(ParamReaderTest, EmptyMapAndNoReadsIsOk) {
  const std::map<std::string, double> map;
  ParamReader params(map, "p");
  EXPECT_TRUE(params.Finish().ok());
}

}  // namespace
}  // namespace stimloop
