"""Production topology, scenario 4: two of the three brokers SIGKILLed at once mid-run, down
15 s, then started again. With one copy reachable, fewer than min.insync.replicas (2) can be
written: the ingress must answer 503, never 202, from shortly after the kill (2 s for answers
to records the brokers had acknowledged before they died) until the restart, and must accept
again by itself once two brokers are back. Every 202 of the run, those just before the kill
included, must be stored exactly once, in order, with its lineage. The attack must land: the
replay sending throughout, and 503s answered while the brokers were down."""
import signal
import time

import production

IN_FLIGHT_S = 2.0  # answers to acknowledgements the brokers sent before they died


def test_two_brokers_down_503_not_202(fault_production):

    def attack(sc, rp):
        st, topic = sc.stack, sc.topics["events"]
        problems = []
        node, _, _ = st.busiest_leader(topic)
        victims = [node] + [n for n in st.nodes if n != node][:1]
        pids = [st.signal_node(n, signal.SIGKILL) for n in victims]
        t = time.monotonic()
        sc.note(f"SIGKILL Kafka nodes {victims} (pids {pids}) at once", action=True)
        time.sleep(IN_FLIGHT_S)
        mon = sc.monitor
        a202, a503 = mon.count("202", time.monotonic()), mon.count("503", time.monotonic())
        time.sleep(max(0.0, 15 - (time.monotonic() - t)))
        b202, b503 = mon.count("202", time.monotonic()), mon.count("503", time.monotonic())
        if not rp.running():
            problems.append("the replay ended while two brokers were down")
        sc.note(f"while one broker was up ({IN_FLIGHT_S:.0f} s after the kill until the"
                f" restart): {b202 - a202} answers 202, {b503 - a503} answers 503")
        sc.summary["down_202"], sc.summary["down_503"] = b202 - a202, b503 - a503
        if b202 != a202:
            problems.append(f"{b202 - a202} requests answered 202 while fewer than"
                            " min.insync.replicas copies could be written")
        if b503 == a503:
            problems.append("no 503 while two brokers were down: the outage did not reach the"
                            " requests")
        took = st.start_kafka()
        sc.note(f"Kafka nodes {victims} started again after"
                f" {time.monotonic() - t - took:.1f} s down ({took:.1f} s to start)",
                action=True)
        for n in victims:
            problems += production.wait_rejoined(sc, n, "the restart")
        return t, problems

    production.run(fault_production, "two-brokers-down", attack)
