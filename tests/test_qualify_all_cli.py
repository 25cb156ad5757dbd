"""``leadfunnel qualify`` killed at any moment loses nothing; run again, it finishes."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import T0, person
from leadfunnel import Funnel, Lead, LeadStatus, SqlRepository
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


def test_the_summary_counts_the_leads_that_moved_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lead another user avoids while its page is judged is skipped: the summary says
    how many, rather than leave them out of its count."""
    from click.testing import CliRunner

    from leadfunnel._cli import main

    db = f"sqlite:///{tmp_path / 'q.db'}"
    other = Funnel(SqlRepository(db), clock=ManualClock(T0))
    leads = [other.capture(Lead(**person(n))) for n in range(3)]
    (tmp_path / "rules.toml").write_text(RULES)
    read = SqlRepository.lead_batches

    def avoided_meanwhile(self: SqlRepository, **options: Any) -> Iterator[list[Lead]]:
        for page in read(self, **options):
            other.avoid(leads[1])  # after the page was read, before it is stored
            yield page

    monkeypatch.setattr(SqlRepository, "lead_batches", avoided_meanwhile)
    result = CliRunner().invoke(
        main, ["qualify", "--rules", str(tmp_path / "rules.toml"), "--db", db]
    )
    assert result.exit_code == 0, result.output
    assert result.output == (
        "2 qualified, 0 disqualified, 0 waiting for a call or more data, "
        "1 skipped (erased, or moved meanwhile by another user or process)\n"
    )
