"""Production topology, scenario 2: the active KRaft controller (the quorum's leader, as
DescribeQuorum reports it) SIGKILLed mid-run and started again 10 s later. The two remaining
controllers must elect a new leader; every node is also a broker, so the partitions the
killed node led move too. The verdict is the suite's; the attack must land: the replay still
sending, a different node reported as the quorum's leader after the kill, the node back in
every ISR after its restart."""
import signal
import time

import production


def test_active_controller_sigkill(fault_production):

    def attack(sc, rp):
        st = sc.stack
        problems = []
        ctrl = st.active_controller()
        if ctrl is None:
            return None, ["DescribeQuorum named no active controller: nothing was attacked"]
        pid = st.signal_node(ctrl, signal.SIGKILL)
        t = time.monotonic()
        sc.note(f"SIGKILL the active controller, Kafka node {ctrl} (pid {pid})", action=True)
        others = [n for n in st.nodes if n != ctrl]
        new = []
        elected = production.wait_until(
            lambda: new.append(st.active_controller(others)) or new[-1] not in (None, ctrl), 60,
            step=0)
        sc.note(f"active controller now node {new[-1] if new else None},"
                f" {'not within 60 s' if elected is None else f'{elected:.1f} s after the kill'}"
                " (each DescribeQuorum starts a JVM: the figure is an upper bound)")
        if elected is None:
            problems.append(f"no controller other than node {ctrl} within 60 s of the kill")
        time.sleep(max(0.0, 10 - (time.monotonic() - t)))
        if not rp.running():
            problems.append("the replay ended while the controller was down")
        took = st.start_kafka()
        sc.note(f"Kafka node {ctrl} started again ({took:.1f} s)", action=True)
        problems += production.wait_rejoined(sc, ctrl, "its restart")
        return t, problems

    production.run(fault_production, "controller-kill", attack)
