#include "clients/server_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace stimloop {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::string Tail(const std::string& text, size_t n = 2000) {
  return text.size() <= n ? text : text.substr(text.size() - n);
}

// Waits for the child to exit within `timeout`; its wait status or -1.
int WaitFor(pid_t pid, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    int status = 0;
    pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) return status;
    if (done < 0) return -1;
    if (absl::Now() >= deadline) return -2;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace

std::string DefaultServerBinary() {
  if (const char* env = std::getenv("STIMLOOP_SERVER"); env != nullptr && *env) return env;
  std::error_code error;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", error).parent_path();
  for (const auto& candidate :
       {self / "stimloop-server", self / ".." / "server" / "stimloop-server",
        self / ".." / ".." / "server" / "stimloop-server"}) {
    if (std::filesystem::exists(candidate, error)) {
      return std::filesystem::weakly_canonical(candidate, error).string();
    }
  }
  return "stimloop-server";
}

absl::StatusOr<std::unique_ptr<ServerProcess>> ServerProcess::Start(
    const std::string& binary, const std::string& data_dir, const std::string& log_path,
    const std::vector<std::string>& extra_args, absl::Duration timeout) {
  std::vector<std::string> args = {binary, "--listen=127.0.0.1:0",
                                   absl::StrCat("--data_dir=", data_dir)};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  const int log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    return absl::InternalError(absl::StrCat("cannot write ", log_path, ": ", strerror(errno)));
  }
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    close(log_fd);
    return absl::InternalError(absl::StrCat("fork: ", strerror(errno)));
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    dup2(log_fd, STDOUT_FILENO);
    dup2(log_fd, STDERR_FILENO);
    execv(binary.c_str(), argv.data());
    dprintf(STDERR_FILENO, "exec %s: %s\n", binary.c_str(), strerror(errno));
    _exit(127);
  }
  close(log_fd);

  const absl::Time deadline = absl::Now() + timeout;
  const std::string marker = "listening on ";
  while (true) {
    const std::string log = ReadFile(log_path);
    if (size_t at = log.find(marker); at != std::string::npos) {
      size_t end = log.find('\n', at);
      if (end != std::string::npos) {
        std::string address = log.substr(at + marker.size(), end - at - marker.size());
        return std::unique_ptr<ServerProcess>(new ServerProcess(pid, std::move(address)));
      }
    }
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      // Read the log again: the server may have written its reason between
      // the read above and its exit.
      return absl::InternalError(absl::StrCat(binary, " exited before listening (status ",
                                              status, "):\n", Tail(ReadFile(log_path))));
    }
    if (absl::Now() >= deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return absl::DeadlineExceededError(absl::StrCat(binary, " did not start within ",
                                                      absl::FormatDuration(timeout), ":\n",
                                                      Tail(log)));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

absl::StatusOr<int> ServerProcess::Stop(absl::Duration timeout) {
  if (pid_ <= 0) return absl::FailedPreconditionError("server already stopped");
  kill(pid_, SIGTERM);
  int status = WaitFor(pid_, timeout);
  if (status == -2) {
    Kill();
    return absl::DeadlineExceededError("server did not stop on SIGTERM; killed");
  }
  pid_ = -1;
  if (status < 0) return absl::InternalError("waitpid failed");
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void ServerProcess::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0 && !Stop().ok()) Kill();
}

}  // namespace stimloop
