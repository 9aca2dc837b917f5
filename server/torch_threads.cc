#include "server/torch_threads.h"

#include <dlfcn.h>
#include <malloc.h>

#include <ATen/Parallel.h>

namespace stimloop {
namespace {

constexpr int kMmapThresholdBytes = 32 << 20;
constexpr int kTrimThresholdBytes = 128 << 20;

}  // namespace

bool SetTorchThreads(int threads) {
  // Fixed glibc thresholds instead of its dynamic ones (see the header).
  mallopt(M_MMAP_THRESHOLD, kMmapThresholdBytes);
  mallopt(M_TRIM_THRESHOLD, kTrimThresholdBytes);
  at::set_num_threads(threads);
  at::set_num_interop_threads(threads);
  using SetThreads = void (*)(int);
  auto set_openblas =
      reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  if (set_openblas == nullptr) return false;
  set_openblas(threads);
  return true;
}

}  // namespace stimloop
