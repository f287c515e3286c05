"""The chat service over gRPC (chat.proto): the same `api.chat.chat_completion` as /v1, served by `manage.py grpcserve`.

chat_pb2.py, chat_pb2.pyi and chat_pb2_grpc.py are generated from chat.proto by grpcio-tools
(`make grpc`); tests/api/test_grpc.py fails when they are stale.
"""
