"""Assertions about a funnel, with failure messages that say what happened instead."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from .._lifecycle import funnel_steps

if TYPE_CHECKING:
    from .._funnel import Funnel, Subject
    from .._reports import FunnelReport

__all__ = ["assert_due", "assert_history", "assert_passed_through", "assert_report_counts"]


def _subject_id(subject: Any) -> UUID:
    """The id of a record, or an id given as a ``UUID`` or its text."""
    if isinstance(subject, UUID):
        return subject
    found = getattr(subject, "id", None)
    return found if isinstance(found, UUID) else UUID(str(subject))


def _followed(funnel: Funnel, subject: Subject) -> list[Any]:
    """The subject's events, then its contact's and deals', merged oldest first.

    A lead's path goes on as the contact it became and that contact's opportunities, so
    ``["raw", "qualified", "appointment_set", "won"]`` reads as the funnel does.
    """
    from .._models import Contact, Lead

    record = funnel.get(_subject_id(subject))
    histories = [funnel.history(record.id)]
    contact_id = record.contact_id if isinstance(record, Lead) else None
    if isinstance(record, Contact):
        contact_id = record.id
    elif contact_id is not None:
        histories.append(funnel.history(contact_id))
    if contact_id is not None:
        for deal in funnel.opportunities(contact_id=contact_id):
            histories.append(funnel.history(deal.id))
    return sorted((e for h in histories for e in h), key=_order)


def _order(event: Any) -> tuple[datetime, int]:
    # One instant can hold a lead's conversion, the contact's creation, the deal's booking,
    # and later a deal's win with the contact becoming a client: order them so.
    kind = str(event.subject)
    if kind == "lead":
        rank = 0
    elif kind == "opportunity":
        rank = 2
    else:
        rank = 1 if event.source is None else 3
    return event.at, rank


def _moves(funnel: Funnel, subject: Subject) -> list[tuple[str, bool]]:
    """The states the subject entered, oldest first, each with whether a forced move
    skipped it (a forced conversion skips ``qualified``, a forced win ``contract_sent``):
    the report counts those as reached, at the time of the move."""
    states: list[tuple[str, bool]] = []
    for event in _followed(funnel, subject):
        if event.dest is not None and event.dest != event.source:
            if not states and event.source is not None:
                states.append((event.source, False))
            reached = funnel_steps(str(event.subject), event.source, event.dest)
            states.extend((step, True) for step in reached if step != event.dest)
            states.append((event.dest, False))
    return states


def assert_passed_through(
    funnel: Funnel,
    subject: Subject,
    states: Sequence[str],
    *,
    include_skipped: bool = True,
) -> None:
    """Assert the subject entered ``states`` in this order (other states may come between).

    A lead's path goes on through the contact it became and that contact's deals. A
    step that a forced move skipped counts as passed, as the report counts it: a lead
    converted from ``raw`` with ``force=True`` passed ``qualified``, a deal won from
    ``proposing`` with ``force=True`` passed ``contract_sent``. With
    ``include_skipped=False`` only the states really entered count.

    >>> assert_passed_through(funnel, lead, ["raw", "qualified", "won"])  # doctest: +SKIP
    """
    path = _moves(funnel, subject)
    position = 0
    for state, skipped in path:
        if skipped and not include_skipped:
            continue
        if position < len(states) and state == str(states[position]):
            position += 1
    if position < len(states):
        shown = " -> ".join(f"[{s}]" if skipped else s for s, skipped in path)
        message = (
            f"expected the subject to pass through {' -> '.join(map(str, states))}, "
            f"but its path was {shown or '(no moves)'}"
        )
        if position:
            message += f"; {states[position]!r} never came after {states[position - 1]!r}"
        if any(skipped for _, skipped in path):
            message += " (in brackets: skipped by a forced move, " + (
                "counted as passed)" if include_skipped else "not counted: include_skipped=False)"
            )
        raise AssertionError(message)


def assert_history(funnel: Funnel, subject: Subject, names: Sequence[str]) -> None:
    """Assert the subject's events are exactly ``names``, oldest first."""
    actual = [event.name for event in funnel.history(subject)]
    if actual != list(names):
        raise AssertionError(f"expected history {list(names)}, got {actual}")


def assert_report_counts(report: FunnelReport, expected: Mapping[str, int]) -> None:
    """Assert the report counts ``expected[step]`` at each step named (others are free)."""
    unknown = [step for step in expected if step not in report.steps]
    if unknown:
        raise AssertionError(
            f"the report has no step {', '.join(map(repr, unknown))}; "
            f"its steps are {', '.join(report.steps)}"
        )
    wrong = {
        step: (count, report.steps[step].count)
        for step, count in expected.items()
        if report.steps[step].count != count
    }
    if wrong:
        lines = ", ".join(
            f"{step}: expected {want}, counted {got}" for step, (want, got) in wrong.items()
        )
        table = ", ".join(f"{name}={step.count}" for name, step in report.steps.items())
        raise AssertionError(f"report counts differ ({lines}); the report has {table}")


def assert_due(
    funnel: Funnel,
    subject: Subject | Iterable[Subject],
    *,
    at: datetime | None = None,
    due: bool = True,
) -> None:
    """Assert the subject (or each of several) is (``due=False``: is not) due at ``at``."""
    single = isinstance(subject, (str, UUID)) or hasattr(subject, "id")
    subjects: list[Any] = [subject] if single else list(subject)  # type: ignore[arg-type]
    items = {item.subject_id: item for item in funnel.due(at=at)}
    for one in subjects:
        one_id = _subject_id(one)
        if (one_id in items) != due:
            record = funnel.get(one_id)
            state = getattr(record, "status", None) or getattr(record, "type", "?")
            touches = len(funnel.touches(one_id))
            when = f" at {at.isoformat()}" if at else ""
            raise AssertionError(
                f"expected {one_id} {'' if due else 'not '}to be due{when}, but it is"
                f"{' not' if due else ''} (state {state}, {touches} touches)"
            )
