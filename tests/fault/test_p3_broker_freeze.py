"""Production topology, scenario 3: one broker frozen with SIGSTOP mid-run (not the active
controller: scenario 2 covers that) until it has dropped out of the in-sync replicas, then
resumed with SIGCONT. While it is frozen its open connections stay up and answer nothing:
acks=all writes wait for it until it leaves the ISR (replica.lag.time.max.ms, 10 s on the
local stack) and requests to the partitions it led wait until the controller fences it. The
attack must land: the replay still sending at the freeze and at the resume, the node out of
the ISR of at least one partition while frozen, and back in every ISR after."""
import signal
import time

import production


def test_broker_frozen_out_of_isr(fault_production):

    def attack(sc, rp):
        st, topic = sc.stack, sc.topics["events"]
        problems = []
        ctrl = st.active_controller()
        parts, ends = st.partitions(topic), st.end_offsets(topic)
        # The broker leading the most records among those that are not the controller.
        load = {n: sum(ends[p] for p, (leader, _, _) in parts.items() if leader == n)
                for n in st.nodes if n != ctrl}
        node = max(load, key=load.get)
        others = [n for n in st.nodes if n != node]
        pid = st.signal_node(node, signal.SIGSTOP)
        t = time.monotonic()
        sc.note(f"SIGSTOP Kafka node {node} (pid {pid}); active controller node {ctrl}",
                action=True)
        try:
            out = production.wait_until(lambda: any(
                node not in isr for _, _, isr in st.partitions(topic, others).values()), 90)
            sc.note("frozen node out of an ISR"
                    f" {'never (90 s)' if out is None else f'{out:.1f} s after SIGSTOP'}")
            if out is None:
                problems.append(f"node {node} stayed in every ISR for 90 s while frozen: the"
                                " attack did not land")
            # A few seconds out of the ISR, so the survivors' writes go on without it.
            time.sleep(3)
            if not rp.running():
                problems.append("the replay ended while the node was frozen")
        finally:
            st.signal_node(node, signal.SIGCONT)
        sc.note(f"SIGCONT Kafka node {node} after {time.monotonic() - t:.1f} s frozen",
                action=True)
        problems += production.wait_rejoined(sc, node, "SIGCONT")
        return t, problems

    production.run(fault_production, "broker-freeze", attack)
