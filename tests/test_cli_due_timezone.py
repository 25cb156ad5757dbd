"""``leadfunnel due --timezone`` and ``leadfunnel list --timezone``: an ``--at`` without an
offset is read in that zone, as ``report`` reads its bounds."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner

from leadfunnel import Funnel, Lead, SqlRepository
from leadfunnel._cli import main
from leadfunnel.testing import ManualClock

CAPTURED = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # 09:00 in Chicago (CST)


def _db(tmp_path: Path) -> str:
    db = f"sqlite:///{tmp_path / 'funnel.db'}"
    funnel = Funnel(SqlRepository(db), clock=ManualClock(CAPTURED))
    funnel.capture(Lead(email="pat@x.example.com", first_name="Pat"))
    funnel.repository.close()
    return db


def _due(db: str, *more: str) -> list[dict[str, object]]:
    done = CliRunner().invoke(
        main, ["due", "--db", db, "--format", "json", *more], catch_exceptions=False
    )
    assert done.exit_code == 0, done.output
    data: list[dict[str, object]] = json.loads(done.output)
    return data


def test_an_at_without_an_offset_is_read_in_the_timezone(tmp_path: Path) -> None:
    db = _db(tmp_path)
    # 10:00 wall time: in UTC that is before the capture (15:00 UTC), in Chicago after.
    assert _due(db, "--at", "2026-03-02T10:00") == []
    (item,) = _due(db, "--at", "2026-03-02T10:00", "--timezone", "America/Chicago")
    assert item["overdue"] is False  # due at once, an hour to answer: 10:00 is on time
    # An --at with an offset keeps it, whatever the zone.
    at = (CAPTURED + timedelta(hours=3)).isoformat()
    (late,) = _due(db, "--at", at, "--timezone", "Asia/Tokyo")
    assert late["overdue"] is True


def test_a_bad_timezone_is_refused_before_the_database_is_opened(tmp_path: Path) -> None:
    missing = f"sqlite:///{tmp_path / 'nowhere.db'}"
    for command in (["due"], ["list", "not_sat"]):
        done = CliRunner().invoke(main, [*command, "--db", missing, "--timezone", "Mars/Base"])
        assert done.exit_code == 2
        assert "'Mars/Base' is not a time zone" in done.output
    assert not (tmp_path / "nowhere.db").exists()
