#include "server/background_proposer.h"

#include <exception>
#include <iostream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace stimloop {
namespace {

WorkPool* PoolOrOwn(WorkPool* pool, std::unique_ptr<WorkPool>* own) {
  if (pool != nullptr) return pool;
  *own = std::make_unique<WorkPool>(1);
  return own->get();
}

}  // namespace

BackgroundProposer::BackgroundProposer(absl::Mutex* mu, std::string session_id, WorkPool* pool)
    : mu_(mu), session_id_(std::move(session_id)), strand_(PoolOrOwn(pool, &own_pool_)) {}

BackgroundProposer::~BackgroundProposer() { Join(); }

void BackgroundProposer::Start(Optimizer* optimizer, RefitScheduler* refits, int64_t generation,
                               int count, int64_t first_id) {
  running_ = true;
  strand_.Post([this, optimizer, refits, generation, count, first_id] {
    Run(optimizer, refits, generation, count, first_id);
  });
}

bool BackgroundProposer::RunQueuedInline() { return strand_.RunOneInline(); }

void BackgroundProposer::Join() {
  strand_.Cancel();
  strand_.WaitIdle();
  absl::MutexLock lock(mu_);
  running_ = false;  // a dropped preparation never ran
}

void BackgroundProposer::Run(Optimizer* optimizer, RefitScheduler* refits, int64_t generation,
                             int count, int64_t first_id) {
  // Runs without the owner's lock: while running_, nothing else touches the
  // optimizer.
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
