"""Report charts: what the SVG says (period, conversion, money, alerts), small multiples
on one scale, and WCAG AA contrast for every text against what is behind it."""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import person
from leadfunnel import Funnel, FunnelReport, InvalidArgumentError, Lead
from leadfunnel._charts import INK, SHADES, contrast, text_colour
from leadfunnel._reports import build_report
from leadfunnel.testing import ManualClock

SVG = "{http://www.w3.org/2000/svg}"
MONDAY = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def deal(funnel: Funnel, n: int, *, until: str = "won", amount: int = 10_000, **fields: Any) -> Any:
    """A lead taken as far as ``until`` (a stage reached), deals set by ``setter``."""
    setter = fields.pop("setter", "sue")
    lead = funnel.capture(Lead(**person(n, **fields)))
    funnel.qualify(lead, force=True)
    funnel.touch(lead, "call", "connected")
    if until == "qualified":
        return lead
    opportunity = funnel.set_appointment(lead, owner="sam", setter=setter)
    if until == "no_show":
        return funnel.lose(opportunity, reason="no_show")
    for step in (funnel.sit, funnel.propose, funnel.send_contract):
        opportunity = step(opportunity)
        if opportunity.stage == until:
            return opportunity
    return funnel.win(opportunity, amount=amount)


def sample(clock: ManualClock) -> Funnel:
    """Two weeks of a funnel with wins, an open priced deal, a weak setter and a lead
    nobody called: enough for every tile and every alert."""
    funnel = Funnel(clock=clock)
    for n in range(6):
        deal(funnel, n, amount=20_000 + 500 * n, source="webinar")
    contract = deal(funnel, 10, until="contract_sent", source="ads")
    funnel.update(contract.model_copy(update={"amount": 7_500}))
    deal(funnel, 11, until="proposing", source="ads")  # open, no amount
    for n in (20, 21, 22):
        deal(funnel, n, until="no_show", setter="cas", source="ads")
    for n in range(30, 40):
        funnel.disqualify(funnel.capture(Lead(**person(n, source="bought-list"))))
    clock.advance(days=7)
    return funnel


def report_of(funnel: Funnel, **options: Any) -> FunnelReport:
    """The funnel's report, made at the funnel clock's time (``Funnel.report`` takes
    the system's)."""
    return build_report(funnel.repository, now=funnel.clock.now(), **options)


def texts(svg: str) -> list[str]:
    return [t.text or "" for t in ET.fromstring(svg).iter(f"{SVG}text")]


def _inside(rect: ET.Element, x: float, y: float) -> bool:
    left, top = float(rect.get("x", 0)), float(rect.get("y", 0))
    width, height = float(rect.get("width", 0)), float(rect.get("height", 0))
    return left <= x <= left + width and top <= y <= top + height


def assert_readable(svg: str) -> list[tuple[str, str, str, float]]:
    """Every text of ``svg`` against the topmost shape drawn before it under its
    anchor: at least 4.5:1 (WCAG AA for normal text). Returns (text, colour,
    background, ratio) for each, for further checks."""
    root = ET.fromstring(svg)
    assert not any(e.get("transform") for e in root.iter()), (
        "coordinates must be absolute for this check"
    )
    drawn: list[ET.Element] = []
    seen = []
    for element in root:
        if element.tag == f"{SVG}rect":
            drawn.append(element)
        elif element.tag == f"{SVG}text":
            x, y = float(element.get("x", 0)), float(element.get("y", 0))
            size = float(element.get("font-size", 13))
            anchor = element.get("text-anchor", "start")
            probe_x = x + 2 if anchor == "start" else (x - 2 if anchor == "end" else x)
            probe_y = y - size / 3  # the middle of the letters, above the baseline
            behind = next(r for r in reversed(drawn) if _inside(r, probe_x, probe_y))
            colour, background = element.get("fill", "#000000"), behind.get("fill", "")
            ratio = contrast(colour, background)
            assert ratio >= 4.5, f"{element.text!r}: {colour} on {background} is {ratio:.2f}:1"
            seen.append((element.text or "", colour, background, ratio))
    assert seen
    return seen


def test_contrast_follows_wcag() -> None:
    assert contrast("#ffffff", "#000000") == pytest.approx(21)
    assert contrast("#777777", "#777777") == pytest.approx(1)
    # The case: white on the light "Contracts sent" blue is unreadable.
    assert contrast("#ffffff", "#93c7e4") < 3
    assert text_colour("#93c7e4") == INK
    assert text_colour(SHADES[0]) == "#ffffff"
    for shade in SHADES:
        assert contrast(text_colour(shade), shade) >= 4.5, shade


def test_the_chart_shows_dates_conversion_money_and_what_needs_attention() -> None:
    clock = ManualClock(MONDAY)
    funnel = sample(clock)
    midnight = MONDAY.replace(hour=0)
    report = report_of(funnel, since=midnight, until=midnight + timedelta(days=7))
    svg = report.to_svg()
    words = texts(svg)
    assert "2026-03-02 to 2026-03-08" in words  # the period, its last day included
    assert words[words.index("Raw leads to won") + 1] == "28.6%"
    assert "6 won of 21 raw leads" in words
    assert words[words.index("Won revenue") + 1] == "127,500"
    assert "6 deals won" in words
    assert words[words.index("Open pipeline (now)") + 1] == "7,500"
    assert "2 open deals, 1 unpriced" in words
    alerts = words[words.index("Needs attention") + 1 :]
    assert alerts == [
        "Appointments sat / due: 73% (expect >= 90%)",
        "Won / contracts sent: 86% (expect >= 90%)",
        "Average touches per qualified lead: 1.0 (expect >= 2 (the study's average: 1.3))",
        "Setters whose appointments don't stick: cas (0% sat)",
    ]
    assert all("the start" not in w and w != "now" for w in words)


def test_every_text_meets_wcag_aa_and_counts_inside_light_bars_are_dark() -> None:
    clock = ManualClock(MONDAY)
    report = report_of(sample(clock))
    seen = assert_readable(report.to_svg())
    on_bars = {(text, background) for text, _, background, _ in seen if background in SHADES}
    assert ("7", SHADES[5]) in on_bars  # contracts sent: the light bar, with dark text
    assert ("21", SHADES[0]) in on_bars  # raw leads: white on the dark bar
    colours = {background: colour for _, colour, background, _ in seen}
    assert colours[SHADES[5]] == INK
    assert colours[SHADES[0]] == "#ffffff"


def test_an_open_period_names_the_first_lead_and_the_day_the_report_was_made() -> None:
    clock = ManualClock(MONDAY)
    report = report_of(sample(clock))
    assert report.period == "2026-03-02 (first lead) to 2026-03-09 (today)"
    assert report.title == "Funnel report, 2026-03-02 (first lead) to 2026-03-09 (today)"
    assert report.period in texts(report.to_svg())
    empty = Funnel(clock=ManualClock(MONDAY))
    assert report_of(empty).period == "the start to 2026-03-02 (today)"


def test_a_quiet_period_says_there_is_nothing_to_measure() -> None:
    clock = ManualClock(MONDAY)
    report = report_of(sample(clock), since=MONDAY - timedelta(days=30), until=MONDAY)
    assert report.period == "2026-01-31 09:00 UTC up to 2026-03-02 09:00 UTC"
    words = texts(report.to_svg())
    assert "Health checks: nothing to measure in this period yet" in words
    assert "Needs attention" not in words
    assert_readable(report.to_svg())


def test_groups_are_small_multiples_on_one_scale() -> None:
    clock = ManualClock(MONDAY)
    report = report_of(sample(clock), by="source")
    svg = report.to_svg()
    assert_readable(svg)
    words = texts(svg)
    assert "Funnel report, by source" in words
    assert [w for w in words if w in ("ads", "bought-list", "webinar")] == [
        "ads",
        "bought-list",
        "webinar",
    ]
    assert "raw to won 100.0%, won 127,500" in words  # webinar: 6 of 6
    assert "raw to won 0.0%, won 0" in words
    bars = {
        rect.findtext(f"{SVG}title", ""): float(rect.get("width", 0))
        for rect in ET.fromstring(svg).iter(f"{SVG}rect")
        if rect.find(f"{SVG}title") is not None
    }
    assert bars["bought-list, Raw leads: 10"] == pytest.approx(
        2 * bars["ads, Appointments set: 5"], abs=0.2
    )
    assert bars["webinar, Won: 6"] == pytest.approx(bars["webinar, Raw leads: 6"], abs=0.2)
    per_lead = {title: width / int(title.rsplit(" ", 1)[1]) for title, width in bars.items()}
    assert max(per_lead.values()) == pytest.approx(min(per_lead.values()), abs=0.05)
    assert "bought-list, Qualified leads: 0" not in bars  # no bar for nobody


def test_more_groups_than_fit_are_refused_not_squeezed() -> None:
    clock = ManualClock(MONDAY)
    funnel = Funnel(clock=clock)
    for n in range(25):
        funnel.capture(Lead(**person(n, source=f"source-{n:02d}")))
    with pytest.raises(InvalidArgumentError, match="25 groups are too many to draw") as info:
        funnel.report(by="source").to_svg()
    assert "use the CSV or JSON output" in str(info.value)
    report = funnel.report(by="source")
    assert len(report.groups) == 25  # the figures are all there, in every other output
    assert report.to_csv(groups=True).count("source-24") == 7
    assert funnel.report(by="month").to_svg().startswith("<svg")


def test_names_from_the_data_are_escaped() -> None:
    funnel = Funnel(clock=ManualClock(MONDAY))
    funnel.capture(Lead(**person(1, source='<b>"Tom & Jerry"</b>')))
    svg = funnel.report(by="source").to_svg()
    assert '<b>"Tom & Jerry"</b>' in texts(svg)
    assert "<b>" not in svg


def _group(report: FunnelReport, key: str | None) -> FunnelReport:
    return report.groups[key]


def test_groups_carry_their_own_won_revenue() -> None:
    clock = ManualClock(MONDAY)
    funnel = sample(clock)
    by_source = funnel.report(by="source")
    assert _group(by_source, "webinar").won_revenue == 127_500
    assert _group(by_source, "ads").won_revenue == 0
    by_setter = funnel.report(by="setter")
    assert _group(by_setter, "sue").won_deals == 6
    assert _group(by_setter, None).won_deals == 0


@pytest.mark.skipif(shutil.which("rsvg-convert") is None, reason="needs librsvg2-bin")
def test_the_charts_render_to_png(tmp_path: Path) -> None:
    clock = ManualClock(MONDAY)
    funnel = sample(clock)
    for name, svg in {
        "one": funnel.report().to_svg(),
        "groups": funnel.report(by="setter").to_svg(),
        "compare": funnel.compare(MONDAY, MONDAY + timedelta(days=7)).to_svg(),
    }.items():
        source = tmp_path / f"{name}.svg"
        source.write_text(svg, encoding="utf-8")
        done = subprocess.run(
            ["rsvg-convert", str(source), "-o", str(tmp_path / f"{name}.png")],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert (tmp_path / f"{name}.png").read_bytes().startswith(b"\x89PNG")


def test_long_names_and_large_sums_stay_inside_their_boxes_whole() -> None:
    """A 200-character setter name in the call-out is broken to fit its box (it ran off
    the canvas), a sum of fourteen digits is drawn whole in a smaller size (it was cut
    to "100,000,000,0…"), and full-width names are measured as wide as they are."""
    from leadfunnel._charts import text_width

    clock = ManualClock(MONDAY)
    funnel = Funnel(clock=clock)
    deal(funnel, 1, amount=99_999_999_999_999, setter="S" * 200)
    for n in (2, 3):
        deal(funnel, n, until="no_show", setter="S" * 200)
    clock.advance(days=7)
    svg = report_of(funnel).to_svg()
    root = ET.fromstring(svg)
    assert "99,999,999,999,999" in texts(svg)  # the revenue tile, whole
    canvas = float(root.get("width", 0))
    callout = [r for r in root.iter(f"{SVG}rect") if r.get("fill") == "#fdeceb"]
    assert callout, "the call-out names the setter"
    right = float(callout[-1].get("x", 0)) + float(callout[-1].get("width", 0))
    names = [t for t in root.iter(f"{SVG}text") if "SSSS" in (t.text or "")]
    assert len(names) >= 3  # broken over several lines
    for line in names:
        end = float(line.get("x", 0)) + text_width(line.text or "", float(line.get("font-size", 0)))
        assert end <= right <= canvas
    assert text_width("日本語", 10) == 30.0
    assert text_width("abc", 10) == 18.0


@settings(max_examples=150, deadline=None)
@given(
    text=st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=300),
    width=st.floats(min_value=20, max_value=400),
)
def test_text_is_cut_and_broken_to_fit_its_width(text: str, width: float) -> None:
    """``_fit`` and ``_wrap`` measure each character once (linear in the text's
    length): every line they give fits, and nothing is lost but the cut."""
    from leadfunnel._charts import _fit, _wrap, text_width

    size = 10.0
    fitted = _fit(text, width, size)
    assert fitted == text or (
        fitted.endswith("…") and text.startswith(fitted[:-1]) and len(fitted) >= 2
    )
    if len(fitted) > 2:  # one character and the ellipsis always stand
        assert text_width(fitted, size) <= width + 1e-9
    lines = _wrap(text, width, size)
    assert "".join(lines).replace(" ", "") == "".join(text.split())
    assert all(text_width(line, size) <= width + 1e-9 or len(line) == 1 for line in lines)


def test_a_long_note_is_cut_in_linear_time() -> None:
    from leadfunnel._charts import _fit, _wrap

    word = "x" * 32_000
    assert len(_fit(word, 100, 10)) < 20
    assert len(_wrap(word, 100, 10)) > 1_000  # measured once a character, not per cut
