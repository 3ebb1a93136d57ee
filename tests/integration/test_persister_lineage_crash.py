"""hookline-persister killed again and again while records flow, against the real local Kafka and
Postgres: every record still gets its outcome lineage (`persisted` or `dead_lettered`) on the
lineage topic, nothing is stored twice, per-message order holds, and the auditor, reading that
lineage, stores one outcome per record and reports no gap.

The kills are SIGKILL at random moments, and SIGKILL by the persister itself right after a
Postgres commit, before any lineage of that batch is produced (the test hook
HOOKLINE_PERSISTER_CRASH_AFTER_COMMITS, services/persister/README.md). Members use static group
membership (group.instance.id), so a restarted one gets its partitions at once instead of
waiting for the killed one's session to expire."""
import collections
import json
import random
import signal
import threading
import time

from confluent_kafka import Consumer, TopicPartition

from auditor_support import LineageProducer, auditor_config, get, ingress_record
from harness import paths
from persister_support import (EventProducer, event_headers, metric, persister_config,
                               wait_for, wait_offsets_at_end)

CRASH_ENV = "HOOKLINE_PERSISTER_CRASH_AFTER_COMMITS"
OUTCOMES = ("persisted", "dead_lettered")


def read_topic(topic, partitions):
    """Every record of the topic, up to the high watermarks read first (no group joined)."""
    c = Consumer({"bootstrap.servers": paths.KAFKA_BROKERS, "group.id": "hl-test-reader",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        highs = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                 for p in range(partitions)}
        c.assign([TopicPartition(topic, p, -2) for p in range(partitions) if highs[p] > 0])
        left = {p: h for p, h in highs.items() if h > 0}
        out = []
        deadline = time.monotonic() + 60
        while left and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            assert not m.error(), m.error()
            out.append((m.key().decode() if m.key() else None, json.loads(m.value())))
            if m.offset() + 1 >= left.get(m.partition(), 0):
                left.pop(m.partition(), None)
        assert not left, f"could not read {topic} to its end: {left}"
        return out
    finally:
        c.close()


class Workload:
    """Produces events in a thread at a steady pace, as the ingress would: 2 events per message,
    a provider retry of every 7th event, an event with invalid JSON every 97th message and one
    only Postgres refuses every 131st. Records what each request's outcome must be, and writes
    each accepted request's `ingress` lineage record (with its partition and offset) too."""

    def __init__(self, topics, messages, per_second):
        self.topics = topics
        self.messages = messages
        self.pause = 1.0 / per_second
        self.first = {}       # (message id, event type) -> request id stored
        self.expect = {}      # request id -> "inserted" | "duplicate" | error code
        self.element = {}     # request id -> (message id, event type) it was sent with
        self.prod = EventProducer(topics["events"])
        self.done = threading.Event()
        self.error = None

    def run(self):
        try:
            for i in range(self.messages):
                mid = f"m-{i:06d}"
                for et in ("ev0", "ev1"):
                    body = {"id": mid, "type": et, "n": i}
                    rid = self.prod.send(mid, et, body)
                    self.element[rid] = (mid, et)
                    if (mid, et) in self.first:
                        self.expect[rid] = "duplicate"
                    else:
                        self.first[(mid, et)] = rid
                        self.expect[rid] = "inserted"
                    if (2 * i + len(et)) % 7 == 0:
                        again = self.prod.send(mid, et, body)
                        self.expect[again] = "duplicate"
                        self.element[again] = (mid, et)
                if i % 97 == 5:
                    rid = self.prod.send_raw(f"bad-{i}", b'{"broken": ',
                                             event_headers("stripe", "ev0"))
                    self.expect[rid] = "invalid_json"
                    self.element[rid] = (f"bad-{i}", "ev0")
                if i % 131 == 7:
                    rid = self.prod.send_raw(f"huge-{i}", b'{"n": 1e1000000}',
                                             event_headers("stripe", "ev0"))
                    self.expect[rid] = "pg_rejected"
                    self.element[rid] = (f"huge-{i}", "ev0")
                time.sleep(self.pause)
            self.prod.flush()
            ingress = LineageProducer(self.topics["lineage"])
            now = int(time.time() * 1e6)
            for rid in self.expect:
                part, off = self.prod.delivered[rid]
                mid, et = self.element[rid]
                ingress.send(rid, ingress_record(rid, received_us=now - 10_000_000,
                                                 message_id=mid, event_type=et,
                                                 partition=part, offset=off))
            ingress.flush()
        except Exception as e:  # surfaced by the test
            self.error = e
        finally:
            self.done.set()


def crash_loop(service, cfg, work, rng, min_cycles):
    """Starts the persister, kills it, starts it again, until the workload is done and at least
    min_cycles have run. Returns (kills from outside, kills by the commit hook)."""
    outside = hooked = 0
    while not work.done.is_set() or outside + hooked < min_cycles:
        use_hook = not work.done.is_set() and rng.random() < 0.5
        env = {CRASH_ENV: str(rng.randint(1, 4))} if use_hook else None
        svc = service("persister", cfg, env=env, wait_healthy=False)
        if use_hook:
            deadline = time.monotonic() + 8
            while svc.running() and time.monotonic() < deadline:
                time.sleep(0.05)
            if not svc.running():
                assert svc.proc.returncode == -signal.SIGKILL, svc.log_tail()
                assert "killing the process after the commit" in svc.log_text()
                hooked += 1
                continue
        else:
            time.sleep(rng.uniform(1.0, 2.5))
        assert svc.running(), f"persister died on its own:\n{svc.log_tail()}"
        svc.stop(signal.SIGKILL)
        outside += 1
    return outside, hooked


def test_sigkill_loop_leaves_no_lineage_gap(stack, topics, pg_schema, service, free_port,
                                             tmp_path):
    rng = random.Random(20261125)
    group = f"g-{topics['events']}"
    cfg = persister_config(stack, topics, pg_schema, free_port(), group, batch_max=40,
                           batch_linger_ms=5,
                           kafka={"brokers": stack.brokers, "events_topic": topics["events"],
                                  "lineage_topic": topics["lineage"], "dlq_topic": topics["dlq"],
                                  "properties": ["group.instance.id=crash-loop"]})
    auditor = service("auditor", auditor_config(stack, topics, pg_schema, free_port(),
                                                tmp_path / "cp.pem"))
    work = Workload(topics, messages=2400, per_second=120)
    producer = threading.Thread(target=work.run)
    producer.start()
    try:
        outside, hooked = crash_loop(service, cfg, work, rng, min_cycles=12)
    finally:
        work.done.wait(120)
        producer.join(10)
    assert work.error is None, work.error
    assert hooked >= 2 and outside >= 2, (hooked, outside)

    cfg["http"] = {"listen": f"127.0.0.1:{free_port()}"}
    # What the last kill left without delivered lineage: the next member produces it again.
    behind = sum(nxt - lin for _, nxt, lin in pg_schema.query(
        "SELECT kafka_partition, next_offset, lineage_offset FROM consumer_offsets"
        " WHERE consumer_group = %s", (group,)) if lin is not None and lin < nxt)
    last = service("persister", cfg)
    wait_offsets_at_end(pg_schema, group, topics["events"], timeout=120)
    # Stopped before it re-read those records, a member leaves them to the next owner (by
    # design); the clean stop below is meant to find the recovery done, its lineage maybe still
    # in flight.
    wait_for(lambda: (metric(last, "hookline_persister_lineage_recovered_total") or 0) >= behind,
             60, f"{behind} records' lineage produced again")

    # The table: each event once, the first delivery, at its own position, in message order.
    rows = pg_schema.query("SELECT id, message_id, event_type, request_id::text,"
                           " kafka_partition, kafka_offset, persisted_at FROM webhook_events")
    assert len(rows) == len(work.first), f"{len(rows)} rows for {len(work.first)} events"
    row_of = {}
    by_msg = collections.defaultdict(list)
    for rid_row, m, e, rid, p, o, at in rows:
        assert rid == work.first[(m, e)]
        assert (p, o) == work.prod.delivered[rid]
        row_of[rid] = rid_row
        by_msg[m].append((o, at))
    for m, evs in by_msg.items():
        evs.sort()
        assert [at for _, at in evs] == sorted(at for _, at in evs), f"{m} out of order"

    # A clean stop waits for the lineage in flight and stores lineage_offset: the last member
    # leaves nothing to recover.
    assert last.stop() == 0, last.log_tail()
    offs = pg_schema.query("SELECT kafka_partition, next_offset, lineage_offset"
                           " FROM consumer_offsets WHERE consumer_group = %s", (group,))
    assert offs and all(lin == nxt for _, nxt, lin in offs), offs

    # The lineage topic: every request has at least one outcome record, and every outcome
    # record of it says what became of it.
    lineage = read_topic(topics["lineage"], 3)
    outcomes = collections.defaultdict(list)
    for key, rec in lineage:
        if rec["stage"] in OUTCOMES:
            assert key == rec["request_id"]
            outcomes[rec["request_id"]].append(rec)
    missing = [rid for rid in work.expect if not outcomes.get(rid)]
    assert not missing, f"{len(missing)} of {len(work.expect)} requests without lineage"
    assert set(outcomes) == set(work.expect)
    for rid, recs in outcomes.items():
        want = work.expect[rid]
        for rec in recs:
            assert (rec["partition"], rec["offset"]) == work.prod.delivered[rid]
            if want == "inserted":
                assert rec["stage"] == "persisted" and rec["duplicate"] is False, rec
                assert rec["row_id"] == row_of[rid], rec
            elif want == "duplicate":
                assert rec["stage"] == "persisted" and rec["duplicate"] is True, rec
                assert rec["row_id"] is None
            else:
                assert rec["stage"] == "dead_lettered" and rec["error_code"] == want, rec
    # The kills did leave lineage to recover: records produced again after a restart carry no
    # consumed_us (when the record was first taken is not known any more).
    recovered = sum(1 for recs in outcomes.values() for r in recs if "consumed_us" not in r)
    assert recovered > 0, "no lineage was recovered: the kills tested nothing"
    repeats = sum(len(recs) - 1 for recs in outcomes.values())

    # The auditor stores one outcome per request (repeats skipped and counted), and no gap.
    want_rows = 2 * len(work.expect)  # one ingress and one outcome each

    def stored():
        return pg_schema.query("SELECT count(*) FROM lineage")[0][0]
    wait_for(lambda: stored() == want_rows, 90, f"{want_rows} lineage rows")
    per_request = pg_schema.query("SELECT request_id, count(*) FILTER (WHERE stage IN"
                                  " ('persisted', 'dead_lettered')) FROM lineage"
                                  " GROUP BY request_id")
    assert len(per_request) == len(work.expect)
    assert all(n == 1 for _, n in per_request)

    def repeats_metric():
        text = get(auditor, "/metrics", role="metrics").text
        for line in text.splitlines():
            if line.startswith("hookline_auditor_lineage_repeats_total "):
                return float(line.split()[1])
        return None
    assert repeats_metric() == repeats
    gaps = get(auditor, "/v1/gaps?state=open&limit=1000").json()["gaps"]
    assert gaps == []
    assert auditor.stop() == 0


def test_auditor_stores_one_outcome_per_kafka_record(stack, topics, pg_schema, service,
                                                     free_port, tmp_path):
    """The auditor's side on its own: an outcome record repeating one already stored for the
    same request, partition and offset is skipped and counted, in the same batch or a later
    one; a request redriven from the DLQ (another offset) keeps both outcomes."""
    auditor = service("auditor", auditor_config(stack, topics, pg_schema, free_port(),
                                                tmp_path / "cp.pem"))
    now = int(time.time() * 1e6)
    a, b = "0190f5a2-7b3c-7def-8a12-00000000000a", "0190f5a2-7b3c-7def-8a12-00000000000b"
    ing_a = ingress_record(a, received_us=now - 5_000_000, partition=1, offset=5)
    ing_b = ingress_record(b, received_us=now - 5_000_000, partition=1, offset=7)
    stored = {"v": 1, "stage": "persisted", "request_id": a, "ts_us": now - 4_000_000,
              "source": "stripe", "message_id": "msg-1", "event_type": "t.created",
              "partition": 1, "offset": 5, "consumed_us": now - 4_100_000,
              "committed_us": now - 4_000_000, "row_id": 3, "duplicate": False}
    recovered = {k: v for k, v in stored.items() if k != "consumed_us"}
    dead_b = {"v": 1, "stage": "dead_lettered", "request_id": b, "ts_us": now - 4_000_000,
              "source": "stripe", "partition": 1, "offset": 7, "error_code": "pg_rejected"}
    redriven_b = dict(stored, request_id=b, offset=9, row_id=4)
    feed = LineageProducer(topics["lineage"])
    for rec in (ing_a, ing_b, stored, recovered, dead_b):  # a repeat within one batch
        feed.send(rec["request_id"], rec)
    feed.flush()

    def rows():
        return pg_schema.query("SELECT request_id, stage, kafka_offset FROM lineage"
                               " ORDER BY request_id, kafka_offset, stage")
    wait_for(lambda: len(rows()) == 4, 30, "4 lineage rows")
    for rec in (recovered, dead_b, redriven_b):  # repeats in a later batch, and a redrive
        feed.send(rec["request_id"], rec)
    feed.flush()
    wait_for(lambda: len(rows()) == 5, 30, "the redriven outcome")
    time.sleep(1)  # anything else would have landed with it
    assert rows() == [(a, "ingress", 5), (a, "persisted", 5), (b, "dead_lettered", 7),
                      (b, "ingress", 7), (b, "persisted", 9)]
    text = get(auditor, "/metrics", role="metrics").text
    assert "hookline_auditor_lineage_repeats_total 3" in text.splitlines()
    assert get(auditor, "/v1/gaps?state=all").json()["gaps"] == []
    assert auditor.stop() == 0
