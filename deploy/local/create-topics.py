#!/usr/bin/python3
"""Create the topics listed in proto/topics.yaml (name + partitions, and retention_ms when
given), leaving existing ones.

Reads the file with a line parser rather than a YAML library: the contract file only needs
"- name: X", "partitions: N" and optionally "retention_ms: N" under "topics:"."""
import re
import sys

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic


def read_topics(path):
    topics, current = [], None
    for raw in open(path, encoding="utf-8"):
        line = raw.split("#", 1)[0].rstrip()
        m = re.match(r"^\s*-\s*name:\s*([A-Za-z0-9._-]+)\s*$", line)
        if m:
            current = {"name": m.group(1), "partitions": None, "config": {}}
            topics.append(current)
            continue
        m = re.match(r"^\s+partitions:\s*(\d+)\s*$", line)
        if m and current is not None:
            current["partitions"] = int(m.group(1))
        m = re.match(r"^\s+retention_ms:\s*(-?\d+)\s*$", line)
        if m and current is not None:
            current["config"]["retention.ms"] = m.group(1)
    for t in topics:
        if not t["partitions"] or t["partitions"] < 1:
            raise SystemExit(f"{path}: topic {t['name']} has no valid partitions")
    if not topics:
        raise SystemExit(f"{path}: no topics found")
    return topics


def main():
    if len(sys.argv) != 3:
        raise SystemExit("usage: create-topics.py BROKERS TOPICS_YAML")
    brokers, path = sys.argv[1], sys.argv[2]
    wanted = read_topics(path)
    admin = AdminClient({"bootstrap.servers": brokers})
    existing = admin.list_topics(timeout=10).topics
    new = [t for t in wanted if t["name"] not in existing]
    for t in wanted:
        if t["name"] in existing:
            have = len(existing[t["name"]].partitions)
            if have != t["partitions"]:
                print(f"topic {t['name']}: has {have} partitions, topics.yaml says "
                      f"{t['partitions']} (left as is)", file=sys.stderr)
    if new:
        futures = admin.create_topics(
            [NewTopic(t["name"], num_partitions=t["partitions"], replication_factor=1,
                      config=t["config"]) for t in new],
            operation_timeout=30, request_timeout=30)
        for name, f in futures.items():
            try:
                f.result(timeout=30)
                print(f"created topic {name}")
            except KafkaException as e:
                if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise SystemExit(f"cannot create topic {name}: {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
