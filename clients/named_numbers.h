// Parses "name=value,name=value" command-line text into a proto map of
// numbers (optimizer and image-space parameters).
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

// "a=1,b=2.5" -> {a: 1, b: 2.5}; "" -> nothing. INVALID_ARGUMENT quoting
// the first item that is not name=number.
inline absl::Status ParseNamedNumbers(const std::string& text,
                                      google::protobuf::Map<std::string, double>* out) {
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
