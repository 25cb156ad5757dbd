"""SQLite's ``compact()`` while another connection reads: the WAL checkpoint cannot
finish, and ``compact()`` used to return as if it had, leaving the erased person's bytes
in the -wal file (DESIGN 13). It now tries again for a while, then says so."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from leadfunnel import Funnel, Lead, SqlRepository, StorageError
from leadfunnel._sql import _engine as sql

NAME = b"Xanthippe"


def in_files(path: Path) -> bool:
    return any(
        NAME in Path(f"{path}{suffix}").read_bytes()
        for suffix in ("", "-wal")
        if Path(f"{path}{suffix}").exists()
    )


def test_compact_refuses_to_claim_success_while_a_reader_holds_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql, "COMPACT_WAIT", 0.3)
    path = tmp_path / "funnel.db"
    repository = SqlRepository(f"sqlite:///{path}", connect_args={"timeout": 0.1})
    funnel = Funnel(repository)
    for n in range(50):
        funnel.add(Lead(first_name="Filler", email=f"f{n}@x{n}.example.com"))
    lead = funnel.add(Lead(first_name="Xanthippe", email="xan@ormsby.example.com"))
    reader = sqlite3.connect(path, isolation_level=None)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM lf_leads").fetchone()  # an old snapshot
        funnel.erase(lead.id)
        with pytest.raises(StorageError, match="another connection is reading") as err:
            repository.compact()
        assert "run repository.compact() again" in str(err.value)
    finally:
        reader.close()
    repository.compact()  # the read has ended: it finishes
    repository.close()
    assert not in_files(path)
