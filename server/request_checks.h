// Every check of a request's own content: the limits of the RPCs and the
// checks that need nothing but the request (and, for rates, the session's
// neuron count). Each returns INVALID_ARGUMENT naming the field and the
// value; nothing here looks at a session's state (whether a stimulus id
// exists or was handed out is the StimulusLedger's answer).
//
// Session's public methods call these first, in the order their contracts
// state, so that every caller (the gRPC service, the closed-loop harness,
// the benches and fuzzers that drive a Session directly) gets the same
// answers.
#ifndef STIMLOOP_SERVER_REQUEST_CHECKS_H_
#define STIMLOOP_SERVER_REQUEST_CHECKS_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "stimloop/v1/stimloop.pb.h"

namespace stimloop {

inline constexpr int kMaxStimuliPerRequest = 1000;
inline constexpr int kMaxResponsesPerReport = 10000;
inline constexpr size_t kMaxRequestIdLength = 128;
inline constexpr int kMaxBestStimuli = 1000;  // GetBestStimuliRequest.k
inline constexpr int kMaxValidationCandidates = 100;
inline constexpr int kMaxValidationPresentations = 1000;
inline constexpr int kMaxValidationStimuli = 10000;
// What ValidationBlock's 0 (unset) means.
inline constexpr int kDefaultValidationCandidates = 5;
inline constexpr int kDefaultValidationPresentations = 20;

// OK when `max_count` (NextStimuliRequest.max_count) is in [0,
// kMaxStimuliPerRequest]; INVALID_ARGUMENT naming it otherwise.
absl::Status CheckMaxCount(int max_count);

// OK when every rate is finite and in [0, kMaxRate] (optimizers/objective.h,
// which shows why no objective sum or mean can then overflow);
// INVALID_ARGUMENT naming the first bad one otherwise ("<field>[3]: nan must
// be finite and non-negative", "<field>[0]: 1e+308 is above the maximum rate
// 1e+09").
absl::Status CheckRates(absl::Span<const double> rates, absl::string_view field);

// OK when `request_id` has 1..kMaxRequestIdLength characters.
absl::Status CheckRequestId(const std::string& request_id);

// OK when a report holds 1..kMaxResponsesPerReport responses.
absl::Status CheckResponseCount(int count);

// The content of `response` (named `field`, "responses[i]"): a skipped one
// carries no rates, any other exactly `num_neurons` rates that CheckRates
// accepts. Its stimulus_id is not looked at.
absl::Status CheckResponseRates(const v1::Response& response, const std::string& field,
                                int num_neurons);

// OK when `k` (GetBestStimuliRequest.k) is in [1, kMaxBestStimuli].
absl::Status CheckBestCount(int k);

// ListStimuli's generation range: first and last as requested (0: from 1 /
// to `newest`), resolved. INVALID_ARGUMENT for a negative bound or a last
// before the first.
struct GenerationRange {
  int64_t first = 0;
  int64_t last = 0;
};
absl::StatusOr<GenerationRange> ResolveGenerationRange(int64_t first, int64_t last,
                                                       int64_t newest);

// A ValidationBlock with its defaults filled in.
struct ValidationPlan {
  int candidates = 0;
  int presentations = 0;
  bool include_best_guess = false;
  // Images per round: the candidates and the best guess when asked for.
  int images() const { return candidates + (include_best_guess ? 1 : 0); }
};

// Checks `block` and the `max_count` it is asked with, in this order:
// validation.candidates in [0, kMaxValidationCandidates],
// validation.presentations in [0, kMaxValidationPresentations], max_count
// (CheckMaxCount), and at most kMaxValidationStimuli stimuli in all.
absl::StatusOr<ValidationPlan> CheckValidationBlock(const v1::ValidationBlock& block,
                                                    int max_count);

}  // namespace stimloop

#endif  // STIMLOOP_SERVER_REQUEST_CHECKS_H_
