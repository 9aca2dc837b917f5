// Server-side files named in a request (reference images, candidate pool,
// TorchScript front end, whole model and generator) are read only from the
// server's assets folder (--assets_dir, default <data_dir>/assets), named
// relative to it: over gRPC, each field is accepted inside and refused with
// INVALID_ARGUMENT naming it when absolute, with '..', or through a symlink
// leading out; a session naming such files resumes after a restart.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/script.h>
#include <torch/torch.h>

#include "optimizers/image_io.h"
#include "tests/integration/test_server.h"

namespace stimloop {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

void WritePngs(const fs::path& dir, int count) {
  fs::create_directories(dir);
  for (int i = 0; i < count; ++i) {
    auto png = EncodePng(torch::full({1, 24, 24}, 20 + 40 * i, torch::kUInt8));
    ASSERT_TRUE(png.ok()) << png.status();
    std::ofstream(dir / ("image" + std::to_string(i) + ".png"), std::ios::binary) << *png;
  }
}

// A TorchScript module whose forward is `body`, saved to `path`.
void SaveModule(const fs::path& path, const std::string& body) {
  torch::jit::Module module("m");
  module.register_parameter("scale", torch::ones({1}), /*is_buffer=*/false);
  module.define("def forward(self, x):\n    " + body + "\n");
  module.save(path.string());
}

// One of the five fields: how a config names a path in it.
struct Field {
  const char* name;
  const char* inside;   // relative path of the real file or folder
  const char* outside;  // relative path of a symlink that leads out
  v1::SessionConfig (*config)(const std::string& path);
};

v1::SessionConfig ReferenceConfig(const std::string& path) {
  v1::SessionConfig config = SmallConfig(11);
  config.mutable_reference_images()->set_dir(path);
  config.mutable_reference_images()->set_per_generation(2);
  return config;
}

v1::SessionConfig ModelConfig(const std::string& optimizer) {
  v1::SessionConfig config = SmallConfig(12);
  config.mutable_optimizer()->set_name(optimizer);
  auto& surrogate = *config.mutable_surrogate()->mutable_params();
  surrogate["ensemble_size"] = 1;
  surrogate["max_epochs"] = 2;
  return config;
}

v1::SessionConfig PoolConfig(const std::string& path) {
  v1::SessionConfig config = ModelConfig("adaptive_sampling");
  config.mutable_optimizer()->set_candidate_pool_dir(path);
  return config;
}

v1::SessionConfig FrontEndConfig(const std::string& path) {
  v1::SessionConfig config = ModelConfig("gradient_ascent");
  config.mutable_surrogate()->set_frontend_path(path);
  return config;
}

v1::SessionConfig WholeModelConfig(const std::string& path) {
  v1::SessionConfig config = ModelConfig("gradient_ascent");
  config.mutable_surrogate()->mutable_params()->clear();
  config.mutable_surrogate()->set_model_path(path);
  return config;
}

v1::SessionConfig GeneratorConfig(const std::string& path) {
  v1::SessionConfig config = SmallConfig(13);
  config.mutable_image_space()->set_name("torchscript");
  config.mutable_image_space()->set_generator_path(path);
  return config;
}

const Field kFields[] = {
    {"config.reference_images.dir", "refs", "refs_out", ReferenceConfig},
    {"config.optimizer.candidate_pool_dir", "pool", "pool_out", PoolConfig},
    {"config.surrogate.frontend_path", "models/front.pt", "models/front_out.pt", FrontEndConfig},
    {"config.surrogate.model_path", "models/whole.pt", "models/whole_out.pt", WholeModelConfig},
    {"config.image_space.generator_path", "models/generator.pt", "models/generator_out.pt",
     GeneratorConfig},
};

// <work>/assets holds every file a field may name; <work>/outside holds the
// same files, reachable from the assets folder only through symlinks.
class AssetPathsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    work_ = new fs::path(FreshTempDir("asset-paths"));
    for (const fs::path& root : {Assets(), Outside()}) {
      WritePngs(root / "refs", 2);
      WritePngs(root / "pool", 6);
      fs::create_directories(root / "models");
      SaveModule(root / "models" / "front.pt",
                 "return torch.avg_pool2d(x - 0.5, [4, 4]) * self.scale");
      SaveModule(root / "models" / "whole.pt", "return x.mean([2, 3]) * self.scale");
      SaveModule(root / "models" / "generator.pt", "return x * self.scale");
    }
    fs::create_directory_symlink(Outside() / "refs", Assets() / "refs_out");
    fs::create_directory_symlink(Outside() / "pool", Assets() / "pool_out");
    for (const char* name : {"front", "whole", "generator"}) {
      fs::create_symlink(Outside() / "models" / (std::string(name) + ".pt"),
                         Assets() / "models" / (std::string(name) + "_out.pt"));
    }
    server_ =
        StartTestServer("asset-paths-server", {"--assets_dir=" + Assets().string()}).release();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
    fs::remove_all(*work_);
    delete work_;
  }
  static fs::path Assets() { return *work_ / "assets"; }
  static fs::path Outside() { return *work_ / "outside"; }

  static fs::path* work_;
  static ServerProcess* server_;
};

fs::path* AssetPathsTest::work_ = nullptr;
ServerProcess* AssetPathsTest::server_ = nullptr;

TEST_F(AssetPathsTest, EachFieldIsAcceptedInsideTheAssetsFolder) {
  ASSERT_NE(server_, nullptr);
  auto client = ConnectTo(*server_);
  ASSERT_NE(client, nullptr);
  for (const Field& field : kFields) {
    SCOPED_TRACE(field.name);
    auto session = client->CreateSession(field.config(field.inside));
    if (std::string(field.name) == "config.image_space.generator_path") {
      // The path passes; this build has no TorchScript image space yet.
      EXPECT_EQ(session.status().code(), absl::StatusCode::kInvalidArgument);
      EXPECT_THAT(std::string(session.status().message()),
                  StartsWith("config.image_space.name: 'torchscript'"));
      continue;
    }
    ASSERT_TRUE(session.ok()) << session.status();
    ASSERT_TRUE(client->CloseSession(session->id()).ok());
  }
}

TEST_F(AssetPathsTest, ReferenceImagesAreReadFromTheAssetsFolder) {
  ASSERT_NE(server_, nullptr);
  auto client = ConnectTo(*server_);
  ASSERT_NE(client, nullptr);
  auto session = client->CreateSession(ReferenceConfig("refs"));
  ASSERT_TRUE(session.ok()) << session.status();
  EXPECT_EQ(session->config().reference_images().dir(), "refs");
  auto batch = client->NextStimuli(session->id(), 0);
  ASSERT_TRUE(batch.ok()) << batch.status();
  int references = 0;
  for (const v1::Stimulus& s : batch->stimuli()) references += s.is_reference() ? 1 : 0;
  EXPECT_EQ(references, 2);
  ASSERT_TRUE(client->CloseSession(session->id()).ok());
}

TEST_F(AssetPathsTest, EachFieldRefusesAbsoluteDotDotAndSymlinksOutNamingTheField) {
  ASSERT_NE(server_, nullptr);
  auto client = ConnectTo(*server_);
  ASSERT_NE(client, nullptr);
  auto before = client->ListSessions();
  ASSERT_TRUE(before.ok()) << before.status();
  for (const Field& field : kFields) {
    const std::string absolute = (Outside() / field.inside).string();
    const std::string dot_dot = std::string("../outside/") + field.inside;
    const std::vector<std::pair<std::string, std::string>> cases = {
        {absolute, "is absolute"},
        {(Assets() / field.inside).string(), "is absolute"},  // even pointing inside
        {dot_dot, "has a '..' component"},
        {field.outside, "resolves outside the server's assets folder"},
    };
    for (const auto& [path, words] : cases) {
      SCOPED_TRACE(std::string(field.name) + " = " + path);
      auto session = client->CreateSession(field.config(path));
      ASSERT_FALSE(session.ok());
      EXPECT_EQ(session.status().code(), absl::StatusCode::kInvalidArgument);
      const std::string message(session.status().message());
      EXPECT_THAT(message, StartsWith(std::string(field.name) + ": '"));
      EXPECT_THAT(message, HasSubstr(words));
    }
  }
  // The refused requests created nothing.
  auto after = client->ListSessions();
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->sessions_size(), before->sessions_size());
}

TEST_F(AssetPathsTest, RefusalNeverShowsTheServersOwnPaths) {
  ASSERT_NE(server_, nullptr);
  auto client = ConnectTo(*server_);
  ASSERT_NE(client, nullptr);
  for (const std::string& path : {std::string("refs_out"), std::string("no/such/folder")}) {
    auto session = client->CreateSession(ReferenceConfig(path));
    ASSERT_FALSE(session.ok());
    EXPECT_THAT(std::string(session.status().message()), Not(HasSubstr(work_->string())));
  }
}

TEST(AssetPathsDefaultTest, DefaultFolderIsAssetsInTheDataDirAndSessionsResumeFromIt) {
  const fs::path dir = FreshTempDir("asset-paths-default");
  WritePngs(dir / "data" / "assets" / "refs", 2);
  auto server = ServerProcess::Start(DefaultServerBinary(), (dir / "data").string(),
                                     (dir / "a.log").string());
  ASSERT_TRUE(server.ok()) << server.status();
  auto client = ConnectTo(**server);
  ASSERT_NE(client, nullptr);
  auto session = client->CreateSession(ReferenceConfig("refs"));
  ASSERT_TRUE(session.ok()) << session.status();
  auto first = client->NextStimuli(session->id(), 3);
  ASSERT_TRUE(first.ok()) << first.status();

  // After a crash the journaled relative path is resolved again.
  (*server)->Kill();
  server = ServerProcess::Start(DefaultServerBinary(), (dir / "data").string(),
                                (dir / "b.log").string());
  ASSERT_TRUE(server.ok()) << server.status();
  client = ConnectTo(**server);
  ASSERT_NE(client, nullptr);
  auto rest = client->NextStimuli(session->id(), 0);
  ASSERT_TRUE(rest.ok()) << rest.status();
  EXPECT_EQ(rest->stimuli_size(), first->remaining());
  auto next = client->NextStimuli(session->id(), 0);  // a new generation, with references
  ASSERT_TRUE(next.ok()) << next.status();
  int references = 0;
  for (const v1::Stimulus& s : next->stimuli()) references += s.is_reference() ? 1 : 0;
  EXPECT_EQ(references, 2);
}

}  // namespace
}  // namespace stimloop
