// Bounds LibTorch's CPU threads so that training and image generation never
// take every core from the RPC threads.
//
// LibTorch on Debian multiplies matrices (the Gabor front end's banded
// products, the heads' 1x1 convolutions) with OpenBLAS, whose pthreads build
// keeps its own pool, sized to the cores and untouched by
// at::set_num_threads. Left alone, every sgemm of a refit or an Ask fans out
// to that pool, its threads spin while they wait, and a refit and a
// background Ask running at once queue for the one pool (docs/experiments.md
// has the measurement). So the same bound is applied to OpenBLAS, found at
// run time (dlsym) so that a build against another BLAS still links and
// runs.
#ifndef STIMLOOP_SERVER_TORCH_THREADS_H_
#define STIMLOOP_SERVER_TORCH_THREADS_H_

namespace stimloop {

// Sets LibTorch's intra-op and inter-op thread counts and, when the process
// uses OpenBLAS, its thread count. REQUIRES: threads >= 1. Call once, before
// any LibTorch work. Returns whether OpenBLAS was found and bounded.
bool SetTorchThreads(int threads);

}  // namespace stimloop

#endif  // STIMLOOP_SERVER_TORCH_THREADS_H_
