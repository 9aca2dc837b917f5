// Server-side paths from requests stay inside the assets folder: relative
// paths inside are resolved; absolute ones, '..' components and symlinks
// leading out are INVALID_ARGUMENT naming the field, for every field.
#include "server/asset_paths.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace stimloop {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

// <tmp>/work/assets with a file, a folder with an image, and symlinks to
// <tmp>/work/outside (a file and a folder next to the assets folder).
class AssetPathsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    work_ = fs::temp_directory_path() / ("stimloop-assets-test-" + std::to_string(::getpid()));
    fs::remove_all(work_);
    assets_ = work_ / "assets";
    fs::create_directories(assets_ / "refs");
    fs::create_directories(assets_ / "models");
    fs::create_directories(work_ / "outside");
    std::ofstream(assets_ / "models" / "net.pt") << "module";
    std::ofstream(assets_ / "refs" / "a.png") << "png";
    std::ofstream(work_ / "outside" / "secret.pt") << "secret";
    std::ofstream(work_ / "outside" / "b.png") << "png";
    fs::create_symlink(work_ / "outside" / "secret.pt", assets_ / "models" / "link_out.pt");
    fs::create_symlink(work_ / "outside", assets_ / "folder_out");
    fs::create_symlink(assets_ / "models" / "net.pt", assets_ / "models" / "link_in.pt");
  }
  void TearDown() override { fs::remove_all(work_); }

  AssetsDir Assets() const { return AssetsDir(assets_.string()); }
  std::string Canonical(const fs::path& p) const { return fs::canonical(p).string(); }

  fs::path work_;
  fs::path assets_;
};

void ExpectRefused(const absl::StatusOr<std::string>& resolved, const std::string& field,
                   const std::string& words) {
  ASSERT_FALSE(resolved.ok()) << *resolved;
  EXPECT_EQ(resolved.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(resolved.status().message()), HasSubstr(field + ": "));
  EXPECT_THAT(std::string(resolved.status().message()), HasSubstr(words));
}

TEST_F(AssetPathsTest, RelativePathsInsideResolveToTheirRealPaths) {
  auto file = Assets().ResolveFile("f", "models/net.pt");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(*file, Canonical(assets_ / "models" / "net.pt"));
  auto folder = Assets().ResolveFolder("f", "./refs/");
  ASSERT_TRUE(folder.ok()) << folder.status();
  EXPECT_EQ(*folder, Canonical(assets_ / "refs"));
  // A symlink that stays inside is fine, and resolves to its target.
  auto link = Assets().ResolveFile("f", "models/link_in.pt");
  ASSERT_TRUE(link.ok()) << link.status();
  EXPECT_EQ(*link, Canonical(assets_ / "models" / "net.pt"));
  // Unset is unset.
  EXPECT_EQ(*Assets().ResolveFile("f", ""), "");
}

TEST_F(AssetPathsTest, AbsoluteDotDotAndSymlinksOutAreRefused) {
  const std::string secret = (work_ / "outside" / "secret.pt").string();
  ExpectRefused(Assets().ResolveFile("f", secret), "f", "is absolute");
  ExpectRefused(Assets().ResolveFile("f", (assets_ / "models/net.pt").string()), "f",
                "is absolute");  // even when it points inside
  ExpectRefused(Assets().ResolveFile("f", "../outside/secret.pt"), "f", "'..' component");
  ExpectRefused(Assets().ResolveFile("f", "models/../models/net.pt"), "f", "'..' component");
  ExpectRefused(Assets().ResolveFile("f", "models/link_out.pt"), "f", "resolves outside");
  ExpectRefused(Assets().ResolveFolder("f", "folder_out"), "f", "resolves outside");
  ExpectRefused(Assets().ResolveFile("f", "folder_out/secret.pt"), "f", "resolves outside");
}

TEST_F(AssetPathsTest, FolderWithAnEntryLeadingOutIsRefused) {
  fs::create_symlink(work_ / "outside" / "b.png", assets_ / "refs" / "b.png");
  ExpectRefused(Assets().ResolveFolder("f", "refs"), "f", "'refs/b.png' resolves outside");
}

TEST_F(AssetPathsTest, MissingWrongKindAndNoFolderAreRefused) {
  ExpectRefused(Assets().ResolveFile("f", "models/none.pt"), "f", "does not exist");
  ExpectRefused(Assets().ResolveFile("f", "refs"), "f", "is not a file");
  ExpectRefused(Assets().ResolveFolder("f", "models/net.pt"), "f", "is not a folder");
  ExpectRefused(Assets().ResolveFile("f", std::string("models/net.pt\0x", 15)), "f", "NUL");
  ExpectRefused(AssetsDir().ResolveFile("f", "models/net.pt"), "f", "no assets folder");
  ExpectRefused(AssetsDir((work_ / "no-such").string()).ResolveFile("f", "models/net.pt"), "f",
                "does not exist");
}

TEST_F(AssetPathsTest, MessagesShowTheRequestNotTheServersPaths) {
  auto refused = Assets().ResolveFile("f", "models/link_out.pt");
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(std::string(refused.status().message()), Not(HasSubstr(work_.string())));
  // A long path is cut in the message.
  auto cut = Assets().ResolveFile("f", "/" + std::string(1000, 'x'));
  ASSERT_FALSE(cut.ok());
  EXPECT_LT(cut.status().message().size(), 200u);
}

// Each of the five fields, through ConfineAssetPaths.
struct Field {
  const char* name;
  bool folder;
  std::string* (*slot)(ResolvedConfig&);
};

const Field kFields[] = {
    {"config.reference_images.dir", true,
     [](ResolvedConfig& c) { return &c.reference_images_dir; }},
    {"config.optimizer.candidate_pool_dir", true,
     [](ResolvedConfig& c) { return &c.optimizer.candidate_pool_dir; }},
    {"config.image_space.generator_path", false,
     [](ResolvedConfig& c) { return &c.image_space.generator_path; }},
    {"config.surrogate.frontend_path", false,
     [](ResolvedConfig& c) { return &c.surrogate.spec.frontend_path; }},
    {"config.surrogate.model_path", false,
     [](ResolvedConfig& c) { return &c.surrogate.spec.model_path; }},
};

// A config that opens all five paths (adaptive_sampling reads a pool and a
// surrogate, torchscript a generator, reference images a folder).
ResolvedConfig ReadingEveryPath() {
  ResolvedConfig config;
  config.optimizer.name = "adaptive_sampling";
  config.image_space.name = "torchscript";
  config.proto.mutable_reference_images()->set_per_generation(1);
  return config;
}

TEST_F(AssetPathsTest, EveryFieldIsConfinedAndNamedWhenRefused) {
  for (const Field& field : kFields) {
    SCOPED_TRACE(field.name);
    const std::string inside = field.folder ? "refs" : "models/net.pt";
    ResolvedConfig config = ReadingEveryPath();
    *field.slot(config) = inside;
    ASSERT_TRUE(ConfineAssetPaths(Assets(), &config).ok());
    EXPECT_EQ(*field.slot(config), Canonical(assets_ / inside));

    const std::string outside = field.folder ? "folder_out" : "models/link_out.pt";
    for (const std::string& bad :
         {(work_ / "outside").string(), std::string("../outside"), outside}) {
      ResolvedConfig refused = ReadingEveryPath();
      *field.slot(refused) = bad;
      absl::Status s = ConfineAssetPaths(Assets(), &refused);
      EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
      EXPECT_EQ(s.message().rfind(std::string(field.name) + ": '", 0), 0u) << s;
    }
    // A path the config never reads is left as it is, for CheckNoUnusedFields.
    ResolvedConfig unused;
    unused.optimizer.name = "genetic";
    unused.image_space.name = "spectral";
    *field.slot(unused) = "../outside";
    EXPECT_TRUE(ConfineAssetPaths(Assets(), &unused).ok());
    EXPECT_EQ(*field.slot(unused), "../outside");
  }
}

}  // namespace
}  // namespace stimloop
