// Prepares a session's next Ask ahead of the boundary ("Proposing ahead" in
// server/session.h), as a task of the session's strand on the server's
// WorkPool (base/work_pool.h; without a pool, on a thread of its own), at
// the pool's lowered priority: refits->BeforeAsk(generation) when there are
// refits, then optimizer->PrepareAsk(count, first_id). A
// failure (an error, or an exception such as LibTorch out of memory) is
// logged naming the session and otherwise dropped: PrepareAsk leaves the
// optimizer as it was, and the boundary asks from scratch. CANCELLED (the
// session shutting down) is not logged.
//
// It shares its owner's lock `mu`: running() is read, and Start called, with
// it held; the task takes it once, at its end, to clear running(), so the
// owner can wait for that with mu->Await, after RunQueuedInline found the
// task already started elsewhere.
#ifndef STIMLOOP_SERVER_BACKGROUND_PROPOSER_H_
#define STIMLOOP_SERVER_BACKGROUND_PROPOSER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/synchronization/mutex.h"
#include "base/work_pool.h"
#include "models/refit_scheduler.h"
#include "optimizers/optimizer.h"

namespace stimloop {

class BackgroundProposer {
 public:
  // `session_id` names the session in the log. `mu` and `pool` (may be
  // null: a pool of one thread of its own) must outlive this.
  BackgroundProposer(absl::Mutex* mu, std::string session_id, WorkPool* pool);
  // Join()s. REQUIRES: mu not held.
  ~BackgroundProposer();

  BackgroundProposer(const BackgroundProposer&) = delete;
  BackgroundProposer& operator=(const BackgroundProposer&) = delete;

  // Whether a preparation started and has not ended. REQUIRES: mu held.
  bool running() const { return running_; }

  // Starts preparing. REQUIRES: mu held; !running(); `optimizer` and
  // `refits` (may be null) outlive the work, and nothing else uses the
  // optimizer while running().
  void Start(Optimizer* optimizer, RefitScheduler* refits, int64_t generation, int count,
             int64_t first_id);

  // When the preparation is still queued (no thread took it yet), runs it
  // on the calling thread and returns true; false when it runs elsewhere
  // or there is none. REQUIRES: mu not held.
  bool RunQueuedInline();

  // Drops a queued preparation and waits for a running one to end; the
  // owner cancels the work first (RefitScheduler::Stop,
  // Optimizer::CancelAsks) to make that quick. Start is not called after.
  // REQUIRES: mu not held.
  void Join();

 private:
  void Run(Optimizer* optimizer, RefitScheduler* refits, int64_t generation, int count,
           int64_t first_id);

  absl::Mutex* const mu_;
  const std::string session_id_;
  bool running_ = false;  // guarded by *mu_
  std::unique_ptr<WorkPool> own_pool_;  // when none was given
  Strand strand_;                       // after own_pool_: uses it
};

}  // namespace stimloop

#endif  // STIMLOOP_SERVER_BACKGROUND_PROPOSER_H_
