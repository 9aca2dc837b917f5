// The default strategy (no optimizer named) on a small noiseless toy of
// every simulated cell family: it beats random search and, on every family
// but the deep-network unit, is at least about as good as the model-free
// optimizers (issue 24 point 5). Sessions
// run in process through SessionManager, as the server runs them; the rig
// answers each stimulus with the cell's noiseless rate.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "clients/simulated_rig.h"
#include "models/simulated_neuron.h"
#include "server/session.h"
#include "server/session_journal.h"
#include "server/session_manager.h"
#include "tests/scoped_torch_threads.h"

namespace stimloop {
namespace {

constexpr int kSide = 16;
constexpr int kResponses = 400;
// Seeds of the cell and the session: one toy run moves by several
// hundredths with float summation order alone (LibTorch's thread count),
// so every figure is a mean over three.
constexpr uint64_t kSeeds[] = {1, 2, 3};

// The true rate of the session's best measured image over the cell's
// optimum after kResponses noiseless responses; "" runs the default.
double ReachedWithSeed(CellKind kind, const std::string& optimizer, uint64_t seed) {
  SimulatedNeuronSpec spec;
  spec.kind = kind;
  spec.channels = kind == CellKind::kColor ? 3 : 1;
  spec.height = spec.width = kSide;
  spec.seed = seed;
  auto population = SimulatedPopulation::Create(spec, 1, false);
  EXPECT_TRUE(population.ok()) << population.status();
  if (!population.ok()) return 0;
  SimulatedRig rig(*std::move(population), 0.2, seed);

  v1::SessionConfig config;
  config.mutable_image()->set_height(kSide);
  config.mutable_image()->set_width(kSide);
  config.mutable_image()->set_channels(spec.channels);
  config.set_num_neurons(1);
  config.set_seed(seed);
  if (!optimizer.empty()) {
    config.mutable_optimizer()->set_name(optimizer);
    config.mutable_image_space()->set_name("spectral");
  }
  InMemoryJournal journal;
  SessionManager manager(&journal, 1);
  auto session = manager.Create(config);
  EXPECT_TRUE(session.ok()) << session.status();
  if (!session.ok()) return 0;

  int64_t responses = 0;
  for (int report = 1; responses < kResponses; ++report) {
    v1::StimulusBatch batch;
    absl::Status next = (*session)->Next(kResponses - static_cast<int>(responses), &batch);
    EXPECT_TRUE(next.ok()) << next;
    if (!next.ok()) return 0;
    google::protobuf::RepeatedPtrField<v1::Response> answers;
    for (const v1::Stimulus& stimulus : batch.stimuli()) {
      auto rates = rig.TrueRates(stimulus.png());
      EXPECT_TRUE(rates.ok()) << rates.status();
      if (!rates.ok()) return 0;
      v1::Response* r = answers.Add();
      r->set_stimulus_id(stimulus.id());
      r->mutable_rates()->Add(rates->begin(), rates->end());
    }
    v1::ReportResponsesAck ack;
    absl::Status reported = (*session)->Report(absl::StrCat(report), answers, &ack);
    EXPECT_TRUE(reported.ok()) << reported;
    if (!reported.ok()) return 0;
    responses = ack.counts().responses();
  }
  v1::Session described;
  (*session)->Describe(/*with_images=*/true, &described);
  auto best = rig.TrueRates(described.best_measured().stimulus().png());
  EXPECT_TRUE(best.ok()) << best.status();
  return best.ok() ? (*best)[0] / rig.population().neuron(0).optimum_rate() : 0;
}

// The mean of ReachedWithSeed over kSeeds.
double Reached(CellKind kind, const std::string& optimizer) {
  double sum = 0;
  for (uint64_t seed : kSeeds) sum += ReachedWithSeed(kind, optimizer, seed);
  return sum / static_cast<double>(std::size(kSeeds));
}

// Runs on one LibTorch thread, the server's default (--torch_threads), so
// that the figures do not depend on the machine's cores or on what an
// earlier test in the same process set; restores the count after.
class DefaultStrategyTest : public ::testing::TestWithParam<CellKind> {
 private:
  ScopedTorchThreads one_thread_{1};
};

INSTANTIATE_TEST_SUITE_P(EveryFamily, DefaultStrategyTest, ::testing::ValuesIn(AllCellKinds()),
                         [](const auto& info) { return std::string(CellKindName(info.param)); });

// "About as good": within 0.05 of the optimum of the better model-free
// optimizer, in the mean over kSeeds. A short run: the margin is for the
// toy's own spread, not for a family where the default falls behind. On the
// deep-network unit it is level at best (measured 0.294 against CMA-ES's
// 0.313 and genetic search's 0.300 on this toy; issue 24 is open on it), so
// there the test asks only that it beat random search. Measured on one
// thread, the other families' margins over the better model-free
// optimizer: simple +0.32, complex +0.31, plaid +0.06, V4-like +0.05,
// end-stopped +0.15, colour +0.22.
TEST_P(DefaultStrategyTest, BeatsRandomSearchAndMatchesTheModelFreeOptimizers) {
  const CellKind kind = GetParam();
  const double by_default = Reached(kind, "");
  const double random = Reached(kind, "random");
  const double cmaes = Reached(kind, "cmaes");
  const double genetic = Reached(kind, "genetic");
  std::printf("%s: default %.3f, random %.3f, cmaes %.3f, genetic %.3f\n",
              std::string(CellKindName(kind)).c_str(), by_default, random, cmaes, genetic);
  EXPECT_GT(by_default, random);
  if (kind != CellKind::kDeepNet) EXPECT_GE(by_default, std::max(cmaes, genetic) - 0.05);
}

}  // namespace
}  // namespace stimloop
