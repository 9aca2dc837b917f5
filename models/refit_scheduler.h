// Refits the surrogate online, off the request path, and hands every Ask the
// model version that the data, not timing, assigns to its generation.
//
// The session appends one training example per measured presentation (the
// 8-bit image that was shown and the rates of every neuron) and tells the
// scheduler about each generation boundary. At the boundary of generation b
// a refit is requested on every example appended so far, once at least
// `refit_every` examples are new since the previous request; requests run
// in order (FIFO), one at a time, as tasks of one Strand of the server's
// WorkPool (base/work_pool.h), so that the fits of all sessions share a
// bounded set of threads and take turns; without a pool the scheduler makes
// its own of one thread. LibTorch's intra-op threads inside a fit are the
// process-wide pool the server bounds with --torch_threads. A version number
// is taken by each fit that succeeds, in request order (1, 2, ...); a fit
// is told the number it gets if it succeeds (its seed may depend on it). A
// finished version is reported through `on_version` (on the worker, before
// any Ask can use it, so its checkpoint is stored before a stimulus can
// name it). A failed fit publishes nothing; its error is kept (last_error())
// and later requests go on.
//
// The fixed lag (refit_lag k, default kDefaultRefitLag). Generation g is
// proposed with the newest version fitted on a request made at a boundary
// b <= g - k. With k >= 1 that fit started k generations earlier and runs
// while the rig shows them: BeforeAsk(g) waits only when it has not
// finished yet. Which version proposes a generation is therefore a
// function of the requests (the counts at each boundary), never of how
// long fits took: the same config, seed and responses give the same
// stimuli bit for bit, and a session restored after a crash (Resume) goes
// on exactly as the uninterrupted one. k = 0 fits on everything measured
// before each generation, and so always waits for it. A larger k waits
// less and proposes from older data (BENCHMARKS.md measures the cost).
//
// Bounded: requests are made only at boundaries, and BeforeAsk(g) waits for
// the request of boundary g - k, so at most k + 1 fits are queued. A
// BeforeAsk or WaitIdle that finds the fit it needs still queued runs it on
// its own thread (so a pool whose threads all wait cannot deadlock). Stop()
// (closing or destroying the session) cancels the running fit and drops the
// queued ones.
//
// Thread-safe.
#ifndef STIMLOOP_MODELS_REFIT_SCHEDULER_H_
#define STIMLOOP_MODELS_REFIT_SCHEDULER_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "base/params.h"
#include "base/work_pool.h"
#include "models/response_model.h"
#include <torch/types.h>

namespace stimloop {

inline constexpr int kDefaultRefitLag = 1;
inline constexpr int kMaxRefitLag = 4;

// When refits are requested and which version an Ask sees. Parsed from
// config.surrogate.params (see ReadRefitOptions).
struct RefitOptions {
  int64_t refit_every = 1;     // new examples needed to request a refit
  int lag = kDefaultRefitLag;  // k: generation g uses a fit requested at boundary <= g - k
};

// Reads the scheduler's keys of config.surrogate.params through `reader`
// (the other keys are the surrogate's, models/surrogate_config.h):
//   refit_every  (default 1: every generation boundary with new data,
//                whole, [1, 1e9]): see RefitOptions.
//   refit_lag    (default kDefaultRefitLag, whole, [0, kMaxRefitLag]).
// Bad values are recorded in the reader (ParamReader::Finish).
RefitOptions ReadRefitOptions(ParamReader& reader);

// INVALID_ARGUMENT "surrogate.params.<key>: no longer exists ..." when
// `params` names a removed key (kRemovedRefitParams: every session is now
// replayable; stored sessions that carry them are restored without them).
absl::Status CheckNoRemovedRefitParams(const std::map<std::string, double>& params);

// Keys that sessions journaled before the fixed-lag pipeline may carry in
// config.surrogate.params; Session::Restore drops them.
inline constexpr const char* kRemovedRefitParams[] = {"refit_sync", "refit_cancel"};

// The examples a fit learns from.
struct RefitData {
  torch::Tensor images;  // [N, C, H, W] float on the 8-bit grid, in [0, 1]
  torch::Tensor rates;   // [N, num_neurons] float, >= 0
  std::vector<int64_t> stimulus_ids;  // [N]: equal ids showed the same stimulus
  // The newest version finished before this fit (null: none yet), for a fit
  // that starts from it. Which version that is depends on the requests
  // alone (fits run one at a time, in request order; Resume restores it).
  std::shared_ptr<const ResponseModel> previous;
};

// What a finished fit hands back.
struct FitOutcome {
  std::shared_ptr<const ResponseModel> model;  // REQUIRES: version() == the version asked
  std::map<std::string, double> metrics;       // e.g. held-out correlation
  std::string checkpoint;                      // serialized model (torch::save)
};

// Fits a model version on `data`. Must return promptly (CANCELLED or any
// error) once `cancel` becomes true. An exception it throws counts as a
// failed fit (INTERNAL with its message). Called by one thread at a time.
using FitFunction = std::function<absl::StatusOr<FitOutcome>(
    const RefitData& data, int64_t version, const std::atomic<bool>& cancel)>;

// Told about every finished version, on the worker thread, before any Ask
// can use it. Must not call back into the scheduler.
using VersionCallback = std::function<void(int64_t version,
                                           const std::map<std::string, double>& metrics,
                                           const std::string& checkpoint)>;

// A version read back from the journal, for Resume.
struct FittedVersion {
  int64_t version = 0;
  int64_t examples = 0;  // the examples it was fitted on (its num_trials)
  std::shared_ptr<const ResponseModel> model;  // REQUIRES: model->version() == version
};

class RefitScheduler : public ModelSource {
 public:
  // `on_version` may be empty; `pool` may be null (the scheduler then runs
  // its fits on a pool of its own, of one thread). REQUIRES: fit is
  // callable; `pool` outlives the scheduler.
  RefitScheduler(RefitOptions options, FitFunction fit, VersionCallback on_version,
                 WorkPool* pool = nullptr);
  // Stops (see Stop) and returns once a running fit function has returned.
  ~RefitScheduler() override;

  RefitScheduler(const RefitScheduler&) = delete;
  RefitScheduler& operator=(const RefitScheduler&) = delete;

  // Appends one presentation of stimulus `stimulus_id`: `image` [C, H, W]
  // (uint8, or float in [0, 1] on the 8-bit grid) and one rate per neuron.
  // INVALID_ARGUMENT when the shape or the number of rates differs from the
  // first example's.
  absl::Status Append(const torch::Tensor& image, absl::Span<const double> rates,
                      int64_t stimulus_id);

  // Before generation `generation` is proposed (its Ask, or the best guess
  // of a validation block in its place): with lag 0 requests the refit of
  // this boundary; then waits until the fit assigned to the generation
  // (the newest request made at a boundary <= generation - lag) has
  // finished or failed, or Stop() was called, and makes the newest version
  // fitted on a request up to that one what Latest() returns.
  // REQUIRES: generations never decrease from one call to the next.
  void BeforeAsk(int64_t generation);
  // Once generation `generation` is committed: requests a refit on every
  // example appended so far if at least refit_every are new since the last
  // request. Returns whether a refit was requested.
  bool AfterAsk(int64_t generation);

  // Blocks until every requested fit has finished or failed, or Stop() was
  // called (tests and benchmarks).
  void WaitIdle();
  // Shuts down: cancels the running fit, drops the queued ones and wakes
  // every WaitIdle/BeforeAsk; later requests are ignored. Does not wait for
  // the fit function to return (the destructor does). Idempotent.
  void Stop();

  // Crash recovery (server/session_restore.cc): puts a fresh scheduler,
  // whose examples were re-appended in journal order, where the interrupted
  // one was. `boundary_examples[b - 1]` is the number of examples when
  // generation b was committed (b = 1 .. the last generation); the requests
  // are replayed from them. `fitted` holds the newest journaled versions,
  // ascending (at least the kMaxRefitLag + 1 newest, or all); each is
  // matched to the request it was fitted on. Requests after the newest
  // journaled version and after the one the last generation waited for are
  // queued again, so they get the numbers and data an uninterrupted run
  // gave them. Call once, before any other use. INVALID_ARGUMENT when the
  // counts do not fit the appended examples or a version matches no request.
  absl::Status Resume(absl::Span<const int64_t> boundary_examples,
                      std::vector<FittedVersion> fitted);

  // The version the newest BeforeAsk assigned (nullptr before one was).
  std::shared_ptr<const ResponseModel> Latest() const override;
  // The newest finished version, which may be ahead of Latest().
  std::shared_ptr<const ResponseModel> Newest() const;

  const RefitOptions& options() const { return options_; }
  int64_t num_examples() const;
  // Fits started, cancelled (by Stop), finished with a version.
  int64_t fits_started() const;
  int64_t fits_cancelled() const;
  // The error of the newest failed fit; OK when none failed.
  absl::Status last_error() const;

 private:
  // One refit request: made at the boundary of generation `boundary` on the
  // first `examples` examples; `version` once its fit succeeded (0: not, or
  // not yet).
  struct Request {
    int64_t boundary = 0;
    int64_t examples = 0;
    int64_t version = 0;
  };

  // One task of the strand: runs the next queued request's fit, if any.
  void RunNextFit();
  // Waits (mu_ held through `lock`) until `done()` or stopping_, running
  // queued fits on this thread while none runs elsewhere.
  void HelpUntil(std::unique_lock<std::mutex>& lock, const std::function<bool()>& done);
  // Requests a refit at `boundary` on the first `examples` examples (all of
  // them when omitted) if refit_every are new. REQUIRES: mu_ held.
  bool RequestLocked(int64_t boundary);
  bool RequestLocked(int64_t boundary, int64_t examples);
  // The first n examples and the newest version, as a fit is handed them.
  RefitData Snapshot(int64_t n) const;   // REQUIRES: mu_ not held

  const RefitOptions options_;
  const FitFunction fit_;
  const VersionCallback on_version_;

  mutable std::mutex mu_;
  std::condition_variable cv_;  // a fit finished, or Stop: wakes WaitIdle and BeforeAsk
  std::vector<torch::Tensor> images_;       // uint8 [C, H, W]
  std::vector<std::vector<float>> rates_;
  std::vector<int64_t> stimulus_ids_;
  std::vector<Request> requests_;           // in request (= fit) order
  size_t next_to_run_ = 0;                  // requests_[next_to_run_] runs next
  size_t done_ = 0;                         // requests_[0, done_) finished or failed
  int64_t versions_ = 0;                    // versions fitted so far (the newest's number)
  // Versions that a later BeforeAsk may still assign: the assigned one and
  // every newer one.
  std::map<int64_t, std::shared_ptr<const ResponseModel>> models_;
  std::shared_ptr<const ResponseModel> assigned_;
  bool stopping_ = false;
  std::atomic<bool> cancel_{false};         // the running fit's cancel flag
  int64_t fits_started_ = 0;
  int64_t fits_cancelled_ = 0;
  absl::Status last_error_;

  std::unique_ptr<WorkPool> own_pool_;  // when no pool was given
  std::unique_ptr<Strand> strand_;      // this scheduler's fits, in order
};

}  // namespace stimloop

#endif  // STIMLOOP_MODELS_REFIT_SCHEDULER_H_
