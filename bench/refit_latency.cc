// NextStimuli latency while the surrogate refits, over loopback gRPC against
// the real server binary: a model-based session (gradient_ascent or
// adaptive_sampling) with the session defaults (a refit starts at every
// generation boundary and runs while the rig goes on; generation g waits
// for the fit requested refit_lag generations earlier, so
// --surrogate_params=refit_lag=2 measures a longer lag), a
// simulated simple cell with Poisson noise, and a rig that asks for
// `per_call` stimuli at a time and reports each batch at once (no display
// `display_ms` per stimulus between receiving and reporting it, as a rig
// showing each image does). Calls are split into the first call of a
// generation (it commits the generation the server asked for in the
// background, or waits for that Ask when it is not done) and the rest
// (hand-out only). Refits finish during the run only if a fit is shorter
// than the run: the table says how many versions the stimuli named.
//
//   refit_latency --optimizer=gradient_ascent --generations=15 --per_call=1
#include <algorithm>
#include <filesystem>
#include <iostream>
#include <set>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "bench/bench_util.h"
#include "clients/named_numbers.h"
#include "clients/rig_client.h"
#include "clients/server_process.h"
#include "clients/simulated_rig.h"

ABSL_FLAG(int, generations, 15, "Generations to run");
ABSL_FLAG(std::string, optimizer, "gradient_ascent", "gradient_ascent or adaptive_sampling");
ABSL_FLAG(std::string, optimizer_params, "", "name=value,...");
ABSL_FLAG(std::string, surrogate_params, "", "name=value,...");
ABSL_FLAG(std::string, image_space, "pixel", "Image space");
ABSL_FLAG(int, size, 64, "Image side (grayscale)");
ABSL_FLAG(int, generation_size, 40, "Stimuli per generation");
ABSL_FLAG(int, per_call, 1, "Stimuli per NextStimuli call");
ABSL_FLAG(int, display_ms, 250, "Time the rig spends per stimulus before reporting it");
ABSL_FLAG(std::string, server_args, "", "Extra server flags, comma-separated");
ABSL_FLAG(std::string, data_dir, "/tmp/stimloop-bench-refit-latency", "Server data directory");

namespace stimloop {
namespace {

int Fail(const absl::Status& s) {
  std::cerr << "refit_latency: " << s << "\n";
  return 1;
}

int Main() {
  const std::string dir = absl::GetFlag(FLAGS_data_dir);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::vector<std::string> server_args;
  if (!absl::GetFlag(FLAGS_server_args).empty()) {
    for (absl::string_view a : absl::StrSplit(absl::GetFlag(FLAGS_server_args), ',')) {
      server_args.emplace_back(a);
    }
  }
  auto server = ServerProcess::Start(DefaultServerBinary(), dir + "/data", dir + "/server.log",
                                     server_args);
  if (!server.ok()) return Fail(server.status());
  RigClientOptions options;
  options.address = (*server)->address();
  options.call_timeout = absl::Minutes(5);  // a wait for an Ask is a figure, not a failure
  auto client = RigClient::Connect(options);
  if (!client.ok()) return Fail(client.status());

  SimulatedNeuronSpec spec;
  spec.height = spec.width = absl::GetFlag(FLAGS_size);
  spec.seed = 1;
  auto population = SimulatedPopulation::Create(spec, 1, false);
  if (!population.ok()) return Fail(population.status());
  SimulatedRig rig(*std::move(population), 0.2, 1);

  v1::SessionConfig config;
  config.mutable_image()->set_height(spec.height);
  config.mutable_image()->set_width(spec.width);
  config.mutable_image()->set_channels(1);
  config.set_num_neurons(1);
  config.mutable_optimizer()->set_name(absl::GetFlag(FLAGS_optimizer));
  if (absl::Status s = ParseNamedNumbers(absl::GetFlag(FLAGS_optimizer_params),
                                         config.mutable_optimizer()->mutable_params());
      !s.ok()) {
    return Fail(s);
  }
  if (absl::Status s = ParseNamedNumbers(absl::GetFlag(FLAGS_surrogate_params),
                                         config.mutable_surrogate()->mutable_params());
      !s.ok()) {
    return Fail(s);
  }
  config.mutable_image_space()->set_name(absl::GetFlag(FLAGS_image_space));
  config.set_generation_size(absl::GetFlag(FLAGS_generation_size));
  config.set_seed(1);
  auto session = (*client)->CreateSession(config);
  if (!session.ok()) return Fail(session.status());

  std::vector<double> first_ms, rest_ms, all_ms;
  std::set<int64_t> versions;
  int64_t generation = 0, report = 0;
  while (generation < absl::GetFlag(FLAGS_generations)) {
    const absl::Time t0 = absl::Now();
    auto batch = (*client)->NextStimuli(session->id(), absl::GetFlag(FLAGS_per_call));
    const double ms = absl::ToDoubleMilliseconds(absl::Now() - t0);
    if (!batch.ok()) return Fail(batch.status());
    const bool first = batch->generation() != generation;
    generation = batch->generation();
    (first ? first_ms : rest_ms).push_back(ms);
    all_ms.push_back(ms);
    absl::SleepFor(absl::Milliseconds(absl::GetFlag(FLAGS_display_ms)) * batch->stimuli_size());
    std::vector<v1::Response> responses;
    for (const auto& stimulus : batch->stimuli()) {
      versions.insert(stimulus.model_version());
      auto rates = rig.Measure(stimulus.png());
      if (!rates.ok()) return Fail(rates.status());
      v1::Response r;
      r.set_stimulus_id(stimulus.id());
      r.mutable_rates()->Add(rates->begin(), rates->end());
      responses.push_back(std::move(r));
    }
    auto ack = (*client)->ReportResponses(session->id(), absl::StrCat("r", ++report), responses);
    if (!ack.ok()) return Fail(ack.status());
  }
  auto stopped = (*server)->Stop();
  if (!stopped.ok()) return Fail(stopped.status());

  auto row = [](absl::string_view label, const std::vector<double>& ms) {
    const Summary s = Summarize(ms);
    const auto over_50 = std::count_if(ms.begin(), ms.end(), [](double m) { return m > 50; });
    return absl::StrFormat("| %-34s | %5d | %6.1f | %6.1f | %6.1f | %7d |\n", label, ms.size(),
                           s.median, s.p99, s.max, over_50);
  };
  std::cout << absl::StrFormat(
      "# %s, %s space, %dx%d gray, generation %d, %d per call, %d ms display per stimulus, "
      "%d generations, surrogate {%s}, server {%s}, loopback gRPC; model versions named by "
      "stimuli: %s\n",
      absl::GetFlag(FLAGS_optimizer), absl::GetFlag(FLAGS_image_space), spec.height, spec.width,
      absl::GetFlag(FLAGS_generation_size), absl::GetFlag(FLAGS_per_call),
      absl::GetFlag(FLAGS_display_ms), absl::GetFlag(FLAGS_generations),
      absl::GetFlag(FLAGS_surrogate_params), absl::GetFlag(FLAGS_server_args),
      absl::StrJoin(versions, ","));
  std::cout << "| NextStimuli calls                  |     n | p50 ms | p99 ms | max ms "
               "| > 50 ms |\n"
            << "|------------------------------------|-------|--------|--------|--------"
               "|---------|\n"
            << row("first of a generation (commit)", first_ms)
            << row("within a generation (hand-out)", rest_ms) << row("all", all_ms);
  return 0;
}

}  // namespace
}  // namespace stimloop

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return stimloop::Main();
}
