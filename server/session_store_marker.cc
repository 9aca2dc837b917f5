#include "server/session_store_marker.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>

#include "absl/strings/str_cat.h"

namespace stimloop {
namespace {

namespace fs = std::filesystem;

enum class FileState { kMissing, kEmpty, kHoldsData };

// What is at `path`. Anything but a regular file counts as data: opening it
// as the store then fails with SQLite's own message.
FileState StateOf(const std::string& path, uintmax_t* size) {
  std::error_code error;
  const fs::file_status status = fs::status(path, error);
  if (status.type() == fs::file_type::not_found) return FileState::kMissing;
  if (!fs::is_regular_file(status)) return FileState::kHoldsData;
  *size = fs::file_size(path, error);
  if (error) return FileState::kHoldsData;
  return *size == 0 ? FileState::kEmpty : FileState::kHoldsData;
}

std::string MarkerPath(const std::string& data_dir) {
  return (fs::path(data_dir) / kStoreMarkerFileName).string();
}

absl::Status Errno(absl::string_view what, const std::string& path) {
  return absl::UnavailableError(
      absl::StrCat("data_dir: cannot ", what, " '", path, "': ", std::strerror(errno)));
}

// Writes `text` to `path` and fsyncs it.
absl::Status WriteSynced(const std::string& path, const std::string& text) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Errno("create", path);
  size_t written = 0;
  while (written < text.size()) {
    const ssize_t n = write(fd, text.data() + written, text.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      absl::Status status = Errno("write", path);
      close(fd);
      return status;
    }
    written += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0) {
    absl::Status status = Errno("fsync", path);
    close(fd);
    return status;
  }
  if (close(fd) != 0) return Errno("close", path);
  return absl::OkStatus();
}

absl::Status SyncDirectory(const std::string& dir) {
  const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Errno("open", dir);
  const bool synced = fsync(fd) == 0;
  absl::Status status = synced ? absl::OkStatus() : Errno("fsync", dir);
  close(fd);
  return status;
}

}  // namespace

bool HasStoreMarker(const std::string& data_dir) {
  std::error_code error;
  return fs::exists(MarkerPath(data_dir), error);
}

absl::Status CheckStoreFileExpected(const std::string& data_dir, const std::string& store_path,
                                    bool new_store) {
  uintmax_t size = 0;
  const FileState store = StateOf(store_path, &size);
  if (store == FileState::kHoldsData) {
    if (!new_store) return absl::OkStatus();
    return absl::FailedPreconditionError(absl::StrCat(
        "--new_store: '", store_path, "' already holds a session store (", size,
        " bytes), which the server never overwrites. Start without --new_store to use it, "
        "or move it away first."));
  }
  if (new_store) {
    const std::string wal_path = store_path + "-wal";
    if (StateOf(wal_path, &size) == FileState::kHoldsData) {
      return absl::FailedPreconditionError(absl::StrCat(
          "--new_store: '", wal_path, "' holds ", size,
          " bytes of the lost store's log, which SQLite would replay into the new store. "
          "Move it away first."));
    }
    return absl::OkStatus();
  }
  if (!HasStoreMarker(data_dir)) return absl::OkStatus();  // a first start
  return absl::DataLossError(absl::StrCat(
      "'", store_path, "' ", store == FileState::kMissing ? "is missing" : "is empty (0 bytes)",
      ", but '", MarkerPath(data_dir),
      "' shows that this data directory held a session store: its sessions would be lost. "
      "Restore the file from a backup, or start with --new_store to begin a new, empty "
      "store."));
}

absl::Status WriteStoreMarker(const std::string& data_dir, absl::Time now) {
  const std::string path = MarkerPath(data_dir);
  const std::string text = absl::StrCat(
      "This directory holds a stimloop session store (stimloop.sqlite); marker written ",
      absl::FormatTime(absl::RFC3339_sec, now, absl::UTCTimeZone()),
      ".\nWhile this file exists, stimloop-server refuses to start when stimloop.sqlite is "
      "missing or empty;\n--new_store starts a new, empty store instead.\n");
  const std::string temporary = path + ".tmp";
  if (absl::Status s = WriteSynced(temporary, text); !s.ok()) return s;
  if (std::rename(temporary.c_str(), path.c_str()) != 0) return Errno("rename", temporary);
  return SyncDirectory(data_dir);
}

}  // namespace stimloop
