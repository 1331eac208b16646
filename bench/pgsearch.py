"""PostgreSQL search: what step 5's words (switchboard_search_vector: FTS5's tokenization) cost each
message written, beside step 3's (to_tsvector, PostgreSQL's parser), and what the migration to them
costs a database already holding messages. A private cluster (tests/pgcluster.py), statements sent
straight to it, no HTTP: the figures are the database's own work per message.

1. Writes: --rounds rounds, in turns, of --batches 100-message INSERTs (one statement each) of the
   text bench/search.py appends, one message in ten with accents, a file name and a dash, into three
   tables shaped like "message": without a search column, with step 3's, with step 5's (each column
   GIN-indexed). µs per message, best round of each, and the ratio to the table without one.
2. Migration: a database at step 3 holding --messages messages (in sessions of 10); the time step 5
   takes (drop and generate both search columns again, rebuild their indexes), in all and per message.
Usage: python bench/pgsearch.py [--rounds 3] [--batches 30] [--messages 200000]
"""
import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import psycopg  # noqa: E402
from search import sentence  # noqa: E402

import models  # noqa: E402
from pgcluster import Cluster  # noqa: E402

STEP = next(i for i, step in enumerate(models.POSTGRES_MIGRATIONS) if "switchboard_search_vector" in step[0])
COLUMNS = {
    "no search column": "",
    "step 3: to_tsvector": ", search tsvector GENERATED ALWAYS AS (to_tsvector('simple', "
                           "coalesce(switchboard_search_text(content), ''))) STORED",
    "step 5: switchboard_search_vector": ", search tsvector GENERATED ALWAYS AS (switchboard_search_vector("
                                         "coalesce(switchboard_search_text(content), ''))) STORED",
}


def texts(count):
    rng = random.Random(1)
    return [json.dumps(sentence(rng) + (" — Café déjà vu in notes.txt" if i % 10 == 0 else "")) for i in range(count)]


def migrated(conn, steps):
    for step in steps:
        for statement in step:
            conn.execute(statement)


def write_cost(conn, rounds, batches):
    migrated(conn, models.POSTGRES_MIGRATIONS[:STEP])
    conn.execute(models.POSTGRES_MIGRATIONS[STEP][0])  # the function, for step 5's table
    for n, column in enumerate(COLUMNS.values()):
        conn.execute(f"CREATE TABLE bench_{n} (id BIGSERIAL PRIMARY KEY, content TEXT NOT NULL{column})")
        if column:
            conn.execute(f"CREATE INDEX bench_{n}_search ON bench_{n} USING gin (search)")
    batch_texts = [texts(100) for _ in range(batches)]
    best = dict.fromkeys(COLUMNS, float("inf"))
    for _ in range(rounds):
        for n, name in enumerate(COLUMNS):
            started = time.perf_counter()
            for batch in batch_texts:
                conn.execute(f"INSERT INTO bench_{n} (content) SELECT unnest(%s::text[])", (batch,))
            best[name] = min(best[name], (time.perf_counter() - started) / (100 * batches) * 1e6)
    print(f"\nWrites: {rounds} rounds of {batches} x 100-message INSERTs, best round")
    print(f"{'table':36} {'µs/message':>11} {'x no column':>12}")
    for name, micros in best.items():
        print(f"{name:36} {micros:11.1f} {micros / best['no search column']:12.2f}")
    print(f"step 5 costs {best['step 3: to_tsvector'] / best['step 5: switchboard_search_vector']:.2f}x "
          "step 3's write rate")


def migration_cost(conn, messages):
    migrated(conn, models.POSTGRES_MIGRATIONS[:STEP])
    conn.execute("INSERT INTO account (id, name, seq, created_at) VALUES (1, 'bench', 0, 0)")
    sessions = (messages + 9) // 10
    conn.execute("INSERT INTO session (id, account_id, title, metadata, metadata_version, agent_state_version, seq, "
                 "active, last_active_at, created_at, updated_at) SELECT 's' || n, 1, 'Session ' || n, '', 0, 0, 10, "
                 "false, 0, 0, 0 FROM generate_series(1, %s) AS n", (sessions,))
    corpus = texts(1000)
    started = time.perf_counter()
    conn.execute("INSERT INTO message (id, session_id, seq, content, created_at, updated_at) "
                 "SELECT 'm' || n, 's' || (1 + (n - 1) / 10), 1 + (n - 1) %% 10, (%s::text[])[1 + n %% 1000], 0, 0 "
                 "FROM generate_series(1, %s) AS n", (corpus, messages))
    filled = time.perf_counter() - started
    started = time.perf_counter()
    with conn.transaction():
        migrated(conn, models.POSTGRES_MIGRATIONS[STEP:STEP + 1])
    took = time.perf_counter() - started
    print(f"\nMigration to step 5 of a database holding {messages:,} messages in {sessions:,} sessions")
    print(f"{'':36} {'seconds':>11} {'µs/message':>12}")
    print(f"{'storing them at step 3':36} {filled:11.1f} {filled / messages * 1e6:12.1f}")
    print(f"{'step 5':36} {took:11.1f} {took / messages * 1e6:12.1f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--messages", type=int, default=200_000)
    args = parser.parse_args()
    cluster = Cluster().start()
    try:
        with psycopg.connect(cluster.create_database(), autocommit=True) as conn:
            write_cost(conn, args.rounds, args.batches)
        with psycopg.connect(cluster.create_database(), autocommit=True) as conn:
            migration_cost(conn, args.messages)
    finally:
        cluster.stop()
    print(f"\nload average: {open('/proc/loadavg').read().split()[:3]}")


if __name__ == "__main__":
    main()
