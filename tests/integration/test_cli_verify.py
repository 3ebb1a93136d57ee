"""hookline verify against a table whose message ids sort by a linguistic collation (a
database created with a locale such as en_US.UTF-8 does that): the rows it reads must still
pair with the ledger's message ids, so an intact table shows no gap, and a removed row shows
as exactly one."""
import json
import subprocess
import uuid

import pytest

from harness import paths

# Byte order and a linguistic order disagree on these: upper case, lower case, punctuation.
MESSAGE_IDS = ["a1", "B1", "b-2", "A_2", "c", "C", "evt_9", "evt-10", "Evt.11", "z"]
EVENT_TYPES = ["created", "updated"]


def hookline():
    try:
        return str(paths.find_binary("hookline"))
    except FileNotFoundError as e:
        pytest.fail(f"hookline verify needs the CLI built: {e}")


def icu_collation(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT collname FROM pg_collation WHERE collprovider = 'i'"
                    " AND collname IN ('en-x-icu', 'und-x-icu') ORDER BY collname LIMIT 1")
        row = cur.fetchone()
    assert row, "the stack's Postgres has no ICU collation to sort message ids linguistically"
    return row[0]


def write_ledger(path):
    with open(path, "w") as f:
        for mid in MESSAGE_IDS:
            for t in EVENT_TYPES:
                f.write(json.dumps({"message_id": mid, "event_type": t, "delivery_id": "",
                                    "duplicate": False, "status": 202, "attempts": 1,
                                    "latency_us": 1000, "request_id": str(uuid.uuid4())}) + "\n")


def verify(stack, schema, ledger):
    return subprocess.run([hookline(), "verify", "--requests", str(ledger), "--no-auditor",
                           "--settle-timeout-ms", "500", "--source", "collated",
                           "--pg", stack.pg_dsn, "--pg-schema", schema.name],
                          capture_output=True, text=True, timeout=60)


def test_verify_pairs_rows_sorted_by_a_linguistic_collation(stack, pg_schema, tmp_path):
    conn = pg_schema.connect()
    coll = icu_collation(conn)
    with conn.cursor() as cur:
        cur.execute("ALTER TABLE webhook_events ALTER COLUMN message_id TYPE text"
                    f' COLLATE "{coll}"')
        cur.execute("SELECT message_id FROM unnest(%s::text[]) AS m(message_id)"
                    f' ORDER BY message_id COLLATE "{coll}"', (MESSAGE_IDS,))
        linguistic = [r[0] for r in cur.fetchall()]
        offset = 0
        for mid in MESSAGE_IDS:
            for t in EVENT_TYPES:
                cur.execute("INSERT INTO webhook_events (source, message_id, event_type,"
                            " request_id, received_at, kafka_partition, kafka_offset, payload) VALUES"
                            " ('collated', %s, %s, %s, now(), 0, %s, '{}')",
                            (mid, t, str(uuid.uuid4()), offset))
                offset += 1
    # The premise: Postgres hands the rows back in an order strcmp disagrees with.
    assert linguistic != sorted(MESSAGE_IDS), linguistic
    ledger = tmp_path / "requests.ndjson"
    write_ledger(ledger)

    v = verify(stack, pg_schema, ledger)
    assert v.returncode == 0, v.stdout + v.stderr
    assert "missing rows (gaps)    0" in v.stdout, v.stdout
    assert "idempotency violations 0" in v.stdout, v.stdout
    assert "ordering violations    0" in v.stdout, v.stdout

    with conn.cursor() as cur:
        cur.execute("DELETE FROM webhook_events WHERE message_id = 'B1' AND event_type = 'updated'")
    conn.close()
    v = verify(stack, pg_schema, ledger)
    assert v.returncode == 1, v.stdout + v.stderr
    assert "missing rows (gaps)    1" in v.stdout, v.stdout
