#include "fuzz/fuzz_env.h"

#include <unistd.h>

#include <filesystem>
#include <system_error>

#include "server/torch_threads.h"

namespace stimloop {

void InitFuzzProcess() { SetTorchThreads(1); }

std::string FreshFuzzDir(const std::string& name) {
  std::error_code error;
  std::filesystem::path scratch = "/dev/shm";
  if (!std::filesystem::is_directory(scratch, error)) {
    scratch = std::filesystem::temp_directory_path();
  }
  const std::filesystem::path dir =
      scratch / ("stimloop-fuzz-" + name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir, error);
  std::filesystem::create_directories(dir);
  return dir.string();
}

}  // namespace stimloop
