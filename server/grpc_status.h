// The one place where internal absl::Status becomes grpc::Status.
#ifndef STIMLOOP_SERVER_GRPC_STATUS_H_
#define STIMLOOP_SERVER_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace stimloop {

// Same code (absl and gRPC share the canonical codes) and message.
inline grpc::Status ToGrpc(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

}  // namespace stimloop

#endif  // STIMLOOP_SERVER_GRPC_STATUS_H_
