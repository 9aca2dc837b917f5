// The ask/tell interface every optimizer implements, so that a Session does
// not care which one runs, and the factory that builds one by name.
//
// Protocol (driven by the Session, see server/session.h):
//   - Ask(count, first_id) proposes a generation; candidate i gets id
//     first_id + i.
//   - Before the next Ask, Tell delivers the mean measured objective of every
//     candidate whose measurements changed since the last Tell. Candidates
//     never told are unanswered (aborted trials): each optimizer documents
//     what it does with them. Telling an id again replaces its value (a late
//     repeat presentation changed its mean).
//   - Save/Load capture the whole state, random generator included, so that
//     a restored optimizer proposes exactly what the original would have.
#ifndef STIMLOOP_OPTIMIZERS_OPTIMIZER_H_
#define STIMLOOP_OPTIMIZERS_OPTIMIZER_H_

#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "models/response_model.h"
#include "optimizers/image_space.h"
#include "optimizers/objective.h"
#include <torch/types.h>

namespace torch::serialize {
class InputArchive;
class OutputArchive;
}  // namespace torch::serialize

namespace stimloop {

// One proposed stimulus.
struct Candidate {
  int64_t id = 0;
  torch::Tensor code;   // [D] float; undefined when it has none (pool image)
  torch::Tensor image;  // [C, H, W] float on the 8-bit grid: exactly what is shown
  std::string origin;   // optimizer name, "prior", "pool:<file>"
  int64_t model_version = 0;  // surrogate version that proposed it; 0: none
  double predicted_objective = std::numeric_limits<double>::quiet_NaN();
};

// The mean measured objective of one candidate over its presentations.
struct Observation {
  int64_t id = 0;
  double objective = 0;
  int presentations = 1;
};

// Proposes images and learns from their measured responses. Not
// thread-safe: the owning Session serializes calls.
class Optimizer {
 public:
  virtual ~Optimizer() = default;

  virtual absl::string_view name() const = 0;

  // Returns `count` new candidates with ids first_id .. first_id + count - 1
  // and images quantized to 8 bits. REQUIRES: count > 0.
  virtual absl::StatusOr<std::vector<Candidate>> Ask(int count, int64_t first_id) = 0;

  // Learns measured objectives of candidates returned by Ask. An unknown id
  // is INVALID_ARGUMENT and leaves the optimizer unchanged.
  virtual absl::Status Tell(absl::Span<const Observation> observations) = 0;

  // Asking ahead, for optimizers whose Ask is slow (a gradient ascent on a
  // model: seconds). The session calls PrepareAsk(count, first_id) on a
  // background thread right after committing a generation, while the rig
  // shows it (no other method but BestGuess runs meanwhile), then Tell and
  // Ask(count, first_id) at the next boundary. PrepareAsk does the slow
  // work and keeps it; it leaves the saved state (Save) as it was, so
  // whether it ran, failed or was cut short never changes what Ask
  // returns, only how long Ask takes. prepares_asks() says whether the
  // optimizer overrides it; the default prepares nothing.
  virtual absl::Status PrepareAsk(int /*count*/, int64_t /*first_id*/) {
    return absl::OkStatus();
  }
  virtual bool prepares_asks() const { return false; }

  // Makes a running Ask (on another thread) and every later one return
  // CANCELLED promptly; for shutting a session down. Thread-safe, unlike the
  // rest. Optimizers whose Ask is short need not override it.
  virtual void CancelAsks() {}

  // The optimizer's own best guess as an image [C, H, W] on the 8-bit grid
  // (e.g. a distribution mean), or an undefined tensor when it holds none.
  virtual torch::Tensor BestGuess() const { return {}; }
  // True when BestGuess may run on any thread at the same time as every
  // other method (it reads only what construction fixed, e.g. the model
  // source), so a caller can compute it without serializing it with Ask.
  virtual bool best_guess_is_thread_safe() const { return false; }

  // Writes / restores the complete state (see the protocol above).
  virtual void Save(torch::serialize::OutputArchive& archive) const = 0;
  virtual absl::Status Load(torch::serialize::InputArchive& archive) = 0;
};

// What the session config says about the optimizer.
struct OptimizerSpec {
  std::string name;                      // "portfolio", "random", "genetic", ...
  std::map<std::string, double> params;  // by name; see each optimizer's header
  std::string candidate_pool_dir;        // adaptive_sampling's image folder
};

// Everything an optimizer may use besides its own parameters.
struct OptimizerContext {
  std::shared_ptr<const ImageSpace> image_space;
  std::shared_ptr<const Objective> objective;
  uint64_t seed = 0;  // the session seed: the only source of randomness
  // The surrogate's fitted versions, for model-based optimizers
  // (gradient_ascent, adaptive_sampling); nullptr for the others.
  std::shared_ptr<const ModelSource> models;
};

// Builds the optimizer `spec` names. INVALID_ARGUMENT names the field
// ("optimizer.name", "optimizer.params.<key>") for unknown names, unknown
// parameters and values out of range.
absl::StatusOr<std::unique_ptr<Optimizer>> MakeOptimizer(const OptimizerSpec& spec,
                                                         const OptimizerContext& context);

// Whether the optimizer `name` proposes from a surrogate model and so needs
// OptimizerContext.models (gradient_ascent, adaptive_sampling, portfolio).
bool UsesSurrogate(const std::string& name);

// A CPU generator seeded from `seed` and a stream label, so that independent
// consumers of one session seed (optimizer, surrogate, ...) draw independent
// streams.
at::Generator MakeGenerator(uint64_t seed, absl::string_view stream);

}  // namespace stimloop

#endif  // STIMLOOP_OPTIMIZERS_OPTIMIZER_H_
