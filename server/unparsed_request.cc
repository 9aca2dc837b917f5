#include "server/unparsed_request.h"

#include <string>

#include <google/protobuf/descriptor.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"

namespace stimloop {
namespace {

using grpc::experimental::InterceptionHookPoints;

// "/stimloop.v1.StimLoop/ReportResponses" -> its request type's full name,
// or "" for a method this process has no descriptor of.
std::string RequestType(absl::string_view method) {
  absl::ConsumePrefix(&method, "/");
  const std::string name = absl::StrReplaceAll(method, {{"/", "."}});
  const google::protobuf::MethodDescriptor* descriptor =
      google::protobuf::DescriptorPool::generated_pool()->FindMethodByName(name);
  return descriptor == nullptr ? "" : descriptor->input_type()->full_name();
}

std::string Explain(absl::string_view method) {
  absl::string_view rpc = method.substr(method.rfind('/') + 1);
  const std::string type = RequestType(method);
  return absl::StrCat(rpc, ": the request is not a valid ", type.empty() ? "message" : type,
                      ": a string field holds invalid UTF-8 (proto3 strings must be UTF-8; the "
                      "server log names the field), or the bytes are not that message");
}

class UnparsedRequestInterceptor : public grpc::experimental::Interceptor {
 public:
  explicit UnparsedRequestInterceptor(grpc::experimental::ServerRpcInfo* info) : info_(info) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE) &&
        methods->GetRecvMessage() == nullptr) {
      unparsed_ = true;  // the method handler's Deserialize failed
    }
    if (unparsed_ && methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS) &&
        methods->GetSendStatus().error_code() == grpc::StatusCode::INTERNAL) {
      methods->ModifySendStatus(
          grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, Explain(info_->method())));
    }
    methods->Proceed();
  }

 private:
  grpc::experimental::ServerRpcInfo* const info_;
  bool unparsed_ = false;
};

class Factory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new UnparsedRequestInterceptor(info);
  }
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MakeUnparsedRequestInterceptorFactory() {
  return std::make_unique<Factory>();
}

}  // namespace stimloop
