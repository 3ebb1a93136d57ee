"""Scenario 3: Postgres stopped for 30 s mid-run. The ingress does not need Postgres and keeps
accepting; the persister must pause and retry its batch (no commit, no skip), the auditor must
wait too; once Postgres is back both catch up, and nothing answered 202 is missing."""
import time


def test_postgres_stopped_30s(fault):
    sc = fault.scenario("postgres-stop")
    sc.start("auditor")
    sc.start("persister")
    sc.start("ingress")
    rp = sc.replay("main", sc.url("ingress"), fault.events)
    problems = []
    outages = [(0.2, "fast", 30), (0.6, "immediate", 30)] if fault.long else [(0.25, "fast", 30)]
    for at, mode, seconds in outages:
        sc.wait_answered(at, [rp])
        rows = sc.rows()
        before = sc.answered()
        took = sc.stack.stop_pg(mode)
        t = time.monotonic()
        sc.note(f"Postgres stopped (pg_ctl -m {mode}, {took:.1f} s) with {rows:,} rows stored;"
                f" staying down {seconds} s", action=True)
        not_ready = 0
        while time.monotonic() - t < seconds:
            st = sc.svc[("persister", 0)].get("/readyz", timeout=2)[0]
            not_ready += st != 200
            time.sleep(1)
        during = sc.answered() - before
        if not during:
            problems.append(f"outage at {at:.0%}: the ingress answered nothing while Postgres was"
                            " down (the replay had ended): not the attack meant")
        took = sc.stack.start_pg()
        sc.note(f"Postgres started again after {time.monotonic() - t:.1f} s down ({took:.1f} s"
                f" to start); the ingress answered {during:,.0f} requests meanwhile, the"
                f" persister's /readyz was not 200 in {not_ready} of {seconds} probes",
                action=True)
        # A next outage should find the persister at work again, not still retrying.
        t = time.monotonic()
        while (sc.rows() or 0) <= rows and time.monotonic() - t < 60:
            time.sleep(0.2)
        sc.note(f"persister committing again {time.monotonic() - t:.1f} s after the restart")
    problems += sc.judge()
    sc.finish(problems)
