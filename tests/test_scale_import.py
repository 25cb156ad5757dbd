"""Long imports: transactions sized by rows and bytes, one bad row still alone.

How fast and in how much memory is measured by ``benchmarks/bench_pipeline.py``; these
tests pin down how ``leadfunnel import`` cuts a file into transactions.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from leadfunnel import Funnel, SqlRepository
from leadfunnel._cli import main
from leadfunnel._importing import sized_chunks


def test_chunks_start_small_and_double_up_to_the_row_bound() -> None:
    chunks = list(sized_chunks(range(100), lambda _: 1, first=5, rows=30, max_bytes=10_000))
    assert [len(c) for c in chunks] == [5, 10, 20, 30, 30, 5]
    assert [x for c in chunks for x in c] == list(range(100))


def test_a_chunk_ends_at_the_byte_bound_whatever_its_rows() -> None:
    sizes = [10, 10, 500, 10, 10, 10, 10]
    chunks = list(sized_chunks(sizes, lambda n: n, first=100, rows=100, max_bytes=100))
    assert chunks == [[10, 10, 500], [10, 10, 10, 10]]
    assert list(sized_chunks([], len)) == []


def _export(path: Path, rows: int, poison: int | None = None, note: str = "") -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["FirstName", "LastName", "Email", "Company", "Description"])
        for n in range(rows):
            email = f"poison{n}@x.example.com" if n == poison else f"p{n}@x.example.com"
            writer.writerow([f"Pat{n}", "Rivera", email, f"Acme {n}", note])
    return path


def _spy_chunks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    sizes: list[int] = []
    original = Funnel.import_leads

    def spy(self: Funnel, rows: Any, **kwargs: Any) -> Any:
        rows = list(rows)
        sizes.append(len(rows))
        assert kwargs["chunk_size"] >= len(rows)  # one transaction for the whole chunk
        return original(self, rows, **kwargs)

    monkeypatch.setattr(Funnel, "import_leads", spy)
    return sizes


def test_the_cli_stores_1000_rows_then_twice_as_many_each_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes = _spy_chunks(monkeypatch)
    source = _export(tmp_path / "leads.csv", 4_500)
    result = CliRunner().invoke(main, ["import", str(source), "--db", f"sqlite:///{tmp_path}/f.db"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("4500 added, 0 duplicates, 0 avoided, 0 rejected")
    assert sizes == [1_000, 2_000, 1_500]


def test_wide_rows_make_smaller_transactions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("leadfunnel._importing.CHUNK_BYTES", 100_000)
    sizes = _spy_chunks(monkeypatch)
    source = _export(tmp_path / "wide.csv", 600, note="x" * 1_000)  # about 1 KB a row
    result = CliRunner().invoke(main, ["import", str(source), "--db", f"sqlite:///{tmp_path}/f.db"])
    assert result.exit_code == 0, result.output
    assert sum(sizes) == 600
    assert max(sizes) <= 100  # 100 rows of ~1 KB fill 100 KB
    assert len(sizes) >= 6


def test_one_row_the_database_refuses_is_rejected_alone_in_a_large_transaction(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'f.db'}"
    SqlRepository(url).close()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TRIGGER refuse BEFORE INSERT ON lf_leads WHEN NEW.doc LIKE '%poison%' "
            "BEGIN SELECT RAISE(ABORT, 'this database refuses poison'); END"
        )
    engine.dispose()
    source = _export(tmp_path / "leads.csv", 3_000, poison=2_222)
    rejects = tmp_path / "rejects.csv"
    result = CliRunner().invoke(
        main, ["import", str(source), "--db", url, "--rejects", str(rejects)]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("2999 added, 0 duplicates, 0 avoided, 1 rejected")
    with rejects.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    assert [row[:3] for row in rows[1:]] == [["2223", rows[1][1], "Pat2222"]]
    assert "this database refuses poison" in rows[1][1]
    assert len(Funnel(SqlRepository(url)).leads()) == 2_999
