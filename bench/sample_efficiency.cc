// Sample efficiency: the fraction of the true optimum reached by the
// session's best measured stimulus (what a scientist would be shown, not an
// oracle pick) after a number of responses, median and spread over seeds.
// `--validation_candidates=K` adds a column: after the last budget the
// session's validation block (K leading images, and with
// --validation_best_guess the optimizer's guess, each shown
// --validation_presentations more times; the rest of the generation under
// way is skipped first), then the same picks.
// `--picks` adds two diagnostic readings of the same runs: "shown", the
// truly best stimulus shown so far (an oracle pick: what a perfect
// measurement would have found), and "guess", the optimizer's best guess
// (Session.optimizer_best_png, never shown to the neuron).
//
// Sessions run in-process through the same Session code the server uses
// (validation, 8-bit quantization, PNG round trip), with the simulated rig
// measuring Poisson responses. No network: it measures the optimizers.
// Model-based sessions propose each generation from the model version the
// refit lag assigns to it (models/refit_scheduler.h), so runs replay exactly
// whatever the timing; --display_ms makes the rig take real time per
// stimulus, and a row "minutes" gives the wall time each budget took
// (median over seeds): the time the rig waited for late fits shows there.
//
//   sample_efficiency --optimizers=default,genetic --spaces=pixel,spectral \
//       --cells=simple,complex --seeds=8 --budgets=200,500,1000,3000
//
// "default" names no optimizer: the session runs the server's default
// strategy (server/session_config.h) in each image space given.
#include <algorithm>
#include <cmath>
#include <limits>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <torch/serialize.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "bench/bench_util.h"
#include "clients/closed_loop.h"
#include "clients/named_numbers.h"
#include "clients/simulated_rig.h"
#include "optimizers/image_io.h"
#include "server/session.h"
#include "server/session_journal.h"
#include "server/session_manager.h"
#include "server/torch_threads.h"

// The name --optimizers gives to the server's default strategy.
constexpr char kDefaultStrategyName[] = "default";

ABSL_FLAG(std::string, optimizers, "random,genetic",
          "Optimizers to compare; \"default\" names none: the server's default strategy");
ABSL_FLAG(std::string, spaces, "pixel,spectral", "Image spaces");
ABSL_FLAG(std::string, cells, "simple,complex",
          "Simulated cell kinds: simple, complex, plaid, v4, deepnet, endstopped, color");
ABSL_FLAG(int, seeds, 8, "Seeds per configuration (session and neuron)");
ABSL_FLAG(int, first_seed, 1,
          "The seeds are first_seed, first_seed + 1, ...: another first_seed draws other "
          "neurons and sessions, an independent check of a difference seen on the default ones");
ABSL_FLAG(std::string, budgets, "200,500,1000,3000", "Responses at which to measure");
ABSL_FLAG(int, size, 64, "Image side, pixels");
ABSL_FLAG(int, channels, 0, "1 (gray) or 3 (RGB); 0: 3 for a color cell, else 1");
ABSL_FLAG(double, window, 0.2, "Spike counting window, seconds");
ABSL_FLAG(double, peak_rate, 50, "Rate at the optimum, spikes/s");
ABSL_FLAG(int, generation_size, 40, "Stimuli per generation");
ABSL_FLAG(std::string, optimizer_params, "", "name=value,... for every optimizer");
ABSL_FLAG(std::string, image_space_params, "", "name=value,... for every image space");
ABSL_FLAG(std::string, surrogate_params, "",
          "name=value,... for the surrogate of the model-based optimizers and the default");
ABSL_FLAG(int, repeats, 0, "Session repeats per generation (RepeatsConfig.per_generation)");
ABSL_FLAG(int, max_presentations, 0, "RepeatsConfig.max_presentations (0: the default, 4)");
ABSL_FLAG(int, threads, 2, "Configurations run in parallel");
ABSL_FLAG(int, display_ms, 0,
          "Time the rig spends per stimulus before reporting a batch (0: answers at once)");
ABSL_FLAG(std::string, picks, "measured",
          "Which stimulus each figure rates: measured (the best measured), shown (the "
          "truly best shown: an oracle), guess (the optimizer's best guess)");
ABSL_FLAG(std::string, dump_pooled, "",
          "CSV file: at every budget, the 1000 best-measured images of every session with "
          "their presentations, measured objectives and true rate (to study picks offline)");
ABSL_FLAG(std::string, dump_trials, "",
          "Folder: at every budget, every presentation of every session so far saved as "
          "<cell>_<seed>_<budget>.pt (bench/surrogate_guess refits surrogates on them)");
ABSL_FLAG(int, validation_candidates, 0,
          "After the last budget, a validation block (ValidationBlock) re-showing this many "
          "leading images, read as one more column; 0: none");
ABSL_FLAG(int, validation_presentations, 20, "Presentations of each validated image");
ABSL_FLAG(bool, validation_best_guess, false,
          "Adds the optimizer's best guess to the validation block");

namespace stimloop {
namespace {

struct Job {
  std::string optimizer, space, cell;
  uint64_t seed;
  // fractions[p][b]: pick p (order of --picks) at budget b; NaN when the
  // pick does not exist (no best guess).
  std::vector<std::vector<double>> fractions;
  std::vector<double> minutes;  // [b]: wall time from session creation to budget b
  std::string dump;             // --dump_pooled rows
  std::string error;
  int64_t validation_responses = 0;  // the validation block's, when there is one
};

enum class Pick { kMeasured, kShown, kGuess };

absl::StatusOr<Pick> ParsePick(absl::string_view name) {
  if (name == "measured") return Pick::kMeasured;
  if (name == "shown") return Pick::kShown;
  if (name == "guess") return Pick::kGuess;
  return absl::InvalidArgumentError(
      absl::StrCat("--picks: '", name, "' is not measured, shown or guess"));
}

// Appends a table cell "median [min, max]" of `values` ("-" when empty).
void AppendSummaryCell(const std::vector<double>& values, int decimals, std::string* row) {
  absl::StrAppendFormat(row, " %19s |", values.empty() ? "-" : MedianRange(values, decimals));
}

// Appends one CSV row per pooled image (best measured first) to job.dump:
// cell, seed, budget, rank, generation, model_version, predicted objective,
// presentations, mean measured objective, true fraction of the optimum, then
// every presentation's objective separated by ';'.
absl::Status AppendPooledRows(const Session& session, const SimulatedRig& rig, double optimum,
                              int64_t budget, Job& job) {
  v1::ListStimuliResponse best;
  if (absl::Status s = session.BestStimuli(1000, /*include_png=*/true, &best); !s.ok()) return s;
  for (int i = 0; i < best.stimuli_size(); ++i) {
    const v1::StimulusRecord& r = best.stimuli(i);
    auto truth = rig.TrueRates(r.stimulus().png());
    if (!truth.ok()) return truth.status();
    std::vector<std::string> each;
    for (const v1::Presentation& p : r.presentation()) each.push_back(absl::StrCat(p.rates(0)));
    absl::StrAppendFormat(&job.dump, "%s,%d,%d,%d,%d,%d,%.6g,%d,%.6g,%.6g,%s\n", job.cell, job.seed,
                          budget, i, r.stimulus().generation(), r.stimulus().model_version(),
                          r.stimulus().predicted_objective(), r.presentations(),
                          r.mean_objective(), (*truth)[0] / optimum, absl::StrJoin(each, ";"));
  }
  return absl::OkStatus();
}

// Saves every presentation so far to <dir>/<cell>_<seed>_<budget>.pt, in
// the order of the session's stimuli, as torch::save of four tensors:
// images uint8 [N, C, H, W], measured rates float [N, 1], generation int64
// [N] and the true rate as a fraction of the optimum, float [N]. Repeated
// stimuli appear once per presentation (the trials a refit sees). Read
// back by bench/saved_trials.h.
absl::Status SaveTrials(const Session& session, const SimulatedRig& rig, double optimum,
                        int64_t budget, const Job& job) {
  v1::ListStimuliResponse all;
  if (absl::Status s = session.ListStimuli(0, 0, /*include_png=*/true, &all); !s.ok()) return s;
  std::vector<torch::Tensor> images;
  std::vector<float> rates, fractions;
  std::vector<int64_t> generations;
  for (const v1::StimulusRecord& r : all.stimuli()) {
    if (r.presentation_size() == 0) continue;
    auto image = DecodeImage(r.stimulus().png());
    if (!image.ok()) return image.status();
    auto truth = rig.TrueRates(r.stimulus().png());
    if (!truth.ok()) return truth.status();
    for (const v1::Presentation& p : r.presentation()) {
      images.push_back(*image);
      rates.push_back(static_cast<float>(p.rates(0)));
      generations.push_back(r.stimulus().generation());
      fractions.push_back(static_cast<float>((*truth)[0] / optimum));
    }
  }
  const int64_t n = static_cast<int64_t>(rates.size());
  std::vector<torch::Tensor> saved = {
      torch::stack(images), torch::tensor(rates).view({n, 1}), torch::tensor(generations),
      torch::tensor(fractions)};
  const std::string path = absl::StrCat(absl::GetFlag(FLAGS_dump_trials), "/", job.cell, "_",
                                        job.seed, "_", budget, ".pt");
  try {
    torch::save(saved, path);
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat("--dump_trials: cannot write ", path, ": ", e.what_without_backtrace()));
  }
  return absl::OkStatus();
}

absl::Status RunJob(Job& job, const std::vector<int64_t>& budgets,
                    const std::vector<Pick>& picks) {
  auto kind = ParseCellKind(job.cell);
  if (!kind.ok()) return kind.status();
  SimulatedNeuronSpec spec;
  spec.kind = *kind;
  spec.height = spec.width = absl::GetFlag(FLAGS_size);
  spec.channels = absl::GetFlag(FLAGS_channels);
  if (spec.channels == 0) spec.channels = *kind == CellKind::kColor ? 3 : 1;
  spec.seed = job.seed;
  spec.peak_rate = absl::GetFlag(FLAGS_peak_rate);
  auto population = SimulatedPopulation::Create(spec, 1, false);
  if (!population.ok()) return population.status();
  SimulatedRig rig(*std::move(population), absl::GetFlag(FLAGS_window), job.seed);

  v1::SessionConfig config;
  config.mutable_image()->set_height(spec.height);
  config.mutable_image()->set_width(spec.width);
  config.mutable_image()->set_channels(spec.channels);
  config.set_num_neurons(1);
  // "default": no optimizer named, so the server's default strategy (its
  // optimizer and surrogate) runs in the image space given.
  const bool default_strategy = job.optimizer == kDefaultStrategyName;
  if (!default_strategy) config.mutable_optimizer()->set_name(job.optimizer);
  if (absl::Status s = ParseNamedNumbers(absl::GetFlag(FLAGS_optimizer_params),
                                         config.mutable_optimizer()->mutable_params());
      !s.ok()) {
    return s;
  }
  config.mutable_image_space()->set_name(job.space);
  if (absl::Status s = ParseNamedNumbers(absl::GetFlag(FLAGS_image_space_params),
                                         config.mutable_image_space()->mutable_params());
      !s.ok()) {
    return s;
  }
  // Only the model-based optimizers take a surrogate (the others refuse one).
  if (default_strategy || UsesSurrogate(job.optimizer)) {
    if (absl::Status s = ParseNamedNumbers(absl::GetFlag(FLAGS_surrogate_params),
                                           config.mutable_surrogate()->mutable_params());
        !s.ok()) {
      return s;
    }
  }
  config.set_generation_size(absl::GetFlag(FLAGS_generation_size));
  config.mutable_repeats()->set_per_generation(absl::GetFlag(FLAGS_repeats));
  config.mutable_repeats()->set_max_presentations(absl::GetFlag(FLAGS_max_presentations));
  config.set_seed(job.seed);

  InMemoryJournal journal;
  SessionManager manager(&journal, 1);
  auto session = manager.Create(config);
  if (!session.ok()) return session.status();
  const absl::Time created = absl::Now();

  int64_t responses = 0;
  int64_t report = 0;
  double best_shown_rate = 0;  // true rate of the truly best stimulus shown
  int32_t remaining = 0;       // of the generation under way, not handed out
  // Measures (or, `skip`, aborts) every stimulus of `batch` and reports it.
  auto show = [&](const v1::StimulusBatch& batch, bool skip) -> absl::Status {
    remaining = batch.remaining();
    google::protobuf::RepeatedPtrField<v1::Response> report_responses;
    for (const v1::Stimulus& stimulus : batch.stimuli()) {
      v1::Response* r = report_responses.Add();
      r->set_stimulus_id(stimulus.id());
      if (skip) {
        r->set_skipped(true);
        continue;
      }
      auto rates = rig.Measure(stimulus.png());
      if (!rates.ok()) return rates.status();
      auto truth = rig.TrueRates(stimulus.png());
      if (!truth.ok()) return truth.status();
      best_shown_rate = std::max(best_shown_rate, (*truth)[0]);
      r->mutable_rates()->Add(rates->begin(), rates->end());
    }
    if (report_responses.empty()) return absl::OkStatus();
    if (!skip) {
      absl::SleepFor(absl::Milliseconds(absl::GetFlag(FLAGS_display_ms)) * batch.stimuli_size());
    }
    v1::ReportResponsesAck ack;
    if (absl::Status s = (*session)->Report(absl::StrCat(++report), report_responses, &ack);
        !s.ok()) {
      return s;
    }
    responses = ack.counts().responses();
    return absl::OkStatus();
  };
  const double optimum = rig.population().neuron(0).optimum_rate();
  // Reads every pick now, as one more column.
  auto read_picks = [&]() -> absl::Status {
    v1::Session described;
    (*session)->Describe(/*with_images=*/true, &described);
    for (size_t p = 0; p < picks.size(); ++p) {
      double rate = std::numeric_limits<double>::quiet_NaN();
      if (picks[p] == Pick::kShown) {
        rate = best_shown_rate;
      } else {
        const std::string& png = picks[p] == Pick::kMeasured
                                     ? described.best_measured().stimulus().png()
                                     : described.optimizer_best_png();
        if (!png.empty()) {
          auto rates = rig.TrueRates(png);
          if (!rates.ok()) return rates.status();
          rate = (*rates)[0];
        }
      }
      job.fractions[p].push_back(rate / optimum);
    }
    return absl::OkStatus();
  };

  job.fractions.assign(picks.size(), {});
  for (int64_t budget : budgets) {
    while (responses < budget) {
      v1::StimulusBatch batch;
      const int want = static_cast<int>(std::min<int64_t>(budget - responses, 1000));
      if (absl::Status s = (*session)->Next(want, &batch); !s.ok()) return s;
      if (absl::Status s = show(batch, /*skip=*/false); !s.ok()) return s;
    }
    job.minutes.push_back(absl::ToDoubleMinutes(absl::Now() - created));
    if (!absl::GetFlag(FLAGS_dump_pooled).empty()) {
      if (absl::Status s = AppendPooledRows(**session, rig, optimum, budget, job); !s.ok()) return s;
    }
    if (!absl::GetFlag(FLAGS_dump_trials).empty()) {
      if (absl::Status s = SaveTrials(**session, rig, optimum, budget, job); !s.ok()) return s;
    }
    if (absl::Status s = read_picks(); !s.ok()) return s;
  }

  if (absl::GetFlag(FLAGS_validation_candidates) > 0) {
    if (remaining > 0) {  // the block starts at a boundary: abort the rest
      v1::StimulusBatch rest;
      if (absl::Status s = (*session)->Next(0, &rest); !s.ok()) return s;
      if (absl::Status s = show(rest, /*skip=*/true); !s.ok()) return s;
    }
    v1::ValidationBlock block;
    block.set_candidates(absl::GetFlag(FLAGS_validation_candidates));
    block.set_presentations(absl::GetFlag(FLAGS_validation_presentations));
    block.set_include_best_guess(absl::GetFlag(FLAGS_validation_best_guess));
    const int64_t before = responses;
    v1::StimulusBatch batch;
    if (absl::Status s = (*session)->Validate(block, 0, &batch); !s.ok()) return s;
    if (absl::Status s = show(batch, /*skip=*/false); !s.ok()) return s;
    job.validation_responses = responses - before;
    job.minutes.push_back(absl::ToDoubleMinutes(absl::Now() - created));
    if (absl::Status s = read_picks(); !s.ok()) return s;
  }
  return absl::OkStatus();
}

int Main() {
  SetTorchThreads(1);
  std::vector<int64_t> budgets;
  for (absl::string_view b : absl::StrSplit(absl::GetFlag(FLAGS_budgets), ',')) {
    int64_t value = 0;
    if (!absl::SimpleAtoi(b, &value) || value < 1) {
      std::cerr << "--budgets: '" << b << "' is not a positive number\n";
      return 2;
    }
    budgets.push_back(value);
  }
  std::sort(budgets.begin(), budgets.end());
  if (const std::string dir = absl::GetFlag(FLAGS_dump_trials);
      !dir.empty() && !std::filesystem::is_directory(dir)) {
    std::cerr << "--dump_trials: " << dir << " is not a folder\n";  // before the long run
    return 2;
  }
  std::vector<Pick> picks;
  std::vector<std::string> pick_names = absl::StrSplit(absl::GetFlag(FLAGS_picks), ',');
  for (const std::string& name : pick_names) {
    auto pick = ParsePick(name);
    if (!pick.ok()) {
      std::cerr << pick.status().message() << "\n";
      return 2;
    }
    picks.push_back(*pick);
  }
  const bool label_picks = picks.size() != 1 || picks[0] != Pick::kMeasured;

  std::vector<Job> jobs;
  for (absl::string_view cell : absl::StrSplit(absl::GetFlag(FLAGS_cells), ','))
    for (absl::string_view space : absl::StrSplit(absl::GetFlag(FLAGS_spaces), ','))
      for (absl::string_view optimizer : absl::StrSplit(absl::GetFlag(FLAGS_optimizers), ','))
        for (int s = 0; s < absl::GetFlag(FLAGS_seeds); ++s)
          jobs.push_back({std::string(optimizer), std::string(space), std::string(cell),
                          static_cast<uint64_t>(absl::GetFlag(FLAGS_first_seed) + s), {}, {},
                          ""});

  std::ofstream dump;  // opened now: a bad path fails before the long run
  if (const std::string path = absl::GetFlag(FLAGS_dump_pooled); !path.empty()) {
    dump.open(path);
    if (!dump) {
      std::cerr << "--dump_pooled: cannot write " << path << "\n";
      return 2;
    }
  }

  const absl::Time start = absl::Now();
  RunJobs(jobs, absl::GetFlag(FLAGS_threads),
          [&](Job& job) { return RunJob(job, budgets, picks); });

  std::cout << absl::StrFormat(
      "# fraction of the true optimum reached by the best measured stimulus\n"
      "# %dx%d %s, Poisson noise, %.2f s window, peak %.0f spikes/s, generation %d "
      "+ %d repeats, %d seeds from %d, %d ms display per stimulus; median [min, max]\n",
      absl::GetFlag(FLAGS_size), absl::GetFlag(FLAGS_size),
      absl::GetFlag(FLAGS_channels) == 3   ? "RGB"
      : absl::GetFlag(FLAGS_channels) == 1 ? "gray"
                                           : "gray (RGB for color cells)",
      absl::GetFlag(FLAGS_window),
      absl::GetFlag(FLAGS_peak_rate), absl::GetFlag(FLAGS_generation_size),
      absl::GetFlag(FLAGS_repeats), absl::GetFlag(FLAGS_seeds), absl::GetFlag(FLAGS_first_seed),
      absl::GetFlag(FLAGS_display_ms));
  std::string header = absl::StrFormat("| %-8s | %-9s | %-17s |", "cell", "space", "optimizer");
  if (label_picks) absl::StrAppendFormat(&header, " %-8s |", "stimulus");
  std::vector<std::string> columns;  // one per budget, then the validation block
  for (int64_t b : budgets) columns.push_back(absl::StrCat(b, " responses"));
  if (const int k = absl::GetFlag(FLAGS_validation_candidates); k > 0) {
    columns.push_back(absl::StrCat("+ ", k, absl::GetFlag(FLAGS_validation_best_guess) ? "+1" : "",
                                   " x ", absl::GetFlag(FLAGS_validation_presentations)));
  }
  for (const std::string& column : columns) absl::StrAppendFormat(&header, " %19s |", column);
  std::cout << header << "\n|" << std::string(header.size() - 2, '-') << "|\n";
  for (size_t first = 0; first < jobs.size(); first += absl::GetFlag(FLAGS_seeds)) {
    for (size_t p = 0; p < picks.size(); ++p) {
      const Job& j = jobs[first];
      std::string row = absl::StrFormat("| %-8s | %-9s | %-17s |", j.cell, j.space, j.optimizer);
      if (label_picks) absl::StrAppendFormat(&row, " %-8s |", pick_names[p]);
      for (size_t b = 0; b < columns.size(); ++b) {
        std::vector<double> values;
        for (int s = 0; s < absl::GetFlag(FLAGS_seeds); ++s) {
          const Job& job = jobs[first + s];
          if (!job.error.empty()) {
            if (p == 0 && b == 0) {
              std::cerr << job.optimizer << "/" << job.space << "/" << job.cell << " seed "
                        << job.seed << ": " << job.error << "\n";
            }
            continue;
          }
          if (!std::isnan(job.fractions[p][b])) values.push_back(job.fractions[p][b]);
        }
        AppendSummaryCell(values, /*decimals=*/3, &row);
      }
      std::cout << row << "\n";
    }
    if (absl::GetFlag(FLAGS_display_ms) > 0) {
      const Job& j = jobs[first];
      std::string row = absl::StrFormat("| %-8s | %-9s | %-17s |", j.cell, j.space, j.optimizer);
      if (label_picks) absl::StrAppendFormat(&row, " %-8s |", "minutes");
      for (size_t b = 0; b < columns.size(); ++b) {
        std::vector<double> values;
        for (int s = 0; s < absl::GetFlag(FLAGS_seeds); ++s) {
          const Job& job = jobs[first + s];
          if (job.error.empty() && b < job.minutes.size()) values.push_back(job.minutes[b]);
        }
        AppendSummaryCell(values, /*decimals=*/2, &row);
      }
      std::cout << row << "\n";
    }
  }
  if (absl::GetFlag(FLAGS_validation_candidates) > 0) {
    std::vector<double> extra;
    for (const Job& job : jobs) {
      if (job.error.empty()) extra.push_back(static_cast<double>(job.validation_responses));
    }
    if (!extra.empty()) {
      const Summary m = Summarize(extra);
      std::cout << absl::StrFormat("# the validation block took %.0f [%.0f, %.0f] responses\n",
                                   m.median, m.min, m.max);
    }
  }
  std::cout << absl::StrFormat("# %.1f s wall\n", absl::ToDoubleSeconds(absl::Now() - start));
  // The whole process over every session: the cost of one optimizer when
  // the run has one (--optimizers=default), a mix otherwise.
  const double responses = static_cast<double>(jobs.size()) *
                           static_cast<double>(*std::max_element(budgets.begin(), budgets.end()));
  std::cout << absl::StrFormat("# %.0f CPU s, %.1f CPU s per 1000 responses per session\n",
                               CpuSeconds(getpid()), 1000.0 * CpuSeconds(getpid()) / responses);
  if (dump.is_open()) {
    dump << "cell,seed,budget,rank,generation,model_version,predicted,presentations,mean,"
            "true_fraction,objectives\n";
    for (const Job& job : jobs) dump << job.dump;
    dump.flush();
    if (!dump) {
      std::cerr << "--dump_pooled: cannot write " << absl::GetFlag(FLAGS_dump_pooled) << "\n";
      return 1;
    }
  }
  const bool any_failed =
      std::any_of(jobs.begin(), jobs.end(), [](const Job& job) { return !job.error.empty(); });
  return any_failed ? 1 : 0;
}

}  // namespace
}  // namespace stimloop

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return stimloop::Main();
}
