#include "server/store_encoding.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"

namespace stimloop {
namespace {

std::string JsonString(absl::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += absl::StrFormat("\\u%04x", c);
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

}  // namespace

std::string MetadataJson(const v1::SessionConfig& config) {
  std::vector<std::pair<std::string, std::string>> entries(config.metadata().begin(),
                                                           config.metadata().end());
  std::sort(entries.begin(), entries.end());
  std::vector<std::string> parts;
  for (const auto& [key, value] : entries) {
    parts.push_back(absl::StrCat(JsonString(key), ":", JsonString(value)));
  }
  return absl::StrCat("{", absl::StrJoin(parts, ","), "}");
}

absl::StatusOr<std::string> ConfigJson(const v1::SessionConfig& config) {
  std::string json;
  google::protobuf::util::JsonPrintOptions json_options;
  json_options.preserve_proto_field_names = true;
  if (auto s = google::protobuf::util::MessageToJsonString(config, &json, json_options);
      !s.ok()) {
    return absl::InternalError(absl::StrCat("session store: config as JSON: ", s.ToString()));
  }
  return json;
}

std::string ModelMetricsJson(const std::map<std::string, double>& metrics) {
  // JSON numbers cannot be NaN: undefined metrics are written as null.
  std::vector<std::string> fields;
  double correlation_sum = 0;
  int correlations = 0;
  for (const auto& [name, value] : metrics) {
    fields.push_back(absl::StrFormat("\"%s\": %s", name,
                                     std::isfinite(value) ? absl::StrCat(value) : "null"));
    if (absl::StartsWith(name, "heldout_correlation.") && std::isfinite(value)) {
      correlation_sum += value;
      ++correlations;
    }
  }
  if (correlations > 0) {
    fields.push_back(absl::StrCat("\"heldout_r\": ", correlation_sum / correlations));
  }
  return absl::StrCat("{", absl::StrJoin(fields, ", "), "}");
}

}  // namespace stimloop
