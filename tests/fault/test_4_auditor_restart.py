"""Scenario 4: the auditor stopped mid-run (SIGTERM, then later SIGKILL) and started again.
Lineage keeps accumulating in Kafka meanwhile; the auditor resumes from the offsets it stored
in Postgres with its batches, so the lineage catches up with no gap, no record stored twice
and the hash chains intact. The replay is paced to ~45 s so that every stop lands while it
sends (unpaced, a fast host finished before the SIGKILL)."""
import signal
import time


def test_auditor_stopped_and_restarted(fault):
    sc = fault.scenario("auditor-restart")
    sc.start("auditor")
    sc.start("persister")
    sc.start("ingress")
    rp = sc.replay("main", sc.url("ingress"), fault.events, seconds=45)
    stops = [(0.2, signal.SIGTERM, 10), (0.45, signal.SIGKILL, 5), (0.7, signal.SIGKILL, 15)] \
        if fault.long else [(0.25, signal.SIGTERM, 8), (0.6, signal.SIGKILL, 5)]
    done = 0
    for at, sig, down in stops:
        sc.wait_answered(at, [rp])
        if not rp.running():
            break
        sc.kill("auditor", sig=sig)
        done += 1
        time.sleep(down)
        sc.start("auditor")
        # The next stop waits until this life has stored lineage again, so it hits an auditor
        # at work rather than one still joining its group.
        base = sc.lineage_rows() or 0
        t = time.monotonic()
        while (sc.lineage_rows() or 0) <= base and time.monotonic() - t < 60:
            time.sleep(0.2)
        sc.note(f"auditor started again after {down} s down; storing lineage again"
                f" {time.monotonic() - t:.1f} s later", action=True)
        time.sleep(sc.rng.uniform(0.5, 2.0))
    res = rp.wait(fault.opts["replay_timeout_s"])
    # Every request has its ingress record and every accepted one its persisted record; judge()
    # reports how long the auditor took to hold them all.
    behind = res["sent"] + res["accepted"] - (sc.lineage_rows() or 0)
    sc.note(f"replay ended with the auditor {behind:,} lineage rows behind")
    problems = sc.judge()
    if done < len(stops):
        problems.append(f"only {done} of {len(stops)} auditor stops happened during the replay:"
                        " not the attack meant")
    sc.summary["stops"] = done
    for r in sc.retired:  # SIGTERM must end in exit 0, SIGKILL in -9
        if r.name.startswith("hookline-auditor") and r.proc.returncode not in (0, -9):
            problems.append(f"{r.name} exited {r.proc.returncode}; log {r.log_path}")
    sc.finish(problems)
