"""Kill a process in the middle of an import: every committed chunk survives, whole."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from leadfunnel import Funnel, SqlRepository

CHUNK = 250

IMPORTER = textwrap.dedent(
    f"""
    import sys
    from leadfunnel import Funnel, SqlRepository

    def rows():
        for n in range(10_000_000):
            yield {{"first_name": f"P{{n}}", "email": f"p{{n}}@co{{n}}.example.com",
                    "country": "US", "source": "crash-test"}}

    funnel = Funnel(SqlRepository(sys.argv[1]))

    def progress(report):
        print(len(report.added), flush=True)

    funnel.import_leads(rows(), chunk_size={CHUNK}, on_progress=progress)
    """
)


@pytest.mark.skipif(os.name != "posix", reason="needs SIGKILL")
def test_a_killed_import_leaves_whole_chunks(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    url = f"sqlite:///{path}"
    script = tmp_path / "importer.py"
    script.write_text(IMPORTER)
    process = subprocess.Popen(
        [sys.executable, str(script), url], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    committed = 0
    try:
        for line in process.stdout:
            committed = int(line)
            if committed >= 4 * CHUNK:
                break
    finally:
        process.send_signal(signal.SIGKILL)  # no cleanup, no atexit, mid-transaction
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert committed >= 4 * CHUNK

    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)

    funnel = Funnel(SqlRepository(url))
    leads = funnel.leads()
    # Everything reported committed is there, and only whole chunks are.
    assert len(leads) >= committed
    assert len(leads) % CHUNK == 0
    # ...in order, with no gap: the rows are the first len(leads) the importer read.
    assert {lead.email for lead in leads} == {f"p{n}@co{n}.example.com" for n in range(len(leads))}
    for lead in leads:
        assert [e.name for e in funnel.history(lead)] == ["import"]
    assert funnel.report().steps["raw"].count == len(leads)
    # The store is usable after the crash.
    again = funnel.import_leads([{"email": "after@crash.example.com"}])
    assert len(again.added) == 1
