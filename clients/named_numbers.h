// Parses "name=value,name=value" command-line text into a map of numbers
// (optimizer, image-space and surrogate parameters): a proto map for a
// SessionConfig, or the std::map the specs inside the server hold.
#ifndef STIMLOOP_CLIENTS_NAMED_NUMBERS_H_
#define STIMLOOP_CLIENTS_NAMED_NUMBERS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/map.h"

namespace stimloop {

// "a=1,b=2.5" -> {a: 1, b: 2.5} added to *out; "" -> nothing. Map is
// google::protobuf::Map<std::string, double> or std::map<std::string, double>.
// INVALID_ARGUMENT quoting the first item that is not name=number.
template <typename Map>
absl::Status ParseNamedNumbers(const std::string& text, Map* out) {
  if (text.empty()) return absl::OkStatus();
  for (absl::string_view item : absl::StrSplit(text, ',')) {
    std::vector<std::string> kv = absl::StrSplit(item, absl::MaxSplits('=', 1));
    double value = 0;
    if (kv.size() != 2 || kv[0].empty() || !absl::SimpleAtod(kv[1], &value)) {
      return absl::InvalidArgumentError(absl::StrCat("'", item, "' is not name=number"));
    }
    (*out)[kv[0]] = value;
  }
  return absl::OkStatus();
}

}  // namespace stimloop

#endif  // STIMLOOP_CLIENTS_NAMED_NUMBERS_H_
