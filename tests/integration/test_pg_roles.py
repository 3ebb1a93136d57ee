"""Least privilege in Postgres (proto/sql/007_roles.sql, deploy/local/migrate --role): each
service's role is refused what it must not do, none owns a table or holds a dangerous
attribute, migrate refuses roles that could undo the grants, and the pipeline runs end to end
with the restricted roles (ingress -> persister -> auditor writer, the API on the read role).

Roles are the cluster's: every role here is named after this run and test (r<run_id>_<n>_<kind>)
and dropped at teardown, so parallel runs never meet."""
import io
import itertools
import json
import os
import secrets
import subprocess

import psycopg2
import pytest
from psycopg2 import errors

from auditor_support import auditor_config, get, lineage_count, post, wait_for
from harness import paths, pgio
from ingress_support import DEMO_SECRET, Client, ingress_config, standard_source
from persister_support import persister_config

KINDS = ("persister", "auditor", "reader")
_n = itertools.count(1)


def migrate(schema, *args, env=None):
    return subprocess.run([str(paths.MIGRATE_SCRIPT), "--schema", schema, *args],
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, **(env or {})))


def drop_roles(names):
    conn = pgio.connect()
    try:
        with conn.cursor() as cur:
            for name in names:
                cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,))
                if cur.fetchone():
                    cur.execute(f'DROP OWNED BY "{name}"')
                    cur.execute(f'DROP ROLE "{name}"')
    finally:
        conn.close()


class Roles:
    """The three service roles of one schema: .name[kind], .password[kind], .conninfo(kind),
    .connect(kind) (search_path = the schema, autocommit)."""

    def __init__(self, schema, prefix):
        self.schema = schema
        self.name = {k: f"{prefix}_{k}" for k in KINDS}
        self.password = {k: secrets.token_hex(12) for k in KINDS}
        self._conns = []

    def conninfo(self, kind):
        return paths.PG_CONNINFO.replace(f"user={paths.PG_USER}", f"user={self.name[kind]}")

    def connect(self, kind):
        conn = psycopg2.connect(self.conninfo(kind), password=self.password[kind],
                                connect_timeout=10,
                                options=f"-c search_path={self.schema.name}")
        conn.autocommit = True
        self._conns.append(conn)
        return conn

    def close_all(self):
        for c in self._conns:
            c.close()


@pytest.fixture
def roles(pg_schema, run_id):
    prefix = f"r{run_id}_{next(_n)}"
    made = Roles(pg_schema, prefix)
    try:
        r = migrate(pg_schema.name, *[a for k in KINDS for a in ("--role", f"{k}={made.name[k]}")],
                    "--create-roles",
                    env={f"HOOKLINE_PG_{k.upper()}_PASSWORD": made.password[k] for k in KINDS})
        assert r.returncode == 0, r.stdout + r.stderr
        for k in KINDS:
            assert f"{k} role {made.name[k]} granted" in r.stdout
        yield made
    finally:
        made.close_all()
        drop_roles(made.name.values())


def refused(conn, sql, params=None):
    """The statement fails with insufficient_privilege (42501) and changes nothing."""
    with conn.cursor() as cur:
        with pytest.raises(errors.InsufficientPrivilege) as e:
            cur.execute(sql, params)
    return str(e.value)


def one(conn, sql, params=None):
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchone() if cur.description else cur.rowcount


def seed(pg_schema):
    """One event, one lineage row, one checkpoint, one rollup, one offset, as the owner."""
    pg_schema.query(
        "INSERT INTO webhook_events (source, message_id, event_type, request_id, received_at,"
        " kafka_partition, kafka_offset, payload) VALUES ('s', 'm1', 't', gen_random_uuid(),"
        " now(), 0, 0, '{}')")
    pg_schema.query(
        "INSERT INTO lineage (chain, seq, lineage_offset, request_id, stage, ts_us, ts, record,"
        " prev_hash, hash) VALUES (0, 1, 0, 'r1', 'ingress', 1, now(), '{}',"
        " decode(repeat('00', 32), 'hex'), decode(repeat('11', 32), 'hex'))")
    pg_schema.query(
        "INSERT INTO lineage_checkpoints (chain, seq, hash, ts_us, key_id, signature)"
        " VALUES (0, 1, decode(repeat('11', 32), 'hex'), 1, 'k', '\\x00')")
    pg_schema.query("INSERT INTO latency_rollups VALUES (now(), 'ack', 's', 1, 1)")
    pg_schema.query("INSERT INTO latency_rollup_batches (minute, stage, source, outcome, buckets,"
                    " counts) VALUES (now(), 'ack', 's', 'accepted', '{1}', '{1}')")
    pg_schema.query("INSERT INTO consumer_offsets (consumer_group, topic, kafka_partition,"
                    " next_offset) VALUES ('g', 't', 0, 1)")


LINEAGE_ROW = ("INSERT INTO lineage (chain, seq, lineage_offset, request_id, stage, ts_us, ts,"
               " record, prev_hash, hash) VALUES (0, %s, %s, 'r2', 'persisted', 2, now(), '{}',"
               " decode(repeat('11', 32), 'hex'), decode(repeat('22', 32), 'hex'))")
EVENT_ROW = ("INSERT INTO webhook_events (source, message_id, event_type, request_id,"
             " received_at, kafka_partition, kafka_offset, payload) VALUES ('s', %s, 't',"
             " gen_random_uuid(), now(), 0, 1, '{}')")
AUDITOR_TABLES = ("lineage", "lineage_checkpoints", "latency_rollups", "latency_rollup_batches")
A_COLUMN = {"webhook_events": "kafka_partition", "consumer_offsets": "next_offset",
            "lineage": "seq", "lineage_checkpoints": "seq", "latency_rollups": "count",
            "latency_rollup_batches": "counts"}
ALL_TABLES = tuple(A_COLUMN)


def owner_powers_refused(conn, table):
    """What only an owner (or a superuser) may do: every one refused."""
    refused(conn, f"ALTER TABLE {table} DISABLE TRIGGER ALL")
    refused(conn, f"ALTER TABLE {table} DISABLE TRIGGER USER")
    refused(conn, f"TRUNCATE {table}")
    refused(conn, f"DROP TABLE {table}")
    refused(conn, f"ALTER TABLE {table} ADD COLUMN x int")


def test_persister_role_writes_events_and_offsets_only(pg_schema, roles):
    seed(pg_schema)
    c = roles.connect("persister")
    # Its own tables: what the persister's batch writer does.
    assert one(c, EVENT_ROW, ("m2",)) == 1
    assert one(c, "SELECT count(*) FROM webhook_events") == (2,)
    assert one(c, "SELECT nextval('webhook_events_id_seq'::regclass)")[0] > 0
    assert one(c, "INSERT INTO consumer_offsets AS o (consumer_group, topic, kafka_partition,"
                  " next_offset) VALUES ('g', 't', 0, 5) ON CONFLICT (consumer_group, topic,"
                  " kafka_partition) DO UPDATE SET next_offset = GREATEST(o.next_offset,"
                  " EXCLUDED.next_offset)") == 1
    assert one(c, "UPDATE consumer_offsets SET lineage_offset = 1") == 1
    # A stored event is never changed or removed.
    refused(c, "UPDATE webhook_events SET payload = '{\"forged\": true}'")
    refused(c, "DELETE FROM webhook_events")
    # The auditor's tables: not even read.
    refused(c, LINEAGE_ROW, (2, 1))
    refused(c, "UPDATE lineage SET record = 'x'")
    refused(c, "DELETE FROM lineage")
    for t in AUDITOR_TABLES:
        refused(c, f"SELECT count(*) FROM {t}")
        refused(c, f"INSERT INTO {t} DEFAULT VALUES")
    refused(c, "SELECT nextval('lineage_id_seq'::regclass)")
    refused(c, "SELECT count(*) FROM latency_counts")
    for t in ("webhook_events", "lineage"):
        owner_powers_refused(c, t)
    refused(c, "SET session_replication_role = replica")  # would silence every trigger
    refused(c, "CREATE TABLE webhook_events_copy (x int)")
    assert pg_schema.query("SELECT count(*) FROM webhook_events WHERE payload ? 'forged'") == [(0,)]
    assert pg_schema.query("SELECT count(*) FROM lineage") == [(1,)]


def test_auditor_role_appends_lineage_and_reads_events(pg_schema, roles):
    seed(pg_schema)
    c = roles.connect("auditor")
    # The writer's work: append lineage (COPY as the store does), checkpoints, rollups, offsets.
    assert one(c, LINEAGE_ROW, (2, 1)) == 1
    with c.cursor() as cur:
        cur.copy_expert(
            "COPY lineage (chain, seq, lineage_offset, request_id, stage, ts_us, ts, record,"
            " prev_hash, hash) FROM STDIN",
            io.StringIO("0\t3\t2\tr3\tingress\t3\t2026-01-01 00:00:00+00\t{}\t\\\\x"
                        + "22" * 32 + "\t\\\\x" + "33" * 32 + "\n"))
    assert one(c, "SELECT count(*) FROM lineage") == (3,)
    assert one(c, "INSERT INTO lineage_checkpoints (chain, seq, hash, ts_us, key_id, signature)"
                  " VALUES (0, 3, decode(repeat('33', 32), 'hex'), 3, 'k', '\\x00')") == 1
    assert one(c, "INSERT INTO latency_rollups AS l SELECT minute, stage, source, bucket, 1, outcome"
                  " FROM latency_rollups ON CONFLICT (minute, stage, source, outcome, bucket)"
                  " DO UPDATE SET count = l.count + excluded.count") == 1
    assert one(c, "UPDATE consumer_offsets SET next_offset = next_offset + 1") == 1
    # A batch's latency counts, and the fold that moves them (deletes them) into latency_rollups.
    assert one(c, "INSERT INTO latency_rollup_batches (minute, stage, source, outcome, buckets,"
                  " counts) VALUES (now(), 'ack', 's', 'accepted', '{2, 3}', '{1, 1}')") == 1
    assert one(c, "SELECT count(*) FROM (SELECT 1 FROM latency_rollup_batches"
                  " FOR UPDATE SKIP LOCKED) x") == (2,)
    assert one(c, "DELETE FROM latency_rollup_batches") == 2
    assert one(c, "SELECT count(*) FROM webhook_events") == (1,)
    assert one(c, "SELECT count(*) FROM lineage_hash_check WHERE computed IS NOT NULL") == (3,)
    # Events: read only.
    refused(c, EVENT_ROW, ("m3",))
    refused(c, "UPDATE webhook_events SET payload = '{}'")
    refused(c, "DELETE FROM webhook_events")
    # History: append only, by privilege and by the triggers of 003 alike.
    for t in ("lineage", "lineage_checkpoints"):
        refused(c, f"UPDATE {t} SET seq = seq")
        refused(c, f"DELETE FROM {t}")
    refused(c, "DELETE FROM latency_rollups")
    owner_powers_refused(c, "latency_rollup_batches")
    for t in ("webhook_events", "lineage", "lineage_checkpoints"):
        owner_powers_refused(c, t)
    refused(c, "SET session_replication_role = replica")
    refused(c, "ALTER FUNCTION lineage_refuse_change() RENAME TO gone")
    refused(c, "DROP TRIGGER lineage_no_update_delete ON lineage")
    assert pg_schema.query("SELECT count(*) FROM lineage") == [(3,)]
    assert pg_schema.query("SELECT count(*) FROM webhook_events") == [(1,)]


def test_read_role_reads_everything_and_writes_nothing(pg_schema, roles):
    seed(pg_schema)
    c = roles.connect("reader")
    for t in ALL_TABLES + ("lineage_hash_check", "latency_counts", "schema_migrations"):
        assert one(c, f"SELECT count(*) FROM {t}")[0] >= 1, t
    for t, col in A_COLUMN.items():
        refused(c, f"INSERT INTO {t} DEFAULT VALUES")
        refused(c, f"UPDATE {t} SET {col} = {col}")
        refused(c, f"DELETE FROM {t}")
        owner_powers_refused(c, t)
    refused(c, LINEAGE_ROW, (2, 1))
    refused(c, EVENT_ROW, ("m4",))
    refused(c, "SELECT nextval('webhook_events_id_seq'::regclass)")
    refused(c, "SELECT hookline_grant('reader', current_user)")
    # The owner's tables keep what they held.
    assert pg_schema.query("SELECT count(*) FROM lineage") == [(1,)]


def test_no_service_role_may_call_the_grant_functions(pg_schema, roles):
    """hookline_grant and the 007 grants it wraps (proto/sql/011) run as the owner only: no
    EXECUTE for any service role (a call would fail anyway, on what it revokes)."""
    for kind in KINDS:
        for fn in ("hookline_grant(text, text)", "hookline_grant_007(text, text)"):
            (ok,) = pg_schema.query("SELECT has_function_privilege(%s, %s, 'EXECUTE')",
                                    (roles.name[kind], f"{pg_schema.name}.{fn}"))[0]
            assert ok is False, (kind, fn)


def test_no_service_role_owns_anything_or_holds_an_attribute(pg_schema, roles):
    names = list(roles.name.values())
    rows = pgio.connect().cursor()
    rows.execute("SELECT rolname, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls,"
                 " rolreplication, rolcanlogin FROM pg_roles WHERE rolname = ANY(%s)"
                 " ORDER BY rolname", (names,))
    got = rows.fetchall()
    assert len(got) == 3
    assert all(r[1:] == (False, False, False, False, False, True) for r in got), got
    rows.execute("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                 " WHERE n.nspname = %s AND (pg_has_role(%s, c.relowner, 'MEMBER')"
                 " OR pg_has_role(%s, c.relowner, 'MEMBER') OR pg_has_role(%s, c.relowner,"
                 " 'MEMBER'))", (pg_schema.name, *names))
    assert rows.fetchone() == (0,)
    rows.connection.close()


def test_migrate_refuses_roles_that_could_undo_the_grants(pg_schema, run_id):
    prefix = f"r{run_id}_{next(_n)}"
    bad = {"super": f"{prefix}_super", "createrole": f"{prefix}_createrole",
           "member": f"{prefix}_member", "bypass": f"{prefix}_bypass"}
    conn = pgio.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(f'CREATE ROLE "{bad["super"]}" LOGIN SUPERUSER')
            cur.execute(f'CREATE ROLE "{bad["createrole"]}" LOGIN CREATEROLE')
            cur.execute(f'CREATE ROLE "{bad["bypass"]}" LOGIN BYPASSRLS')
            # A member of the owner may SET ROLE to it: as good as owning every table.
            cur.execute(f'CREATE ROLE "{bad["member"]}" LOGIN IN ROLE "{paths.PG_USER}"')
        for what, name in bad.items():
            r = migrate(pg_schema.name, "--role", f"reader={name}")
            assert r.returncode == 1, (what, r.stdout, r.stderr)
            expected = ("owns (or can act as the owner of)" if what == "member"
                        else "has SUPERUSER, CREATEROLE or BYPASSRLS")
            assert expected in r.stderr and name in r.stderr, (what, r.stderr)
            assert "nothing of it was kept" in r.stderr
            with conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM information_schema.role_table_grants"
                            " WHERE grantee = %s AND table_schema = %s", (name, pg_schema.name))
                assert cur.fetchone() == (0,), what
    finally:
        conn.close()
        drop_roles(bad.values())


@pytest.mark.parametrize("args, env, message", [
    (["--role", "writer=x_role"], {}, "KIND must be persister, auditor or reader"),
    (["--role", "reader=Bad-Name"], {}, "ROLE must match"),
    (["--role", "reader"], {}, "ROLE must match"),
    (["--role", "reader=x_role", "--role", "reader=y_role"], {}, "each kind takes one role"),
    (["--role", "reader=x_role", "--role", "auditor=x_role"], {}, "each kind takes one role"),
    (["--create-roles"], {}, "--create-roles without any --role"),
    (["--role", "reader=x_role", "--create-roles"], {"HOOKLINE_PG_READER_PASSWORD": ""},
     "HOOKLINE_PG_READER_PASSWORD is not set"),
])
def test_migrate_refuses_bad_role_arguments_before_connecting(args, env, message):
    # A schema that does not exist and a port nothing listens on: refused before either matters.
    r = subprocess.run([str(paths.MIGRATE_SCRIPT), "--schema", "no_such_schema", "--conninfo",
                        "host=127.0.0.1 port=1 dbname=x user=x", *args],
                       capture_output=True, text=True, timeout=30,
                       env={**os.environ, "HOOKLINE_PG_READER_PASSWORD": "", **env})
    assert r.returncode == 2 and message in r.stderr, r.stderr


def test_migrate_names_a_missing_role(pg_schema, run_id):
    name = f"r{run_id}_{next(_n)}_missing"
    r = migrate(pg_schema.name, "--role", f"persister={name}")
    assert r.returncode == 1 and f'role "{name}" does not exist' in r.stderr, r.stderr


def test_pipeline_runs_with_the_restricted_roles(stack, topics, pg_schema, roles, service,
                                                 free_port, tmp_path):
    ing = service("ingress", ingress_config(free_port(), topics, [standard_source()]),
                  env={"HL_TEST_DEMO_SECRET": DEMO_SECRET})
    pers_cfg = persister_config(stack, topics, pg_schema, free_port(),
                                f"persister-{tmp_path.name[-8:]}")
    pers_cfg["postgres"]["conninfo"] = roles.conninfo("persister")
    service("persister", pers_cfg, env={"PGPASSWORD": roles.password["persister"]})
    aud_cfg = auditor_config(stack, topics, pg_schema, free_port(), tmp_path / "cp.pem",
                             rollup_fold_ms=100)
    aud_cfg["postgres"]["conninfo"] = roles.conninfo("auditor")
    aud_cfg["postgres"]["read_conninfo"] = roles.conninfo("reader")
    aud = service("auditor", aud_cfg,
                  env={"PGPASSWORD": roles.password["auditor"],
                       "HOOKLINE_POSTGRES_READ_PASSWORD": roles.password["reader"]})

    c = Client(ing.port)
    ids = []
    for i in range(30):
        status, data, _ = c.post_standard(json.dumps({"type": "invoice.paid", "n": i}).encode(),
                                          msg_id=f"roles-{i}")
        assert status == 202, data
        ids.append(json.loads(data)["request_id"])
    c.close()
    wait_for(lambda: lineage_count(pg_schema) == 60, 60, "30 x (ingress, persisted) lineage rows")
    assert pg_schema.query("SELECT count(*) FROM webhook_events") == [(30,)]
    assert pg_schema.query(
        "SELECT count(*) FROM (SELECT request_id FROM lineage GROUP BY request_id"
        " HAVING array_agg(stage ORDER BY stage) = '{ingress,persisted}') x") == [(30,)]

    # The API reads through the read role; signing goes through the writer's.
    rows = get(aud, f"/v1/requests/{ids[0]}").json()["lineage"]
    assert [r["stage"] for r in rows] == ["ingress", "persisted"]
    assert get(aud, "/v1/verify").json()["ok"] is True
    assert get(aud, "/v1/gaps").json()["gaps"] == []
    signed = post(aud, "/v1/checkpoints", role="admin")
    assert signed.status_code == 201, signed.text
    assert signed.json()["signed_now"] >= 1 and signed.json()["checkpoints"]
    assert pg_schema.query("SELECT count(*) > 0 FROM lineage_checkpoints") == [(True,)]
    # The latency counts' fold runs as the auditor's role too.
    wait_for(lambda: pg_schema.query("SELECT count(*) FROM latency_rollup_batches") == [(0,)],
             30, "the batches' latency counts folded")
    assert pg_schema.query("SELECT sum(count)::int FROM latency_rollups WHERE stage = 'ack'"
                           ) == [(30,)]
    assert "folding the latency counts failed" not in aud.log_text()

    sessions = dict(pg_schema.query(
        "SELECT usename, count(*) FROM pg_stat_activity WHERE usename = ANY(%s) GROUP BY 1",
        (list(roles.name.values()),)))
    assert sessions.get(roles.name["persister"], 0) >= 1, sessions
    assert sessions.get(roles.name["auditor"], 0) >= 1, sessions
    assert sessions.get(roles.name["reader"], 0) >= 1, sessions


def test_each_role_signs_in_with_its_own_password(stack, topics, service, free_port, tmp_path):
    """On a private cluster that asks the service roles for their passwords (the local stack's
    pg_hba.conf): migrate --create-roles sets them from the environment, the auditor signs in
    as its writer with PGPASSWORD and as its read role with HOOKLINE_POSTGRES_READ_PASSWORD;
    a wrong read password leaves the writer working and the API unable to connect."""
    import pwd
    from persister_support import PrivatePostgres
    pg = PrivatePostgres(free_port())
    try:
        hba = os.path.join(pg.data, "pg_hba.conf")
        with open(paths.SOURCE_DIR / "deploy" / "local" / "postgres" / "pg_hba.conf.in") as f:
            text = f.read()
        with open(hba, "w") as f:
            f.write(text)
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(hba, pw.pw_uid, pw.pw_gid)
        pg.query("SELECT pg_reload_conf()")
        names = {k: f"hookline_{k}" for k in KINDS}
        passwords = {k: secrets.token_hex(12) for k in KINDS}
        r = subprocess.run(
            [str(paths.MIGRATE_SCRIPT), "--schema", "public", "--conninfo", pg.conninfo,
             *[a for k in KINDS for a in ("--role", f"{k}={names[k]}")], "--create-roles"],
            capture_output=True, text=True, timeout=120,
            env=dict(os.environ, **{f"HOOKLINE_PG_{k.upper()}_PASSWORD": passwords[k]
                                    for k in KINDS}))
        assert r.returncode == 0, r.stdout + r.stderr
        # The password is asked for, and only the right one lets a role in.
        as_reader = pg.conninfo.replace("user=hookline", f"user={names['reader']}")
        with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
            psycopg2.connect(as_reader, password="wrong", connect_timeout=5).close()
        psycopg2.connect(as_reader, password=passwords["reader"], connect_timeout=5).close()

        def auditor(read_password):
            cfg = auditor_config(stack, topics, PgSchemaAt("public"), free_port(),
                                 tmp_path / "cp.pem")
            cfg["postgres"]["conninfo"] = pg.conninfo.replace("user=hookline",
                                                              f"user={names['auditor']}")
            cfg["postgres"]["read_conninfo"] = as_reader
            return service("auditor", cfg, env={"PGPASSWORD": passwords["auditor"],
                                                "HOOKLINE_POSTGRES_READ_PASSWORD": read_password})

        aud = auditor(passwords["reader"])
        assert get(aud, "/v1/verify").json()["ok"] is True
        assert post(aud, "/v1/checkpoints", role="admin").status_code == 201
        assert aud.stop() == 0

        aud = auditor("not-the-reader-password")
        assert get(aud, "/v1/verify").status_code == 503
        # The writer signed in (ready means its last Postgres round trip worked).
        wait_for(lambda: get(aud, "/readyz", role=None).status_code == 200, 30, "ready")
        wait_for(lambda: "password authentication failed" in aud.log_text(), 10,
                 "the read role's refusal in the auditor's log")
        assert "not-the-reader-password" not in aud.log_text()
        assert aud.stop() == 0
    finally:
        pg.destroy()


class PgSchemaAt:
    """The .name of a schema, for auditor_config."""

    def __init__(self, name):
        self.name = name
