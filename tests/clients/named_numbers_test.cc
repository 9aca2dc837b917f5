#include "clients/named_numbers.h"

#include <map>
#include <string>

#include "gtest/gtest.h"

namespace stimloop {
namespace {

TEST(NamedNumbersTest, FillsAProtoMap) {
  google::protobuf::Map<std::string, double> out;
  ASSERT_TRUE(ParseNamedNumbers("steps=50,learning_rate=0.12", &out).ok());
  EXPECT_EQ(out.size(), 2u);
  EXPECT_EQ(out.at("steps"), 50);
  EXPECT_DOUBLE_EQ(out.at("learning_rate"), 0.12);
}

TEST(NamedNumbersTest, FillsAStdMapOverWhatItHolds) {
  std::map<std::string, double> out{{"ensemble_size", 5}, {"l1_mask", 10}};
  ASSERT_TRUE(ParseNamedNumbers("ensemble_size=10,fit_seed=2", &out).ok());
  EXPECT_EQ(out, (std::map<std::string, double>{
                     {"ensemble_size", 10}, {"fit_seed", 2}, {"l1_mask", 10}}));
}

TEST(NamedNumbersTest, EmptyTextAddsNothing) {
  std::map<std::string, double> out;
  ASSERT_TRUE(ParseNamedNumbers("", &out).ok());
  EXPECT_TRUE(out.empty());
}

TEST(NamedNumbersTest, RejectsItemsThatAreNotNameEqualsNumber) {
  for (const std::string& bad : {"steps", "steps=", "=5", "steps=fast", "a=1,,b=2"}) {
    std::map<std::string, double> out;
    const absl::Status s = ParseNamedNumbers(bad, &out);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(s.message().find("is not name=number"), std::string::npos) << s.message();
  }
}

}  // namespace
}  // namespace stimloop
