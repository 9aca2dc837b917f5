// stimloop-simulate: an offline closed-loop session against simulated
// neurons, over real gRPC. Starts its own server on a free loopback port
// unless --server names one, plays the rig, prints one line per generation
// and a summary.
//
//   stimloop-simulate                       # embedded defaults, ~1000 responses
//   stimloop-simulate --optimizer=random --image_space=pixel --cell=complex
//   stimloop-simulate --cell=v4 --size=32        # neurons beyond V1 (models/simulated_neuron.h)
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/time/time.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "clients/closed_loop.h"
#include "clients/named_numbers.h"
#include "clients/rig_client.h"
#include "clients/server_process.h"
#include "clients/simulated_rig.h"
#include "models/simulated_neuron.h"

ABSL_FLAG(std::string, server, "",
          "Address of a running stimloop-server; empty: start one on a free loopback port.");
ABSL_FLAG(std::string, data_dir, "stimloop-data", "Data directory of the started server.");
ABSL_FLAG(int64_t, responses, 1000, "Stop after this many responses.");
ABSL_FLAG(std::string, optimizer, "",
          "Empty: the default strategy (portfolio); or random, genetic, cmaes, "
          "gradient_ascent, adaptive_sampling");
ABSL_FLAG(std::string, optimizer_params, "", "Optimizer parameters: name=value,name=value");
ABSL_FLAG(std::string, image_space, "",
          "pixel or spectral; empty: spectral (required with a named --optimizer, which "
          "then defaults to spectral here)");
ABSL_FLAG(std::string, surrogate_params, "",
          "Surrogate parameters for gradient_ascent and adaptive_sampling: name=value,...");
ABSL_FLAG(std::string, cell, "simple",
          "Simulated cell: simple, complex, plaid (V1 Gabor cells), endstopped (V1, "
          "surround-suppressed), color (V1 double-opponent, RGB only), v4 (a normalized "
          "conjunction of oriented subunits) or deepnet (a unit of a seed-drawn conv net)");
ABSL_FLAG(int, neurons, 1,
          "Simulated neurons (more than 1: alternating simple/complex for --cell=simple, complex "
          "or plaid; otherwise all of --cell, each drawn from its own seed)");
ABSL_FLAG(int, target, 0, "The neuron whose rate is maximized");
ABSL_FLAG(int, size, 64, "Image height and width in pixels");
ABSL_FLAG(int, channels, 0, "1 (gray) or 3 (RGB); 0: 3 for --cell=color, else 1");
ABSL_FLAG(int, generation_size, 40, "Stimuli per generation");
ABSL_FLAG(int, repeats, -1,
          "Leading images re-shown per generation, so the best is picked on several "
          "presentations (config.repeats.per_generation); -1: the default strategy's 4, or "
          "0 with a named --optimizer");
ABSL_FLAG(uint64_t, seed, 1, "Session seed (the neuron's receptive field uses it too)");
ABSL_FLAG(double, window, 0.2, "Spike counting window, seconds");
ABSL_FLAG(double, peak_rate, 50, "The neuron's rate at its optimum, spikes/s");
ABSL_FLAG(int, step, 0, "Stimuli per NextStimuli call; 0: whole generations");
ABSL_FLAG(int, validation_candidates, 0,
          "After --responses, a validation block re-showing this many leading images "
          "(ValidationBlock.candidates); 0: no block");
ABSL_FLAG(int, validation_presentations, 20,
          "Presentations of each image in the validation block");
ABSL_FLAG(bool, validation_best_guess, false,
          "Adds the optimizer's best guess to the validation block");
ABSL_FLAG(std::string, subject, "simulated", "metadata.subject of the session");
ABSL_FLAG(absl::Duration, call_timeout, absl::Seconds(300),
          "Deadline of every call; model-based generations take seconds to minutes on a CPU");

namespace {

int Fail(const absl::Status& status) {
  std::cerr << "stimloop-simulate: " << status << "\n";
  return 1;
}

int Run() {
  namespace v1 = stimloop::v1;
  auto kind = stimloop::ParseCellKind(absl::GetFlag(FLAGS_cell));
  if (!kind.ok()) return Fail(kind.status());
  stimloop::SimulatedNeuronSpec spec;
  spec.kind = *kind;
  spec.channels = absl::GetFlag(FLAGS_channels);
  if (spec.channels == 0) spec.channels = *kind == stimloop::CellKind::kColor ? 3 : 1;
  spec.height = spec.width = absl::GetFlag(FLAGS_size);
  spec.seed = absl::GetFlag(FLAGS_seed);
  spec.peak_rate = absl::GetFlag(FLAGS_peak_rate);
  const int neurons = absl::GetFlag(FLAGS_neurons);
  auto population = stimloop::SimulatedPopulation::Create(spec, neurons, neurons > 1);
  if (!population.ok()) return Fail(population.status());
  stimloop::SimulatedRig rig(*std::move(population), absl::GetFlag(FLAGS_window),
                             absl::GetFlag(FLAGS_seed));

  v1::SessionConfig config;
  config.mutable_image()->set_height(spec.height);
  config.mutable_image()->set_width(spec.width);
  config.mutable_image()->set_channels(spec.channels);
  config.set_num_neurons(neurons);
  config.mutable_objective()->mutable_single_neuron()->set_index(absl::GetFlag(FLAGS_target));
  config.mutable_optimizer()->set_name(absl::GetFlag(FLAGS_optimizer));
  if (absl::Status s = stimloop::ParseNamedNumbers(absl::GetFlag(FLAGS_optimizer_params),
                                                   config.mutable_optimizer()->mutable_params());
      !s.ok()) {
    return Fail(s);
  }
  std::string image_space = absl::GetFlag(FLAGS_image_space);
  if (image_space.empty() && !absl::GetFlag(FLAGS_optimizer).empty()) image_space = "spectral";
  if (!image_space.empty()) config.mutable_image_space()->set_name(image_space);
  if (absl::Status s = stimloop::ParseNamedNumbers(absl::GetFlag(FLAGS_surrogate_params),
                                                   config.mutable_surrogate()->mutable_params());
      !s.ok()) {
    return Fail(s);
  }
  config.set_generation_size(absl::GetFlag(FLAGS_generation_size));
  if (absl::GetFlag(FLAGS_repeats) >= 0) {
    config.mutable_repeats()->set_per_generation(absl::GetFlag(FLAGS_repeats));
  }
  config.set_seed(absl::GetFlag(FLAGS_seed));
  (*config.mutable_metadata())["subject"] = absl::GetFlag(FLAGS_subject);
  (*config.mutable_metadata())["site"] = absl::StrCat("simulated ", absl::GetFlag(FLAGS_cell),
                                                      " cell, seed ", spec.seed);

  std::unique_ptr<stimloop::ServerProcess> server;
  stimloop::RigClientOptions options;
  options.address = absl::GetFlag(FLAGS_server);
  options.call_timeout = absl::GetFlag(FLAGS_call_timeout);
  const std::string data_dir = absl::GetFlag(FLAGS_data_dir);
  if (options.address.empty()) {
    std::error_code ignored;
    std::filesystem::create_directories(data_dir, ignored);
    auto started = stimloop::ServerProcess::Start(stimloop::DefaultServerBinary(), data_dir,
                                                  data_dir + "/server.log");
    if (!started.ok()) return Fail(started.status());
    server = *std::move(started);
    options.address = server->address();
    std::cout << "started stimloop-server on " << options.address << " (log: " << data_dir
              << "/server.log)\n";
  }
  auto client = stimloop::RigClient::Connect(options);
  if (!client.ok()) return Fail(client.status());
  auto session = (*client)->CreateSession(config);
  if (!session.ok()) return Fail(session.status());
  std::cout << absl::StrFormat(
      "session %s: %s in %s space, %dx%dx%d, %d neuron(s), simulated %s cell, %d responses\n",
      session->id(), session->config().optimizer().name(), session->config().image_space().name(),
      spec.height,
      spec.width, spec.channels, neurons, absl::GetFlag(FLAGS_cell),
      absl::GetFlag(FLAGS_responses));
  std::cout << " gen  responses  mean rate   max rate   best measured  true fraction   time\n";

  stimloop::ClosedLoopOptions loop;
  loop.responses = absl::GetFlag(FLAGS_responses);
  loop.step = absl::GetFlag(FLAGS_step);
  if (absl::GetFlag(FLAGS_validation_candidates) > 0) {
    v1::ValidationBlock block;
    block.set_candidates(absl::GetFlag(FLAGS_validation_candidates));
    block.set_presentations(absl::GetFlag(FLAGS_validation_presentations));
    block.set_include_best_guess(absl::GetFlag(FLAGS_validation_best_guess));
    loop.validation = block;
  }
  loop.on_generation = [](const stimloop::GenerationSummary& g) {
    std::cout << absl::StrFormat("%4d  %9d  %9.1f  %9.1f  %13.1f  %13.3f  %5.0f ms\n",
                                 g.generation, g.responses, g.mean_rate, g.max_rate,
                                 g.best_measured, g.best_true_fraction,
                                 absl::ToDoubleMilliseconds(g.elapsed));
    std::cout.flush();
  };
  auto result = stimloop::RunClosedLoop(**client, rig, session->id(),
                                        absl::GetFlag(FLAGS_target), loop);
  if (!result.ok()) return Fail(result.status());

  // The run is complete: close the session, so that a restarted server does
  // not resume it (stimloop-inspect reads closed sessions like open ones).
  auto closed = (*client)->CloseSession(session->id());
  if (!closed.ok()) return Fail(closed.status());

  const v1::ScoredStimulus& best = result->session.best_measured();
  const std::string best_path = absl::StrCat(data_dir, "/", session->id(), "-best.png");
  std::ofstream(best_path, std::ios::binary) << best.stimulus().png();
  std::cout << "\nsummary\n"
            << absl::StrFormat("  session              %s (%d generations, %d responses)\n",
                               session->id(), result->session.counts().generations(),
                               result->session.counts().responses())
            << absl::StrFormat("  best measured        %.1f spikes/s (stimulus %s, %d presentation(s))\n",
                               best.mean_objective(), best.stimulus().id(),
                               best.presentations())
            << absl::StrFormat("  true fraction        %.3f of the neuron's optimum (%.1f spikes/s)\n",
                               result->best_true_fraction,
                               rig.population().neuron(absl::GetFlag(FLAGS_target)).optimum_rate())
            << (result->validation_responses > 0
                    ? absl::StrFormat("  before validation    %.3f of the optimum (the block took "
                                      "%d responses)\n",
                                      result->best_true_fraction_before_validation,
                                      result->validation_responses)
                    : std::string())
            << absl::StrFormat("  best image           %s\n", best_path)
            << absl::StrFormat("  session written to   %s (closed)\n", data_dir);
  if (server != nullptr) {
    auto stopped = server->Stop();
    if (!stopped.ok()) return Fail(stopped.status());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Runs an offline closed-loop session with simulated neurons over gRPC.");
  absl::ParseCommandLine(argc, argv);
  return Run();
}
