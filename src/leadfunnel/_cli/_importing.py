"""``leadfunnel import``: a CRM's CSV export into the funnel, chunk by chunk, with its
rejected rows written beside it."""

from __future__ import annotations

import signal
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, tzinfo
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from .._collector import collector_paused
from .._csv_out import csv_writer, printable
from .._errors import LeadFunnelError
from ._common import (
    Interrupts,
    db_option,
    fail,
    guarded,
    lead_model_option,
    load_lead_model,
    open_funnel,
    read_routing,
    refuse_output_over_database,
    toml_file_option,
)

if TYPE_CHECKING:
    from .._csv import CsvRow, CsvSource
    from .._funnel import Funnel
    from .._importing import ImportReport

__all__ = ["import_"]


@click.command(name="import")
@db_option
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
    type=click.Choice(["suspect", "farm_list", "raw", "avoid"]),
    default=None,
    help="Status for every imported row, whatever the export says (default: the "
    "export's own status, else raw). avoid imports a do-not-contact list: the people "
    "it names who are stored already are put on the avoid list too.",
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
@click.option(
    "--day-first",
    is_flag=True,
    help="Read dates like 03/04/2024 as day/month/year (default: decided from the file's "
    "own dates, month first if none tells).",
)
@click.option("--month-first", is_flag=True, help="Read dates like 03/04/2024 as month/day/year.")
@click.option(
    "--encoding",
    default=None,
    metavar="NAME",
    help="The file's encoding, e.g. mac_roman or cp1252 (default: recognised; a file "
    "that could be read two ways is refused).",
)
@click.option(
    "--phone-region",
    default="US",
    show_default=True,
    metavar="CODE",
    help="Country of phone numbers written without a country code (ISO code: GB, DE...).",
)
@lead_model_option(
    "Your Lead subclass (e.g. mycrm.models:MyLead): columns named like its own fields "
    "(or their aliases) fill them."
)
@click.option(
    "--rejects",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Write rejected rows, with row number and reason, to this CSV file.",
)
@toml_file_option(
    "--routing",
    "routing_file",
    "Give the raw and qualified leads owners by these routing rules (see "
    "docs/cadence.md), as RoutingRules.from_toml reads them; capacities count the "
    "leads given today, by earlier imports too.",
)
@guarded
def import_(
    db: str,
    file: str,
    format_: str,
    status: str | None,
    status_map: str | None,
    timezone: str,
    day_first: bool,
    month_first: bool,
    encoding: str | None,
    phone_region: str,
    lead_model: str | None,
    rejects: str | None,
    routing_file: str | None,
) -> None:
    """Import leads from a CSV export (Salesforce, HubSpot or generic).

    Statuses, creation dates and opt-outs carry over; customers and converted leads
    become contacts.

    \b
    Example:
      leadfunnel import salesforce-leads.csv --status-map statuses.toml --rejects rejected.csv
      leadfunnel import webinar.csv --routing routing.toml
    """
    from .._csv import StatusMap, open_csv
    from .._importing import sized_chunks

    if day_first and month_first:
        fail("give --day-first or --month-first, not both")
    statuses = StatusMap.from_toml(status_map) if status_map else None
    router = read_routing("--routing", routing_file) if routing_file else None
    model = load_lead_model(lead_model) if lead_model else None
    source = open_csv(
        file,
        format_,
        statuses=statuses,
        read_statuses=status is None,
        timezone=_zone(timezone),
        day_first=True if day_first else False if month_first else None,
        encoding=encoding,
        lead_model=model,
    )
    options: dict[str, Any] = {"phone_region": _phone_region(phone_region)}
    if model:
        options["lead_model"] = model
    if router is not None:
        options["router"] = router
    if rejects:
        # Checked before the database is opened (or made): a rejects file that cannot
        # be written must not leave a new empty database behind.
        target = Path(rejects).resolve()
        if target == source.path.resolve() or (target.exists() and target.samefile(source.path)):
            fail(
                f"--rejects {rejects} is the file being imported: choose another file "
                "(the rejected rows would replace it)"
            )
        if not target.parent.is_dir():
            fail(
                f"--rejects {rejects}: the folder {Path(rejects).parent} does not exist; "
                "create it first"
            )
    funnel = open_funnel(db, **options)
    if rejects:
        refuse_output_over_database(rejects, "--rejects")
    if router is not None:
        router.attach(funnel)  # today's counts: what earlier imports and captures gave
    tally = _ImportTally(source.explain, routing=router is not None)
    failure: str | None = None
    # Rejected rows stream to a temporary file beside the target, which replaces the
    # target when the import ends: memory stays flat, nothing is half-written. Reading
    # and validating rows make many objects and no cycles: the cyclic collector, run
    # every few hundred of them, would traverse each chunk's rows over and over for
    # nothing (0.17 to 0.2 s of an import of 20,000 rows, 0.05 s without). Storing
    # leaves some cycles (a SQL adapter's statements): they are collected after each
    # chunk, once its rows are let go.
    with _Interrupts() as interrupts:  # until the summary is out
        with (
            _RejectsFile(
                rejects,
                source.header,
                source.delimiter,
                for_spreadsheets=source.spreadsheet_made,
                cells=source.written_back,
            ) as write_rejects,
            _progress(source.path.stat().st_size) as advance,
            collector_paused() as collect,
            # A large file into a small store: the store may build some indexes once,
            # at the end, rather than entry by entry (see Repository.loading).
            funnel.repository.loading(),
        ):
            # Funnel.import_leads's own sizing (sized_chunks), applied to the file's
            # rows, so that rows rejected while reading count too and are written in row
            # order with the others, and no report of the whole file is held (a million
            # added ids are about 110 MB). Each chunk is one transaction: chunk_size is
            # all its rows.
            try:
                for chunk in sized_chunks(source.rows(), _row_bytes):
                    if interrupts.requested:  # while this chunk was read: left for later
                        break
                    given = router.assigned_today() if router is not None else {}
                    try:
                        failure = _import_chunk(
                            funnel, chunk, status, tally, write_rejects, interrupts
                        )
                    finally:
                        if router is not None:
                            tally.note_routed(given, router.assigned_today())
                    advance(len(chunk))
                    if failure or interrupts.requested:
                        break
                    chunk.clear()  # done with: the collection need not look at its rows
                    collect(1)  # what survived the last chunk's collection, too
            except KeyboardInterrupt:
                pass  # a second Ctrl-C, while a chunk was stored: counted by _import_chunk
        for line in tally.summary(source, rejects):
            click.echo(printable(line))
        if interrupts.requested:
            click.echo(
                "leadfunnel: interrupted: the summary counts the rows stored before; "
                "importing the file again adds the rest (the rows stored come back as "
                "duplicates)",
                err=True,
            )
            sys.exit(130)
    if failure:
        fail(failure)


def _import_chunk(
    funnel: Funnel,
    chunk: list[CsvRow],
    status: str | None,
    tally: _ImportTally,
    write_rejects: Callable[[list[tuple[int, str, tuple[str, ...]]]], None],
    interrupts: _Interrupts,
) -> str | None:
    """Import one chunk of the file's rows in one transaction, count them and write
    its rejected rows; the store's error if it failed, saying where the import stopped.

    Only the store's call can be interrupted (a second Ctrl-C, see :class:`_Interrupts`):
    the counting and the rejects file after it are never cut half-way."""
    from .._importing import ImportReport
    from .._models import new_id

    good = [row for row in chunk if row.error is None]
    refused = [(row.number, row.error, row.cells) for row in chunk if row.error]
    for row in good:
        row.fields["id"] = new_id()  # to tell exactly which rows were stored
    seen: list[ImportReport] = []
    failure: str | None = None
    interrupted: KeyboardInterrupt | None = None
    try:
        with interrupts.storing():
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
    except KeyboardInterrupt as exc:
        # Counted below, as a finished chunk is, for the summary and the rejects; then
        # the import stops. The interrupt may land between the store's commit and the
        # report's note of it: which rows the store holds is asked of the store (their
        # ids were given above), the rest of the report is what import_leads said.
        # (The interrupt, raised only here, cannot land in the counting below.)
        interrupted = exc
        report = seen[-1] if seen else ImportReport()
        held = funnel.repository.get_many([row.fields["id"] for row in good])
        if good and not held:
            # Rolled back (or nothing of it stored): as if left unread. (import_leads
            # hands on_progress its report on the way out too, so ``seen`` does not say
            # whether the chunk committed; the store does.)
            raise
        report.added = [row.fields["id"] for row in good if row.fields["id"] in held]
        seen.append(report)
    handled = tally.count(good, seen[-1] if seen else ImportReport(), status)
    refused += handled.rejected
    tally.rejected += len(refused)
    tally.note_rejected(refused)
    write_rejects(sorted(refused, key=lambda r: r[0]))
    if interrupted is not None:
        raise interrupted
    if failure and handled.unhandled is not None:
        failure += (
            f" (the import stopped at row {handled.unhandled}: that row and the "
            "rest of the file were not imported; the summary counts what was)"
        )
    return failure


def _as_given(row: CsvRow, reason: str) -> str:
    return reason


_REASONS_SHOWN = 3  # rejected rows whose reasons the summary shows without --rejects


class _ImportTally:
    """What an import stored, chunk after chunk, for its summary."""

    def __init__(
        self, explain: Callable[[CsvRow, str], str] | None = None, *, routing: bool = False
    ) -> None:
        # Names a rejected row's fields as the file's columns (CsvSource.explain).
        self.explain = explain or _as_given
        # With --routing: the leads given to each owner (None without it).
        self.routed: Counter[str] | None = Counter() if routing else None
        self.added = self.duplicates = self.avoided = self.rejected = 0
        self.stored: Counter[str] = Counter()  # lead status, or "contact:<type>"
        # Added with no e-mail and no phone, other ones included: nothing of theirs is an
        # identity key (see identity_keys), so nothing tells them from anyone stored.
        self.keyless = 0
        self.first_rejected: list[tuple[int, str]] = []  # (row, reason), for the summary

    def note_rejected(self, refused: list[tuple[int, str, tuple[str, ...]]]) -> None:
        """Keep the first rejected rows and reasons, which the summary shows."""
        room = _REASONS_SHOWN - len(self.first_rejected)
        if room > 0:
            self.first_rejected += [(line, why) for line, why, _ in sorted(refused)[:room]]

    def note_routed(self, before: dict[str, int], after: dict[str, int]) -> None:
        """Count the leads given to each owner between ``before`` and ``after``, the
        router's ``assigned_today()`` around a chunk (a chunk stored across midnight
        counts from the new day's zero)."""
        if self.routed is not None:
            for owner, n in after.items():
                earlier = before.get(owner, 0)
                self.routed[owner] += n - earlier if n >= earlier else n

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
                get = fields.get  # (no generator a row: this runs for every row added)
                if not (get("email") or get("phone") or get("other_emails") or get("other_phones")):
                    self.keyless += 1
            elif index not in issues and unhandled is None:
                unhandled = row.number
        rejected = []
        for issue in report.rejected:
            row = rows[issue.row - 1]
            rejected.append((row.number, self.explain(row, issue.reason), row.cells))
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
        if self.routed is not None:
            given = sorted(self.routed.items(), key=lambda item: (-item[1], item[0]))
            # Routed, or given in the file to an owner whose day is counted: what the
            # owners' capacity counts.
            owners = ", ".join(f"{n} to {o}" for o, n in given if n) or "none"
            lines.append(f"Given to owners today: {owners}")
        if self.keyless:
            lines.append(
                f"{self.keyless} added with neither e-mail nor phone: nothing tells them "
                "from people stored before, so importing them again adds them again (find "
                "likely duplicates with funnel.similar())"
            )
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
        lines.extend(source.notes())
        if source.footer_lines:
            lines.append(f"The report's footer ({source.footer_lines} lines) was left out.")
        if rejects and self.rejected:
            lines.append(f"Rejected rows written to {rejects}")
        elif self.rejected:
            more = self.rejected - len(self.first_rejected)
            lines.extend(f"  row {row}: {why}" for row, why in self.first_rejected)
            lines.append(
                (f"  ... and {more} more; " if more else "  ")
                + "write every rejected row and its reason to a file with --rejects FILE "
                "(fix them there and import that file)"
            )
        return lines


@dataclass(frozen=True, slots=True)
class _Handled:
    """One chunk's rejected rows (for the rejects file), and the first row it did not
    reach, if the import stopped in it."""

    rejected: list[tuple[int, str, tuple[str, ...]]]
    unhandled: int | None


class _Interrupts(Interrupts):
    """Ctrl-C during an import: the chunk being stored finishes, then the import stops
    and says what it stored. A second Ctrl-C while a chunk is being stored (a database
    that hangs) stops at once: that chunk's transaction rolls back, or has committed,
    and is counted by what the store holds.

    A Ctrl-C raised anywhere (Python's default) could land between a chunk's counting
    and the writing of its rejects: the summary then counted rows the rejects file did
    not hold. The handler is set (or not) as :class:`Interrupts` sets it."""

    def __init__(self) -> None:
        super().__init__()
        self._storing = False

    def __exit__(self, *exc: object) -> None:
        if self._previous is None:
            return
        # Once interrupted, the command is ending with its summary said: a press more
        # is let go, not left to kill the interpreter as it shuts down (status -2, not
        # 130). Python keeps an ignored signal ignored to the end.
        signal.signal(signal.SIGINT, signal.SIG_IGN if self.requested else self._previous)

    def _handle(self, signum: int, frame: object) -> None:
        self.requested += 1
        if self._storing and self.requested > 1:
            raise KeyboardInterrupt
        if self.requested == 1:
            click.echo(
                "leadfunnel: stopping after the chunk being stored (Ctrl-C again to stop now)",
                err=True,
            )

    @contextmanager
    def storing(self) -> Iterator[None]:
        """While the store is called: a second Ctrl-C interrupts it."""
        self._storing = True
        try:
            yield
        finally:
            self._storing = False


def _phone_region(code: str) -> str:
    from .._models import phone_region_of

    try:
        return phone_region_of(code)
    except ValueError as exc:
        fail(f"--phone-region: {exc}")


def _zone(name: str) -> tzinfo:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        fail(
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
            from rich.console import Console
            from rich.progress import Progress

            # On standard error, which it checked: standard output carries the summary
            # alone (redirected to a file, it must not start with the bar's line).
            self._bar = Progress(transient=True, console=Console(stderr=True))
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


_OURS = ("row", "reason")  # the columns a rejects file starts with


class _RejectsFile:
    """Rejected rows written as they come to ``<path>.partial``, renamed at the end.

    The file is kept when the import stops on a failing database: its rows were
    rejected before, and the import's summary counts them. Cells a spreadsheet would
    run as formulas are neutralised (``leadfunnel import`` reads them back as they were).
    """

    def __init__(
        self,
        path: str | None,
        header: tuple[str, ...],
        delimiter: str = ",",
        *,
        for_spreadsheets: bool = False,
        cells: Callable[[tuple[str, ...]], tuple[str, ...]] | None = None,
    ) -> None:
        self._path = Path(path) if path else None
        # A row's cells as written back (CsvSource.written_back: dates in the order read).
        self._cells = cells
        # A source a spreadsheet wrote (a byte-order mark, cp1252, a "sep=" line) gets
        # rejects a spreadsheet opens right: UTF-8 with its mark (Excel reads UTF-8
        # without one as the local code page: mojibake), and the separator named.
        self._for_spreadsheets = for_spreadsheets
        # The source's own separator: a semicolon export's "450.000" is read back as it
        # was (its thousands rule follows the separator), and it opens as its source did.
        self._delimiter = delimiter
        # A rejects file imported again starts with the row and reason of its first
        # import: this one's replace them (two of each would be a header naming a
        # column twice, which import refuses).
        self._skip = 2 if tuple(h.strip().lower() for h in header[:2]) == _OURS else 0
        self._header = header[self._skip :]
        self._handle: IO[str] | None = None
        self._writer: Any = None

    def __enter__(self) -> Callable[[list[tuple[int, str, tuple[str, ...]]]], None]:
        if self._path is not None:
            encoding = "utf-8-sig" if self._for_spreadsheets else "utf-8"
            self._handle = self._partial.open("w", encoding=encoding, newline="")
            if self._for_spreadsheets and self._delimiter != ",":
                self._handle.write(f"sep={self._delimiter}\r\n")
            self._writer = csv_writer(
                self._handle, lineterminator="\r\n", delimiter=self._delimiter
            )
            self._writer.writerow(["row", "reason", *self._header])
        return self._write

    @property
    def _partial(self) -> Path:
        assert self._path is not None
        return self._path.with_name(self._path.name + ".partial")

    def _write(self, rows: list[tuple[int, str, tuple[str, ...]]]) -> None:
        if self._writer is not None:
            for number, reason, cells in rows:
                if self._cells is not None:
                    cells = self._cells(cells)
                self._writer.writerow([number, reason, *cells[self._skip :]])

    def __exit__(self, kind: object, *exc: object) -> None:
        if self._handle is None:
            return
        self._handle.close()
        if kind is None:
            self._partial.replace(self._path)  # type: ignore[arg-type]  # all or nothing
        else:
            self._partial.unlink(missing_ok=True)
