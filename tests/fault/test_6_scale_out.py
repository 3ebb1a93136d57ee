"""Scenario 6: two ingresses and two persisters at once, one auditor. The replay is split in
two halves, one per ingress, sent at the same time; the persisters share one consumer group,
so each owns some partitions and both write the same table. Exactly once and order must hold
across both. (--long also kills one persister mid-run and starts it again.)"""
import time

from scenario import metric_sum


def test_two_ingresses_two_persisters(fault):
    sc = fault.scenario("scale-out")
    sc.start("auditor")
    sc.start("persister", 0)
    sc.start("persister", 1)
    sc.start("ingress", 0)
    sc.start("ingress", 1)
    t = time.monotonic()
    while time.monotonic() - t < 60:
        parts = [metric_sum(sc.metrics("persister", s), "hookline_persister_assigned_partitions")
                 or 0 for s in (0, 1)]
        if all(parts) and sum(parts) == 6:
            break
        time.sleep(0.2)
    sc.note(f"partitions assigned per persister: {parts}")
    half = fault.events // 2
    a = sc.replay("a", sc.url("ingress", 0), half, concurrency=25)
    b = sc.replay("b", sc.url("ingress", 1), fault.events - half, concurrency=25)
    earlier = [0.0, 0.0]  # rows written by persister lives already ended
    if fault.long:
        # A member of the group dies mid-run and comes back: two rebalances while both
        # ingresses keep producing.
        sc.wait_answered(0.5, [a, b], slots=(0, 1))
        stopped = sc.kill("persister", 1)
        earlier[1] += metric_sum(stopped.metrics_before, "hookline_persister_rows_total") or 0
        time.sleep(3)
        sc.start("persister", 1)
    a.wait(fault.opts["replay_timeout_s"])
    b.wait(fault.opts["replay_timeout_s"])
    rows = [earlier[s] + (metric_sum(sc.metrics("persister", s),
                                     "hookline_persister_rows_total") or 0) for s in (0, 1)]
    per_ingress = [sc.answered((s,)) for s in (0, 1)]
    sc.note(f"answers per ingress {per_ingress}; rows written per persister so far {rows}")
    problems = sc.judge()
    if not all(parts):
        problems.append(f"the persisters did not share the partitions: {parts}")
    if not all(rows):
        problems.append(f"a persister wrote no rows: {rows}")
    sc.finish(problems)
