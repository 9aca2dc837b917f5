#include "server/store_encoding.h"

#include <algorithm>
#include <utility>

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

}  // namespace stimloop
