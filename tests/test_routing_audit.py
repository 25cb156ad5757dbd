"""Routing audit: today's counts survive a restart whatever the leads' created_at (the
arrival event records the owner and day each lead was given on), attach() called again
takes in other processes' leads, only leads to be called take owners and capacity (a
suspect is routed when it responds), and configurations that could never work are
refused."""

from __future__ import annotations

import json
import re
import shlex
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from conftest import person
from leadfunnel import (
    ConfigError,
    Event,
    Funnel,
    InMemoryRepository,
    Lead,
    OwnerGroup,
    Repository,
    Route,
    RoutingRules,
    SqlRepository,
)
from leadfunnel._cli import main
from leadfunnel.testing import ManualClock

MONDAY = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LAST_YEAR = "2025-01-05T10:00:00+00:00"


def lead(n: int, **fields: Any) -> Lead:
    return Lead(**person(n, **fields))


def rules(**capacity: int) -> RoutingRules:
    group = OwnerGroup("in", ["ana", "ben"], backup="dee", capacity=capacity or None)
    return RoutingRules([group], default="in")


def started(
    repository: Repository, clock: ManualClock, make: Callable[[], RoutingRules]
) -> tuple[Funnel, RoutingRules]:
    """A process starting on ``repository``: a new router, attached to a new funnel."""
    router = make()
    funnel = Funnel(repository, clock=clock, router=router)
    router.attach(funnel)
    return funnel, router


# --- 1. a restart counts the leads given today, whatever their created_at -----------


def test_a_restart_counts_an_import_of_old_crm_rows_given_out_today(
    repository: Repository,
) -> None:
    clock = ManualClock(MONDAY)
    make = lambda: rules(ana=2, ben=2, dee=1)  # noqa: E731
    funnel, live = started(repository, clock, make)
    report = funnel.import_leads(
        [{"email": f"old{n}@crm{n}.example.com", "created_at": LAST_YEAR} for n in range(3)]
    )
    assert [funnel.get_lead(i).owner for i in report.added] == ["ana", "ben", "ana"]
    assert live.assigned_today() == {"ana": 2, "ben": 1}

    clock.set(MONDAY + timedelta(hours=3))
    restarted_funnel, restarted = started(repository, clock, make)  # a restart at noon
    assert restarted.assigned_today() == {"ana": 2, "ben": 1}
    # Ana is full: the restarted process knows it, as the live one does.
    assert [restarted_funnel.capture(lead(n)).owner for n in range(2)] == ["ben", "dee"]
    again, after = started(repository, clock, make)
    assert after.assigned_today() == {"ana": 2, "ben": 2, "dee": 1}
    assert again.capture(lead(9)).owner is None  # everyone is full, after a restart too


def test_a_restart_counts_a_capture_dated_yesterday_but_routed_today(
    repository: Repository,
) -> None:
    clock = ManualClock(datetime(2026, 3, 3, 0, 30, tzinfo=UTC))
    make = lambda: rules(ana=1, ben=0, dee=5)  # noqa: E731
    funnel, live = started(repository, clock, make)
    late = funnel.capture(lead(1), at=datetime(2026, 3, 2, 23, 50, tzinfo=UTC))
    assert (late.owner, live.assigned_today()) == ("ana", {"ana": 1})
    again, restarted = started(repository, clock, make)
    assert restarted.assigned_today() == {"ana": 1}
    assert again.capture(lead(2)).owner == "dee"  # ana is full, as the live router knows


def test_the_arrival_event_records_the_owner_and_day_it_counts_against() -> None:
    clock = ManualClock(MONDAY)
    router = rules(ana=5)
    funnel = Funnel(clock=clock, router=router)
    captured = funnel.capture(lead(1))
    added = funnel.add(lead(2, owner="ana"))  # given by hand, created today: counted
    report = funnel.import_leads([{**person(3), "created_at": LAST_YEAR}])
    uncounted = funnel.add(lead(4, owner="zed"))  # zed has no capacity
    today = {"owner": "ana", "day": "2026-03-02"}
    assert funnel.history(captured)[0].data == {"routed": today}
    assert funnel.history(added)[0].data == {"routed": today}
    [imported] = report.added
    assert funnel.history(imported)[0].data == {"routed": {"owner": "ben", "day": "2026-03-02"}}
    assert funnel.history(uncounted)[0].data == {}


def test_a_qualified_import_records_its_routing_once() -> None:
    funnel = Funnel(clock=ManualClock(MONDAY), router=rules(ana=5))
    report = funnel.import_leads([{**person(1), "status": "qualified"}], carry_over=True)
    history = funnel.history(report.added[0])
    assert [e.dest for e in history] == ["raw", "qualified"]
    assert [e.data for e in history] == [{"routed": {"owner": "ana", "day": "2026-03-02"}}, {}]


def _watching(read: list[int]) -> type[Funnel]:
    """A funnel class that notes in ``read`` the position of every event it reads."""

    class Watched(Funnel):
        def events(self, after: int = 0, limit: int | None = 1000) -> list[Event]:
            found = super().events(after, limit)
            read.extend(e.position or 0 for e in found)
            return found

    return Watched


def test_attach_reads_only_the_feed_of_today() -> None:
    """Back to the first lead routed before today, and a page more: not the whole feed."""
    repository = InMemoryRepository()
    clock = ManualClock(MONDAY - timedelta(days=1))
    funnel, _ = started(repository, clock, lambda: rules(ana=5000))
    funnel.import_leads([{"email": f"p{n}@x{n}.example.com"} for n in range(5000)])
    clock.set(MONDAY)
    funnel.import_leads([{"email": f"q{n}@y{n}.example.com"} for n in range(3)])
    read: list[int] = []
    Watched = _watching(read)
    router = rules(ana=5000)
    router.attach(Watched(repository, clock=clock, router=router))
    assert router.assigned_today() == {"ana": 2}
    assert len(read) <= 3000 < repository.last_position()


def test_attach_reads_no_feed_when_no_owner_has_a_capacity() -> None:
    """Nothing to count without a capacity: a store's whole feed (all of it, when no
    lead was ever routed there before today) is not read for nothing."""
    repository = InMemoryRepository()
    clock = ManualClock(MONDAY)
    Funnel(repository, clock=clock).import_leads(
        [{"email": f"p{n}@x{n}.example.com"} for n in range(50)]
    )
    read: list[int] = []
    Watched = _watching(read)
    router = RoutingRules([OwnerGroup("in", ["ana", "ben"])], default="in")
    router.attach(Watched(repository, clock=clock, router=router))
    assert read == []


# --- 2. several processes: attach() again takes in what the others gave --------------


def test_attach_again_takes_in_the_leads_other_processes_gave(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    clock = ManualClock(MONDAY)
    make = lambda: rules(ana=2, dee=9)  # noqa: E731
    one, first = started(SqlRepository(url), clock, make)
    two, second = started(SqlRepository(url), clock, make)
    assert [one.capture(lead(n)).owner for n in range(3)] == ["ana", "ben", "ana"]
    # The second process has not heard: it would give ana a third lead.
    assert second.assigned_today() == {}
    second.attach(two)  # its periodic catch-up (only the events since its last read)
    assert second.assigned_today() == {"ana": 2}
    assert [two.capture(lead(n)).owner for n in (3, 4)] == ["ben", "ben"]
    first.attach(one)
    assert first.assigned_today()["ana"] == 2
    assert Counter(x.owner for x in one.leads()) == {"ana": 2, "ben": 3}


# --- 3. only leads to be called are routed; a suspect is when it responds ------------


def test_suspects_and_farm_lists_take_no_owner_and_no_capacity(repository: Repository) -> None:
    clock = ManualClock(MONDAY)
    funnel, router = started(repository, clock, lambda: rules(ana=3, ben=0, dee=2))
    report = funnel.import_leads(
        [{**person(n), "status": ("suspect", "farm_list", "unqualified")[n % 3]} for n in range(9)]
    )
    assert {funnel.get_lead(i).owner for i in report.added} == {None}
    assert router.assigned_today() == {}
    assert funnel.add(lead(20, status="suspect")).owner is None
    hot = funnel.capture(lead(21, interest="high"))
    assert hot.owner == "ana"  # the owners' day is theirs for people who asked


def test_a_suspect_that_responds_is_routed_and_counted(repository: Repository) -> None:
    clock = ManualClock(MONDAY)
    make = lambda: rules(ana=1, ben=0, dee=1)  # noqa: E731
    funnel, router = started(repository, clock, make)
    suspect = funnel.add(lead(1, status="suspect"))
    farmed = funnel.farm(funnel.add(lead(2, status="suspect")))
    clock.advance(days=1)
    responded = funnel.get_lead(funnel.capture(Lead(email=suspect.email, notes="call me")).id)
    assert (responded.status, responded.owner) == ("raw", "ana")
    assert funnel.history(responded)[-1].name == "respond"
    assert funnel.history(responded)[-1].data["routed"] == {"owner": "ana", "day": "2026-03-03"}
    by_hand = funnel.respond(farmed)  # a rep marks it: responded as well
    assert (by_hand.status, by_hand.owner) == ("raw", "dee")
    assert router.assigned_today() == {"ana": 1, "dee": 1}
    _, restarted = started(repository, clock, make)
    assert restarted.assigned_today() == {"ana": 1, "dee": 1}


def test_a_suspect_with_an_owner_keeps_it_and_counts_against_nobody() -> None:
    funnel = Funnel(clock=ManualClock(MONDAY), router=rules(ana=1))
    suspect = funnel.add(lead(1, status="suspect", owner="ben"))
    assert funnel.respond(suspect).owner == "ben"
    assert funnel.capture(lead(2)).owner == "ana"


def test_a_response_that_rolls_back_gives_the_owner_back(repository: Repository) -> None:
    funnel, router = started(repository, ManualClock(MONDAY), lambda: rules(ana=1, ben=0))
    suspect = funnel.add(lead(1, status="suspect"))
    owners: list[str | None] = []

    def respond_then_fail() -> None:
        with funnel.transaction():
            owners.append(funnel.capture(Lead(email=suspect.email)).owner)
            raise KeyError

    with pytest.raises(KeyError):
        respond_then_fail()
    assert owners == ["ana"]
    assert router.assigned_today() == {}
    assert funnel.get_lead(suspect.id).owner is None
    assert funnel.capture(lead(2)).owner == "ana"


# --- 4 and 7. configurations that could never work ----------------------------------


def test_an_unavailable_name_no_group_has_is_refused(tmp_path: Path) -> None:
    group = OwnerGroup("in", ["eve", "ana"], backup="dee")
    with pytest.raises(ConfigError) as info:
        RoutingRules([group], unavailable=["evee"])
    assert str(info.value) == (
        "routing: unavailable: no group has 'evee'; the groups' owners and backups: ana, dee, eve"
    )
    file = tmp_path / "routing.toml"
    file.write_text(
        'default = "in"\nunavailable = ["evee"]\n[[groups]]\nname = "in"\nowners = ["eve"]\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"no group has 'evee'.* eve$"):
        RoutingRules.from_toml(file)
    assert RoutingRules([group], unavailable=[" dee "]).unavailable == {"dee"}


@pytest.mark.parametrize(
    "key", ["countries", "regions", "postal_codes", "sources", "profiles", "tags"]
)
def test_a_route_condition_with_an_empty_list_is_refused(key: str) -> None:
    empty: dict[str, Any] = {key: []}
    with pytest.raises(ConfigError, match=f"route 'in': {key} is an empty list"):
        Route("in", **empty)
    data = {"groups": [{"name": "in", "owners": ["ana"]}], "routes": [{"group": "in", key: []}]}
    with pytest.raises(ConfigError) as info:
        RoutingRules.from_dict(data)
    assert str(info.value).startswith(f"routing: routes[0] ('in'): {key} is an empty list")
    assert f"leave {key} out to accept every lead" in str(info.value)


# --- 6. the command line reads routing and cadence files ----------------------------

DOCS = Path(__file__).resolve().parent.parent / "docs"
_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def routing_example() -> list[tuple[str, list[str]]]:
    """The ```console block of docs/cli.md marked ``<!-- routing-example -->``."""
    lines = (DOCS / "cli.md").read_text(encoding="utf-8").splitlines()
    start = lines.index("<!-- routing-example -->") + 1
    assert lines[start] == "```console"
    session: list[tuple[str, list[str]]] = []
    for text in lines[start + 1 : lines.index("```", start + 1)]:
        if text.startswith("$ "):
            session.append((text[2:], []))
        else:
            session[-1][1].append(text)
    return session


def test_the_routing_example_of_the_cli_page_runs_as_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    db = f"sqlite:///{tmp_path / 'docs.db'}"
    runner = CliRunner()
    for command, output in routing_example():
        program, *args = shlex.split(command)
        if program == "cat":
            Path(args[0]).write_text("\n".join(output) + "\n", encoding="utf-8")
            continue
        assert program == "leadfunnel"
        result = runner.invoke(main, [*args, "--db", db], catch_exceptions=False)
        if output and output[-1] == "(exit status 2)":
            assert result.exit_code == 2, result.output
            assert result.stderr.splitlines() == output[:-1], command
            continue
        assert result.exit_code == 0, result.output
        # The ids come from when the commands run.
        assert _ID.sub("<id>", result.stdout).splitlines() == [
            _ID.sub("<id>", line) for line in output
        ], command


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def test_due_escalates_with_routing_and_waits_as_the_cadence_file_says(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'crm.db'}"
    clock = ManualClock(MONDAY)
    funnel = Funnel(SqlRepository(db), clock=clock)
    funnel.capture(lead(1, owner="ana"))
    funnel.repository.close()
    (tmp_path / "routing.toml").write_text(
        '[[groups]]\nname = "in"\nowners = ["ana", "ben"]\nbackup = "carla"\n', encoding="utf-8"
    )
    (tmp_path / "cadence.toml").write_text("first_response_hours = 3\n", encoding="utf-8")
    at = ("--at", "2026-03-02T11:00:00+00:00", "--format", "json", "--db", db)
    [plain] = json.loads(cli("due", *at).stdout)
    assert (plain["overdue"], plain["escalated_to"]) == (True, None)
    routed = ("--routing", str(tmp_path / "routing.toml"))
    [escalated] = json.loads(cli("due", *at, *routed).stdout)
    assert (escalated["overdue"], escalated["escalated_to"]) == (True, "carla")
    [waiting] = json.loads(
        cli("due", *at, *routed, "--cadence", str(tmp_path / "cadence.toml")).stdout
    )
    assert (waiting["overdue"], waiting["escalated_to"]) == (False, None)


def test_import_routes_raw_leads_and_keeps_capacity_from_one_run_to_the_next(
    tmp_path: Path,
) -> None:
    db = f"sqlite:///{tmp_path / 'crm.db'}"
    routing = tmp_path / "routing.toml"
    routing.write_text(
        '[[groups]]\nname = "in"\nowners = ["ana"]\nbackup = "dee"\ncapacity = { ana = 2 }\n'
        '[[routes]]\ngroup = "in"\nsources = ["web"]\n',
        encoding="utf-8",
    )
    first = tmp_path / "first.csv"
    first.write_text(
        "email,source,status,created_at\n"
        "a@a.example.com,web,raw,2024-03-05\n"
        "b@b.example.com,web,suspect,2024-03-05\n"
        "c@c.example.com,fair,raw,2024-03-05\n",  # no route, no default: nobody's
        encoding="utf-8",
    )
    result = cli("import", str(first), "--routing", str(routing), "--db", db)
    assert result.exit_code == 0, result.output
    assert "Given to owners today: 1 to ana" in result.stdout.splitlines()
    second = tmp_path / "second.csv"
    second.write_text(
        "email,source\nd@d.example.com,web\ne@e.example.com,web\nf@f.example.com,web\n",
        encoding="utf-8",
    )
    result = cli("import", str(second), "--routing", str(routing), "--db", db)
    assert "Given to owners today: 2 to dee, 1 to ana" in result.stdout.splitlines()
    owners = {x.email: x.owner for x in Funnel(SqlRepository(db)).leads()}
    assert owners == {
        "a@a.example.com": "ana",
        "b@b.example.com": None,
        "c@c.example.com": None,
        "d@d.example.com": "ana",
        "e@e.example.com": "dee",
        "f@f.example.com": "dee",
    }
    result = cli("import", str(second), "--db", db)  # without --routing: no such line
    assert not [line for line in result.stdout.splitlines() if line.startswith("Given to owners")]


@pytest.mark.parametrize(
    ("command", "text", "message"),
    [
        (
            "due",
            'unavailable = ["evee"]\n',
            "--routing {f}: routing: unavailable: no group has 'evee'",
        ),
        ("import", "[[groups]]\nname = 'in'\nowners = []\n", "--routing {f}: routing: groups[0]"),
        ("import", "[[groups]\n", "routing file '{f}' is not valid TOML"),
        ("due", "grace_hours = nan\n", "--cadence {f}: cadence: grace_hours = nan must be"),
        (
            "due",
            "[business_hours]\ntimezone = 5\n",
            "--cadence {f}: cadence: business_hours.timezone",
        ),
    ],
)
def test_a_bad_routing_or_cadence_file_is_one_line_and_status_2(
    tmp_path: Path, command: str, text: str, message: str
) -> None:
    file = tmp_path / "config.toml"
    file.write_text(text, encoding="utf-8")
    option = "--cadence" if "--cadence" in message else "--routing"
    db = tmp_path / "never.db"
    before: list[str] = [str(tmp_path / "in.csv")] if command == "import" else []
    (tmp_path / "in.csv").write_text("email\na@a.example.com\n", encoding="utf-8")
    result = cli(command, *before, option, str(file), "--db", f"sqlite:///{db}")
    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("leadfunnel: error: " + message.format(f=file)), line
    assert not db.exists()  # refused before the database is opened (or made)
    missing = cli(command, *before, option, str(tmp_path / "nope.toml"), "--db", f"sqlite:///{db}")
    assert missing.exit_code == 2
    assert "does not exist" in missing.stderr
    assert not db.exists()
