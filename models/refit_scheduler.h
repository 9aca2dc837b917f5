// Refits the surrogate online, off the request path, and hands out the newest
// finished model version (a ModelSource).
//
// The session appends one training example per measured presentation (the
// 8-bit image that was shown and the rates of every neuron) and marks each
// generation boundary. At a boundary a refit is requested once at least
// `refit_every` new examples arrived since the data of the previous request;
// the request snapshots the first n examples (append order = journal order).
// Fits run on ONE worker thread owned by the scheduler; LibTorch's intra-op
// threads inside a fit are the process-wide pool the server bounds with
// --torch_threads (server/torch_threads.h): the scheduler starts no others.
//
// Versions are numbered 1, 2, ... in the order fits finish; a fit is told
// the number it will get if it finishes (its seed may depend on it). A
// finished version is reported through `on_version` (on the worker, before
// Latest() can return it, so a checkpoint is stored before any stimulus can
// name the version) and then published: Latest() is a shared_ptr copy under
// a tiny mutex and never waits for a fit. A failed fit publishes nothing;
// its error is kept (last_error()) and the next request tries again.
//
// Never an unbounded queue: at most one fit runs and one request waits. A
// new request replaces the waiting one (folded in: its snapshot holds all
// the older one's data). With `cancel_superseded` it also cancels the
// running fit (the fit function polls its cancel flag). Folding is the
// default because cancelling starves when fits are slower than generations.
// The destructor cancels the running fit and joins the worker.
//
// Responsiveness vs exact replay ("refit_sync", default 0). Which version
// an Ask sees is either the newest finished one (timing decides) or fixed
// by the data (the rig may have to wait for it):
//   async (0, default): generation g uses the newest version finished when
//     it is proposed; NextStimuli never waits on training (issue 4 point 3,
//     DESIGN.md "Responsiveness"). Every stimulus records the version that
//     proposed it, every version its checkpoint, and a restored session
//     loads the newest checkpoint, so a run stays inspectable and resumes
//     after a crash; but a second run with the same responses may pair
//     generations with other versions, so it is not replayed bit for bit.
//   sync (1): generation g is proposed with exactly the newest version
//     fitted on the data of the request made at the boundary of generation
//     g - refit_lag. refit_lag 1 (default): the refit requested when
//     generation g-1 was proposed must have finished before generation g is
//     proposed; the session asks for generation g in the background as
//     soon as that fit ends (server/session.h, "Proposing ahead"), so
//     NextStimuli waits at a generation boundary whenever the fit plus that
//     Ask take longer than showing a generation: on 2 CPU cores at 0.25 s
//     per stimulus, at most boundaries (BENCHMARKS.md). refit_lag 0 fits
//     synchronously on everything before each generation. Same config,
//     seed and responses then give the same stimuli bit for bit.
// Offline runs against a simulated rig that answers at once (stimloop-
// simulate, bench/sample_efficiency) set sync 1: there waiting costs
// nothing, every generation sees the fit on all earlier data, and runs
// replay exactly. A live rig keeps the default: on 2 cores at 0.25 s per
// stimulus it matched sync per response and got more responses per minute
// (BENCHMARKS.md, "Async against sync refits per minute of recording",
// 2 seeds; with 3-6 generations stale refits before 683bf08 it had cost
// the simple cell a lot per response).
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
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "models/response_model.h"
#include <torch/types.h>

namespace stimloop {

// When refits start and which version an Ask sees. Parsed from
// config.surrogate.params (see ParseRefitOptions).
struct RefitOptions {
  int64_t refit_every = 1;         // new examples needed to request a refit
  bool sync = false;               // see "Responsiveness vs exact replay"
  int lag = 1;                     // sync mode: 0 or 1 generations
  bool cancel_superseded = false;  // cancel a running fit that a request supersedes
};

// Reads the scheduler's keys of `params` and removes them, leaving the
// surrogate's (models/surrogate_config.h):
//   refit_every       (default 1: every generation boundary with new data,
//                     [1, 1e9]): see RefitOptions.
//   refit_sync        (default 0, {0, 1}): see RefitOptions::sync.
//   refit_lag         (default 1, {0, 1}).
//   refit_cancel      (default 0, {0, 1}): cancel_superseded.
// INVALID_ARGUMENT names "surrogate.params.<key>".
absl::StatusOr<RefitOptions> ParseRefitOptions(std::map<std::string, double>* params);

// The examples a fit learns from.
struct RefitData {
  torch::Tensor images;  // [N, C, H, W] float on the 8-bit grid, in [0, 1]
  torch::Tensor rates;   // [N, num_neurons] float, >= 0
  std::vector<int64_t> stimulus_ids;  // [N]: equal ids showed the same stimulus
};

// What a finished fit hands back.
struct FitOutcome {
  std::shared_ptr<const ResponseModel> model;  // REQUIRES: version() == the version asked
  std::map<std::string, double> metrics;       // e.g. held-out correlation
  std::string checkpoint;                      // serialized model (torch::save)
};

// Fits a model version on `data`. Must return promptly (CANCELLED or any
// error) once `cancel` becomes true. Called on the worker thread only.
using FitFunction = std::function<absl::StatusOr<FitOutcome>(
    const RefitData& data, int64_t version, const std::atomic<bool>& cancel)>;

// Told about every finished version, on the worker thread, before Latest()
// returns it. Must not call back into the scheduler.
using VersionCallback = std::function<void(int64_t version,
                                           const std::map<std::string, double>& metrics,
                                           const std::string& checkpoint)>;

class RefitScheduler : public ModelSource {
 public:
  // `on_version` may be empty. REQUIRES: fit is callable.
  RefitScheduler(RefitOptions options, FitFunction fit, VersionCallback on_version);
  // Cancels the running fit and joins the worker (returns once the fit
  // function has returned).
  ~RefitScheduler() override;

  RefitScheduler(const RefitScheduler&) = delete;
  RefitScheduler& operator=(const RefitScheduler&) = delete;

  // Appends one presentation of stimulus `stimulus_id`: `image` [C, H, W]
  // (uint8, or float in [0, 1] on the 8-bit grid) and one rate per neuron.
  // INVALID_ARGUMENT when the shape or the number of rates differs from the
  // first example's.
  absl::Status Append(const torch::Tensor& image, absl::Span<const double> rates,
                      int64_t stimulus_id);

  // Generation boundary, before the optimizer's Ask. Sync mode makes the
  // version for this generation final: lag 0 requests a refit and waits for
  // it; lag 1 waits for the refit requested at the previous boundary. Async
  // mode returns at once.
  void BeforeAsk();
  // Generation boundary, after a successful Ask: requests a refit on
  // everything appended so far (sync lag 1 and async; lag 0 did it in
  // BeforeAsk). Returns whether a refit was requested.
  bool AfterAsk();

  // Requests a refit on everything appended so far if at least refit_every
  // examples are new since the last request; true when requested.
  bool RequestRefit();
  // Blocks until no fit runs or waits, or Stop() was called.
  void WaitIdle();
  // Shuts down: cancels the running fit, drops the waiting request and wakes
  // every WaitIdle/BeforeAsk; later requests are ignored. Does not wait for
  // the fit function to return (the destructor does). Idempotent.
  void Stop();

  // Crash recovery (server/session_restore.cc): puts a fresh scheduler, whose
  // examples were re-appended in journal order, where the interrupted one
  // was. `latest` is the newest journaled version (null: none yet),
  // numbered `versions`, fitted on the first `fitted_examples` examples;
  // `boundary_examples` is how many examples there were when the last
  // generation was proposed. Unless that version already covers them, the
  // refit its AfterAsk requested is requested again (as version versions + 1,
  // on exactly those examples), so the next generation sees the same model
  // an uninterrupted run would have. Call once, before any other use.
  // INVALID_ARGUMENT when the counts do not fit the appended examples.
  absl::Status Resume(std::shared_ptr<const ResponseModel> latest, int64_t versions,
                      int64_t fitted_examples, int64_t boundary_examples);

  std::shared_ptr<const ResponseModel> Latest() const override;

  const RefitOptions& options() const { return options_; }
  int64_t num_examples() const;
  // Fits started, cancelled (superseded or shut down), finished (versions).
  int64_t fits_started() const;
  int64_t fits_cancelled() const;
  // The error of the newest failed fit; OK when none failed.
  absl::Status last_error() const;

 private:
  void WorkerLoop();
  RefitData Snapshot(int64_t n) const;  // REQUIRES: mu_ not held

  const RefitOptions options_;
  const FitFunction fit_;
  const VersionCallback on_version_;

  mutable std::mutex mu_;
  std::condition_variable cv_;  // wakes the worker and WaitIdle
  std::vector<torch::Tensor> images_;       // uint8 [C, H, W]
  std::vector<std::vector<float>> rates_;
  std::vector<int64_t> stimulus_ids_;
  int64_t requested_examples_ = 0;          // snapshot size of the newest request
  std::optional<int64_t> pending_;          // snapshot size waiting to run
  bool running_ = false;
  bool stopping_ = false;
  std::atomic<bool> cancel_{false};         // the running fit's cancel flag
  int64_t finished_versions_ = 0;
  int64_t fits_started_ = 0;
  int64_t fits_cancelled_ = 0;
  absl::Status last_error_;

  mutable std::mutex latest_mu_;
  std::shared_ptr<const ResponseModel> latest_;

  std::thread worker_;  // last: starts after every member is ready
};

}  // namespace stimloop

#endif  // STIMLOOP_MODELS_REFIT_SCHEDULER_H_
