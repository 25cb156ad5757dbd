"""The commands that read the funnel: ``report`` (with its comparison), ``due`` (the
follow-ups to make) and ``list`` (the rep lists of people to call back)."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from .._channels import reachable_channels
from .._csv_out import csv_text, printable
from .._models import Contact, Lead
from ._common import (
    db_option,
    emit,
    fail,
    format_option,
    guarded,
    json_text,
    open_funnel,
    output_option,
    read_cadence,
    read_routing,
    stdout_can_write,
    svg_text,
    toml_file_option,
)

if TYPE_CHECKING:
    from .._cadence import FollowUp
    from .._funnel import Funnel

__all__ = ["due", "list_", "report"]


def _when(value: str | None, zone_name: str = "UTC") -> datetime | None:
    """``--at``: a date-time with an offset as it is, one without it read in
    ``--timezone`` (as ``report`` reads its bounds)."""
    from .._periods import read_zone

    try:
        zone = read_zone(zone_name)
    except ValueError as exc:
        fail(f"--timezone: {exc}")
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        fail(f"--at {value!r} is not an ISO date-time, e.g. 2026-03-02T09:00:00+00:00")
    return when if when.tzinfo is not None else when.replace(tzinfo=zone)


def _timezone_option(help: str) -> Callable[[Any], Any]:
    """``--timezone ZONE`` (UTC by default), for what the command reads without a zone."""
    return click.option(
        "--timezone", "zone_name", default="UTC", show_default=True, metavar="ZONE", help=help
    )


_AT_ZONE = _timezone_option("Zone of an --at without an offset, e.g. America/New_York.")


@click.command()
@db_option
@click.option(
    "--at", "at", default=None, metavar="ISO-DATETIME", help="When to look (default: now, UTC)."
)
@_timezone_option(
    "Zone of an --at without an offset, and of the table's times, e.g. America/New_York."
)
@click.option("--owner", default=None, help="Only the follow-ups of this owner's people.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="The first N only.")
@toml_file_option(
    "--cadence",
    "cadence_file",
    "The cadence policy (touches, waits, first response, business hours; see "
    "docs/cadence.md), as CadencePolicy.from_toml reads it; default: leadfunnel's.",
)
@toml_file_option(
    "--routing",
    "routing_file",
    "Routing rules (see docs/cadence.md), as RoutingRules.from_toml reads them: an "
    "overdue follow-up escalates to the backup they name.",
)
@format_option("table", "json", "csv")
@output_option
@guarded
def due(
    db: str,
    at: str | None,
    zone_name: str,
    owner: str | None,
    limit: int | None,
    cadence_file: str | None,
    routing_file: str | None,
    format_: str,
    output: str | None,
) -> None:
    """List the follow-ups due, most overdue first, with whom to call.

    \b
    Example:
      leadfunnel due --at 2026-04-01T09:00:00+00:00
      leadfunnel due --at 2026-04-01T09:00 --timezone America/Chicago
      leadfunnel due --owner ana --limit 20
      leadfunnel due --cadence cadence.toml --routing routing.toml
      leadfunnel due --format csv -o calls.csv
    """
    # A bad --at or file is reported before the database is opened.
    when = _when(at, zone_name)
    cadence = read_cadence("--cadence", cadence_file) if cadence_file else None
    router = read_routing("--routing", routing_file) if routing_file else None
    funnel = open_funnel(db, migrate="check", cadence=cadence, router=router)
    if format_ != "table":
        items = funnel.due(at=when, owner=owner, limit=limit)
        said = f"{len(items)} follow-ups"
        # The people are read a thousand at a time, and only their name, company,
        # phone and reachable channels kept: a full record of each of a million due
        # people would take gigabytes.
        data: Iterator[dict[str, Any]] = (
            {
                "subject": item.subject,
                "subject_id": str(item.subject_id),
                **dict(zip(("name", "company", "phone"), _who(person), strict=True)),
                "owner": item.owner,
                "due_at": item.due_at.isoformat(),
                "overdue": item.overdue,
                "escalated_to": item.escalated_to,
                "touch_number": item.touch_number,
                "channels": sorted(c.value for c in item.channels),
                "reachable": _reachable(item, person),
            }
            for item, person in _with_people(funnel, items)
        )
        if format_ == "json":
            emit(json.dumps(list(data), indent=2) + "\n", output, said)
            return
        rows = (
            [
                *("" if entry[c] is None else entry[c] for c in _DUE_COLUMNS[:-2]),
                ", ".join(entry["channels"]),
                ", ".join(entry["reachable"]),
            ]
            for entry in data
        )
        emit(csv_text(_DUE_COLUMNS, rows), output, said)
        return
    from .._periods import read_zone

    # A table is read by a person: the most overdue first, a screenful or so (rich takes
    # about a second a thousand rows); CSV and JSON give every row. Only the rows shown
    # are held (and their people read), with the counts of all.
    shown, total, overdue = funnel._counted_due(
        when, owner=owner, limit=_TABLE_ROWS if limit is None else limit
    )
    said = f"{total} follow-ups"
    if not shown:
        emit("Nothing is due.\n", output, said)
        return
    zone = read_zone(zone_name)  # checked by _when
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(
        "subject",
        "name",
        "company",
        "phone",
        "owner",
        f"due ({zone_name})",
        "overdue",
        "escalate to",
        "touch",
        "reach by",
        "id",
        # Lines a non-UTF-8 standard output (a Windows console's cp1252) can write.
        box=box.HEAVY_HEAD if output or stdout_can_write("┏━┳┃┡╇│└┴─") else box.ASCII_DOUBLE_HEAD,
    )
    for item, person in _with_people(funnel, shown):
        name, company, phone = _who(person)
        due_at = item.due_at.astimezone(zone)
        cells = (
            item.subject,
            name,
            company,
            phone,
            item.owner or "-",
            f"{due_at.date().isoformat()} {due_at:%H:%M}",
            "yes" if item.overdue else "",
            item.escalated_to or "",
            str(item.touch_number),
            ", ".join(_reachable(item, person)),
            str(item.subject_id),
        )
        # Text, not markup: a name such as "Lee [/x]" or "Acme [uk]" is shown as it is.
        table.add_row(*(Text(_writing(printable(cell or ""), output)) for cell in cells))
    # As wide as the table is: nothing cut (the id is what a follow-up is done with).
    console = Console(width=_UNBOUNDED, record=True, file=io.StringIO())
    console.print(table)
    summary = f"{total:,} follow-ups due, {overdue:,} overdue.\n"
    if len(shown) < total:
        summary += (
            f"The table shows the first {len(shown):,}: --limit N shows more, --owner one "
            "rep's, --format csv (or json) every one.\n"
        )
    emit(console.export_text() + summary, output, said)


def _with_people(
    funnel: Funnel, items: list[FollowUp], batch: int = 1_000
) -> Iterator[tuple[FollowUp, Lead | Contact | None]]:
    """Each follow-up with its person (None if gone meanwhile), read ``batch`` at a
    time as the rows are written."""
    for start in range(0, len(items), batch):
        part = items[start : start + batch]
        people = funnel.repository.get_many(item.subject_id for item in part)
        for item in part:
            person = people.get(item.subject_id)
            yield item, person if isinstance(person, (Lead, Contact)) else None


def _who(person: Lead | Contact | None) -> tuple[str | None, str | None, str | None]:
    """The person's name, company and phone, None for what is not known."""
    if person is None:
        return None, None, None
    name = " ".join(p for p in (person.first_name, person.last_name) if p)
    return name or None, person.company, person.phone


def _reachable(item: FollowUp, person: Lead | Contact | None) -> list[str]:
    """The follow-up's channels the person can be reached on (no call or text without a
    phone, no e-mail without an address), sorted."""
    usable = item.channels if person is None else reachable_channels(person, item.channels)
    return sorted(c.value for c in usable)


_UNBOUNDED = 100_000
#: The most rows ``due``'s table shows without ``--limit``.
_TABLE_ROWS = 500


def _writing(text: str, output: str | None) -> str:
    """``text`` as it will be written: to a file in UTF-8, to standard output with ``?``
    for what its encoding cannot write (then measured as the one column it takes)."""
    if output or stdout_can_write(text):
        return text
    encoding = sys.stdout.encoding
    return text.encode(encoding, "replace").decode(encoding)


_DUE_COLUMNS = (
    "subject",
    "subject_id",
    "name",
    "company",
    "phone",
    "owner",
    "due_at",
    "overdue",
    "escalated_to",
    "touch_number",
    "channels",
    "reachable",
)


@click.command()
@db_option
@click.option(
    "--by",
    type=click.Choice(["source", "owner", "setter", "profile", "month"]),
    default=None,
    help="Break the funnel down by this key.",
)
@click.option(
    "--since",
    default=None,
    metavar="DATE|DATETIME",
    help="Count from this moment on (included): 2026-03-02 is that day's midnight.",
)
@click.option(
    "--until",
    default=None,
    metavar="DATE|DATETIME",
    help="Count up to this moment (excluded): --until 2026-03-09 ends with March 8.",
)
@_timezone_option("Zone of dates and of date-times without an offset, e.g. America/New_York.")
@click.option(
    "--compare",
    is_flag=True,
    help="Compare with the period before: the same calendar months before when "
    "--since and --until are firsts of months, else the same length before.",
)
@click.option(
    "--previous-since",
    default=None,
    metavar="DATE|DATETIME",
    help="Start of the period to compare with (implies --compare).",
)
@click.option(
    "--previous-until",
    default=None,
    metavar="DATE|DATETIME",
    help="End of the period to compare with (implies --compare).",
)
@format_option("table", "json", "csv", "svg")
@output_option
@guarded
def report(
    db: str,
    by: str | None,
    since: str | None,
    until: str | None,
    zone_name: str,
    compare: bool,
    previous_since: str | None,
    previous_until: str | None,
    format_: str,
    output: str | None,
) -> None:
    """Print the funnel report: counts and conversion per step, money, health checks.

    The period is --since (included) to --until (excluded). A date is midnight at the
    start of that day, a date-time without an offset is wall time; both are read in
    --timezone (UTC by default); a date-time with an offset keeps it.

    \b
    Example:
      leadfunnel report --by source
      leadfunnel report --since 2026-03-02 --until 2026-03-09 --timezone America/Chicago
      leadfunnel report --since 2026-03-01 --until 2026-04-01 --compare
      leadfunnel report --by source --format svg -o by-source.svg
    """
    from .._periods import parse_bound, read_zone

    try:
        zone = read_zone(zone_name)
    except ValueError as exc:
        fail(f"--timezone: {exc}")
    bounds: dict[str, Any] = {}
    for option, text in (
        ("since", since),
        ("until", until),
        ("previous-since", previous_since),
        ("previous-until", previous_until),
    ):
        try:
            bounds[option] = None if text is None else parse_bound(text, zone)
        except ValueError as exc:
            fail(f"--{option}: {exc}")
    start, end = bounds["since"], bounds["until"]
    if start is not None and end is not None and end <= start:
        fail(f"--until {until} is not after --since {since}: the period is empty")
    previous = None
    if bounds["previous-since"] is not None or bounds["previous-until"] is not None:
        previous = (bounds["previous-since"], bounds["previous-until"])
        if None in previous:
            fail("give both --previous-since and --previous-until (or neither, for the default)")
        compare = True
    funnel = open_funnel(db, migrate="check")
    if compare:
        if by is not None:
            fail("--compare takes no --by: compare the whole funnel, or report by period")
        if start is None or end is None:
            fail("--compare needs --since and --until: the period to compare with the one before")
        comparison = funnel.compare(start, end, previous=previous)
        renderers: dict[str, Callable[[Any], str]] = {
            "table": str,
            "json": lambda c: json_text(c.to_dict(), output),
            "csv": lambda c: c.to_csv(),
            "svg": lambda c: svg_text(c.to_svg(), output),
        }
        emit(renderers[format_](comparison), output, "Comparison")
        return
    result = funnel.report(since=start, until=end, by=by)
    renderers = {
        "table": str,
        "json": lambda r: json_text(r.to_dict(), output),
        "csv": lambda r: r.to_csv(groups=by is not None),
        "svg": lambda r: svg_text(r.to_svg(), output),
    }
    emit(renderers[format_](result), output, "Report")


@click.command(name="list")
@db_option
@click.argument("kind", type=click.Choice(["not_sat", "not_bought", "never_booked"]))
@click.option("--source", default=None, help="Only people from this source.")
@click.option("--owner", default=None, help="Only records this owner holds.")
@click.option("--min-age", type=click.IntRange(min=0), default=None, help="At least N days old.")
@click.option("--max-age", type=click.IntRange(min=0), default=None, help="At most N days old.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most N people.")
@click.option(
    "--by",
    type=click.Choice(["source", "age"]),
    default=None,
    help="Group the table by source or by age (0-7, 8-30, 31-90, over 90 days).",
)
@click.option(
    "--at", "at", default=None, metavar="ISO-DATETIME", help="As of when (default: now, UTC)."
)
@_AT_ZONE
@format_option("table", "json", "csv")
@output_option
@guarded
def list_(
    db: str,
    kind: str,
    source: str | None,
    owner: str | None,
    min_age: int | None,
    max_age: int | None,
    limit: int | None,
    by: str | None,
    at: str | None,
    zone_name: str,
    format_: str,
    output: str | None,
) -> None:
    """Print a rep list: the people to call back, newest first.

    \b
    KIND is one of:
      not_sat       appointments set but not sat (no-shows)
      not_bought    appointments sat that were not won
      never_booked  qualified, sweet-spot leads never booked

    \b
    Example:
      leadfunnel list not_sat --by age
      leadfunnel list never_booked --source webinar --min-age 7 --format csv -o calls.csv
    """
    when = _when(at, zone_name)
    funnel = open_funnel(db, migrate="check")
    pulled = funnel.rep_list(
        kind,
        at=when,
        source=source,
        owner=owner,
        min_age_days=min_age,
        max_age_days=max_age,
        limit=limit,
    )
    if format_ == "json":
        text = json_text(pulled.to_dict(), output)
    elif format_ == "csv":
        text = pulled.to_csv()
    else:
        text = _list_table(pulled, by, output)
    emit(text, output, f"{len(pulled)} people")


def _list_table(pulled: Any, by: str | None, output: str | None) -> str:
    """The rep list's table (:meth:`RepList.to_table`'s), its texts as they will be
    written: control characters out, what standard output cannot encode replaced."""
    return str(pulled._table(by, lambda text: _writing(printable(text), output)))
