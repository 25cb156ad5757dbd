"""Assertions about a funnel, with failure messages that say what happened instead."""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from .._enums import ContactType, LeadStatus, Stage
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


def _stored(funnel: Funnel, subject: Subject) -> Any:
    """The subject's record; an ``AssertionError`` saying so when the funnel has none
    (a typo'd or made-up id, a record merged away or never stored), so an assertion
    about it never passes by having nothing to look at."""
    from .._errors import NotFoundError

    try:
        subject_id = _subject_id(subject)
    except ValueError:
        raise AssertionError(
            f"{subject!r} is no subject: give a record, or its id (a UUID or its text)"
        ) from None
    try:
        return funnel.get(subject_id)
    except NotFoundError:
        raise AssertionError(
            f"the funnel has no record {subject_id} (no lead, contact or opportunity with "
            "that id: never stored, or merged away into another record)"
        ) from None


def _listed(function: str, what: str, given: Sequence[str]) -> list[str]:
    """``given``, a list of names, as a list of ``str``. A bare string is refused: it is a
    sequence too, of its letters, and ``assert_history(funnel, lead, "capture")`` would
    fail with "expected history ['c', 'a', 'p', ...]" (or ``"raw"`` pass through the
    states ``'r'``, ``'a'``, ``'w'``) rather than say what is wrong."""
    if isinstance(given, (str, bytes)):
        one = given.decode() if isinstance(given, bytes) else str(given)
        raise TypeError(
            f"{function} takes a list of {what}, not the bare string {one!r}: write [{one!r}]"
        )
    return [str(name) for name in given]


#: Every state a subject can be in, the names ``assert_passed_through`` takes.
_STATES: tuple[str, ...] = tuple(
    dict.fromkeys(str(state) for kind in (LeadStatus, ContactType, Stage) for state in kind)
)


def _followed(funnel: Funnel, subject: Subject) -> list[Any]:
    """The subject's events, then its contact's and deals', merged oldest first.

    A lead's path goes on as the contact it became and that contact's opportunities, so
    ``["raw", "qualified", "appointment_set", "won"]`` reads as the funnel does.
    """
    from .._models import Contact, Lead

    record = _stored(funnel, subject)
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
    # As the history orders events (DESIGN 12): by instant, then by position, the order
    # they were committed in. One instant can hold a lead's conversion, the contact's
    # creation and the deal's booking, then the deal's win making the contact a client,
    # then a new booking of that client: only the position tells them apart.
    return event.at, event.position or 0


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

    ``states`` must name at least one state, each a state some subject can be in (a
    ``LeadStatus``, ``ContactType`` or ``Stage`` value); a name that is none of them
    fails at once, saying so, instead of failing as a state never reached.

    >>> assert_passed_through(funnel, lead, ["raw", "qualified", "won"])  # doctest: +SKIP
    """
    states = _listed("assert_passed_through", "states", states)
    if not states:
        raise ValueError(
            "assert_passed_through needs at least one state to check; "
            "to check that a subject exists, use funnel.get(id)"
        )
    unknown = [state for state in states if state not in _STATES]
    if unknown:
        raise AssertionError(
            f"there is no state {', '.join(map(repr, dict.fromkeys(unknown)))}; "
            f"the states are {', '.join(_STATES)}"
        )
    path = _moves(funnel, subject)
    position = 0
    for state, skipped in path:
        if skipped and not include_skipped:
            continue
        if position < len(states) and state == states[position]:
            position += 1
    if position < len(states):
        shown = " -> ".join(f"[{s}]" if skipped else s for s, skipped in path)
        message = (
            f"expected the subject to pass through {' -> '.join(states)}, "
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
    """Assert the subject's events are exactly ``names``, oldest first (the subject
    must exist: an unknown id fails, whatever ``names``). ``names`` is a list, even of
    one name (``["capture"]``): a bare string is a ``TypeError``."""
    expected = _listed("assert_history", "event names", names)
    record = _stored(funnel, subject)
    actual = [event.name for event in funnel.history(record.id)]
    if actual != expected:
        raise AssertionError(f"expected history {expected}, got {actual}")


def assert_report_counts(report: FunnelReport, expected: Mapping[str, int]) -> None:
    """Assert the report counts ``expected[step]`` at each step named (others are free;
    name at least one). A count is an ``int``: ``"1"`` or ``1.0`` is a ``TypeError``
    (compared with the report's ``1`` it would fail, and read like it)."""
    if not expected:
        raise ValueError("assert_report_counts needs at least one step to check")
    not_counts = {
        step: count
        for step, count in expected.items()
        if isinstance(count, bool) or not isinstance(count, numbers.Integral)
    }
    if not_counts:
        shown = ", ".join(
            f"{step!r}: {count!r} (a {type(count).__name__})" for step, count in not_counts.items()
        )
        raise TypeError(
            f"assert_report_counts takes each count as an int ({{'raw': 1}}), not {shown}"
        )
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
    """Assert the subject (or each of several) is (``due=False``: is not) due at ``at``.

    Every subject must exist: an unknown id fails, even with ``due=False``.
    ``due`` is a bool: anything else is a ``TypeError`` (``due="no"`` would be true).
    """
    if not isinstance(due, bool):
        raise TypeError(f"assert_due takes due=True or due=False, not due={due!r}")
    single = isinstance(subject, (str, UUID)) or hasattr(subject, "id")
    subjects: list[Any] = [subject] if single else list(subject)  # type: ignore[arg-type]
    if not subjects:
        raise ValueError("assert_due needs at least one subject to check")
    records = [_stored(funnel, one) for one in subjects]
    items = {item.subject_id: item for item in funnel.due(at=at)}
    for record in records:
        one_id = record.id
        if (one_id in items) != due:
            state = next(
                getattr(record, name)
                for name in ("status", "type", "stage")
                if hasattr(record, name)
            )
            touches = len(funnel.touches(one_id))
            when = f" at {at.isoformat()}" if at else ""
            raise AssertionError(
                f"expected {one_id} {'' if due else 'not '}to be due{when}, but it is"
                f"{' not' if due else ''} (state {state}, {touches} touches)"
            )
