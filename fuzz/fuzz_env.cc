#include "fuzz/fuzz_env.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <set>
#include <system_error>

#include "server/torch_threads.h"

namespace stimloop {

namespace {

// The scratch directories made so far, removed when the process exits.
std::set<std::string>& ScratchDirs() {
  static auto* dirs = new std::set<std::string>;
  return *dirs;
}

void RemoveScratchDirs() {
  std::error_code error;
  for (const std::string& dir : ScratchDirs()) std::filesystem::remove_all(dir, error);
}

}  // namespace

void InitFuzzProcess() {
  SetTorchThreads(1);
  std::atexit(RemoveScratchDirs);
}

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
  ScratchDirs().insert(dir.string());
  return dir.string();
}

}  // namespace stimloop
