// Small helpers shared by the benchmarks: summaries of samples, parallel
// runs of jobs, a process's peak memory and CPU time.
#ifndef STIMLOOP_BENCH_BENCH_UTIL_H_
#define STIMLOOP_BENCH_BENCH_UTIL_H_

#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <iterator>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace stimloop {

struct Summary {
  double median = 0, p99 = 0, min = 0, max = 0;
};

// Median, 99th percentile (nearest rank), min and max; zeros when empty.
inline Summary Summarize(std::vector<double> values) {
  Summary s;
  if (values.empty()) return s;
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  s.median = n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
  s.p99 = values[std::min(n - 1, static_cast<size_t>(0.99 * n))];
  s.min = values.front();
  s.max = values.back();
  return s;
}

// "median [min,max]" of `values` with `decimals` decimals, the cell of
// every table the benchmarks print over seeds. REQUIRES: values not empty.
inline std::string MedianRange(const std::vector<double>& values, int decimals = 3) {
  const Summary s = Summarize(values);
  return absl::StrFormat("%.*f [%.*f,%.*f]", decimals, s.median, decimals, s.min, decimals,
                         s.max);
}

// Calls body(i) for i in [0, n) on `threads` threads.
inline void RunInParallel(size_t n, int threads, const std::function<void(size_t)>& body) {
  std::atomic<size_t> next{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < std::max(1, threads); ++t) {
    workers.emplace_back([&]() {
      for (size_t i = next++; i < n; i = next++) body(i);
    });
  }
  for (std::thread& w : workers) w.join();
}

// Calls run(job) for every job on `threads` threads; a job whose run fails
// keeps the message in job.error (Job has a std::string error).
template <typename Job, typename Run>
void RunJobs(std::vector<Job>& jobs, int threads, const Run& run) {
  RunInParallel(jobs.size(), threads, [&](size_t i) {
    const absl::Status s = run(jobs[i]);
    if (!s.ok()) jobs[i].error = std::string(s.message());
  });
}

// Peak resident memory (VmHWM) of process `pid` in MiB; -1 when unknown.
inline double PeakResidentMiB(pid_t pid) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  }
  return -1;
}

// User + system CPU seconds process `pid` has used so far; -1 when unknown.
inline double CpuSeconds(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  const std::string stat((std::istreambuf_iterator<char>(in)), {});
  const size_t name_end = stat.rfind(')');  // the name may hold spaces
  if (name_end == std::string::npos) return -1;
  const std::vector<std::string> fields = absl::StrSplit(stat.substr(name_end + 2), ' ');
  // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
  double utime = 0, stime = 0;
  if (fields.size() < 13 || !absl::SimpleAtod(fields[11], &utime) ||
      !absl::SimpleAtod(fields[12], &stime)) {
    return -1;
  }
  return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

}  // namespace stimloop

#endif  // STIMLOOP_BENCH_BENCH_UTIL_H_
