"""The ``leadfunnel`` command: demo, import, qualify, due, report, diagram.

Every command takes ``--db URL`` (default ``sqlite:///leadfunnel.db``, or the
``LEADFUNNEL_DB`` environment variable). Bad input prints one line on stderr and exits
with status 2; nothing is half-written.
"""

from __future__ import annotations

import io
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from .._csv_out import csv_text, csv_writer, printable
from .._errors import LeadFunnelError

if TYPE_CHECKING:
    from .._csv import CsvRow, CsvSource
    from .._importing import ImportReport

__all__ = ["main"]

DEFAULT_DB = "sqlite:///leadfunnel.db"
_F = TypeVar("_F", bound=Callable[..., Any])

_db_option = click.option(
    "--db",
    "db",
    envvar="LEADFUNNEL_DB",
    default=DEFAULT_DB,
    show_default=True,
    metavar="URL",
    help="Database URL (sqlite:///file.db, postgresql+psycopg://..., mysql+pymysql://...); "
    "also read from LEADFUNNEL_DB.",
)

_output_option = click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Write to this file instead of standard output.",
)


def _format_option(*formats: str) -> Callable[[_F], _F]:
    return click.option(
        "--format", "format_", type=click.Choice(formats), default=formats[0], show_default=True
    )


def _emit(text: str, output: str | None, written: str) -> None:
    """Print ``text`` (without control characters: imported data must not drive the
    terminal), or write it to ``output`` as it is and say so (``written``) on stderr."""
    if output:
        Path(output).write_text(text, encoding="utf-8")
        click.echo(f"{written} written to {output}", err=True)
    else:
        click.echo(printable(text), nl=False)


def _fail(message: str) -> NoReturn:
    # One line: a message quoting the input (a column name...) must not break it, nor
    # send the terminal control codes.
    click.echo(f"leadfunnel: error: {printable(message.replace(chr(10), ' '))}", err=True)
    sys.exit(2)


def _funnel(db: str, migrate: str = "auto", **options: Any) -> Any:
    """The funnel on ``db``. Commands that only read open it with ``migrate="check"``:
    a mistyped ``--db`` is an error, never a new empty database."""
    from .._funnel import Funnel
    from .._sql import SqlRepository

    try:
        repository = SqlRepository(db, migrate=migrate)  # type: ignore[arg-type]
    except LeadFunnelError as exc:
        _fail(str(exc))
    except Exception as exc:  # a malformed URL from SQLAlchemy or a driver
        _fail(f"cannot open database {db!r}: {exc}")
    return Funnel(repository, **options)


def _guarded(command: _F) -> _F:
    """Turn library errors into one clear line on stderr and exit status 2."""
    import functools

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except LeadFunnelError as exc:
            _fail(str(exc))
        except OSError as exc:
            _fail(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "))

    return wrapper  # type: ignore[return-value]


class _OneLineErrors(click.Group):
    """A group whose usage errors (bad option, unknown command) are one line on stderr."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        if not kwargs.get("standalone_mode", True):
            return super().main(*args, **kwargs)
        kwargs["standalone_mode"] = False
        try:
            code = super().main(*args, **kwargs)
        except click.exceptions.NoArgsIsHelpError as exc:  # bare ``leadfunnel``: the help
            exc.show()
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx is not None else "leadfunnel"
            _fail(f"{exc.format_message()} (see '{where} --help')")
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


@click.group(cls=_OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="leadfunnel")
def main() -> None:
    """Run a sales lead funnel from the command line.

    \b
    Start with the demo, then look around:
      leadfunnel demo
      leadfunnel report --by setter
      leadfunnel due
    """


@main.command()
@_db_option
@click.option("--seed", default=7, show_default=True, help="Random seed: same seed, same funnel.")
@click.option("--leads", default=400, show_default=True, help="How many people arrive.")
@click.option(
    "--svg",
    type=click.Path(dir_okay=False, writable=True),
    default="leadfunnel-demo.svg",
    show_default=True,
    help="Where to write the funnel chart ('' for none).",
)
@_guarded
def demo(db: str, seed: int, leads: int, svg: str) -> None:
    """Build a realistic sample funnel in the database and print its report.

    \b
    Example:
      leadfunnel demo --db sqlite:///demo.db --seed 42
    """
    from .._demo import DEMO_DAYS, SLACKER, build_demo

    if leads < 1:
        _fail("--leads must be at least 1")
    if svg and not Path(svg).resolve().parent.is_dir():
        # Checked before anything is stored: a demo stopped half-way would block a rerun.
        _fail(f"--svg {svg}: the folder {Path(svg).parent} does not exist; create it first")
    funnel = _funnel(db)
    existing = funnel.leads(limit=1)
    if existing:
        _fail(
            f"{db} already holds leads; run the demo on a new database, e.g. --db sqlite:///demo.db"
        )
    click.echo(
        f"Building a sample funnel in {db}: {leads} people arriving over the "
        f"{DEMO_DAYS} days up to now ...",
        err=True,
    )
    summary = build_demo(funnel, seed=seed, leads=leads)
    report = funnel.report()
    click.echo(printable(str(report)), nl=False)
    click.echo(
        f"\nWho is who: {summary.people} people arrived from {summary.start:%Y-%m-%d} to "
        f"{summary.end:%Y-%m-%d}.\n"
        f"  {summary.leads} became raw leads (the report's raw count): {summary.inquiries} "
        f"inquiries and {summary.responded} bought-list suspects who responded.\n"
        f"  {summary.unresponsive} bought-list suspects have not responded: people, not "
        "leads, so not in the report.\n"
        f"  Of the leads, {summary.qualified} qualified, {summary.unqualified} unqualified, "
        f"{summary.waiting} still raw (waiting for a call or data).\n"
        f"  {summary.appointments} appointments set: {summary.won} won, {summary.lost} lost, "
        f"{summary.open} still open.\n"
        f"  {summary.follow_ups} follow-up touches logged; {SLACKER} lets about half of "
        "theirs slip (leadfunnel due shows them overdue)."
    )
    sizes = {kind: len(funnel.rep_list(kind)) for kind in ("not_sat", "not_bought", "never_booked")}
    click.echo(
        f"To call back: {sizes['not_sat']} appointments set but not sat, "
        f"{sizes['not_bought']} sat but didn't buy, {sizes['never_booked']} sweet-spot "
        "leads never booked (leadfunnel list not_sat|not_bought|never_booked)."
    )
    if svg:
        Path(svg).write_text(report.to_svg(), encoding="utf-8")
        click.echo(f"Funnel chart written to {svg}")


@main.command(name="import")
@_db_option
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--format",
    "format_",
    type=click.Choice(["auto", "salesforce", "hubspot", "generic"]),
    default="auto",
    show_default=True,
    help="The export's layout; auto recognises it from the header.",
)
@click.option(
    "--status",
    type=click.Choice(["suspect", "farm_list", "raw"]),
    default=None,
    help="Status for every imported row, whatever the export says (default: the "
    "export's own status, else raw).",
)
@click.option(
    "--status-map",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="FILE.toml",
    help="What the export's other status values mean (see docs/cli.md).",
)
@click.option(
    "--timezone",
    default="UTC",
    show_default=True,
    metavar="ZONE",
    help="Time zone of dates written without one, e.g. Europe/Paris.",
)
@click.option("--day-first", is_flag=True, help="Read dates like 03/04/2024 as day/month/year.")
@click.option(
    "--lead-model",
    default=None,
    metavar="MODULE:CLASS",
    help="Your Lead subclass (e.g. mycrm.models:MyLead): columns named like its own "
    "fields fill them.",
)
@click.option(
    "--rejects",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Write rejected rows, with row number and reason, to this CSV file.",
)
@_guarded
def import_(
    db: str,
    file: str,
    format_: str,
    status: str | None,
    status_map: str | None,
    timezone: str,
    day_first: bool,
    lead_model: str | None,
    rejects: str | None,
) -> None:
    """Import leads from a CSV export (Salesforce, HubSpot or generic).

    Statuses, creation dates and opt-outs carry over; customers and converted leads
    become contacts.

    \b
    Example:
      leadfunnel import salesforce-leads.csv --status-map statuses.toml --rejects rejected.csv
    """
    from .._csv import StatusMap, open_csv
    from .._importing import ImportReport, sized_chunks
    from .._models import new_id

    statuses = StatusMap.from_toml(status_map) if status_map else None
    model = _lead_model(lead_model) if lead_model else None
    source = open_csv(
        file,
        format_,
        statuses=statuses,
        read_statuses=status is None,
        timezone=_zone(timezone),
        day_first=day_first,
        lead_model=model,
    )
    funnel = _funnel(db, lead_model=model) if model else _funnel(db)
    tally = _ImportTally()
    failure: str | None = None
    # Rejected rows stream to a temporary file beside the target, which replaces the
    # target when the import ends: memory stays flat, nothing is half-written.
    with (
        _RejectsFile(rejects, source.header) as write_rejects,
        _progress(source.path.stat().st_size) as advance,
    ):
        # One transaction per chunk, sized by rows and by the bytes of the cells.
        for chunk in sized_chunks(source.rows(), _row_bytes):
            good = [row for row in chunk if row.error is None]
            refused = [(row.number, row.error, row.cells) for row in chunk if row.error]
            for row in good:
                row.fields["id"] = new_id()  # to tell exactly which rows were stored
            seen: list[ImportReport] = []
            try:
                funnel.import_leads(
                    [row.fields for row in good],
                    chunk_size=max(len(good), 1),
                    status=status,
                    carry_over=True,
                    actor="import",
                    on_progress=seen.append,
                )
            except (LeadFunnelError, OSError) as exc:
                failure = str(exc)
            handled = tally.count(good, seen[-1] if seen else ImportReport(), status)
            refused += handled.rejected
            tally.rejected += len(refused)
            write_rejects(sorted(refused, key=lambda r: r[0]))
            advance(len(chunk))
            if failure:
                if handled.unhandled is not None:
                    failure += (
                        f" (the import stopped at row {handled.unhandled}: that row and the "
                        "rest of the file were not imported; the summary counts what was)"
                    )
                break
    for line in tally.summary(source, rejects):
        click.echo(printable(line))
    if failure:
        _fail(failure)


class _ImportTally:
    """What an import stored, chunk after chunk, for its summary."""

    def __init__(self) -> None:
        self.added = self.duplicates = self.avoided = self.rejected = 0
        self.stored: Counter[str] = Counter()  # lead status, or "contact:<type>"

    def count(self, rows: list[CsvRow], report: ImportReport, status: str | None) -> _Handled:
        """Count one chunk's report (which numbers its rows from 1)."""
        self.added += len(report.added)
        self.duplicates += len(report.duplicates)
        self.avoided += len(report.avoided)
        added = set(report.added)
        issues = {i.row for i in (*report.duplicates, *report.avoided, *report.rejected)}
        unhandled = None
        for index, row in enumerate(rows, start=1):
            fields = row.fields
            if fields["id"] in added:
                kind = "contact:" + fields["type"] if "type" in fields else None
                self.stored[kind or status or fields.get("status", "raw")] += 1
            elif index not in issues and unhandled is None:
                unhandled = row.number
        rejected = [
            (rows[i.row - 1].number, i.reason, rows[i.row - 1].cells) for i in report.rejected
        ]
        return _Handled(rejected, unhandled)

    def _counts(self, names: Iterable[str], prefix: str) -> str:
        """``"2 raw, 1 qualified"``: the records stored per state, in the funnel's order."""
        return ", ".join(f"{self.stored[prefix + n]} {n}" for n in names if self.stored[prefix + n])

    def summary(self, source: CsvSource, rejects: str | None) -> list[str]:
        contacts = sum(n for kind, n in self.stored.items() if kind.startswith("contact:"))
        added = f"{self.added} added" + (f" ({contacts} as contacts)" if contacts else "")
        lines = [
            f"{added}, {self.duplicates} duplicates, {self.avoided} avoided, "
            f"{self.rejected} rejected ({source.format} format)"
        ]
        if self.stored:
            from .._enums import ContactType, LeadStatus

            kinds = [("as leads", self._counts(LeadStatus, ""))]
            kinds.append(("as contacts", self._counts(ContactType, "contact:")))
            lines.append("Stored " + "; ".join(f"{a}: {b}" for a, b in kinds if b))
        unused = source.unused_columns()
        if unused:
            lines.append("Columns not imported: " + ", ".join(unused))
        if source.unmapped:
            values = ", ".join(
                f"{column} {value!r} ({n})" for (column, value), n in source.unmapped.items()
            )
            lines.append(
                f"Status values with no meaning given, rows rejected: {values}; "
                "say what they mean with --status-map FILE.toml"
            )
        if source.footer_lines:
            lines.append(f"The report's footer ({source.footer_lines} lines) was left out.")
        if rejects and self.rejected:
            lines.append(f"Rejected rows written to {rejects}")
        return lines


@dataclass(frozen=True, slots=True)
class _Handled:
    """One chunk's rejected rows (for the rejects file), and the first row it did not
    reach, if the import stopped in it."""

    rejected: list[tuple[int, str, tuple[str, ...]]]
    unhandled: int | None


def _lead_model(spec: str) -> Any:
    """The class ``module:Class`` names: a subclass of ``Lead``, or exit 2."""
    import importlib

    from .._models import Lead

    module_name, _, class_name = spec.partition(":")
    if not module_name or not class_name:
        _fail(f"--lead-model {spec!r}: write it as package.module:ClassName")
    try:
        found = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        _fail(f"--lead-model {spec!r}: {exc}; is the module on the Python path?")
    if not (isinstance(found, type) and issubclass(found, Lead)):
        _fail(f"--lead-model {spec!r} is not a subclass of leadfunnel.Lead")
    return found


def _zone(name: str) -> tzinfo:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        _fail(
            f"--timezone {name!r} is not a time zone; give an IANA name such as "
            "Europe/Paris or America/New_York (or UTC)"
        )


def _row_bytes(row: CsvRow) -> int:
    return sum(map(len, row.cells))


class _progress:
    """A rich progress bar on a terminal; nothing otherwise."""

    def __init__(self, total_bytes: int) -> None:
        self._bar: Any = None
        self._total = total_bytes
        self._rows = 0

    def __enter__(self) -> Callable[[int], None]:
        if sys.stderr.isatty():
            from rich.progress import Progress

            self._bar = Progress(transient=True)
            self._bar.start()
            self._task = self._bar.add_task("importing", total=None)
        return self._advance

    def _advance(self, rows: int) -> None:
        self._rows += rows
        if self._bar is not None:
            self._bar.update(self._task, completed=self._rows, description=f"{self._rows} rows")

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


class _RejectsFile:
    """Rejected rows written as they come to ``<path>.partial``, renamed at the end.

    The file is kept when the import stops on a failing database: its rows were
    rejected before, and the import's summary counts them. Cells a spreadsheet would
    run as formulas are neutralised (``leadfunnel import`` reads them back as they were).
    """

    def __init__(self, path: str | None, header: tuple[str, ...]) -> None:
        self._path = Path(path) if path else None
        self._header = header
        self._handle: IO[str] | None = None
        self._writer: Any = None

    def __enter__(self) -> Callable[[list[tuple[int, str, tuple[str, ...]]]], None]:
        if self._path is not None:
            self._handle = self._partial.open("w", encoding="utf-8", newline="")
            self._writer = csv_writer(self._handle, lineterminator="\r\n")
            self._writer.writerow(["row", "reason", *self._header])
        return self._write

    @property
    def _partial(self) -> Path:
        assert self._path is not None
        return self._path.with_name(self._path.name + ".partial")

    def _write(self, rows: list[tuple[int, str, tuple[str, ...]]]) -> None:
        if self._writer is not None:
            for number, reason, cells in rows:
                self._writer.writerow([number, reason, *cells])

    def __exit__(self, kind: object, *exc: object) -> None:
        if self._handle is None:
            return
        self._handle.close()
        if kind is None:
            self._partial.replace(self._path)  # type: ignore[arg-type]  # all or nothing
        else:
            self._partial.unlink(missing_ok=True)


@main.command()
@_db_option
@click.option(
    "--rules",
    type=click.Path(dir_okay=False),
    required=True,
    help="TOML file with [[profiles]] (see docs/rules.md).",
)
@_guarded
def qualify(db: str, rules: str) -> None:
    """Qualify every raw lead against the profiles in a rules file.

    \b
    Example:
      leadfunnel qualify --rules profiles.toml
    """
    from .._qualification import QualificationEngine

    engine = QualificationEngine.from_toml(rules)
    funnel = _funnel(db, engine=engine)
    counts = funnel.qualify_all(actor="cli")
    click.echo(
        f"{counts['qualified']} qualified, {counts['unqualified']} disqualified, "
        f"{counts['waiting']} waiting for a call or more data"
    )


def _when(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        _fail(f"--at {value!r} is not an ISO date-time, e.g. 2026-03-02T09:00:00+00:00")
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


@main.command()
@_db_option
@click.option(
    "--at", "at", default=None, metavar="ISO-DATETIME", help="When to look (default: now, UTC)."
)
@click.option("--owner", default=None, help="Only the follow-ups of this owner's people.")
@click.option("--limit", type=click.IntRange(min=0), default=None, help="The first N only.")
@_format_option("table", "json", "csv")
@_output_option
@_guarded
def due(
    db: str,
    at: str | None,
    owner: str | None,
    limit: int | None,
    format_: str,
    output: str | None,
) -> None:
    """List the follow-ups due, most overdue first, with whom to call.

    \b
    Example:
      leadfunnel due --at 2026-04-01T09:00:00+00:00
      leadfunnel due --owner ana --limit 20
      leadfunnel due --format csv -o calls.csv
    """
    when = _when(at)  # a bad --at is reported before the database is opened
    funnel = _funnel(db, migrate="check")
    items = funnel.due(at=when, owner=owner, limit=limit)
    people = funnel.repository.get_many(item.subject_id for item in items)
    said = f"{len(items)} follow-ups"

    def who(item: Any) -> tuple[str, str, str]:
        person = people.get(item.subject_id)
        if person is None:
            return "", "", ""
        name = " ".join(p for p in (person.first_name, person.last_name) if p)
        return name, person.company or "", person.phone or ""

    if format_ != "table":
        data = [
            {
                "subject": item.subject,
                "subject_id": str(item.subject_id),
                **dict(zip(("name", "company", "phone"), who(item), strict=True)),
                "owner": item.owner,
                "due_at": item.due_at.isoformat(),
                "overdue": item.overdue,
                "escalated_to": item.escalated_to,
                "touch_number": item.touch_number,
                "channels": sorted(c.value for c in item.channels),
            }
            for item in items
        ]
        if format_ == "json":
            _emit(json.dumps(data, indent=2) + "\n", output, said)
            return
        rows = (
            [*(entry[c] for c in _DUE_COLUMNS[:-1]), ", ".join(entry["channels"])] for entry in data
        )
        _emit(csv_text(_DUE_COLUMNS, rows), output, said)
        return
    if not items:
        _emit("Nothing is due.\n", output, said)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(
        "subject",
        "name",
        "company",
        "phone",
        "owner",
        "due",
        "overdue",
        "escalate to",
        "touch",
        "channels",
        "id",
    )
    for item in items:
        name, company, phone = who(item)
        cells = (
            item.subject,
            name,
            company,
            phone,
            item.owner or "-",
            item.due_at.strftime("%Y-%m-%d %H:%M"),
            "yes" if item.overdue else "",
            item.escalated_to or "",
            str(item.touch_number),
            ", ".join(sorted(c.value for c in item.channels)),
            str(item.subject_id),
        )
        table.add_row(*map(printable, cells))
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(table)
    summary = f"{len(items)} follow-ups due, {sum(i.overdue for i in items)} overdue.\n"
    _emit(console.export_text() + summary, output, said)


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
)


@main.command()
@_db_option
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
@click.option(
    "--timezone",
    "zone_name",
    default="UTC",
    show_default=True,
    metavar="ZONE",
    help="Zone of dates and of date-times without an offset, e.g. America/New_York.",
)
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
@_format_option("table", "json", "csv", "svg")
@_output_option
@_guarded
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
        _fail(f"--timezone: {exc}")
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
            _fail(f"--{option}: {exc}")
    start, end = bounds["since"], bounds["until"]
    if start is not None and end is not None and end <= start:
        _fail(f"--until {until} is not after --since {since}: the period is empty")
    previous = None
    if bounds["previous-since"] is not None or bounds["previous-until"] is not None:
        previous = (bounds["previous-since"], bounds["previous-until"])
        if None in previous:
            _fail("give both --previous-since and --previous-until (or neither, for the default)")
        compare = True
    funnel = _funnel(db, migrate="check")
    if compare:
        if by is not None:
            _fail("--compare takes no --by: compare the whole funnel, or report by period")
        if start is None or end is None:
            _fail("--compare needs --since and --until: the period to compare with the one before")
        comparison = funnel.compare(start, end, previous=previous)
        renderers: dict[str, Callable[[Any], str]] = {
            "table": str,
            "json": lambda c: c.to_json() + "\n",
            "csv": lambda c: c.to_csv(),
            "svg": lambda c: c.to_svg(),
        }
        _emit(renderers[format_](comparison), output, "Comparison")
        return
    result = funnel.report(since=start, until=end, by=by)
    renderers = {
        "table": str,
        "json": lambda r: r.to_json() + "\n",
        "csv": lambda r: r.to_csv(groups=by is not None),
        "svg": lambda r: r.to_svg(),
    }
    _emit(renderers[format_](result), output, "Report")


@main.command(name="list")
@_db_option
@click.argument("kind", type=click.Choice(["not_sat", "not_bought", "never_booked"]))
@click.option("--source", default=None, help="Only people from this source.")
@click.option("--owner", default=None, help="Only records this owner holds.")
@click.option("--min-age", type=click.IntRange(min=0), default=None, help="At least N days old.")
@click.option("--max-age", type=click.IntRange(min=0), default=None, help="At most N days old.")
@click.option("--limit", type=click.IntRange(min=0), default=None, help="At most N people.")
@click.option(
    "--by",
    type=click.Choice(["source", "age"]),
    default=None,
    help="Group the table by source or by age (0-7, 8-30, 31-90, over 90 days).",
)
@click.option(
    "--at", "at", default=None, metavar="ISO-DATETIME", help="As of when (default: now, UTC)."
)
@_format_option("table", "json", "csv")
@_output_option
@_guarded
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
    funnel = _funnel(db, migrate="check")
    pulled = funnel.rep_list(
        kind,
        at=_when(at),
        source=source,
        owner=owner,
        min_age_days=min_age,
        max_age_days=max_age,
        limit=limit,
    )
    if format_ == "json":
        text = pulled.to_json() + "\n"
    elif format_ == "csv":
        text = pulled.to_csv()
    else:
        text = pulled.to_table(by=by)
    _emit(text, output, f"{len(pulled)} people")


@main.command()
@click.argument("lifecycle", type=click.Choice(["lead", "opportunity"]))
def diagram(lifecycle: str) -> None:
    """Print a lifecycle as a Mermaid state diagram.

    \b
    Example:
      leadfunnel diagram opportunity > opportunity.mmd
    """
    from .._lifecycle import diagram as draw

    click.echo(draw(lifecycle), nl=False)  # type: ignore[arg-type]


@main.command()
@_db_option
@_guarded
def migrate(db: str) -> None:
    """Create the leadfunnel tables, or upgrade them to this version's schema.

    Opening a database does this on its own; run it from a deployment step to upgrade
    before the application starts (the read commands refuse an old schema).

    \b
    Example:
      leadfunnel migrate --db postgresql+psycopg://app@db/crm
    """
    funnel = _funnel(db)
    version = funnel.repository.schema_version
    click.echo(f"{printable(db)}: leadfunnel schema version {version}, up to date")


@main.command()
@_db_option
@click.option("--after", default=0, show_default=True, help="Print events after this position.")
@click.option("--limit", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--follow", is_flag=True, help="Keep printing new events as they commit.")
@click.option(
    "--interval", default=1.0, show_default=True, help="Seconds between looks, with --follow."
)
@_guarded
def events(db: str, after: int, limit: int, follow: bool, interval: float) -> None:
    """Print the event feed as JSON lines, in commit order.

    Each line is one event with its ``position``; keep the last one you handled and
    start from it next time (--after) to miss nothing.

    \b
    Examples:
      leadfunnel events --after 0 --limit 100
      leadfunnel events --after 1234 --follow | my-indexer
    """
    funnel = _funnel(db, migrate="check")
    last = after
    while True:
        batch = funnel.events(after=last, limit=limit)
        for event in batch:
            click.echo(event.model_dump_json())
            last = event.position
        if not follow:
            return
        if not batch:
            time.sleep(interval)


@main.command()
@_db_option
@click.argument("people", nargs=-1)
@click.option(
    "--file",
    "from_file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Also erase the people listed in this file, one e-mail or phone a line.",
)
@click.option(
    "--keep-nothing",
    is_flag=True,
    help="Keep no hash of their e-mail or phone either: they may be added again.",
)
@_guarded
def erase(db: str, people: tuple[str, ...], from_file: str | None, keep_nothing: bool) -> None:
    """Erase people's personal data now (a right-to-erasure request), by e-mail or phone.

    Their records keep what reports count; by default their e-mail and phone stay on the
    suppression list as keyed hashes, so nobody can add them again. The database file
    is compacted afterwards, so no byte of them is left in it (SQLite). People not found
    are listed; the status is 2 when nobody was found.

    \b
    Examples:
      leadfunnel erase zelda@example.com +15125550177
      leadfunnel erase --file requests.txt
    """
    wanted = list(people)
    if from_file:
        text = Path(from_file).read_text(encoding="utf-8-sig")
        wanted += [line.strip() for line in text.splitlines() if line.strip()]
    if not wanted:
        _fail("name the people to erase (e-mail or phone), or give --file")
    funnel = _funnel(db, migrate="check")
    missing: list[str] = []
    erased = 0
    for who in dict.fromkeys(wanted):
        person = _find(funnel, who, missing)
        if person is None:
            continue
        done = funnel.erase(person, suppress=not keep_nothing, reason="erasure request")
        kept = "suppressed" if done.suppressed else "nothing kept"
        click.echo(f"erased {printable(who)}: {len(done.subject_ids)} records ({kept})")
        erased += 1
    for who in missing:
        click.echo(f"not found: {printable(who)}", err=True)
    if erased:
        funnel.repository.compact()
    if not erased:
        _fail(f"nobody of the {len(missing)} named is stored; check the spelling")


@main.command(name="export-person")
@_db_option
@click.argument("person")
@_output_option
@_guarded
def export_person(db: str, person: str, output: str | None) -> None:
    """Everything stored about one person, as JSON (an access or portability request).

    \b
    Example:
      leadfunnel export-person pat@acme-it.example.com -o pat.json
    """
    funnel = _funnel(db, migrate="check")
    found = _find(funnel, person)
    if found is None:
        _fail(f"nobody with e-mail or phone {person!r} is stored; check the spelling")
    data = funnel.export_person(found)
    _emit(json.dumps(data, indent=2, ensure_ascii=False) + "\n", output, "1 person")


def _find(funnel: Any, who: str, missing: list[str] | None = None) -> Any:
    """The person with this e-mail (anything with an @) or phone, or ``None`` (noted
    in ``missing``); a value that is neither exits 2."""
    from .._errors import InvalidArgumentError

    try:
        found = funnel.find(email=who) if "@" in who else funnel.find(phone=who)
    except InvalidArgumentError as exc:
        if missing is None:
            _fail(str(exc))
        found = None
    if found is None and missing is not None:
        missing.append(who)
    return found


def run() -> None:  # pragma: no cover - console entry point wrapper
    """Entry point that also maps a missing database driver to a clear error."""
    main(prog_name=os.path.basename(sys.argv[0]) or "leadfunnel")
