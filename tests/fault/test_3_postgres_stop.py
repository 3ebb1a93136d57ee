"""Scenario 3: Postgres stopped for 30 s mid-run. The ingress does not need Postgres and keeps
accepting; the persister must pause and retry its batch (no commit, no skip), the auditor must
wait too; once Postgres is back both catch up, and nothing answered 202 is missing.

The persister's /readyz, probed once a second while Postgres is down, must say not ready in at
least half of the probes (its batch is failing and being retried; only the probes before the
first failed commit may still find it ready), and must be ready again once Postgres is back."""
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
        not_ready = probes = 0
        while time.monotonic() - t < seconds:
            st = sc.svc[("persister", 0)].get("/readyz", timeout=2)[0]
            not_ready += st != 200
            probes += 1
            time.sleep(1)
        during = sc.answered() - before
        if not during:
            problems.append(f"outage at {at:.0%}: the ingress answered nothing while Postgres was"
                            " down (the replay had ended): not the attack meant")
        took = sc.stack.start_pg()
        sc.note(f"Postgres started again after {time.monotonic() - t:.1f} s down ({took:.1f} s"
                f" to start); the ingress answered {during:,.0f} requests meanwhile, the"
                f" persister's /readyz was not 200 in {not_ready} of {probes} probes",
                action=True)
        if during and not_ready * 2 < probes:
            problems.append(f"outage at {at:.0%}: the persister's /readyz was not 200 in only"
                            f" {not_ready} of {probes} probes while Postgres was down")
        # A next outage should find the persister at work again, not still retrying.
        t = time.monotonic()
        while (sc.rows() or 0) <= rows and time.monotonic() - t < 60:
            time.sleep(0.2)
        sc.note(f"persister committing again {time.monotonic() - t:.1f} s after the restart")
        while sc.svc[("persister", 0)].get("/readyz", timeout=2)[0] != 200:
            if time.monotonic() - t > 60:
                problems.append(f"outage at {at:.0%}: the persister's /readyz not 200 again"
                                " within 60 s of Postgres' restart")
                break
            time.sleep(0.5)
    problems += sc.judge()
    sc.finish(problems)
