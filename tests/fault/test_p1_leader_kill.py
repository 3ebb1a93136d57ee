"""Production topology, scenario 1: the broker leading the busiest partitions of the events
topic SIGKILLed mid-run and started again 15 s later (30 s with --long). Two copies of every
partition remain, so the ingress must keep answering 202 once leadership has moved to the
survivors (within seconds: the controller fences the dead broker after its session timeout),
and everything answered 202 must be stored exactly once, in order, with its lineage. The
attack must land: the replay still sending at the kill and at the restart, the killed node
leading partitions with records, leadership moved off it, and the node back in every ISR
after its restart."""
import signal
import time

import production


def test_busiest_leader_sigkill(fault_production):
    down_s = 30 if fault_production.long else 15

    def attack(sc, rp):
        st, topic = sc.stack, sc.topics["events"]
        node, led, share = st.busiest_leader(topic)
        pid = st.signal_node(node, signal.SIGKILL)
        t = time.monotonic()
        sc.note(f"SIGKILL Kafka node {node} (pid {pid}), leader of partitions {led} holding"
                f" {share:.0%} of the records", action=True)
        problems = []
        if not led:
            problems.append(f"node {node} led no partition of {topic}: not the attack meant")
        others = [n for n in st.nodes if n != node]
        moved = production.wait_until(lambda: all(
            leader in others for leader, _, _ in st.partitions(topic, others).values()), 60)
        sc.note(f"leadership of every partition on nodes {others}"
                f" {'never (60 s)' if moved is None else f'{moved:.1f} s after the kill'}")
        if moved is None:
            problems.append(f"leadership did not move off the killed node {node} within 60 s")
        time.sleep(max(0.0, down_s - (time.monotonic() - t)))
        if not rp.running():
            problems.append("the replay ended while the node was down: its restart was not"
                            " under load")
        took = st.start_kafka()
        sc.note(f"Kafka node {node} started again after {time.monotonic() - t - took:.1f} s"
                f" down ({took:.1f} s to start)", action=True)
        problems += production.wait_rejoined(sc, node, "its restart")
        return t, problems

    production.run(fault_production, "leader-kill", attack)
