#include "server/torch_threads.h"

#include <dlfcn.h>

#include <ATen/Parallel.h>
#include <gtest/gtest.h>

namespace stimloop {
namespace {

// OpenBLAS's own count, or -1 when the process does not use OpenBLAS.
int OpenBlasThreads() {
  using GetThreads = int (*)();
  auto get = reinterpret_cast<GetThreads>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  return get == nullptr ? -1 : get();
}

// SetTorchThreads may be called once per process (LibTorch's inter-op
// pool), so one call: OpenBLAS's pool starts at the core count (2 on CI).
TEST(TorchThreadsTest, BoundsLibTorchAndOpenBlasAlike) {
  const bool bounded = SetTorchThreads(1);
  EXPECT_EQ(at::get_num_threads(), 1);
  if (OpenBlasThreads() < 0) {
    EXPECT_FALSE(bounded);
    GTEST_SKIP() << "this LibTorch does not use OpenBLAS";
  }
  EXPECT_TRUE(bounded);
  EXPECT_EQ(OpenBlasThreads(), 1);
}

}  // namespace
}  // namespace stimloop
