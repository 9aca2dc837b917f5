#include "server/torch_threads.h"

#include <ATen/Parallel.h>

namespace stimloop {

void SetTorchThreads(int threads) {
  at::set_num_threads(threads);
  at::set_num_interop_threads(threads);
}

}  // namespace stimloop
