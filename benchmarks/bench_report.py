"""Report speed on SQLite: ``funnel.report()`` beside the hand-written SQL it stands for.

Builds a history on SQLite (leads imported, a share of them qualified, booked and moved
through the stages: several events per subject), then times, side by side:

* ``funnel.report()`` (counts, groups-free) and ``funnel.report(by="month")``;
* the hand-written query ``SELECT step, COUNT(DISTINCT subject_id) FROM lf_steps
  GROUP BY step`` on the same file with the standard ``sqlite3`` module, alone (against
  the repository's ``step_counts``) and with the three other queries a report makes (the
  follow-up figures, the per-setter counts and the time-in-stage medians), written by
  hand too.

Peak memory of a report is read in a child process that only opens the file and runs
it (``VmHWM``, not ``ru_maxrss``, which would carry over this process's peak), so
building the history does not count. Target (issue 6): within 2x
of the hand-written query, peak under 100 MB.

    python benchmarks/bench_report.py --quick         # ~16k events
    python benchmarks/bench_report.py --leads 200000  # ~270k events
    python benchmarks/bench_report.py --leads 730000 --db /tmp/r1m.db  # ~1M, kept
    python benchmarks/bench_report.py --leads 100000 \\
        --url postgresql+psycopg://postgres@127.0.0.1/test --schema lf_bench  # empty schema
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from _memory import peak_rss_mb

from leadfunnel import Funnel, SqlRepository
from leadfunnel._sql._schema import events as events_table
from leadfunnel.testing import ManualClock

HAND_WRITTEN = "SELECT step, COUNT(DISTINCT subject_id) FROM lf_steps GROUP BY step"
# What a report asks besides the counts, written by hand: the follow-up figures of the
# qualified leads, and each setter's appointments set and sat (the sat rate per setter).
FOLLOW_UP = """
SELECT COUNT(*), SUM(CASE WHEN n = 0 THEN 1 ELSE 0 END), SUM(n) FROM (
  SELECT q.subject_id, COUNT(t.id) AS n
  FROM (SELECT DISTINCT subject_id FROM lf_steps WHERE step = 'qualified') AS q
  LEFT JOIN lf_touches AS t ON t.subject_id = q.subject_id
  GROUP BY q.subject_id)
"""
PER_SETTER = """
SELECT s.step, o.setter, COUNT(DISTINCT s.subject_id)
FROM lf_steps AS s LEFT JOIN lf_opportunities AS o ON o.id = s.subject_id
WHERE s.step IN ('appointment_set', 'appointment_sat')
GROUP BY s.step, o.setter
"""
# Time in stage: per stretch, each subject's first arrival at the later step, its first
# at the earlier one looked up by the (step, subject_id, at) index (a lead's qualifying
# for its first booked deal), and the median per stretch by window functions.
_FIRST = "(SELECT MIN(f.at) FROM lf_steps AS f WHERE f.step = '{0}' AND f.subject_id = e.id)"
_ENDS = "(SELECT subject_id AS id, MIN(at) AS at FROM lf_steps WHERE step = '{0}' GROUP BY 1)"
TIME_IN_STAGE = f"""
WITH durations AS (
  SELECT 'raw' AS stage, e.at - {_FIRST.format("raw")} AS d FROM {_ENDS.format("qualified")} AS e
  UNION ALL SELECT 'qualified', e.at - {_FIRST.format("qualified")} FROM (
    SELECT o.lead_id AS id, MIN(s.at) AS at
    FROM lf_steps AS s JOIN lf_opportunities AS o ON o.id = s.subject_id
    WHERE s.step = 'appointment_set' AND o.lead_id IS NOT NULL GROUP BY o.lead_id) AS e
  UNION ALL SELECT 'appointment_set', e.at - {_FIRST.format("appointment_set")}
    FROM {_ENDS.format("appointment_sat")} AS e
  UNION ALL SELECT 'appointment_sat', e.at - {_FIRST.format("appointment_sat")}
    FROM {_ENDS.format("won")} AS e),
ranked AS (
  SELECT stage, d, ROW_NUMBER() OVER (PARTITION BY stage ORDER BY d) AS rn,
         COUNT(*) OVER (PARTITION BY stage) AS n FROM durations WHERE d IS NOT NULL)
SELECT stage, AVG(d) / 1e6, MAX(n) FROM ranked WHERE 2 * rn BETWEEN n AND n + 2
GROUP BY stage
"""


def build(url: str, leads: int, schema: str | None = None) -> int:
    rng = random.Random(1)
    clock = ManualClock(datetime(2026, 1, 5, 9, tzinfo=UTC))
    funnel = Funnel(SqlRepository(url, schema=schema), clock=clock)
    rows = (
        {"email": f"p{n}@co{n}.example.com", "source": rng.choice(["web", "ads", "referral"])}
        for n in range(leads)
    )
    funnel.import_leads(rows, chunk_size=5000)
    # Move a share through the funnel: one event per move.
    for lead in funnel.leads(limit=max(1, leads // 20)):
        clock.advance(minutes=7)
        funnel.qualify(lead, force=True)
        deal = funnel.set_appointment(lead, setter=rng.choice(["alex", "casey"]))
        for step in (funnel.sit, funnel.propose, funnel.send_contract, funnel.win):
            if rng.random() < 0.8:
                deal = step(deal)
            else:
                funnel.lose(deal, reason="price")
                break
    return count_events(funnel)


def count_events(funnel: Funnel) -> int:
    """How many events the funnel's SQL store holds."""
    repository = funnel.repository
    assert isinstance(repository, SqlRepository)
    with repository._read() as conn:  # a benchmark may look inside
        return int(conn.execute(sa.select(sa.func.count()).select_from(events_table)).scalar_one())


def best(function: object, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        function()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return min(times)


def child(url: str) -> None:
    """Run one report and print the process's peak resident memory in MB."""
    Funnel(SqlRepository(url)).report(by="month")
    print(peak_rss_mb())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="about 20k events")
    parser.add_argument("--leads", type=int, default=60_000)
    parser.add_argument(
        "--db", type=Path, help="keep the history in this file (built only if missing)"
    )
    parser.add_argument(
        "--url", help="a PostgreSQL or MariaDB URL: time the report there (no baseline)"
    )
    parser.add_argument("--schema", help="with --url: an empty schema/database to fill")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    if args.url:
        on_server(args.url, args.schema, 12_000 if args.quick else args.leads)
        return
    leads = 12_000 if args.quick else args.leads
    with tempfile.TemporaryDirectory() as folder:
        path = args.db or Path(folder) / "report.db"
        url = f"sqlite:///{path}"
        started = time.perf_counter()
        if path.exists():
            with sqlite3.connect(path) as existing:
                events = existing.execute("SELECT COUNT(*) FROM lf_events").fetchone()[0]
                leads = existing.execute("SELECT COUNT(*) FROM lf_leads").fetchone()[0]
        else:
            events = build(url, leads)
        took = time.perf_counter() - started
        print(f"history: {leads:,} leads, {events:,} events (ready in {took:.1f} s)")
        # Open once before timing: a file from an older leadfunnel is upgraded here.
        Funnel(SqlRepository(url)).repository.close()
        funnel = Funnel(SqlRepository(url))
        raw = sqlite3.connect(url.removeprefix("sqlite:///"))
        rounds = 3

        def all_four() -> None:
            for query in (HAND_WRITTEN, FOLLOW_UP, PER_SETTER, TIME_IN_STAGE):
                raw.execute(query).fetchall()

        hand = best(lambda: raw.execute(HAND_WRITTEN).fetchall(), rounds)
        counting = best(lambda: funnel.repository.step_counts(since=None, until=None), rounds)
        hand_report = best(all_four, rounds)
        report = best(funnel.report, rounds)
        by_month = best(lambda: funnel.report(by="month"), rounds)
        counts = dict(raw.execute(HAND_WRITTEN).fetchall())
        assert funnel.report().steps["raw"].count == counts["raw"]
        medians = {stage: (m, n) for stage, m, n in raw.execute(TIME_IN_STAGE)}
        for row in funnel.repository.stage_times(since=None, until=None):
            assert abs(row.median_seconds - medians[row.step][0]) < 1e-6, row
            assert row.count == medians[row.step][1], row
        peak = subprocess.run(
            [sys.executable, __file__, "--child", url], capture_output=True, text=True, check=True
        ).stdout.strip()
        print(f"counting, hand-written GROUP BY  : {hand * 1000:8.1f} ms")
        print(
            f"counting, repository.step_counts : {counting * 1000:8.1f} ms  "
            f"({counting / hand:.2f}x)"
        )
        print(f"a whole report, hand-written SQL : {hand_report * 1000:8.1f} ms")
        print(
            f"a whole report, funnel.report()  : {report * 1000:8.1f} ms  "
            f"({report / hand_report:.2f}x, target <= 2x)"
        )
        print(f"funnel.report(by='month')        : {by_month * 1000:8.1f} ms")
        print(f"peak memory of a report process  : {float(peak):.0f} MB (target < 100 MB)")


def on_server(url: str, schema: str | None, leads: int) -> None:
    """Build a history on a server and time what a report asks of it."""
    started = time.perf_counter()
    events = build(url, leads, schema)
    print(f"history: {leads:,} leads, {events:,} events on {url.split(':')[0]}")
    print(f"  built in {time.perf_counter() - started:.1f} s")
    funnel = Funnel(SqlRepository(url, schema=schema))
    repository = funnel.repository
    timings = {
        "step counts": lambda: repository.step_counts(since=None, until=None),
        "time in stage": lambda: repository.stage_times(since=None, until=None),
        "funnel.report()": funnel.report,
        "rep_list('not_sat')": lambda: funnel.rep_list("not_sat"),
    }
    for name, function in timings.items():
        print(f"  {name:<22}: {best(function, 3) * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
