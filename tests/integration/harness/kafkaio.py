"""Kafka helpers for tests: per-run topics, produce with acks=all, read back by partition."""
import time
from collections import namedtuple

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
import yaml

from . import paths

Message = namedtuple("Message", "key value headers partition offset topic timestamp header_list")


def admin(brokers):
    return AdminClient({"bootstrap.servers": brokers})


def wait_topic_ready(brokers, name, partitions, timeout=30.0):
    """Until every partition of the topic has a leader: a fresh topic is not usable before."""
    a = admin(brokers)
    deadline = time.monotonic() + timeout
    last = "no metadata"
    while time.monotonic() < deadline:
        md = a.list_topics(topic=name, timeout=5)
        t = md.topics.get(name)
        if t is not None and t.error is None and len(t.partitions) == partitions \
                and all(p.leader >= 0 for p in t.partitions.values()):
            return
        last = f"{t.error if t is not None else 'missing'}, {len(t.partitions) if t else 0} partitions"
        time.sleep(0.1)
    raise TimeoutError(f"topic {name} not ready after {timeout}s: {last}")


def contract_config(kind):
    """The topic configuration proto/topics.yaml gives the topic hookline.<kind>: its
    retention_ms as retention.ms, or nothing."""
    doc = yaml.safe_load((paths.SOURCE_DIR / "proto" / "topics.yaml").read_text())
    (topic,) = [t for t in doc["topics"] if t["name"] == f"hookline.{kind}"]
    return {"retention.ms": str(topic["retention_ms"])} if "retention_ms" in topic else {}


def create_topics(brokers, spec, timeout=30.0, replication=1, min_insync=1, configs=None):
    """spec: {name: partitions}. Fails if a topic already exists: names are meant to be unique.
    replication and min_insync: copies of each partition, and how many must be in sync for an
    acks=all write (1 and 1 on the one-broker stack). configs: {name: {key: value}} more topic
    configuration for some of them."""
    a = admin(brokers)
    configs = configs or {}
    futures = a.create_topics(
        [NewTopic(n, num_partitions=p, replication_factor=replication,
                  config={"min.insync.replicas": str(min_insync), **configs.get(n, {})})
         for n, p in spec.items()],
        operation_timeout=timeout, request_timeout=timeout)
    for name, f in futures.items():
        f.result(timeout=timeout)
    for name, p in spec.items():
        wait_topic_ready(brokers, name, p, timeout)


def delete_topics(brokers, names, timeout=30.0):
    """Delete, ignoring topics already gone; returns the names that could not be deleted."""
    if not names:
        return []
    a = admin(brokers)
    failed = []
    futures = a.delete_topics(list(names), operation_timeout=timeout, request_timeout=timeout)
    for name, f in futures.items():
        try:
            f.result(timeout=timeout)
        except KafkaException as e:
            if e.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                failed.append(f"{name}: {e}")
    return failed


def _headers_dict(hlist):
    out = {}
    for k, v in hlist or []:
        out[k] = v  # a repeated header keeps its last value here; header_list keeps them all
    return out


def produce(brokers, topic, key, value, headers=None, partition=None, timeout=30.0):
    """Produce one record with acks=all and wait for the acknowledgement.

    Returns (partition, offset). key/value: str or bytes or None; headers: dict or list of
    pairs (values str or bytes)."""
    p = Producer({"bootstrap.servers": brokers, "acks": "all", "enable.idempotence": True,
                  "linger.ms": 0, "message.timeout.ms": int(timeout * 1000)})
    result = {}

    def on_delivery(err, msg):
        result["err"] = err
        if err is None:
            result["at"] = (msg.partition(), msg.offset())

    hdrs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    kwargs = {"key": key, "value": value, "headers": hdrs, "on_delivery": on_delivery}
    if partition is not None:
        kwargs["partition"] = partition
    p.produce(topic, **kwargs)
    remaining = p.flush(timeout)
    if remaining or "err" not in result:
        raise TimeoutError(f"record to {topic} not acknowledged within {timeout}s")
    if result["err"] is not None:
        raise KafkaException(result["err"])
    return result["at"]


def consume(brokers, topic, n, timeout=30.0, partitions=None):
    """Read up to n records from the beginning of every partition (no consumer group is
    joined, so nothing is committed and no rebalance delays the read). Returns what arrived
    within the timeout, in arrival order; the caller asserts on the count."""
    c = Consumer({"bootstrap.servers": brokers, "group.id": "hl-test-reader",
                  "enable.auto.commit": False, "enable.partition.eof": False,
                  "auto.offset.reset": "earliest"})
    try:
        if partitions is None:
            md = c.list_topics(topic=topic, timeout=10)
            t = md.topics.get(topic)
            if t is None or t.error is not None:
                raise RuntimeError(f"topic {topic} unknown: {t.error if t else 'missing'}")
            partitions = sorted(t.partitions)
        c.assign([TopicPartition(topic, p, -2) for p in partitions])  # -2: OFFSET_BEGINNING
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n and time.monotonic() < deadline:
            m = c.poll(min(0.5, max(0.0, deadline - time.monotonic())))
            if m is None:
                continue
            if m.error():
                raise KafkaException(m.error())
            hl = m.headers() or []
            out.append(Message(m.key(), m.value(), _headers_dict(hl), m.partition(), m.offset(),
                               m.topic(), m.timestamp()[1], list(hl)))
        return out
    finally:
        c.close()
