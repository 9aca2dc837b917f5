// Test helpers for the model-free optimizers: a noiseless toy objective and
// an ask/tell loop that plays the session's part.
#ifndef STIMLOOP_TESTS_OPTIMIZERS_TOY_LOOP_H_
#define STIMLOOP_TESTS_OPTIMIZERS_TOY_LOOP_H_

#include <cstdint>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "optimizers/image_space.h"
#include "optimizers/objective.h"
#include "optimizers/optimizer.h"
#include <torch/serialize/archive.h>
#include <torch/types.h>

namespace stimloop::testing {

// Pearson correlation of two images.
inline double Correlation(const torch::Tensor& a, const torch::Tensor& b) {
  const torch::Tensor x = a.flatten().to(torch::kDouble) - a.to(torch::kDouble).mean();
  const torch::Tensor y = b.flatten().to(torch::kDouble) - b.to(torch::kDouble).mean();
  const double denom = (x.norm() * y.norm()).item<double>();
  return denom > 0 ? (x * y).sum().item<double>() / denom : 0.0;
}

inline std::shared_ptr<const ImageSpace> MakeSpace(const std::string& name, ImageShape shape,
                                                   std::map<std::string, double> params = {}) {
  ImageSpaceSpec spec;
  spec.name = name;
  spec.params = std::move(params);
  auto space = MakeImageSpace(spec, shape);
  EXPECT_TRUE(space.ok()) << space.status();
  return *space;
}

inline OptimizerContext MakeContext(std::shared_ptr<const ImageSpace> space, uint64_t seed) {
  OptimizerContext context;
  context.image_space = std::move(space);
  context.objective =
      std::make_shared<const Objective>(*Objective::Create(ObjectiveSpec{}, 1));
  context.seed = seed;
  return context;
}

inline std::unique_ptr<Optimizer> MakeOrDie(const std::string& name,
                                            const OptimizerContext& context,
                                            std::map<std::string, double> params = {}) {
  OptimizerSpec spec;
  spec.name = name;
  spec.params = std::move(params);
  auto optimizer = MakeOptimizer(spec, context);
  EXPECT_TRUE(optimizer.ok()) << optimizer.status();
  return optimizer.ok() ? *std::move(optimizer) : nullptr;
}

// Observations: the correlation of every candidate's image with `target`.
inline std::vector<Observation> Score(const std::vector<Candidate>& candidates,
                                      const torch::Tensor& target) {
  std::vector<Observation> observations;
  for (const Candidate& c : candidates) {
    observations.push_back({c.id, Correlation(c.image, target), 1});
  }
  return observations;
}

// What a toy run measured: the best objective of every generation.
struct ToyRun {
  std::vector<double> generation_best;
  double best() const {
    double b = -1e300;
    for (double v : generation_best) b = std::max(b, v);
    return b;
  }
};

// `generations` rounds of Ask(count) then Tell of every candidate's score.
inline ToyRun RunToy(Optimizer& optimizer, const torch::Tensor& target, int generations,
                     int count) {
  ToyRun run;
  int64_t next_id = 1;
  for (int g = 0; g < generations; ++g) {
    auto candidates = optimizer.Ask(count, next_id);
    EXPECT_TRUE(candidates.ok()) << candidates.status();
    if (!candidates.ok()) return run;
    next_id += count;
    const std::vector<Observation> observations = Score(*candidates, target);
    double best = -1e300;
    for (const Observation& o : observations) best = std::max(best, o.objective);
    run.generation_best.push_back(best);
    EXPECT_TRUE(optimizer.Tell(observations).ok());
  }
  return run;
}

inline std::string SaveToString(const Optimizer& optimizer) {
  torch::serialize::OutputArchive archive;
  optimizer.Save(archive);
  std::ostringstream out;
  archive.save_to(out);
  return out.str();
}

inline absl::Status LoadFromString(Optimizer& optimizer, const std::string& bytes) {
  torch::serialize::InputArchive archive;
  std::istringstream in(bytes);
  archive.load_from(in);
  return optimizer.Load(archive);
}

// True when both batches have the same ids and bit-identical images.
inline bool SameImages(const std::vector<Candidate>& a, const std::vector<Candidate>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].id != b[i].id || !torch::equal(a[i].image, b[i].image)) return false;
  }
  return true;
}

}  // namespace stimloop::testing

#endif  // STIMLOOP_TESTS_OPTIMIZERS_TOY_LOOP_H_
