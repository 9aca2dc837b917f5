// Starts a stimloop-server binary as a child process on a free loopback
// port and stops it again: for the offline runner, integration tests and
// benchmarks. The child dies with its parent (PR_SET_PDEATHSIG), so no test
// leaves a server behind.
#ifndef STIMLOOP_CLIENTS_SERVER_PROCESS_H_
#define STIMLOOP_CLIENTS_SERVER_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace stimloop {

class ServerProcess {
 public:
  // Runs `binary --listen=127.0.0.1:0 --data_dir=<data_dir> <extra_args...>`,
  // its output going to `log_path`, and waits (up to `timeout`) for it to
  // print its port. Errors carry the end of the log.
  static absl::StatusOr<std::unique_ptr<ServerProcess>> Start(
      const std::string& binary, const std::string& data_dir, const std::string& log_path,
      const std::vector<std::string>& extra_args = {},
      absl::Duration timeout = absl::Seconds(60));

  // Stops the server (SIGTERM, then SIGKILL after 10 s) if still running.
  ~ServerProcess();

  // "127.0.0.1:<port>".
  const std::string& address() const { return address_; }
  pid_t pid() const { return pid_; }

  // Graceful stop: SIGTERM, wait up to `timeout`; the exit status or an error.
  absl::StatusOr<int> Stop(absl::Duration timeout = absl::Seconds(10));
  // SIGKILL, as a crash would, and reap.
  void Kill();

 private:
  ServerProcess(pid_t pid, std::string address) : pid_(pid), address_(std::move(address)) {}
  pid_t pid_;
  std::string address_;
};

// The stimloop-server binary of this build: $STIMLOOP_SERVER if set, else
// next to the running executable or in ../server/ from it.
std::string DefaultServerBinary();

}  // namespace stimloop

#endif  // STIMLOOP_CLIENTS_SERVER_PROCESS_H_
