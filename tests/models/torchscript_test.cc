// Bring-your-own TorchScript front ends and whole models: the contract is
// checked at creation and breaches are INVALID_ARGUMENT naming the field.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <fstream>
#include <string>

#include "models/surrogate_config.h"
#include "models/torchscript_model.h"
#include "models/trainer.h"

namespace stimloop {
namespace {

constexpr ModelImageShape kShape{1, 32, 32};

// Saves a TorchScript module whose forward is `body` (TorchScript source).
std::string SaveModule(const std::string& name, const std::string& body) {
  torch::jit::Module module(name);
  module.register_parameter("scale", torch::ones({1}), /*is_buffer=*/false);
  module.define("def forward(self, x):\n    " + body + "\n");
  const std::string path = ::testing::TempDir() + "/" + name + ".pt";
  module.save(path);
  return path;
}

void ExpectInvalid(const absl::Status& status, const std::string& field,
                   const std::string& words) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_EQ(status.message().rfind(field + ": ", 0), 0u) << status;
  EXPECT_NE(status.message().find(words), std::string::npos) << status;
}

SurrogateSpec WithFrontEnd(const std::string& path) {
  absl::StatusOr<SurrogateSpec> spec =
      ParseSurrogateSpec({{"ensemble_size", 2}, {"max_epochs", 3}}, path, "");
  EXPECT_TRUE(spec.ok()) << spec.status();
  return *spec;
}

TEST(TorchScriptFrontEndTest, ReplacesTheGaborBankAndTrains) {
  const std::string path =
      SaveModule("pool_front", "return torch.avg_pool2d(x - 0.5, [4, 4]) * self.scale");
  absl::StatusOr<std::shared_ptr<const FrontEnd>> front_end = MakeFrontEnd(WithFrontEnd(path), kShape);
  ASSERT_TRUE(front_end.ok()) << front_end.status();
  EXPECT_EQ((*front_end)->feature_shape().channels, 1);
  EXPECT_EQ((*front_end)->feature_shape().height, 8);
  EXPECT_EQ((*front_end)->Describe(), "torchscript:" + path);

  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  TrainingData data;
  data.images = torch::round(torch::rand({80, 1, 32, 32}, gen) * 255) / 255;
  data.rates = data.images.mean({1, 2, 3}).unsqueeze(1) * 20;
  auto model = FitSurrogate(data, WithFrontEnd(path), *front_end, 1, 1, nullptr, nullptr);
  ASSERT_TRUE(model.ok()) << model.status();
  torch::Tensor images = data.images.narrow(0, 0, 4).clone().requires_grad_(true);
  const torch::Tensor rates = (*model)->PredictMembers(images);
  EXPECT_EQ(rates.sizes(), (std::vector<int64_t>{2, 4, 1}));
  rates.sum().backward();
  EXPECT_GT(images.grad().abs().sum().item<double>(), 0);
}

TEST(TorchScriptFrontEndTest, BadFilesAndContractsAreInvalidArgument) {
  const std::string field = "config.surrogate.frontend_path";
  const std::string missing = ::testing::TempDir() + "/no_such_model.pt";
  ExpectInvalid(MakeFrontEnd(WithFrontEnd(missing), kShape).status(), field, "does not exist");

  const std::string garbage = ::testing::TempDir() + "/garbage.pt";
  std::ofstream(garbage) << "this is not a zip archive";
  ExpectInvalid(MakeFrontEnd(WithFrontEnd(garbage), kShape).status(), field,
                "not a loadable TorchScript module");

  ExpectInvalid(MakeFrontEnd(WithFrontEnd(SaveModule("flat", "return x.flatten(1)")), kShape)
                    .status(),
                field, "features [N, F, h, w]");
  ExpectInvalid(MakeFrontEnd(WithFrontEnd(SaveModule("nan", "return x * float('nan')")), kShape)
                    .status(),
                field, "not finite");
  ExpectInvalid(MakeFrontEnd(WithFrontEnd(SaveModule("pair", "return (x, x)")), kShape).status(),
                field, "one tensor");
  ExpectInvalid(
      MakeFrontEnd(WithFrontEnd(SaveModule("throws", "return x.view(-1, 7, 3)")), kShape).status(),
      field, "failed on a dummy batch [2, 1, 32, 32]");
  ExpectInvalid(
      MakeFrontEnd(WithFrontEnd(SaveModule("batch", "return x[0:1]")), kShape).status(), field,
      "first dimension must be N");
}

TEST(TorchScriptSurrogateTest, WholeModelIsUsedAsIsAndChecked) {
  const std::string field = "config.surrogate.model_path";
  const std::string good =
      SaveModule("whole", "return torch.cat([x.mean([1, 2, 3]), x.amax([1, 2, 3])]).view(2, -1).t() * self.scale * 10.0");
  auto model = TorchScriptSurrogate::Load(good, kShape, 2);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->version(), 1);
  EXPECT_EQ((*model)->num_members(), 1);
  const torch::Tensor images = torch::full({3, 1, 32, 32}, 0.25f);
  const torch::Tensor rates = (*model)->PredictMembers(images);
  ASSERT_EQ(rates.sizes(), (std::vector<int64_t>{1, 3, 2}));
  EXPECT_NEAR(rates[0][1][0].item<float>(), 2.5f, 1e-5);

  ExpectInvalid(TorchScriptSurrogate::Load(good, kShape, 3).status(), field,
                "rates [N, num_neurons] = [N, 3]; got [2, 2]");
  ExpectInvalid(
      TorchScriptSurrogate::Load(SaveModule("negative", "return x.mean([2, 3]) - 1.0"), kShape, 1)
          .status(),
      field, "negative rates");
  ExpectInvalid(TorchScriptSurrogate::Load(::testing::TempDir() + "/absent.pt", kShape, 1).status(),
                field, "does not exist");
  // A spec naming both is refused, and a whole model has no front end.
  EXPECT_EQ(ParseSurrogateSpec({}, good, good).status().code(), absl::StatusCode::kInvalidArgument);
  absl::StatusOr<SurrogateSpec> spec = ParseSurrogateSpec({}, "", good);
  ASSERT_TRUE(spec.ok());
  EXPECT_EQ(MakeFrontEnd(*spec, kShape).status().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace stimloop
