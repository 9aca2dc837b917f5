// Surrogate fit benchmark: held-out correlation and refit wall time versus
// the number of trials, on simulated simple and complex cells (64 x 64 gray,
// Poisson spiking in a 0.2 s window, peak 50 spikes/s), images from a smooth
// random prior (white noise low-passed at 4 cycles/image, RMS contrast 0.3,
// 8-bit). Correlations are with the noiseless rates of 1000 new images
// ("truth") and with the noisy held-out trials of the fit ("held-out").
// Median over seeds.
//
//   surrogate_fit [--seeds=3] [--trials=250,1000,3000] [--threads=2]
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "models/simulated_neuron.h"
#include "models/torchscript_model.h"
#include "models/trainer.h"

namespace stimloop {
namespace {

torch::Tensor SmoothImages(int64_t n, int64_t size, at::Generator& gen) {
  const torch::Tensor noise = torch::randn({n, 1, size, size}, gen);
  const torch::Tensor fy = torch::fft::fftfreq(size, torch::kFloat).mul(size).view({size, 1});
  const torch::Tensor fx =
      torch::fft::rfftfreq(size, torch::kFloat).mul(size).view({1, size / 2 + 1});
  const torch::Tensor filter = torch::exp(-(fy * fy + fx * fx) / (2 * 4.0 * 4.0));
  torch::Tensor s = torch::fft::irfft2(torch::fft::rfft2(noise) * filter,
                                       std::vector<int64_t>{size, size});
  s = (s - s.mean({2, 3}, true)) / s.pow(2).mean({2, 3}, true).sqrt();
  return torch::round((0.5 + 0.3 * s).clamp(0, 1) * 255) / 255;
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
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--seeds=", 8) == 0) seeds = std::atoi(argv[i] + 8);
    if (std::strncmp(argv[i], "--threads=", 10) == 0) threads = std::atoi(argv[i] + 10);
    if (std::strncmp(argv[i], "--trials=", 9) == 0) trials = ParseList(argv[i] + 9);
  }
  at::set_num_threads(threads);
  absl::StatusOr<SurrogateSpec> spec = ParseSurrogateSpec({});
  auto front_end = MakeFrontEnd(*spec, {1, 64, 64});
  if (!spec.ok() || !front_end.ok()) return 1;
  std::printf("surrogate fit: default spec (5 members, Gabor front end, factorized readout), "
              "%d seed(s), %d intra-op threads\n", seeds, threads);
  std::printf("%-8s %7s %12s %15s %12s %10s\n", "cell", "trials", "truth corr", "held-out corr",
              "refit s", "epochs");
  for (CellKind kind : {CellKind::kSimple, CellKind::kComplex}) {
    for (int64_t n : trials) {
      std::vector<double> truth, heldout, secs, epochs;
      for (int seed = 0; seed < seeds; ++seed) {
        SimulatedNeuronSpec ns;
        ns.kind = kind;
        ns.seed = 100 + seed;
        auto neuron = SimulatedNeuron::Create(ns);
        auto gen = at::make_generator<at::CPUGeneratorImpl>(1000 + seed);
        TrainingData data;
        data.images = SmoothImages(n, 64, gen);
        data.rates = PoissonRates((*neuron)->Rates(data.images), 0.2, gen).unsqueeze(1);
        FitMetrics metrics;
        const auto start = std::chrono::steady_clock::now();
        auto model = FitSurrogate(data, *spec, *front_end, 1, seed, nullptr, &metrics);
        secs.push_back(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
        if (!model.ok()) {
          std::fprintf(stderr, "%s\n", model.status().ToString().c_str());
          return 1;
        }
        const torch::Tensor test = SmoothImages(1000, 64, gen);
        torch::NoGradGuard no_grad;
        truth.push_back(Correlation((*model)->PredictMean(test), (*neuron)->Rates(test)));
        heldout.push_back(metrics.heldout_correlation[0]);
        double e = 0;
        for (int64_t m : metrics.member_epochs) e += static_cast<double>(m);
        epochs.push_back(e / static_cast<double>(metrics.member_epochs.size()));
      }
      std::printf("%-8s %7lld %12.3f %15.3f %12.1f %10.1f\n",
                  std::string(CellKindName(kind)).c_str(), static_cast<long long>(n),
                  Median(truth), Median(heldout), Median(secs), Median(epochs));
      std::fflush(stdout);
    }
  }
  return 0;
}

}  // namespace
}  // namespace stimloop

int main(int argc, char** argv) { return stimloop::Main(argc, argv); }
