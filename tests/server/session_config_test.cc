// CheckNoUnusedFields (server/session_config.h): what each optimizer and
// image space reads may be set; nothing else. And the default strategy's
// surrogate settings in the resolved config.
#include "server/session_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace stimloop {
namespace {

using ::testing::HasSubstr;

v1::SessionConfig Config(const std::string& optimizer) {
  v1::SessionConfig config;
  config.mutable_image()->set_height(16);
  config.mutable_image()->set_width(16);
  config.set_num_neurons(1);
  config.mutable_optimizer()->set_name(optimizer);
  config.mutable_image_space()->set_name("spectral");
  return config;
}

absl::Status Check(const v1::SessionConfig& config) {
  auto resolved = ResolveConfig(config);
  EXPECT_TRUE(resolved.ok()) << resolved.status();
  return resolved.ok() ? CheckNoUnusedFields(*resolved) : resolved.status();
}

TEST(CheckNoUnusedFieldsTest, FieldsTheOptimizerReadsAreAccepted) {
  EXPECT_TRUE(Check(Config("genetic")).ok());
  for (const std::string optimizer : {"gradient_ascent", "adaptive_sampling"}) {
    v1::SessionConfig config = Config(optimizer);
    (*config.mutable_surrogate()->mutable_params())["refit_every"] = 40;
    config.mutable_surrogate()->set_frontend_path("/models/frontend.pt");
    EXPECT_TRUE(Check(config).ok()) << optimizer;
    config.mutable_surrogate()->Clear();
    config.mutable_surrogate()->set_model_path("/models/v4.pt");
    EXPECT_TRUE(Check(config).ok()) << optimizer;
  }
  v1::SessionConfig pool = Config("adaptive_sampling");
  pool.mutable_optimizer()->set_candidate_pool_dir("/images");
  EXPECT_TRUE(Check(pool).ok());
  v1::SessionConfig references = Config("cmaes");
  references.mutable_reference_images()->set_dir("/images");
  references.mutable_reference_images()->set_per_generation(2);
  EXPECT_TRUE(Check(references).ok());
}

TEST(CheckNoUnusedFieldsTest, ParamsOfAFixedModelAreUnused) {
  v1::SessionConfig config = Config("gradient_ascent");
  config.mutable_surrogate()->set_model_path("/models/v4.pt");
  (*config.mutable_surrogate()->mutable_params())["refit_every"] = 40;
  (*config.mutable_surrogate()->mutable_params())["ensemble_size"] = 3;
  const absl::Status status = Check(config);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "config.surrogate.params.ensemble_size: set, but config.surrogate.model_path names a "
            "fixed model, which is never fitted; leave it empty");
}

TEST(CheckNoUnusedFieldsTest, ModelFreeOptimizersTakeNoSurrogate) {
  v1::SessionConfig config = Config("cmaes");
  config.mutable_surrogate()->set_model_path("/models/v4.pt");
  const absl::Status status = Check(config);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("config.surrogate.model_path: set, but optimizer 'cmaes' uses no "
                        "surrogate"));
}

// With no optimizer named, the default strategy's surrogate (both model
// classes) is written into the stored config; a model_class or a
// model_path the config gives wins, and keys it sets are kept.
TEST(DefaultStrategyConfigTest, StoresBothModelClassesUnlessTheConfigChoosesAModel) {
  v1::SessionConfig config = Config("");
  config.clear_image_space();
  auto resolved = ResolveConfig(config);
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  const auto& params = resolved->proto.surrogate().params();
  EXPECT_EQ(params.at("model_class"), 2);
  EXPECT_EQ(params.at("parametric_starts"), 4);
  EXPECT_EQ(params.at("parametric_steps"), 100);
  EXPECT_EQ(resolved->surrogate.spec.model_class, SurrogateClass::kPaired);

  (*config.mutable_surrogate()->mutable_params())["parametric_steps"] = 50;
  resolved = ResolveConfig(config);
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(resolved->proto.surrogate().params().at("parametric_steps"), 50);

  (*config.mutable_surrogate()->mutable_params())["model_class"] = 0;
  resolved = ResolveConfig(config);
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(resolved->proto.surrogate().params().count("parametric_starts"), 0u);
  EXPECT_EQ(resolved->surrogate.spec.model_class, SurrogateClass::kFlexible);

  v1::SessionConfig fixed = Config("");
  fixed.mutable_surrogate()->set_model_path("model.pt");
  resolved = ResolveConfig(fixed);
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_TRUE(resolved->proto.surrogate().params().empty());
}

}  // namespace
}  // namespace stimloop
