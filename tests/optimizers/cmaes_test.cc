#include "optimizers/cmaes.h"

#include <torch/serialize.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "optimizers/cmaes_core.h"
#include "optimizers/image_space.h"
#include "optimizers/objective.h"
#include "optimizers/optimizer.h"
#include "optimizers/optimizer_state.h"
#include "tests/scoped_torch_threads.h"

namespace stimloop {
namespace {

constexpr auto kDouble = torch::kFloat64;

// Runs each test on one LibTorch thread (restoring the count after): the
// small tensors here are fastest that way, and results do not depend on the
// machine's core count.
class CmaesTest : public ::testing::Test {
 private:
  ScopedTorchThreads one_thread_{1};
};
class CmaesCoreTest : public CmaesTest {};
class CmaesOptimizerTest : public CmaesTest {};

// A cost to minimize on points [n, D] -> [n]; the core maximizes -cost.
using Cost = std::function<torch::Tensor(const torch::Tensor&)>;

torch::Tensor Sphere(const torch::Tensor& x) { return x.square().sum(1); }

// sum_i scale^(i / (D - 1)) x_i^2: condition number `scale`.
Cost Ellipsoid(int64_t dim, double scale) {
  torch::Tensor coefficients = torch::pow(scale, torch::linspace(0, 1, dim, kDouble));
  return [coefficients](const torch::Tensor& x) { return (x.square() * coefficients).sum(1); };
}

// The ellipsoid in a random orthonormal basis.
Cost RotatedEllipsoid(int64_t dim, double scale) {
  at::Generator generator = MakeGenerator(7, "test.rotation");
  torch::Tensor q = std::get<0>(torch::linalg_qr(torch::randn({dim, dim}, generator, kDouble)));
  Cost ellipsoid = Ellipsoid(dim, scale);
  return [q, ellipsoid](const torch::Tensor& x) { return ellipsoid(torch::matmul(x, q)); };
}

// Runs generations of `lambda` until the cost of the mean falls below
// `target`; returns the generations used, or -1 after `max_generations`.
int64_t GenerationsToReach(CmaesCore& core, const Cost& cost, int64_t lambda, double target,
                           int64_t max_generations, at::Generator& generator) {
  for (int64_t g = 1; g <= max_generations; ++g) {
    torch::Tensor x = core.Sample(lambda, generator);
    core.Update(x, -cost(x));
    EXPECT_TRUE(core.mean().isfinite().all().item<bool>());
    if (cost(core.mean().unsqueeze(0)).item<double>() < target) return g;
  }
  return -1;
}

TEST_F(CmaesCoreTest, ConvergesOnSphere) {
  const int64_t dim = 100;
  CmaesCore core(torch::full({dim}, 1.0, kDouble), 1.0, /*separable=*/false);
  at::Generator generator = MakeGenerator(1, "test");
  // From cost 100 to 1e-8: about 400 generations of 40 with this seed.
  const int64_t generations = GenerationsToReach(core, Sphere, 40, 1e-8, 1000, generator);
  EXPECT_GT(generations, 0) << "sigma " << core.sigma();
}

TEST_F(CmaesCoreTest, LearnsRotatedEllipsoid) {
  // Condition 1e3 in a random basis: an isotropic search would crawl along
  // the flat axes; the full covariance learns them.
  const int64_t dim = 100;
  const Cost cost = RotatedEllipsoid(dim, 1e3);
  CmaesCore core(torch::full({dim}, 1.0, kDouble), 1.0, /*separable=*/false);
  at::Generator generator = MakeGenerator(2, "test");
  // From cost ~1e4 to 1e-1: about 1000 generations of 40 with this seed.
  const int64_t generations = GenerationsToReach(core, cost, 40, 1e-1, 1800, generator);
  EXPECT_GT(generations, 0) << "sigma " << core.sigma();
  EXPECT_GT(core.AxisRatio(), 25.0);
}

TEST_F(CmaesCoreTest, SeparableConvergesOnHighDimensionalEllipsoid) {
  const int64_t dim = 500;
  const Cost cost = Ellipsoid(dim, 1e2);
  CmaesCore core(torch::full({dim}, 1.0, kDouble), 1.0, /*separable=*/true);
  at::Generator generator = MakeGenerator(3, "test");
  const double start = cost(core.mean().unsqueeze(0)).item<double>();
  // A 1000-fold reduction: about 650 generations of 40 with this seed.
  const int64_t generations = GenerationsToReach(core, cost, 40, start * 1e-3, 1200, generator);
  EXPECT_GT(generations, 0) << "sigma " << core.sigma();
  // The diagonal has learned the scales: the stiffest axis has the smallest
  // variance.
  torch::Tensor diagonal = core.CovarianceDiagonal();
  EXPECT_LT(diagonal[dim - 1].item<double>(), 0.5 * diagonal[0].item<double>());
}

TEST_F(CmaesCoreTest, SameSeedSameSamples) {
  for (bool separable : {false, true}) {
    CmaesCore a(torch::zeros({20}, kDouble), 0.5, separable);
    CmaesCore b(torch::zeros({20}, kDouble), 0.5, separable);
    at::Generator ga = MakeGenerator(5, "test");
    at::Generator gb = MakeGenerator(5, "test");
    for (int g = 0; g < 30; ++g) {
      torch::Tensor xa = a.Sample(10, ga);
      torch::Tensor xb = b.Sample(10, gb);
      ASSERT_TRUE(torch::equal(xa, xb)) << "generation " << g;
      a.Update(xa, -Sphere(xa));
      b.Update(xb, -Sphere(xb));
    }
  }
}

TEST_F(CmaesCoreTest, SaveLoadRestoresExactState) {
  for (bool separable : {false, true}) {
    CmaesCore core(torch::full({30}, 2.0, kDouble), 0.5, separable);
    at::Generator generator = MakeGenerator(6, "test");
    for (int g = 0; g < 7; ++g) {
      torch::Tensor x = core.Sample(12, generator);
      core.Update(x, -Sphere(x));
    }
    torch::serialize::OutputArchive out;
    core.Save(out, "core.");
    std::ostringstream bytes;
    out.save_to(bytes);
    torch::serialize::InputArchive in;
    std::istringstream read_bytes(bytes.str());
    in.load_from(read_bytes);
    CmaesCore restored(torch::zeros({30}, kDouble), 1.0, separable);
    ASSERT_TRUE(restored.Load(in, "core.").ok());
    at::Generator copy = MakeGenerator(0, "other");
    copy.set_state(generator.get_state());
    // Several generations, so that a lazy eigendecomposition falls among them.
    for (int g = 0; g < 10; ++g) {
      torch::Tensor x = core.Sample(12, generator);
      torch::Tensor y = restored.Sample(12, copy);
      ASSERT_TRUE(torch::equal(x, y)) << "generation " << g;
      core.Update(x, -Sphere(x));
      restored.Update(y, -Sphere(y));
    }
    EXPECT_EQ(core.sigma(), restored.sigma());

    CmaesCore other_dim(torch::zeros({31}, kDouble), 1.0, separable);
    std::istringstream again(bytes.str());
    torch::serialize::InputArchive in2;
    in2.load_from(again);
    EXPECT_EQ(other_dim.Load(in2, "core.").code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(other_dim.mean().size(0), 31);
  }
}

TEST_F(CmaesCoreTest, PartialGenerationsStillConverge) {
  // Only a quarter of each generation of 40 is answered (10, then 1 every
  // fifth generation): the update uses those alone.
  const int64_t dim = 30;
  CmaesCore core(torch::full({dim}, 1.0, kDouble), 0.5, /*separable=*/false);
  at::Generator generator = MakeGenerator(8, "test");
  const double start = Sphere(core.mean().unsqueeze(0)).item<double>();
  for (int g = 0; g < 400; ++g) {
    torch::Tensor x = core.Sample(40, generator);
    const int64_t answered = g % 5 == 4 ? 1 : 10;
    torch::Tensor kept = x.slice(0, 0, answered);
    core.Update(kept, -Sphere(kept));
    ASSERT_TRUE(core.mean().isfinite().all().item<bool>());
    ASSERT_TRUE(std::isfinite(core.sigma()) && core.sigma() > 0);
    ASSERT_TRUE(core.CovarianceDiagonal().isfinite().all().item<bool>());
  }
  EXPECT_LT(Sphere(core.mean().unsqueeze(0)).item<double>(), start * 1e-3);
}

TEST_F(CmaesCoreTest, OneGenerationOfFewAnsweredMovesMeanTowardOptimum) {
  // Five of forty answered: mu = 2, the mean moves to the weighted best two,
  // which on a linear slope lies downhill of the old mean.
  CmaesCore core(torch::zeros({10}, kDouble), 1.0, /*separable=*/false);
  at::Generator generator = MakeGenerator(9, "test");
  torch::Tensor x = core.Sample(40, generator).slice(0, 0, 5);
  torch::Tensor fitness = x.select(1, 0);  // maximize the first coordinate
  core.Update(x, fitness);
  torch::Tensor best = std::get<0>(torch::sort(fitness, /*dim=*/0, /*descending=*/true));
  EXPECT_GT(core.mean()[0].item<double>(), 0.0);
  EXPECT_GE(core.mean()[0].item<double>(), best[1].item<double>());
  EXPECT_LE(core.mean()[0].item<double>(), best[0].item<double>());
}

TEST_F(CmaesCoreTest, RepairedPointsKeepStateFinite) {
  // Points clamped to a box far from where they were drawn (as an image
  // space's Project may do) must not blow up the paths or C.
  const int64_t dim = 50;
  CmaesCore core(torch::full({dim}, 0.5, kDouble), 0.3, /*separable=*/false);
  at::Generator generator = MakeGenerator(10, "test");
  const Cost cost = [](const torch::Tensor& x) { return (x - 0.9).square().sum(1); };
  for (int g = 0; g < 200; ++g) {
    torch::Tensor x = core.Sample(20, generator).clamp(0, 1);
    core.Update(x, -cost(x));
    ASSERT_TRUE(core.CovarianceDiagonal().isfinite().all().item<bool>());
  }
  // The mean is a convex combination of points in the box, so stays in it.
  EXPECT_GE(core.mean().min().item<double>(), 0.0);
  EXPECT_LE(core.mean().max().item<double>(), 1.0);
  EXPECT_LT(cost(core.mean().unsqueeze(0)).item<double>(), 1e-3);
}

// ---- Through the Optimizer interface, on real image spaces ----

std::shared_ptr<const ImageSpace> Space(const std::string& name, ImageShape shape,
                                        std::map<std::string, double> params = {}) {
  ImageSpaceSpec spec;
  spec.name = name;
  spec.params = std::move(params);
  absl::StatusOr<std::shared_ptr<const ImageSpace>> space = MakeImageSpace(spec, shape);
  EXPECT_TRUE(space.ok()) << space.status();
  return *space;
}

std::unique_ptr<Optimizer> MakeCmaesOrDie(std::shared_ptr<const ImageSpace> space, uint64_t seed,
                                          std::map<std::string, double> params = {}) {
  OptimizerSpec spec;
  spec.name = "cmaes";
  spec.params = std::move(params);
  OptimizerContext context;
  context.image_space = std::move(space);
  context.objective = std::make_shared<Objective>(*Objective::Create({}, 1));
  context.seed = seed;
  absl::StatusOr<std::unique_ptr<Optimizer>> optimizer = MakeOptimizer(spec, context);
  EXPECT_TRUE(optimizer.ok()) << optimizer.status();
  return std::move(*optimizer);
}

// Minus the mean squared difference from `target` [C, H, W].
double Closeness(const torch::Tensor& image, const torch::Tensor& target) {
  return -(image - target).square().mean().item<double>();
}

std::vector<Observation> Score(const std::vector<Candidate>& candidates,
                               const torch::Tensor& target) {
  std::vector<Observation> observations;
  for (const Candidate& c : candidates) {
    observations.push_back({c.id, Closeness(c.image, target), 1});
  }
  return observations;
}

bool SameCandidates(const std::vector<Candidate>& a, const std::vector<Candidate>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].id != b[i].id || !torch::equal(a[i].code, b[i].code) ||
        !torch::equal(a[i].image, b[i].image)) {
      return false;
    }
  }
  return true;
}

TEST_F(CmaesOptimizerTest, RejectsBadParameters) {
  std::shared_ptr<const ImageSpace> space = Space("pixel", {1, 8, 8});
  OptimizerContext context;
  context.image_space = space;
  context.objective = std::make_shared<Objective>(*Objective::Create({}, 1));
  for (const auto& [params, field] :
       std::vector<std::pair<std::map<std::string, double>, std::string>>{
           {{{"sigma0", -1}}, "optimizer.params.sigma0"},
           {{{"full_cov_max_dim", 5000}}, "optimizer.params.full_cov_max_dim"},
           {{{"full_cov_max_dim", 2.5}}, "optimizer.params.full_cov_max_dim"},
           {{{"popsize", 10}}, "optimizer.params.popsize"}}) {
    OptimizerSpec spec;
    spec.name = "cmaes";
    spec.params = params;
    absl::StatusOr<std::unique_ptr<Optimizer>> optimizer = MakeOptimizer(spec, context);
    ASSERT_FALSE(optimizer.ok()) << field;
    EXPECT_EQ(optimizer.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(optimizer.status().message().find(field), std::string::npos) << optimizer.status();
  }
}

TEST_F(CmaesOptimizerTest, PixelCandidatesAreTheShownImages) {
  std::shared_ptr<const ImageSpace> space = Space("pixel", {1, 8, 8});
  std::unique_ptr<Optimizer> optimizer = MakeCmaesOrDie(space, 1, {{"sigma0", 0.5}});
  absl::StatusOr<std::vector<Candidate>> candidates = optimizer->Ask(40, 100);
  ASSERT_TRUE(candidates.ok()) << candidates.status();
  ASSERT_EQ(candidates->size(), 40u);
  for (int i = 0; i < 40; ++i) {
    const Candidate& c = (*candidates)[i];
    EXPECT_EQ(c.id, 100 + i);
    EXPECT_EQ(c.origin, "cmaes");
    ASSERT_EQ(c.image.sizes().vec(), (std::vector<int64_t>{1, 8, 8}));
    EXPECT_TRUE(torch::equal(c.image, QuantizeImages(c.image)));
    // The code is exactly the shown 8-bit image (sigma0 = 0.5 clamps many).
    EXPECT_TRUE(torch::equal(c.code, c.image.reshape({64})));
  }
  EXPECT_TRUE(torch::equal(optimizer->BestGuess(), QuantizeImages(optimizer->BestGuess())));
}

TEST_F(CmaesOptimizerTest, ApproachesTargetImageInSpectralSpace) {
  // 16 x 16 image, 8 x 8 frequencies: D = 64, full covariance.
  // Low contrast: the target image barely clips, so it is reachable.
  std::shared_ptr<const ImageSpace> space =
      Space("spectral", {1, 16, 16}, {{"cutoff", 8}, {"contrast", 0.15}});
  at::Generator generator = MakeGenerator(99, "test.target");
  torch::Tensor target = QuantizeImages(space->Decode(space->SamplePrior(1, generator)))[0];
  // The target is a prior image, inside the prior's range: a first step of
  // half the prior's scale (Hansen's advice), not the neuron-control default.
  std::unique_ptr<Optimizer> optimizer = MakeCmaesOrDie(space, 2, {{"sigma0", 0.5}});
  const double start = Closeness(optimizer->BestGuess(), target);
  int64_t next_id = 0;
  for (int g = 0; g < 100; ++g) {
    absl::StatusOr<std::vector<Candidate>> candidates = optimizer->Ask(40, next_id);
    ASSERT_TRUE(candidates.ok()) << candidates.status();
    next_id += 40;
    ASSERT_TRUE(optimizer->Tell(Score(*candidates, target)).ok());
  }
  ASSERT_TRUE(optimizer->Ask(40, next_id).ok());  // applies the last update
  const double end = Closeness(optimizer->BestGuess(), target);
  EXPECT_GT(end, start * 0.05) << "start " << start << " end " << end;
}

TEST_F(CmaesOptimizerTest, SameSeedSameProposalsAndSaveLoadResumesExactly) {
  std::shared_ptr<const ImageSpace> space = Space("spectral", {1, 16, 16}, {{"cutoff", 8}});
  torch::Tensor target = torch::full({1, 16, 16}, 0.8);
  std::unique_ptr<Optimizer> a = MakeCmaesOrDie(space, 3);
  std::unique_ptr<Optimizer> b = MakeCmaesOrDie(space, 3);
  int64_t next_id = 0;
  for (int g = 0; g < 5; ++g) {
    absl::StatusOr<std::vector<Candidate>> ca = a->Ask(20, next_id);
    absl::StatusOr<std::vector<Candidate>> cb = b->Ask(20, next_id);
    ASSERT_TRUE(ca.ok() && cb.ok());
    ASSERT_TRUE(SameCandidates(*ca, *cb)) << "generation " << g;
    next_id += 20;
    std::vector<Observation> scores = Score(*ca, target);
    scores.resize(g == 4 ? 7 : 20);  // the last generation: a partial answer
    ASSERT_TRUE(a->Tell(scores).ok());
    ASSERT_TRUE(b->Tell(scores).ok());
  }
  // Mid-generation: 7 of 20 answered. A fresh instance with another seed,
  // restored, continues exactly as the original.
  const std::string state = SaveOptimizerState(*a);
  std::unique_ptr<Optimizer> restored = MakeCmaesOrDie(space, 12345);
  ASSERT_TRUE(LoadOptimizerState(*restored, state).ok());
  for (int g = 0; g < 3; ++g) {
    absl::StatusOr<std::vector<Candidate>> ca = a->Ask(20, next_id);
    absl::StatusOr<std::vector<Candidate>> cr = restored->Ask(20, next_id);
    ASSERT_TRUE(ca.ok() && cr.ok());
    ASSERT_TRUE(SameCandidates(*ca, *cr)) << "generation after load " << g;
    EXPECT_TRUE(torch::equal(a->BestGuess(), restored->BestGuess()));
    next_id += 20;
    ASSERT_TRUE(a->Tell(Score(*ca, target)).ok());
    ASSERT_TRUE(restored->Tell(Score(*cr, target)).ok());
  }
  // A state of another code size does not load, and changes nothing.
  std::unique_ptr<Optimizer> other = MakeCmaesOrDie(Space("pixel", {1, 4, 4}), 3);
  torch::Tensor before = other->BestGuess();
  EXPECT_EQ(LoadOptimizerState(*other, state).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(torch::equal(other->BestGuess(), before));
}

TEST_F(CmaesOptimizerTest, UnknownIdIsRejectedAndChangesNothing) {
  std::shared_ptr<const ImageSpace> space = Space("pixel", {1, 8, 8});
  torch::Tensor target = torch::full({1, 8, 8}, 0.2);
  std::unique_ptr<Optimizer> a = MakeCmaesOrDie(space, 4);
  std::unique_ptr<Optimizer> b = MakeCmaesOrDie(space, 4);
  absl::StatusOr<std::vector<Candidate>> ca = a->Ask(10, 0);
  absl::StatusOr<std::vector<Candidate>> cb = b->Ask(10, 0);
  ASSERT_TRUE(ca.ok() && cb.ok());
  std::vector<Observation> scores = Score(*ca, target);
  std::vector<Observation> bad = scores;
  bad.push_back({10, 1.0, 1});  // never proposed
  absl::Status status = a->Tell(bad);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("observations[10].id"), std::string::npos) << status;
  EXPECT_EQ(a->Tell({{3, std::nan(""), 1}}).code(), absl::StatusCode::kInvalidArgument);
  // Neither failed Tell recorded anything: both generations update from the
  // same answers.
  ASSERT_TRUE(a->Tell(absl::MakeSpan(scores).subspan(0, 5)).ok());
  ASSERT_TRUE(b->Tell(absl::MakeSpan(scores).subspan(0, 5)).ok());
  ca = a->Ask(10, 10);
  cb = b->Ask(10, 10);
  ASSERT_TRUE(ca.ok() && cb.ok());
  EXPECT_TRUE(SameCandidates(*ca, *cb));
  EXPECT_TRUE(torch::equal(a->BestGuess(), b->BestGuess()));
}

TEST_F(CmaesOptimizerTest, UnansweredGenerationResamplesAndLateValuesAreIgnored) {
  std::shared_ptr<const ImageSpace> space = Space("spectral", {1, 16, 16}, {{"cutoff", 4}});
  torch::Tensor target = torch::full({1, 16, 16}, 0.7);
  std::unique_ptr<Optimizer> optimizer = MakeCmaesOrDie(space, 5);
  const torch::Tensor initial = optimizer->BestGuess();
  absl::StatusOr<std::vector<Candidate>> first = optimizer->Ask(10, 0);
  ASSERT_TRUE(first.ok());
  // Nobody answered: a fresh generation from the same distribution.
  absl::StatusOr<std::vector<Candidate>> second = optimizer->Ask(10, 10);
  ASSERT_TRUE(second.ok());
  EXPECT_TRUE(torch::equal(optimizer->BestGuess(), initial));
  EXPECT_FALSE(torch::equal((*first)[0].code, (*second)[0].code));
  // A value for the first generation is known but too late: ignored.
  ASSERT_TRUE(optimizer->Tell(Score(*first, target)).ok());
  ASSERT_TRUE(optimizer->Ask(10, 20).ok());
  EXPECT_TRUE(torch::equal(optimizer->BestGuess(), initial));
}

TEST_F(CmaesOptimizerTest, PartialAnswersMoveTheMeanTowardTheBest) {
  // Only 3 of 40 answered, one told twice (the second value replaces the
  // first): the mean moves to the weighted best one of them (mu = 1).
  std::shared_ptr<const ImageSpace> space = Space("pixel", {1, 4, 4});
  std::unique_ptr<Optimizer> optimizer = MakeCmaesOrDie(space, 6);
  absl::StatusOr<std::vector<Candidate>> candidates = optimizer->Ask(40, 0);
  ASSERT_TRUE(candidates.ok());
  ASSERT_TRUE(optimizer->Tell({{0, 5.0, 1}, {1, 1.0, 1}, {2, 3.0, 1}}).ok());
  ASSERT_TRUE(optimizer->Tell({{0, 0.0, 1}}).ok());  // a late repeat lowered it
  ASSERT_TRUE(optimizer->Ask(40, 40).ok());
  // mu = 1: the new mean is the best answered candidate's code, candidate 2.
  EXPECT_TRUE(torch::allclose(optimizer->BestGuess(), (*candidates)[2].image));
}

}  // namespace
}  // namespace stimloop
