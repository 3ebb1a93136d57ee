"""Production topology, scenario 5: the Postgres primary SIGKILLed mid-run (the postmaster
and every backend at once) and the streaming standby promoted 3 s later. The services reach
Postgres through a multi-host conninfo with target_session_attrs=read-write, so the persister
and the auditor must find the new primary by themselves, retrying the batches the kill cut
off. Every event answered 202 must end up in the promoted database exactly once, in order,
with its lineage.

Replication is asynchronous, and the scenario makes the failover lose commits: the primary's
WAL senders are stopped 1.5 s before the kill, so the primary goes on confirming the services'
commits that the standby never receives (on one host the standby otherwise trails by
milliseconds and the window is rarely hit). The promoted database lacks those batches' rows,
lineage rows and offsets, and the id sequence's advance: the persister and the auditor must
read the lost records from Kafka again, the persister writes them under new ids (the lost ids
handed out again, to whichever records come first) and the content check lists their first
records as rewritten, which passes. The attack must land: the replay still sending at the
kill, WAL the standby lacked, the old primary gone and the standby a primary, and stored events
written again. Runs last of the
suite: the old primary stays down until the stack's reset."""
import time

import production

PROMOTE_AFTER_S = 3.0  # the time a failover manager takes to decide
HOLD_S = 1.5  # commits the standby does not receive before the kill


def test_pg_primary_killed_standby_promoted(fault_production):

    def attack(sc, rp):
        st = sc.stack
        problems = []
        senders = st.hold_replication()
        sc.note(f"SIGSTOP the primary's WAL senders (pids {senders}): the standby receives no"
                " more commits", action=True)
        try:
            time.sleep(HOLD_S)
            behind = st.wal_not_received()
            rows = sc.rows()
        except BaseException:
            st.release_replication(senders)
            raise
        pid = st.kill_pg_primary()
        t = time.monotonic()
        sc.note(f"SIGKILL the Postgres primary (postmaster pid {pid} and its children) with"
                f" {rows:,} rows stored, {behind or 0:,} bytes of its WAL not on the standby",
                action=True)
        if not senders:
            problems.append("the primary had no WAL sender to stop: the standby was not streaming")
        if not behind:
            problems.append(f"the standby lacked no WAL at the kill ({behind}): no commit lost")
        time.sleep(PROMOTE_AFTER_S)
        took = st.promote_standby()
        sc.note(f"standby promoted ({took:.1f} s) {time.monotonic() - t:.1f} s after the kill",
                action=True)
        roles = (st.pg_role(st.pg_port), st.pg_role(st.pg_standby_port))
        sc.note(f"old primary :{st.pg_port} {roles[0] or 'down'}, standby"
                f" :{st.pg_standby_port} {roles[1] or 'down'}")
        if roles != (None, "primary"):
            problems.append(f"after the failover: old primary {roles[0]}, standby {roles[1]}"
                            " (expected down and primary)")
        if not rp.running():
            problems.append("the replay ended before the standby was promoted")
        return t, problems

    def landed(sc):
        # WAL the standby lacked could be the auditor's alone: the persister's commits must
        # have been lost too, and their events written again.
        again = ((sc.verified or {}).get("content") or {}).get("rows_rewritten")
        if not again:
            return [f"no stored event was written again after the failover ({again}): the"
                    " promoted database lost none of the persister's commits"]
        return []

    production.run(fault_production, "pg-failover", attack, landed=landed)
