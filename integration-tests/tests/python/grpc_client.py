"""A gRPC client in another language, with nothing but the server itself.

Discovers Bosun's API through server reflection, checks grpc.health.v1, and
creates, lists and deletes a ConfigMap with messages built from the
reflected descriptors. Usage: grpc_client.py HOST:PORT. Exits non-zero on
any failure.
"""
import sys

import grpc
from google.protobuf import descriptor_pool, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)


def main(address):
    channel = grpc.insecure_channel(address)
    grpc.channel_ready_future(channel).result(timeout=10)

    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "bosun.v1.Objects"):
        reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, (service, reply)

    database = ProtoReflectionDescriptorDatabase(channel)
    services = set(database.get_services())
    for wanted in ("bosun.v1.Objects", "bosun.v1.Cluster", "grpc.health.v1.Health"):
        assert wanted in services, (wanted, services)

    pool = descriptor_pool.DescriptorPool(database)
    objects = pool.FindServiceByName("bosun.v1.Objects")

    def message(name):
        return message_factory.GetMessageClass(pool.FindMessageTypeByName(name))

    def call(method_name, request):
        method = objects.FindMethodByName(method_name)
        reply_class = message(method.output_type.full_name)
        rpc = channel.unary_unary(
            "/bosun.v1.Objects/" + method_name,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=reply_class.FromString,
        )
        return rpc(request, timeout=10)

    Object = message("bosun.v1.Object")
    created_object = Object()
    config_map = created_object.config_map
    config_map.metadata.name = "from-python"
    config_map.data["language"] = "python"
    created = call("Create", message("bosun.v1.CreateRequest")(object=created_object))
    assert created.config_map.metadata.resource_version > 0, created
    assert created.config_map.metadata.uid, created

    listed = call("List", message("bosun.v1.ListRequest")(kind="configmaps", namespace="default"))
    names = [item.config_map.metadata.name for item in listed.items]
    assert "from-python" in names, names

    try:
        call("Create", message("bosun.v1.CreateRequest")(object=created_object))
        raise AssertionError("a duplicate create succeeded")
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.ALREADY_EXISTS, error
        assert "already exists" in error.details(), error.details()

    call("Delete", message("bosun.v1.DeleteRequest")(kind="ConfigMap", namespace="default", name="from-python"))
    print("ok")


if __name__ == "__main__":
    main(sys.argv[1])
