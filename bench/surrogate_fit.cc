// Surrogate fit benchmark: held-out correlation and refit wall time versus
// the number of trials, on simulated cells (--cells: any kind; 64 x 64 gray,
// RGB for a color cell,
// Poisson spiking in a 0.2 s window, peak 50 spikes/s), images drawn at
// at random (see RandomImages) or, with --images=genetic, the stimuli of a
// genetic search driven by the neuron (clients/simulated_trials.h): what a
// closed loop fits its surrogate on. Correlations are with the noiseless rates of 1000 new images
// ("truth") and with the noisy held-out trials of the fit ("held-out").
// Median over seeds.
// --chain=S fits as a session does: from scratch on the first 2 S trials,
// then warm-started (models/trainer.h) every S trials until the count of
// the row; "refit s" and "epochs" are then the last fit's (from the one
// before it, S trials earlier) and "chain s" the whole chain's; each row
// is printed three times in one run: from scratch, as the chain computing
// every fit's features anew ("warm/S"), and as the chain with the
// session's feature cache (models/feature_cache.h: "cached/S", what a
// session does; each trial is its own stimulus unless its pixels repeat an
// earlier one). The chain's
// fits hold out stimuli as a session's do (one held-out set, kept as the
// data grow: TrainingData::holdout_seed). Without it every fit is from
// scratch.
//
//   surrogate_fit [--seeds=3] [--trials=250,1000,3000] [--threads=2]
//                 [--images=genetic|pink|smooth] [--cells=simple,complex,...]
//                 [--params=key=value,...] [--ask=key=value,...] [--chain=S]
// --params overrides the surrogate's defaults (models/surrogate_config.h);
// with model_class=2 every fit is FitPairedModel's (both model classes, the
// parametric part warm-started along the chain), model_class=1 is refused.
// --ask (may be empty: "--ask=") also times one gradient_ascent Ask of 40
// in the spectral space with each fitted model (its parameters over the
// defaults, bench/fixed_model_ascent.h) and reports the true rate / optimum
// of the generation's best image: what a proposal costs and reaches.
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/match.h"
#include "bench/fixed_model_ascent.h"
#include "clients/named_numbers.h"
#include "clients/simulated_trials.h"
#include "models/paired_fit.h"
#include "models/simulated_neuron.h"
#include "models/torchscript_model.h"
#include "models/trainer.h"
#include "server/torch_threads.h"

namespace stimloop {
namespace {

// Random images on the 8-bit grid from white noise shaped in frequency:
// "smooth" low-passes it with a Gaussian at 4 cycles/image (RMS contrast
// 0.3); "pink" gives it a 1/f amplitude spectrum, like natural images and
// the spectral image space's prior (RMS contrast 0.5). Clipped to [0, 1].
torch::Tensor RandomImages(const std::string& kind, int64_t n, int64_t channels, int64_t size,
                           at::Generator& gen) {
  const torch::Tensor noise = torch::randn({n, channels, size, size}, gen);
  const torch::Tensor fy = torch::fft::fftfreq(size, torch::kFloat).mul(size).view({size, 1});
  const torch::Tensor fx =
      torch::fft::rfftfreq(size, torch::kFloat).mul(size).view({1, size / 2 + 1});
  const torch::Tensor f2 = fy * fy + fx * fx;
  const bool pink = kind == "pink";
  const torch::Tensor filter =
      pink ? torch::where(f2 > 0, f2.clamp_min(1).rsqrt(), torch::zeros_like(f2))
           : torch::exp(-f2 / (2 * 4.0 * 4.0));
  torch::Tensor s = torch::fft::irfft2(torch::fft::rfft2(noise) * filter,
                                       std::vector<int64_t>{size, size});
  s = (s - s.mean({2, 3}, true)) / s.pow(2).mean({2, 3}, true).sqrt();
  return torch::round((0.5 + (pink ? 0.5 : 0.3) * s).clamp(0, 1) * 255) / 255;
}

double Correlation(const torch::Tensor& a, const torch::Tensor& b) {
  const torch::Tensor x = a.to(torch::kDouble).flatten() - a.to(torch::kDouble).mean();
  const torch::Tensor y = b.to(torch::kDouble).flatten() - b.to(torch::kDouble).mean();
  return ((x * y).sum() / (x.norm() * y.norm())).item<double>();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::vector<int64_t> ParseList(const char* text) {
  std::vector<int64_t> out;
  for (const char* p = text; *p;) {
    out.push_back(std::strtoll(p, const_cast<char**>(&p), 10));
    if (*p == ',') ++p;
  }
  return out;
}

int Main(int argc, char** argv) {
  int seeds = 3, threads = 2;
  std::vector<int64_t> trials = {250, 1000, 3000};
  std::string images = "genetic";
  std::string cells = "simple,complex";
  std::string params_text, ask_text;
  bool ask = false;
  int64_t chain = 0;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--seeds=", 8) == 0) {
      seeds = std::atoi(argv[i] + 8);
    } else if (std::strncmp(argv[i], "--threads=", 10) == 0) {
      threads = std::atoi(argv[i] + 10);
    } else if (std::strncmp(argv[i], "--trials=", 9) == 0) {
      trials = ParseList(argv[i] + 9);
    } else if (std::strncmp(argv[i], "--images=", 9) == 0) {
      images = argv[i] + 9;
    } else if (std::strncmp(argv[i], "--cells=", 8) == 0) {
      cells = argv[i] + 8;
    } else if (std::strncmp(argv[i], "--params=", 9) == 0) {
      params_text = argv[i] + 9;
    } else if (std::strncmp(argv[i], "--chain=", 8) == 0) {
      chain = std::atoll(argv[i] + 8);
      if (chain < 1) {
        std::fprintf(stderr, "--chain: a positive number of trials, not '%s'\n", argv[i] + 8);
        return 2;
      }
    } else if (std::strncmp(argv[i], "--ask=", 6) == 0) {
      ask = true;
      ask_text = argv[i] + 6;
    } else {  // a typo must not start an hour of fits with the defaults
      std::fprintf(stderr,
                   "unknown argument '%s'; usage: surrogate_fit [--seeds=N] [--trials=a,b,...] "
                   "[--threads=N] [--images=genetic|pink|smooth] [--cells=simple,complex] "
                   "[--params=key=value,...] [--ask=key=value,...] [--chain=S]\n",
                   argv[i]);
      return 2;
    }
  }
  std::map<std::string, double> params;
  if (absl::Status s = ParseNamedNumbers(params_text, &params); !s.ok()) {
    std::fprintf(stderr, "--params: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  if (images != "pink" && images != "smooth" && images != "genetic") {
    std::fprintf(stderr, "--images: pink, smooth or genetic, not %s\n", images.c_str());
    return 2;
  }
  SetTorchThreads(threads);  // LibTorch and OpenBLAS, as the server does
  absl::StatusOr<SurrogateSpec> spec = ParseSurrogateSpec(params);
  if (!spec.ok()) {
    std::fprintf(stderr, "%s\n", spec.status().ToString().c_str());
    return 2;
  }
  if (spec->model_class == SurrogateClass::kParametricGabor) {
    std::fprintf(stderr, "--params: model_class 1 has no front end to time; use 0 or 2\n");
    return 2;
  }
  std::vector<CellKind> kinds;
  for (absl::string_view name : absl::StrSplit(cells, ',')) {
    absl::StatusOr<CellKind> kind = ParseCellKind(name);
    if (!kind.ok()) {
      std::fprintf(stderr, "--cells: %s\n", std::string(kind.status().message()).c_str());
      return 2;
    }
    kinds.push_back(*kind);
  }
  std::printf("surrogate fit: %s images, spec defaults%s%s, %d seed(s), %d intra-op threads\n",
              images.c_str(), params_text.empty() ? "" : " with ", params_text.c_str(), seeds,
              threads);
  std::printf("%-8s %7s", "cell", "trials");
  if (chain > 0) std::printf(" %8s", "fit");
  std::printf(" %12s %15s %12s %10s %13s", "truth corr", "held-out corr", "refit s", "epochs",
              "spikes/trial");
  if (chain > 0) std::printf(" %9s", "chain s");
  if (ask) std::printf(" %8s %9s", "ask s", "ask best");
  std::printf("\n");
  for (CellKind kind : kinds) {
    const int64_t channels = kind == CellKind::kColor ? 3 : 1;
    auto front_end = MakeFrontEnd(*spec, {channels, 64, 64});
    if (!front_end.ok()) return 1;
    // 0: from scratch; S: the chain; -S: the chain with a feature cache.
    std::vector<int64_t> modes = {0};
    if (chain > 0) modes.insert(modes.end(), {chain, -chain});
    for (int64_t n : trials) for (int64_t mode : modes) {
      const int64_t step = std::abs(mode);
      std::vector<double> truth, heldout, secs, epochs, spikes, chain_secs, ask_secs, ask_best;
      for (int seed = 0; seed < seeds; ++seed) {
        SimulatedNeuronSpec ns;
        ns.kind = kind;
        ns.seed = 100 + seed;
        ns.channels = channels;
        auto neuron = SimulatedNeuron::Create(ns);
        auto gen = at::make_generator<at::CPUGeneratorImpl>(1000 + seed);
        TrainingData data;
        torch::Tensor test;  // 1000 new images from the same source
        if (images == "genetic") {
          auto trials = GeneticSearchTrials(**neuron, n, 40, 0.2, 2000 + seed);
          auto test_trials = GeneticSearchTrials(**neuron, 1000, 40, 0.2, 3000 + seed);
          if (!trials.ok() || !test_trials.ok()) return 1;
          data.images = trials->images;
          data.rates = trials->rates;
          test = test_trials->images;
        } else {
          data.images = RandomImages(images, n, channels, 64, gen);
          data.rates = PoissonRates((*neuron)->Rates(data.images), 0.2, gen).unsqueeze(1);
          test = RandomImages(images, 1000, channels, 64, gen);
        }
        spikes.push_back(data.rates.mean().item<double>() * 0.2);
        // The fits: one from scratch on all n trials, or the chain.
        std::vector<int64_t> counts = {n};
        if (step > 0) {
          counts.clear();
          for (int64_t k = std::min(2 * step, n); k < n; k += step) counts.push_back(k);
          counts.push_back(n);
        }
        // Stimulus ids for the cache: the first trial with the same pixels.
        std::vector<int64_t> ids;
        std::unique_ptr<FeatureCache> cache;
        if (mode < 0) {
          std::map<std::string, int64_t> first_of_pixels;
          const torch::Tensor flat = data.images.to(torch::kFloat).reshape({n, -1}).contiguous();
          for (int64_t i = 0; i < n; ++i) {
            const std::string pixels(static_cast<const char*>(flat[i].data_ptr()),
                                     flat.size(1) * sizeof(float));
            ids.push_back(first_of_pixels.emplace(pixels, i).first->second);
          }
          cache = std::make_unique<FeatureCache>(*front_end);
        }
        FitMetrics metrics;
        // The flexible model, or with model_class 2 both classes (paired):
        // the chain's previous version is the typed one, `model` predicts.
        std::shared_ptr<const Surrogate> flexible;
        std::shared_ptr<const PairedModel> paired;
        std::shared_ptr<const ResponseModel> model;
        double total = 0;
        for (size_t f = 0; f < counts.size(); ++f) {
          TrainingData prefix{data.images.narrow(0, 0, counts[f]),
                              data.rates.narrow(0, 0, counts[f]), {}};
          if (mode < 0) prefix.stimulus_ids.assign(ids.begin(), ids.begin() + counts[f]);
          // A session's fits hold out the same stimuli (models/training_data.h).
          if (step > 0) prefix.holdout_seed = 77 + seed;
          const auto start = std::chrono::steady_clock::now();
          SurrogateSpec fit_spec = *spec;
          fit_spec.warm_start = step > 0;  // the chain warm-starts whatever --params says
          const int64_t version = static_cast<int64_t>(f) + 1;
          const uint64_t fit_seed = seed + 1000 * static_cast<int64_t>(f);
          absl::Status status;
          if (spec->model_class == SurrogateClass::kPaired) {
            PairedFitMetrics paired_metrics;
            auto fitted = FitPairedModel(prefix, fit_spec, *front_end, version, fit_seed,
                                         nullptr, &paired_metrics, paired.get(), cache.get());
            status = fitted.status();
            if (fitted.ok()) paired = *std::move(fitted), model = paired;
            metrics = paired_metrics.ensemble;
          } else {
            auto fitted = FitSurrogate(prefix, fit_spec, *front_end, version, fit_seed, nullptr,
                                       &metrics, flexible.get(), cache.get());
            status = fitted.status();
            if (fitted.ok()) flexible = *std::move(fitted), model = flexible;
          }
          const double s =
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
          total += s;
          if (f + 1 == counts.size()) secs.push_back(s);
          if (!status.ok()) {
            std::fprintf(stderr, "%s\n", status.ToString().c_str());
            return 1;
          }
        }
        chain_secs.push_back(total);
        torch::NoGradGuard no_grad;
        truth.push_back(
            Correlation(model->PredictMembers(test).mean(0), (*neuron)->Rates(test)));
        heldout.push_back(metrics.heldout_correlation[0]);
        double e = 0;
        for (int64_t m : metrics.member_epochs) e += static_cast<double>(m);
        epochs.push_back(e / static_cast<double>(metrics.member_epochs.size()));
        if (ask) {
          torch::AutoGradMode grad(true);  // the ascent differentiates the model
          auto ascent = MakeFixedModelAscent(model, "spectral", "", ask_text, {1, 64, 64},
                                             500 + seed);
          if (!ascent.ok()) {
            std::fprintf(stderr, "--ask: %s\n", ascent.status().ToString().c_str());
            return 2;
          }
          const auto ask_start = std::chrono::steady_clock::now();
          auto candidates = (*ascent)->Ask(40, 1);
          ask_secs.push_back(
              std::chrono::duration<double>(std::chrono::steady_clock::now() - ask_start)
                  .count());
          if (!candidates.ok()) return 1;
          ask_best.push_back(TrueFractions(**neuron, *candidates).max().item<double>());
        }
      }
      std::printf("%-8s %7lld", std::string(CellKindName(kind)).c_str(),
                  static_cast<long long>(n));
      if (chain > 0) {
        std::printf(" %8s", mode == 0  ? "scratch"
                            : mode > 0 ? absl::StrCat("warm/", step).c_str()
                                       : absl::StrCat("cached/", step).c_str());
      }
      std::printf(" %12.3f %15.3f %12.1f %10.1f %13.2f", Median(truth), Median(heldout),
                  Median(secs), Median(epochs), Median(spikes));
      if (chain > 0) std::printf(" %9.1f", Median(chain_secs));
      if (ask) std::printf(" %8.2f %9.3f", Median(ask_secs), Median(ask_best));
      std::printf("\n");
      std::fflush(stdout);
    }
  }
  return 0;
}

}  // namespace
}  // namespace stimloop

int main(int argc, char** argv) { return stimloop::Main(argc, argv); }
