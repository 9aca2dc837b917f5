#include "server/torch_threads.h"

#include <dlfcn.h>

#include <ATen/Parallel.h>

namespace stimloop {

bool SetTorchThreads(int threads) {
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
