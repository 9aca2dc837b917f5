// Test helper: LibTorch's intra-op thread count set for a scope, so that a
// test's figures depend neither on the machine's cores nor on what an
// earlier test in the same process set.
#ifndef STIMLOOP_TESTS_SCOPED_TORCH_THREADS_H_
#define STIMLOOP_TESTS_SCOPED_TORCH_THREADS_H_

#include <ATen/Parallel.h>

namespace stimloop {

// Sets the count to `threads` (>= 1) on construction and restores the
// previous count on destruction.
class ScopedTorchThreads {
 public:
  explicit ScopedTorchThreads(int threads) : saved_(at::get_num_threads()) {
    at::set_num_threads(threads);
  }
  ~ScopedTorchThreads() { at::set_num_threads(saved_); }

  ScopedTorchThreads(const ScopedTorchThreads&) = delete;
  ScopedTorchThreads& operator=(const ScopedTorchThreads&) = delete;

 private:
  const int saved_;
};

}  // namespace stimloop

#endif  // STIMLOOP_TESTS_SCOPED_TORCH_THREADS_H_
