"""``leadfunnel qualify`` killed at any moment loses nothing; run again, it finishes."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from conftest import T0, person
from leadfunnel import Funnel, LeadStatus, SqlRepository
from leadfunnel.testing import ManualClock

RULES = """
[[profiles]]
name = "msp-owner"
rules = [
  { rule = "niche", industries = ["IT Services"] },
  { rule = "geography", countries = ["US"], hard = true },
]
"""


def _qualify(db: str, rules: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "leadfunnel", "qualify", "--rules", str(rules), "--db", db],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _state(path: Path) -> tuple[dict[str, int], list[tuple[str, str | None, int]]]:
    """Leads per status, and per lead: its status, its last event's dest, its events."""
    with sqlite3.connect(path) as conn:
        statuses = dict(conn.execute("SELECT status, COUNT(*) FROM lf_leads GROUP BY status"))
        rows = conn.execute(
            "SELECT l.status, (SELECT e.name || ':' || COALESCE(json_extract(e.doc, '$.dest'), "
            "'') FROM lf_events e WHERE e.subject_id = l.id ORDER BY e.position DESC LIMIT 1), "
            "(SELECT COUNT(*) FROM lf_events e WHERE e.subject_id = l.id AND e.name = 'qualify') "
            "FROM lf_leads l"
        ).fetchall()
    return statuses, rows


def test_a_killed_run_leaves_every_lead_whole_and_the_next_run_finishes(tmp_path: Path) -> None:
    path = tmp_path / "f.db"
    db = f"sqlite:///{path}"
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    funnel = Funnel(SqlRepository(db), clock=ManualClock(T0))
    rows = [person(n, country="CA" if n % 3 == 0 else "US") for n in range(6_000)]
    assert len(funnel.import_leads(rows, chunk_size=6_000).added) == 6_000
    funnel.repository.close()

    process = _qualify(db, rules)
    deadline = time.monotonic() + 60
    # Kill it the moment its first page is stored, while later pages are being judged.
    while process.poll() is None and time.monotonic() < deadline:
        with sqlite3.connect(path) as conn:
            judged = conn.execute("SELECT COUNT(*) FROM lf_events WHERE name = 'qualify'")
            if judged.fetchone()[0]:
                os.kill(process.pid, signal.SIGKILL)
                break
        time.sleep(0.01)
    process.wait()
    statuses, leads = _state(path)
    assert sum(statuses.values()) == 6_000
    for status, last, qualified in leads:
        # No status moved without its event, no event stored without its move.
        assert last is not None
        assert last.split(":")[1] == status
        assert qualified <= 1
    assert sum(q for *_, q in leads) % 2_000 == 0  # whole pages (of 2,000), or nothing
    done = {s: statuses.get(s, 0) for s in ("qualified", "unqualified")}

    finished = _qualify(db, rules)
    out, err = finished.communicate(timeout=120)
    assert finished.returncode == 0, err
    assert out == (
        f"{4_000 - done['qualified']} qualified, {2_000 - done['unqualified']} disqualified, "
        "0 waiting for a call or more data\n"
    )
    statuses, leads = _state(path)
    assert statuses == {LeadStatus.QUALIFIED.value: 4_000, LeadStatus.UNQUALIFIED.value: 2_000}
    assert all(q == 1 for *_, q in leads)  # each lead judged once, over the two runs
