"""The plain-sqlite3 baseline the append and import benchmarks compare against: the server's own schema
(every migration), the same pragmas, one account and one session, and no Python layer above sqlite3."""
import sqlite3

import models


def raw_database(path):
    """An autocommit sqlite3 connection to a fresh file holding session 'raw' of account 1."""
    conn = sqlite3.connect(path, isolation_level=None)
    models.register_functions(conn)
    for pragma in ("journal_mode=wal", "synchronous=normal", "foreign_keys=1"):
        conn.execute(f"PRAGMA {pragma}")
    for step in models.MIGRATIONS:
        for statement in step:
            conn.execute(statement)
    conn.execute("INSERT INTO account (id, name, seq, created_at) VALUES (1, 'raw', 0, 0)")
    conn.execute("INSERT INTO session (id, account_id, metadata, metadata_version, agent_state_version, seq, "
                 "active, last_active_at, created_at, updated_at) VALUES ('raw', 1, '', 0, 0, 0, 1, 0, 0, 0)")
    return conn
