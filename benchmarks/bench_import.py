"""Bulk import: ``funnel.import_leads`` against the hand-written equivalent, same rows.

SQLite: ``Funnel(SqlRepository("sqlite:///..."))).import_leads(rows)`` against plain
``sqlite3``: the same pydantic validation (``Lead.model_validate``) and one
``executemany`` into one table with a unique e-mail, in one transaction. Also the raw
``executemany`` alone (no validation), for scale. Target: within 3x of raw sqlite3
with validation.

Memory: the peak RSS of a child process that streams ``--memory-rows`` rows from a
generator into SQLite with ``import_leads`` (target: under 300 MB for 1M rows).

PostgreSQL (when ``LEADFUNNEL_TEST_POSTGRES_URL`` is set): ``import_leads`` against
psycopg ``COPY`` and ``executemany`` of the same validated rows.

    python benchmarks/bench_import.py                 # 100k rows side by side, 1M memory
    python benchmarks/bench_import.py --quick         # seconds: 10k rows, 20k memory
    python benchmarks/bench_import.py --rows 200000 --memory-rows 0
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pydantic
from _memory import peak_rss_mb

from leadfunnel import Funnel, Lead, SqlRepository
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


def funnel_import(url: str, count: int, **options: Any) -> tuple[float, str]:
    repository = SqlRepository(url, **options)
    funnel = Funnel(repository)
    start = time.perf_counter()
    report = funnel.import_leads(lead_rows(count), at=AT)
    repository.close()  # includes SQLite's last checkpoint
    elapsed = time.perf_counter() - start
    return elapsed, str(report)


def validated(count: int) -> list[Lead]:
    stamp = {"version": 1, "created_at": AT, "updated_at": AT, "status_at": AT}
    leads = []
    for row in lead_rows(count):
        with contextlib.suppress(pydantic.ValidationError):
            leads.append(Lead.model_validate({**row, **stamp, "id": uuid.uuid4()}))
    return leads


COLUMNS = (
    "id, first_name, last_name, email, phone, company, title, industry, employees, "
    "annual_revenue, country, region, city, source, status, created_at"
)


def as_tuple(lead: Lead) -> tuple[Any, ...]:
    return (
        str(lead.id),
        lead.first_name,
        lead.last_name,
        lead.email,
        lead.phone,
        lead.company,
        lead.title,
        lead.industry,
        lead.employees,
        str(lead.annual_revenue) if lead.annual_revenue is not None else None,
        lead.country,
        lead.region,
        lead.city,
        lead.source,
        lead.status.value,
        lead.created_at.isoformat(),
    )


def raw_sqlite(path: Path, count: int, *, validate: bool) -> float:
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute(
        f"CREATE TABLE leads ({COLUMNS.replace(',', ' TEXT,')} TEXT, "
        "PRIMARY KEY (id), UNIQUE (email))"
    )
    placeholders = ", ".join("?" * len(COLUMNS.split(",")))
    sql = f"INSERT OR IGNORE INTO leads ({COLUMNS}) VALUES ({placeholders})"
    if not validate:
        prepared = [as_tuple(lead) for lead in validated(count)]
    start = time.perf_counter()
    if validate:
        prepared = [as_tuple(lead) for lead in validated(count)]
    connection.execute("BEGIN")
    connection.executemany(sql, prepared)
    connection.execute("COMMIT")
    elapsed = time.perf_counter() - start
    connection.close()
    return elapsed


def postgres_side_by_side(url: str, count: int) -> None:
    import psycopg
    import sqlalchemy as sa

    name = f"lf_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {name}")
    try:
        ours, report = funnel_import(url, count, schema=name)
        dsn = sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        leads = validated(count)
        with psycopg.connect(dsn) as pg:
            table_sql = (
                f"CREATE TABLE {name}.{{t}} ({COLUMNS.replace(',', ' TEXT,')} TEXT, "
                "PRIMARY KEY (id), UNIQUE (email))"
            )
            for table in ("raw_copy", "raw_many"):
                pg.execute(table_sql.format(t=table))
            pg.commit()
            start = time.perf_counter()
            prepared = [as_tuple(lead) for lead in validated(count)]
            unique = list({row[3]: row for row in reversed(prepared)}.values())
            with (
                pg.cursor() as cursor,
                cursor.copy(f"COPY {name}.raw_copy ({COLUMNS}) FROM STDIN") as copy,
            ):
                for row in unique:
                    copy.write_row(row)
            pg.commit()
            copy_time = time.perf_counter() - start
            start = time.perf_counter()
            prepared = [as_tuple(lead) for lead in validated(count)]
            placeholders = ", ".join(["%s"] * len(COLUMNS.split(",")))
            with pg.cursor() as cursor:
                cursor.executemany(
                    f"INSERT INTO {name}.raw_many ({COLUMNS}) VALUES ({placeholders}) "
                    "ON CONFLICT DO NOTHING",
                    prepared,
                )
            pg.commit()
            many_time = time.perf_counter() - start
        del leads
        print(f"\nPostgreSQL, {count:,} rows ({report})")
        line("funnel.import_leads (SqlRepository)", ours, count)
        line("psycopg COPY, validation included", copy_time, count)
        line("psycopg executemany, validation incl.", many_time, count)
        print(f"  ratio import_leads / COPY:        {ours / copy_time:.2f}x")
        print(f"  ratio import_leads / executemany: {ours / many_time:.2f}x")
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
    print(f"{before:.1f} {peak_rss_mb():.1f} {elapsed:.2f} {report}")


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


def line(label: str, seconds: float, count: int) -> None:
    print(f"  {label:<40} {seconds:8.2f} s {count / seconds:>10,.0f} rows/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows side by side")
    parser.add_argument("--memory-rows", type=int, default=1_000_000, help="0 to skip")
    parser.add_argument("--quick", action="store_true", help="small sizes, for CI")
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
        raw_checked = raw_sqlite(directory / "raw_checked.db", count, validate=True)
        ours, report = funnel_import(f"sqlite:///{directory / 'funnel.db'}", count)
        print(f"SQLite, {count:,} rows ({report})")
        line("funnel.import_leads (SqlRepository)", ours, count)
        line("raw sqlite3 executemany + validation", raw_checked, count)
        line("raw sqlite3 executemany alone", raw_plain, count)
        ratio = ours / raw_checked
        verdict = "within" if ratio <= 3 else "OVER"
        print(f"  ratio import_leads / raw with validation: {ratio:.2f}x ({verdict} the 3x target)")
        if args.memory_rows:
            memory_run(args.memory_rows, directory)
    url = os.environ.get("LEADFUNNEL_TEST_POSTGRES_URL")
    if url:
        postgres_side_by_side(url, count)
    else:
        print("\nPostgreSQL: set LEADFUNNEL_TEST_POSTGRES_URL to compare with psycopg COPY")


if __name__ == "__main__":
    main()
