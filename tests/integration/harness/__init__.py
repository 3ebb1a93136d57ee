"""Helpers behind tests/integration/conftest.py; tests may import them directly
(`from harness import free_port, kafka_produce, kafka_consume, dump_yaml`)."""
from . import paths
from .kafkaio import Message
from .kafkaio import consume as _consume
from .kafkaio import produce as _produce
from .paths import find_binary, free_port
from .pgio import PgSchema
from .procs import Service, http_get, run_binary
from .yamlout import dump_yaml


def kafka_produce(topic, key, value, headers=None, partition=None, timeout=30.0):
    """Produce one record with acks=all to the local broker; returns (partition, offset)."""
    return _produce(paths.KAFKA_BROKERS, topic, key, value, headers, partition, timeout)


def kafka_consume(topic, n, timeout=30.0, partitions=None):
    """Up to n records from the start of the topic: Message(key, value, headers, partition,
    offset, topic, timestamp, header_list)."""
    return _consume(paths.KAFKA_BROKERS, topic, n, timeout, partitions)


__all__ = ["paths", "Message", "PgSchema", "Service", "dump_yaml", "find_binary", "free_port",
           "http_get", "kafka_consume", "kafka_produce", "run_binary"]
