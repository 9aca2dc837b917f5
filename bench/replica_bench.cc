// The PostgreSQL store against SQLite, end to end: acknowledged reports per
// second and ack latency (p50/p99) with 1 and 16 sessions, each driven by
// its own rig client over gRPC; and the takeover time after an owner's
// SIGKILL with two replicas.
//
//   replica_bench [--reports=200] [--lease_ttl=2s] [--takeovers=5] [--dir=/var/tmp/...]
//
// The real stimloop-server binary on loopback; PostgreSQL is a throwaway
// server started here (tests/server/pg_test_cluster.h) with its durable
// defaults (fsync on), its data in the system temp dir; SQLite in --dir with
// the default synchronous=FULL. Each session: genetic in spectral space,
// 32x32 gray, generations of 10; the rig reports each stimulus on its own
// (one ReportResponses per stimulus), so reports/s counts commits; the time
// includes the generations' proposals. Takeover: a session on replica A,
// A SIGKILLed, then GetSession polled on replica B every 5 ms until B has
// taken the session over; the time from the kill to B's answer.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "bench/bench_util.h"
#include "clients/rig_client.h"
#include "clients/server_process.h"
#include "server/store_checksum.h"
#include "tests/server/pg_test_cluster.h"

ABSL_FLAG(int, reports, 200, "Reports per session (one stimulus each).");
ABSL_FLAG(absl::Duration, lease_ttl, absl::Seconds(2), "Replicas' --lease_ttl for takeovers.");
ABSL_FLAG(int, takeovers, 5, "Takeovers timed.");
ABSL_FLAG(std::string, dir, "/var/tmp/stimloop-replica-bench", "Scratch directory (emptied).");

namespace stimloop {
namespace {

v1::SessionConfig Config(uint64_t seed) {
  v1::SessionConfig config;
  config.mutable_image()->set_height(32);
  config.mutable_image()->set_width(32);
  config.mutable_image()->set_channels(1);
  config.set_num_neurons(1);
  config.mutable_optimizer()->set_name("genetic");
  config.mutable_image_space()->set_name("spectral");
  config.set_generation_size(10);
  config.set_seed(seed);
  return config;
}

struct Result {
  double reports_per_second = 0;
  Summary ack_ms;
  std::string error;
};

std::unique_ptr<ServerProcess> Start(const std::string& dir, const std::string& name,
                                     const std::vector<std::string>& args) {
  std::filesystem::create_directories(dir);
  auto server = ServerProcess::Start(DefaultServerBinary(), dir + "/" + name,
                                     dir + "/" + name + ".log", args);
  if (!server.ok()) {
    std::fprintf(stderr, "cannot start the server: %s\n", server.status().ToString().c_str());
    return nullptr;
  }
  return *std::move(server);
}

Result Throughput(const std::string& dir, const std::vector<std::string>& args, int sessions) {
  Result result;
  auto server = Start(dir, "server", args);
  if (server == nullptr) return {0, {}, "server did not start"};
  const int reports = absl::GetFlag(FLAGS_reports);
  absl::Mutex mu;
  std::vector<double> latencies;
  const absl::Time start = absl::Now();
  RunInParallel(sessions, sessions, [&](size_t i) {
    RigClientOptions options;
    options.address = server->address();
    auto client = RigClient::Connect(options);
    if (!client.ok()) return;
    auto session = (*client)->CreateSession(Config(100 + i));
    if (!session.ok()) return;
    std::vector<double> mine;
    int sent = 0;
    while (sent < reports) {
      auto batch = (*client)->NextStimuli(session->id(), 0);
      if (!batch.ok()) break;
      for (const v1::Stimulus& s : batch->stimuli()) {
        v1::Response r;
        r.set_stimulus_id(s.id());
        r.add_rates(static_cast<double>(StoreChecksum(s.png()) % 1000) / 10.0);
        const absl::Time t = absl::Now();
        auto ack = (*client)->ReportResponses(session->id(), absl::StrCat("r", sent), {r});
        if (!ack.ok()) return;
        mine.push_back(absl::ToDoubleMilliseconds(absl::Now() - t));
        ++sent;
      }
    }
    absl::MutexLock lock(&mu);
    latencies.insert(latencies.end(), mine.begin(), mine.end());
  });
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  if (latencies.size() != static_cast<size_t>(sessions) * reports) {
    result.error = absl::StrCat("only ", latencies.size(), " reports acknowledged");
  }
  result.reports_per_second = latencies.size() / seconds;
  result.ack_ms = Summarize(latencies);
  server->Stop().IgnoreError();
  return result;
}

// Seconds from the owner's SIGKILL to the other replica's first answer.
std::vector<double> Takeovers(const std::string& dir, PgTestCluster& cluster) {
  std::vector<double> out;
  const std::string ttl = absl::FormatDuration(absl::GetFlag(FLAGS_lease_ttl));
  for (int t = 0; t < absl::GetFlag(FLAGS_takeovers); ++t) {
    auto uri = cluster.CreateDatabase(absl::StrCat("takeover", t));
    if (!uri.ok()) break;
    const std::vector<std::string> args = {"--store=" + *uri, "--lease_ttl=" + ttl};
    auto a = Start(absl::StrCat(dir, "/takeover", t), "a", args);
    auto b = Start(absl::StrCat(dir, "/takeover", t), "b", args);
    if (a == nullptr || b == nullptr) break;
    RigClientOptions options;
    options.address = a->address();
    auto to_a = RigClient::Connect(options);
    options.address = b->address();
    auto to_b = RigClient::Connect(options);
    if (!to_a.ok() || !to_b.ok()) break;
    auto session = (*to_a)->CreateSession(Config(7 + t));
    if (!session.ok() || !(*to_a)->NextStimuli(session->id(), 0).ok()) break;
    a->Kill();
    const absl::Time killed = absl::Now();
    while (!(*to_b)->GetSession(session->id()).ok()) {
      if (absl::Now() - killed > absl::Seconds(60)) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    out.push_back(absl::ToDoubleSeconds(absl::Now() - killed));
    b->Stop().IgnoreError();
  }
  return out;
}

int Main() {
  const std::string dir = absl::GetFlag(FLAGS_dir);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  auto cluster = PgTestCluster::Start("replica-bench", /*durable=*/true);
  if (!cluster.ok()) {
    std::fprintf(stderr, "PostgreSQL cannot start: %s\n", cluster.status().ToString().c_str());
    return 1;
  }
  std::printf("| store | sessions | acknowledged reports/s | ack p50 ms | ack p99 ms |\n");
  std::printf("|---|---|---|---|---|\n");
  for (const int sessions : {1, 16}) {
    for (const bool postgres : {false, true}) {
      std::vector<std::string> args;
      if (postgres) {
        auto uri = (*cluster)->CreateDatabase(absl::StrCat("throughput", sessions));
        if (!uri.ok()) return 1;
        args.push_back("--store=" + *uri);
      }
      const Result r =
          Throughput(absl::StrCat(dir, "/", postgres ? "pg" : "sqlite", sessions), args, sessions);
      std::printf("| %s | %d | %.0f | %.2f | %.2f |%s\n",
                  postgres ? "PostgreSQL 15" : "SQLite (FULL)", sessions, r.reports_per_second,
                  r.ack_ms.median, r.ack_ms.p99,
                  r.error.empty() ? "" : absl::StrCat(" ", r.error).c_str());
      std::fflush(stdout);
    }
  }
  const std::vector<double> takeovers = Takeovers(dir, **cluster);
  if (!takeovers.empty()) {
    const Summary s = Summarize(takeovers);
    std::printf(
        "\ntakeover after SIGKILL (--lease_ttl=%s, %zu runs): median %.2f s, "
        "min %.2f s, max %.2f s\n",
        absl::FormatDuration(absl::GetFlag(FLAGS_lease_ttl)).c_str(), takeovers.size(), s.median,
        s.min, s.max);
  }
  return 0;
}

}  // namespace
}  // namespace stimloop

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return stimloop::Main();
}
