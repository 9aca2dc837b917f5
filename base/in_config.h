// Modules name a bad field relative to the part of the session config they
// read ("optimizer.params.x", "surrogate.params.y"); the rig sees the path
// from the config's root ("config.optimizer.params.x").
#ifndef STIMLOOP_BASE_IN_CONFIG_H_
#define STIMLOOP_BASE_IN_CONFIG_H_

#include "absl/status/status.h"

namespace stimloop {

// `status` with "config." before its message when it is INVALID_ARGUMENT
// and does not already start with "config."; any other status unchanged.
absl::Status InConfig(const absl::Status& status);

}  // namespace stimloop

#endif  // STIMLOOP_BASE_IN_CONFIG_H_
