#include "optimizers/optimizer_state.h"

#include <sstream>

#include "absl/strings/str_cat.h"
#include <torch/serialize.h>

namespace stimloop {

std::string SaveOptimizerState(const Optimizer& optimizer) {
  torch::serialize::OutputArchive archive;
  optimizer.Save(archive);
  std::ostringstream out;
  archive.save_to(out);
  return out.str();
}

absl::Status LoadOptimizerState(Optimizer& optimizer, const std::string& state) {
  torch::serialize::InputArchive archive;
  try {
    std::istringstream in(state);
    archive.load_from(in);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("optimizer state: unreadable (", e.what(), ")"));
  }
  try {
    return optimizer.Load(archive);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("optimizer state: does not fit '", optimizer.name(), "' (", e.what(), ")"));
  }
}

}  // namespace stimloop
