// A session's only thread: prepares the next generation's Ask ahead of the
// boundary ("Proposing ahead" in server/session.h). On the thread, at
// lowered priority (base/thread_priority.h): refits->BeforeAsk(generation)
// when there are refits, then optimizer->PrepareAsk(count, first_id). A
// failure (an error, or an exception such as LibTorch out of memory) is
// logged naming the session and otherwise dropped: PrepareAsk leaves the
// optimizer as it was, and the boundary asks from scratch. CANCELLED (the
// session shutting down) is not logged.
//
// It shares its owner's lock `mu`: running() is read, and Start called, with
// it held; the thread takes it once, at its end, to clear running(), so the
// owner can wait for that with mu->Await.
#ifndef STIMLOOP_SERVER_BACKGROUND_PROPOSER_H_
#define STIMLOOP_SERVER_BACKGROUND_PROPOSER_H_

#include <cstdint>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "models/refit_scheduler.h"
#include "optimizers/optimizer.h"

namespace stimloop {

class BackgroundProposer {
 public:
  // `session_id` names the session in the log. `mu` must outlive this.
  BackgroundProposer(absl::Mutex* mu, std::string session_id);
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

  // Waits for the thread to end; the owner cancels the work first
  // (RefitScheduler::Stop, Optimizer::CancelAsks) to make that quick.
  // REQUIRES: mu not held.
  void Join();

 private:
  void Run(Optimizer* optimizer, RefitScheduler* refits, int64_t generation, int count,
           int64_t first_id);

  absl::Mutex* const mu_;
  const std::string session_id_;
  bool running_ = false;  // guarded by *mu_
  std::thread thread_;    // guarded by *mu_
};

}  // namespace stimloop

#endif  // STIMLOOP_SERVER_BACKGROUND_PROPOSER_H_
