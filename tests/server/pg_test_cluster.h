// A throwaway PostgreSQL server for tests: initdb in a fresh temporary
// directory, then `postgres` on a free loopback port (and a Unix socket in
// that directory), with fsync off (the tests kill stimloop servers, never
// this one). Run from Debian's postgresql package (/usr/lib/postgresql/
// <version>/bin, or $STIMLOOP_PG_BINDIR). Benchmarks start it `durable`
// (fsync on, PostgreSQL's defaults) to time real commits.
//
// PostgreSQL refuses to run as root: as root (as in CI) initdb and postgres
// run as the unprivileged user `postgres` (the package creates it), the
// directory chowned to it. postgres is a direct child started with
// PR_SET_PDEATHSIG: it dies with the test process even when that crashes
// or is killed; the destructor stops it (fast shutdown, then SIGKILL) and
// removes the directory.
//
// In a test: STIMLOOP_START_POSTGRES_OR_SKIP(cluster); skips with the
// reason when PostgreSQL cannot start, or fails when the environment sets
// STIMLOOP_REQUIRE_POSTGRES=1 (scripts/test.sh does, so CI runs them).
#ifndef STIMLOOP_TESTS_SERVER_PG_TEST_CLUSTER_H_
#define STIMLOOP_TESTS_SERVER_PG_TEST_CLUSTER_H_

#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/pg_connection.h"

namespace stimloop {

class PgTestCluster {
 public:
  // Starts a server; the reason it cannot otherwise (FAILED_PRECONDITION
  // when PostgreSQL is not installed, UNAVAILABLE when it does not start).
  static absl::StatusOr<std::unique_ptr<PgTestCluster>> Start(const std::string& name,
                                                              bool durable = false) {
    const std::string bin = BinDir();
    std::error_code exists_error;
    if (bin.empty() || !std::filesystem::exists(bin + "/initdb", exists_error)) {
      return absl::FailedPreconditionError(
          absl::StrCat("PostgreSQL is not installed: no initdb in ",
                       bin.empty() ? "/usr/lib/postgresql/*/bin" : bin,
                       " ($STIMLOOP_PG_BINDIR overrides; Debian: apt-get install postgresql)"));
    }
    std::unique_ptr<PgTestCluster> cluster(new PgTestCluster());
    std::string safe = name;
    for (char& c : safe) {
      if (!std::isalnum(static_cast<unsigned char>(c))) c = '-';
    }
    cluster->dir_ =
        (std::filesystem::temp_directory_path() / absl::StrCat("stimloop-pg-", safe, "-", getpid()))
            .string();
    std::error_code error;
    std::filesystem::remove_all(cluster->dir_, error);
    std::filesystem::create_directories(cluster->dir_, error);
    if (error) return absl::UnavailableError(absl::StrCat("cannot create ", cluster->dir_));
    if (geteuid() == 0) {
      const passwd* user = getpwnam("postgres");
      if (user == nullptr) {
        return absl::FailedPreconditionError(
            "running as root, and there is no user 'postgres' to run PostgreSQL as (initdb "
            "refuses root; Debian's postgresql package creates the user)");
      }
      cluster->uid_ = user->pw_uid;
      cluster->gid_ = user->pw_gid;
      if (chown(cluster->dir_.c_str(), cluster->uid_, cluster->gid_) != 0) {
        return absl::UnavailableError(absl::StrCat("cannot chown ", cluster->dir_));
      }
    }
    const std::string data = cluster->dir_ + "/data";
    const int initdb =
        cluster->RunAsUser({bin + "/initdb", "-D", data, "-A", "trust", "-U", "stimloop", "-E",
                            "UTF8", "--no-sync", "--no-instructions"},
                           cluster->dir_ + "/initdb.log", /*wait=*/true);
    if (initdb != 0) {
      return absl::UnavailableError(
          absl::StrCat("initdb failed (", initdb, "): ", Tail(cluster->dir_ + "/initdb.log")));
    }
    for (int attempt = 0; attempt < 3; ++attempt) {
      cluster->port_ = FreePort();
      std::vector<std::string> args = {bin + "/postgres",
                                       "-D",
                                       data,
                                       "-p",
                                       std::to_string(cluster->port_),
                                       "-k",
                                       cluster->dir_,
                                       "-h",
                                       "127.0.0.1",
                                       "-c",
                                       "max_connections=50"};
      if (!durable) {
        for (const char* fast : {"fsync=off", "full_page_writes=off"}) {
          args.push_back("-c");
          args.push_back(fast);
        }
      }
      cluster->pid_ = cluster->RunAsUser(args, cluster->dir_ + "/postgres.log", /*wait=*/false);
      if (cluster->WaitReady()) return cluster;
      cluster->Stop();
    }
    return absl::UnavailableError(
        absl::StrCat("postgres did not start: ", Tail(cluster->dir_ + "/postgres.log")));
  }

  ~PgTestCluster() {
    Stop();
    std::error_code error;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, error);
  }

  int port() const { return port_; }
  pid_t pid() const { return pid_; }

  // The URI of database `db` on this server, as user stimloop.
  std::string Uri(const std::string& db) const {
    return absl::StrCat("postgresql://stimloop@127.0.0.1:", port_, "/", db);
  }

  // Creates database `db`; its URI.
  absl::StatusOr<std::string> CreateDatabase(const std::string& db) {
    auto conn = PgConnection::Connect(Uri("postgres"));
    if (!conn.ok()) return conn.status();
    const std::string sql = absl::StrCat("CREATE DATABASE \"", db, "\"");
    if (absl::Status s = (*conn)->Run(sql.c_str(), "creating a test database"); !s.ok()) return s;
    return Uri(db);
  }

  // Runs SQL (no results) on database `db`.
  absl::Status Exec(const std::string& db, const std::string& sql) {
    auto conn = PgConnection::Connect(Uri(db));
    if (!conn.ok()) return conn.status();
    return (*conn)->Run(sql.c_str(), "test SQL");
  }

  // The first column of the first row of `sql` on `db`, as text.
  absl::StatusOr<std::string> Query(const std::string& db, const std::string& sql) {
    auto conn = PgConnection::Connect(Uri(db));
    if (!conn.ok()) return conn.status();
    auto rows = (*conn)->Exec(absl::StrCat("SELECT (", sql, ")::text").c_str(), "test SQL");
    if (!rows.ok()) return rows.status();
    if (rows->rows() == 0) return std::string();
    return rows->Bytes(0, 0);
  }

 private:
  PgTestCluster() = default;

  static std::string BinDir() {
    if (const char* env = std::getenv("STIMLOOP_PG_BINDIR"); env != nullptr && *env) return env;
    std::string best;
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator("/usr/lib/postgresql", error)) {
      const std::string bin = (entry.path() / "bin").string();
      if (std::filesystem::exists(bin + "/initdb", error) && bin > best) best = bin;
    }
    return best;
  }

  static int FreePort() {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    int port = 0;
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
        getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port = ntohs(addr.sin_port);
    }
    close(fd);
    return port;
  }

  static std::string Tail(const std::string& path) {
    std::ifstream in(path);
    std::stringstream buffer;
    buffer << in.rdbuf();
    const std::string text = buffer.str();
    return text.size() <= 1500 ? text : text.substr(text.size() - 1500);
  }

  // Runs `args` as the cluster's user, output to `log`: with `wait`, its
  // exit status (-1 when it could not run); else the child's pid, which
  // dies with this process.
  int RunAsUser(const std::vector<std::string>& args, const std::string& log, bool wait) {
    std::vector<char*> argv;
    std::vector<std::string> copy = args;
    for (std::string& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    const pid_t parent = getpid();
    const pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
      const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
      }
      if (geteuid() == 0) {
        if (setgroups(0, nullptr) != 0 || setgid(gid_) != 0 || setuid(uid_) != 0) _exit(126);
      }
      // After the credential change, which clears it.
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(125);
      execv(argv[0], argv.data());
      _exit(127);
    }
    if (!wait) return pid;
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  bool WaitReady() {
    const std::string conninfo =
        absl::StrCat("host=127.0.0.1 port=", port_, " user=stimloop dbname=postgres");
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (absl::Now() < deadline) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return false;
      }
      if (PQping(conninfo.c_str()) == PQPING_OK) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

  // Fast shutdown (SIGINT), SIGKILL after 10 s.
  void Stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGINT);
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    int status = 0;
    while (waitpid(pid_, &status, WNOHANG) == 0) {
      if (absl::Now() > deadline) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    pid_ = -1;
  }

  std::string dir_;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
  int port_ = 0;
  pid_t pid_ = -1;
};

// Whether a test that cannot start PostgreSQL fails instead of skipping.
inline bool PostgresRequired() {
  const char* env = std::getenv("STIMLOOP_REQUIRE_POSTGRES");
  return env != nullptr && std::string(env) == "1";
}

}  // namespace stimloop

// Declares `var`, a std::unique_ptr<PgTestCluster> with a running server,
// or skips the test saying why (fails with STIMLOOP_REQUIRE_POSTGRES=1).
#define STIMLOOP_START_POSTGRES_OR_SKIP(var)                                              \
  auto var##_or = ::stimloop::PgTestCluster::Start(                                       \
      ::testing::UnitTest::GetInstance()->current_test_info()->name());                   \
  if (!var##_or.ok()) {                                                                   \
    if (::stimloop::PostgresRequired()) {                                                 \
      FAIL() << "PostgreSQL is required (STIMLOOP_REQUIRE_POSTGRES=1) but cannot start: " \
             << var##_or.status();                                                        \
    }                                                                                     \
    GTEST_SKIP() << "PostgreSQL cannot start, skipping: " << var##_or.status()            \
                 << " (set STIMLOOP_REQUIRE_POSTGRES=1 to fail instead)";                 \
  }                                                                                       \
  std::unique_ptr<::stimloop::PgTestCluster> var = *std::move(var##_or)

#endif  // STIMLOOP_TESTS_SERVER_PG_TEST_CLUSTER_H_
