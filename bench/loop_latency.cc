// Loop latency over loopback gRPC: the time NextStimuli + ReportResponses
// take per generation (rig side, measuring excluded), median and p99, and the
// server's peak resident memory. Starts the real server binary.
//
//   loop_latency --generations=100 --optimizer=genetic --image_space=spectral
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "bench/bench_util.h"
#include "clients/named_numbers.h"
#include "clients/rig_client.h"
#include "clients/server_process.h"
#include "clients/simulated_rig.h"

ABSL_FLAG(int, generations, 100, "Generations to time");
ABSL_FLAG(std::string, optimizer, "genetic", "Optimizer");
ABSL_FLAG(std::string, optimizer_params, "", "name=value,...");
ABSL_FLAG(std::string, image_space, "spectral", "Image space");
ABSL_FLAG(int, size, 64, "Image side (grayscale)");
ABSL_FLAG(int, generation_size, 40, "Stimuli per generation");
ABSL_FLAG(std::string, data_dir, "/tmp/stimloop-bench-latency", "Server data directory");

namespace stimloop {
namespace {

int Fail(const absl::Status& s) {
  std::cerr << "loop_latency: " << s << "\n";
  return 1;
}

int Main() {
  const std::string dir = absl::GetFlag(FLAGS_data_dir);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  auto server = ServerProcess::Start(DefaultServerBinary(), dir + "/data", dir + "/server.log");
  if (!server.ok()) return Fail(server.status());
  RigClientOptions options;
  options.address = (*server)->address();
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
  config.mutable_image_space()->set_name(absl::GetFlag(FLAGS_image_space));
  config.set_generation_size(absl::GetFlag(FLAGS_generation_size));
  config.set_seed(1);
  auto session = (*client)->CreateSession(config);
  if (!session.ok()) return Fail(session.status());

  std::vector<double> next_ms, report_ms, total_ms;
  for (int g = 0; g < absl::GetFlag(FLAGS_generations); ++g) {
    const absl::Time t0 = absl::Now();
    auto batch = (*client)->NextStimuli(session->id(), 0);
    const absl::Time t1 = absl::Now();
    if (!batch.ok()) return Fail(batch.status());
    std::vector<v1::Response> responses;
    for (const auto& stimulus : batch->stimuli()) {
      auto rates = rig.Measure(stimulus.png());
      if (!rates.ok()) return Fail(rates.status());
      v1::Response r;
      r.set_stimulus_id(stimulus.id());
      r.mutable_rates()->Add(rates->begin(), rates->end());
      responses.push_back(std::move(r));
    }
    const absl::Time t2 = absl::Now();
    auto ack = (*client)->ReportResponses(session->id(), absl::StrCat("g", g), responses);
    const absl::Time t3 = absl::Now();
    if (!ack.ok()) return Fail(ack.status());
    next_ms.push_back(absl::ToDoubleMilliseconds(t1 - t0));
    report_ms.push_back(absl::ToDoubleMilliseconds(t3 - t2));
    total_ms.push_back(next_ms.back() + report_ms.back());
  }
  const double peak = PeakResidentMiB((*server)->pid());
  auto stopped = (*server)->Stop();
  if (!stopped.ok()) return Fail(stopped.status());

  const Summary next = Summarize(next_ms), report = Summarize(report_ms),
                total = Summarize(total_ms);
  std::cout << absl::StrFormat(
      "# %s in %s space, %dx%d gray, generation %d, %d generations, loopback gRPC\n",
      absl::GetFlag(FLAGS_optimizer), absl::GetFlag(FLAGS_image_space), spec.height, spec.width,
      absl::GetFlag(FLAGS_generation_size), absl::GetFlag(FLAGS_generations));
  std::cout << "| call                         | p50 ms | p99 ms |\n"
            << "|------------------------------|--------|--------|\n"
            << absl::StrFormat("| NextStimuli                  | %6.2f | %6.2f |\n", next.median,
                               next.p99)
            << absl::StrFormat("| ReportResponses              | %6.2f | %6.2f |\n",
                               report.median, report.p99)
            << absl::StrFormat("| NextStimuli + ReportResponses| %6.2f | %6.2f |\n",
                               total.median, total.p99)
            << absl::StrFormat("# server peak resident memory (VmHWM): %.0f MiB\n", peak);
  return 0;
}

}  // namespace
}  // namespace stimloop

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return stimloop::Main();
}
