"""Reading lead lists from CSV exports: Salesforce, HubSpot, or leadfunnel's own columns.

The format is recognised from the header row; the encoding (UTF-8, with or without a
byte-order mark, else Windows-1252 as Excel writes it) and the dialect (comma,
semicolon, tab, pipe) from the file's first bytes. Rows are read one at a time, so a
file far larger than memory streams through.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

from ._errors import LeadFunnelError
from ._models import SET_FIELDS, Lead

__all__ = ["CsvError", "CsvSource", "Format", "open_csv"]

Format = Literal["auto", "salesforce", "hubspot", "generic"]
FORMATS: tuple[str, ...] = ("auto", "salesforce", "hubspot", "generic")

_SAMPLE = 64 * 1024
_TRUE = frozenset({"1", "true", "yes", "y", "x", "t"})


class CsvError(LeadFunnelError, ValueError):
    """A CSV file that cannot be read as a lead list; the message says why."""


# Column -> Lead field. Salesforce exports use the API field names.
_SALESFORCE = {
    "FirstName": "first_name",
    "LastName": "last_name",
    "Email": "email",
    "Phone": "phone",
    "Company": "company",
    "Title": "title",
    "Industry": "industry",
    "NumberOfEmployees": "employees",
    "AnnualRevenue": "annual_revenue",
    "Country": "country",
    "State": "region",
    "City": "city",
    "PostalCode": "postal_code",
    "LeadSource": "source",
    "Description": "notes",
    "OwnerId": "owner",
}
_HUBSPOT = {
    "First Name": "first_name",
    "Last Name": "last_name",
    "Email": "email",
    "Phone Number": "phone",
    "Company Name": "company",
    "Job Title": "title",
    "Industry": "industry",
    "Number of Employees": "employees",
    "Annual Revenue": "annual_revenue",
    "Country/Region": "country",
    "State/Region": "region",
    "City": "city",
    "Postal Code": "postal_code",
    "Original Source": "source",
    "Contact owner": "owner",
}
_GENERIC_FIELDS = frozenset(
    name
    for name in Lead.model_fields
    if name not in ("id", "created_at", "updated_at", "version", "status_at", "contact_id")
)
_NUMBER_FIELDS = ("employees", "annual_revenue")


@dataclass(frozen=True, slots=True)
class CsvSource:
    """An opened lead list: its path, detected format, encoding, dialect and header."""

    path: Path
    format: str
    encoding: str
    delimiter: str
    header: tuple[str, ...]

    def rows(self) -> Iterator[tuple[dict[str, Any], dict[str, str]]]:
        """Each row as ``(lead fields, original cells)``, streamed from the file."""
        for _, fields, cells in self.numbered_rows():
            yield fields, cells

    def numbered_rows(self) -> Iterator[tuple[int, dict[str, Any], dict[str, str]]]:
        """Each row as ``(row number, lead fields, original cells)``, streamed.

        Row 1 is the first row under the header; blank rows are skipped but counted, so
        the number matches the data row a spreadsheet shows.
        """
        convert = _CONVERTERS[self.format]
        header = self.header
        width = len(header)
        with self._open() as handle:
            reader = csv.reader(handle, delimiter=self.delimiter)
            next(reader, None)  # the header row
            for number, record in enumerate(reader, start=1):
                if not any(cell.strip() for cell in record):
                    continue  # blank line
                cells = {
                    name: (record[i] if i < len(record) else "") for i, name in enumerate(header)
                }
                if any(cell.strip() for cell in record[width:]):
                    cells["__error__"] = (
                        f"row {number} has {len(record)} cells but the header has {width}"
                    )
                yield number, convert(cells), cells

    def _open(self) -> IO[str]:
        return self.path.open("r", encoding=self.encoding, newline="")


def open_csv(path: str | Path, format: str = "auto") -> CsvSource:
    """Open a lead list, checking up front that the whole file can be read.

    Raises :class:`CsvError` for a missing or unreadable file, an encoding error, an
    unknown format, or a header that matches no format.
    """
    if format not in FORMATS:
        raise CsvError(f"unknown format {format!r}; choose one of: {', '.join(FORMATS)}")
    file = Path(path)
    if not file.is_file():
        raise CsvError(f"{file}: no such file")
    try:
        with file.open("rb") as raw:
            head = raw.read(_SAMPLE)
    except OSError as exc:
        raise CsvError(f"{file}: cannot read it ({exc.strerror or exc})") from None
    if not head.strip():
        raise CsvError(f"{file}: the file is empty")
    utf16 = head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    if b"\x00" in head and not utf16:  # UTF-16 text (Excel's "Unicode Text") holds NULs
        raise CsvError(f"{file}: this is not a CSV text file (it holds binary data)")
    encoding = _encoding(file, head)
    text = head.decode(encoding, errors="ignore")
    try:
        dialect = csv.Sniffer().sniff(text.split("\n", 1)[0] + "\n", delimiters=",;\t|")
        delimiter = dialect.delimiter
    except csv.Error:
        delimiter = ","
    header_line = next(csv.reader([text.splitlines()[0]], delimiter=delimiter))
    header = tuple(h.strip() for h in header_line)
    detected = _detect(header) if format == "auto" else format
    if detected is None:
        raise CsvError(
            f"{file}: the header ({', '.join(header[:6])}{', ...' if len(header) > 6 else ''}) "
            "is not a Salesforce or HubSpot export, nor leadfunnel's own field names; "
            "pass --format to say which it is"
        )
    _check_columns(file, detected, header)
    return CsvSource(file, detected, encoding, delimiter, header)


def _encoding(file: Path, head: bytes) -> str:
    if head.startswith(codecs.BOM_UTF8):
        candidates = ["utf-8-sig"]
    elif head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        candidates = ["utf-16"]
    else:
        candidates = ["utf-8", "cp1252"]
    for encoding in candidates:
        if _decodes(file, encoding):
            return encoding
    raise CsvError(
        f"{file}: cannot decode the file as {' or '.join(candidates)}; "
        "save it as UTF-8 CSV and try again"
    )


def _decodes(file: Path, encoding: str) -> bool:
    # Read the whole file once before importing anything, so a bad byte deep inside a
    # large file cannot stop an import half way.
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        with file.open("rb") as raw:
            while block := raw.read(1 << 20):
                decoder.decode(block)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _detect(header: tuple[str, ...]) -> str | None:
    columns = set(header)
    if (
        {"FirstName", "LastName"} <= columns
        or "LeadSource" in columns
        or ("Email" in columns and "Company" in columns and "Title" in columns)
    ):
        return "salesforce"
    if (
        {"First Name", "Last Name"} <= columns
        or "Lifecycle Stage" in columns
        or ("Email" in columns and "Company Name" in columns)
    ):
        return "hubspot"
    if columns & _GENERIC_FIELDS and columns <= _GENERIC_FIELDS | {""}:
        return "generic"
    if {"email", "phone"} & columns:
        return "generic"
    return None


def _check_columns(file: Path, format: str, header: tuple[str, ...]) -> None:
    known = {"salesforce": set(_SALESFORCE), "hubspot": set(_HUBSPOT)}.get(format)
    columns = set(header)
    if format == "generic":
        if not columns & _GENERIC_FIELDS:
            raise CsvError(
                f"{file}: no column is a Lead field; generic files use leadfunnel's field "
                "names (first_name, last_name, email, phone, company, ...)"
            )
        return
    assert known is not None
    if not columns & known:
        raise CsvError(f"{file}: no column of a {format} export was found in the header")


def _number(text: str) -> str:
    # Exports write money and counts for people: "$2,500,000", "1 200", "25.0".
    cleaned = text.replace(",", "").replace("$", "").replace("€", "").replace("£", "").strip()
    cleaned = cleaned.replace(" ", "").replace("\u00a0", "")
    if cleaned.endswith(".0") or cleaned.endswith(".00"):
        cleaned = cleaned.rsplit(".", 1)[0]
    return cleaned


def _mapped(cells: Mapping[str, str], columns: Mapping[str, str]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for column, name in columns.items():
        value = cells.get(column, "").strip()
        if value:
            fields[name] = _number(value) if name in _NUMBER_FIELDS else value
    if "__error__" in cells:
        fields["__error__"] = cells["__error__"]
    return fields


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in _TRUE


def _salesforce(cells: Mapping[str, str]) -> dict[str, Any]:
    fields = _mapped(cells, _SALESFORCE)
    if "phone" not in fields and cells.get("MobilePhone", "").strip():
        fields["phone"] = cells["MobilePhone"].strip()
    rating = cells.get("Rating", "").strip().lower()
    if rating in ("hot", "warm"):
        fields["interest"] = "high" if rating == "hot" else "slight"
    opt_outs = []
    if _truthy(cells.get("HasOptedOutOfEmail")):
        opt_outs.append("email")
    if _truthy(cells.get("DoNotCall")):
        opt_outs.append("call")
    if opt_outs:
        fields["opt_outs"] = opt_outs
    return fields


def _hubspot(cells: Mapping[str, str]) -> dict[str, Any]:
    fields = _mapped(cells, _HUBSPOT)
    if _truthy(cells.get("Unsubscribed from all email")):
        fields["opt_outs"] = ["email"]
    return fields


def _generic(cells: Mapping[str, str]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for column, value in cells.items():
        value = value.strip()
        if column in _GENERIC_FIELDS and value:
            if column in SET_FIELDS:
                fields[column] = [v.strip() for v in value.replace(";", ",").split(",") if v]
            elif column in _NUMBER_FIELDS:
                fields[column] = _number(value)
            else:
                fields[column] = value
    if "__error__" in cells:
        fields["__error__"] = cells["__error__"]
    return fields


_CONVERTERS = {"salesforce": _salesforce, "hubspot": _hubspot, "generic": _generic}
