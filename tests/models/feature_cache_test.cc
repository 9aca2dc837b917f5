#include "models/feature_cache.h"

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "models/gabor_frontend.h"
#include "models/surrogate_config.h"
#include "models/trainer.h"
#include "tests/models/model_test_util.h"

namespace stimloop {
namespace {

constexpr int64_t kSide = 32;

// The default Gabor front end, counting the images it is asked for.
class CountingFrontEnd : public FrontEnd {
 public:
  CountingFrontEnd() : gabor_(GaborBankSpec{}, 1, kSide, kSide) {}
  torch::Tensor Forward(const torch::Tensor& images) const override {
    images_seen += images.size(0);
    return gabor_.Forward(images);
  }
  const FeatureShape& feature_shape() const override { return gabor_.feature_shape(); }
  std::string Describe() const override { return gabor_.Describe(); }

  mutable std::atomic<int64_t> images_seen{0};

 private:
  GaborFrontEnd gabor_;
};

torch::Tensor Images(int64_t n, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return torch::rand({n, 1, kSide, kSide}, gen);
}

TEST(FeatureCacheTest, ComputesEachStimulusOnceAndReturnsRowsInTheAskedOrder) {
  auto front_end = std::make_shared<CountingFrontEnd>();
  FeatureCache cache(front_end);
  const torch::Tensor images = Images(5, 1);
  auto first = cache.Features(images.narrow(0, 0, 3), {10, 11, 12}, nullptr);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(front_end->images_seen, 3);
  EXPECT_EQ(cache.size(), 3);
  torch::NoGradGuard no_grad;
  for (int64_t row = 0; row < 3; ++row) {
    EXPECT_TRUE(torch::equal((*first)[row], front_end->Forward(images.narrow(0, row, 1))[0]));
  }

  // Two known stimuli in another order and two new ones: only the new ones
  // run through the front end, and each row is its stimulus' features.
  front_end->images_seen = 0;
  const torch::Tensor asked =
      torch::stack({images[4], images[1], images[3], images[0]}, 0);
  auto second = cache.Features(asked, {14, 11, 13, 10}, nullptr);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(front_end->images_seen, 2);
  EXPECT_EQ(cache.size(), 5);
  for (int64_t row = 0; row < 4; ++row) {
    EXPECT_TRUE(torch::equal((*second)[row], front_end->Forward(asked.narrow(0, row, 1))[0]))
        << "row " << row;
  }
}

TEST(FeatureCacheTest, KeepsEveryStimulusOfALongSession) {
  auto front_end = std::make_shared<CountingFrontEnd>();
  FeatureCache cache(front_end);
  const torch::Tensor images = Images(150, 2);
  std::vector<int64_t> ids;
  for (int64_t i = 0; i < 150; ++i) {
    ids.push_back(i);
    auto one = cache.Features(images.narrow(0, i, 1), {i}, nullptr);
    ASSERT_TRUE(one.ok()) << one.status();
  }
  auto all = cache.Features(images, ids, nullptr);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(front_end->images_seen, 150);
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal((*all)[0], front_end->Forward(images.narrow(0, 0, 1))[0]));
  EXPECT_TRUE(torch::equal((*all)[149], front_end->Forward(images.narrow(0, 149, 1))[0]));
  auto none = cache.Features(images.narrow(0, 0, 0), {}, nullptr);
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ(none->size(0), 0);
  EXPECT_EQ(none->size(1), front_end->feature_shape().channels);
}

TEST(FeatureCacheTest, RefusesBadInputAndStopsWhenCancelled) {
  auto front_end = std::make_shared<CountingFrontEnd>();
  FeatureCache cache(front_end);
  auto mismatched = cache.Features(Images(3, 3), {1, 2}, nullptr);
  EXPECT_EQ(mismatched.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(mismatched.status().message().find("2 stimulus ids"), absl::string_view::npos)
      << mismatched.status();
  // Images of another size than the front end's.
  auto wrong_size = cache.Features(torch::rand({1, 1, kSide / 2, kSide / 2}), {7}, nullptr);
  EXPECT_EQ(wrong_size.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(wrong_size.status().message().find("the front end 'gabor' rejects the images"),
            absl::string_view::npos)
      << wrong_size.status();
  const std::atomic<bool> cancel{true};
  auto cancelled = cache.Features(Images(3, 3), {1, 2, 3}, &cancel);
  EXPECT_EQ(cancelled.status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(cache.size(), 0);
}

// What exact resume rests on: a session's refits with a cache filled one
// refit at a time give the same model as a restored session's first refit,
// whose cache starts empty.
TEST(FeatureCacheTest, AFitIsTheSameWhetherTheCacheWasFilledEarlierOrNow) {
  absl::StatusOr<SurrogateSpec> spec =
      ParseSurrogateSpec({{"ensemble_size", 2}, {"max_epochs", 3}, {"warm_start", 1}});
  ASSERT_TRUE(spec.ok()) << spec.status();
  SimulatedNeuronSpec cell;
  cell.kind = CellKind::kSimple;
  cell.seed = 3;
  cell.height = cell.width = kSide;
  auto neuron = SimulatedNeuron::Create(cell);
  ASSERT_TRUE(neuron.ok()) << neuron.status();
  auto gen = at::make_generator<at::CPUGeneratorImpl>(4);
  TrainingData data;
  data.images = torch::round(Images(120, 5) * 255) / 255;
  data.rates = PoissonRates((*neuron)->Rates(data.images) * 10, 0.2, gen).unsqueeze(1);
  for (int64_t i = 0; i < 120; ++i) data.stimulus_ids.push_back(1000 + i);
  data.holdout_seed = 9;
  TrainingData earlier{data.images.narrow(0, 0, 80), data.rates.narrow(0, 0, 80),
                       std::vector<int64_t>(data.stimulus_ids.begin(),
                                            data.stimulus_ids.begin() + 80),
                       data.holdout_seed};

  auto front_end = std::make_shared<CountingFrontEnd>();
  FeatureCache filled(front_end);
  auto v1 = FitSurrogate(earlier, *spec, front_end, 1, 7, nullptr, nullptr, nullptr, &filled);
  ASSERT_TRUE(v1.ok()) << v1.status();
  auto v2 = FitSurrogate(data, *spec, front_end, 2, 8, nullptr, nullptr, v1->get(), &filled);
  ASSERT_TRUE(v2.ok()) << v2.status();
  EXPECT_EQ(front_end->images_seen, 120);  // each stimulus once over both fits

  FeatureCache fresh(front_end);
  auto resumed =
      FitSurrogate(data, *spec, front_end, 2, 8, nullptr, nullptr, v1->get(), &fresh);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  torch::NoGradGuard no_grad;
  const torch::Tensor probe = Images(6, 6);
  EXPECT_TRUE(torch::equal((*v2)->PredictMembers(probe), (*resumed)->PredictMembers(probe)));
}

}  // namespace
}  // namespace stimloop
