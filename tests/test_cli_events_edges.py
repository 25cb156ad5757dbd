"""``leadfunnel events`` at its edges: a feed longer than a page is printed whole,
``--limit`` means at most N events (with ``--follow`` too), bad options are one-line
usage errors, and a reader that goes away (``| head``) stops the command quietly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from leadfunnel import Funnel, SqlRepository
from leadfunnel._cli import main

FEED = 2500  # longer than the 1000 events the command used to stop at


def run(*args: str) -> tuple[int, str, str]:
    done = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return done.exit_code, done.stdout, done.stderr


def positions(out: str) -> list[int]:
    return [json.loads(line)["position"] for line in out.splitlines()]


def leadfunnel(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "leadfunnel", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database whose feed holds FEED events (one import each), read-only in tests."""
    url = f"sqlite:///{tmp_path_factory.mktemp('feed') / 'crm.db'}"
    Funnel(SqlRepository(url)).import_leads(
        [{"first_name": f"Q{i}", "email": f"q{i}@x.example.com"} for i in range(FEED)]
    )
    return url


def test_the_whole_feed_is_printed(db: str) -> None:
    code, out, err = run("events", "--db", db)
    assert (code, err) == (0, "")
    assert positions(out) == list(range(1, FEED + 1))


def test_after_pages_from_its_position(db: str) -> None:
    code, out, _ = run("events", "--db", db, "--after", "700")
    assert code == 0
    assert positions(out) == list(range(701, FEED + 1))


def test_limit_is_at_most_n_events(db: str) -> None:
    code, out, _ = run("events", "--db", db, "--limit", "1500")
    assert code == 0
    assert positions(out) == list(range(1, 1501))
    code, out, _ = run("events", "--db", db, "--after", f"{FEED - 3}", "--limit", "10")
    assert code == 0
    assert positions(out) == [FEED - 2, FEED - 1, FEED]


def test_limit_with_follow_stops_after_n_events(db: str) -> None:
    """``--limit`` is not the page size with ``--follow``: the command stops after N."""
    args = ["events", "--db", db, "--after", "10", "--limit", "3", "--follow"]
    follower = leadfunnel(*args, "--interval", "0.05")
    try:
        out, err = follower.communicate(timeout=60)
    finally:
        follower.kill()
    assert (follower.returncode, err) == (0, "")
    assert positions(out) == [11, 12, 13]


def test_follow_prints_new_events_as_they_commit(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'live.db'}"
    funnel = Funnel(SqlRepository(url))
    funnel.import_leads([{"first_name": "Ann", "email": "ann@x.example.com"}])
    follower = leadfunnel(
        "events", "--db", url, "--after", "1", "--limit", "2", "--follow", "--interval", "0.05"
    )
    try:
        funnel.import_leads(
            [
                {"first_name": "Bo", "email": "bo@x.example.com"},
                {"first_name": "Cy", "email": "cy@x.example.com"},
            ]
        )
        out, err = follower.communicate(timeout=60)
    finally:
        follower.kill()
    assert (follower.returncode, err) == (0, "")
    assert positions(out) == [2, 3]


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--interval", "-1"),
        ("--interval", "0"),
        ("--interval", "nan"),
        ("--interval", "inf"),
        ("--after", "-1"),
        ("--limit", "0"),
    ],
)
def test_bad_options_are_one_line_usage_errors(db: str, option: str, value: str) -> None:
    code, out, err = run("events", "--db", db, option, value)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith(f"leadfunnel: error: Invalid value for '{option}'")
    assert "Traceback" not in err


def test_a_huge_after_prints_nothing(db: str) -> None:
    for after in (2**63 - 1, 2**70):
        code, out, err = run("events", "--db", db, "--after", str(after))
        assert (code, out, err) == (0, "", "")


def test_every_option_has_a_help_text() -> None:
    command = main.commands["events"]
    options = [p for p in command.params if isinstance(p, click.Option)]
    assert {o.name for o in options} >= {"db", "after", "limit", "follow", "interval"}
    for option in options:
        assert option.help, option.name


def test_events_stop_quietly_when_the_reader_goes_away(db: str) -> None:
    """``leadfunnel events | head -1``: status 141, as a shell's SIGPIPE gives, and no
    "Broken pipe" error."""
    reader = leadfunnel("events", "--db", db)
    assert reader.stdout is not None
    assert reader.stderr is not None
    first = reader.stdout.readline()
    reader.stdout.close()  # head has its line and exits
    assert reader.wait(timeout=60) == 141
    assert reader.stderr.read() == ""
    reader.stderr.close()
    assert json.loads(first)["position"] == 1


@pytest.mark.parametrize("command", [["report"], ["list", "never_booked", "--format", "json"]])
def test_other_commands_stop_quietly_when_the_reader_goes_away(db: str, command: list[str]) -> None:
    reader = leadfunnel(*command, "--db", db)
    assert reader.stdout is not None
    assert reader.stderr is not None
    reader.stdout.close()  # gone before the command writes anything
    assert reader.wait(timeout=60) == 141
    assert reader.stderr.read() == ""
    reader.stderr.close()
