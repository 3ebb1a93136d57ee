"""Production topology, scenario 5: the Postgres primary SIGKILLed mid-run (the postmaster
and every backend at once) and the streaming standby promoted 3 s later. The services reach
Postgres through a multi-host conninfo with target_session_attrs=read-write, so the persister
and the auditor must find the new primary by themselves, retrying the batches the kill cut
off. Every event answered 202 must end up in the promoted database exactly once, in order,
with its lineage. Replication is asynchronous: a commit the standby had not yet received when
the primary died would be missing from the new primary; on one host the standby trails by
milliseconds, so this scenario does not force that window (README, "The promise"), but a loaded
host can fall into it: the persister then writes those events again under new ids and the
content check lists their first records as rewritten, which passes. The attack must land: the
replay still sending at the kill,
the old primary gone and the standby a primary. Runs last of the suite: the old primary stays
down until the stack's reset."""
import time

import production

PROMOTE_AFTER_S = 3.0  # the time a failover manager takes to decide


def test_pg_primary_killed_standby_promoted(fault_production):

    def attack(sc, rp):
        st = sc.stack
        problems = []
        rows = sc.rows()
        pid = st.kill_pg_primary()
        t = time.monotonic()
        sc.note(f"SIGKILL the Postgres primary (postmaster pid {pid} and its children) with"
                f" {rows:,} rows stored", action=True)
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

    production.run(fault_production, "pg-failover", attack)
