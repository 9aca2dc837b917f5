#include "optimizers/objective.h"

#include <limits>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace stimloop {
namespace {

void ExpectInvalid(const ObjectiveSpec& spec, int num_neurons, const std::string& field) {
  const absl::StatusOr<Objective> objective = Objective::Create(spec, num_neurons);
  ASSERT_FALSE(objective.ok());
  EXPECT_EQ(objective.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(objective.status().message().find(field), std::string::npos)
      << objective.status();
}

TEST(ObjectiveTest, SingleNeuronPicksItsRate) {
  ObjectiveSpec spec;
  spec.index = 2;
  auto objective = Objective::Create(spec, 4);
  ASSERT_TRUE(objective.ok()) << objective.status();
  const std::vector<double> rates = {1, 2, 30, 4};
  EXPECT_DOUBLE_EQ(objective->Evaluate(rates), 30);
  EXPECT_EQ(objective->num_neurons(), 4);
}

TEST(ObjectiveTest, WeightedSum) {
  ObjectiveSpec spec;
  spec.kind = ObjectiveSpec::Kind::kWeightedSum;
  spec.weights = {0.5, -1, 2};
  auto objective = Objective::Create(spec, 3);
  ASSERT_TRUE(objective.ok()) << objective.status();
  const std::vector<double> rates = {4, 1, 3};
  EXPECT_DOUBLE_EQ(objective->Evaluate(rates), 2 - 1 + 6);
}

TEST(ObjectiveTest, PopulationControlDrivesTheTargetAndSilencesTheOthers) {
  ObjectiveSpec spec;
  spec.kind = ObjectiveSpec::Kind::kPopulationControl;
  spec.index = 1;
  spec.others_weight = 2;
  auto objective = Objective::Create(spec, 4);
  ASSERT_TRUE(objective.ok()) << objective.status();
  // target 10 minus 2 x mean(3, 6, 9) = 10 - 12.
  const std::vector<double> rates = {3, 10, 6, 9};
  EXPECT_DOUBLE_EQ(objective->Evaluate(rates), -2);
}

TEST(ObjectiveTest, TensorEvaluationMatchesAndIsDifferentiable) {
  ObjectiveSpec spec;
  spec.kind = ObjectiveSpec::Kind::kPopulationControl;
  spec.index = 0;
  auto objective = Objective::Create(spec, 3);
  ASSERT_TRUE(objective.ok());
  const torch::Tensor rates =
      torch::tensor({{10.0f, 2.0f, 4.0f}, {1.0f, 1.0f, 1.0f}}).requires_grad_(true);
  const torch::Tensor values = objective->Evaluate(rates);
  ASSERT_EQ(values.sizes(), (torch::IntArrayRef{2}));
  EXPECT_FLOAT_EQ(values[0].item<float>(), 7.0f);
  EXPECT_FLOAT_EQ(values[1].item<float>(), 0.0f);
  values.sum().backward();
  EXPECT_TRUE(torch::allclose(rates.grad(), torch::tensor({{1.0f, -0.5f, -0.5f},
                                                           {1.0f, -0.5f, -0.5f}})));
}

TEST(ObjectiveTest, ValidationNamesTheField) {
  ObjectiveSpec single;
  single.index = 3;
  ExpectInvalid(single, 3, "objective.single_neuron.index: 3 is outside [0, 2]");
  ExpectInvalid(single, 0, "num_neurons");

  ObjectiveSpec weighted;
  weighted.kind = ObjectiveSpec::Kind::kWeightedSum;
  weighted.weights = {1, 2};
  ExpectInvalid(weighted, 3, "objective.weighted_sum.weights: has 2 values");
  weighted.weights = {1, std::numeric_limits<double>::infinity(), 2};
  ExpectInvalid(weighted, 3, "objective.weighted_sum.weights[1]");

  ObjectiveSpec control;
  control.kind = ObjectiveSpec::Kind::kPopulationControl;
  ExpectInvalid(control, 1, "objective.population_control");
  control.index = 5;
  ExpectInvalid(control, 3, "objective.population_control.target: 5");
  control.index = 0;
  control.others_weight = -1;
  ExpectInvalid(control, 3, "objective.population_control.others_weight");
}

}  // namespace
}  // namespace stimloop
