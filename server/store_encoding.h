// How the store encodes values into its columns: numeric arrays as raw
// little-endian bytes (a float32 code, float64 rates), times as Unix
// nanoseconds, a session's metadata as a JSON object with sorted keys.
// DecodeArray is false for bytes that are not a whole number of elements.
#ifndef STIMLOOP_SERVER_STORE_ENCODING_H_
#define STIMLOOP_SERVER_STORE_ENCODING_H_

#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "stimloop/v1/stimloop.pb.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the store writes codes and rates as little-endian arrays; port EncodeArray first"
#endif

namespace stimloop {

inline int64_t Nanos(absl::Time t) { return absl::ToUnixNanos(t); }

template <typename T>
std::string EncodeArray(const std::vector<T>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

template <typename T>
bool DecodeArray(const std::string& bytes, std::vector<T>* out) {
  if (bytes.size() % sizeof(T) != 0) return false;
  out->resize(bytes.size() / sizeof(T));
  if (!bytes.empty()) std::memcpy(out->data(), bytes.data(), bytes.size());
  return true;
}

// sessions.metadata_json: config.metadata as {"key":"value",...}, keys
// sorted, strings escaped as JSON requires.
std::string MetadataJson(const v1::SessionConfig& config);

// sessions.config_json: the config as protobuf's JSON, proto field names.
absl::StatusOr<std::string> ConfigJson(const v1::SessionConfig& config);

// model_versions.metrics_json of a fitted version: every metric (undefined
// ones as null) plus "heldout_r", the mean of the finite
// "heldout_correlation.*" metrics, when there is one.
std::string ModelMetricsJson(const std::map<std::string, double>& metrics);

}  // namespace stimloop

#endif  // STIMLOOP_SERVER_STORE_ENCODING_H_
