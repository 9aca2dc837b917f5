// Background compute (refits, asks proposed ahead) yields the CPU to the
// threads that answer the rig.
//
// On a machine with as many busy compute threads as cores (2 cores: one
// refit, one background Ask), the gRPC threads that hand out stimuli queue
// for a core behind them. A compute thread calls LowerThisThreadPriority()
// once when it starts: on Linux its nice value rises by kBackgroundNice
// (setpriority on the thread id, which NPTL applies to that thread alone),
// so the scheduler prefers RPC threads whenever both are runnable, and the
// compute still gets every cycle they leave. LibTorch runs its intra-op work
// on the calling thread when --torch_threads is 1, and OpenBLAS too once
// bounded (server/torch_threads.h), so the whole fit is covered. The
// threads of the server's WorkPool (base/work_pool.h) lower themselves once.
#ifndef STIMLOOP_BASE_THREAD_PRIORITY_H_
#define STIMLOOP_BASE_THREAD_PRIORITY_H_

namespace stimloop {

inline constexpr int kBackgroundNice = 10;

// Raises the calling thread's nice value by kBackgroundNice (capped at 19).
// Returns false where that is not possible (not Linux, or refused); the
// thread then runs as before.
bool LowerThisThreadPriority();

// The calling thread's nice value (0 where unknown).
int ThisThreadNice();

}  // namespace stimloop

#endif  // STIMLOOP_BASE_THREAD_PRIORITY_H_
