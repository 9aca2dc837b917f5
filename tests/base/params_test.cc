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

// Every class of bad input: INVALID_ARGUMENT, the field path and the value,
// and the default returned in place of the bad value.
TEST(ParamReaderTest, EachBadInputClassHasItsCodeAndMessage) {
  struct Case {
    const char* what;
    std::map<std::string, double> params;
    bool integer;  // read with GetInt(key, 3, 0, 4), else Get(key, 0.5, 0, 1)
    const char* message;
  };
  const Case cases[] = {
      {"above the range", {{"x", 2}}, false, "p.x: 2 is outside [0, 1]"},
      {"below the range", {{"x", -0.5}}, false, "p.x: -0.5 is outside [0, 1]"},
      {"not a number", {{"x", std::nan("")}}, false, "p.x: nan is outside [0, 1]"},
      {"infinite", {{"x", HUGE_VAL}}, false, "p.x: inf is outside [0, 1]"},
      {"integer out of range", {{"x", 5}}, true, "p.x: 5 is outside [0, 4]"},
      {"fractional integer", {{"x", 2.5}}, true, "p.x: 2.5 is not a whole number"},
      {"unknown key", {{"y", 1}}, false, "p.y: unknown parameter (known: x)"},
      {"unprintable key", {{std::string("b\x01" "d", 3), 1}}, false,
       "p.b\\x01d: unknown parameter (known: x)"},
  };
  for (const Case& c : cases) {
    ParamReader params(c.params, "p");
    if (c.integer) {
      EXPECT_EQ(params.GetInt("x", 3, 0, 4), 3) << c.what;
    } else {
      EXPECT_DOUBLE_EQ(params.Get("x", 0.5, 0.0, 1.0), 0.5) << c.what;
    }
    const absl::Status status = params.Finish();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.what;
    EXPECT_EQ(status.message(), c.message) << c.what;
  }
}

TEST(ParamReaderTest, RejectRecordsACrossKeyProblem) {
  const std::map<std::string, double> map = {{"lo", 3}, {"hi", 2}};
  ParamReader params(map, "p");
  const double lo = params.Get("lo", 0, 0, 10);
  const double hi = params.Get("hi", 0, 0, 10);
  if (hi < lo) params.Reject("hi", "2 is below lo 3");
  EXPECT_EQ(params.Finish().message(), "p.hi: 2 is below lo 3");
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

TEST(ParamReaderTest, EmptyMapAndNoReadsIsOk) {
  const std::map<std::string, double> map;
  ParamReader params(map, "p");
  EXPECT_TRUE(params.Finish().ok());
}

}  // namespace
}  // namespace stimloop
