#include "server/background_proposer.h"

#include <exception>
#include <iostream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/thread_priority.h"

namespace stimloop {

BackgroundProposer::BackgroundProposer(absl::Mutex* mu, std::string session_id)
    : mu_(mu), session_id_(std::move(session_id)) {}

BackgroundProposer::~BackgroundProposer() { Join(); }

void BackgroundProposer::Start(Optimizer* optimizer, RefitScheduler* refits, int64_t generation,
                               int count, int64_t first_id) {
  // The previous thread released the lock for the last time: it is
  // finishing or done.
  if (thread_.joinable()) thread_.join();
  running_ = true;
  thread_ = std::thread(&BackgroundProposer::Run, this, optimizer, refits, generation, count,
                        first_id);
}

void BackgroundProposer::Join() {
  std::thread thread;
  {
    absl::MutexLock lock(mu_);
    thread = std::move(thread_);
  }
  if (thread.joinable()) thread.join();
}

void BackgroundProposer::Run(Optimizer* optimizer, RefitScheduler* refits, int64_t generation,
                             int count, int64_t first_id) {
  // Runs without the owner's lock: while running_, nothing else touches the
  // optimizer. Yields the CPU to the threads that answer the rig.
  LowerThisThreadPriority();
  if (refits != nullptr) refits->BeforeAsk(generation);
  absl::Status prepared;
  try {
    prepared = optimizer->PrepareAsk(count, first_id);
  } catch (const std::exception& e) {  // e.g. LibTorch out of memory: never terminate
    prepared = absl::InternalError(absl::StrCat("optimizer PrepareAsk failed: ", e.what()));
  }
  if (!prepared.ok() && !absl::IsCancelled(prepared)) {
    std::cerr << "session " << session_id_ << ": background Ask failed: " << prepared << "\n";
  }
  absl::MutexLock lock(mu_);
  running_ = false;
}

}  // namespace stimloop
