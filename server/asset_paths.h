// The only files a request may make the server read: reference images
// (config.reference_images.dir), a candidate pool
// (config.optimizer.candidate_pool_dir) and TorchScript modules
// (config.surrogate.frontend_path / model_path,
// config.image_space.generator_path) must lie inside one folder the
// operator chooses (the server's --assets_dir, default <data_dir>/assets),
// and a request names them relative to it.
//
// Refused with INVALID_ARGUMENT naming the field: an absolute path, a '..'
// component, a path that resolves (through symlinks) outside the folder, a
// missing file or folder, and a folder holding an entry that resolves
// outside. The check is on the path after std::filesystem::canonical
// (realpath); the session then opens exactly that resolved path. Messages
// never show the server's own absolute paths. The journal keeps the
// request's relative paths, so a restored session resolves them again in
// the assets folder of the server that restores it.
#ifndef STIMLOOP_SERVER_ASSET_PATHS_H_
#define STIMLOOP_SERVER_ASSET_PATHS_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/session_config.h"

namespace stimloop {

class AssetsDir {
 public:
  // No assets folder: every path is refused.
  AssetsDir() = default;
  // The folder `root`; it need not exist yet (paths are then refused as
  // missing), and is resolved on every call.
  explicit AssetsDir(std::string root) : root_(std::move(root)) {}

  // The absolute, symlink-free path of `path` (relative to the folder)
  // when it names a regular file inside the folder; "" for an empty `path`.
  absl::StatusOr<std::string> ResolveFile(absl::string_view field, const std::string& path) const;
  // The same for a folder, none of whose entries may resolve outside.
  absl::StatusOr<std::string> ResolveFolder(absl::string_view field, const std::string& path) const;

  const std::string& root() const { return root_; }

 private:
  enum class Kind { kFile, kFolder };
  absl::StatusOr<std::string> Resolve(absl::string_view field, const std::string& path,
                                      Kind kind) const;

  std::string root_;
};

// Replaces every server-side path of `config` that the session will open
// (of the five fields above, as ResolveConfig copied them from the request)
// by its resolved path inside `assets`; a path the config's optimizer, image
// space or reference settings never read is left for CheckNoUnusedFields to
// refuse. `config->proto` keeps the request's paths. The first refused
// path is the error; `config` is then partly resolved and must be dropped.
absl::Status ConfineAssetPaths(const AssetsDir& assets, ResolvedConfig* config);

}  // namespace stimloop

#endif  // STIMLOOP_SERVER_ASSET_PATHS_H_
