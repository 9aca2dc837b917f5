// Ideal observer: how close to the optimum could *any* model get from the
// trials a closed loop collected? Fits the simulated cell's own model class
// (a Gabor linear-nonlinear cell, or a Gabor energy model; the parameters
// of models/simulated_neuron.h: center, orientation, wavelength, phase,
// envelope, gain and the simple cell's exponent) by Poisson maximum
// likelihood to the saved presentations (sample_efficiency --dump_trials),
// from many random starts drawn from the cells' prior, and rates the fitted
// model's exact optimum on the true cell. No surrogate can know its
// neuron's model class, so this bounds what the surrogate's optimum
// ("guess" in surrogate_guess and sample_efficiency) can reach on the same
// data: where the bound itself is short of a target, the trials, not the
// surrogate, are what is missing. With --blind the fitted model is not told
// which kind the cell is: one Gabor pair with a power-law linear subunit and
// an energy subunit, each with its own gain (a classic V1 model that holds
// both kinds), and its optimum is the best of the sign patterns of
// cos(t) w1 + sin(t) w2 on a fine grid of t under the fitted model.
// A plaid cell (two Gabors) has no own-class model here: --blind only.
//
//   ideal_observer --trials_dir=DIR --cells=simple,complex --seeds=8 \
//       --budgets=200,500,1000
#include <torch/torch.h>

#include <cmath>
#include <iostream>
#include <limits>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "bench/bench_util.h"
#include "bench/saved_trials.h"
#include "models/gabor_model.h"
#include "models/simulated_neuron.h"
#include "server/torch_threads.h"

ABSL_FLAG(std::string, trials_dir, "", "Folder of sample_efficiency --dump_trials files");
ABSL_FLAG(std::string, cells, "simple,complex", "Simulated cell kinds");
ABSL_FLAG(int, seeds, 8, "Seeds 1..N (session and neuron, as sample_efficiency's)");
ABSL_FLAG(std::string, budgets, "200,500,1000", "Saved budgets to fit on");
ABSL_FLAG(int, starts, 96, "Random starts per fit, drawn from the cells' prior");
ABSL_FLAG(int, steps, 400, "Adam steps per start");
ABSL_FLAG(bool, blind, false,
          "Fit one model holding both kinds (linear and energy subunits) to every cell");
ABSL_FLAG(double, window_s, 0.2, "Counting window of the saved rates (sample_efficiency's)");
ABSL_FLAG(int, threads, 2, "Fits run in parallel (each with one LibTorch thread)");

namespace stimloop {
namespace {

constexpr double kPi = 3.14159265358979323846;

struct Job {
  std::string cell;
  uint64_t seed = 0;
  int64_t budget = 0;
  double fraction = 0;           // true rate at the fitted optimum / the cell's optimum
  double center_error = 0;       // pixels
  double orientation_error = 0;  // degrees, modulo 180
  double fit_s = 0;
  std::string error;
};

// K fitted cells are a GaborParameters (models/gabor_model.h) of [K]
// tensors without a spontaneous rate (log_baseline undefined); which gains
// are fitted depends on the model class (FitClass).

// Cell i of `g` alone (K = 1), detached.
GaborParameters Row(const GaborParameters& g, int64_t i) {
  std::vector<torch::Tensor> row;
  for (const torch::Tensor& t : g.all())
    row.push_back(t.defined() ? t.detach().narrow(0, i, 1) : t);
  return GaborParameters::FromList(row);
}

// Starts drawn from the prior of models/simulated_neuron.cc (center in the
// central half, sigma 0.06-0.12 of the image, wavelength 2-3 sigmas).
GaborParameters DrawStarts(int64_t k, int64_t height, int64_t width, at::Generator& gen) {
  auto uniform = [&](double lo, double hi) { return torch::empty({k}).uniform_(lo, hi, gen); };
  const double side = static_cast<double>(std::min(height, width));
  GaborParameters g;
  g.cx = uniform(0.25, 0.75);
  g.cy = uniform(0.25, 0.75);
  g.theta = uniform(0, kPi);
  g.log_sigma = uniform(std::log(0.06 * side), std::log(0.12 * side));
  g.log_cycles = uniform(std::log(2.0), std::log(3.0));
  g.phase = uniform(0, 2 * kPi);
  return g;
}

// Which model is fitted: a simple cell's form, a complex cell's, or both
// subunits with free gains (--blind).
enum class FitClass { kSimple, kComplex, kBoth };

// Predicted rates [N, K] on images [N, H*W] - 0.5: a power-law linear
// subunit (simple), an energy subunit (complex) or their sum.
torch::Tensor Rates(FitClass fit, const GaborParameters& g, const torch::Tensor& centered,
                    int64_t height, int64_t width) {
  const std::vector<torch::Tensor> drives =
      centered.matmul(GaborWeightPair(g, height, width).t()).chunk(2, 1);
  const torch::Tensor& d1 = drives[0];
  torch::Tensor rates = torch::zeros_like(d1);
  if (fit != FitClass::kComplex) {
    rates = rates + g.log_linear.exp() * d1.clamp_min(1e-6).pow(g.log_exponent.exp());
  }
  if (fit != FitClass::kSimple) {
    const torch::Tensor& d2 = drives[1];
    rates = rates + g.log_energy.exp() * (d1 * d1 + d2 * d2);
  }
  return rates;
}

// The fitted cell's optimum over the [0, 1] box (one of the batch): the
// best, under the fitted model, of the sign patterns of cos(t) w1 +
// sin(t) w2 over a fine grid of t. Exact for a simple cell's form (t = 0
// is sign(w1)) and, up to the grid, for a complex cell's.
torch::Tensor FittedOptimum(FitClass fit, const GaborParameters& g, int64_t height, int64_t width) {
  torch::NoGradGuard no_grad;
  const std::vector<torch::Tensor> pair = GaborWeightPair(g, height, width).chunk(2, 0);
  const torch::Tensor w1 = pair[0][0];
  const torch::Tensor w2 = pair[1][0];
  const torch::Tensor t = torch::arange(720, torch::kFloat) * (kPi / 720);
  const torch::Tensor u = t.cos().unsqueeze(1) * w1 + t.sin().unsqueeze(1) * w2;  // [T, n]
  const torch::Tensor patterns = (u > 0).to(torch::kFloat);
  const torch::Tensor rates = Rates(fit, g, patterns - 0.5, height, width).select(1, 0);
  return patterns[rates.argmax().item<int64_t>()];
}

absl::Status RunJob(Job& job) {
  auto kind = ParseCellKind(job.cell);
  if (!kind.ok()) return kind.status();
  if (!IsGaborCellKind(*kind)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--cells: ideal_observer fits Gabor cells (simple, complex; plaid with --blind), and a ",
        job.cell, " cell has no Gabor model"));
  }
  auto trials = LoadSavedTrials(absl::GetFlag(FLAGS_trials_dir), job.cell, job.seed, job.budget);
  if (!trials.ok()) return trials.status();
  auto population = SavedTrialsCell(*trials, job.seed);
  if (!population.ok()) return population.status();
  const SimulatedNeuron& cell = population->neuron(0);
  if (trials->kind == CellKind::kPlaid && !absl::GetFlag(FLAGS_blind)) {
    return absl::InvalidArgumentError(
        "a plaid cell (two Gabors) has no own-class model here; use --blind");
  }
  const FitClass fit = absl::GetFlag(FLAGS_blind)          ? FitClass::kBoth
                       : trials->kind == CellKind::kSimple ? FitClass::kSimple
                                                           : FitClass::kComplex;
  const int64_t height = trials->images.size(2), width = trials->images.size(3);
  const torch::Tensor centered = trials->images.to(torch::kFloat).flatten(1) / 255 - 0.5;  // [N, n]
  const double window = absl::GetFlag(FLAGS_window_s);
  const torch::Tensor counts =
      (trials->rates.select(1, 0) * window).round().unsqueeze(1);  // [N, 1]

  const absl::Time start = absl::Now();
  const int64_t k = absl::GetFlag(FLAGS_starts);
  at::Generator gen = at::detail::createCPUGenerator(job.seed * 7919 + job.budget);
  GaborParameters g = DrawStarts(k, height, width, gen);
  // Gains start where the predicted mean count matches the measured one
  // (each subunit alone, halved when both are fitted).
  g.log_linear = torch::zeros({k});
  g.log_exponent = torch::full({k}, std::log(2.0));
  g.log_energy = torch::zeros({k});
  {
    torch::NoGradGuard no_grad;
    const double share = fit == FitClass::kBoth ? 0.5 : 1.0;
    auto matching = [&](FitClass one) {
      const torch::Tensor unit = Rates(one, g, centered, height, width) * window;
      return (share * counts.mean() / unit.mean(0).clamp_min(1e-9)).log();
    };
    g.log_linear = matching(FitClass::kSimple);   // reads only log_linear and log_exponent
    g.log_energy = matching(FitClass::kComplex);  // reads only log_energy
  }
  std::vector<torch::Tensor> params = {g.cx, g.cy, g.theta, g.log_sigma, g.log_cycles, g.phase};
  if (fit != FitClass::kComplex) {
    params.push_back(g.log_linear);
    params.push_back(g.log_exponent);
  }
  if (fit != FitClass::kSimple) params.push_back(g.log_energy);
  for (torch::Tensor& p : params) p.requires_grad_(true);
  torch::optim::Adam adam(params, torch::optim::AdamOptions(0.02));
  torch::Tensor loss_per_start;
  const int steps = absl::GetFlag(FLAGS_steps);
  for (int step = 0; step <= steps; ++step) {
    adam.zero_grad();
    const torch::Tensor mu = Rates(fit, g, centered, height, width) * window + 1e-6;
    loss_per_start = (mu - counts * mu.log()).mean(0);  // Poisson NLL per start [K]
    if (step == steps) break;
    loss_per_start.sum().backward();
    adam.step();
  }
  job.fit_s = absl::ToDoubleSeconds(absl::Now() - start);

  torch::NoGradGuard no_grad;
  // A start whose gain overflowed has a NaN loss; it never wins.
  const torch::Tensor finite_loss =
      torch::where(loss_per_start.isfinite(), loss_per_start,
                   torch::full_like(loss_per_start, std::numeric_limits<float>::infinity()));
  const int64_t best = finite_loss.argmin().item<int64_t>();
  const GaborParameters fitted = Row(g, best);
  const torch::Tensor optimum =
      FittedOptimum(fit, fitted, height, width).view({1, 1, height, width});
  job.fraction = cell.Rates(optimum)[0].item<double>() / cell.optimum_rate();
  const GaborParams& truth = cell.gabor();
  job.center_error = std::hypot(fitted.cx.item<double>() * width - truth.center_x,
                                fitted.cy.item<double>() * height - truth.center_y);
  double dtheta = std::fmod(std::abs(fitted.theta.item<double>() - truth.orientation), kPi);
  job.orientation_error = std::min(dtheta, kPi - dtheta) * 180 / kPi;
  return absl::OkStatus();
}

int Main() {
  if (absl::GetFlag(FLAGS_trials_dir).empty()) {
    std::cerr << "--trials_dir is required (a sample_efficiency --dump_trials folder)\n";
    return 2;
  }
  SetTorchThreads(1);
  std::vector<int64_t> budgets;
  for (absl::string_view b : absl::StrSplit(absl::GetFlag(FLAGS_budgets), ',')) {
    int64_t v = 0;
    if (!absl::SimpleAtoi(b, &v) || v <= 0) {
      std::cerr << "--budgets: '" << b << "' is not a positive integer\n";
      return 2;
    }
    budgets.push_back(v);
  }
  const int seeds = absl::GetFlag(FLAGS_seeds);
  std::vector<Job> jobs;
  for (absl::string_view cell : absl::StrSplit(absl::GetFlag(FLAGS_cells), ','))
    for (int64_t budget : budgets)
      for (int seed = 1; seed <= seeds; ++seed) {
        Job job;
        job.cell = std::string(cell);
        job.seed = static_cast<uint64_t>(seed);
        job.budget = budget;
        jobs.push_back(job);
      }
  const absl::Time start = absl::Now();
  RunJobs(jobs, absl::GetFlag(FLAGS_threads), RunJob);

  std::cout << absl::StrFormat(
      "# %s fit to the trials of %s (%d starts x %d Adam steps);\n"
      "# true rate at the fitted optimum / optimum, median [min, max] over %d seeds\n",
      absl::GetFlag(FLAGS_blind) ? "one Gabor model with linear and energy subunits"
                                 : "the cell's own model class",
      absl::GetFlag(FLAGS_trials_dir), absl::GetFlag(FLAGS_starts), absl::GetFlag(FLAGS_steps),
      seeds);
  std::cout << "| cell | responses | fraction at the fitted optimum | center error px | "
               "orientation error deg | fit s |\n|---|---|---|---|---|---|\n";
  int failed = 0;
  for (size_t first = 0; first < jobs.size(); first += seeds) {
    std::vector<double> fraction, center, orientation, secs;
    for (int s = 0; s < seeds; ++s) {
      const Job& job = jobs[first + s];
      if (!job.error.empty()) {
        std::cerr << job.cell << " seed " << job.seed << " budget " << job.budget << ": "
                  << job.error << "\n";
        ++failed;
        continue;
      }
      fraction.push_back(job.fraction);
      center.push_back(job.center_error);
      orientation.push_back(job.orientation_error);
      secs.push_back(job.fit_s);
    }
    if (fraction.empty()) continue;
    std::cout << absl::StrFormat("| %s | %d | %s | %s | %s | %.1f |\n", jobs[first].cell,
                                 jobs[first].budget, MedianRange(fraction), MedianRange(center, 2),
                                 MedianRange(orientation, 1), Summarize(secs).median);
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
