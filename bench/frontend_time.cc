// Time of the default Gabor front end, forward and backward, on a batch the
// size of a generation: what gradient ascent pays at every step. Compared in
// the same run with the reference computation, the 2-D convolution with the
// bank's own kernels (GaborBankImpl::ForwardByConvolution), which gives the
// same features, and with the whole default surrogate (front end plus 5 members'
// heads, freshly initialized: the same sizes as a fitted one), evaluated
// stacked (Surrogate::PredictMembers) and member by member.
//
//   frontend_time --images=40 --size=64 --repeats=30 --threads=1
#include <chrono>
#include <cstdio>
#include <functional>
#include <vector>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "bench/bench_util.h"
#include "models/gabor_frontend.h"
#include "models/surrogate.h"
#include "server/torch_threads.h"

ABSL_FLAG(int, images, 40, "Images per batch");
ABSL_FLAG(int, size, 64, "Image side, pixels (grayscale)");
ABSL_FLAG(int, repeats, 30, "Timed forward+backward passes per method");
ABSL_FLAG(int, threads, 1, "LibTorch intra-op threads (the server's default is 1)");

namespace stimloop {
namespace {

// Median milliseconds of forward + backward (gradient with respect to the images).
double TimeMs(const std::function<torch::Tensor(const torch::Tensor&)>& features,
              const torch::Tensor& images, int repeats) {
  std::vector<double> ms;
  for (int r = 0; r < repeats + 2; ++r) {  // two warm-up passes
    const torch::Tensor x = images.clone().requires_grad_(true);
    const auto start = std::chrono::steady_clock::now();
    features(x).pow(2).sum().backward();
    const auto end = std::chrono::steady_clock::now();
    if (r >= 2) ms.push_back(std::chrono::duration<double, std::milli>(end - start).count());
  }
  return Summarize(ms).median;
}

int Main() {
  SetTorchThreads(absl::GetFlag(FLAGS_threads));  // LibTorch and OpenBLAS, as the server does
  const int n = absl::GetFlag(FLAGS_images), size = absl::GetFlag(FLAGS_size);
  const int repeats = absl::GetFlag(FLAGS_repeats);
  const GaborBankSpec spec;  // the surrogate's default bank
  GaborBank bank(spec, 1, size, size);
  torch::manual_seed(0);
  const torch::Tensor images = torch::rand({n, 1, size, size});
  const double max_difference =
      (bank->forward(images) - bank->ForwardByConvolution(images)).abs().max().item<double>();
  const double bank_ms = TimeMs([&](const torch::Tensor& x) { return bank->forward(x); }, images,
                                repeats);
  const auto front_end = std::make_shared<const GaborFrontEnd>(spec, 1, size, size);
  std::vector<SurrogateHead> heads;
  at::Generator generator = at::detail::createCPUGenerator(1);
  for (int m = 0; m < 5; ++m) {
    SurrogateHeadOptions options;
    options.features = front_end->feature_shape();
    SurrogateHead head(options);
    head->Reset(torch::zeros({options.features.channels}), torch::ones({options.features.channels}),
                torch::ones({1}), generator);
    heads.push_back(head);
  }
  const Surrogate surrogate(1, front_end, std::move(heads));
  const double surrogate_ms = TimeMs(
      [&](const torch::Tensor& x) { return surrogate.PredictMembers(x); }, images, repeats);
  // The same ensemble member by member (SurrogateHeadImpl::forward each), as
  // PredictMembers did before the members were stacked.
  const double one_by_one_ms = TimeMs(
      [&](const torch::Tensor& x) {
        const torch::Tensor features = front_end->Forward(x);
        std::vector<torch::Tensor> rates;
        for (const SurrogateHead& head : surrogate.members()) rates.push_back(head->forward(features));
        return torch::stack(rates, 0);
      },
      images, repeats);
  const double reference_ms = TimeMs(
      [&](const torch::Tensor& x) { return bank->ForwardByConvolution(x); }, images, repeats);
  std::printf(
      "# default Gabor bank (%lld features), %d images %dx%d, forward + backward, %d LibTorch "
      "thread(s), median of %d; max |difference| %.2g\n",
      static_cast<long long>(bank->num_features()), n, size, size, absl::GetFlag(FLAGS_threads),
      repeats, max_difference);
  std::printf("| method | ms | relative |\n|---|---|---|\n");
  std::printf("| GaborBank (banded matrix products) | %.1f | 1.00 |\n", bank_ms);
  std::printf("| 2-D convolution with Kernels2d | %.1f | %.2f |\n", reference_ms,
              reference_ms / bank_ms);
  std::printf("| default surrogate: GaborBank + 5 heads, stacked | %.1f | %.2f |\n", surrogate_ms,
              surrogate_ms / bank_ms);
  std::printf("| default surrogate: GaborBank + 5 heads one by one | %.1f | %.2f |\n",
              one_by_one_ms, one_by_one_ms / bank_ms);

  // What a refit pays for features (forward only, no gradient): the images
  // one at a time, as a feature cache computes new stimuli, against batches
  // of 128, as a fit without a cache does; and whether the two agree to the
  // bit (the cache's features must not depend on how images were batched).
  const int refit_images = 512;
  const torch::Tensor refit_batch = torch::rand({refit_images, 1, size, size});
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> singles, chunks;
  std::vector<double> single_ms, chunk_ms;
  for (int r = 0; r < 3; ++r) {
    singles.clear();
    chunks.clear();
    // Milliseconds per image of computing every image in batches of `batch`.
    auto per_image_ms = [&](int batch, std::vector<torch::Tensor>* out) {
      const auto start = std::chrono::steady_clock::now();
      for (int i = 0; i < refit_images; i += batch) {
        out->push_back(front_end->Forward(refit_batch.narrow(0, i, batch)));
      }
      const auto end = std::chrono::steady_clock::now();
      return std::chrono::duration<double, std::milli>(end - start).count() / refit_images;
    };
    single_ms.push_back(per_image_ms(1, &singles));
    chunk_ms.push_back(per_image_ms(128, &chunks));
  }
  const bool bitwise = torch::equal(torch::cat(singles, 0), torch::cat(chunks, 0));
  std::printf("\n# refit features, forward only, %d images, median of 3\n", refit_images);
  std::printf("| batch | ms per image |\n|---|---|\n| 1 | %.3f |\n| 128 | %.3f |\n",
              Summarize(single_ms).median, Summarize(chunk_ms).median);
  std::printf("# one by one and in batches of 128 equal to the bit: %s\n", bitwise ? "yes" : "no");
  return 0;
}

}  // namespace
}  // namespace stimloop

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return stimloop::Main();
}
