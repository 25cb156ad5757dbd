"""The command line's outputs at their edges (an audit): a standard output that is not
UTF-8, ``due``'s table and JSON, ``report --by``'s JSON without data, ``list``'s table
with wide characters, Ctrl-C (status 130, one line saying what was kept) and a reader
that goes away before ``diagram``, ``--help`` or ``--version`` write (status 141)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from click.testing import CliRunner, Result
from rich.cells import cell_len

from conftest import run_leadfunnel_into
from leadfunnel import Funnel, Lead, SqlRepository
from leadfunnel._cli import main

RULES = '[[profiles]]\nname = "p"\nrules = [{ rule = "niche", industries = ["IT Services"] }]\n'
WIDE = (
    "first_name,last_name,email,company,industry,title,annual_revenue,country,source\n"
    "Ann,Lee,ann@ex.com,Acme,IT Services,CEO,2000000,US,web\n"
    "张伟,山田太郎山田太郎山田太郎,wei@ex.com,株式会社テスト株式会社テスト株式会社,"
    "IT Services,CEO,2000000,US,web\n"
    ",,anon@ex.com,,IT Services,CEO,2000000,US,\n"
)


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def leadfunnel(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "leadfunnel", *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=120,
        env={**os.environ, **env},
    )


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('demo') / 'demo.db'}"
    assert invoke("demo", "--db", url, "--leads", "30", "--svg", "").exit_code == 0
    return url


@pytest.fixture(scope="module")
def wide_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Ann Lee (ASCII), 张伟 山田太郎... (wide characters) and a lead with only an e-mail,
    all qualified (each with a follow-up due)."""
    folder = tmp_path_factory.mktemp("wide")
    (folder / "w.csv").write_text(WIDE, encoding="utf-8")
    (folder / "p.toml").write_text(RULES, encoding="utf-8")
    url = f"sqlite:///{folder / 'w.db'}"
    done = invoke("import", str(folder / "w.csv"), "--format", "generic", "--db", url)
    assert done.exit_code == 0, done.output
    assert invoke("qualify", "--rules", str(folder / "p.toml"), "--db", url).exit_code == 0
    return url


# --- due ------------------------------------------------------------------------------


def test_due_table_shows_every_id_whole(demo_db: str, tmp_path: Path) -> None:
    """The id is what a follow-up is acted on with: never cut, however wide the rows."""
    (tmp_path / "long.csv").write_text(
        "first_name,last_name,email,company,phone,industry,title,annual_revenue,country\n"
        "Bartholomew-Alexander,Featherstonehaugh-Worthington,b@ex.com,"
        "International Consolidated Technology Services Holdings Group Limited,"
        "+1 512 555 0134,IT Services,CEO,2000000,US\n",
        encoding="utf-8",
    )
    (tmp_path / "p.toml").write_text(RULES, encoding="utf-8")
    long_db = f"sqlite:///{tmp_path / 'long.db'}"
    invoke("import", str(tmp_path / "long.csv"), "--format", "generic", "--db", long_db)
    invoke("qualify", "--rules", str(tmp_path / "p.toml"), "--db", long_db)
    for db in (demo_db, long_db):
        due = json.loads(invoke("due", "--db", db, "--format", "json").stdout)
        table = invoke("due", "--db", db).stdout
        assert due
        assert "…" not in table
        for entry in due:
            assert entry["subject_id"] in table
            assert (entry["company"] or "") in table


def test_due_json_keeps_what_is_missing_null(wide_db: str) -> None:
    """No name, company or phone is null in JSON, as ``list --format json`` has them; the
    CSV leaves those cells empty."""
    data = {
        e["name"]: e for e in json.loads(invoke("due", "--db", wide_db, "--format", "json").stdout)
    }
    assert {k: data[None][k] for k in ("name", "company", "phone")} == {
        "name": None,
        "company": None,
        "phone": None,
    }
    assert data["Ann Lee"]["company"] == "Acme"
    listed = json.loads(invoke("list", "never_booked", "--db", wide_db, "--format", "json").stdout)
    anon = next(i for i in listed["items"] if i["email"] == "anon@ex.com")
    assert (anon["company"], anon["phone"]) == (None, None)
    csv_rows = invoke("due", "--db", wide_db, "--format", "csv").stdout.splitlines()
    assert any(row.split(",")[2:5] == ["", "", ""] for row in csv_rows[1:])


# --- report ---------------------------------------------------------------------------


def test_report_json_by_a_key_always_has_its_groups(demo_db: str) -> None:
    """``--by``: the same shape with or without data in the period ("groups": {})."""
    empty = invoke(
        "report", "--db", demo_db, "--by", "source", "--since", "2099-01-01", "--format", "json"
    )
    assert empty.exit_code == 0
    assert json.loads(empty.stdout)["groups"] == {}
    full = json.loads(
        invoke("report", "--db", demo_db, "--by", "source", "--format", "json").stdout
    )
    assert full["groups"]
    assert set(json.loads(empty.stdout)) == set(full)
    funnel = Funnel(SqlRepository(demo_db, migrate="check"))
    from datetime import UTC, datetime

    later = datetime(2099, 1, 1, tzinfo=UTC)
    assert funnel.report(by="source", since=later).to_dict()["groups"] == {}
    assert "groups" not in funnel.report(since=later).to_dict()  # no --by: no groups


# --- list -----------------------------------------------------------------------------


def test_list_table_lines_up_wide_characters(wide_db: str) -> None:
    """Columns are padded and cut by the width text takes on a terminal (two columns a
    Chinese or Japanese character), as ``due``'s table is."""
    table = invoke("list", "never_booked", "--db", wide_db).stdout
    lines = table.splitlines()
    header = next(i for i, line in enumerate(lines) if line.lstrip().startswith("name"))
    rows = lines[header:]
    assert len(rows) == 5
    assert {cell_len(line) for line in rows} == {cell_len(rows[0])}
    wide = next(line for line in rows if "张伟" in line)
    assert "..." in wide  # the name and the company, cut to their columns
    plain = next(line for line in rows if "Ann Lee" in line)
    assert cell_len(wide[: wide.index(" web ")]) == cell_len(plain[: plain.index(" web ")])


def test_list_table_of_plain_text_is_the_libraries(wide_db: str) -> None:
    """Where every character takes one column, the command prints the library's table."""
    funnel = Funnel(SqlRepository(wide_db, migrate="check"))

    def plain(text: str) -> list[str]:
        return [line for line in text.splitlines()[1:] if "张伟" not in line]

    for by in (None, "source", "age"):
        args = [] if by is None else ["--by", by]
        printed = invoke("list", "never_booked", "--db", wide_db, *args).stdout
        expected = funnel.rep_list("never_booked").to_table(by=by)
        assert plain(printed) == plain(expected)


# --- a standard output that is not UTF-8 ----------------------------------------------


@pytest.mark.parametrize("encoding", ["cp1252", "latin-1"])
@pytest.mark.parametrize(
    "command",
    [
        ["due"],
        ["due", "--format", "csv"],
        ["list", "never_booked"],
    ],
    ids=["due", "due-csv", "list"],
)
def test_an_output_encoding_without_the_characters_writes_question_marks(
    wide_db: str, encoding: str, command: list[str]
) -> None:
    """A Windows console's cp1252, a latin-1 ``PYTHONIOENCODING``: what the encoding
    cannot write is a ``?`` (the columns still line up), never a traceback."""
    done = leadfunnel(*command, "--db", wide_db, PYTHONIOENCODING=encoding)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    assert "??" in done.stdout
    if command == ["due"]:  # drawn with ASCII lines, aligned
        lines = done.stdout.splitlines()[:-1]
        assert lines[0].startswith("+-")
        assert {len(line) for line in lines} == {len(lines[0])}
    if command == ["list", "never_booked"]:
        lines = done.stdout.splitlines()[2:]
        assert {len(line) for line in lines} == {len(lines[0])}


@pytest.mark.parametrize("encoding", ["cp1252", "latin-1"])
@pytest.mark.parametrize(
    "command",
    [
        ["list", "never_booked", "--format", "json"],
        ["export-person", "wei@ex.com"],
    ],
    ids=["list-json", "export-person"],
)
def test_json_on_an_output_encoding_without_the_characters_loses_nothing(
    wide_db: str, encoding: str, command: list[str]
) -> None:
    """JSON is read by programs: what the encoding cannot write is a \\u escape, the
    same value once parsed (an access request answered in full), never a ``?``."""
    done = leadfunnel(*command, "--db", wide_db, PYTHONIOENCODING=encoding)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    assert "?" not in done.stdout
    parsed = json.dumps(json.loads(done.stdout), ensure_ascii=False)
    assert "\u5f20\u4f1f" in parsed  # the name, whole once parsed


@pytest.mark.parametrize("encoding", ["cp1252", "latin-1"])
def test_an_svg_chart_on_an_output_encoding_without_the_characters_loses_nothing(
    tmp_path: Path, encoding: str
) -> None:
    """A chart's names beyond the output's encoding are XML character references, which
    a viewer reads as the characters: the same chart, never a ``?``."""
    db = f"sqlite:///{tmp_path / 'svg.db'}"
    funnel = Funnel(SqlRepository(db))
    funnel.add(Lead(first_name="Wei", source="\u5fae\u4fe1 Zoë"))
    funnel.repository.close()
    args = ("report", "--by", "source", "--format", "svg", "--db", db)
    done = leadfunnel(*args, PYTHONIOENCODING=encoding)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    assert "?" not in done.stdout
    assert done.stdout.isascii()
    assert "&#24494;&#20449; Zo&#235;" in done.stdout
    utf8 = leadfunnel(*args).stdout
    assert "\u5fae\u4fe1 Zoë" in utf8

    def chart(svg: str) -> str:
        # The two runs may fall either side of a minute: the time each was made goes.
        text = ElementTree.tostring(ElementTree.fromstring(svg), encoding="unicode")
        return re.sub(r"made \d{4}-\d\d-\d\d \d\d:\d\d UTC", "made (time) UTC", text)

    assert chart(done.stdout) == chart(utf8)
    assert "made (time) UTC" in chart(utf8)


def test_the_event_feed_on_a_cp1252_output_loses_nothing(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'feed.db'}"
    funnel = Funnel(SqlRepository(db))
    funnel.disqualify(funnel.add(Lead(first_name="Wei")), reason="\u5f20\u4f1f: no budget")
    funnel.repository.close()
    done = leadfunnel("events", "--db", db, PYTHONIOENCODING="cp1252")
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    assert "?" not in done.stdout
    utf8 = leadfunnel("events", "--db", db)
    assert "\u5f20\u4f1f" in utf8.stdout
    assert [json.loads(line) for line in done.stdout.splitlines()] == [
        json.loads(line) for line in utf8.stdout.splitlines()
    ]


def test_due_table_on_a_cp1252_output_of_plain_text(demo_db: str) -> None:
    done = leadfunnel("due", "--db", demo_db, PYTHONIOENCODING="cp1252")
    assert (done.returncode, done.stderr) == (0, "")
    assert "?" not in done.stdout
    assert "| subject " in done.stdout


# --- Ctrl-C ---------------------------------------------------------------------------


def test_events_follow_stopped_by_ctrl_c_says_where(tmp_path: Path, ctrl_c_heard: None) -> None:
    """``events --follow`` runs until interrupted: that is status 130, with one line
    naming the last position printed, to go on from."""
    url = f"sqlite:///{tmp_path / 'feed.db'}"
    Funnel(SqlRepository(url)).import_leads(
        [{"first_name": f"Q{i}", "email": f"q{i}@x.example.com"} for i in range(3)]
    )
    follower = subprocess.Popen(
        [sys.executable, "-m", "leadfunnel", "events", "--follow", "--db", url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert follower.stdout is not None
    printed = [json.loads(follower.stdout.readline())["position"] for _ in range(3)]
    follower.send_signal(signal.SIGINT)
    out, err = follower.communicate(timeout=60)
    assert follower.returncode == 130, err
    assert out == ""
    # The position named is one printed: the last, or (Ctrl-C landing between a line's
    # writing and its counting) the one before it. Going on from it misses nothing.
    said = re.fullmatch(
        r"leadfunnel: interrupted: stopped after position (\d+) \(go on with --after \1\)\n",
        err,
    )
    assert said is not None, err
    assert int(said[1]) in printed[-2:]


def test_qualify_interrupted_says_what_it_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from leadfunnel._funnel import Funnel as FunnelClass

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    rules = tmp_path / "p.toml"
    rules.write_text(RULES, encoding="utf-8")
    monkeypatch.setattr(FunnelClass, "qualify_all", interrupted)
    done = invoke("qualify", "--rules", str(rules), "--db", f"sqlite:///{tmp_path / 'q.db'}")
    assert done.exit_code == 130
    assert done.stdout == ""
    assert done.stderr == (
        "leadfunnel: interrupted: the pages of leads judged before were stored, each "
        "whole; qualify again to judge the rest\n"
    )


def test_demo_interrupted_says_nothing_was_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import leadfunnel._demo

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(leadfunnel._demo, "build_demo", interrupted)
    url = f"sqlite:///{tmp_path / 'd.db'}"
    done = invoke("demo", "--db", url, "--svg", "")
    assert done.exit_code == 130
    assert done.stderr.splitlines()[-1] == (
        "leadfunnel: interrupted: nothing was stored (the demo is one transaction); run it again"
    )
    assert len(done.stderr.splitlines()) == 2  # "Building a sample funnel ..." before
    assert Funnel(SqlRepository(url)).count("lead") == 0


def test_demo_interrupted_after_storing_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from leadfunnel._funnel import Funnel as FunnelClass

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(FunnelClass, "report", interrupted)
    url = f"sqlite:///{tmp_path / 'd.db'}"
    done = invoke("demo", "--db", url, "--svg", "", "--leads", "5")
    assert done.exit_code == 130
    assert done.stderr.splitlines()[-1].startswith(
        "leadfunnel: interrupted: the sample funnel is stored; only its printout was cut short"
    )
    assert Funnel(SqlRepository(url)).count("lead") > 0


# --- a reader that goes away ----------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [["diagram", "lead"], ["--help"], ["report", "--help"], ["--version"]],
    ids=["diagram", "help", "command-help", "version"],
)
def test_a_reader_gone_before_anything_is_written_is_status_141(command: list[str]) -> None:
    """``leadfunnel diagram lead | true``: 141, the status of a command SIGPIPE stopped,
    and nothing on stderr, as every other command."""
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the command writes
    try:
        done = run_leadfunnel_into(write, *command)
    finally:
        os.close(write)
    assert (done.returncode, done.stderr) == (141, "")


def test_due_table_shows_the_most_overdue_500_and_its_times_in_the_zone_asked(
    tmp_path: Path,
) -> None:
    """A table is read by a person: without --limit it shows the 500 most overdue and
    says how many more there are (rich drew 40,000 rows in 30 s); --limit shows what it
    asks for; CSV gives every row. Its times are those of --timezone, so labelled."""
    rows = "".join(f"P{n},Lee,p{n}@ex{n}.com,Acme,2026-03-02 09:00\n" for n in range(520))
    (tmp_path / "many.csv").write_text(
        "first_name,last_name,email,company,created_at\n" + rows, encoding="utf-8"
    )
    db = f"sqlite:///{tmp_path / 'many.db'}"
    assert invoke("import", str(tmp_path / "many.csv"), "--db", db).exit_code == 0
    at = ("--at", "2026-03-05T12:00:00+00:00")
    table = invoke("due", "--db", db, *at).stdout
    assert table.count(" lead ") == 500
    assert "520 follow-ups due, 520 overdue." in table
    assert "The table shows the first 500: --limit N shows more" in table
    assert invoke("due", "--db", db, *at, "--limit", "510").stdout.count(" lead ") == 510
    assert len(invoke("due", "--db", db, *at, "--format", "csv").stdout.splitlines()) == 521
    chicago = invoke("due", "--db", db, *at, "--timezone", "America/Chicago", "--limit", "1")
    assert "due (America/Chicago)" in chicago.stdout
    assert "2026-03-02 03:00" in chicago.stdout  # 09:00 UTC, CST (UTC-6)
