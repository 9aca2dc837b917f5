#include "server/asset_paths.h"

#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"

namespace stimloop {
namespace {

namespace fs = std::filesystem;

constexpr size_t kMaxEcho = 64;
constexpr char kFolderName[] = "the server's assets folder (--assets_dir)";

// A request's path as quoted in an error, cut to kMaxEcho characters.
std::string Echo(absl::string_view path) {
  if (path.size() <= kMaxEcho) return absl::StrCat("'", path, "'");
  return absl::StrCat("'", path.substr(0, kMaxEcho), "...'");
}

absl::Status Refused(absl::string_view field, absl::string_view path, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", Echo(path), " ", why));
}

// True when `path` is `root` or lies below it (both canonical).
bool IsInside(const fs::path& root, const fs::path& path) {
  auto p = path.begin();
  for (auto r = root.begin(); r != root.end(); ++r, ++p) {
    if (p == path.end() || *r != *p) return false;
  }
  return true;
}

// Checks the entries of the folder `folder` (canonical, inside `root`):
// a symlink among them must not lead outside `root`. Broken links are left
// to the loader, which skips what is not a regular file.
absl::Status CheckEntries(absl::string_view field, absl::string_view path, const fs::path& root,
                          const fs::path& folder) {
  std::error_code error;
  for (fs::directory_iterator it(folder, error), end; !error && it != end; it.increment(error)) {
    if (!it->is_symlink(error)) continue;
    std::error_code broken;
    const fs::path target = fs::canonical(it->path(), broken);
    if (!broken && !IsInside(root, target)) {
      const std::string entry = (fs::path(std::string(path)) / it->path().filename()).string();
      return Refused(field, entry, absl::StrCat("resolves outside ", kFolderName));
    }
  }
  if (error) return Refused(field, path, "cannot be listed");
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> AssetsDir::ResolveFile(absl::string_view field,
                                                   const std::string& path) const {
  return Resolve(field, path, Kind::kFile);
}

absl::StatusOr<std::string> AssetsDir::ResolveFolder(absl::string_view field,
                                                     const std::string& path) const {
  return Resolve(field, path, Kind::kFolder);
}

absl::StatusOr<std::string> AssetsDir::Resolve(absl::string_view field, const std::string& path,
                                               Kind kind) const {
  if (path.empty()) return std::string();
  if (root_.empty()) {
    return Refused(field, path, "cannot be read: this server has no assets folder");
  }
  if (path.find('\0') != std::string::npos) {
    return Refused(field, path, "contains a NUL character");
  }
  const fs::path relative(path);
  if (relative.is_absolute() || relative.has_root_name()) {
    return Refused(field, path, absl::StrCat("is absolute; name a path relative to ", kFolderName));
  }
  for (const fs::path& component : relative) {
    if (component == "..") {
      return Refused(field, path,
                     absl::StrCat("has a '..' component; name a path inside ", kFolderName));
    }
  }
  std::error_code error;
  const fs::path root = fs::canonical(root_, error);
  if (error) {
    return Refused(field, path, absl::StrCat("cannot be read: ", kFolderName, " does not exist"));
  }
  const fs::path resolved = fs::canonical(root / relative, error);
  if (error) return Refused(field, path, absl::StrCat("does not exist in ", kFolderName));
  if (!IsInside(root, resolved)) {
    return Refused(field, path, absl::StrCat("resolves outside ", kFolderName));
  }
  if (kind == Kind::kFile && !fs::is_regular_file(resolved, error)) {
    return Refused(field, path, "is not a file");
  }
  if (kind == Kind::kFolder) {
    if (!fs::is_directory(resolved, error)) return Refused(field, path, "is not a folder");
    if (absl::Status s = CheckEntries(field, path, root, resolved); !s.ok()) return s;
  }
  return resolved.string();
}

absl::Status ConfineAssetPaths(const AssetsDir& assets, ResolvedConfig* config) {
  struct Field {
    const char* name;
    std::string* path;
    bool folder;
    bool read;  // the session opens it
  };
  // Only the paths the session will open: one it would never read is left
  // for CheckNoUnusedFields (server/session_config.h) to refuse as such.
  const bool surrogate = UsesSurrogate(config->optimizer.name);
  const Field fields[] = {
      {"config.reference_images.dir", &config->reference_images_dir, true,
       config->proto.reference_images().per_generation() > 0},
      {"config.optimizer.candidate_pool_dir", &config->optimizer.candidate_pool_dir, true,
       config->optimizer.name == "adaptive_sampling"},
      {"config.image_space.generator_path", &config->image_space.generator_path, false,
       config->image_space.name == "torchscript"},
      {"config.surrogate.frontend_path", &config->surrogate.spec.frontend_path, false,
       surrogate},
      {"config.surrogate.model_path", &config->surrogate.spec.model_path, false, surrogate},
  };
  for (const Field& f : fields) {
    if (!f.read) continue;
    auto resolved =
        f.folder ? assets.ResolveFolder(f.name, *f.path) : assets.ResolveFile(f.name, *f.path);
    if (!resolved.ok()) return resolved.status();
    *f.path = *std::move(resolved);
  }
  return absl::OkStatus();
}

}  // namespace stimloop
