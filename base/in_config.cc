#include "base/in_config.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace stimloop {

absl::Status InConfig(const absl::Status& status) {
  if (status.ok() || status.code() != absl::StatusCode::kInvalidArgument ||
      absl::StartsWith(status.message(), "config.")) {
    return status;
  }
  return absl::InvalidArgumentError(absl::StrCat("config.", status.message()));
}

}  // namespace stimloop
