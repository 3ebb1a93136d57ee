"""Scenario 5: the ingress sent SIGTERM mid-run and started again on the same port. It must
drain: /readyz 503, new requests 503 with Connection: close, requests in flight finish (no
drain timeout), the producer is flushed, exit 0. The replay retries what was refused or cut
off, and nothing answered 202 is missing afterwards.

The ingress runs at log level debug here, so every accepted request leaves a log line: the
ones after its "draining" line are the requests in flight at the signal that were answered
202 during the drain, and the replay's ledger must show each of them received as a 202.

The signal is sent only once the ingress reports requests in flight (the replay's 50
connections keep it busy), and at least one of them must be answered 202 while draining: a
SIGTERM that found nothing to drain has not tested the drain, and fails the scenario."""
import json
import signal
import time

from scenario import metric_sum


def answered_while_draining(log):
    """(request ids logged as accepted after the draining line, number of 503s after it)."""
    lines = log.splitlines()
    start = next((i for i, ln in enumerate(lines) if '"msg":"signal 15: draining"' in ln), None)
    if start is None:
        return None, 0
    accepted, refused = [], 0
    for ln in lines[start + 1:]:
        if not ln.startswith("{"):
            continue
        rec = json.loads(ln)
        if rec.get("status") == 202:
            accepted.append(rec["request_id"])
        elif rec.get("status") == 503:
            refused += 1
    return accepted, refused


def test_ingress_sigterm_and_restart(fault):
    sc = fault.scenario("ingress-sigterm")
    sc.start("auditor")
    sc.start("persister")
    sc.start("ingress", log_level="debug")
    rp = sc.replay("main", sc.url("ingress"), fault.events)
    points = (0.2, 0.45, 0.7) if fault.long else (0.4,)
    problems = []
    drained = []  # request ids answered 202 by a draining ingress
    earlier = 0   # answers of the ingress instances already stopped
    done = 0
    for i, at in enumerate(points, 1):
        while rp.running() and earlier + sc.answered() < at * fault.events * 1.05:
            time.sleep(0.1)
        if not rp.running():
            break
        in_flight = 0
        t = time.monotonic()
        while rp.running() and time.monotonic() - t < 10:
            in_flight = metric_sum(sc.metrics("ingress"), "hookline_ingress_in_flight") or 0
            if in_flight > 0:
                break
            time.sleep(0.01)
        if not in_flight:
            problems.append(f"SIGTERM {i}: the ingress had no request in flight within 10 s"
                            " (the replay ended or stalled): the drain would test nothing")
            break
        done += 1
        stopped = sc.kill("ingress", sig=signal.SIGTERM)
        earlier += int(metric_sum(stopped.metrics_last, "hookline_ingress_requests_total") or 0)
        log = stopped.svc.log_text()
        accepted, refused = answered_while_draining(log)
        timeouts = [ln for ln in log.splitlines() if "drain timeout" in ln]
        sc.note(f"SIGTERM {i}: {in_flight:.0f} requests in flight just before the signal;"
                f" while draining it answered {len(accepted or [])} of them 202 and refused"
                f" {refused} new ones with 503; exited {stopped.code} in {stopped.seconds:.2f} s;"
                f" 'drained, exiting' logged: {'drained, exiting' in log}", action=True)
        if accepted is None:
            problems.append(f"SIGTERM {i}: no 'draining' line in {stopped.svc.log_path}")
        elif not accepted:
            problems.append(f"SIGTERM {i}: none of the {in_flight:.0f} requests in flight was"
                            " answered 202 during the drain")
        drained += accepted or []
        if stopped.code != 0:
            problems.append(f"ingress exited {stopped.code} after SIGTERM {i} (expected 0)")
        if timeouts or "drained, exiting" not in log:
            problems.append(f"ingress drain {i} incomplete: {timeouts or 'no drained line'}")
        t = time.monotonic()
        sc.start("ingress")
        sc.note(f"ingress back {stopped.seconds + time.monotonic() - t:.2f} s after the signal",
                action=True)
    problems += sc.judge()
    if done < len(points):
        problems.append(f"only {done} of {len(points)} SIGTERMs happened during the replay:"
                        " not the attack meant")
    # Each answer given while draining reached the replay (no connection cut under it).
    got = {}
    with open(rp.ledger) as f:
        for line in f:
            o = json.loads(line)
            got[o["request_id"]] = o["status"]
    lost = [rid for rid in drained if got.get(rid) != 202]
    sc.note(f"{len(drained) - len(lost)} of the {len(drained)} answers given while draining"
            " are in the replay's ledger as 202")
    if lost:
        problems.append(f"{len(lost)} requests answered 202 while draining never reached the"
                        f" replay as 202, e.g. {lost[:3]}")
    sc.finish(problems)
