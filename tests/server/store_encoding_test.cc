// The store's column encodings: arrays round-trip as raw bytes, a torn
// array is refused, metadata is JSON with sorted keys and escapes.
#include "server/store_encoding.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace stimloop {
namespace {

TEST(StoreEncodingTest, ArraysRoundTripBitForBit) {
  const std::vector<double> rates = {0, 1.5, 1e9, 5e-324};
  const std::string bytes = EncodeArray(rates);
  EXPECT_EQ(bytes.size(), rates.size() * sizeof(double));
  std::vector<double> back;
  ASSERT_TRUE(DecodeArray(bytes, &back));
  EXPECT_EQ(back, rates);
  const std::vector<float> code = {-1.25f, 3.0f};
  std::vector<float> code_back;
  ASSERT_TRUE(DecodeArray(EncodeArray(code), &code_back));
  EXPECT_EQ(code_back, code);
  std::vector<float> empty = {1};
  ASSERT_TRUE(DecodeArray(std::string(), &empty));
  EXPECT_TRUE(empty.empty());
}

TEST(StoreEncodingTest, BytesThatAreNotWholeElementsAreRefused) {
  std::vector<double> out;
  EXPECT_FALSE(DecodeArray(std::string(12, '\0'), &out));
}

TEST(StoreEncodingTest, MetadataIsJsonWithSortedKeysAndEscapes) {
  v1::SessionConfig config;
  EXPECT_EQ(MetadataJson(config), "{}");
  (*config.mutable_metadata())["zeta"] = "1";
  (*config.mutable_metadata())["animal"] = "say \"hi\"\\\n\t\x01";
  EXPECT_EQ(MetadataJson(config),
            "{\"animal\":\"say \\\"hi\\\"\\\\\\n\\t\\u0001\",\"zeta\":\"1\"}");
}

TEST(StoreEncodingTest, TimesAreUnixNanoseconds) {
  EXPECT_EQ(Nanos(absl::FromUnixNanos(1234567890123)), 1234567890123);
}

}  // namespace
}  // namespace stimloop
