"""What the scenarios of the production topology (test_p*) share: three services, one paced
replay, one attack when the ingress has answered a share of it, and the measures around the
attack.

A Monitor samples, every 0.2 s in the background, the ingress's answers by status and the
persister's committed rows (its /metrics). From those counters, for the table:

- *202 back s*: seconds from the attack until the ingress's rate of 202s (over a 1 s window)
  is back at half or more of its mean rate over the 20 s before the attack, after having
  fallen below that; 0.0 when it did not fall below within 15 s of the attack (the attack did
  not interrupt the 202s); "never" when it did not come back before the replay ended. When
  the counter stood still before the attack (a consumer group rebalancing, say), the first
  window after the attack in which it moved at all.
- *commit back s*: the same for the persister's committed rows, until it has caught up.

The samples are kept in the scenario's folder (monitor.json).

Both are reported, never a pass condition (the machine's speed is not the subject). What is
required: the verdict every scenario has (scenario.py, Scenario.judge), that each attack
landed while the replay sent (each attack checks that itself), and that both rates came back
by themselves."""
import json
import os
import threading
import time

from scenario import DUPLICATE_RATIO, metric_sum, status_counts

# Seconds the replay is paced to send for: long enough that an attack at 25-35 % and a
# restart 15-20 s later both land while it sends.
PACE_S = 50
HALF = 0.5         # "back" means at least this share of the rate before the attack
WINDOW_S = 1.0     # rates are counted over windows this long
BASELINE_S = 20.0  # the rate before the attack: the mean over this many seconds
DIP_WITHIN_S = 15.0


class Monitor:
    def __init__(self, sc, interval=0.2):
        self.sc, self.interval = sc, interval
        self.samples = []  # (t, {status: count} or None, committed rows or None)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fault-monitor", daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            t = time.monotonic()
            ing, per = self.sc.metrics("ingress"), self.sc.metrics("persister")
            self.samples.append((t, status_counts(ing) if ing else None,
                                 metric_sum(per, "hookline_persister_rows_total") if per else None))
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - t)))

    def stop(self):
        self._stop.set()
        self._thread.join(10)

    def series(self, what):
        """[(t, value)] of one counter: "202", "503" (answers) or "rows" (commits)."""
        out = []
        for t, st, rows in list(self.samples):
            if what == "rows":
                if rows is not None:
                    out.append((t, rows))
            elif st is not None:
                out.append((t, st.get(what, 0)))
        return out

    def count(self, what, t):
        """The counter's last value sampled at or before t (None before the first sample)."""
        v = None
        for ts, val in self.series(what):
            if ts > t:
                break
            v = val
        return v


def _value_at(series, t):
    v = series[0][1]
    for ts, val in series:
        if ts > t:
            break
        v = val
    return v


def resume_s(series, t_attack, until):
    """Seconds from t_attack until the counter's rate is back (see the module's text); 0.0
    when it did not dip, None when it did not come back before `until`."""
    def rate(t):
        return (_value_at(series, t + WINDOW_S) - _value_at(series, t)) / WINDOW_S

    if not series or series[0][0] > t_attack:
        return None
    t_from = max(series[0][0], t_attack - BASELINE_S)
    base = (_value_at(series, t_attack) - _value_at(series, t_from)) / max(WINDOW_S,
                                                                           t_attack - t_from)
    # A counter that stood still before the attack is back when it moves at all.
    floor = HALF * base if base > 0 else 1e-9
    dipped = base <= 0
    for t, _ in series:
        if t < t_attack or t + WINDOW_S > min(until, series[-1][0]):
            continue
        r = rate(t)
        if not dipped:
            if r < floor:
                dipped = True
            elif t - t_attack > DIP_WITHIN_S:
                return 0.0
        elif r >= floor:
            return round(t - t_attack, 1)
    return None


def wait_until(pred, timeout, step=0.5):
    """Seconds until pred() is true, None if it was not within timeout (exceptions of pred,
    say a metadata request that timed out, count as false)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            if pred():
                return time.monotonic() - t0
        except Exception:  # noqa: BLE001 - a broker or server going away is what is tested
            pass
        time.sleep(step)
    return None


def wait_rejoined(sc, node, after):
    """Until `node` is in the ISR of every partition of the scenario's events topic again.
    Returns the problems (none when it is back within 120 s)."""
    st, topic = sc.stack, sc.topics["events"]
    back = wait_until(lambda: all(node in isr for _, _, isr in st.partitions(topic).values()),
                      120)
    sc.note(f"node {node} in the ISR of every partition again"
            f" {'never (120 s)' if back is None else f'{back:.1f} s after {after}'}")
    return [] if back is not None else [f"node {node} did not rejoin every ISR within 120 s"
                                        f" of {after}"]


def run(fault, name, attack, at=0.3, landed=None):
    """Starts the services and the replay, calls attack(sc, replay) once the ingress has
    answered `at` of the replay's requests (attack returns (t_attack, problems)), then judges
    the scenario and measures how long the 202s and the commits took to come back. landed(sc),
    after the judgement: the problems that say the attack did not do what it must."""
    sc = fault.scenario(name)
    sc.start("auditor")
    sc.start("persister")
    sc.start("ingress")
    sc.monitor = Monitor(sc)
    rp = sc.replay("main", sc.url("ingress"), fault.events, seconds=PACE_S)
    n = sc.wait_answered(at, [rp])
    problems = []
    t_attack = None
    if not rp.running():
        problems.append(f"the replay ended after {n:,.0f} answers, before the attack: nothing"
                        " was attacked")
    else:
        t_attack, found = attack(sc, rp)
        problems += found
    problems += sc.judge()
    if landed and t_attack is not None:
        problems += landed(sc)
    sc.monitor.stop()
    with open(os.path.join(sc.work, "monitor.json"), "w") as f:
        json.dump({"t_attack": t_attack, "t0": sc.t0, "samples": sc.monitor.samples}, f)
    # What the ingress went through: fatal producer errors logged, producers replaced.
    ing = sc.svc.get(("ingress", 0))
    fatal = sum("fatal" in ln for ln in ing.log_text().splitlines()) if ing else None
    restarts = metric_sum(sc.metrics("ingress"), "hookline_ingress_kafka_producer_restarts_total")
    sc.summary.update(fatal_log_lines=fatal, producer_restarts=restarts)
    sc.note(f"ingress log lines naming a fatal error: {fatal}; producers replaced:"
            f" {'not counted by this ingress' if restarts is None else f'{restarts:.0f}'}")
    if t_attack is not None:
        # 202s stop when the replay does; the persister commits its backlog until caught up.
        back = {"resume_202_s": resume_s(sc.monitor.series("202"), t_attack,
                                         rp.t0 + (rp.elapsed or 0)),
                "resume_commit_s": resume_s(sc.monitor.series("rows"), t_attack,
                                            time.monotonic())}
        sc.summary.update(back)
        sc.note(f"after the attack: 202s back in {back['resume_202_s']} s, the persister's"
                f" commits back in {back['resume_commit_s']} s (None: never)")
        for k, what in (("resume_202_s", "the ingress's 202s"),
                        ("resume_commit_s", "the persister's commits")):
            if back[k] is None:
                problems.append(f"{what} did not come back to half their rate before the attack"
                                " while the replay sent")
    sc.summary["pace_rps"] = round(fault.events * (1 + DUPLICATE_RATIO) / PACE_S)
    sc.finish(problems)
