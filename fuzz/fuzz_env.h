// What both fuzz targets share: a private scratch directory (on tmpfs when
// there is one, so the store's fsyncs cost little) and one-time process
// set-up. Not thread-safe; a libFuzzer target runs its inputs one at a time.
#ifndef STIMLOOP_FUZZ_FUZZ_ENV_H_
#define STIMLOOP_FUZZ_FUZZ_ENV_H_

#include <string>

namespace stimloop {

// Sets LibTorch to one intra-op thread and removes the scratch directories
// at exit (not after a crash). Call from LLVMFuzzerInitialize.
void InitFuzzProcess();

// An empty directory <scratch>/stimloop-fuzz-<name>-<pid>; emptied again by
// every call with the same name.
std::string FreshFuzzDir(const std::string& name);

}  // namespace stimloop

#endif  // STIMLOOP_FUZZ_FUZZ_ENV_H_
