// Ascent ceiling: how close gradient_ascent gets to a simulated cell's true
// optimum when its model *is* the cell (noiseless, exact gradients). This
// separates what the optimizer and the image space can reach from what the
// surrogate gets wrong: a closed loop cannot beat these figures.
//
// For each cell kind and seed, one Ask of a generation with the cell as the
// only ensemble member; reports the true rate / optimum of the generation's
// best and median image (shown, 8-bit), median [min, max] over seeds.
//
//   ascent_ceiling --spaces=spectral,pixel --cells=simple,complex --seeds=8
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "bench/bench_util.h"
#include "bench/fixed_model_ascent.h"
#include "models/simulated_neuron.h"
#include "optimizers/optimizer.h"
#include "server/torch_threads.h"

ABSL_FLAG(std::string, spaces, "spectral,pixel", "Image spaces");
ABSL_FLAG(std::string, cells, "simple,complex",
          "Simulated cell kinds: simple, complex, plaid, v4, deepnet, endstopped, color");
ABSL_FLAG(int, seeds, 8, "Seeds (neurons) per configuration");
ABSL_FLAG(int, size, 64, "Image side, pixels");
ABSL_FLAG(int, channels, 0, "1 (gray) or 3 (RGB); 0: 3 for a color cell, else 1");
ABSL_FLAG(int, generation_size, 40, "Images per Ask");
ABSL_FLAG(std::string, optimizer_params, "", "name=value,... for gradient_ascent");
ABSL_FLAG(std::string, image_space_params, "", "name=value,... for every image space");
ABSL_FLAG(int, threads, 2, "Configurations run in parallel");

namespace stimloop {
namespace {

// The cell itself as a one-member ensemble.
class NeuronModel : public ResponseModel {
 public:
  explicit NeuronModel(std::shared_ptr<const SimulatedNeuron> neuron)
      : neuron_(std::move(neuron)) {}
  int64_t version() const override { return 1; }
  int64_t num_members() const override { return 1; }
  torch::Tensor PredictMembers(const torch::Tensor& images) const override {
    return neuron_->Rates(images).view({1, -1, 1});
  }

 private:
  std::shared_ptr<const SimulatedNeuron> neuron_;
};

struct Job {
  std::string space, cell;
  uint64_t seed;
  double best = 0, median = 0;
  std::string error;
};

absl::Status RunJob(Job& job) {
  auto kind = ParseCellKind(job.cell);
  if (!kind.ok()) return kind.status();
  SimulatedNeuronSpec spec;
  spec.kind = *kind;
  spec.height = spec.width = absl::GetFlag(FLAGS_size);
  spec.channels = absl::GetFlag(FLAGS_channels);
  if (spec.channels == 0) spec.channels = *kind == CellKind::kColor ? 3 : 1;
  spec.seed = job.seed;
  // The same neuron as sample_efficiency's: population neuron 0.
  auto population = SimulatedPopulation::Create(spec, 1, false);
  if (!population.ok()) return population.status();
  auto shared_population = std::make_shared<SimulatedPopulation>(*std::move(population));
  std::shared_ptr<const SimulatedNeuron> cell(shared_population, &shared_population->neuron(0));

  auto optimizer = MakeFixedModelAscent(
      std::make_shared<NeuronModel>(cell), job.space, absl::GetFlag(FLAGS_image_space_params),
      absl::GetFlag(FLAGS_optimizer_params), ImageShape{spec.channels, spec.height, spec.width},
      job.seed);
  if (!optimizer.ok()) return optimizer.status();
  auto candidates = (*optimizer)->Ask(absl::GetFlag(FLAGS_generation_size), 1);
  if (!candidates.ok()) return candidates.status();
  const torch::Tensor fractions = TrueFractions(*cell, *candidates);
  job.best = fractions.max().item<double>();
  job.median = fractions.median().item<double>();
  return absl::OkStatus();
}

int Main() {
  SetTorchThreads(1);
  std::vector<Job> jobs;
  const int seeds = absl::GetFlag(FLAGS_seeds);
  for (absl::string_view cell : absl::StrSplit(absl::GetFlag(FLAGS_cells), ','))
    for (absl::string_view space : absl::StrSplit(absl::GetFlag(FLAGS_spaces), ','))
      for (int seed = 1; seed <= seeds; ++seed)
        jobs.push_back({std::string(space), std::string(cell), static_cast<uint64_t>(seed)});
  const absl::Time start = absl::Now();
  RunJobs(jobs, absl::GetFlag(FLAGS_threads), RunJob);

  std::cout << absl::StrFormat(
      "# gradient_ascent with the true cell as its model: true rate / optimum of one Ask\n"
      "# %dx%d gray, generation %d, optimizer params '%s', %d seeds; median [min, max]\n",
      absl::GetFlag(FLAGS_size), absl::GetFlag(FLAGS_size), absl::GetFlag(FLAGS_generation_size),
      absl::GetFlag(FLAGS_optimizer_params), seeds);
  std::cout << "| cell | space | best of the generation | median of the generation |\n"
               "|---|---|---|---|\n";
  int failed = 0;
  for (size_t first = 0; first < jobs.size(); first += seeds) {
    std::vector<double> best, median;
    for (int s = 0; s < seeds; ++s) {
      const Job& job = jobs[first + s];
      if (!job.error.empty()) {
        std::cerr << job.cell << "/" << job.space << " seed " << job.seed << ": " << job.error
                  << "\n";
        ++failed;
        continue;
      }
      best.push_back(job.best);
      median.push_back(job.median);
    }
    if (best.empty()) continue;
    std::cout << absl::StrFormat("| %s | %s | %s | %s |\n", jobs[first].cell, jobs[first].space,
                                 MedianRange(best), MedianRange(median));
  }
  std::cout << absl::StrFormat("# %.1f s wall\n", absl::ToDoubleSeconds(absl::Now() - start));
  return failed == 0 ? 0 : 1;
}

}  // namespace
}  // namespace stimloop

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return stimloop::Main();
}
