// Bounds LibTorch's CPU threads so that training and image generation never
// take every core from the RPC threads.
#ifndef STIMLOOP_SERVER_TORCH_THREADS_H_
#define STIMLOOP_SERVER_TORCH_THREADS_H_

namespace stimloop {

// Sets LibTorch's intra-op and inter-op thread counts. REQUIRES: threads >= 1.
// Call once, before any LibTorch work.
void SetTorchThreads(int threads);

}  // namespace stimloop

#endif  // STIMLOOP_SERVER_TORCH_THREADS_H_
