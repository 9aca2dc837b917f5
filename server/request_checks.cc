#include "server/request_checks.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "optimizers/objective.h"
#include "server/session_config.h"

namespace stimloop {

absl::Status CheckMaxCount(int max_count) {
  return CheckRange("max_count", max_count, 0, kMaxStimuliPerRequest);
}

absl::Status CheckRates(absl::Span<const double> rates, absl::string_view field) {
  for (size_t n = 0; n < rates.size(); ++n) {
    const double rate = rates[n];
    if (!std::isfinite(rate) || rate < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, "[", n, "]: ", rate, " must be finite and non-negative"));
    }
    if (rate > kMaxRate) {
      // All digits: a rate just above the maximum must not print as it.
      return absl::InvalidArgumentError(absl::StrCat(field, "[", n, "]: ",
                                                     absl::StrFormat("%.17g", rate),
                                                     " is above the maximum rate ", kMaxRate));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckRequestId(const std::string& request_id) {
  if (request_id.empty() || request_id.size() > kMaxRequestIdLength) {
    return absl::InvalidArgumentError(absl::StrCat(
        "request_id: must be 1..", kMaxRequestIdLength, " characters, got ", request_id.size()));
  }
  // Control characters (a NUL above all) are refused alike by every store:
  // PostgreSQL's text cannot hold a NUL.
  for (size_t i = 0; i < request_id.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(request_id[i]);
    if (c < 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError(
          absl::StrFormat("request_id: character %d is the control character 0x%02x; use "
                          "printable characters",
                          i, c));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckResponseCount(int count) {
  if (count < 1 || count > kMaxResponsesPerReport) {
    return absl::InvalidArgumentError(
        absl::StrCat("responses: ", count, " responses, expected 1..", kMaxResponsesPerReport));
  }
  return absl::OkStatus();
}

absl::Status CheckResponseRates(const v1::Response& response, const std::string& field,
                                int num_neurons) {
  if (response.skipped()) {
    if (response.rates_size() != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ".rates: a skipped response carries no rates, got ", response.rates_size()));
    }
    return absl::OkStatus();
  }
  if (response.rates_size() != num_neurons) {
    return absl::InvalidArgumentError(absl::StrCat(field, ".rates: has ", response.rates_size(),
                                                   " values, expected num_neurons = ",
                                                   num_neurons));
  }
  const absl::Span<const double> rates(response.rates().data(), response.rates_size());
  return CheckRates(rates, absl::StrCat(field, ".rates"));
}

absl::Status CheckBestCount(int k) {
  if (k < 1 || k > kMaxBestStimuli) {
    return absl::InvalidArgumentError(
        absl::StrCat("k: ", k, " is outside [1, ", kMaxBestStimuli, "]"));
  }
  return absl::OkStatus();
}

absl::StatusOr<GenerationRange> ResolveGenerationRange(int64_t first, int64_t last,
                                                       int64_t newest) {
  if (first < 0 || last < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "first_generation, last_generation: must be >= 0, got ", first, ", ", last));
  }
  GenerationRange range{first == 0 ? 1 : first, last == 0 ? newest : last};
  if (range.last < range.first) {
    return absl::InvalidArgumentError(absl::StrCat(
        "last_generation: ", range.last, " is before first_generation ", range.first));
  }
  return range;
}

absl::StatusOr<ValidationPlan> CheckValidationBlock(const v1::ValidationBlock& block,
                                                    int max_count) {
  if (absl::Status s = CheckRange("validation.candidates", block.candidates(), 0,
                                  kMaxValidationCandidates);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckRange("validation.presentations", block.presentations(), 0,
                                  kMaxValidationPresentations);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckMaxCount(max_count); !s.ok()) return s;
  ValidationPlan plan;
  plan.candidates = block.candidates() == 0 ? kDefaultValidationCandidates : block.candidates();
  plan.presentations =
      block.presentations() == 0 ? kDefaultValidationPresentations : block.presentations();
  plan.include_best_guess = block.include_best_guess();
  if (plan.images() * plan.presentations > kMaxValidationStimuli) {
    return absl::InvalidArgumentError(absl::StrCat(
        "validation: ", plan.images(), " images x ", plan.presentations,
        " presentations is more than ", kMaxValidationStimuli, " stimuli"));
  }
  return plan;
}

}  // namespace stimloop
