"""What the event feed's commit-order counter costs per commit.

Every transaction that records events takes the ``event_position`` counter row with
``SELECT ... FOR UPDATE``, moves it on and holds the lock to commit, so that positions
become visible in the order they were handed out (DESIGN.md section 14). Measured here,
per commit of one event, with 1 writer and with ``--threads`` writers at once:

* ``sequence``: by hand, through the driver: one transaction inserting one event row
  whose number comes from the database's own sequence (``BIGSERIAL`` /
  ``AUTO_INCREMENT`` / ``INTEGER PRIMARY KEY``): the fast way, which can skip events;
* ``counter``: by hand, the same insert plus the locked counter row (what leadfunnel
  does): the difference is the counter's cost;
* ``leadfunnel``: ``repository.commit`` of a change set with one event.

    python benchmarks/bench_feed.py                       # SQLite, in a temporary file
    python benchmarks/bench_feed.py --url postgresql+psycopg://postgres@127.0.0.1/test
    python benchmarks/bench_feed.py --url mysql+pymysql://root@127.0.0.1/test
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from leadfunnel import ChangeSet, Event, SqlRepository

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def timed(work: Callable[[int], None], threads: int, commits: int) -> float:
    """Microseconds of wall time per commit, ``commits`` commits spread over threads."""
    each = commits // threads
    start = time.perf_counter()
    pool = [threading.Thread(target=work, args=(each,)) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return (time.perf_counter() - start) / (each * threads) * 1e6


def hand_written(engine: sa.Engine, dialect: str) -> tuple[Callable[[int], None], ...]:
    serial = {
        "postgresql": "BIGSERIAL PRIMARY KEY",
        "mysql": "BIGINT AUTO_INCREMENT PRIMARY KEY",
        "sqlite": "INTEGER PRIMARY KEY",
    }[dialect]
    mark = "%s" if dialect != "sqlite" else "?"
    with engine.begin() as conn:
        for table in ("bench_seq", "bench_pos", "bench_counter"):
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
        conn.exec_driver_sql(f"CREATE TABLE bench_seq (n {serial}, id CHAR(32), doc TEXT)")
        conn.exec_driver_sql("CREATE TABLE bench_pos (n BIGINT PRIMARY KEY, id CHAR(32), doc TEXT)")
        conn.exec_driver_sql("CREATE TABLE bench_counter (name CHAR(20) PRIMARY KEY, v BIGINT)")
        conn.exec_driver_sql("INSERT INTO bench_counter VALUES ('pos', 0)")
    lock = "" if dialect == "sqlite" else " FOR UPDATE"
    returning = dialect in ("postgresql", "sqlite")
    begin = "BEGIN IMMEDIATE" if dialect == "sqlite" else None
    doc = '{"name": "touch", "data": {}}'

    def sequence(count: int) -> None:
        raw = engine.raw_connection()
        try:
            for _ in range(count):
                cursor = raw.cursor()
                if begin:
                    cursor.execute(begin)
                cursor.execute(
                    f"INSERT INTO bench_seq (id, doc) VALUES ({mark}, {mark})",
                    (uuid.uuid4().hex, doc),
                )
                raw.commit()
        finally:
            raw.close()

    def counter(count: int) -> None:
        raw = engine.raw_connection()
        try:
            for _ in range(count):
                cursor = raw.cursor()
                if begin:
                    cursor.execute(begin)
                if returning:  # one round trip where the database has it
                    cursor.execute(
                        "UPDATE bench_counter SET v = v + 1 WHERE name = 'pos' RETURNING v"
                    )
                    (last,) = cursor.fetchone()
                    last -= 1
                else:
                    cursor.execute(f"SELECT v FROM bench_counter WHERE name = 'pos'{lock}")
                    (last,) = cursor.fetchone()
                    cursor.execute(
                        f"UPDATE bench_counter SET v = {mark} WHERE name = 'pos'", (last + 1,)
                    )
                cursor.execute(
                    f"INSERT INTO bench_pos (n, id, doc) VALUES ({mark}, {mark}, {mark})",
                    (last + 1, uuid.uuid4().hex, doc),
                )
                raw.commit()
        finally:
            raw.close()

    return sequence, counter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=None, help="database URL (default: a SQLite file)")
    parser.add_argument("--commits", type=int, default=2_000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="200 commits")
    args = parser.parse_args()
    commits = 200 if args.quick else args.commits
    with tempfile.TemporaryDirectory() as folder:
        url = args.url or f"sqlite:///{Path(folder) / 'feed.db'}"
        engine = sa.create_engine(
            url, isolation_level=None if "sqlite" in url else "READ COMMITTED"
        )
        if engine.dialect.name == "sqlite":
            engine = sa.create_engine(url, connect_args={"isolation_level": None, "timeout": 30})
        schema = f"bench_feed_{uuid.uuid4().hex[:8]}"
        if engine.dialect.name == "postgresql":
            with engine.begin() as conn:
                conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
            repository = SqlRepository(url, schema=schema)
        else:
            repository = SqlRepository(url)
        sequence, counter = hand_written(engine, engine.dialect.name)
        subject = uuid.uuid4()

        def through_leadfunnel(count: int) -> None:
            for _ in range(count):
                event = Event(subject_id=subject, subject="lead", name="touch", at=T0)
                repository.commit(ChangeSet(events=[event]))

        print(f"{engine.dialect.name}: microseconds per commit of one event ({commits:,} commits)")
        head = ("writers", "sequence", "counter", "leadfunnel", "counter cost")
        print("  {:>8} {:>10} {:>10} {:>11} {:>13}".format(*head))
        try:
            for threads in (1, args.threads):
                seq = timed(sequence, threads, commits)
                cnt = timed(counter, threads, commits)
                lf = timed(through_leadfunnel, threads, commits)
                print(f"  {threads:>8} {seq:>10.0f} {cnt:>10.0f} {lf:>11.0f} {cnt - seq:>+12.0f}")
        finally:
            repository.close()
            with engine.begin() as conn:
                for table in ("bench_seq", "bench_pos", "bench_counter"):
                    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
                if engine.dialect.name == "postgresql":
                    conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
            engine.dispose()


if __name__ == "__main__":
    main()
