"""The facade as a new integrator meets it (an audit): dates given with ``at=``,
``Funnel(...)``'s arguments, ``history`` of an id the store does not hold, a touch's
date, and the subject types of the triggers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from conftest import person
from leadfunnel import Funnel, InvalidArgumentError, Lead, LeadStatus
from leadfunnel.testing import ManualClock

#: A year mistyped: 2062 for 2026.
TYPO = datetime(2062, 3, 2, 9, tzinfo=UTC)


# --- 1. a change dated ahead of the clock holds back no move made now -----------------


def test_a_change_dated_ahead_of_the_clock_does_not_block_moves_made_now(
    funnel: Funnel, clock: ManualClock
) -> None:
    """``qualify(at=2062)`` (a typo for 2026) made every later move without ``at=``
    fail with "give a later at=, or leave it out", although at= was left out: the
    lead could not even be avoided (DESIGN 3: avoid works from any state)."""
    lead = funnel.capture(Lead(**person(1)))
    funnel.qualify(lead, force=True, at=TYPO)
    avoided = funnel.avoid(lead)
    assert avoided.status is LeadStatus.AVOID
    (event,) = [e for e in funnel.history(lead) if e.name == "avoid"]
    assert event.at == clock.now()

    # An edit or a new record dated ahead holds nothing back either.
    edited = funnel.capture(Lead(**person(2)))
    funnel.update(edited.model_copy(update={"notes": "typo"}), at=TYPO)
    assert funnel.qualify(edited, force=True).status is LeadStatus.QUALIFIED
    deal = funnel.set_appointment(edited)
    assert funnel.sit(deal).stage == "appointment_sat"
    added = funnel.add(Lead(**person(3)), at=TYPO)
    assert funnel.avoid(added).status is LeadStatus.AVOID


def test_a_move_dated_before_both_the_last_change_and_the_clock_is_still_refused(
    funnel: Funnel, clock: ManualClock
) -> None:
    lead = funnel.capture(Lead(**person(1)))
    funnel.qualify(lead, force=True, at=TYPO)
    with pytest.raises(InvalidArgumentError, match="before the lead's last change") as err:
        funnel.disqualify(lead, at=clock.now() - timedelta(days=1))
    # Leaving at= out does work now: the advice is true.
    assert "leave it out" in str(err.value)
    assert funnel.get_lead(lead.id).status is LeadStatus.QUALIFIED
    assert funnel.disqualify(lead).status is LeadStatus.UNQUALIFIED
