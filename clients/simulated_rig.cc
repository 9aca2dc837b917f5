#include "clients/simulated_rig.h"

#include <utility>

#include "optimizers/image_io.h"
#include "optimizers/optimizer.h"

namespace stimloop {

SimulatedRig::SimulatedRig(SimulatedPopulation population, double window_s, uint64_t seed)
    : population_(std::move(population)),
      window_s_(window_s),
      generator_(MakeGenerator(seed, "simulated_rig")) {}

absl::StatusOr<torch::Tensor> SimulatedRig::RatesTensor(const std::string& png) const {
  auto image = DecodeImage(png);
  if (!image.ok()) return image.status();
  return population_.Rates(FromUint8(*image).unsqueeze(0));
}

absl::StatusOr<std::vector<double>> SimulatedRig::Measure(const std::string& png) {
  auto rates = RatesTensor(png);
  if (!rates.ok()) return rates.status();
  torch::Tensor measured = PoissonRates(*rates, window_s_, generator_).to(torch::kDouble)[0];
  return std::vector<double>(measured.data_ptr<double>(),
                             measured.data_ptr<double>() + measured.numel());
}

absl::StatusOr<std::vector<double>> SimulatedRig::TrueRates(const std::string& png) const {
  auto rates = RatesTensor(png);
  if (!rates.ok()) return rates.status();
  torch::Tensor r = rates->to(torch::kDouble).contiguous()[0];
  return std::vector<double>(r.data_ptr<double>(), r.data_ptr<double>() + r.numel());
}

}  // namespace stimloop
