// Surrogate guess: how good a surrogate is *near the optimum*, measured on the
// trials a closed loop collected. For each saved session (sample_efficiency
// --dump_trials) and each surrogate variant, fits the surrogate on the
// session's presentations, then rates on the true cell
//   guess       gradient_ascent's BestGuess with this model (its optimum);
//   gen best /  the best and median image of one Ask (a generation of
//   gen median  proposals) with this model, when --ask;
//   late corr   the correlation of the model's prediction with the true rate
//               over the presentations of the session's last
//               --late_generations generations (near-optimal, near-equal
//               images, a re-shown one once per presentation: what the pick
//               and the next proposals hinge on);
//   held-out corr  the fit's own held-out correlation with the noisy rates
//               (what a session reports per model version), on the same
//               split for every variant.
// With --where_lost, a second table says where the guess loses against the
// cell's optimum: the fraction of the optimum lost when only the pixels at
// a distance of 0-1, 1-2 or over 2 envelope sigmas from the receptive
// field's center are taken from the guess and the rest from the optimum
// (simple cells; a complex cell's optima are a family over phase).
// Fractions are of the cell's optimum, median [min, max] over seeds. The same
// trials for every variant, so variants compare on equal data; the closed
// loop's own answer to a variant (it changes the data) is sample_efficiency's.
//
//   surrogate_guess --trials_dir=DIR --cells=simple,complex --seeds=8 --budget=1000 \
//       --variants='default;l1_mask=1;ensemble_size=10'
// A variant is "default" or key=value,... over the surrogate's defaults
// (models/surrogate_config.h); the key fit_seed=N (not a surrogate key) sets
// the fit's seed (default 1), so "fit_seed=2" is the defaults' control.
#include <torch/serialize.h>
#include <torch/torch.h>

#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "bench/bench_util.h"
#include "bench/fixed_model_ascent.h"
#include "bench/saved_trials.h"
#include "clients/named_numbers.h"
#include "models/gabor_fit.h"
#include "models/simulated_neuron.h"
#include "models/torchscript_model.h"
#include "models/trainer.h"
#include "server/torch_threads.h"

ABSL_FLAG(std::string, trials_dir, "", "Folder of sample_efficiency --dump_trials files");
ABSL_FLAG(std::string, cells, "simple,complex", "Simulated cell kinds");
ABSL_FLAG(int, seeds, 8, "Seeds 1..N (session and neuron, as sample_efficiency's)");
ABSL_FLAG(int, budget, 1000, "Which saved budget to fit on");
ABSL_FLAG(std::string, variants, "default", "Surrogate variants separated by ';'");
ABSL_FLAG(std::string, optimizer_params, "", "name=value,... for gradient_ascent");
ABSL_FLAG(bool, ask, true, "Also rate one Ask (a generation of proposals) per fit");
ABSL_FLAG(int, generation_size, 40, "Images per Ask");
ABSL_FLAG(int, late_generations, 5, "Generations counted as late for 'late corr'");
ABSL_FLAG(bool, where_lost, false,
          "Also print where (distance from the receptive field's center) the guess loses");
ABSL_FLAG(int, threads, 2, "Fits run in parallel (each with one LibTorch thread)");

namespace stimloop {
namespace {

struct Job {
  std::string variant, cell;
  uint64_t seed = 0;
  double guess = 0, gen_best = 0, gen_median = 0, late_corr = 0, heldout_corr = 0, fit_s = 0;
  std::vector<double> lost;  // per distance band (kBandEdges), with --where_lost
  std::string error;
};

double Correlation(const torch::Tensor& a, const torch::Tensor& b) {
  const torch::Tensor x = a.to(torch::kDouble).flatten() - a.to(torch::kDouble).mean();
  const torch::Tensor y = b.to(torch::kDouble).flatten() - b.to(torch::kDouble).mean();
  return ((x * y).sum() / (x.norm() * y.norm())).item<double>();
}

// Distance bands from the receptive field's center, in envelope sigmas.
constexpr double kBandEdges[] = {0, 1, 2, 1e9};
constexpr int kBands = 3;

// For each band: 1 - rate / optimum rate of the cell's optimum with the
// band's pixels taken from `image` [C, H, W].
std::vector<double> BandLosses(const SimulatedNeuron& cell, const torch::Tensor& image) {
  const GaborParams& g = cell.gabor();
  const int64_t height = image.size(1), width = image.size(2);
  const torch::Tensor dy =
      torch::arange(height, torch::kFloat).view({height, 1}) + 0.5 - g.center_y;
  const torch::Tensor dx = torch::arange(width, torch::kFloat).view({1, width}) + 0.5 - g.center_x;
  const torch::Tensor r = (dx * dx + dy * dy).sqrt() / g.sigma;  // [H, W]
  std::vector<double> lost;
  for (int b = 0; b < kBands; ++b) {
    const torch::Tensor band = (r >= kBandEdges[b]) & (r < kBandEdges[b + 1]);
    const torch::Tensor mixed = torch::where(band, image, cell.Optimum().to(torch::kFloat));
    lost.push_back(1 - cell.Rates(mixed.unsqueeze(0))[0].item<double>() / cell.optimum_rate());
  }
  return lost;
}

// The variant's surrogate parameters and fit seed.
absl::Status ParseVariant(const std::string& variant, std::map<std::string, double>* params,
                          uint64_t* fit_seed) {
  *fit_seed = 1;
  if (variant == "default") return absl::OkStatus();
  if (absl::Status s = ParseNamedNumbers(variant, params); !s.ok()) return s;
  if (auto it = params->find("fit_seed"); it != params->end()) {
    *fit_seed = static_cast<uint64_t>(it->second);
    params->erase(it);
  }
  return absl::OkStatus();
}

absl::Status RunJob(Job& job) {
  auto trials = LoadSavedTrials(absl::GetFlag(FLAGS_trials_dir), job.cell, job.seed,
                                absl::GetFlag(FLAGS_budget));
  if (!trials.ok()) return trials.status();
  const torch::Tensor images = trials->images.to(torch::kFloat) / 255;
  const torch::Tensor& generations = trials->generations;
  const torch::Tensor& true_fraction = trials->true_fraction;
  auto population = SavedTrialsCell(*trials, job.seed);
  if (!population.ok()) return population.status();
  const SimulatedNeuron& cell = population->neuron(0);

  std::map<std::string, double> params;
  uint64_t fit_seed = 1;
  if (absl::Status s = ParseVariant(job.variant, &params, &fit_seed); !s.ok()) return s;
  auto spec = ParseSurrogateSpec(params);
  if (!spec.ok()) return spec.status();
  const absl::Time start = absl::Now();
  // Empty stimulus ids: repeats are the presentations with identical pixels.
  const TrainingData data{images, trials->rates, {}};
  absl::StatusOr<std::shared_ptr<const ResponseModel>> model;
  FitMetrics metrics;
  if (spec->model_class == SurrogateClass::kParametricGabor) {
    model = FitGaborModel(data, *spec, 1, fit_seed, nullptr, &metrics);
  } else {
    auto front_end = MakeFrontEnd(*spec, {images.size(1), images.size(2), images.size(3)});
    if (!front_end.ok()) return front_end.status();
    model = FitSurrogate(data, *spec, *front_end, 1, fit_seed, nullptr, &metrics);
  }
  if (!model.ok()) return model.status();
  job.fit_s = absl::ToDoubleSeconds(absl::Now() - start);
  job.heldout_corr = metrics.heldout_correlation.at(0);

  // Late images: every presentation of the last generations.
  const int64_t last = generations.max().item<int64_t>();
  const torch::Tensor late = generations > last - absl::GetFlag(FLAGS_late_generations);
  const torch::Tensor late_images = images.index({late});
  {
    torch::NoGradGuard no_grad;
    const torch::Tensor predicted = (*model)->PredictMembers(late_images).mean(0).select(1, 0);
    job.late_corr = Correlation(predicted, true_fraction.index({late}));
  }

  auto optimizer =
      MakeFixedModelAscent(*model, "spectral", "", absl::GetFlag(FLAGS_optimizer_params),
                           ImageShape{images.size(1), images.size(2), images.size(3)}, job.seed);
  if (!optimizer.ok()) return optimizer.status();
  const torch::Tensor guess = (*optimizer)->BestGuess();
  job.guess = cell.Rates(guess.unsqueeze(0))[0].item<double>() / cell.optimum_rate();
  // Simple cells only: a complex cell's optimum is one of a family (any
  // phase), so mixing bands of two of them is not a loss of either.
  if (absl::GetFlag(FLAGS_where_lost) && trials->kind == CellKind::kSimple) {
    job.lost = BandLosses(cell, guess);
  }
  if (absl::GetFlag(FLAGS_ask)) {
    auto candidates = (*optimizer)->Ask(absl::GetFlag(FLAGS_generation_size), 1);
    if (!candidates.ok()) return candidates.status();
    const torch::Tensor fractions = TrueFractions(cell, *candidates);
    job.gen_best = fractions.max().item<double>();
    job.gen_median = fractions.median().item<double>();
  }
  return absl::OkStatus();
}

int Main() {
  if (absl::GetFlag(FLAGS_trials_dir).empty()) {
    std::cerr << "--trials_dir is required (a sample_efficiency --dump_trials folder)\n";
    return 2;
  }
  SetTorchThreads(1);
  const int seeds = absl::GetFlag(FLAGS_seeds);
  std::vector<Job> jobs;
  for (absl::string_view variant : absl::StrSplit(absl::GetFlag(FLAGS_variants), ';'))
    for (absl::string_view cell : absl::StrSplit(absl::GetFlag(FLAGS_cells), ','))
      for (int seed = 1; seed <= seeds; ++seed) {
        Job job;
        job.variant = std::string(variant);
        job.cell = std::string(cell);
        job.seed = static_cast<uint64_t>(seed);
        jobs.push_back(job);
      }
  const absl::Time start = absl::Now();
  RunJobs(jobs, absl::GetFlag(FLAGS_threads), RunJob);

  std::cout << absl::StrFormat(
      "# surrogates refit on the trials of %s at %d responses; true rate / optimum,\n"
      "# median [min, max] over %d seeds; late corr over the last %d generations\n",
      absl::GetFlag(FLAGS_trials_dir), absl::GetFlag(FLAGS_budget), seeds,
      absl::GetFlag(FLAGS_late_generations));
  std::cout << "| variant | cell | guess | gen best | gen median | late corr | held-out corr | "
               "fit s |\n|---|---|---|---|---|---|---|---|\n";
  int failed = 0;
  for (size_t first = 0; first < jobs.size(); first += seeds) {
    std::vector<double> guess, best, median, corr, heldout, secs;
    for (int s = 0; s < seeds; ++s) {
      const Job& job = jobs[first + s];
      if (!job.error.empty()) {
        std::cerr << job.variant << " " << job.cell << " seed " << job.seed << ": " << job.error
                  << "\n";
        ++failed;
        continue;
      }
      guess.push_back(job.guess);
      if (absl::GetFlag(FLAGS_ask)) {
        best.push_back(job.gen_best);
        median.push_back(job.gen_median);
      }
      corr.push_back(job.late_corr);
      heldout.push_back(job.heldout_corr);
      secs.push_back(job.fit_s);
    }
    if (guess.empty()) continue;
    std::cout << absl::StrFormat("| %s | %s | %s | %s | %s | %s | %s | %.1f |\n",
                                 jobs[first].variant, jobs[first].cell, MedianRange(guess),
                                 best.empty() ? "-" : MedianRange(best),
                                 median.empty() ? "-" : MedianRange(median), MedianRange(corr),
                                 MedianRange(heldout), Summarize(secs).median);
  }
  if (absl::GetFlag(FLAGS_where_lost)) {
    std::cout
        << "\n# fraction of the optimum lost with the guess's pixels at 0-1, 1-2, over 2 "
           "envelope sigmas from the center (the rest the optimum's)\n"
           "| variant | cell | 0-1 sigma | 1-2 sigma | over 2 sigma |\n|---|---|---|---|---|\n";
    for (size_t first = 0; first < jobs.size(); first += seeds) {
      std::vector<std::vector<double>> bands(kBands);
      for (int s = 0; s < seeds; ++s) {
        const Job& job = jobs[first + s];
        if (!job.error.empty() || job.lost.empty()) continue;
        for (int b = 0; b < kBands; ++b) bands[b].push_back(job.lost[b]);
      }
      if (bands[0].empty()) continue;
      std::cout << absl::StrFormat("| %s | %s | %s | %s | %s |\n", jobs[first].variant,
                                   jobs[first].cell, MedianRange(bands[0]),
                                   MedianRange(bands[1]), MedianRange(bands[2]));
    }
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
