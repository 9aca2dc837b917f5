// Bounds LibTorch's CPU threads so that training and image generation never
// take every core from the RPC threads.
//
// What this does not touch, on purpose: LibTorch on Debian multiplies
// matrices (and convolutions, through im2col) with OpenBLAS, whose pthreads
// build keeps its own pool sized to the cores. Bounding that pool too
// (openblas_set_num_threads(1)) was measured and made things worse: on the
// 2-core VM the boundary waits of bench/refit_latency at 250 ms per stimulus
// went from a median of 6.9 s to 14.0 s (BENCHMARKS.md), because a refit and
// the Ask after it then run each sgemm on one core. The RPC threads stay
// responsive either way (hand-out p99 under 10 ms).
#ifndef STIMLOOP_SERVER_TORCH_THREADS_H_
#define STIMLOOP_SERVER_TORCH_THREADS_H_

namespace stimloop {

// Sets LibTorch's intra-op and inter-op thread counts. REQUIRES: threads >= 1.
// Call once, before any LibTorch work.
void SetTorchThreads(int threads);

}  // namespace stimloop

#endif  // STIMLOOP_SERVER_TORCH_THREADS_H_
