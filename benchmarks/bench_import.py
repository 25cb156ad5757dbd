"""Bulk import: ``funnel.import_leads`` against the hand-written equivalent, same rows.

SQLite: ``Funnel(SqlRepository("sqlite:///..."))).import_leads(rows)`` against plain
``sqlite3`` and nothing of leadfunnel's: each row checked by hand (names and text
stripped, the e-mail and the phone checked and normalised with the libraries leadfunnel
uses, counts and money parsed, the country checked), then one ``executemany`` into one
plain table whose unique e-mail and phone turn a repeated person away, in one
transaction. Both sides must agree on how many rows were added, turned away as
duplicates and rejected. Also the raw ``executemany`` of the unchecked rows alone, for
scale. Target: within 3x of the hand-written import.

Memory: the peak RSS of a child process that streams ``--memory-rows`` rows from a
generator into SQLite with ``import_leads`` (target: under 300 MB for 1M rows).

PostgreSQL (when ``LEADFUNNEL_TEST_POSTGRES_URL`` is set): ``import_leads`` against
psycopg ``COPY`` and ``executemany`` of the same rows, checked by hand.

    python benchmarks/bench_import.py                 # 100k rows side by side, 1M memory
    python benchmarks/bench_import.py --quick         # seconds: 10k rows, 20k memory
    python benchmarks/bench_import.py --rows 200000 --memory-rows 0
"""

from __future__ import annotations

import argparse
import gc
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from _floor import email_or_none, phone_or_none
from _memory import peak_rss_mb

from leadfunnel import Funnel, SqlRepository
from leadfunnel._csv import _SALESFORCE

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
FIRST = ["Pat", "Sam", "Alex", "Jordan", "Casey", "Robin", "Taylor", "Morgan", "Jamie", "Drew"]
LAST = ["Rivera", "Chen", "Smith", "Okafor", "Novak", "Garcia", "Kim", "Larsen", "Haddad"]
INDUSTRIES = ["IT Services", "Managed Services", "Accounting", "Dental", "Legal", "Retail"]
TITLES = ["CEO", "Owner", "Office Manager", "IT Director", "Founder", "Bookkeeper"]
SOURCES = ["webinar", "trade-show", "purchased-list", "referral", "website"]
REGIONS = ["TX", "CA", "NY", "FL", "WA", "IL"]


def rows(count: int) -> Iterator[dict[str, Any]]:
    """Export-like rows: about 1% repeat an earlier e-mail, 0.5% are invalid."""
    for i in range(count):
        n = i - 7 if i % 100 == 99 else i  # a duplicate of a row a little earlier
        row: dict[str, Any] = {
            "FirstName": FIRST[i % len(FIRST)],
            "LastName": LAST[i % len(LAST)],
            "Email": f"{FIRST[n % len(FIRST)].lower()}.{n}@company{n % 20011}.example.com",
            "Phone": f"+1 512 {200 + n // 10000 % 800:03d} {n % 10000:04d}" if i % 3 else "",
            "Company": f"Company {n % 20011}",
            "Title": TITLES[i % len(TITLES)],
            "Industry": INDUSTRIES[i % len(INDUSTRIES)],
            "NumberOfEmployees": str(5 + i % 400),
            "AnnualRevenue": str(100_000 * (1 + i % 90)),
            "Country": "US",
            "State": REGIONS[i % len(REGIONS)],
            "City": "Austin",
            "LeadSource": SOURCES[i % len(SOURCES)],
        }
        if i % 200 == 150:
            row["Email"] = "not-an-email"
        yield row


# The Salesforce export's column names, mapped as `leadfunnel import` maps them.
FIELDS = _SALESFORCE


def lead_rows(count: int) -> Iterator[dict[str, Any]]:
    """``rows`` with Lead field names (what import_leads and the raw path both read)."""
    for row in rows(count):
        yield {FIELDS[k]: v for k, v in row.items()}


# --- the contenders ---------------------------------------------------------------


class Took:
    """The wall and CPU time (this process's user + system) since it was made."""

    def __init__(self) -> None:
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def done(self) -> tuple[float, float]:
        return time.perf_counter() - self._wall, time.process_time() - self._cpu


def funnel_import(url: str, count: int, **options: Any) -> tuple[float, float, dict[str, int]]:
    repository = SqlRepository(url, **options)
    funnel = Funnel(repository)
    took = Took()
    report = funnel.import_leads(lead_rows(count), at=AT)
    repository.close()  # includes SQLite's last checkpoint
    return (*took.done(), counts(report))


def agree(ours: dict[str, int], theirs: dict[str, int], what: str) -> None:
    """Stop the run unless both sides reached the same outcome."""
    if ours != theirs:
        raise SystemExit(f"import_leads and {what} disagree: {ours} against {theirs}")


def counts(report: Any) -> dict[str, int]:
    return {
        "added": len(report.added),
        "duplicates": len(report.duplicates),
        "rejected": len(report.rejected),
    }


COLUMNS = (
    "id", "first_name", "last_name", "email", "phone", "company", "title", "industry",
    "employees", "annual_revenue", "country", "region", "city", "source", "status",
    "created_at",
)  # fmt: skip
TABLE = (
    "CREATE TABLE {name} (id BLOB PRIMARY KEY, first_name TEXT, last_name TEXT, email TEXT, "
    "phone TEXT, company TEXT, title TEXT, industry TEXT, employees INTEGER, "
    "annual_revenue TEXT, country TEXT, region TEXT, city TEXT, source TEXT, status TEXT, "
    "created_at BIGINT, UNIQUE (email), UNIQUE (phone))"
)
_TEXT = ("FirstName", "LastName", "Company", "Title", "Industry")
_PLACE = ("State", "City", "LeadSource")
_RAW = (
    "FirstName", "LastName", "Email", "Phone", "Company", "Title", "Industry",
    "NumberOfEmployees", "AnnualRevenue", "Country", "State", "City", "LeadSource",
)  # fmt: skip
_AT_MICROS = (AT - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def checked(count: int) -> tuple[list[tuple[Any, ...]], int]:
    """The rows checked by hand, as table rows; and how many were rejected."""
    out: list[tuple[Any, ...]] = []
    rejected = 0
    for row in rows(count):
        email_text = row["Email"].strip()
        email = email_or_none(email_text) if email_text else None
        phone_text = row["Phone"].strip()
        phone = phone_or_none(phone_text) if phone_text else None
        country = row["Country"].strip().upper()
        try:
            employees = int(row["NumberOfEmployees"]) if row["NumberOfEmployees"] else None
            revenue = Decimal(row["AnnualRevenue"]) if row["AnnualRevenue"] else None
        except (ValueError, ArithmeticError):
            employees = revenue = -1
        if (
            (email_text and email is None)
            or (phone_text and phone is None)
            or (employees is not None and employees < 0)
            or (revenue is not None and revenue < 0)
            or len(country) != 2
        ):
            rejected += 1
            continue
        first, last, company, title, industry = (row[k].strip() or None for k in _TEXT)
        region, city, source = (row[k].strip() or None for k in _PLACE)
        out.append((
            uuid.uuid4().bytes, first, last, email, phone, company, title, industry,
            employees, None if revenue is None else str(revenue), country, region, city,
            source, "raw", _AT_MICROS,
        ))  # fmt: skip
    return out, rejected


def unchecked(count: int) -> list[tuple[Any, ...]]:
    """The rows as they come, as table rows (for scale: no check at all)."""
    return [
        (uuid.uuid4().bytes, *(row[k] or None for k in _RAW), "raw", _AT_MICROS)
        for row in rows(count)
    ]


def raw_sqlite(path: Path, count: int, *, validate: bool) -> tuple[float, float, dict[str, int]]:
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute(TABLE.format(name="leads"))
    marks = ", ".join("?" * len(COLUMNS))
    sql = f"INSERT OR IGNORE INTO leads ({', '.join(COLUMNS)}) VALUES ({marks})"
    rejected = 0
    if not validate:
        prepared = unchecked(count)
    took = Took()
    if validate:
        prepared, rejected = checked(count)
    connection.execute("BEGIN")
    added = connection.executemany(sql, prepared).rowcount
    connection.execute("COMMIT")
    connection.close()
    outcome = {"added": added, "duplicates": len(prepared) - added, "rejected": rejected}
    return (*took.done(), outcome)


def postgres_side_by_side(url: str, count: int) -> None:
    import psycopg
    import sqlalchemy as sa

    name = f"lf_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {name}")
    try:
        ours, ours_cpu, outcome = funnel_import(url, count, schema=name)
        dsn = sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        table = TABLE.replace("BLOB", "BYTEA")
        with psycopg.connect(dsn) as pg:
            for target in ("raw_copy", "raw_many"):
                pg.execute(table.format(name=f"{name}.{target}"))
            pg.commit()
            took = Took()
            prepared, rejected = checked(count)
            seen: set[str] = set()  # a new table: repeats are found among the rows
            unique = []
            for row in prepared:
                keys = [key for key in (row[3], row[4]) if key is not None]
                if not seen.intersection(keys):
                    seen.update(keys)
                    unique.append(row)
            with (
                pg.cursor() as cursor,
                cursor.copy(f"COPY {name}.raw_copy ({', '.join(COLUMNS)}) FROM STDIN") as copy,
            ):
                for row in unique:
                    copy.write_row(row)
            pg.commit()
            copy_time, copy_cpu = took.done()
            agree(
                outcome,
                {"added": len(unique), "duplicates": len(prepared) - len(unique),
                 "rejected": rejected},
                "COPY",
            )  # fmt: skip
            took = Took()
            prepared, rejected = checked(count)
            marks = ", ".join(["%s"] * len(COLUMNS))
            with pg.cursor() as cursor:
                cursor.executemany(
                    f"INSERT INTO {name}.raw_many ({', '.join(COLUMNS)}) VALUES ({marks}) "
                    "ON CONFLICT DO NOTHING",
                    prepared,
                )
            pg.commit()
            many_time, many_cpu = took.done()
        print(f"\nPostgreSQL, {count:,} rows ({outcome}; client CPU, the server's not counted)")
        line("funnel.import_leads (SqlRepository)", ours, count, ours_cpu)
        line("psycopg COPY, checked by hand", copy_time, count, copy_cpu)
        line("psycopg executemany, checked by hand", many_time, count, many_cpu)
        print(f"  CPU ratio import_leads / COPY:        {ours_cpu / copy_cpu:.2f}x")
        print(f"  CPU ratio import_leads / executemany: {ours_cpu / many_cpu:.2f}x")
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {name} CASCADE")
        admin.dispose()


# --- memory -----------------------------------------------------------------------


def memory_child(count: int, path: str) -> None:
    repository = SqlRepository(f"sqlite:///{path}")
    funnel = Funnel(repository)
    before = peak_rss_mb()
    start = time.perf_counter()
    report = funnel.import_leads(lead_rows(count), at=AT)
    elapsed = time.perf_counter() - start
    print(f"{before:.1f} {peak_rss_mb():.1f} {elapsed:.2f} {counts(report)}")


def memory_run(count: int, directory: Path) -> None:
    result = subprocess.run(
        [sys.executable, __file__, "--memory-child", str(count), str(directory / "mem.db")],
        capture_output=True,
        text=True,
        check=True,
    )
    before, peak, elapsed, report = result.stdout.strip().split(" ", 3)
    print(f"\nMemory: {count:,} rows streamed from a generator into SQLite ({report})")
    print(f"  peak RSS before the import (interpreter + libraries): {float(before):8.1f} MB")
    print(f"  peak RSS of the whole import:                         {float(peak):8.1f} MB")
    print(f"  time: {float(elapsed):.1f} s ({count / float(elapsed):,.0f} rows/s)")


# --- report -----------------------------------------------------------------------


def line(label: str, seconds: float, count: int, cpu: float) -> None:
    print(f"  {label:<40} {seconds:8.2f} s wall {count / seconds:>10,.0f} rows/s {cpu:8.2f} s CPU")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows side by side")
    parser.add_argument("--memory-rows", type=int, default=1_000_000, help="0 to skip")
    parser.add_argument("--quick", action="store_true", help="small sizes, for CI")
    parser.add_argument("--repeat", type=int, default=3, help="rounds side by side")
    parser.add_argument("--memory-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(int(args.memory_child[0]), args.memory_child[1])
        return
    if args.quick:
        args.rows, args.memory_rows = 10_000, 20_000
    count = args.rows
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        gc.collect()
        raw_plain = raw_sqlite(directory / "raw_plain.db", count, validate=False)
        # Rounds alternate the two sides, each into a new file, and each side's best
        # round counts (as timeit does): this machine's speed moves by half from one
        # minute to the next, and the first run of either side pays one-off costs.
        ours: list[tuple[float, float]] = []
        theirs: list[tuple[float, float]] = []
        for round in range(args.repeat):
            wall, cpu, floor_outcome = raw_sqlite(
                directory / f"raw_checked{round}.db", count, validate=True
            )
            theirs.append((cpu, wall))
            wall, cpu, outcome = funnel_import(
                f"sqlite:///{directory / f'funnel{round}.db'}", count
            )
            ours.append((cpu, wall))
            agree(outcome, floor_outcome, "the hand-written import")
        (ours_cpu, ours_wall), (floor_cpu, floor_wall) = min(ours), min(theirs)
        print(f"SQLite, {count:,} rows ({outcome}; both sides agree), best of {args.repeat}")
        line("funnel.import_leads (SqlRepository)", ours_wall, count, ours_cpu)
        line("raw sqlite3 executemany, checked by hand", floor_wall, count, floor_cpu)
        line("raw sqlite3 executemany alone", raw_plain[0], count, raw_plain[1])
        ratio = ours_cpu / floor_cpu
        verdict = "within" if ratio <= 3 else "OVER"
        rounds = ", ".join(f"{a[0] / b[0]:.2f}x" for a, b in zip(ours, theirs, strict=True))
        print(f"  CPU ratio import_leads / checked by hand: {ratio:.2f}x ({verdict} the 3x target)")
        print(f"  each round's CPU ratio: {rounds}")
        if args.memory_rows:
            memory_run(args.memory_rows, directory)
    url = os.environ.get("LEADFUNNEL_TEST_POSTGRES_URL")
    if url:
        postgres_side_by_side(url, count)
    else:
        print("\nPostgreSQL: set LEADFUNNEL_TEST_POSTGRES_URL to compare with psycopg COPY")


if __name__ == "__main__":
    main()
