// A request gRPC cannot parse gets INVALID_ARGUMENT with a message that
// says so, instead of gRPC's INTERNAL with an empty message.
//
// Why the server cannot name the field: with the generated service, gRPC
// parses each request (grpc::SerializationTraits, GenericDeserialize in
// grpcpp/impl/codegen/proto_utils.h) before any code of the server runs. A
// proto3 `string` must be valid UTF-8, and protobuf 3.21's generated parser
// fails the whole message at the first field that is not (VerifyUTF8); gRPC
// then answers INTERNAL with msg->InitializationErrorString(), which is
// empty for proto3, and never calls the handler. The bytes and the parse
// error are gone by then; protobuf only logs the field's proto name on the
// server's stderr ("String field 'stimloop.v1.Response.stimulus_id'
// contains invalid UTF-8 data ..."). Naming the field to the client would
// mean replacing gRPC's parsing for every message (a SerializationTraits
// specialization compiled into the generated code, or raw/generic
// handlers); this interceptor is the clearest answer short of that. It sees
// that the request did not parse (POST_RECV_MESSAGE with no message) and
// rewrites the status gRPC sends (PRE_SEND_STATUS):
//   INVALID_ARGUMENT "ReportResponses: the request is not a valid
//   stimloop.v1.ReportResponsesRequest: a string field holds invalid UTF-8
//   (proto3 strings must be UTF-8; the server log names the field), or the
//   bytes are not that message"
// Only a well-behaved protobuf library lets such bytes out at all (Python's
// refuses to build the string; C++ logs and sends).
#ifndef STIMLOOP_SERVER_UNPARSED_REQUEST_H_
#define STIMLOOP_SERVER_UNPARSED_REQUEST_H_

#include <memory>

#include <grpcpp/support/server_interceptor.h>

namespace stimloop {

// For grpc::ServerBuilder::experimental().SetInterceptorCreators.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MakeUnparsedRequestInterceptorFactory();

}  // namespace stimloop

#endif  // STIMLOOP_SERVER_UNPARSED_REQUEST_H_
