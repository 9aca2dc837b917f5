// See base/thread_priority.h.
#include "base/thread_priority.h"

#include <algorithm>
#include <cerrno>

#ifdef __linux__
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace stimloop {

#ifdef __linux__
namespace {
id_t ThisThreadId() { return static_cast<id_t>(::syscall(SYS_gettid)); }
}  // namespace

int ThisThreadNice() {
  errno = 0;
  const int nice = ::getpriority(PRIO_PROCESS, ThisThreadId());
  return errno == 0 ? nice : 0;
}

bool LowerThisThreadPriority() {
  const int target = std::min(19, ThisThreadNice() + kBackgroundNice);
  return ::setpriority(PRIO_PROCESS, ThisThreadId(), target) == 0;
}
#else
int ThisThreadNice() { return 0; }
bool LowerThisThreadPriority() { return false; }
#endif

}  // namespace stimloop
