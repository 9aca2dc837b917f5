// Every request check: its bounds, and an error that names the field and
// the value.
#include "server/request_checks.h"

#include <cmath>
#include <limits>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "optimizers/objective.h"

namespace stimloop {
namespace {

using ::testing::HasSubstr;

void ExpectInvalid(const absl::Status& status, const std::string& message_part) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(message_part));
}

TEST(RequestChecksTest, MaxCountIsInZeroToTheLimit) {
  EXPECT_TRUE(CheckMaxCount(0).ok());
  EXPECT_TRUE(CheckMaxCount(kMaxStimuliPerRequest).ok());
  ExpectInvalid(CheckMaxCount(-1), "max_count");
  ExpectInvalid(CheckMaxCount(kMaxStimuliPerRequest + 1), "max_count");
}

TEST(RequestChecksTest, RatesAreFiniteNonNegativeAndBounded) {
  const std::vector<double> good = {0, 1.5, kMaxRate};
  EXPECT_TRUE(CheckRates(good, "rates").ok());
  const std::vector<double> nan = {1, std::nan("")};
  ExpectInvalid(CheckRates(nan, "r"), "r[1]: nan must be finite and non-negative");
  const std::vector<double> negative = {-1};
  ExpectInvalid(CheckRates(negative, "r"), "r[0]: -1 must be finite and non-negative");
  const std::vector<double> huge = {std::nextafter(kMaxRate, 2 * kMaxRate)};
  ExpectInvalid(CheckRates(huge, "r"), "r[0]: 1000000000.0000001 is above the maximum rate");
}

TEST(RequestChecksTest, RequestIdHasOneToTheLimitCharacters) {
  EXPECT_TRUE(CheckRequestId("a").ok());
  EXPECT_TRUE(CheckRequestId(std::string(kMaxRequestIdLength, 'x')).ok());
  ExpectInvalid(CheckRequestId(""), "request_id: must be 1..128 characters, got 0");
  ExpectInvalid(CheckRequestId(std::string(kMaxRequestIdLength + 1, 'x')), "got 129");
  ExpectInvalid(CheckRequestId(std::string("ab\0c", 4)),
                "request_id: character 2 is the control character 0x00");
  ExpectInvalid(CheckRequestId("trial\t7"), "character 5 is the control character 0x09");
  EXPECT_TRUE(CheckRequestId("trial 7/\xc3\xa9").ok());  // spaces and UTF-8 are fine
}

TEST(RequestChecksTest, AReportHoldsOneToTheLimitResponses) {
  EXPECT_TRUE(CheckResponseCount(1).ok());
  EXPECT_TRUE(CheckResponseCount(kMaxResponsesPerReport).ok());
  ExpectInvalid(CheckResponseCount(0), "responses: 0 responses, expected 1..10000");
  ExpectInvalid(CheckResponseCount(kMaxResponsesPerReport + 1), "10001 responses");
}

TEST(RequestChecksTest, AResponseHasOneRatePerNeuronOrNoneWhenSkipped) {
  v1::Response response;
  response.add_rates(1);
  response.add_rates(2);
  EXPECT_TRUE(CheckResponseRates(response, "responses[0]", 2).ok());
  ExpectInvalid(CheckResponseRates(response, "responses[3]", 3),
                "responses[3].rates: has 2 values, expected num_neurons = 3");
  response.set_rates(1, -2);
  ExpectInvalid(CheckResponseRates(response, "responses[0]", 2), "responses[0].rates[1]: -2");
  response.set_skipped(true);
  ExpectInvalid(CheckResponseRates(response, "responses[0]", 2),
                "responses[0].rates: a skipped response carries no rates, got 2");
  response.clear_rates();
  EXPECT_TRUE(CheckResponseRates(response, "responses[0]", 2).ok());
}

TEST(RequestChecksTest, BestCountIsOneToTheLimit) {
  EXPECT_TRUE(CheckBestCount(1).ok());
  EXPECT_TRUE(CheckBestCount(kMaxBestStimuli).ok());
  ExpectInvalid(CheckBestCount(0), "k: 0 is outside [1, 1000]");
}

TEST(RequestChecksTest, GenerationRangeDefaultsToEverything) {
  auto all = ResolveGenerationRange(0, 0, 7);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->first, 1);
  EXPECT_EQ(all->last, 7);
  auto some = ResolveGenerationRange(3, 4, 7);
  ASSERT_TRUE(some.ok());
  EXPECT_EQ(some->first, 3);
  EXPECT_EQ(some->last, 4);
  ExpectInvalid(ResolveGenerationRange(-1, 0, 7).status(), "must be >= 0, got -1, 0");
  ExpectInvalid(ResolveGenerationRange(5, 0, 2).status(),
                "last_generation: 2 is before first_generation 5");
}

TEST(RequestChecksTest, ValidationBlockFillsDefaultsAndBoundsTheTotal) {
  v1::ValidationBlock block;
  auto plan = CheckValidationBlock(block, 0);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->candidates, kDefaultValidationCandidates);
  EXPECT_EQ(plan->presentations, kDefaultValidationPresentations);
  EXPECT_EQ(plan->images(), kDefaultValidationCandidates);
  block.set_include_best_guess(true);
  EXPECT_EQ(CheckValidationBlock(block, 0)->images(), kDefaultValidationCandidates + 1);

  block.set_candidates(kMaxValidationCandidates + 1);
  ExpectInvalid(CheckValidationBlock(block, 0).status(), "validation.candidates");
  block.set_candidates(100);
  block.set_presentations(-1);
  ExpectInvalid(CheckValidationBlock(block, 0).status(), "validation.presentations");
  block.set_presentations(1000);
  // Fields in order: max_count is checked before the total.
  ExpectInvalid(CheckValidationBlock(block, -1).status(), "max_count");
  ExpectInvalid(CheckValidationBlock(block, 0).status(),
                "validation: 101 images x 1000 presentations is more than 10000 stimuli");
}

}  // namespace
}  // namespace stimloop
