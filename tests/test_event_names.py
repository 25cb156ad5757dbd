"""The event vocabulary: ``leadfunnel.EVENT_NAMES`` is what the funnel writes, and what
``docs/events.md`` lists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from leadfunnel import EVENT_NAMES, Funnel, Lead
from leadfunnel._changes import event

DOCS = Path(__file__).parent.parent / "docs" / "events.md"


def test_the_docs_table_lists_every_event_name_once() -> None:
    section = DOCS.read_text(encoding="utf-8").split("## Event names", 1)[1].split("\n## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    named = [name for row in rows for name in re.findall(r"`([a-z_]+)`", row.split("|")[1])]
    assert sorted(named) == sorted(EVENT_NAMES)


def test_a_name_outside_the_vocabulary_is_caught_where_the_event_is_made() -> None:
    lead = Lead(email="pat@acme.example.com")
    at = lead.created_at
    with pytest.raises(AssertionError, match="won"):
        event(lead, "won", None, None, at, None, None)


def test_a_whole_demo_history_uses_only_those_names() -> None:
    funnel = Funnel()
    lead = funnel.capture(Lead(email="pat@acme.example.com"))
    funnel.qualify(lead, force=True)
    deal = funnel.set_appointment(lead)
    for step in (funnel.sit, funnel.propose, funnel.send_contract):
        deal = step(deal)
    funnel.win(deal, amount=100)
    assert {e.name for e in funnel.events(limit=None)} <= EVENT_NAMES
