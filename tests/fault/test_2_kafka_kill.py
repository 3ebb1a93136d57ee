"""Scenario 2: the Kafka broker killed with SIGKILL mid-run and started again. While it is
away the ingress answers 503 (the test requires some), the replay retries after Retry-After,
and afterwards everything that was answered 202 is stored exactly once and in order, with its
lineage (a 202 given for a record the broker had not stored would show as a lost row); the
persister and the auditor ride the outage out without a restart, and the ingress is ready
again once the broker is back."""
import time


def wait_ready(sc, slot, timeout):
    """Seconds until the ingress's /readyz answers 200 again (None if not within timeout)."""
    t = time.monotonic()
    svc = sc.svc[("ingress", slot)]
    while time.monotonic() - t < timeout:
        try:
            if svc.get("/readyz", timeout=2)[0] == 200:
                return time.monotonic() - t
        except OSError:
            pass
        time.sleep(0.1)
    return None


def test_kafka_sigkill_and_restart(fault):
    sc = fault.scenario("kafka-kill")
    sc.start("auditor")
    sc.start("persister")
    sc.start("ingress")
    rp = sc.replay("main", sc.url("ingress"), fault.events)
    points = (0.25, 0.6) if fault.long else (0.3,)
    problems = []
    for i, at in enumerate(points, 1):
        n = sc.wait_answered(at, [rp])
        if not rp.running():
            break
        before = sc.status_counts()
        pid = sc.stack.kill_kafka()
        t_kill = time.monotonic()
        sc.note(f"SIGKILL Kafka broker pid {pid} after {n:,.0f} answers", action=True)
        took = sc.stack.start_kafka()
        sc.note(f"Kafka broker started again ({took:.1f} s)", action=True)
        ready = wait_ready(sc, 0, 120)
        after = sc.status_counts()
        delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
        delta = {k: v for k, v in delta.items() if v}
        sc.note(f"ingress /readyz 200 again {time.monotonic() - t_kill:.1f} s after the kill"
                f" ({'never' if ready is None else f'{ready:.1f} s'} after the restart);"
                f" its answers by status meanwhile: {delta}")
        if ready is None:
            problems.append("the ingress was not ready 120 s after the broker restarted")
        sc.summary[f"outage_{i}_s"] = round(time.monotonic() - t_kill, 1)
    problems += sc.judge()
    if sc.answers.get("503", 0) == 0:
        problems.append("the ingress never answered 503: the outage did not reach the requests")
    sc.finish(problems)
