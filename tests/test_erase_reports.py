"""An erasure leaves every report figure as it was (DESIGN.md section 13: "every event
... so every report reads the same before and after"), the no-shows included: an
erased person's open deal is lost with reason ``avoid`` (``suppress=True``), and the
appointment that did not sit is still counted as not sat, against its setter too.

A deal's lost reason says whether anybody should call it back (the rep lists leave
``avoid`` and ``unqualified`` out), not whether its appointment sat: a report judges
that by the deal's own history, so an ordinary ``lose(reason="avoid")`` of a deal whose
appointment came and went without sitting counts as a no-show too. On every backend in
``conftest``."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from conftest import person
from leadfunnel import Funnel, Lead, Opportunity
from leadfunnel.testing import ManualClock


def _booked(funnel: Funnel, clock: ManualClock, n: int, setter: str) -> Opportunity:
    lead = funnel.capture(Lead(**person(n)))
    funnel.qualify(lead, force=True)
    return funnel.set_appointment(
        lead, setter=setter, appointment_at=clock.now() + timedelta(hours=1)
    )


def _figures(funnel: Funnel, **options: Any) -> dict[str, Any]:
    """Every figure of a report but the open pipeline, which is "now" and no history:
    the erased person's open deals are lost, so it shrinks (docs/privacy.md)."""
    report = funnel.report(**options)
    document = json.loads(report.to_json())
    document.pop("pipeline")
    return {
        "not_sat": report.not_sat,
        "appointments_sat": report.checks["appointments_sat"].value,
        "setters": dict(report.setters),
        "weak_setters": list(report.weak_setters),
        "text": [line for line in str(report).splitlines() if "Open pipeline now" not in line],
        "json": document,
    }


def _all_figures(funnel: Funnel, clock: ManualClock) -> list[dict[str, Any]]:
    return [
        _figures(funnel),
        _figures(funnel, by="setter"),
        _figures(funnel, by="month"),
        _figures(funnel, since=clock.now() - timedelta(days=1), until=clock.now()),
    ]


@pytest.mark.parametrize("suppress", [True, False])
def test_erasing_a_no_show_leaves_every_report_figure(
    funnel: Funnel, clock: ManualClock, suppress: bool
) -> None:
    """The audit's case: two appointments set by sam, one sat, one not; the no-show's
    person erased. The rate stays 0.5 (it read 1.0 with ``suppress=True``)."""
    shown, missed = _booked(funnel, clock, 1, "sam"), _booked(funnel, clock, 2, "sam")
    clock.advance(hours=2)
    funnel.sit(shown)
    before = _all_figures(funnel, clock)
    assert before[0]["not_sat"] == 1
    assert before[0]["appointments_sat"] == pytest.approx(0.5)
    assert before[0]["setters"] == {"sam": pytest.approx(0.5)}
    assert before[0]["weak_setters"] == ["sam"]

    assert missed.lead_id is not None
    funnel.erase(missed.lead_id, suppress=suppress)

    (lost,) = (d for d in funnel.opportunities() if d.id == missed.id)
    assert lost.lost_reason == ("avoid" if suppress else "other")
    assert _all_figures(funnel, clock) == before


def test_erasing_before_the_appointment_time_is_the_same_no_show_after_it(
    funnel: Funnel, clock: ManualClock
) -> None:
    """Erased while the appointment was still to come: once its time passes, the
    report reads as it would have without the erasure (one no-show of sam's)."""
    shown, missed = _booked(funnel, clock, 1, "sam"), _booked(funnel, clock, 2, "sam")
    assert missed.lead_id is not None
    funnel.erase(missed.lead_id)
    clock.advance(hours=2)
    funnel.sit(shown)
    report = funnel.report()
    assert report.not_sat == 1
    assert report.setters == {"sam": pytest.approx(0.5)}


@pytest.mark.parametrize("how", ["lose avoid", "lose unqualified", "avoid the person"])
def test_a_no_show_lost_as_do_not_call_still_did_not_sit(
    funnel: Funnel, clock: ManualClock, how: str
) -> None:
    """Losing a no-show as ``avoid`` or ``unqualified`` (or avoiding its person, which
    loses it as ``avoid``) takes it off the rep list (nobody calls it), not off the
    report: losing it later must not change the figures of the period its appointment
    fell in."""
    shown, missed = _booked(funnel, clock, 1, "sam"), _booked(funnel, clock, 2, "sam")
    clock.advance(hours=2)
    funnel.sit(shown)
    before = _all_figures(funnel, clock)
    assert [item.id for item in funnel.rep_list("not_sat")] == [missed.id]

    if how == "avoid the person":
        funnel.avoid(missed.contact_id)
    else:
        funnel.lose(missed, reason=how.removeprefix("lose "))

    assert len(funnel.rep_list("not_sat")) == 0
    assert _all_figures(funnel, clock) == before
    assert [row.record.id for row in funnel.repository.no_shows(now=clock.now())] == [missed.id]


def test_a_sat_appointment_lost_as_avoid_is_no_no_show(funnel: Funnel, clock: ManualClock) -> None:
    """The history decides: an appointment that sat is not counted as not sat, however
    its deal was lost."""
    shown = _booked(funnel, clock, 1, "sam")
    clock.advance(hours=2)
    funnel.sit(shown)
    funnel.lose(shown, reason="avoid")
    report = funnel.report()
    assert report.not_sat == 0
    assert report.setters == {"sam": 1.0}
