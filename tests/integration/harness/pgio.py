"""Postgres helpers for tests: a private schema per test, migrated with deploy/local/migrate."""
import subprocess

import psycopg2

from . import paths


def connect(search_path=None, autocommit=True):
    kw = {}
    if search_path:
        kw["options"] = f"-c search_path={search_path}"
    conn = psycopg2.connect(paths.PG_CONNINFO, connect_timeout=10, **kw)
    conn.autocommit = autocommit
    return conn


def migrate(schema, sql_dir=None, check=True):
    cmd = [str(paths.MIGRATE_SCRIPT), "--schema", schema]
    if sql_dir is not None:
        cmd += ["--dir", str(sql_dir)]
    return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=120)


def drop_schema(name):
    conn = connect()
    try:
        with conn.cursor() as cur:
            # A bounded wait: a backend still holding a lock in the schema must not hang teardown.
            cur.execute("SET lock_timeout = '15s'")
            cur.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        conn.close()


class PgSchema:
    """A migrated schema. Unpacks as (name, connect) for callers who want just those two."""

    def __init__(self, name):
        self.name = name
        self.conninfo = paths.PG_CONNINFO
        self.dsn = self.conninfo
        # For clients that take one libpq string: the same, with the schema as search_path.
        self.conninfo_with_search_path = (
            f"{paths.PG_CONNINFO} options='-c search_path={name}'")
        self._conns = []

    def connect(self, autocommit=True):
        """A psycopg2 connection whose search_path is this schema; closed at teardown."""
        conn = connect(self.name, autocommit)
        self._conns.append(conn)
        return conn

    def query(self, sql, params=None):
        """Run one statement on a fresh autocommit connection and return all rows."""
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def close_all(self):
        for c in self._conns:
            try:
                c.close()
            except Exception:
                pass
        self._conns.clear()

    def __iter__(self):
        return iter((self.name, self.connect))

    def __str__(self):
        return self.name
