"""A fatal error in the persister's or the auditor's Kafka consumer, made for real: librdkafka
declares a consumer fatal when it is a static group member (group.instance.id) fenced by a
second member of the same id. A new handle in-process would fence the other member in turn, so
each service writes what it holds, then exits with code 1 and says why; its supervisor
decides. The second member keeps consuming, and nothing is lost or written twice: offsets
live in Postgres."""
import pytest

from auditor_support import LineageProducer, auditor_config, ingress_record, lineage_count, uuid7
from persister_support import (EventProducer, count_rows, persister_config, wait_for,
                               wait_offsets_at_end)


@pytest.mark.parametrize("which", ["persister", "auditor"])
def test_fenced_static_member_exits(which, stack, topics, pg_schema, service, free_port,
                                    tmp_path):
    group = f"g-{which}-{topics['events']}"

    def make(port):
        if which == "persister":
            return persister_config(stack, topics, pg_schema, port, group, batch_linger_ms=20)
        return auditor_config(stack, topics, pg_schema, port, tmp_path / "k.key", group=group)

    def start(port):
        cfg = make(port)
        cfg["kafka"]["properties"] = ["group.instance.id=hl-fenced"]
        return service(which, cfg)

    def feed(prefix, n):
        if which == "persister":
            p = EventProducer(topics["events"])
            for i in range(n):
                p.send(f"{prefix}-{i}", "created")
        else:
            p = LineageProducer(topics["lineage"])
            for i in range(n):
                rid = uuid7()
                p.send(rid, ingress_record(rid, message_id=f"{prefix}-{i}"))
        p.flush()

    def stored():
        return count_rows(pg_schema) if which == "persister" else lineage_count(pg_schema)

    first = start(free_port())
    feed("a", 100)
    wait_for(lambda: stored() == 100, 60, "the first member to store 100")
    second = start(free_port())  # same group.instance.id: the first one is fenced
    assert first.proc.wait(60) == 1
    log = first.log_text()
    assert "kafka consumer fatal error" in log and "FENCED_INSTANCE_ID" in log
    feed("b", 100)
    wait_for(lambda: stored() == 200, 60, "the second member to store the rest")
    if which == "persister":
        wait_offsets_at_end(pg_schema, group, topics["events"])
    assert stored() == 200
    assert second.running()
    assert second.stop() == 0
