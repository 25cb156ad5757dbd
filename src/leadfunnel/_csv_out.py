"""Writing CSV that is safe to open in a spreadsheet, and text safe to print.

A spreadsheet runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` (and, in some,
with a tab or a carriage return) as a formula: a lead named ``=HYPERLINK(...)`` in an
export becomes a link that sends data away (OWASP "CSV injection"). Every CSV leadfunnel
writes goes through :func:`csv_text` or :func:`csv_writer`, which prefix such text cells
with a single quote, as OWASP advises: the text stays, the spreadsheet shows it as text.
Numbers are written as they are (a negative number is not a formula). Reading a CSV
(:func:`restore`) drops that quote again, so a rejects file can be fixed and imported.

Terminal output goes through :func:`printable`, which drops control characters: an
imported name holding an escape sequence could otherwise retitle or rewrite a terminal.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from typing import IO, Any, Protocol

__all__ = ["FORMULA_STARTS", "csv_text", "csv_writer", "neutralise", "printable", "restore"]

#: The first characters that make a spreadsheet read a cell as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

# Unicode category Cc (C0, DEL, C1) but the line feed and the tab a table may hold.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


class _Writer(Protocol):
    def writerow(self, row: Iterable[Any], /) -> Any: ...

    def writerows(self, rows: Iterable[Iterable[Any]], /) -> None: ...


def neutralise(value: Any) -> Any:
    """``value``, with a single quote in front if it is text a spreadsheet would run."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def restore(cell: str) -> str:
    """A cell read from a CSV, without the quote :func:`neutralise` put in front."""
    if cell.startswith("'") and cell[1:2] and cell[1] in "=+-@\t\r":
        return cell[1:]
    return cell


class _SafeWriter:
    """A ``csv.writer`` that neutralises every text cell it writes."""

    def __init__(self, handle: IO[str], lineterminator: str, delimiter: str = ",") -> None:
        self._writer = self._quoted = csv.writer(
            handle, lineterminator=lineterminator, delimiter=delimiter
        )
        if "\r" not in lineterminator:
            # csv quotes a carriage return inside a cell only when the line terminator
            # holds one: unquoted, a reader would end the row there.
            self._quoted = csv.writer(
                handle, lineterminator=lineterminator, delimiter=delimiter, quoting=csv.QUOTE_ALL
            )

    def writerow(self, row: Iterable[Any], /) -> Any:
        cells = [neutralise(cell) for cell in row]
        if any(isinstance(cell, str) and "\r" in cell for cell in cells):
            return self._quoted.writerow(cells)
        return self._writer.writerow(cells)

    def writerows(self, rows: Iterable[Iterable[Any]], /) -> None:
        for row in rows:
            self.writerow(row)


def csv_writer(handle: IO[str], *, lineterminator: str = "\n", delimiter: str = ",") -> _Writer:
    """A CSV writer on ``handle`` whose text cells are neutralised."""
    return _SafeWriter(handle, lineterminator, delimiter)


def csv_text(header: Sequence[Any], rows: Iterable[Iterable[Any]]) -> str:
    """A CSV document: the header, then the rows, every text cell neutralised."""
    out = io.StringIO()
    writer = csv_writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def printable(text: str) -> str:
    """``text`` without control characters (line feeds and tabs stay), for a terminal."""
    return _CONTROL.sub("", text)
