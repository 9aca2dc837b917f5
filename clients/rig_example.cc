// stimloop-rig-example: the template for connecting a real acquisition rig
// in C++. Copy this file and replace the two functions marked RIG: Show()
// puts an image on the stimulus display and Measure() returns one rate per
// recorded neuron for the presentation that just ended. Everything else is
// the protocol as a rig should speak it:
//
//   create a session -> loop { NextStimuli -> show + measure each stimulus
//                              -> ReportResponses (retried, same request_id) }
//
// As shipped, Show() does nothing and Measure() is a stand-in that needs no
// imaging or model library (it favours images with more detail, i.e. larger
// PNGs, plus noise), so the example links gRPC and the proto only and runs
// against a local server:
//   stimloop-server &   stimloop-rig-example --server=127.0.0.1:50051
#include <algorithm>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "clients/rig_client.h"

ABSL_FLAG(std::string, server, "127.0.0.1:50051", "stimloop-server address");
ABSL_FLAG(int, generations, 10, "Generations to run");
ABSL_FLAG(std::string, session, "", "Resume this session instead of creating one");

namespace {

// RIG: display `png` (8-bit, exactly as it must be shown; decode it with
// your toolkit) for one presentation. Return false if the trial was aborted
// (e.g. a fixation break): the stimulus is then reported as skipped.
bool Show(const std::string& png) {
  (void)png;
  return true;
}

// RIG: one non-negative rate per recorded neuron for the last presentation.
// The stand-in: one neuron whose rate grows with the PNG's size (a rough
// measure of contrast and detail), with Gaussian noise; seeded, so runs repeat.
std::vector<double> Measure(const std::string& png) {
  static std::mt19937_64 noise(7);
  std::normal_distribution<double> trial(0.0, 2.0);
  const double detail = std::min(1.0, static_cast<double>(png.size()) / 4096.0);
  return {std::max(0.0, 5.0 + 20.0 * detail + trial(noise))};
}

int Fail(const absl::Status& status) {
  std::cerr << "stimloop-rig-example: " << status << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  stimloop::RigClientOptions options;
  options.address = absl::GetFlag(FLAGS_server);
  auto client = stimloop::RigClient::Connect(options);  // deadline on connect and every call
  if (!client.ok()) return Fail(client.status());

  std::string session_id = absl::GetFlag(FLAGS_session);
  if (session_id.empty()) {
    stimloop::v1::SessionConfig config;
    config.mutable_image()->set_height(64);
    config.mutable_image()->set_width(64);
    config.mutable_image()->set_channels(1);
    config.set_num_neurons(1);
    config.mutable_optimizer()->set_name("genetic");
    config.mutable_image_space()->set_name("spectral");
    config.set_seed(1);
    (*config.mutable_metadata())["subject"] = "example";
    auto session = (*client)->CreateSession(config);
    if (!session.ok()) return Fail(session.status());
    session_id = session->id();
  }
  std::cout << "session " << session_id << "\n";

  for (int g = 0; g < absl::GetFlag(FLAGS_generations); ++g) {
    auto batch = (*client)->NextGeneration(session_id);
    if (!batch.ok()) return Fail(batch.status());
    std::vector<stimloop::v1::Response> responses;
    for (const auto& stimulus : batch->stimuli()) {
      stimloop::v1::Response response;
      response.set_stimulus_id(stimulus.id());
      if (Show(stimulus.png())) {
        for (double rate : Measure(stimulus.png())) response.add_rates(rate);
      } else {
        response.set_skipped(true);
      }
      responses.push_back(std::move(response));
    }
    // A request_id unique to this report: a retry reuses it and counts once.
    const std::string request_id = absl::StrCat(session_id, "-gen-", batch->generation());
    auto ack = (*client)->ReportResponses(session_id, request_id, responses);
    if (!ack.ok()) return Fail(ack.status());
    auto session = (*client)->GetSession(session_id);
    if (!session.ok()) return Fail(session.status());
    std::cout << "generation " << batch->generation() << ": " << ack->counts().responses()
              << " responses, best measured " << session->best_measured().mean_objective()
              << "\n";
  }
  return 0;
}
