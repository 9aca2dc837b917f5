"""stimloop.v1: the gRPC stubs generated from proto/stimloop/v1/stimloop.proto.

stimloop_pb2.py and stimloop_pb2_grpc.py are written here by the build
(target stimloop_proto_python, into <build>/python/stimloop/v1/); they are
not in the source tree.
"""
