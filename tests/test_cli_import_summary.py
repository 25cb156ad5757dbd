"""``leadfunnel import`` without ``--rejects``: the summary shows the first rejected rows'
reasons and says how to get them all, instead of a bare count."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from leadfunnel._cli import main

HEADER = "Email,First Name,AnnualRevenue\n"


def _import(tmp_path: Path, body: str, *more: str) -> list[str]:
    export = tmp_path / "leads.csv"
    export.write_text(HEADER + body, encoding="utf-8")
    db = f"sqlite:///{tmp_path / 'funnel.db'}"
    result = CliRunner().invoke(
        main, ["import", str(export), "--db", db, *more], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


def test_the_first_reasons_are_shown_with_their_rows_and_the_rest_counted(
    tmp_path: Path,
) -> None:
    body = "a@x.com,A,1\nbad@@x.com,B,2\nc@x.com,C,x\nd@x.com,D,-5\ne@@x,E,\nf@x.com,F,\n"
    lines = _import(tmp_path, body)
    assert lines[0].startswith("2 added, 0 duplicates, 0 avoided, 4 rejected")
    shown = [line for line in lines if line.startswith("  row ")]
    assert [line.split(":")[0] for line in shown] == ["  row 2", "  row 3", "  row 4"]
    assert "is not a valid e-mail address" in shown[0]
    assert "AnnualRevenue: 'x' is not a number" in shown[1]
    assert lines[-1].startswith("  ... and 1 more; write every rejected row")
    assert "--rejects FILE" in lines[-1]


def test_a_few_rejected_rows_are_all_shown_and_none_without_rejections(tmp_path: Path) -> None:
    lines = _import(tmp_path, "a@x.com,A,1\nbad@@x.com,B,2\n")
    assert [line[:8] for line in lines if line.startswith("  row ")] == ["  row 2:"]
    assert lines[-1].startswith("  write every rejected row")
    clean = _import(tmp_path, "z@x.com,Z,1\n")
    assert not [line for line in clean if "rejected row" in line]


def test_with_rejects_the_summary_names_the_file_instead(tmp_path: Path) -> None:
    rejects = tmp_path / "rejected.csv"
    lines = _import(tmp_path, "bad@@x.com,B,2\n", "--rejects", str(rejects))
    assert lines[-1] == f"Rejected rows written to {rejects}"
    assert not [line for line in lines if line.startswith("  row ")]


def test_reasons_name_the_file_s_columns_in_the_summary_and_the_rejects_file(
    tmp_path: Path,
) -> None:
    rejects = tmp_path / "rejected.csv"
    body = "a@x.com,A,-5\n"
    lines = _import(tmp_path, body)
    assert any(line.startswith("  row 1: AnnualRevenue: ") for line in lines), lines
    _import(tmp_path, "b@x.com,B,-7\n", "--rejects", str(rejects))
    written = rejects.read_text(encoding="utf-8")
    assert "AnnualRevenue: Input should be greater than or equal to 0" in written
    assert "annual_revenue" not in written


def test_rejects_of_a_spreadsheet_s_file_open_in_a_spreadsheet_and_import_again(
    tmp_path: Path,
) -> None:
    export = tmp_path / "excel.csv"
    export.write_bytes(
        "sep=;\r\nEmail;First Name;AnnualRevenue\r\nbad@@x.com;Jürgen;1.200\r\n"
        "ok@x.com;Zoë;2.500\r\n".encode("cp1252")
    )
    db = f"sqlite:///{tmp_path / 'funnel.db'}"
    rejects = tmp_path / "rejected.csv"
    first = CliRunner().invoke(
        main, ["import", str(export), "--db", db, "--rejects", str(rejects)],
        catch_exceptions=False,
    )  # fmt: skip
    assert first.exit_code == 0, first.output
    raw = rejects.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbfsep=;\r\nrow;reason;Email;First Name;AnnualRevenue")
    assert "Jürgen" in raw.decode("utf-8-sig")
    again = CliRunner().invoke(main, ["import", str(rejects), "--db", db], catch_exceptions=False)
    assert again.exit_code == 0, again.output
    assert again.output.startswith("0 added, 0 duplicates, 0 avoided, 1 rejected")


def test_rejects_of_a_plain_utf8_file_stay_plain(tmp_path: Path) -> None:
    rejects = tmp_path / "rejected.csv"
    _import(tmp_path, "bad@@x.com,B,2\n", "--rejects", str(rejects))
    assert rejects.read_bytes().startswith(b"row,reason,Email")
