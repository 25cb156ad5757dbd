"""Charts and periods audit: a report's SVG is well-formed XML whatever the names hold
(U+FFFF, U+FFFE, lone surrogates, a quote in an attribute) and a name's bidi controls
do not reorder the rest of its line; a count of the chart by group stays inside its
panel however many digits it has; whole months (and days) are compared with the months
(and days) before when the bounds carry two tzinfo objects (two offsets, or
``timezone.utc`` and ``ZoneInfo("UTC")``)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import person
from leadfunnel import Funnel, FunnelReport, GroupBy, Lead, SqlRepository
from leadfunnel._charts import Bar, Callout, Panel, funnel_chart, small_multiples, text_width
from leadfunnel._cli import main
from leadfunnel._periods import previous_period
from leadfunnel._reports import _steps, build_report
from leadfunnel.testing import ManualClock

SVG = "{http://www.w3.org/2000/svg}"
T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)
PARIS = ZoneInfo("Europe/Paris")
WINTER, SUMMER = timezone(timedelta(hours=1)), timezone(timedelta(hours=2))
#: The bidi embeddings, overrides and isolates, which a chart must not draw.
BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")


def texts(svg: str) -> list[str]:
    """Every text of ``svg``, parsed: a file that is not well-formed XML fails here."""
    return [t.text or "" for t in ET.fromstring(svg).iter(f"{SVG}text")]


def weak_setter(funnel: Funnel, n: int, setter: str, **fields: object) -> None:
    """A deal set by ``setter`` that did not stick (a no-show)."""
    lead = funnel.capture(Lead(**person(n, **fields)))
    funnel.qualify(lead, force=True)
    funnel.touch(lead, "call", "connected")
    funnel.lose(funnel.set_appointment(lead, owner=setter, setter=setter), reason="no_show")


# --- 1. the SVG is well-formed whatever the names hold ------------------------------------


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_a_name_holding_a_noncharacter_gives_a_well_formed_svg(store: str, tmp_path: Path) -> None:
    repository = SqlRepository(f"sqlite:///{tmp_path / 'f.db'}") if store == "sqlite" else None
    clock = ManualClock(T0)
    funnel = Funnel(repository, clock=clock)
    sources = {"webinar\uffff": "sam\uffff", "ads\ufffe": "kim\ufffe", "referral": "lee"}
    for n, (source, setter) in enumerate(sources.items()):
        weak_setter(funnel, n, setter, source=source)
    clock.advance(days=7)
    shown: dict[GroupBy, set[str]] = {
        "source": {"webinar", "ads", "referral"},
        "owner": {"sam", "kim", "lee"},
        "setter": {"sam", "kim", "lee"},
    }
    for by, names in shown.items():
        drawn = texts(build_report(funnel.repository, by=by, now=clock.now()).to_svg())
        assert names <= set(drawn), by
        assert not any(set(t) & {"\ufffe", "\uffff"} for t in drawn), by
    drawn = texts(build_report(funnel.repository, now=clock.now()).to_svg())
    assert any(t.endswith("kim (0% sat), lee (0% sat), sam (0% sat)") for t in drawn), drawn
    texts(funnel.compare(T0 - timedelta(days=7), T0 + timedelta(days=7)).to_svg())
    funnel.repository.close()


def test_the_command_line_writes_a_well_formed_svg_to_a_file_and_an_ascii_output(
    tmp_path: Path,
) -> None:
    """On an output that cannot write the names the CLI writes character references
    (``&#24352;``): none may stand for a character XML does not allow (``&#65535;``)."""
    url = f"sqlite:///{tmp_path / 'f.db'}"
    funnel = Funnel(SqlRepository(url), clock=ManualClock(T0))
    funnel.capture(Lead(**person(1, source='webinar\uffff 张伟 "q" <b>')))
    funnel.repository.close()
    chart = tmp_path / "chart.svg"
    done = CliRunner().invoke(
        main, ["report", "--db", url, "--by", "source", "--format", "svg", "-o", str(chart)]
    )
    assert done.exit_code == 0, done.output
    assert 'webinar 张伟 "q" <b>' in texts(chart.read_text(encoding="utf-8"))
    done = CliRunner(charset="ascii").invoke(
        main, ["report", "--db", url, "--by", "source", "--format", "svg"]
    )
    assert done.exit_code == 0, done.output
    assert done.output.isascii()
    assert "&#24352;" in done.output
    assert 'webinar 张伟 "q" <b>' in texts(done.output)


def test_a_quote_in_the_period_goes_into_the_aria_label_escaped() -> None:
    zone = timezone(timedelta(hours=1), 'CET "winter"')
    since, until = datetime(2026, 3, 1, tzinfo=zone), datetime(2026, 4, 1, tzinfo=zone)
    funnel = Funnel(clock=ManualClock(T0))
    for svg in (
        funnel.report(since=since, until=until).to_svg(),
        funnel.report(since=since, until=until, by="source").to_svg(),
        funnel.compare(since, until).to_svg(),
    ):
        label = ET.fromstring(svg).get("aria-label", "")
        assert '2026-03-01 to 2026-03-31 (CET "winter")' in label, label


@settings(max_examples=150, deadline=None)
@given(name=st.text(st.characters(exclude_categories=()), max_size=40))
def test_any_text_gives_a_well_formed_svg(name: str) -> None:
    """Any code point (controls, lone surrogates, noncharacters) in any text a chart
    draws: the file encodes as UTF-8 and parses."""
    bars = [Bar(name, name, 3, name)]
    for svg in (
        funnel_chart(
            title=name,
            period=name,
            note=name,
            tiles=[],
            bars=bars,
            callout=Callout(name, [name]),
        ),
        small_multiples(
            title=name,
            period=name,
            note=name,
            tiles=[],
            panels=[Panel(name, name, bars), Panel(name + "x", name, bars)],
            callout=None,
        ),
    ):
        ET.fromstring(svg.encode("utf-8"))
        assert not BIDI.search(svg)


def test_a_setters_bidi_override_does_not_reverse_the_rest_of_the_call_out() -> None:
    clock = ManualClock(T0)
    funnel = Funnel(clock=clock)
    for n, setter in enumerate(["alex\u202e", "alex\u202e", "sam\u2067", "sam\u2067"]):
        weak_setter(funnel, n, setter)
    clock.advance(days=7)  # the appointments are past: the setters are measured
    drawn = texts(build_report(funnel.repository, now=clock.now()).to_svg())
    line = next(t for t in drawn if t.startswith("Setters whose"))
    assert line.endswith("alex (0% sat), sam (0% sat)"), line
    panels = texts(build_report(funnel.repository, by="setter", now=clock.now()).to_svg())
    assert {"alex", "sam"} <= set(panels)
    assert not any(BIDI.search(t) for t in drawn + panels)


# --- 2. a count stays inside its panel -----------------------------------------------------


def _funnel_of(raw: int) -> FunnelReport:
    return FunnelReport(
        steps=_steps(
            {"raw": raw, "qualified": raw // 2, "appointment_set": raw // 5, "won": raw // 10}
        )
    )


@pytest.mark.parametrize("largest", [1_250_000, 9_999_999_999, 12_345])
def test_a_count_of_many_digits_stays_inside_its_panel(largest: int) -> None:
    groups: dict[str | None, FunnelReport] = {
        "webinar": _funnel_of(largest),
        "ads": _funnel_of(800),
        "referral": _funnel_of(11),
    }
    whole = FunnelReport(steps=_steps({"raw": largest + 811}), by="source", groups=groups)
    root = ET.fromstring(whole.to_svg())
    panels = [r for r in root.iter(f"{SVG}rect") if r.get("stroke") and r.get("fill") == "#ffffff"]
    assert len(panels) == 3
    counts = [
        t
        for t in root.iter(f"{SVG}text")
        if re.fullmatch(r"[\d,]+", t.text or "") and t.get("font-size") == "11.5"
    ]
    assert f"{largest:,}" in {t.text for t in counts}
    for count in counts:
        x, y = float(count.get("x", 0)), float(count.get("y", 0))
        end = x + text_width(count.text or "", 11.5, bold=True)
        panel = next(
            p
            for p in panels
            if float(p.get("x", 0)) <= x <= float(p.get("x", 0)) + float(p.get("width", 0))
            and float(p.get("y", 0)) <= y <= float(p.get("y", 0)) + float(p.get("height", 0))
        )
        right = float(panel.get("x", 0)) + float(panel.get("width", 0))
        assert end <= right, f"{count.text!r} ends at {end:.0f}, its panel at {right:.0f}"


# --- 3. whole months and days, whatever the tzinfo objects ----------------------------------


@pytest.mark.parametrize(
    ("since", "until", "start"),
    [
        # Paris March as offsets (ISO text, --since/--until with offsets): February.
        (datetime(2026, 3, 1, tzinfo=WINTER), datetime(2026, 4, 1, tzinfo=SUMMER), (2026, 2, 1)),
        # Paris October to December as offsets: the quarter before, on since's clock.
        (datetime(2026, 10, 1, tzinfo=SUMMER), datetime(2027, 1, 1, tzinfo=WINTER), (2026, 7, 1)),
        # The same zone, two tzinfo objects.
        (
            datetime(2026, 3, 1, tzinfo=UTC),
            datetime(2026, 4, 1, tzinfo=ZoneInfo("UTC")),
            (2026, 2, 1),
        ),
        (datetime(2026, 3, 1, tzinfo=PARIS), datetime(2026, 4, 1, tzinfo=SUMMER), (2026, 2, 1)),
        # A week across the change to summer time, as offsets: Monday to Monday.
        (datetime(2026, 3, 23, tzinfo=WINTER), datetime(2026, 3, 30, tzinfo=SUMMER), (2026, 3, 16)),
    ],
)
def test_whole_months_and_days_are_read_on_each_bounds_own_clock(
    since: datetime, until: datetime, start: tuple[int, int, int]
) -> None:
    assert previous_period(since, until) == (datetime(*start, tzinfo=since.tzinfo), since)


def test_other_periods_keep_their_length_and_a_mixed_day_is_never_empty() -> None:
    hours = (datetime(2026, 3, 2, 9, tzinfo=WINTER), datetime(2026, 3, 2, 17, tzinfo=SUMMER))
    start, end = previous_period(*hours)
    assert end - start == hours[1] - hours[0] == timedelta(hours=7)
    # Midnight on the same day on both clocks, 26 hours apart: not a whole day before it.
    far = (
        datetime(2026, 3, 1, tzinfo=timezone(timedelta(hours=14))),
        datetime(2026, 3, 1, tzinfo=timezone(timedelta(hours=-12))),
    )
    start, end = previous_period(*far)
    assert end - start == timedelta(hours=26)


def test_compare_of_paris_march_as_offsets_is_with_february() -> None:
    funnel = Funnel(clock=ManualClock(T0))
    march = funnel.compare(
        datetime.fromisoformat("2026-03-01T00:00:00+01:00"),
        datetime.fromisoformat("2026-04-01T00:00:00+02:00"),
    )
    assert march.current.period == "2026-03-01 to 2026-03-31 (UTC+01:00/UTC+02:00)"
    assert march.previous.period == "2026-02-01 to 2026-02-28 (UTC+01:00)"
    utc = funnel.compare(
        datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=ZoneInfo("UTC"))
    )
    assert utc.previous.period == "2026-02-01 to 2026-02-28"


def test_the_command_line_compares_paris_march_as_offsets_with_february(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'f.db'}"
    clock = ManualClock(datetime(2026, 2, 10, 9, tzinfo=UTC))
    funnel = Funnel(SqlRepository(url), clock=clock)
    funnel.capture(Lead(**person(1)))  # February's
    clock.set(datetime(2026, 3, 10, 9, tzinfo=UTC))
    for n in (2, 3):
        funnel.capture(Lead(**person(n)))  # March's
    funnel.repository.close()
    done = CliRunner().invoke(
        main,
        [
            "report",
            "--db",
            url,
            "--since",
            "2026-03-01T00:00:00+01:00",
            "--until",
            "2026-04-01T00:00:00+02:00",
            "--compare",
        ],
    )
    assert done.exit_code == 0, done.output
    assert "previous period: 2026-02-01 to 2026-02-28 (UTC+01:00)" in done.output
    raw = next(line.split() for line in done.output.splitlines() if line.lstrip().startswith("raw"))
    assert raw[1:3] == ["2", "1"]
