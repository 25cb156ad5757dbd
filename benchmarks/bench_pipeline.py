"""The whole pipeline, ``leadfunnel import``, ``qualify`` and ``report``, beside a floor.

A generated Salesforce Lead export (24 columns: API field names, money as "$2,500,000",
opt-out flags, ratings, CRM statuses and creation dates, one bad e-mail in 500, one bad
phone in 1,499, one duplicate in 997) goes through the real command line, each phase in
a child process of its own, against a database made for the run. Beside it, the floor:
a hand-written script that does the same work with the database's own driver and
nothing of leadfunnel's (it never imports it):

* import: ``csv`` reader, the same validation outcomes (e-mail checked, phone parsed to
  E.164 with ``phonenumbers``, money, counts, countries, dates, statuses, opt-outs,
  ratings), dedupe by e-mail and phone against the stored people, and per table one
  ``executemany`` (PostgreSQL: ``COPY``) a chunk: people, identity keys, ``import``
  events, funnel steps, in large transactions;
* qualify: pages of raw leads, the same two profiles' checks with the engine's
  semantics (fit, undecided, hard and soft failures), "was it called" asked per page,
  then status changes, ``qualify`` events and ``qualified``/``unqualified`` steps;
* report: the step counts, the follow-up figures of the qualified leads and the
  time-in-stage medians, as one hand-written query each.

Both sides must agree on every count (added, duplicates, rejected, leads per status,
qualified, disqualified, waiting, and every step of the report); the run stops if they
do not. Each phase prints the CPU time (user + system of the child process, from
``wait4``), the wall time, both ratios and each child's peak resident memory
(``VmHWM``). On PostgreSQL the server's own CPU is not counted, on either side.

    python benchmarks/bench_pipeline.py                       # 10k and 100k, SQLite
    python benchmarks/bench_pipeline.py --rows 20000 1000000  # the issue's sizes
    python benchmarks/bench_pipeline.py --quick               # 10k
    python benchmarks/bench_pipeline.py --postgres [--url postgresql+psycopg://...]
    python benchmarks/bench_pipeline.py --keep /tmp/run       # keep the files

Targets (issue 19): the whole pipeline within 3x of the floor's CPU at 20k and at 1M,
each phase within 5x, memory flat (qualify under 150 MB and import under 300 MB at 1M).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from _floor import email_or_none, phone_or_none

HEADER = [
    "Id", "Salutation", "FirstName", "LastName", "Email", "Phone", "MobilePhone",
    "Company", "Title", "Industry", "NumberOfEmployees", "AnnualRevenue", "Street",
    "City", "State", "PostalCode", "Country", "LeadSource", "Status", "Rating",
    "HasOptedOutOfEmail", "DoNotCall", "CreatedDate", "OwnerId",
]  # fmt: skip
INDUSTRIES = [
    "IT Services", "Managed Services", "Retail", "Accounting", "Construction",
    "Healthcare", "Legal", "Education", "it services", "Logistics",
]  # fmt: skip
TITLES = [
    "CEO", "Owner", "Founder", "President", "Owner/CEO", "Office Manager", "IT Manager",
    "CTO", "VP Sales", "CEO's assistant", "",
]  # fmt: skip
STATUSES = ["Open - Not Contacted", "Working - Contacted", "Closed - Not Converted"]
START = datetime(2023, 1, 1, tzinfo=UTC)
RULES = """\
[[profiles]]
name = "msp-owner"
rules = [
  { rule = "niche", industries = ["IT Services", "Managed Services"] },
  { rule = "authority", titles = ["ceo", "owner", "founder", "president"] },
  { rule = "money", min_annual_revenue = 1000000 },
  { rule = "geography", countries = ["US"], hard = true },
]

[[profiles]]
name = "us-smb"
rules = [
  { rule = "geography", countries = ["US"], hard = true },
  { rule = "company_size", min_employees = 5, max_employees = 200 },
]
"""


def write_export(path: Path, rows: int) -> None:
    """A Salesforce Lead export of ``rows`` rows, the same for the same ``rows``."""
    rng = random.Random(19)
    span = 3 * 365 * 86_400
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for n in range(rows):
            email = f"lead{n}@company{n % 50_021}.example.com" if n % 500 != 7 else "not-an-email"
            if n % 997 == 996:
                email = f"lead{n - 3}@company{(n - 3) % 50_021}.example.com"  # a duplicate
            phone = f"+1 512 {200 + n // 10_000 % 800:03d} {n % 10_000:04d}"
            mobile = ""
            if n % 1_499 == 11:
                phone = "12345"  # cannot be a phone number
            elif n % 13 == 5:
                phone, mobile = "", phone  # only a mobile number
            elif n % 17 == 3:
                phone = ""
            status = rng.choices(STATUSES, (85, 10, 5))[0]
            if n % 101 == 50:
                status = "Closed - Converted"  # a contact
            created = START + timedelta(seconds=rng.randrange(span))
            writer.writerow([
                f"00Q{n:012d}", rng.choice(["Mr.", "Ms.", "Dr.", ""]),
                rng.choice(["Pat", "Sam", "Alex", "Jordan"]), f"Rivera{n}", email, phone,
                mobile, f"Company {n % 50_021}", rng.choice(TITLES), rng.choice(INDUSTRIES),
                rng.randrange(1, 500) if n % 7 else "",
                f"${rng.randrange(50_000, 9_000_000):,}" if n % 11 else "",
                f"{n} Main St", "Austin", rng.choice(["TX", "CA", "NY"]), "78701",
                rng.choice(["United States", "USA", "US", "Canada"]),
                rng.choice(["Webinar", "Web", "Trade Show"]), status,
                rng.choice(["Hot", "Warm", "Cold", ""]), rng.choice(["0", "1"]),
                "1" if n % 23 == 0 else "0",
                created.strftime("%Y-%m-%dT%H:%M:%S.000+0000"), f"005{n % 7:012d}",
            ])  # fmt: skip


# --- measuring a child process ------------------------------------------------------


@dataclass
class Run:
    """One phase in one child process: CPU seconds, wall seconds, peak MB, its output."""

    cpu: float
    wall: float
    peak_mb: float
    out: str


def run_child(args: Sequence[str], env: dict[str, str] | None = None) -> Run:
    """Run ``python bench_pipeline.py ARGS`` and measure it alone (``wait4``)."""
    with (
        tempfile.NamedTemporaryFile("w+", suffix=".peak") as peak,
        tempfile.TemporaryFile("w+") as out,
        tempfile.TemporaryFile("w+") as err,
    ):
        child_env = {**os.environ, **(env or {}), "BENCH_PEAK_FILE": peak.name}
        start = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, __file__, *args], stdout=out, stderr=err, env=child_env
        )
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text = out.read()
        if process.returncode != 0:
            raise SystemExit(f"child {' '.join(args)} failed ({process.returncode}):\n{err.read()}")
        peak.seek(0)
        peak_text = peak.read().strip()
    return Run(usage.ru_utime + usage.ru_stime, wall, float(peak_text or 0), text)


def _record_peak() -> None:
    """At exit, write this process's ``VmHWM`` (MB) where the parent asked."""
    import atexit

    target = os.environ.get("BENCH_PEAK_FILE")
    if not target:
        return

    def write() -> None:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                Path(target).write_text(str(int(line.split()[1]) / 1024))

    atexit.register(write)


def child_cli(argv: list[str]) -> None:
    """``leadfunnel ARGV`` in this process, as the console script runs it."""
    import runpy

    _record_peak()
    sys.argv = ["leadfunnel", *argv]
    runpy.run_module("leadfunnel", run_name="__main__")


# --- the floor ------------------------------------------------------------------------

_COUNTRIES = {"united states": "US", "usa": "US", "us": "US", "canada": "CA", "ca": "CA"}
_STATUS = {
    "Open - Not Contacted": ("lead", "raw"),
    "Working - Contacted": ("lead", "raw"),
    "Closed - Not Converted": ("lead", "unqualified"),
    "Closed - Converted": ("contact", "prospect"),
}
_RATING = {"hot": "high", "warm": "slight"}
_COLUMNS = (
    "id", "created_at", "status", "status_at", "first_name", "last_name", "email", "phone",
    "company", "title", "industry", "employees", "annual_revenue", "country", "region", "city",
    "postal_code", "source", "owner", "interest", "opt_outs", "tags", "profile",
)  # fmt: skip
_CHUNK = 20_000
_PAGE = 5_000


def _micros(at: datetime) -> int:
    return (at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


class FloorDb:
    """The floor's store: plain tables, one statement per table and chunk."""

    def __init__(self, url: str) -> None:
        self.postgres = url.startswith("postgresql")
        if self.postgres:
            import psycopg

            dsn, _, schema = url.removeprefix("postgresql+psycopg").partition("#")
            self.conn: Any = psycopg.connect("postgresql" + dsn)
            self.conn.execute(f"SET search_path TO {schema}")
            self.mark = "%s"
        else:
            import sqlite3

            self.conn = sqlite3.connect(url, isolation_level=None)
            self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute("PRAGMA synchronous = NORMAL")
            self.conn.execute("BEGIN")
            self.mark = "?"

    def create(self) -> None:
        ids = "BIGINT PRIMARY KEY" if self.postgres else "INTEGER PRIMARY KEY"
        at = "BIGINT"
        text = "TEXT"
        person = ", ".join(f"{c} {text}" for c in _COLUMNS[4:])
        for sql in (
            f"CREATE TABLE leads (id {ids}, created_at {at}, status {text}, status_at {at}, "
            f"{person})",
            "CREATE INDEX leads_status ON leads (status, id)",
            f"CREATE TABLE contacts (id {ids}, created_at {at}, type {text}, {person})",
            f"CREATE TABLE keys (key {text} PRIMARY KEY, record_id BIGINT)"
            + ("" if self.postgres else " WITHOUT ROWID"),
            f"CREATE TABLE events (id {ids}, subject_id BIGINT, subject {text}, name {text}, "
            f"source {text}, dest {text}, at {at}, actor {text}, data {text})",
            f"CREATE TABLE steps (subject_id BIGINT, step {text}, at {at}, month {text})",
            "CREATE INDEX steps_step ON steps (step, subject_id, at)",
            f"CREATE TABLE touches (id {ids}, subject_id BIGINT, channel {text}, at {at})",
            "CREATE INDEX touches_subject ON touches (subject_id, channel)",
        ):
            self.conn.execute(sql)

    def insert(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        if self.postgres:
            with self.conn.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as c:
                for row in rows:
                    c.write_row(row)
            return
        marks = ", ".join(self.mark for _ in columns)
        self.conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)

    def scalars(self, sql: str, values: Sequence[Any]) -> list[Any]:
        return [row[0] for row in self.conn.execute(sql, values).fetchall()]

    def holders(self, keys: list[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(keys), 500):
            batch = keys[start : start + 500]
            if self.postgres:
                found.update(self.scalars("SELECT key FROM keys WHERE key = ANY(%s)", [batch]))
            else:
                marks = ", ".join("?" for _ in batch)
                found.update(self.scalars(f"SELECT key FROM keys WHERE key IN ({marks})", batch))
        return found

    def called(self, ids: list[int]) -> set[int]:
        if not ids:
            return set()
        if self.postgres:
            sql = (
                "SELECT DISTINCT subject_id FROM touches "
                "WHERE channel = 'call' AND subject_id = ANY(%s)"
            )
            return set(self.scalars(sql, [ids]))
        found: set[int] = set()
        for start in range(0, len(ids), 500):
            batch = ids[start : start + 500]
            marks = ", ".join("?" for _ in batch)
            sql = (
                "SELECT DISTINCT subject_id FROM touches "
                f"WHERE channel = 'call' AND subject_id IN ({marks})"
            )
            found.update(self.scalars(sql, batch))
        return found

    def update_leads(self, rows: list[tuple[Any, ...]]) -> None:
        """(status, status_at, profile, tags, id) for each lead that moved."""
        if not rows:
            return
        if self.postgres:
            self.conn.execute(
                "CREATE TEMP TABLE IF NOT EXISTS moved (status TEXT, status_at BIGINT, "
                "profile TEXT, tags TEXT, id BIGINT) ON COMMIT DELETE ROWS"
            )
            self.insert("moved", ("status", "status_at", "profile", "tags", "id"), rows)
            self.conn.execute(
                "UPDATE leads SET status = m.status, status_at = m.status_at, "
                "profile = m.profile, tags = m.tags FROM moved AS m WHERE leads.id = m.id"
            )
            return
        self.conn.executemany(
            "UPDATE leads SET status = ?, status_at = ?, profile = ?, tags = ? WHERE id = ?", rows
        )

    def commit(self) -> None:
        if self.postgres:
            self.conn.commit()
        else:
            self.conn.execute("COMMIT")
            self.conn.execute("BEGIN")

    def close(self) -> None:
        if self.postgres:
            self.conn.commit()
        else:
            self.conn.execute("COMMIT")
        self.conn.close()


def floor_import(url: str, path: str) -> dict[str, Any]:
    """Read, validate, dedupe and store the export; count what happened."""
    db = FloorDb(url)
    db.create()
    now = datetime.now(UTC)
    counts: dict[str, int] = {"added": 0, "duplicates": 0, "rejected": 0}
    stored: dict[str, int] = {}
    next_id = next_event = 1
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        at = {name: i for i, name in enumerate(header)}
        (first, last, email_i, phone_i, mobile_i, company, title, industry, employees_i,
         revenue_i, city, state, postal, country_i, source, status_i, rating_i, email_out,
         call_out, created_i, owner) = (at[c] for c in (
            "FirstName", "LastName", "Email", "Phone", "MobilePhone", "Company", "Title",
            "Industry", "NumberOfEmployees", "AnnualRevenue", "City", "State",
            "PostalCode", "Country", "LeadSource", "Status", "Rating",
            "HasOptedOutOfEmail", "DoNotCall", "CreatedDate", "OwnerId"))  # fmt: skip
        while True:
            chunk: list[tuple[tuple[Any, ...], tuple[str, ...], str, str]] = []
            for cells in reader:
                kind, state_value = _STATUS[cells[status_i]]
                email = email_or_none(cells[email_i].strip()) if cells[email_i].strip() else None
                phone_text = cells[phone_i].strip() or cells[mobile_i].strip()
                phone = phone_or_none(phone_text) if phone_text else None
                if (cells[email_i].strip() and email is None) or (phone_text and phone is None):
                    counts["rejected"] += 1
                    continue
                created = datetime.fromisoformat(cells[created_i])
                if created > now:
                    counts["rejected"] += 1
                    continue
                revenue = cells[revenue_i].strip().lstrip("$").replace(",", "")
                outs = [n for n, i in (("call", call_out), ("email", email_out)) if cells[i] == "1"]
                keys = tuple(
                    k for k in (email and f"email:{email.lower()}", phone and f"phone:{phone}") if k
                )
                created_at = _micros(created)
                row = (
                    created_at, state_value, created_at,
                    *(cells[i].strip() or None for i in (first, last)), email, phone,
                    *(cells[i].strip() or None for i in (company, title, industry)),
                    int(cells[employees_i]) if cells[employees_i] else None,
                    str(Decimal(revenue)) if revenue else None,
                    _COUNTRIES[cells[country_i].strip().lower()],
                    *(cells[i].strip() or None for i in (state, city, postal, source, owner)),
                    _RATING.get(cells[rating_i].strip().lower(), "none"),
                    ",".join(outs) or None, None, None,
                )  # fmt: skip
                chunk.append((row, keys, kind, state_value))
                if len(chunk) == _CHUNK:
                    break
            if not chunk:
                break
            held = db.holders([k for _, keys, _, _ in chunk for k in keys])
            leads, contacts, key_rows, events, steps = [], [], [], [], []
            for row, keys, kind, state_value in chunk:
                if any(k in held for k in keys):
                    counts["duplicates"] += 1
                    continue
                held.update(keys)
                record_id = next_id
                next_id += 1
                key_rows.extend((k, record_id) for k in keys)
                created_at = row[0]
                month = datetime.fromtimestamp(created_at / 1e6, UTC).strftime("%Y-%m")
                if kind == "contact":
                    contacts.append(
                        (record_id, created_at, state_value, *row[3:18], None, *row[19:])
                    )
                    events.append((next_event, record_id, "contact", "import", None, state_value,
                                   created_at, "import", None))  # fmt: skip
                    next_event += 1
                else:
                    leads.append((record_id, *row))
                    events.append((next_event, record_id, "lead", "import", None, "raw",
                                   created_at, "import", None))  # fmt: skip
                    steps.append((record_id, "raw", created_at, month))
                    next_event += 1
                    if state_value != "raw":
                        events.append((next_event, record_id, "lead", "import", "raw",
                                       state_value, created_at, "import", None))  # fmt: skip
                        steps.append((record_id, state_value, created_at, month))
                        next_event += 1
                stored[f"{kind}:{state_value}"] = stored.get(f"{kind}:{state_value}", 0) + 1
                counts["added"] += 1
            db.insert("leads", _COLUMNS, leads)
            db.insert("contacts", ("id", "created_at", "type", *_COLUMNS[4:]), contacts)
            db.insert("keys", ("key", "record_id"), key_rows)
            db.insert("events", ("id", "subject_id", "subject", "name", "source", "dest",
                                 "at", "actor", "data"), events)  # fmt: skip
            db.insert("steps", ("subject_id", "step", "at", "month"), steps)
            db.commit()
    db.close()
    return {**counts, "stored": stored}


# The two profiles of RULES, written by hand: (name, rules), each rule a check that
# answers 1 (pass), 0 (fail) or None (unknown), and whether it is hard.
_NICHE = {"it services", "managed services"}
_AUTHORITY = re.compile(
    r"(?<![\w'\u2019])(?:president|founder|owner|ceo)(?![\w'\u2019])", re.IGNORECASE
)


def _niche(lead: tuple[Any, ...]) -> int | None:
    industry = lead[3]
    return None if industry is None else int(" ".join(industry.casefold().split()) in _NICHE)


def _authority(lead: tuple[Any, ...]) -> int | None:
    title = lead[2]
    return None if title is None else int(_AUTHORITY.search(title) is not None)


def _money(lead: tuple[Any, ...]) -> int | None:
    revenue = lead[5]
    return None if revenue is None else int(Decimal(revenue) >= 1_000_000)


def _geography(lead: tuple[Any, ...]) -> int | None:
    country = lead[6]
    return None if country is None else int(country == "US")


def _size(lead: tuple[Any, ...]) -> int | None:
    employees = lead[4]
    return None if employees is None else int(5 <= int(employees) <= 200)


_PROFILES = (
    ("msp-owner", ((_niche, False), (_authority, False), (_money, False), (_geography, True))),
    ("us-smb", ((_geography, True), (_size, False))),
)
_MISSING = {_niche: "industry", _authority: "title", _money: "annual_revenue",
            _geography: "country", _size: "employees"}  # fmt: skip


def _judge(lead: tuple[Any, ...]) -> tuple[str, str | None, float, list[str], dict[str, str]]:
    """(decision, profile, score, missing, outcomes), as the engine decides them."""
    fit: str | None = None
    best = 0.0
    outcomes: dict[str, str] = {}
    for name, rules in _PROFILES:
        codes = [(check(lead), hard, check) for check, hard in rules]
        best = max(best, sum(1 for c, _, _ in codes if c == 1) / len(rules))
        if any(c == 0 and hard for c, hard, _ in codes):
            outcomes[name] = "hard_fail"
        elif any(c == 0 for c, _, _ in codes):
            outcomes[name] = "fail"
        elif any(c is None for c, _, _ in codes):
            outcomes[name] = "undecided"
        else:
            outcomes[name] = "fit"
            fit = name if fit is None or name < fit else fit
    values = set(outcomes.values())
    missing: list[str] = []
    if fit is not None:
        decision = "qualified"
    elif "undecided" in values:
        decision = "undecided"
        missing = sorted(
            {
                _MISSING[check]
                for name, rules in _PROFILES
                if outcomes[name] == "undecided"
                for check, _ in rules
                if check(lead) is None
            }
        )
    elif values == {"hard_fail"}:
        decision = "hard_fail"
    else:
        decision = "fail"
    return decision, fit, best, missing, outcomes


def floor_qualify(url: str) -> dict[str, Any]:
    """Judge every raw lead, page by page, and store where each went."""
    db = FloorDb(url)
    now = _micros(datetime.now(UTC))
    month = datetime.now(UTC).strftime("%Y-%m")
    counts = {"qualified": 0, "unqualified": 0, "waiting": 0}
    next_event = int(db.scalars("SELECT COALESCE(MAX(id), 0) FROM events", [])[0]) + 1
    after = 0
    select = (
        "SELECT id, interest, title, industry, employees, annual_revenue, country, tags "
        f"FROM leads WHERE status = 'raw' AND id > {db.mark} ORDER BY id LIMIT {_PAGE}"
    )
    while True:
        page = db.conn.execute(select, [after]).fetchall()
        if not page:
            break
        after = page[-1][0]
        judged = [(lead, _judge(lead)) for lead in page]
        called = db.called([lead[0] for lead, (d, *_) in judged if d == "fail"])
        moved, events, steps = [], [], []
        for lead, (decision, profile, score, missing, outcomes) in judged:
            dest = "raw"
            if decision == "qualified":
                dest = "qualified"
            elif decision == "hard_fail" or (decision == "fail" and lead[0] in called):
                dest = "unqualified"
            tier = ("hot" if lead[1] == "high" else "warm") if profile else "cold"
            data = {
                "qualified": profile is not None,
                "decision": decision,
                "profile": profile,
                "score": score,
                "tier": tier,
                "outcomes": outcomes,
                "forced": False,
            }
            if missing:
                data["missing"] = missing
            events.append((next_event, lead[0], "lead", "qualify", "raw", dest, now, "cli",
                           json.dumps(data)))  # fmt: skip
            next_event += 1
            if dest != "raw":
                tags = ",".join(sorted(set((lead[7] or "").split(",")) - {""} | {"sweet-spot"}))
                moved.append((dest, now, profile, tags if profile else lead[7], lead[0]))
                steps.append((lead[0], dest, now, month))
            counts["waiting" if dest == "raw" else dest] += 1
        db.update_leads(moved)
        db.insert("events", ("id", "subject_id", "subject", "name", "source", "dest", "at",
                             "actor", "data"), events)  # fmt: skip
        db.insert("steps", ("subject_id", "step", "at", "month"), steps)
        db.commit()
    db.close()
    return counts


_FLOOR_STEPS = "SELECT step, COUNT(DISTINCT subject_id) FROM steps GROUP BY step"
_FLOOR_FOLLOW_UP = """
SELECT COUNT(*), SUM(CASE WHEN n = 0 THEN 1 ELSE 0 END), SUM(n) FROM (
  SELECT q.subject_id, COUNT(t.id) AS n
  FROM (SELECT DISTINCT subject_id FROM steps WHERE step = 'qualified') AS q
  LEFT JOIN touches AS t ON t.subject_id = q.subject_id
  GROUP BY q.subject_id) AS per_lead
"""
_FLOOR_RAW_TO_QUALIFIED = """
WITH e AS (SELECT subject_id AS id, MIN(at) AS at FROM steps WHERE step = 'qualified'
           GROUP BY 1),
d AS (SELECT e.at - (SELECT MIN(f.at) FROM steps AS f WHERE f.step = 'raw'
                     AND f.subject_id = e.id) AS d FROM e),
ranked AS (SELECT d, ROW_NUMBER() OVER (ORDER BY d) AS rn, COUNT(*) OVER () AS n
           FROM d WHERE d IS NOT NULL)
SELECT AVG(d) / 1e6, MAX(n) FROM ranked WHERE 2 * rn BETWEEN n AND n + 2
"""


def floor_report(url: str) -> dict[str, Any]:
    """The report's figures, one hand-written query each; the table printed."""
    db = FloorDb(url)
    steps = dict(db.conn.execute(_FLOOR_STEPS).fetchall())
    follow = db.conn.execute(_FLOOR_FOLLOW_UP).fetchone()
    median = db.conn.execute(_FLOOR_RAW_TO_QUALIFIED).fetchone()
    db.close()
    order = ["raw", "qualified", "appointment_set", "appointment_sat", "proposing",
             "contract_sent", "won"]  # fmt: skip
    before = None
    for step in order:
        count = int(steps.get(step, 0))
        rate = f"{count / before:.0%}" if before else "-"
        print(f"{step:16} {count:>10,} {rate:>6}")
        before = count
    print(f"qualified never followed up: {follow[1] or 0}; median raw -> qualified: {median[0]}")
    return {"steps": {k: int(v) for k, v in steps.items()}}


def child_floor(phase: str, url: str, path: str) -> None:
    _record_peak()
    if phase == "import":
        result = floor_import(url, path)
    elif phase == "qualify":
        result = floor_qualify(url)
    else:
        result = floor_report(url)
    print("RESULT " + json.dumps(result))


# --- the run ----------------------------------------------------------------------------


@dataclass
class Side:
    """One side's runs and counts, phase by phase."""

    runs: dict[str, Run] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=dict)


def _lf_counts(phase: str, out: str) -> dict[str, Any]:
    """What ``leadfunnel PHASE`` printed, as the floor counts it."""
    if phase == "import":
        first = re.match(r"(\d+) added.*?, (\d+) duplicates, (\d+) avoided, (\d+) rejected", out)
        assert first is not None, out
        added, duplicates, avoided, rejected = map(int, first.groups())
        assert avoided == 0, out
        stored: dict[str, int] = {}
        for kind, part in re.findall(r"as (leads|contacts): ([^;\n]+)", out):
            for n, name in re.findall(r"(\d+) (\w+)", part):
                stored[f"{kind.rstrip('s')}:{name}"] = int(n)
        return {"added": added, "duplicates": duplicates, "rejected": rejected, "stored": stored}
    if phase == "qualify":
        found = re.match(r"(\d+) qualified, (\d+) disqualified, (\d+) waiting", out)
        assert found is not None, out
        qualified, unqualified, waiting = map(int, found.groups())
        return {"qualified": qualified, "unqualified": unqualified, "waiting": waiting}
    report = json.loads(out)
    steps = {step["step"]: step["count"] for step in report["steps"] if step["count"]}
    share = next(c["value"] for c in report["checks"] if c["name"] == "unqualified_share")
    if share:
        steps["unqualified"] = round(share * steps["raw"])
    return {"steps": steps}


def _floor_counts(out: str) -> dict[str, Any]:
    line = next(line for line in out.splitlines() if line.startswith("RESULT "))
    result: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
    return result


def pipeline(rows: int, folder: Path, postgres_url: str | None) -> tuple[Side, Side]:
    export = folder / f"export-{rows}.csv"
    if not export.exists():
        write_export(export, rows)
    rules = folder / "rules.toml"
    rules.write_text(RULES)
    if postgres_url is None:
        lf_url = f"sqlite:///{folder / f'leadfunnel-{rows}.db'}"
        floor_url = str(folder / f"floor-{rows}.db")
        for path in folder.glob(f"*-{rows}.db*"):
            path.unlink()
    else:
        lf_url, floor_url = _fresh_schemas(postgres_url)
    lf, floor = Side(), Side()
    commands = {
        "import": ["import", str(export), "--db", lf_url],
        "qualify": ["qualify", "--rules", str(rules), "--db", lf_url],
        "report": ["report", "--format", "json", "--db", lf_url],
    }
    for phase, command in commands.items():
        run = run_child(["--child-cli", *command])
        lf.runs[phase] = run
        lf.counts[phase] = _lf_counts(phase, run.out)
        run = run_child(["--child-floor", phase, floor_url, str(export)])
        floor.runs[phase] = run
        floor.counts[phase] = _floor_counts(run.out)
        if phase == "report":
            # The floor counts every step it stored; leadfunnel's report shows the
            # funnel's steps (and the unqualified milestone where it reports one).
            floor.counts[phase]["steps"] = {
                k: v
                for k, v in floor.counts[phase]["steps"].items()
                if k in lf.counts[phase]["steps"]
            }
            missing = set(lf.counts[phase]["steps"]) - set(floor.counts[phase]["steps"])
            assert not missing, missing
        if lf.counts[phase] != floor.counts[phase]:
            raise SystemExit(
                f"{phase}: the two sides disagree:\n  leadfunnel {lf.counts[phase]}\n"
                f"  floor      {floor.counts[phase]}"
            )
    return lf, floor


def _fresh_schemas(url: str) -> tuple[str, str]:
    """Empty schemas for both sides on the server; the two URLs that reach them."""
    import psycopg

    plain = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        for schema in ("bench_pipeline_lf", "bench_pipeline_floor"):
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            conn.execute(f"CREATE SCHEMA {schema}")
    joiner = "&" if "?" in url else "?"
    lf_url = f"{url}{joiner}options=-csearch_path%3Dbench_pipeline_lf"
    return lf_url, f"{url}#bench_pipeline_floor"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:5.2f}x" if b else "   - "


def show(rows: int, lf: Side, floor: Side, backend: str) -> None:
    imported = lf.counts["import"]
    qualified = lf.counts["qualify"]
    print(
        f"\n{backend}, {rows:,} rows: {imported['added']:,} added, "
        f"{imported['duplicates']:,} duplicates, {imported['rejected']:,} rejected; "
        f"{qualified['qualified']:,} qualified, {qualified['unqualified']:,} disqualified, "
        f"{qualified['waiting']:,} waiting (both sides agree on every count)"
    )
    print(
        f"{'phase':8} {'leadfunnel cpu':>14} {'wall':>8} {'peak':>7}   "
        f"{'floor cpu':>9} {'wall':>8} {'peak':>7}   {'cpu ratio':>9} {'wall ratio':>10}"
    )
    totals = [0.0, 0.0, 0.0, 0.0]
    for phase in ("import", "qualify", "report"):
        a, b = lf.runs[phase], floor.runs[phase]
        totals = [totals[0] + a.cpu, totals[1] + a.wall, totals[2] + b.cpu, totals[3] + b.wall]
        print(
            f"{phase:8} {a.cpu:13.2f}s {a.wall:7.2f}s {a.peak_mb:5.0f}MB   "
            f"{b.cpu:8.2f}s {b.wall:7.2f}s {b.peak_mb:5.0f}MB   "
            f"{_ratio(a.cpu, b.cpu):>9} {_ratio(a.wall, b.wall):>10}"
        )
    print(
        f"{'total':8} {totals[0]:13.2f}s {totals[1]:7.2f}s {'':7}   {totals[2]:8.2f}s "
        f"{totals[3]:7.2f}s {'':7}   {_ratio(totals[0], totals[2]):>9} "
        f"{_ratio(totals[1], totals[3]):>10}"
    )
    sys.stdout.flush()


def _compile_bytecode() -> None:
    """Byte-compile leadfunnel where it is installed from, as ``pip install`` does.

    An editable install, or a shell with ``PYTHONDONTWRITEBYTECODE`` set, leaves the
    package without ``.pyc`` files, and every command would then compile 40 modules
    (about 70 ms) before its first row: a cost no installed copy pays. The floor's
    script is compiled the same way. Done in a child, so that this process never
    imports leadfunnel."""
    code = (
        "import compileall, pathlib, leadfunnel, sys; "
        "root = pathlib.Path(leadfunnel.__file__).parent; "
        "ok = compileall.compile_dir(root, quiet=1) "
        "and compileall.compile_file(sys.argv[1], quiet=1); "
        "sys.exit(0 if ok else 1)"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([sys.executable, "-c", code, __file__], check=True, env=env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--quick", action="store_true", help="10k rows only")
    parser.add_argument("--postgres", action="store_true", help="on PostgreSQL, against COPY")
    parser.add_argument(
        "--url",
        default=os.environ.get("LEADFUNNEL_TEST_POSTGRES_URL"),
        help="PostgreSQL URL (default: LEADFUNNEL_TEST_POSTGRES_URL)",
    )
    parser.add_argument("--keep", type=Path, help="keep the exports and databases here")
    parser.add_argument("--child-cli", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    parser.add_argument("--child-floor", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_cli is not None:
        child_cli(args.child_cli)
        return
    if args.child_floor is not None:
        child_floor(*args.child_floor)
        return
    if args.postgres and not args.url:
        raise SystemExit("--postgres needs --url or LEADFUNNEL_TEST_POSTGRES_URL")
    sizes = [10_000] if args.quick else args.rows
    _compile_bytecode()
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"load before the run: {uptime}")
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench_pipeline_"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        for rows in sizes:
            lf, floor = pipeline(rows, folder, args.url if args.postgres else None)
            show(rows, lf, floor, "PostgreSQL" if args.postgres else "SQLite")
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"\nload after the run: {uptime}")


if __name__ == "__main__":
    main()
