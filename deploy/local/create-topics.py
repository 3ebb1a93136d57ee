#!/usr/bin/python3
"""Create the topics listed in proto/topics.yaml (name + partitions, and retention_ms when
given) with the contract's replication (replication: factor, min_insync_replicas), leaving
existing ones.

    create-topics.py [--replication-factor N] [--min-insync-replicas N] BROKERS TOPICS_YAML

The two options replace the contract's values (a one-broker stack passes 1 and 1). An existing
topic whose partitions or copies differ from what is asked is reported and left as it is.

Reads the file with a line parser rather than a YAML library: the contract file only needs
"- name: X", "partitions: N" and optionally "retention_ms: N" under "topics:", and "factor: N"
and "min_insync_replicas: N" under "replication:"."""
import argparse
import re
import sys
import time

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic


def read_replication(path):
    """{"factor": N, "min_insync_replicas": N} from the contract's replication: block."""
    out, inside = {}, False
    for raw in open(path, encoding="utf-8"):
        line = raw.split("#", 1)[0].rstrip()
        if re.match(r"^\S", line):
            inside = line == "replication:"
            continue
        m = re.match(r"^\s+(factor|min_insync_replicas):\s*(\d+)\s*$", line)
        if inside and m:
            out[m.group(1)] = int(m.group(2))
    if set(out) != {"factor", "min_insync_replicas"} or not 1 <= out["min_insync_replicas"] \
            <= out["factor"]:
        raise SystemExit(f"{path}: replication needs factor and min_insync_replicas, "
                         f"1 <= min_insync_replicas <= factor (got {out})")
    return out


def read_topics(path):
    topics, current = [], None
    for raw in open(path, encoding="utf-8"):
        line = raw.split("#", 1)[0].rstrip()
        if re.match(r"^\S", line):
            current = None  # a top-level key ends the topic being read
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
    ap = argparse.ArgumentParser(description="Create the topics of proto/topics.yaml.")
    ap.add_argument("--replication-factor", type=int)
    ap.add_argument("--min-insync-replicas", type=int)
    ap.add_argument("brokers")
    ap.add_argument("topics_yaml")
    args = ap.parse_args()
    wanted = read_topics(args.topics_yaml)
    rep = read_replication(args.topics_yaml)
    rf = args.replication_factor or rep["factor"]
    isr = args.min_insync_replicas or rep["min_insync_replicas"]
    if not 1 <= isr <= rf:
        raise SystemExit(f"min.insync.replicas {isr} must be between 1 and the replication"
                         f" factor {rf}")
    admin = AdminClient({"bootstrap.servers": args.brokers})
    # A broker that just started is listed once it registered with the controller, and the
    # broker answering may still hold older metadata: wait for them, up to a minute.
    deadline = time.monotonic() + 60
    md = admin.list_topics(timeout=10)
    while len(md.brokers) < rf and time.monotonic() < deadline:
        time.sleep(0.5)
        md = admin.list_topics(timeout=10)
    if len(md.brokers) < rf:
        raise SystemExit(f"replication factor {rf} needs {rf} brokers; the cluster lists"
                         f" {len(md.brokers)}")
    existing = md.topics
    new = [t for t in wanted if t["name"] not in existing]
    for t in wanted:
        if t["name"] in existing:
            parts = existing[t["name"]].partitions
            have = len(parts)
            if have != t["partitions"]:
                print(f"topic {t['name']}: has {have} partitions, topics.yaml says "
                      f"{t['partitions']} (left as is)", file=sys.stderr)
            copies = {len(p.replicas) for p in parts.values()}
            if copies != {rf}:
                print(f"topic {t['name']}: has {sorted(copies)} copies per partition, "
                      f"{rf} asked (left as is)", file=sys.stderr)
    if new:
        futures = admin.create_topics(
            [NewTopic(t["name"], num_partitions=t["partitions"], replication_factor=rf,
                      config={**t["config"], "min.insync.replicas": str(isr)}) for t in new],
            operation_timeout=30, request_timeout=30)
        for name, f in futures.items():
            try:
                f.result(timeout=30)
                print(f"created topic {name} (replication {rf}, min.insync.replicas {isr})")
            except KafkaException as e:
                if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise SystemExit(f"cannot create topic {name}: {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
