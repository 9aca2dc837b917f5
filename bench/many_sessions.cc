// Many model-based sessions on one server (issue 25 point 4): for each N of
// --sessions, starts the real server binary, opens N sessions with the
// default strategy (CreateSession with only the image format and one
// neuron), and drives each from its own rig thread that behaves like a
// rig: it asks for one stimulus at a time, spends --display_ms showing it,
// measures a simulated simple cell (Poisson, 0.2 s) and reports that trial.
// Per N (and per run, --runs times) it prints:
//   NextStimuli p50 / p99 over every call of every session;
//   the rig's wait at a generation boundary (the first call of each
//     generation, which waits for the proposal when it is late) p50 / p99;
//   the model lag in the scheduler's terms (models/refit_scheduler.h,
//     refit_lag k): for each generation g proposed from a model fitted on
//     the responses through generation d (a version's num_trials, read back
//     from the store, against the responses counted when each generation
//     was complete), g - (d + 1), the boundary its fit was requested at
//     being the commit of generation d + 1; median and max (at most k when
//     every fit succeeds);
//   the server's peak RSS (VmHWM) and its CPU use (user + system seconds
//     over the wall time of the run, in cores).
// By default every rig starts at once and all rigs keep the same pace, so
// the sessions reach their generation boundaries together, every boundary:
// the worst case for the rig wait on a server with fewer cores than
// sessions. --stagger starts them at independent moments instead.
//
//   many_sessions --sessions=1,4,8,16 --generations=8 --runs=5
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "bench/bench_util.h"
#include "clients/inspect/store_reader.h"
#include "clients/named_numbers.h"
#include "clients/rig_client.h"
#include "clients/server_process.h"
#include "clients/simulated_rig.h"

ABSL_FLAG(std::string, sessions, "1,4,8,16", "Numbers of concurrent sessions, comma-separated");
ABSL_FLAG(int, runs, 1, "Runs per number of sessions");
ABSL_FLAG(int, generations, 6, "Generations each session runs");
ABSL_FLAG(int, generation_size, 40, "Stimuli per generation");
ABSL_FLAG(int, size, 32, "Image side (grayscale)");
ABSL_FLAG(int, display_ms, 250, "Time the rig shows each stimulus");
ABSL_FLAG(std::string, optimizer, "", "Optimizer name; empty: the default strategy");
ABSL_FLAG(std::string, optimizer_params, "", "name=value,... (e.g. cmaes.full_cov_max_dim=1000)");
ABSL_FLAG(std::string, surrogate_params, "", "name=value,...");
ABSL_FLAG(std::string, server_args, "", "Extra server flags, comma-separated");
ABSL_FLAG(bool, stagger, false,
          "Start each rig after a delay drawn uniformly from one generation's display time "
          "(seeded by the run number), as rigs started independently would; false: all at "
          "once, so that every session's generation boundary coincides (the worst case)");
ABSL_FLAG(std::string, data_dir, "/tmp/stimloop-bench-many-sessions", "Scratch directory");

namespace stimloop {
namespace {

// What one rig thread saw.
struct RigLog {
  std::vector<double> call_ms;      // every NextStimuli
  std::vector<double> boundary_ms;  // the first call of each generation
  // generation -> model version that proposed its stimuli (0: none).
  std::map<int64_t, int64_t> version_of_generation;
  // responses reported when generation g was complete, g = 1, 2, ...
  std::vector<int64_t> responses_at_boundary;
  std::string session_id;
  std::string error;
};

absl::Status RunRig(const std::string& address, int index, RigLog* log) {
  RigClientOptions options;
  options.address = address;
  options.call_timeout = absl::Minutes(10);  // a long wait is a figure, not a failure
  auto client = RigClient::Connect(options);
  if (!client.ok()) return client.status();
  const int size = absl::GetFlag(FLAGS_size);
  SimulatedNeuronSpec spec;
  spec.height = spec.width = size;
  spec.seed = 100 + index;
  auto population = SimulatedPopulation::Create(spec, 1, false);
  if (!population.ok()) return population.status();
  SimulatedRig rig(*std::move(population), 0.2, 100 + index);

  v1::SessionConfig config;
  config.mutable_image()->set_height(size);
  config.mutable_image()->set_width(size);
  config.set_num_neurons(1);
  config.set_generation_size(absl::GetFlag(FLAGS_generation_size));
  config.set_seed(100 + index);
  if (!absl::GetFlag(FLAGS_optimizer).empty()) {
    config.mutable_optimizer()->set_name(absl::GetFlag(FLAGS_optimizer));
  }
  if (absl::Status s = ParseNamedNumbers(absl::GetFlag(FLAGS_optimizer_params),
                                         config.mutable_optimizer()->mutable_params());
      !s.ok()) {
    return s;
  }
  if (absl::Status s = ParseNamedNumbers(absl::GetFlag(FLAGS_surrogate_params),
                                         config.mutable_surrogate()->mutable_params());
      !s.ok()) {
    return s;
  }
  auto session = (*client)->CreateSession(config);
  if (!session.ok()) return session.status();
  log->session_id = session->id();

  const absl::Duration display = absl::Milliseconds(absl::GetFlag(FLAGS_display_ms));
  int64_t generation = 0, responses = 0, report = 0;
  for (;;) {
    const absl::Time t0 = absl::Now();
    auto batch = (*client)->NextStimuli(session->id(), 1);
    const double ms = absl::ToDoubleMilliseconds(absl::Now() - t0);
    if (!batch.ok()) return batch.status();
    if (batch->generation() != generation) {
      if (generation > 0) log->responses_at_boundary.push_back(responses);
      generation = batch->generation();
      if (generation > absl::GetFlag(FLAGS_generations)) break;
      log->boundary_ms.push_back(ms);
    }
    log->call_ms.push_back(ms);
    for (const v1::Stimulus& stimulus : batch->stimuli()) {
      if (stimulus.origin() != "reference" && stimulus.origin() != "repeat" &&
          stimulus.origin() != "validation") {
        int64_t& v = log->version_of_generation[generation];
        v = std::max(v, stimulus.model_version());
      }
      absl::SleepFor(display);
      auto rates = rig.Measure(stimulus.png());
      if (!rates.ok()) return rates.status();
      v1::Response r;
      r.set_stimulus_id(stimulus.id());
      r.mutable_rates()->Add(rates->begin(), rates->end());
      auto ack = (*client)->ReportResponses(session->id(), absl::StrCat("r", ++report), {r});
      if (!ack.ok()) return ack.status();
      ++responses;
    }
  }
  auto closed = (*client)->CloseSession(session->id());
  return closed.ok() ? absl::OkStatus() : closed.status();
}

// The value of "num_trials" in a model version's metrics JSON; -1 if none.
int64_t NumTrials(const std::string& metrics_json) {
  google::protobuf::Struct metrics;
  if (!google::protobuf::util::JsonStringToMessage(metrics_json, &metrics).ok()) return -1;
  auto it = metrics.fields().find("num_trials");
  if (it == metrics.fields().end() || !it->second.has_number_value()) return -1;
  return static_cast<int64_t>(it->second.number_value());
}

// Model lags (generations) of one session's model-proposed generations.
std::vector<double> Lags(inspect::StoreReader& store, const RigLog& log) {
  std::vector<double> lags;
  auto data = store.LoadSession(log.session_id);
  if (!data.ok()) return lags;
  std::map<int64_t, int64_t> trials_of_version;
  for (const inspect::StoredModelVersion& m : data->model_versions) {
    trials_of_version[m.version] = NumTrials(m.metrics_json);
  }
  for (const auto& [generation, version] : log.version_of_generation) {
    if (version == 0) continue;
    const int64_t trials = trials_of_version.count(version) ? trials_of_version[version] : -1;
    // The fit saw the responses through generation d, so it was requested
    // when generation d + 1 was committed: the lag is g - (d + 1).
    for (size_t i = 0; i < log.responses_at_boundary.size(); ++i) {
      if (log.responses_at_boundary[i] == trials) {
        const int64_t d = static_cast<int64_t>(i) + 1;
        lags.push_back(static_cast<double>(generation - (d + 1)));
        break;
      }
    }
  }
  return lags;
}

int Fail(const absl::Status& s) {
  std::cerr << "many_sessions: " << s << "\n";
  return 1;
}

int Main() {
  std::vector<std::string> server_args;
  if (!absl::GetFlag(FLAGS_server_args).empty()) {
    for (absl::string_view a : absl::StrSplit(absl::GetFlag(FLAGS_server_args), ',')) {
      server_args.emplace_back(a);
    }
  }
  std::cout << absl::StrFormat(
      "# %s, %dx%d gray, generations of %d, %d generations per session, %d ms per stimulus, "
      "one stimulus per call, rigs started %s, optimizer {%s}, surrogate {%s}, server {%s}, "
      "loopback gRPC, %d cores\n",
      absl::GetFlag(FLAGS_optimizer).empty() ? "default strategy" : absl::GetFlag(FLAGS_optimizer),
      absl::GetFlag(FLAGS_size), absl::GetFlag(FLAGS_size), absl::GetFlag(FLAGS_generation_size),
      absl::GetFlag(FLAGS_generations), absl::GetFlag(FLAGS_display_ms),
      absl::GetFlag(FLAGS_stagger) ? "at independent moments (--stagger)" : "at once (lockstep)",
      absl::GetFlag(FLAGS_optimizer_params), absl::GetFlag(FLAGS_surrogate_params),
      absl::GetFlag(FLAGS_server_args),
      static_cast<int>(std::thread::hardware_concurrency()));
  std::cout << "| sessions | run | NextStimuli p50 ms | p99 ms | boundary wait p50 ms | p99 ms "
               "| max ms | model lag median | max | server peak RSS MiB | server CPU cores "
               "| wall s |\n"
            << "|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (absl::string_view n_text : absl::StrSplit(absl::GetFlag(FLAGS_sessions), ',')) {
    int n = 0;
    if (!absl::SimpleAtoi(n_text, &n) || n < 1) {
      return Fail(absl::InvalidArgumentError(absl::StrCat("--sessions: bad count '", n_text, "'")));
    }
    for (int run = 1; run <= absl::GetFlag(FLAGS_runs); ++run) {
      const std::string dir = absl::StrCat(absl::GetFlag(FLAGS_data_dir), "/n", n, "-", run);
      std::filesystem::remove_all(dir);
      std::filesystem::create_directories(dir);
      auto server = ServerProcess::Start(DefaultServerBinary(), dir + "/data",
                                         dir + "/server.log", server_args);
      if (!server.ok()) return Fail(server.status());
      const absl::Time start = absl::Now();
      std::vector<RigLog> logs(n);
      std::vector<absl::Duration> delays(n);
      if (absl::GetFlag(FLAGS_stagger)) {
        std::mt19937 random(static_cast<uint32_t>(run));
        const double generation_ms =
            absl::GetFlag(FLAGS_generation_size) * absl::GetFlag(FLAGS_display_ms);
        std::uniform_real_distribution<double> uniform(0, generation_ms);
        for (absl::Duration& d : delays) d = absl::Milliseconds(uniform(random));
      }
      std::vector<std::thread> rigs;
      for (int i = 0; i < n; ++i) {
        rigs.emplace_back([&, i] {
          absl::SleepFor(delays[i]);
          const absl::Status s = RunRig((*server)->address(), i, &logs[i]);
          if (!s.ok()) logs[i].error = s.ToString();
        });
      }
      for (std::thread& t : rigs) t.join();
      const double wall_s = absl::ToDoubleSeconds(absl::Now() - start);
      const double cpu_s = CpuSeconds((*server)->pid());
      const double rss_mib = PeakResidentMiB((*server)->pid());
      auto stopped = (*server)->Stop();
      if (!stopped.ok()) return Fail(stopped.status());
      std::vector<double> calls, boundaries, lags;
      for (const RigLog& log : logs) {
        if (!log.error.empty()) return Fail(absl::InternalError(log.error));
        calls.insert(calls.end(), log.call_ms.begin(), log.call_ms.end());
        boundaries.insert(boundaries.end(), log.boundary_ms.begin(), log.boundary_ms.end());
      }
      auto store = inspect::StoreReader::Open(dir + "/data");
      if (!store.ok()) return Fail(store.status());
      for (const RigLog& log : logs) {
        const std::vector<double> l = Lags(**store, log);
        lags.insert(lags.end(), l.begin(), l.end());
      }
      const Summary c = Summarize(calls), b = Summarize(boundaries), l = Summarize(lags);
      std::cout << absl::StrFormat(
                       "| %d | %d | %.1f | %.1f | %.1f | %.1f | %.0f | %s | %s | %.0f | %.2f | %.0f |\n",
                       n, run, c.median, c.p99, b.median, b.p99, b.max,
                       lags.empty() ? "-" : absl::StrFormat("%.0f", l.median),
                       lags.empty() ? "-" : absl::StrFormat("%.0f", l.max), rss_mib,
                       cpu_s / wall_s, wall_s)
                << std::flush;
    }
  }
  return 0;
}

}  // namespace
}  // namespace stimloop

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return stimloop::Main();
}
