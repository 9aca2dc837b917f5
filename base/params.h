// Reads named numeric parameters from a config map, with defaults and
// ranges, and reports the first bad or unknown one by its field path:
//
//   ParamReader p(spec.params, "optimizer.params");
//   double rate = p.Get("mutation_rate", 0.25, 0.0, 1.0);
//   int elites = p.GetInt("elites", 10, 0, 1000);
//   if (absl::Status s = p.Finish(); !s.ok()) return s;
#ifndef STIMLOOP_BASE_PARAMS_H_
#define STIMLOOP_BASE_PARAMS_H_

#include <map>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace stimloop {

class ParamReader {
 public:
  // `prefix` names the map in error messages, e.g. "optimizer.params".
  ParamReader(const std::map<std::string, double>& params, std::string prefix);

  // The value of `key`, or `default_value` when absent. A value outside
  // [min, max] or not finite records an INVALID_ARGUMENT (see Finish) and
  // returns the default.
  double Get(absl::string_view key, double default_value, double min, double max);
  // As Get, and the value must be a whole number.
  int64_t GetInt(absl::string_view key, int64_t default_value, int64_t min, int64_t max);

  // Records INVALID_ARGUMENT "<prefix>.<key>: <problem>" (see Finish), for a
  // check that spans keys (e.g. one value must not be below another).
  void Reject(absl::string_view key, absl::string_view problem);

  // OK when every value read was valid and every key in the map was read;
  // else INVALID_ARGUMENT naming the first problem.
  absl::Status Finish() const;

 private:
  const std::map<std::string, double>& params_;
  std::string prefix_;
  std::set<std::string, std::less<>> read_;
  absl::Status first_error_;
};

}  // namespace stimloop

#endif  // STIMLOOP_BASE_PARAMS_H_
