#include "base/params.h"

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/echo.h"

namespace stimloop {

ParamReader::ParamReader(const std::map<std::string, double>& params, std::string prefix)
    : params_(params), prefix_(std::move(prefix)) {}

double ParamReader::Get(absl::string_view key, double default_value, double min,
                        double max) {
  read_.emplace(key);
  auto it = params_.find(std::string(key));
  if (it == params_.end()) return default_value;
  const double value = it->second;
  if (!std::isfinite(value) || value < min || value > max) {
    Reject(key, absl::StrCat(value, " is outside [", min, ", ", max, "]"));
    return default_value;
  }
  return value;
}

int64_t ParamReader::GetInt(absl::string_view key, int64_t default_value, int64_t min,
                            int64_t max) {
  const double value = Get(key, static_cast<double>(default_value),
                           static_cast<double>(min), static_cast<double>(max));
  if (value != std::floor(value)) {
    Reject(key, absl::StrCat(value, " is not a whole number"));
    return default_value;
  }
  return static_cast<int64_t>(value);
}

void ParamReader::Reject(absl::string_view key, absl::string_view problem) {
  if (first_error_.ok()) {
    first_error_ =
        absl::InvalidArgumentError(absl::StrCat(prefix_, ".", Echo(key), ": ", problem));
  }
}

absl::Status ParamReader::Finish() const {
  if (!first_error_.ok()) return first_error_;
  for (const auto& [key, value] : params_) {
    if (read_.find(key) == read_.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          prefix_, ".", Echo(key), ": unknown parameter (known: ", absl::StrJoin(read_, ", "),
          ")"));
    }
  }
  return absl::OkStatus();
}

}  // namespace stimloop
