"""Reading lead lists from CSV exports: Salesforce, HubSpot, or leadfunnel's own columns.

The format is recognised from the header row (Salesforce's API field names or the labels
of a Salesforce report, HubSpot's column titles, or leadfunnel's field names); the
encoding (UTF-8, with or without a byte-order mark, else Windows-1252 as Excel writes
it) and the dialect (comma, semicolon, tab, pipe) from the file's first bytes. Rows are
read one at a time, so a file far larger than memory streams through.

Each row becomes the fields of a record for :func:`leadfunnel.Funnel.import_leads`:

* statuses carry over (:class:`StatusMap`): a Salesforce ``Status``, a HubSpot
  ``Lifecycle Stage`` or ``Lead Status`` becomes a lead status, or a ``type`` when the
  row is a contact (a converted lead, a customer);
* creation dates (``CreatedDate``, ``Create Date``) become ``created_at``
  (:func:`read_datetime`: a time without a zone is in ``timezone``, UTC by default);
* numbers are read as people write them (:func:`read_number`), or refused when they
  could mean two amounts;
* the application's own fields (``lead_model``) that are numbers or dates are read by
  those same rules; its other fields take the cell as written.

A value that cannot be read makes its row a :class:`CsvRow` with an ``error``: the
import rejects that row, with the reason, and goes on.
"""

from __future__ import annotations

import codecs
import csv
import itertools
import operator
import re
import types
import unicodedata
from collections import Counter, abc, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal
from enum import Enum
from operator import methodcaller
from os import PathLike
from pathlib import Path
from typing import IO, Annotated, Any, Literal, TypeAlias, Union, get_args, get_origin

import pydantic

from ._csv_out import restore
from ._enums import ContactType, LeadStatus
from ._errors import ConfigError, LeadFunnelError
from ._models import SET_FIELDS, Contact, Lead, field_keys
from ._people import NAMES_NOBODY, NAMING_FIELDS

__all__ = [
    "FORMATS",
    "CsvError",
    "CsvRow",
    "CsvSource",
    "Format",
    "StatusMap",
    "open_csv",
    "read_datetime",
    "read_flag",
    "read_number",
]

Format = Literal["auto", "salesforce", "hubspot", "generic"]
FORMATS: tuple[str, ...] = ("auto", "salesforce", "hubspot", "generic")

_SAMPLE = 64 * 1024


class CsvError(LeadFunnelError, ValueError):
    """A CSV file that cannot be read as a lead list; the message says why."""


# --- numbers -------------------------------------------------------------------------

_NO_VALUE = frozenset({"-", "--", "\u2014", "n/a", "na", "none", "null"})
_NO_VALUE_LONGEST = max(map(len, _NO_VALUE))
_KEYED = ("email", "phone")  # text fields a placeholder ("N/A") leaves empty


def _no_value(text: str) -> bool:
    """Whether ``text`` (stripped) is a placeholder for no value: "N/A", "-", "null"."""
    return len(text) <= _NO_VALUE_LONGEST and text.casefold() in _NO_VALUE


_SCIENTIFIC = re.compile(r"[-+]?\d+(?:[.,]\d+)?[eE][-+]?\d+")
# A number as Java writes a double (Double.toString): one digit, a point, digits, "E" and
# an unsigned or negative exponent without leading zeros ("8.0E7"). A spreadsheet writes
# "8E+07" or "8.00E+07": a sign and two digits.
_JAVA_DOUBLE = re.compile(r"-?[1-9]\.\d+E-?[1-9]\d*")
_CURRENCY = r"(?:[A-Za-z]{3}|[$\u20ac\u00a3\u00a5\u20b9])"
_AMOUNT = re.compile(
    rf"(?P<sign>-)?\s*(?:{_CURRENCY}\s*)?(?P<sign2>-)?"
    r"(?P<body>\d(?:[\d.,'\u2019\s]*\d)?)"
    rf"(?:\s*{_CURRENCY})?"
)
# Thousands separators other than the dot and the comma: spaces (no-break and thin
# included) and apostrophes, as in "1 200" and Swiss "1'200'000".
_SEPARATOR = re.compile(r"([.,]|[\s'\u2019]+)")
# How most exports write amounts: "$5,268,805", "1,200" (an optional currency symbol, then
# thousands split by commas). Read without the general rules below, to the same result.
_COMMA_GROUPED = re.compile(r"[$\u20ac\u00a3\u00a5\u20b9]?([0-9]{1,3}(?:,[0-9]{3})+)")


def read_number(text: str, *, whole: bool = False, thousands: str | None = None) -> str | None:
    """A number written for people, as plain digits: ``"2.500.000,00 EUR"`` -> ``"2500000"``.

    Currency symbols and codes, thousands separators (``,``, ``.``, spaces,
    apostrophes) and a zero fraction are dropped. A dot or comma followed by other than
    three digits is a decimal mark (``"2500000,00"``); with both, the last one is. One
    separator followed by exactly three digits (``"1.200"``) groups thousands in a
    ``whole`` number, or when it is the file's ``thousands`` separator (a comma in a
    comma-separated file, which writes numbers the English way; a dot in a
    semicolon-separated one); otherwise it is ambiguous (1200 or 1.2?) and a
    ``ValueError`` says so, as it does for anything else that is not a number or that a
    spreadsheet rounded (``"2.5E+06"``). ``"N/A"``, ``"-"`` and the like are no value
    (``None``).
    """
    value = text.strip()
    if value.isdigit() and value.isascii():
        return value.lstrip("0") or "0"  # as most exports write them: no work to do
    grouped = _COMMA_GROUPED.fullmatch(value)
    if grouped is not None:
        body = grouped[1]
        # One comma is a thousands separator only where the rules below say so.
        if body.count(",") > 1 or ((whole or thousands == ",") and not body.startswith("0,")):
            return body.replace(",", "").lstrip("0") or "0"
    if value.casefold() in _NO_VALUE:
        return None
    if _JAVA_DOUBLE.fullmatch(value):
        # Salesforce's Data Loader and the sf command line write amounts of 10,000,000
        # and more as Java does ("9.9213206E7"): exact, never a spreadsheet's rounding.
        number = Decimal(value)
        if not -30 <= number.adjusted() <= 30:  # before writing out its digits
            raise ValueError(f"{text!r} is no amount: its exponent is out of any range")
        exact = format(number, "f")
        if "." in exact:
            exact = exact.rstrip("0").rstrip(".")
        if whole and "." in exact:
            raise ValueError(f"{text!r} is not a whole number")
        return exact
    if _SCIENTIFIC.fullmatch(value):
        raise ValueError(
            f"{text!r} is in scientific notation, which spreadsheets round; format the "
            "column as a number in the spreadsheet and export it again"
        )
    match = _AMOUNT.fullmatch(value)
    if match is None:
        raise ValueError(f"{text!r} is not a number")
    pieces = _SEPARATOR.split(match["body"])
    groups, separators = pieces[0::2], pieces[1::2]
    if not all(groups):
        raise ValueError(f"{text!r} is not a number")
    marks = [s for s in separators if s in ".,"]
    decimal: str | None = None
    if len(set(marks)) == 2:
        decimal = marks[-1]
        if marks.count(decimal) != 1 or separators[-1] != decimal:
            raise ValueError(f"{text!r} is not a number: its dots and commas do not add up")
    elif len(marks) == 1 and separators[-1] in ".,":
        head, tail = groups[0], groups[-1]
        if len(tail) != 3 or len(separators) > 1 or head == "0" or len(head) > 3:
            decimal = separators[-1]
        elif not whole and separators[-1] != thousands:
            raise ValueError(
                f"{text!r} is ambiguous: {head}{tail} or {head}.{tail.rstrip('0') or 0}? "
                "Write it without "
                f"a thousands separator ({head}{tail}) or with its decimals "
                f"({head},{tail}.00 or {head}.{tail},00)"
            )
    integer = groups[:-1] if decimal else groups
    if len(integer) > 1 and (len(integer[0]) > 3 or any(len(g) != 3 for g in integer[1:])):
        raise ValueError(
            f"{text!r} is not a number as written: its separators do not split thousands"
        )
    fraction = groups[-1].rstrip("0") if decimal else ""
    if whole and fraction:
        raise ValueError(f"{text!r} is not a whole number")
    digits = "".join(integer).lstrip("0") or "0"
    sign = "-" if (match["sign"] or match["sign2"]) and (digits != "0" or fraction) else ""
    return sign + digits + ("." + fraction if fraction else "")


# --- yes and no ----------------------------------------------------------------------

# What a flag cell (an opt-out, Salesforce's "converted") says, as CRMs, spreadsheets and
# their locales write it: matched whatever the case, accents, spaces, hyphens and
# underscores. Any other value rejects its row: an opt-out is never guessed, and an
# unknown value must never mean "may contact".
_YES = frozenset(
    {
        *("1", "1.0", "1,0", "1.00", "-1", "true", "t", "yes", "y", "x", "on", "checked"),
        *("\u2713", "\u2714", "\u2611", "\u2612"),  # check marks, a ticked box
        # Spreadsheet TRUE and "yes" in other languages.
        *("wahr", "ja", "vrai", "oui", "vero", "si", "waar", "sant", "sand", "sann"),
        *("verdadero", "verdadeiro", "prawda", "tak", "tosi", "kylla", "igen", "da", "sim"),
    }
)
_NO = frozenset(
    {
        *("0", "0.0", "0,0", "0.00", "false", "f", "no", "n", "off", "unchecked"),
        *("\u2717", "\u2718", "\u2610"),  # crosses, an empty box
        *("falsch", "nein", "faux", "non", "falso", "onwaar", "nee", "falskt", "falsk"),
        *("usann", "nei", "nej", "nao", "fa\u0142sz", "nie", "epatosi", "ei", "hamis"),
        *("nem", "ne"),
    }
)
# An opt-out column's own wording: Dynamics writes Allow / Do Not Allow, mailing tools
# Subscribed / Unsubscribed.
_OPTED_OUT = frozenset(
    {"opted out", "opt out", "optout", "unsubscribed", "do not allow", "dont allow"}
    | {"do not contact", "do not email", "do not call", "blocked", "suppressed"}
)
_OPTED_IN = frozenset({"allow", "allowed", "subscribed", "opted in", "opt in", "not opted out"})
_FLAG_SEPARATORS = re.compile(r"[\s_\-']+")


def _fold(value: str) -> str:
    """``value`` as flag words are matched: "Do_Not-Allow" and "Sí" are "do not allow",
    "si"."""
    text = unicodedata.normalize("NFKD", value.casefold())
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return _FLAG_SEPARATORS.sub(" ", text).strip() or text.strip()


def read_flag(text: str, *, opt_out: bool = False) -> bool:
    """Whether a flag cell says yes: ``"true"``, ``"WAHR"``, ``"Oui"``, ``"-1"``,
    ``"\u2713"``...; no for ``"false"``, ``"FAUX"``, ``"0"`` or an empty cell. An
    ``opt_out`` column also reads ``"Opted Out"``, ``"Unsubscribed"``, ``"Do Not
    Allow"`` as yes and ``"Allow"``, ``"Subscribed"`` as no. Any other value is a
    ``ValueError`` saying what is accepted."""
    value = text.strip()
    if not value:
        return False
    key = _fold(value)
    if key in _YES or (opt_out and key in _OPTED_OUT):
        return True
    if key in _NO or (opt_out and key in _OPTED_IN):
        return False
    words = (
        "yes: 1, true, yes, x, on, \u2713, -1, a spreadsheet TRUE in any of its languages "
        "(WAHR, VRAI, VERO, WAAR, VERDADERO...), Ja, Oui, S\u00ed"
    )
    if opt_out:
        words += ", Opted Out, Unsubscribed, Do Not Allow"
    words += "; no: 0, false, no, off, FALSCH, FAUX, Nein, Non"
    if opt_out:
        words += ", Allow, Subscribed"
    what = "opted out or not" if opt_out else "yes or no"
    raise ValueError(
        f"{text!r} does not say {what} in a way leadfunnel reads ({words}; or an empty "
        "cell); write one of those, so that no value is guessed"
    )


# --- dates ---------------------------------------------------------------------------

_SLASH_DATE = re.compile(r"\s*(\d{1,2})/(\d{1,2})/\d{4}")
# "3/15/2024", "3/15/2024 2:30 PM", "3/15/2024, 14:30:05", "15.03.2024 14:30".
_LOCAL_DATE = re.compile(
    r"(\d{1,2})([/.])(\d{1,2})\2(\d{4})"
    r"(?:,?\s+(\d{1,2}):(\d{2})(?::(\d{2}))?\s*([AaPp]\.?[Mm]\.?)?)?"
)


def read_datetime(text: str, *, timezone: tzinfo = UTC, day_first: bool = False) -> datetime:
    """A point in time as CRM exports write it, in UTC.

    ISO 8601 (``2024-02-10T08:15:00.000Z``, ``2024-03-05 14:22``, ``2024-03-05``);
    ``M/D/YYYY`` with an optional ``H:MM`` (24-hour or with AM/PM), or ``D/M/YYYY``
    when ``day_first``; ``D.M.YYYY``. A time without a zone is in ``timezone``; a date
    alone is its midnight. Anything else, a day or month that does not exist, or a
    moment outside 0001-01-01 to 9999-12-31 in UTC (``0001-01-01`` in Paris), is a
    ``ValueError`` saying so: a date is never guessed.
    """
    return _in_utc(_wall_time(text, day_first=day_first), text, timezone)


def _in_utc(when: datetime, text: str, timezone: tzinfo) -> datetime:
    """``when``, read from ``text`` (in ``timezone`` if it carries no offset), in UTC:
    :func:`read_datetime` once the text is read."""
    zone = ""
    if when.tzinfo is None or when.utcoffset() is None:
        when = when.replace(tzinfo=timezone)
        zone = f" (read in {timezone}, the zone of times written without one)"
    try:
        return when.astimezone(UTC)
    except OverflowError:
        # Only the first and last days of the range can fall out of it in UTC.
        raise ValueError(
            f"{text!r}{zone} is outside 0001-01-01 to 9999-12-31 in UTC, the range of "
            "instants a store keeps; give a moment within it"
        ) from None


def _wall_time(text: str, *, day_first: bool = False) -> datetime:
    """The date and time ``text`` writes, as written: naive unless it carries its offset
    (read as :func:`read_datetime` reads it, without moving it to another zone)."""
    value = text.strip()
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return _local_datetime(text, value, day_first)


def _local_datetime(text: str, value: str, day_first: bool) -> datetime:
    match = _LOCAL_DATE.fullmatch(value)
    if match is None:
        raise ValueError(
            f"{text!r} is not a date and time leadfunnel reads; write it as ISO 8601 "
            "(2024-03-15 14:30) or M/D/YYYY h:mm AM/PM"
        )
    first, mark, second, year, hour, minute, second_s, half = match.groups()
    if mark == "." or day_first:
        day, month = int(first), int(second)
    else:
        month, day = int(first), int(second)
    hours, minutes = int(hour or 0), int(minute or 0)
    if half is not None:
        if not 1 <= hours <= 12:
            raise ValueError(f"{text!r} is not a time: the hour of an AM/PM time is 1 to 12")
        hours = hours % 12 + (12 if half[0] in "Pp" else 0)
    try:
        return datetime(int(year), month, day, hours, minutes, int(second_s or 0))
    except ValueError as exc:
        hint = ""
        if mark == "/" and month > 12 >= day:
            hint = (
                "; this looks like month/day/year: read the file without --day-first"
                if day_first
                else "; this looks like day/month/year: read the file with --day-first"
            )
        raise ValueError(f"{text!r} is not a date ({exc}){hint}") from None


# --- statuses ------------------------------------------------------------------------

#: What a status value makes of a row: a lead with this status, or a contact of this
#: type. ``None`` in a map means "no opinion": the row's other status columns decide.
Target: TypeAlias = tuple[Literal["lead", "contact"], str]

_IMPORTABLE_STATUSES = tuple(s.value for s in LeadStatus if s is not LeadStatus.CONVERTED)
_CONTACT_ONLY = tuple(t.value for t in ContactType if t.value not in set(LeadStatus))
_RAW: Target = ("lead", "raw")
_PROSPECT: Target = ("contact", "prospect")

_SALESFORCE_STATUS: dict[str, Target | None] = {
    "Open - Not Contacted": _RAW,
    "Working - Contacted": _RAW,
    "Closed - Not Converted": ("lead", "unqualified"),
    "Closed - Converted": _PROSPECT,
}
_HUBSPOT_LIFECYCLE: dict[str, Target | None] = {
    "Subscriber": ("lead", "suspect"),
    "Lead": _RAW,
    "Marketing Qualified Lead": ("lead", "qualified"),
    "Sales Qualified Lead": ("lead", "qualified"),
    "Opportunity": _PROSPECT,
    "Customer": ("contact", "client"),
    "Evangelist": ("contact", "client"),
    "Other": _RAW,
}
# HubSpot's other default lead statuses say where sales stands with a lead, not what
# it is: the lifecycle stage decides.
_HUBSPOT_LEAD_STATUS: dict[str, Target | None] = {
    "Unqualified": ("lead", "unqualified"),
    **dict.fromkeys(
        (
            "New",
            "Open",
            "In Progress",
            "Open Deal",
            "Attempted to Contact",
            "Connected",
            "Bad Timing",
        ),
        None,
    ),
}
# A converted lead is a contact, of a type the status does not say: no default, so that
# the row is rejected saying how to give it one (see CsvSource._status).
_GENERIC_STATUS: dict[str, Target | None] = {
    s.value: ("lead", s.value) for s in LeadStatus if s is not LeadStatus.CONVERTED
}


def _key(value: str) -> str:
    # "Marketing Qualified Lead", "marketingqualifiedlead" (HubSpot's internal value) and
    # "MARKETING_QUALIFIED_LEAD" are one value.
    return "".join(ch for ch in value.casefold() if ch.isalnum())


def _target(text: str, where: str) -> Target | None:
    kind, _, name = text.strip().rpartition(":")
    if not name and not kind:
        return None  # "": no opinion
    if kind in ("", "lead") and name in _IMPORTABLE_STATUSES:
        return ("lead", name)
    if (kind == "contact" and name in set(ContactType)) or (not kind and name in _CONTACT_ONLY):
        return ("contact", name)
    raise ConfigError(
        f"{where}: {text!r} is not something a row can become; use a lead status "
        f"({', '.join(_IMPORTABLE_STATUSES)}), a contact type ({', '.join(_CONTACT_ONLY)}, "
        'or "contact:unqualified", "contact:avoid"), or "" to let the other status '
        "columns decide"
    )


# A Salesforce lead's converted flag (IsConverted; a report's "Converted"), which makes
# a row a contact (prospect) unless the caller's map says what its status value makes.
_CONVERTED_FLAGS = ("isconverted", "converted")


class StatusMap:
    """What the values of a CRM's status columns make of a row.

    ``StatusMap({"Status": {"Open - Nurturing": "farm_list", "Closed - Won": "client"}})``
    maps values of the ``Status`` column: to a lead status (``suspect``, ``farm_list``,
    ``raw``, ``qualified``, ``unqualified``, ``avoid``), to a contact type (``prospect``,
    ``client``, ``supplier``, ``partner``, ``other``; ``contact:unqualified`` and
    ``contact:avoid`` for the two names a lead status shares), or to ``""``: no opinion,
    the row's other status columns decide. Values match whatever their case, spaces and
    punctuation. These entries come on top of the built-in ones (:meth:`default`), and
    win over a Salesforce row's converted flag (``IsConverted``), which on its own makes
    the row a contact (prospect); a table for that flag is refused.
    """

    #: The status columns of each format, in the order they decide a lead's status
    #: (a contact type from any column wins).
    COLUMNS: Mapping[str, tuple[str, ...]] = {
        "salesforce": ("Status", "Lead Status"),
        "hubspot": ("Lead Status", "Lifecycle Stage"),
        "generic": ("status",),
    }

    def __init__(
        self,
        columns: Mapping[str, Mapping[str, str | Target | None]],
        *,
        source: str = "status map",
    ) -> None:
        known = {name for names in self.COLUMNS.values() for name in names}
        self._columns: dict[str, dict[str, Target | None]] = {}
        for column, values in columns.items():
            if column.casefold() in _CONVERTED_FLAGS:
                raise ConfigError(
                    f"{source}: [{column}] is Salesforce's flag of a converted lead, not a "
                    f"status column: a row whose {column} is true becomes a contact "
                    "(prospect), unless the table of its status column maps the row's "
                    'status value, which wins: [Status] then "Closed - Converted" = '
                    '"client" (["Lead Status"] in a Salesforce report)'
                )
            if column not in known:
                raise ConfigError(
                    f"{source}: [{column}] is not a status column; use one of: "
                    f"{', '.join(sorted(known))}"
                )
            if not isinstance(values, Mapping):
                raise ConfigError(
                    f"{source}: {column!r} must be a table of values, "
                    f'e.g. [Status] then "Open - Nurturing" = "farm_list"'
                )
            table = self._columns.setdefault(column, {})
            spelt: dict[str, str] = {}  # each value as matched -> as the map wrote it
            for value, goal in values.items():
                where = f"{source}: [{column}] {value!r}"
                if not isinstance(goal, (str, tuple)) and goal is not None:
                    raise ConfigError(f"{where}: give a string, not {goal!r}")
                key = _key(value)
                target = _target(goal, where) if isinstance(goal, str) else goal
                if key in spelt and table[key] != target:
                    raise ConfigError(
                        f"{where} and {spelt[key]!r} are the same value (values match "
                        "whatever their case, spaces and punctuation) mapped two ways; "
                        "keep one"
                    )
                spelt[key] = value
                table[key] = target

    @classmethod
    def from_toml(cls, path: str | PathLike[str]) -> StatusMap:
        """The map in a TOML file: one table per status column (see the class)."""
        from ._toml import read_toml

        source = f"status map {str(path)!r}"
        try:
            data = read_toml(path, "status map")  # UTF-8, with or without a byte-order mark
        except RecursionError:
            raise ConfigError(f"{source} cannot be read: too deep") from None
        return cls(data, source=source)

    @classmethod
    def default(cls, format: str | None = None) -> StatusMap:
        """The built-in map: Salesforce's and HubSpot's standard values. Both name a
        column "Lead Status": a Salesforce report's holds Salesforce's values only
        (``format="salesforce"``), a HubSpot file's HubSpot's (``"hubspot"``); with no
        format, either's."""
        lead_status = {
            "salesforce": _SALESFORCE_STATUS,
            "hubspot": _HUBSPOT_LEAD_STATUS,
        }.get(format or "", {**_SALESFORCE_STATUS, **_HUBSPOT_LEAD_STATUS})
        return cls(
            {
                "Status": _SALESFORCE_STATUS,
                "Lead Status": lead_status,
                "Lifecycle Stage": _HUBSPOT_LIFECYCLE,
                "status": _GENERIC_STATUS,
            }
        )

    def __or__(self, other: StatusMap) -> StatusMap:
        """This map with ``other``'s entries on top."""
        merged = StatusMap({})
        for source in (self, other):
            for column, table in source._columns.items():
                merged._columns.setdefault(column, {}).update(table)
        return merged

    def table(self, column: str) -> dict[str, Target | None]:
        """The column's values (as :func:`_key` spells them) and what they map to."""
        return self._columns.get(column, {})

    @property
    def columns(self) -> tuple[str, ...]:
        """The status columns the map has a table for."""
        return tuple(self._columns)


# --- layouts -------------------------------------------------------------------------

# Salesforce exports (Data Loader, the weekly Data Export) use the API field names.
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
# A Salesforce report ("Export details") uses the labels the screen shows.
_SALESFORCE_REPORT = {
    "First Name": "first_name",
    "Last Name": "last_name",
    "Company / Account": "company",
    "No. of Employees": "employees",
    "Annual Revenue": "annual_revenue",
    "Country (text only)": "country",
    "State/Province": "region",
    "State/Province (text only)": "region",
    "Zip/Postal Code": "postal_code",
    "Lead Source": "source",
    "Lead Owner": "owner",
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
# Fields the funnel keeps itself, never read from a file as they are: a record's id,
# version and times, its erasure (a file cannot say a person was erased, which would
# leave their personal data stored under an erased record), its profile (qualification
# sets it), its link to a converted record. A generic file's columns named so are listed
# as not imported. (created_at and status are read, as a creation date and a status.)
_INTERNAL = (
    *("id", "created_at", "updated_at", "version", "status_at", "status"),
    *("erased_at", "profile", "contact_id", "lead_id"),
)
_GENERIC_FIELDS = frozenset(name for name in Lead.model_fields if name not in _INTERNAL)
_NUMBER_FIELDS = {"employees": True, "annual_revenue": False}  # field -> whole number
# A contact has no lead-only fields (interest, needs, campaign...): a converted lead's
# rating says nothing about the contact it became.
_LEAD_ONLY = frozenset(Lead.model_fields) - frozenset(Contact.model_fields)


@dataclass(frozen=True, slots=True)
class _Layout:
    """The columns of one export format: per field, its columns, strongest first."""

    fields: Mapping[str, tuple[str, ...]]
    email_opt_out: tuple[str, ...] = ()
    call_opt_out: tuple[str, ...] = ()
    rating: tuple[str, ...] = ()
    created: tuple[str, ...] = ()
    converted: tuple[str, ...] = ()  # a true value makes the row a contact (prospect)

    @property
    def columns(self) -> frozenset[str]:
        """Every column the layout reads."""
        flags = (self.email_opt_out, self.call_opt_out, self.rating, self.created)
        return frozenset(
            [c for cs in self.fields.values() for c in cs]
            + [c for cs in (*flags, self.converted) for c in cs]
        )


def _by_field(*tables: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    fields: dict[str, tuple[str, ...]] = {}
    for table in tables:
        for column, name in table.items():
            fields[name] = (*fields.get(name, ()), column)
    return fields


# A person's other addresses and numbers, as CRMs name them (Zoho's "Secondary Email",
# HubSpot's "Additional email addresses", Salesforce's OtherPhone): more ways to
# recognise them, never their e-mail or phone. ("Work Email", "Business Phone" may well
# be the main one: those are not guessed.)
_OTHER_EMAILS = (
    *("Secondary Email", "Other Email", "Alternate Email", "Additional Email"),
    *("Email 2", "Email 3"),
)
_OTHER_PHONES = ("Other Phone", "Secondary Phone", "Phone 2", "Phone 3")

_SALESFORCE_FIELDS = _by_field(_SALESFORCE, _SALESFORCE_REPORT)
# A mobile number is the phone when the phone column is empty.
_SALESFORCE_FIELDS["phone"] += ("MobilePhone", "Mobile", "Mobile Phone")
_SALESFORCE_FIELDS["other_emails"] = _OTHER_EMAILS
_SALESFORCE_FIELDS["other_phones"] = ("OtherPhone", *_OTHER_PHONES)

_LAYOUTS: dict[str, _Layout] = {
    "salesforce": _Layout(
        fields=_SALESFORCE_FIELDS,
        email_opt_out=("HasOptedOutOfEmail", "Email Opt Out"),
        call_opt_out=("DoNotCall", "Do Not Call"),
        rating=("Rating",),
        created=("CreatedDate", "Create Date", "Created Date"),
        converted=("IsConverted", "Converted"),
    ),
    "hubspot": _Layout(
        fields={
            **_by_field(_HUBSPOT),
            "phone": ("Phone Number", "Mobile Phone Number"),
            "other_emails": ("Additional email addresses", *_OTHER_EMAILS),
            "other_phones": _OTHER_PHONES,
        },
        email_opt_out=("Unsubscribed from all email",),
        created=("Create Date",),
    ),
    "generic": _Layout(
        fields={name: (name,) for name in sorted(_GENERIC_FIELDS)},
        created=("created_at",),
    ),
}


def _distinct(format: str) -> frozenset[str]:
    # Columns of this format and no other (shared titles such as "Email" tell nothing).
    own = _LAYOUTS[format].columns | set(StatusMap.COLUMNS[format])
    other = "hubspot" if format == "salesforce" else "salesforce"
    return own - _LAYOUTS[other].columns - set(StatusMap.COLUMNS[other])


_SIGNATURES = {name: _distinct(name) for name in ("salesforce", "hubspot")}


# A column named with one plain word ("Company", "Title", "Phone") is found in many
# CRMs' exports: alone, it tells nothing of the format.
_PLAIN_WORD = re.compile(r"[A-Z][a-z]+")


def _score(columns: set[str], signature: frozenset[str]) -> int:
    found = columns & signature
    plain = sum(1 for name in found if _PLAIN_WORD.fullmatch(name))
    return len(found) - (plain if plain < 2 else 0)


def _detect(header: tuple[str, ...]) -> str | None:
    columns = set(header)
    scores = {name: _score(columns, signature) for name, signature in _SIGNATURES.items()}
    if scores["salesforce"] != scores["hubspot"]:
        return max(scores, key=lambda name: scores[name])
    if scores["salesforce"]:
        raise CsvError(
            "the header mixes Salesforce and HubSpot columns; pass --format to say which it is"
        )
    # Another e-mail or phone ("Email 2") is named so in many CRMs' files: no sign of one.
    shared = columns - {*_OTHER_EMAILS, *_OTHER_PHONES}
    read = {
        name: len(shared & (_LAYOUTS[name].columns | set(StatusMap.COLUMNS[name])))
        for name in ("hubspot", "salesforce")
    }
    if any(read.values()):
        # Titles both share ("First Name"...), and plain words: the format reading more
        # of them (HubSpot when even: both read the shared titles alike).
        return max(read, key=lambda name: read[name])
    if columns & _GENERIC_FIELDS and columns <= _GENERIC_FIELDS | {"", "status", "created_at"}:
        return "generic"
    if {"email", "phone"} & columns:
        return "generic"
    return None


# --- rows ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CsvRow:
    """One data row: its number, the record fields it gives, its cells, and the reason
    it cannot be imported (``error``), if any.

    ``number`` is the data row under the header, blank rows counted, as a spreadsheet
    numbers them. ``cells`` holds one cell per header column, as read. ``fields`` are
    what :meth:`leadfunnel.Funnel.import_leads` takes: ``Lead`` fields, or ``Contact``
    fields with a ``type`` when the row is a contact.
    """

    number: int
    fields: dict[str, Any]
    cells: tuple[str, ...]
    error: str | None = None


@dataclass(frozen=True, slots=True)
class _Plan:
    """How one file's columns are read: column positions per field and per flag."""

    fields: tuple[tuple[str, tuple[int, ...]], ...]  # text, as written
    numbers: tuple[tuple[str, tuple[int, ...], bool], ...]  # and whether whole
    sets: tuple[tuple[str, tuple[int, ...]], ...]  # items separated by , or ;
    email_opt_out: tuple[int, ...]
    call_opt_out: tuple[int, ...]
    rating: tuple[int, ...]
    created: tuple[int, ...]
    converted: tuple[int, ...]
    statuses: tuple[tuple[str, int], ...]  # (column, position), in deciding order
    used: frozenset[int]
    # The application's own date fields: (name, positions, "datetime"|"naive"|"date").
    dates: tuple[tuple[str, tuple[int, ...], _Kind], ...] = ()

    @property
    def dated(self) -> tuple[int, ...]:
        """Every date column's position: they all write dates in one order."""
        return (*self.created, *(i for _, positions, _ in self.dates for i in positions))


def _plan(
    layout: _Layout,
    format: str,
    header: tuple[str, ...],
    statuses: bool,
    custom: Mapping[str, tuple[str, ...]] | None = None,
    kinds: Mapping[str, _Kind] | None = None,
) -> _Plan:
    where = {name: i for i, name in reversed(list(enumerate(header))) if name}

    def present(columns: tuple[str, ...]) -> tuple[int, ...]:
        return tuple(where[c] for c in columns if c in where)

    found = {name: present(columns) for name, columns in layout.fields.items()}
    found = {name: positions for name, positions in found.items() if positions}
    special = {*_NUMBER_FIELDS, *SET_FIELDS}
    fields = tuple((name, found[name]) for name in found if name not in special)
    numbers = tuple((n, found[n], whole) for n, whole in _NUMBER_FIELDS.items() if n in found)
    sets = tuple((name, found[name]) for name in SET_FIELDS if name in found)
    # A column named like one of the lead model's own fields (or its alias) fills it:
    # a number or a date read as the file's others are, anything else as written.
    dates: list[tuple[str, tuple[int, ...], _Kind]] = []
    for name, columns in (custom or {}).items():
        positions = present(columns)
        if positions and name not in found:
            found[name] = positions
            kind = (kinds or {}).get(name)
            if kind in ("whole", "amount"):
                numbers += ((name, positions, kind == "whole"),)
            elif kind == "items":
                sets += ((name, positions),)
            elif kind is not None:
                dates.append((name, positions, kind))
            else:
                fields += ((name, positions),)
    status_columns = tuple((c, where[c]) for c in StatusMap.COLUMNS[format] if c in where)
    converted = present(layout.converted)
    flags = [present(columns) for columns in (layout.email_opt_out, layout.call_opt_out)]
    rating, created = present(layout.rating), present(layout.created)
    # Status columns count as used even when the caller overrides them: they were
    # read, and on purpose not kept.
    used = {i for positions in found.values() for i in positions}
    used.update(i for _, i in status_columns)
    for positions in (converted, *flags, rating, created):
        used.update(positions)
    return _Plan(
        fields=fields,
        numbers=numbers,
        sets=sets,
        email_opt_out=flags[0],
        call_opt_out=flags[1],
        rating=rating,
        created=created,
        converted=converted if statuses else (),
        statuses=status_columns if statuses else (),
        used=frozenset(used),
        dates=tuple(dates),
    )


class CsvSource:
    """An opened lead list: its path, format, encoding, dialect, header, and how it is
    read. Iterate :meth:`rows`; afterwards :attr:`unmapped` counts the status values no
    map knew, and :meth:`unused_columns` names the columns nothing was read from."""

    def __init__(
        self,
        path: Path,
        format: str,
        encoding: str,
        delimiter: str,
        header: tuple[str, ...],
        *,
        statuses: StatusMap,
        read_statuses: bool,
        timezone: tzinfo,
        day_first: bool | None,
        custom: Mapping[str, tuple[str, ...]] | None = None,
        preamble: int = 0,
        kinds: Mapping[str, _Kind] | None = None,
        mapped: StatusMap | None = None,
    ) -> None:
        self.path = path
        self.format = format
        self.encoding = encoding
        self.delimiter = delimiter
        self.header = header
        self.timezone = timezone
        #: Whether slash dates put the day first; None until decided from the file's own
        #: dates (see :meth:`notes`).
        self.day_first = day_first
        self._date_order: str | None = None
        # A date that could be read day or month first, and its row, when the file's
        # own dates did not tell the order (see _decide_date_order).
        self._undecided: tuple[str, int] | None = None
        # "gap"/"twice" -> how many times fell in a clock change, and the first's row.
        self._clock_changes: dict[str, tuple[int, int]] = {}
        self._number = 0
        self._plan = _plan(_LAYOUTS[format], format, header, read_statuses, custom, kinds)
        # A spreadsheet writes the list separator its locale does not need for numbers.
        self._thousands = {",": ",", ";": "."}.get(delimiter)
        self._tables = {column: statuses.table(column) for column, _ in self._plan.statuses}
        # The caller's own entries (``mapped``, a --status-map), which say what a
        # converted row becomes too: a Salesforce export marks every converted lead
        # IsConverted, and "Closed - Converted" = "client" must not go unread.
        self._chosen = {
            column: table
            for column, _ in self._plan.statuses
            if mapped is not None and (table := mapped.table(column))
        }
        self._targets: dict[tuple[str, str], Target | bool | None] = {}
        # Flag cells as written -> what they say, for opt-out columns (True) and others.
        self._flags: dict[bool, dict[str, bool]] = {True: {}, False: {}}
        #: (status column, value) -> how many rows had that value no map knew.
        self.unmapped: Counter[tuple[str, str]] = Counter()
        #: Lines of a Salesforce report's footer (title, copyright...) left out.
        self.footer_lines = 0
        self._unnamed = [i for i, name in enumerate(header) if not name]
        text = self._plan.fields
        self._text_names = tuple(name for name, _ in text)
        self._text_firsts = _picker(tuple(positions[0] for _, positions in text))
        self._text_others = tuple(
            (j, positions[1:]) for j, (_, positions) in enumerate(text) if len(positions) > 1
        )
        # The e-mail and phone, whose "N/A" (as a number's) is no value: a person without
        # one, and the mobile number stands in for a phone written so.
        self._keyed = frozenset(j for j, (name, _) in enumerate(text) if name in _KEYED)
        # Two columns of one field (an export's name and its report label, "Company" and
        # "Company / Account") that disagree: which is right cannot be known, and taking
        # the first would drop the other without a word. The phone's others are the
        # mobile number, used where the phone is blank: a person may well have both.
        self._text_twins = tuple(
            (j, positions)
            for j, (name, positions) in enumerate(text)
            if len(positions) > 1 and name != "phone"
        )
        # The phone's other columns (the mobile number): where the phone is given too,
        # a different number there is one of the person's other phones, a way to
        # recognise them (a later file may give it as their phone), never dropped.
        self._phone_more = next((p[1:] for name, p in text if name == "phone"), ())
        # The date fields, the creation date first: (name, positions, how read).
        created: tuple[tuple[str, tuple[int, ...], _Kind], ...] = (
            (("created_at", self._plan.created, "datetime"),) if self._plan.created else ()
        )
        self._dates = (*created, *self._plan.dates)
        self._unnamed_with_data: set[int] = set()
        self._preamble = preamble  # lines before the header (Excel's "sep=;")

    @property
    def spreadsheet_made(self) -> bool:
        """Whether the file reads as a spreadsheet wrote it: a byte-order mark, a legacy
        encoding (cp1252...) or an Excel ``sep=`` line. A file written back for the
        same user (the rejects) is then written so a spreadsheet opens it alike."""
        return self._preamble > 0 or self.encoding != "utf-8"  # a codec's own name

    def unused_columns(self) -> list[str]:
        """The columns nothing is imported from, in header order: every named one the
        format does not read, and each unnamed one that held data (after :meth:`rows`)."""
        return [
            name or f"(column {i + 1}, no name)"
            for i, name in enumerate(self.header)
            if i not in self._plan.used and (name or i in self._unnamed_with_data)
        ]

    def explain(self, row: CsvRow, reason: str) -> str:
        """``reason``, why the import rejected ``row`` (one of :meth:`rows`), with each
        field it names as the file's column that gave the field its value:
        ``"notes: String should have at most 32000 characters"`` becomes
        ``"Description: String should ..."`` (as the reasons :meth:`rows` gives say
        ``"AnnualRevenue: '1.200' is ambiguous..."``). Parts of the reason that name no
        field this file fills, and a field whose column is named like it, are left as
        they are."""
        if ": " not in reason:
            return reason
        columns = self._columns_of(row)
        parts = reason.split("; ")  # how the import joins its errors
        for k, part in enumerate(parts):
            named = _FIELD_PART.match(part)
            column = columns.get(named[1]) if named is not None else None
            if named is not None and named[1] == "other_phones":
                column = self._phone_column(row.cells, part) or column
            if named is not None and column is not None and column != named[1]:
                # "other_emails.1": the item's place in a set means nothing in the file.
                parts[k] = f"{column}: {part[named.end() :]}"
        return "; ".join(parts)

    def _phone_column(self, cells: Sequence[str], part: str) -> str | None:
        """The column of ``cells`` holding the other phone a reason's ``part`` quotes
        (an other phones column, or the mobile number's), or None."""
        quoted = _QUOTED_VALUE.search(part)
        if quoted is None:
            return None
        positions = [*dict(self._plan.sets).get("other_phones", ()), *self._phone_more]
        for i in positions:
            items = cells[i].replace(";", ",").split(",") if i < len(cells) else ()
            if quoted[1] in map(str.strip, items):
                return self.header[i]
        return None

    def _columns_of(self, row: CsvRow) -> dict[str, str]:
        """Each field the file fills and the column of ``row`` that gave its value (its
        first non-blank one, as :meth:`_fields` reads it; else the first)."""
        plan = self._plan
        cells = row.cells

        def column(positions: tuple[int, ...]) -> str:
            given = [i for i in positions if i < len(cells) and cells[i].strip()]
            return self.header[(given or list(positions))[0]]

        found = {name: column(positions) for name, positions in (*plan.fields, *plan.sets)}
        more = [i for i in self._phone_more if i < len(cells) and cells[i].strip()]
        if more and "other_phones" not in found:
            found["other_phones"] = self.header[more[0]]
        for name, positions, _ in (*plan.numbers, *plan.dates):
            found[name] = column(positions)
        flags = (*plan.email_opt_out, *plan.call_opt_out)
        if flags and "opt_outs" not in found:
            found["opt_outs"] = column(flags)
        if plan.rating:
            found.setdefault("interest", column(plan.rating))
        if plan.created:
            found["created_at"] = column(plan.created)
        statuses = tuple(i for _, i in plan.statuses)
        if statuses:
            found["status"] = found["type"] = column((*plan.converted, *statuses))
        return found

    def rows(self) -> Iterator[CsvRow]:
        """Each data row, streamed from the file; blank rows are skipped (and counted).

        A row the CSV reader cannot split (a cell over the size limit) comes as a row
        with an ``error`` naming the lines it spans and its cell; reading goes on after
        it, so the rows after keep their numbers. A cell over the limit whose quote is
        left open (never closed, or closed before other text: a stray quote) names the
        lines it swallowed up to the limit instead, and reading goes on after them. So
        does a row whose quote was left open: one open at the end of the file, or a cell
        of several lines some of which split into as many cells as the header (rows of
        their own, swallowed), with all its cells.
        """
        width = len(self.header)
        salesforce = self.format == "salesforce"
        held: list[CsvRow] = []  # a Salesforce report's footer, until we know
        before = 0  # the number of the last row not held
        # A row with a cell of several lines, until we know whether it is the file's
        # last (a quote open at the end of the file swallows the lines after it).
        pending: tuple[CsvRow, tuple[int, int]] | None = None
        with self._open() as handle, _Follower(self._open) as follower:
            reader = csv.reader(handle, delimiter=self.delimiter)
            for _ in range(self._preamble + 1):  # Excel's "sep=" line, the header row
                next(reader, None)
            number = 0
            skipped = 0  # lines read past the reader (the rest of a row it cannot read)
            while True:
                first_line = reader.line_num + skipped + 1
                try:
                    record = next(reader)
                except StopIteration:
                    break
                except csv.Error as exc:
                    if pending is not None:
                        yield pending[0]
                        pending = None
                    number += 1
                    read = reader.line_num + skipped
                    why, past = self._skip_unreadable(handle, follower, exc, first_line, read)
                    skipped += past
                    yield CsvRow(number, {}, (), why)
                    continue
                if pending is not None:
                    yield pending[0]
                    pending = None
                number += 1
                joined = "".join(record)
                if not joined.strip():
                    continue  # blank line
                footer = salesforce and not joined[len(record[0]) :].strip()
                # Most rows hold no cell leadfunnel neutralised: test that in C before
                # calling restore() on every cell.
                if "'" in joined and any(map(_QUOTED, record)):
                    record = list(map(restore, record))
                if '="' in joined:
                    record = list(map(_excel_text, record))
                several = "\n" in joined or "\r" in joined  # inline: most rows are not
                lines = (first_line, reader.line_num + skipped) if several else None
                row = self._row(number, record, width, lines)
                if footer:
                    held.append(row)
                    if len(held) > _FOOTER_LINES:  # rows, then: memory stays flat
                        before = held[0].number
                        yield held.pop(0)
                    continue
                before = number
                if held:
                    yield from held
                    held.clear()
                if several:
                    pending = (row, (first_line, reader.line_num + skipped))
                    continue
                yield row
        if pending is not None:
            row, lines = pending
            if self._open_at_end(lines[0]):
                row = CsvRow(row.number, {}, row.cells, self._open_quote(row.cells, lines, True))
            yield row
        start = _footer_start(held, before)
        if start is None:
            yield from held
        else:
            yield from held[:start]
            self.footer_lines = len(held) - start

    def _skip_unreadable(
        self, handle: IO[str], follower: _Follower, exc: csv.Error, first: int, read: int
    ) -> tuple[str, int]:
        """Why the row starting at line ``first`` cannot be read (the reader failed on
        it at line ``read``, which it took whole), and how many lines of ``handle``, the
        reader's, it skipped to the row's end.

        The reader, started again after a cell over its size limit, would read on from
        inside that cell: its lines would come as rows. So the row is followed to its
        end (by ``follower``, a reading of its own): a cell whose quote closes as a CSV
        writer closes it (before a separator or a line break) is skipped whole, the row
        rejected alone. A quote left open (never closed, or closed before other text:
        a stray quote opened it, and the lines after it are rows) leaves reading to go
        on after the lines the reader took, as they are rows of their own."""
        limit = csv.field_size_limit()
        span = _span(follower.lines_from(first, mark=read), self.delimiter, limit)
        last = first + span.lines - 1
        if not span.closed or span.over < 0 or last < read:
            return _unreadable(exc, first, read), 0
        if last > read:
            # The rest of the row: lines the reader has not taken, skipped in C.
            deque(itertools.islice(handle, last - read), maxlen=0)
        over = span.over
        column = (self.header[over] if over < len(self.header) else "") or f"column {over + 1}"
        lines = f"line {first}" if last == first else f"lines {first}-{last}"
        return (
            f"{lines} of the file: its {column!r} cell holds {span.length:,} characters, "
            f"more than the {limit:,} a cell may hold (no field holds that much: notes hold "
            "32,000); shorten the cell and import this row again",
            last - read,
        )

    def _open_at_end(self, line: int) -> bool:
        """Whether the row starting at ``line``, the file's last, leaves a quote open
        (the reader, lenient, takes the rest of the file as its last cell)."""
        with self._open() as handle:
            strict = csv.reader(
                itertools.islice(handle, line - 1, None), delimiter=self.delimiter, strict=True
            )
            try:
                for _ in strict:
                    pass
            except csv.Error as exc:
                return "unexpected end of data" in str(exc)
        return False

    def _open_quote(self, cells: tuple[str, ...], lines: tuple[int, int], at_end: bool) -> str:
        """Why the row of ``cells``, on file ``lines``, is rejected: a quote left open
        in it swallowed the lines after it (to the end of the file, ``at_end``)."""
        first, last = lines
        where = next(
            # A wide row keeps every cell: one beyond the header has no name.
            (
                (self.header[i] if i < len(self.header) else "") or f"column {i + 1}"
                for i, c in enumerate(cells)
                if _several(c)
            ),
            None,
        )
        cell = f"its {where!r} cell" if where else "one of its cells"
        swallowed = f"line {first + 1}" if last == first + 1 else f"lines {first + 1}-{last}"
        if at_end:
            reason = (
                f"line {first}: a quote opened in this row is never closed (it runs to "
                "the end of the file)"
            )
            if last > first:
                reason += f", so {swallowed} went into {cell}"
        else:
            reason = (
                f"line {first}: a quote opened in this row was left open: {swallowed}, which "
                f"look like rows of their own, went into {cell}"
            )
        again = " and those lines" if last > first else ""
        return f"{reason}; close the quote (or remove it) and import this row{again} again"

    def _swallows(self, cells: tuple[str, ...]) -> bool:
        """Whether a cell of several lines holds lines that split into as many cells as
        the header: rows a quote left open swallowed. (Not for a header of fewer than 4
        columns, where a line of a note such as "apples, pears" would split as a row.)"""
        width = len(self.header)
        if width < 4:
            return False
        for cell in cells:
            if _several(cell):
                lines = csv.reader(cell.splitlines()[1:], delimiter=self.delimiter)
                if any(len(split) == width for split in lines):
                    return True
        return False

    def _row(
        self,
        number: int,
        record: list[str],
        width: int,
        lines: tuple[int, int] | None = None,
    ) -> CsvRow:
        """The row ``number`` of ``record``; ``lines``, the file lines it spans, when a
        cell holds several lines."""
        if len(record) > width and any(cell.strip() for cell in record[width:]):
            # Its cells are out of place: reading any of them would be wrong (and a
            # status from the wrong column would be counted as unknown). Every cell is
            # kept, for the rejects file.
            return CsvRow(
                number,
                {},
                tuple(record),
                f"row {number} has {len(record)} cells but the header has {width}",
            )
        if len(record) >= width:
            cells = tuple(record[:width]) if len(record) > width else tuple(record)
        else:
            cells = (*record, *("",) * (width - len(record)))
        if lines is not None and self._swallows(cells):
            return CsvRow(number, {}, cells, self._open_quote(cells, lines, at_end=False))
        problems: list[str] = []
        # Every cell is read stripped: strip them all at once, in C.
        stripped = list(map(str.strip, cells))
        for i in self._unnamed:
            if stripped[i]:
                self._unnamed_with_data.add(i)
        self._number = number  # the row a date read in a daylight-saving change names
        fields = self._fields(stripped, problems)
        if not problems and not any(map(fields.get, NAMING_FIELDS)):
            # A line no CRM writes for a person (a report's total, a footer line this
            # reading does not know): stored, it would be a lead naming nobody, added
            # again by every import of the file.
            problems.append(NAMES_NOBODY)
        return CsvRow(number, fields, cells, "; ".join(problems) or None)

    def _fields(self, cells: list[str], problems: list[str]) -> dict[str, Any]:
        """The record fields of a row's ``cells`` (stripped)."""
        plan = self._plan
        # Each text field's first column, then, where it is blank, the field's others.
        values: Sequence[str] = self._text_firsts(cells)
        for j, others in self._text_others:
            if not values[j] or (j in self._keyed and _no_value(values[j])):
                values = list(values)
                values[j] = _first(cells, others)[1]
        for j, positions in self._text_twins:
            self._agree(cells, positions, self._text_names[j], problems)
        fields: dict[str, Any] = {
            name: v for name, v in zip(self._text_names, values, strict=True) if v
        }
        for name in _KEYED:
            if name in fields and _no_value(fields[name]):
                del fields[name]
        for name, positions, whole in plan.numbers:
            if len(positions) > 1:
                # A number's two columns (AnnualRevenue and a report's "Annual Revenue",
                # a field's name and alias): as text fields', they must agree.
                number = self._number_of(cells, positions, name, whole, problems)
                if number is not None:
                    fields[name] = number
                continue
            i, value = _first(cells, positions)
            if value:
                try:
                    number = read_number(value, whole=whole, thousands=self._thousands)
                except ValueError as exc:
                    problems.append(f"{self.header[i]}: {exc}")
                    continue
                if number is not None:
                    fields[name] = number
        for name, positions in plan.sets:
            _, value = _first(cells, positions)
            if value:
                items = (v.strip() for v in value.replace(";", ",").split(","))
                fields[name] = [item for item in items if item]
        if self._phone_more and "phone" in fields:
            more = [i for i in self._phone_more if _another_phone(cells[i], fields["phone"])]
            if more:
                given = fields.get("other_phones", [])
                fields["other_phones"] = [*given, *(cells[i] for i in more)]
        email_out = self._flag(cells, plan.email_opt_out, problems, opt_out=True)
        call_out = self._flag(cells, plan.call_opt_out, problems, opt_out=True)
        if email_out or call_out or "opt_outs" in fields:
            opt_outs = list(fields.get("opt_outs", ()))
            if email_out:
                opt_outs.append("email")
            if call_out:
                opt_outs.append("call")
            if opt_outs:
                fields["opt_outs"] = list(dict.fromkeys(opt_outs))
        for i in plan.rating:
            rating = cells[i].lower()
            if rating in ("hot", "warm"):
                fields["interest"] = "high" if rating == "hot" else "slight"
        for name, positions, reading in self._dates:
            if len(positions) > 1:
                when = self._date_of(cells, positions, name, reading, problems)
                if when is not None:
                    fields[name] = when
                continue
            i, text = _first(cells, positions)
            if text:
                when = self._date(i, text, reading, problems)
                if when is not None:
                    fields[name] = when
        target = self._status(cells, problems)
        if target is not None:
            kind, name = target
            if kind == "contact":
                fields = {k: v for k, v in fields.items() if k not in _LEAD_ONLY}
                fields["type"] = name
            else:
                fields["status"] = name
        return fields

    def _agree(
        self, cells: list[str], positions: tuple[int, ...], name: str, problems: list[str]
    ) -> None:
        """Add the row's problem naming the columns at ``positions``, all of field
        ``name``, when more than one holds a value and they disagree."""
        given = [i for i in positions if cells[i]]
        if len({cells[i].casefold() for i in given}) > 1:
            problems.append(self._disagree(cells, given, name))

    def _disagree(self, cells: list[str], given: Sequence[int], name: str) -> str:
        """The problem of a row whose columns at ``given`` hold different values of
        field ``name``."""
        named = " and ".join(f"{self.header[i]} ({cells[i]!r})" for i in given)
        return f"{named} disagree about {name}: give one value, or leave one of the columns empty"

    def _number_of(
        self,
        cells: list[str],
        positions: tuple[int, ...],
        name: str,
        whole: bool,
        problems: list[str],
    ) -> str | None:
        """The number field ``name``'s columns at ``positions`` give: each cell read
        (a cell that is no number is the row's problem, as a placeholder such as "N/A"
        is no value), and the values, however written ("2,500,000" and "2500000"), the
        same; None, with the row's problem, when they differ."""
        read: dict[int, str] = {}
        for i in positions:
            if cells[i]:
                try:
                    number = read_number(cells[i], whole=whole, thousands=self._thousands)
                except ValueError as exc:
                    problems.append(f"{self.header[i]}: {exc}")
                    return None
                if number is not None:
                    read[i] = number
        if len(set(read.values())) > 1:
            problems.append(self._disagree(cells, list(read), name))
            return None
        return next(iter(read.values()), None)

    def _date_of(
        self,
        cells: list[str],
        positions: tuple[int, ...],
        name: str,
        kind: _Kind,
        problems: list[str],
    ) -> datetime | date | None:
        """The date field ``name``'s columns at ``positions`` give, as :meth:`_number_of`
        reads numbers: the same moment however written ("2024-03-15T14:30:00Z" and
        "3/15/2024 2:30 PM" in UTC), or a day and a time within it (a report's
        "3/15/2024" beside the export's "2024-03-15T14:30:00Z": the time is taken)."""
        read: list[tuple[int, datetime | date, bool]] = []  # and whether a day alone
        for i in positions:
            text = cells[i]
            if text:
                when = self._date(i, text, kind, problems)
                if when is None:
                    return None
                # A day alone ("2024-03-15", "3/15/2024"): nothing longer than these.
                read.append((i, when, kind != "date" and len(text) <= 10))
        if not read:
            return None
        timed = [when for _, when, day in read if not day]
        chosen = timed[0] if timed else read[0][1]
        if any(when != chosen for when in timed) or any(
            not self._same_day(when, chosen) for _, when, day in read if day
        ):
            problems.append(self._disagree(cells, [i for i, _, _ in read], name))
            return None
        return chosen

    def _same_day(self, day: datetime | date, when: datetime | date) -> bool:
        """Whether ``when`` falls on ``day`` (a day's midnight, read as :meth:`_date`
        reads it: in UTC from :attr:`timezone`, or as written)."""
        if isinstance(day, datetime) and isinstance(when, datetime):
            if day.tzinfo is not None and when.tzinfo is not None:
                return day.astimezone(self.timezone).date() == when.astimezone(self.timezone).date()
            return day.date() == when.date()
        return day == when

    def _date(self, i: int, text: str, kind: _Kind, problems: list[str]) -> datetime | date | None:
        """The date in the cell ``text`` of column ``i``: a ``datetime`` in UTC, a
        ``naive`` one as written, or a ``date``; None, with the row's problem, if it
        cannot be read."""
        if self.day_first is None and "/" in text:
            self._decide_date_order()  # before the first row it matters to
        day_first = bool(self.day_first)
        try:
            when = _wall_time(text, day_first=day_first)
            if kind == "datetime":
                if self.timezone is not UTC and when.tzinfo is None:
                    self._note_clock_change(when)
                return _in_utc(when, text, self.timezone)
        except ValueError as exc:
            problems.append(f"{self.header[i]}: {self._date_problem(exc)}")
            return None
        if kind == "naive":
            if when.utcoffset() is not None:
                problems.append(
                    f"{self.header[i]}: {text!r} carries a time zone, and this column "
                    "holds times without one; write it without its offset "
                    f"({when.replace(tzinfo=None).isoformat(sep=' ')}?)"
                )
                return None
            return when
        if when.time() != datetime.min.time():
            problems.append(
                f"{self.header[i]}: {text!r} holds a time, and this column holds dates "
                f"only; give the date alone ({when.date().isoformat()}?)"
            )
            return None
        return when.date()

    def _status(self, cells: list[str], problems: list[str]) -> Target | None:
        if self._plan.converted and self._flag(
            cells, self._plan.converted, problems, opt_out=False
        ):
            return (self._chosen and self._chosen_status(cells)) or _PROSPECT
        lead: Target | None = None
        unknown: list[str] = []
        converted = ""  # a generic file's status "converted", as written
        for column, i in self._plan.statuses:
            value = cells[i]
            if not value:
                continue
            target = self._lookup(column, value)
            if target is False:
                self.unmapped[column, value] += 1
                unknown.append(f"{column} {value!r}")
                if _key(value) == LeadStatus.CONVERTED.value:
                    converted = value
            elif isinstance(target, tuple):
                if target[0] == "contact":
                    return target
                lead = lead or target
        if self.format == "generic" and converted:
            problems.append(
                f"status {converted!r}: a converted lead is a contact, and the file does not "
                "say of which type; say it with --status-map FILE.toml, a [status] table "
                'mapping converted to a contact type (converted = "prospect", or client, '
                "supplier, partner, other)"
            )
        elif unknown:
            problems.append(
                f"{' and '.join(unknown)}: no status is known for this value; say what it "
                "means with --status-map FILE.toml, or give every row one with --status"
            )
        return lead

    def _chosen_status(self, cells: list[str]) -> Target | None:
        """What the caller's map says the status values of a converted row make of it
        (a contact type from any column, else the first column's lead status); None when
        it has no entry for them, or entries of no opinion (``""``)."""
        lead: Target | None = None
        for column, i in self._plan.statuses:
            table, value = self._chosen.get(column), cells[i]
            target = table.get(_key(value)) if table and value else None
            if target is not None:
                if target[0] == "contact":
                    return target
                lead = lead or target
        return lead

    def _decide_date_order(self) -> bool:
        """Decide, for the whole file, whether its slash dates put the day or the month
        first: the first date whose first part is over 12 says day first, whose second
        part is over 12 month first (the date columns alone are read, by the C reader,
        up to that date); with none, month first, the default (and :attr:`_undecided`
        names the first date that could be read either way). Whether a date told."""
        positions = self._plan.dated
        found: tuple[bool, str, int] | None = None
        either: tuple[str, int] | None = None  # the first date that could be read both ways
        with self._open() as handle, _Follower(self._open) as follower:
            reader = csv.reader(handle, delimiter=self.delimiter)
            for _ in range(self._preamble + 1):
                next(reader, None)
            number = skipped = 0  # as rows() counts them
            while found is None:
                line = reader.line_num + skipped + 1
                try:
                    record = next(reader)
                except StopIteration:
                    break
                except csv.Error as exc:
                    number += 1
                    read = reader.line_num + skipped
                    skipped += self._skip_unreadable(handle, follower, exc, line, read)[1]
                    continue
                number += 1
                for i in positions:
                    match = _SLASH_DATE.match(record[i]) if i < len(record) else None
                    if match is None:
                        continue
                    first, second = int(match[1]), int(match[2])
                    if first > 12 >= second or second > 12 >= first:
                        found = (first > 12, match[0].strip(), number)
                        break
                    if either is None and first != second:
                        either = (match[0].strip(), number)
        if found is None:
            self._undecided = either
            # Spreadsheets separate cells with semicolons where a comma is the decimal
            # mark: in Europe, which writes the day first.
            self.day_first = self.delimiter == ";"
            if self.day_first:
                order, other = "day first (D/M/YYYY)", "--month-first"
                why = "as spreadsheets that separate cells with semicolons write them"
            else:
                order, other = "month first (M/D/YYYY)", "--day-first"
                why = "as spreadsheets that separate cells with commas write them"
                if self.delimiter != ",":
                    # Only the semicolon says where the file comes from.
                    separators = _SEPARATOR_NAMES.get(self.delimiter, repr(self.delimiter))
                    why = (
                        f"the order of a file whose cells {separators} separate (day first "
                        "is the order of one whose cells semicolons separate, as European "
                        "spreadsheets write them)"
                    )
            self._date_order = (
                f"Dates such as 05/03/2024 were read {order}, {why}: no date in the file "
                f"has a day over 12 to tell. If that is wrong, the creation dates stored are "
                f"too, and importing the file again changes nothing (its rows are duplicates "
                f"now): give such a file {other} the first time"
            )
            return False
        self.day_first, example, number = found
        order = "day first (D/M/YYYY)" if self.day_first else "month first (M/D/YYYY)"
        self._date_order = f"Dates were read {order}, as the file writes {example} (row {number})"
        return True

    def written_back(self, cells: tuple[str, ...]) -> tuple[str, ...]:
        """``cells``, a row's (see :meth:`rows`), as a rejects file writes them for the
        row to be imported again: a date that could be read day or month first
        (``05/03/2024``) in ISO 8601 as this file's order read it (``2024-03-05``), time
        and all, since the rejects file's own dates may not tell that order; every other
        cell as read."""
        if not self._plan.dated or len(cells) != len(self.header):
            return cells  # a row whose cells are out of place is written as it came
        written: list[str] | None = None
        for i in self._plan.dated:
            if "/" in cells[i]:
                iso = self._iso_date(cells[i].strip())
                if iso is not None:
                    written = written or list(cells)
                    written[i] = iso
        return cells if written is None else tuple(written)

    def _iso_date(self, text: str) -> str | None:
        """``text``, a date that could be read day or month first, in ISO 8601 as the
        file's order reads it; None for any other text (or a date that is none)."""
        match = _LOCAL_DATE.fullmatch(text)
        if match is None or match[2] != "/":
            return None
        first, second = int(match[1]), int(match[3])
        if first == second or first > 12 or second > 12:
            return None
        if self.day_first is None:
            self._decide_date_order()
        try:
            when = _wall_time(text, day_first=bool(self.day_first))
        except ValueError:
            return None
        if match[5] is None:
            return when.date().isoformat()
        return when.isoformat(sep=" ", timespec="seconds" if match[7] else "minutes")

    def _date_problem(self, exc: ValueError) -> str:
        """``exc``'s message, advising what fits when the file's order was decided from
        its own dates (a row contradicting them is wrong, not the option)."""
        message = str(exc)
        if self._date_order is None or "; this looks like" not in message:
            return message
        return message.split("; this looks like")[0] + (
            f"; {self._date_order[0].lower()}{self._date_order[1:]}, which this date "
            "contradicts: fix it and import the row again"
        )

    def notes(self) -> list[str]:
        """What the reading decided that the summary should say (after :meth:`rows`):
        the order of day and month in the file's slash dates, when no order was given;
        the times written without a zone that fall in a daylight-saving change of the
        zone they were read in, and how they were read."""
        notes = [self._date_order] if self._date_order else []
        gap, twice = self._clock_changes.get("gap"), self._clock_changes.get("twice")
        if gap or twice:
            count = sum(n for n, _ in self._clock_changes.values())
            how = []
            if gap:
                how.append(
                    f"{gap[0]} that {'does' if gap[0] == 1 else 'do'} not exist there (the "
                    f"clock skips them; first at row {gap[1]}) as an hour later on the clock"
                )
            if twice:
                how.append(
                    f"{twice[0]} that {'happens' if twice[0] == 1 else 'happen'} twice (first "
                    f"at row {twice[1]}) as the first of the two"
                )
            notes.append(
                f"{count} time{'s' if count > 1 else ''} fell in a daylight-saving change of "
                f"{self.timezone}: read {' and '.join(how)}; write such a time with its "
                "offset (2024-11-03 01:30-05:00) to say which moment it is"
            )
        return notes

    def _note_clock_change(self, wall: datetime) -> None:
        """Count ``wall``, a time written without a zone and read in :attr:`timezone`,
        if that zone's clock skips it (a time that does not exist) or shows it twice:
        neither is an error, and the summary says how they were read (see
        :meth:`notes`)."""
        first, second = (
            wall.replace(tzinfo=self.timezone),
            wall.replace(tzinfo=self.timezone, fold=1),
        )
        if first.utcoffset() == second.utcoffset():
            return
        back = first.astimezone(UTC).astimezone(self.timezone).replace(tzinfo=None)
        kind = "gap" if back != wall else "twice"
        count, row = self._clock_changes.get(kind, (0, self._number))
        self._clock_changes[kind] = (count + 1, row)

    def _flag(
        self, cells: list[str], positions: tuple[int, ...], problems: list[str], *, opt_out: bool
    ) -> bool:
        """Whether a cell at ``positions`` (stripped cells) says yes; a value that says
        neither yes nor no is a problem of the row (never "no")."""
        yes = False
        known = self._flags[opt_out]
        for i in positions:
            value = cells[i]
            if not value:
                continue
            verdict = known.get(value)
            if verdict is None:
                try:
                    verdict = read_flag(value, opt_out=opt_out)
                except ValueError as exc:
                    problems.append(f"{self.header[i]}: {exc}")
                    continue
                known[value] = verdict  # only values read: a handful per file
            yes = yes or verdict
        return yes

    def _lookup(self, column: str, value: str) -> Target | Literal[False] | None:
        """What ``value`` of ``column`` maps to; ``False`` when nothing maps it."""
        cached = self._targets.get((column, value), True)
        if cached is True:
            table = self._tables[column]
            key = _key(value)
            cached = table.get(key, False)
            self._targets[column, value] = cached
        return cached  # type: ignore[return-value]

    def _open(self) -> IO[str]:
        return self.path.open("r", encoding=self.encoding, newline="")


_SEPARATOR_NAMES = {",": "commas", ";": "semicolons", "\t": "tabs", "|": "pipes"}


# A Salesforce report's footer, under its rows (each line one cell): the grand total
# and the report's title, each after a blank line, then these (the confidentiality
# line before or after the copyright, "(c)" or "©"), the last line being the
# organisation's name.
_COPYRIGHT = re.compile(
    r"copyright (?:\(c\)|\u00a9) \d{4}-\d{4} salesforce\.com, inc\. all rights reserved\.?",
    re.IGNORECASE,
)
_GRAND_TOTALS = re.compile(r"grand totals? \(\d[\d,.\u00a0 ]* records?\)", re.IGNORECASE)
# At most: the grand total, the title, confidential, the copyright, confidential,
# generated by, the organisation.
_FOOTER_LINES = 7
_CONFIDENTIAL = "confidential information - do not distribute"
_GENERATED = "generated by:"
_EMAIL_LIKE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def _footer_start(rows: list[CsvRow], before: int) -> int | None:
    """Where a Salesforce report's footer starts among the last ``rows`` of a file
    (each with only its first cell filled; ``before`` is the number of the row before
    them), or None when they are no footer but rows. A cell that is an e-mail address
    is never footer."""
    firsts = [row.cells[0].strip() if row.cells else "" for row in rows]
    at = next((k for k, text in enumerate(firsts) if _COPYRIGHT.fullmatch(text)), None)
    if at is None:
        return None
    end = at + 1
    if end < len(firsts) and firsts[end].casefold() == _CONFIDENTIAL:
        end += 1
    if end < len(firsts) and firsts[end].casefold().startswith(_GENERATED):
        end += 1
    if end < len(firsts) and not _EMAIL_LIKE.search(firsts[end]):
        end += 1  # the organisation's name
    if end != len(firsts):
        return None  # more under the copyright than a footer holds

    def after_a_blank(k: int) -> bool:
        return rows[k].number > (rows[k - 1].number if k > 0 else before) + 1

    start = at
    if start > 0 and firsts[start - 1].casefold() == _CONFIDENTIAL:
        start -= 1
    title = start - 1
    if title >= 0 and not _EMAIL_LIKE.search(firsts[title]) and after_a_blank(title):
        start = title
        if start > 0 and _GRAND_TOTALS.fullmatch(firsts[start - 1]) and after_a_blank(start - 1):
            start -= 1
    return start


# A part of an import's reason that names a field, as pydantic's errors do ("notes: ...",
# "other_emails.1: ..."): the field, and where the message starts.
_FIELD_PART = re.compile(r"([a-z][a-z0-9_]*)(?:\.\d+)*: ")


# The value a validation message quotes first: "'12' cannot be a phone number...".
_QUOTED_VALUE = re.compile(r"'([^']+)'")


def _another_phone(cell: str, phone: str) -> bool:
    """Whether ``cell`` (stripped) holds a phone number other than ``phone``, as written:
    not blank, no placeholder ("N/A"), and other digits (``(512) 555-0134`` is
    ``+1 512 555 0134`` written without its country code)."""
    if not cell or _no_value(cell):
        return False
    mine, theirs = _DIGITS.sub("", cell), _DIGITS.sub("", phone)
    return not (mine.endswith(theirs) or theirs.endswith(mine))


_DIGITS = re.compile(r"\D+")


def _several(text: str) -> bool:
    """Whether ``text`` holds a line break."""
    return "\n" in text or "\r" in text


def _first(cells: list[str], positions: tuple[int, ...]) -> tuple[int, str]:
    """The first non-blank cell among ``positions`` (of stripped cells), with its
    position."""
    for i in positions:
        value = cells[i]
        if value:
            return i, value
    return -1, ""


def _picker(positions: tuple[int, ...]) -> Callable[[list[str]], tuple[str, ...]]:
    """A function giving the cells at ``positions``, as a tuple (any number of them)."""
    if len(positions) > 1:
        return operator.itemgetter(*positions)
    if positions:
        only = positions[0]
        return lambda cells: (cells[only],)
    return lambda cells: ()


_QUOTED = methodcaller("startswith", "'")


class _Follower:
    """A reading of a file of its own, line by line, that follows the CSV reader of
    :meth:`CsvSource.rows` to the rows it cannot read: opened at the first one, and
    read on from there (the rows come in file order: the file is read about once)."""

    def __init__(self, open: Callable[[], IO[str]]) -> None:
        self._open = open
        self._handle: IO[str] | None = None
        self._line = 0  # the lines of the file read
        # A line already read and where the file goes on after it, to go back to.
        self._mark: tuple[int, int] | None = None

    def __enter__(self) -> _Follower:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def lines_from(self, first: int, mark: int = 0) -> Iterator[str]:
        """The file's lines from line ``first`` (1-based) on; passing line ``mark``,
        where the file goes on after it is noted, for a later call to go back to."""
        handle = self._handle
        if handle is None or first <= self._line:
            # Read past it (a quote left open, after which the CSV reader reads on as
            # rows): back to the line marked, else from the start.
            if handle is not None and self._mark is not None and self._mark[0] < first:
                self._line, cookie = self._mark
                handle.seek(cookie)
            else:
                self.__exit__()
                handle = self._handle = self._open()
                self._line = 0
        lines = iter(handle.readline, "")  # as iteration does, but tell() is allowed
        if first - 1 > self._line:
            deque(itertools.islice(lines, first - 1 - self._line), maxlen=0)
        self._line = first - 1
        for line in lines:
            self._line += 1
            if self._line == mark:
                self._mark = (mark, handle.tell())
            yield line


@dataclass(frozen=True, slots=True)
class _Span:
    """One row as :func:`_span` followed it."""

    lines: int  # the lines it spans (to the end of the file, or where it was left)
    over: int  # the position of its first cell over the limit, or -1
    length: int  # that cell's characters
    closed: bool  # whether every quote in it closed as a CSV writer closes one


def _span(lines: Iterator[str], delimiter: str, limit: int) -> _Span:
    """Follow one row from its first line, as the csv module reads it (``delimiter``,
    double quotes, a doubled quote inside quotes for one) but without keeping its cells,
    or its limit: how many lines it spans, its first cell longer than ``limit``, and
    whether each quoted cell in it closes before a separator or a line break. It stops
    at a quote left open: one that closes before other text, or at the end of the
    file."""
    stops = re.compile(f"[{re.escape(delimiter)}\r\n]")
    count = position = length = 0
    over, longest = -1, 0
    quoted, start = False, True  # in quotes; at a cell's start (where a quote opens)
    for line in lines:
        count += 1
        at, end = 0, len(line)
        while True:
            if quoted:
                quote = line.find('"', at)
                if quote < 0:
                    length += end - at
                    break  # the cell goes on on the next line
                length += quote - at
                at = quote + 1
                if at < end and line[at] == '"':  # a doubled quote: one in the cell
                    length += 1
                    at += 1
                    continue
                quoted = False
                if at < end and line[at] not in (delimiter, "\r", "\n"):
                    return _Span(count, over, longest, closed=False)
            elif start and at < end and line[at] == '"':
                quoted, start = True, False
                at += 1
                continue
            found = stops.search(line, at)
            stop = end if found is None else found.start()
            length += stop - at
            if over < 0 and length > limit:
                over, longest = position, length
            if found is None or line[stop] != delimiter:
                return _Span(count, over, longest, closed=True)  # the line ends the row
            position, length, start, at = position + 1, 0, True, stop + 1
    if over < 0 and length > limit:
        over, longest = position, length
    return _Span(count, over, longest, closed=not quoted)


def _unreadable(exc: csv.Error, first: int, last: int) -> str:
    lines = f"line {first}" if first >= last else f"lines {first}-{last}"
    if "field larger than field limit" in str(exc):
        return (
            f"{lines} of the file: a cell is longer than {csv.field_size_limit():,} "
            "characters (no field holds that much: notes hold 32,000), as when a quote is "
            "left open; close the quote, or shorten the cell, and import these lines again"
        )
    return f"{lines} of the file cannot be read as CSV: {exc}"


# --- opening -------------------------------------------------------------------------


def open_csv(
    path: str | PathLike[str],
    format: str = "auto",
    *,
    statuses: StatusMap | None = None,
    read_statuses: bool = True,
    timezone: tzinfo = UTC,
    day_first: bool | None = None,
    lead_model: type[Lead] | None = None,
    encoding: str | None = None,
) -> CsvSource:
    """Open a lead list, checking up front that the whole file can be read.

    ``lead_model``, the application's ``Lead`` subclass: a column named like one of
    its own fields, or like that field's alias (``alias``, ``validation_alias``, a
    choice of ``AliasChoices``), fills the field.

    ``statuses`` adds to the built-in :class:`StatusMap`; ``read_statuses=False``
    leaves every status column alone (the caller gives all rows one status).
    ``timezone`` is the zone of dates written without one (UTC by default);
    ``day_first=True`` reads ``3/4/2024`` as 3 April, ``False`` as 4 March; ``None``
    (the default) decides for the whole file from its own dates, before any row is read
    (see :meth:`CsvSource.notes`): a date such as ``15/03/2024`` says day first,
    ``3/15/2024`` month first; with neither, day first in a file whose cells semicolons
    separate (a European spreadsheet's), month first in any other.

    ``encoding``: the file's encoding, any codec Python knows (``"mac_roman"`` for Excel
    for Mac's plain CSV, ``"cp1252"``, ``"latin-1"``...), instead of recognising it.

    Raises :class:`CsvError` for a missing or unreadable file, an encoding error, an
    unknown format, a header that matches no format, or a column named twice.
    """
    if format not in FORMATS:
        raise CsvError(f"unknown format {format!r}; choose one of: {', '.join(FORMATS)}")
    file = Path(path)
    if not file.is_file():
        if file.is_dir():
            raise CsvError(f"{file}: this is a folder; name the CSV file in it")
        if file.exists():
            # Read twice (checked whole before anything is stored): a pipe reads once.
            raise CsvError(
                f"{file}: not a file but a pipe or a device; save what it gives to a file "
                "and import that"
            )
        raise CsvError(f"{file}: no such file")
    try:
        with file.open("rb") as raw:
            head = raw.read(_SAMPLE)
    except OSError as exc:
        raise CsvError(f"{file}: cannot read it ({exc.strerror or exc})") from None
    if not head.strip():
        raise CsvError(f"{file}: the file is empty")
    utf16 = head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    # UTF-16 text (Excel's "Unicode Text") holds NULs: with its byte-order mark, or when
    # the caller names a UTF-16 or UTF-32 encoding, it is no binary data.
    wide = encoding is not None and _codec(encoding).startswith(("utf-16", "utf-32"))
    binary = None if utf16 or wide else _binary(head)
    if binary is not None:
        raise CsvError(f"{file}: this is not a CSV text file ({binary})")
    given = encoding
    encoding = _encoding(file, head) if given is None else _given_encoding(file, head, given)
    try:
        text = head.decode(encoding, errors="ignore")
    except (UnicodeError, ValueError):  # idna, punycode: codecs of names, not of files
        raise CsvError(
            f"{file}: {given} is not an encoding files are saved in; give the file's own, "
            "such as utf-8, cp1252 or utf-16, or leave it out to have it recognised"
        ) from None
    lines = text.splitlines()
    first = lines[0] if lines else ""
    # Excel's "sep=;" first line names the separator; the header comes after it.
    preamble = 0
    sep = _SEP_LINE.fullmatch(first)
    if sep is not None:
        delimiter, preamble = sep[1], 1
    else:
        try:
            delimiter = csv.Sniffer().sniff(first + "\n", delimiters=",;\t|").delimiter
        except csv.Error:
            delimiter = ","
    header = _api_spelling(_header(file, encoding, delimiter, preamble))
    try:
        detected = _detect(header) if format == "auto" else format
    except CsvError as exc:
        raise CsvError(f"{file}: {exc}") from None
    if detected is None:
        raise CsvError(f"{file}: {_unrecognised(header, lines[preamble + 1 : 30], delimiter)}")
    _check_columns(file, detected, header)
    if statuses is not None and read_statuses and statuses.columns:
        # One map may serve several exports; a map none of whose tables is a status
        # column of this file would be read for nothing (a [status] table for a
        # Salesforce file's Status column: the names are matched as spelt).
        here = [c for c in StatusMap.COLUMNS[detected] if c in header]
        if not set(statuses.columns) & set(here):
            tables = ", ".join(f"[{c}]" for c in statuses.columns)
            raise CsvError(
                f"{file}: the status map's tables ({tables}) name no status column of "
                f"this {detected} file; its status columns: {', '.join(here) or 'none'} "
                "(name a table as the header spells its column)"
            )
    base = StatusMap.default(detected)
    source = CsvSource(
        file,
        detected,
        encoding,
        delimiter,
        header,
        statuses=base | statuses if statuses is not None else base,
        read_statuses=read_statuses,
        timezone=timezone,
        day_first=day_first,
        custom=_custom_columns(lead_model),
        preamble=preamble,
        kinds=_custom_kinds(lead_model),
        mapped=statuses if read_statuses else None,
    )
    twice = _named_twice(header, source._plan.used)
    if twice:
        raise CsvError(f"{file}: {twice}")
    unread = _unread_people_columns(source.unused_columns(), detected, read_statuses, header)
    if unread:
        raise CsvError(f"{file}: {unread}")
    # A rejects file's rows' dates were read in the order of the file they were rejected
    # from, which a row not here may have told: leadfunnel writes dates that could be
    # read both ways in ISO 8601, but a spreadsheet that saved the file again writes
    # them its own way. Decided before anything is stored.
    rejected = day_first is None and _rejects_file(header) and bool(source._plan.dated)
    if rejected and not source._decide_date_order():
        if source._undecided is not None:
            example, row = source._undecided
            raise CsvError(
                f"{file}: a rejects file (its first columns are row and reason) whose "
                f"dates could be read day first or month first ({example!r}, row {row}), "
                "none telling which; give the order the import that wrote it read them "
                "in (its summary said it): --day-first or --month-first"
            )
        source.day_first = source._date_order = None  # decided when a date needs it
    return source


def _rejects_file(header: tuple[str, ...]) -> bool:
    """Whether ``header`` is a rejects file's: leadfunnel import's row and reason, then
    the columns of the file its rows were rejected from."""
    return tuple(name.casefold() for name in header[:2]) == ("row", "reason")


_SEP_LINE = re.compile(r'"?sep=([,;\t|])"?[,;\t|]*', re.IGNORECASE)
# What leadfunnel's field names look like, for the advice on a header it cannot read.
_FIELD_NAMES = "first_name, last_name, email, phone, company, title, opt_outs, status, ..."


def _unrecognised(header: tuple[str, ...], after: list[str], delimiter: str) -> str:
    """Why ``header`` is read as no format, and what would work; ``after``, the lines
    after it (a header further down, under a preamble such as LinkedIn's "Notes:")."""
    shown = ", ".join(header[:8]) + (", ..." if len(header) > 8 else "")
    problem = (
        f"the header ({shown}) is not a Salesforce or HubSpot export, nor leadfunnel's own "
        "field names"
    )
    for n, line in enumerate(after, start=2):
        cells = tuple(name.strip() for name in next(csv.reader([line], delimiter=delimiter), []))
        if len(header) <= 1 < len(cells) and _looks_like_header(cells):
            return (
                f"{problem}: line {n} ({', '.join(cells[:8])}) looks like the header; delete "
                "the lines above it and try again"
            )
    rename = ""
    for name in header:
        words = _norm(name).replace("e mail", "email").split()
        field = next((w for w in ("email", "phone") if w in words), None)
        if field is not None:
            rename = f", e.g. rename {name!r} to {field}"
            break
    return (
        f"{problem}, so no --format reads it as it is. To import another CRM's file, name "
        f"its columns with leadfunnel's field names ({_FIELD_NAMES}) and import it with "
        f"--format generic{rename}"
    )


def _looks_like_header(cells: tuple[str, ...]) -> bool:
    try:
        return _detect(cells) is not None or any(_people_kind(c) for c in cells)
    except CsvError:
        return True  # it mixes formats: a header all the same


def _norm(name: str) -> str:
    return " ".join(re.sub(r"[^0-9a-z]+", " ", name.casefold()).split())


_PEOPLE_COLUMNS = (
    (
        "email",
        re.compile(
            r"(?:(?:work|personal|home|business|primary|secondary|other|private|main|"
            r"alternate|alternative|additional) )?e ?mail(?: address)?(?: \d)?"
        ),
    ),
    (
        "phone",
        re.compile(
            r"(?:(?:work|business|home|mobile|cell|main|other|direct|office|company|personal|"
            r"primary|secondary) )?(?:phone|telephone|tel|mobile|cell)(?: (?:phone|number|no))?"
            r"(?: \d)?"
        ),
    ),
    (
        "opt-out",
        re.compile(
            r".*\b(?:opt(?:ed)? ?out|unsubscribed?|do ?not (?:allow|email|call|contact|mail|"
            r"phone|bulk)|donotcall|has ?opted).*"
        ),
    ),
    (
        "status",
        re.compile(
            r"(?:(?:lead|contact|account) )?(?:status|stage|type)(?: reason)?|lifecycle stage"
        ),
    ),
)
# Per format and kind of column, the names it reads, each for something of its own, and
# the name of another one of the kind (a person's other e-mail addresses), offered
# when the header holds all the others.
_PEOPLE_NAMES: Mapping[str, Mapping[str, tuple[tuple[str, ...], str | None]]] = {
    "salesforce": {
        "email": (("Email",), "Other Email"),
        "phone": (("Phone",), "Other Phone"),
        "opt-out": (("HasOptedOutOfEmail", "DoNotCall"), None),
        "status": (("Status",), None),
    },
    "hubspot": {
        "email": (("Email",), "Other Email"),
        "phone": (("Phone Number",), "Other Phone"),
        "opt-out": (("Unsubscribed from all email",), None),
        "status": (("Lifecycle Stage", "Lead Status"), None),
    },
    "generic": {
        "email": (("email",), "other_emails"),
        "phone": (("phone",), "other_phones"),
        "opt-out": (("opt_outs",), None),
        "status": (("status",), None),
    },
}


_A_KIND = {"email": "an e-mail", "phone": "a phone", "opt-out": "an opt-out", "status": "a status"}
_ANOTHER = {"email": "another e-mail", "phone": "another phone"}
# Columns named like opt-outs (or phones) that are no channel leadfunnel has
# (Salesforce's HasOptedOutOfFax, "Fax Opt Out"), or an opt-out of one HubSpot
# subscription ("Opted out of email: Marketing Information"), which is no opt-out of all
# e-mail: listed as not imported, as any other unknown column.
_SUBSCRIPTION = re.compile(r"opted out of email ?: ?\S.*")


def _people_kind(name: str) -> str | None:
    """Whether the column ``name`` looks like an e-mail, phone, opt-out or status
    column (by its name), and which."""
    folded = " ".join(name.casefold().split())
    if "fax" in folded or _SUBSCRIPTION.fullmatch(folded):
        return None
    key = _norm(name)
    for kind, pattern in _PEOPLE_COLUMNS:
        if pattern.fullmatch(key):
            return kind
    return None


def _unread_people_columns(
    unused: list[str], format: str, read_statuses: bool, header: tuple[str, ...] = ()
) -> str | None:
    """Why a file whose unread columns look like e-mails, phones, opt-outs or statuses is
    refused (importing it would store people without them), or None. The names offered
    instead are never ones the ``header`` holds already."""
    found = [
        (name, kind)
        for name in unused
        if (kind := _people_kind(name)) and (read_statuses or kind != "status")
    ]
    if not found:
        return None
    held = set(header)
    listed = "; ".join(f"{name!r} ({_A_KIND[kind]} column?)" for name, kind in found)
    offers: list[str] = []
    taken: list[str] = []  # names the file holds already, of each kind found
    for kind in dict.fromkeys(k for _, k in found):
        names, another = _PEOPLE_NAMES[format][kind]
        free = [n for n in names if n not in held]
        if free:
            offers.append(f"{kind}: {', '.join(free)}")
        elif another is not None and another not in held:
            offers.append(f"{_ANOTHER[kind]}: {another}")
        else:
            taken.extend(n for n in (*names, another) if n in held)
    advice = []
    if offers:
        advice.append(f"rename each to a name a {format} export uses ({'; '.join(offers)})")
    advice.append("delete the columns you do not want")
    if format != "generic":
        advice.append(
            f"name every column with leadfunnel's field names ({_FIELD_NAMES}) and import "
            "with --format generic"
        )
    said = ", ".join(advice[:-1]) + f", or {advice[-1]}" if len(advice) > 1 else advice[0]
    if format == "generic" and any(kind == "status" for _, kind in found):
        # A generic file has no type column: its status values say what rows become.
        said += (
            "; a row becomes a contact when --status-map FILE.toml maps its status to a "
            'contact type ([status] then customer = "client")'
        )
    already = f" (the file's {', '.join(taken)} {'is' if len(taken) == 1 else 'are'} read)"
    return (
        f"read as a {format} export, these columns would not be imported: {listed}; people "
        f"would be stored without them{already if taken else ''}. "
        f"{said[0].upper()}{said[1:]}"
    )


def _custom_columns(model: type[Lead] | None) -> dict[str, tuple[str, ...]]:
    """The application's own fields of ``model`` and the columns that fill each: its
    name first, then its aliases (see :func:`~leadfunnel._models.field_keys`)."""
    if model is None:
        return {}
    columns: dict[str, tuple[str, ...]] = {}
    for key, name in field_keys(model).items():  # every name comes before any alias
        if name not in Lead.model_fields:
            columns[name] = (*columns.get(name, ()), key)
    return columns


#: How a custom field's cells are read: as a whole number, an amount, a point in time
#: (in UTC), a time as written (a naive datetime), a date; other fields as written.
_Kind: TypeAlias = Literal["whole", "amount", "datetime", "naive", "date", "items"]
_NONE = type(None)


def _custom_kinds(model: type[Lead] | None) -> dict[str, _Kind]:
    """How the cells of each of ``model``'s own fields are read, for those that are
    numbers or dates (see :func:`_kind`)."""
    if model is None:
        return {}
    return {
        name: kind
        for name, info in model.model_fields.items()
        if name not in Lead.model_fields and (kind := _kind(info.annotation)) is not None
    }


_COLLECTIONS = (
    list,
    set,
    frozenset,
    tuple,
    abc.Sequence,
    abc.Set,
    abc.MutableSequence,
    abc.MutableSet,
)


def _kind(annotation: object) -> _Kind | None:
    """How a cell for a field of this ``annotation`` is read: a number (``int``,
    ``Decimal``, ``float``, a bool being no number), a date or a point in time, items
    separated by commas or semicolons (a list, set, frozenset or tuple, as the
    built-in tags and needs), also within ``Annotated`` and ``Optional``; None for
    anything else, or a union of several kinds (``int | str``), read as written."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _kind(get_args(annotation)[0])
    if origin in _COLLECTIONS or annotation in _COLLECTIONS:
        # Items of text (or of an enum) are split on commas and semicolons, as tags are;
        # numbers are not: "1,5;2,5" and "1,200" could be read several ways.
        items = [a for a in get_args(annotation) if a is not Ellipsis]
        element = items[0] if items else str
        if element is str or (isinstance(element, type) and issubclass(element, Enum)):
            return "items"
        return None
    if origin is Union or origin is types.UnionType:
        found = {_kind(a) for a in get_args(annotation) if a is not _NONE}
        if found <= {"whole", "amount"} and found:
            return "whole" if found == {"whole"} else "amount"
        return found.pop() if len(found) == 1 else None
    if annotation in (pydantic.AwareDatetime, pydantic.PastDatetime, pydantic.FutureDatetime):
        return "datetime"
    if annotation is pydantic.NaiveDatetime:
        return "naive"
    if annotation in (pydantic.PastDate, pydantic.FutureDate):
        return "date"
    if not isinstance(annotation, type) or issubclass(annotation, (bool, Enum)):
        return None
    if issubclass(annotation, datetime):
        return "datetime"
    if issubclass(annotation, date):
        return "date"
    if issubclass(annotation, int):
        return "whole"
    if issubclass(annotation, (Decimal, float)):
        return "amount"
    return None


# A workbook (xlsx, xls), a PDF, a compressed file or an image saved under a .csv name.
_BINARY_SIGNATURES = (
    *(b"PK\x03\x04", b"\xd0\xcf\x11\xe0", b"%PDF", b"\x1f\x8b", b"\x89PNG", b"GIF8"),
    *(b"\xff\xd8\xff", b"SQLite format 3\x00"),
)
# Control bytes text does not hold (tab, line breaks, form feeds are text, and so is
# ESC, which starts the colour codes a cell copied from a terminal may hold).
_CONTROL_BYTES = re.compile(rb"[\x00-\x08\x0e-\x1a\x1c-\x1f]")
_FIRST_LINE = re.compile(rb"[^\r\n]*")


def _excel_text(cell: str) -> str:
    """A cell without the ``="..."`` wrapper a spreadsheet export puts around text it
    must keep as written (``="02134"``, a postal code that would lose its zero; a quote
    inside is doubled, as in a formula: ``="say ""hi"" "`` is ``say "hi" ``)."""
    if cell.startswith('="') and cell.endswith('"') and len(cell) > 2:
        inner = cell[2:-1]
        if '"' not in inner.replace('""', ""):
            return inner.replace('""', '"')
    return cell


def _binary(head: bytes) -> str | None:
    """Why the file starting with ``head`` is no CSV text, and what to do, or None.

    A stray NUL in a row is that row's problem (the row is rejected), however small the
    file: only what text rows cannot explain refuses the file: a known binary format's
    signature, NUL bytes in the first line (the header: UTF-16 without its byte-order
    mark, or no text at all), or control bytes in more than one byte in twenty."""
    save = "save it from the spreadsheet as CSV"
    if head.startswith(_BINARY_SIGNATURES):
        return f"it holds binary data; {save}"
    first = _FIRST_LINE.match(head)
    line = first[0] if first is not None else b""
    evens, odds = line[0::2].count(0), line[1::2].count(0)
    if len(line) >= 4 and min(evens, odds) == 0 and max(evens, odds) * 20 >= len(line) * 9:
        # Text in UTF-16: a NUL beside every ASCII character, always on the same side.
        codec = "utf-16-le" if odds else "utf-16-be"
        return (
            "it looks like UTF-16 text without a byte-order mark; save it from the "
            f'spreadsheet as "CSV UTF-8", or import it with --encoding {codec}'
        )
    if b"\x00" in line:
        return f"it holds binary data (a NUL byte in its first line, the header); {save}"
    controls = len(_CONTROL_BYTES.findall(head))
    if controls > 8 and controls * 20 > len(head):
        return (
            f"it holds binary data ({controls} control bytes in its first {len(head):,} "
            f"bytes); {save}"
        )
    return None


# Salesforce's API field names, which Salesforce reads whatever their case: Data Loader
# writes them as the query spelt them ("FIRSTNAME", "createddate").
_SALESFORCE_API = {
    name.casefold(): name
    for name in (
        *_SALESFORCE,
        *("MobilePhone", "OtherPhone", "HasOptedOutOfEmail", "DoNotCall", "Rating"),
        *("CreatedDate", "IsConverted", "Status"),
    )
}


def _api_spelling(header: tuple[str, ...]) -> tuple[str, ...]:
    """``header`` with Salesforce's API names spelt as Salesforce spells them, when it
    holds one spelt otherwise that no other format uses ("FIRSTNAME", "createddate";
    not a plain word such as "EMAIL" or "status" alone, which many files write)."""
    spelt = tuple(_SALESFORCE_API.get(name.casefold(), name) for name in header)
    pairs = zip(header, spelt, strict=True)
    telling = any(new != old and not _PLAIN_WORD.fullmatch(new) for old, new in pairs)
    named = [name for name in spelt if name]
    if not telling or len(set(named)) != len(named):
        return header
    return spelt


def _header(file: Path, encoding: str, delimiter: str, preamble: int = 0) -> tuple[str, ...]:
    with file.open("r", encoding=encoding, newline="") as handle:
        try:
            reader = csv.reader(handle, delimiter=delimiter)
            for _ in range(preamble):
                next(reader, None)
            line = next(reader, [])
        except csv.Error as exc:
            raise CsvError(f"{file}: the header row cannot be read as CSV: {exc}") from None
    header = tuple(restore(name.strip()) for name in line)
    seen: dict[str, int] = {}
    for i, name in enumerate(header, start=1):
        if name and name in seen:
            raise CsvError(
                f"{file}: the header names the column {name!r} twice (columns {seen[name]} "
                f"and {i}); rename or remove one and try again"
            )
        seen.setdefault(name, i)
    return header


def _named_twice(header: tuple[str, ...], used: frozenset[int]) -> str | None:
    """Why a header naming one column twice in two cases is refused ("FirstName" and
    "FIRSTNAME": Salesforce reads its field names whatever their case, and one of the
    two would go unread), or None. Two names read as one field's (an application
    field's name and its alias, "seats" and "Seats") are its two columns, as
    "Company" and "Company / Account" are."""
    seen: dict[str, int] = {}
    for i, name in enumerate(header):
        folded = " ".join(name.casefold().split())
        j = seen.setdefault(folded, i)
        if name and j != i and not (i in used and j in used):
            return (
                f"the header names one column twice, as {header[j]!r} (column {j + 1}) and "
                f"{name!r} (column {i + 1}): names that differ only in case name one field "
                "(Salesforce reads its field names whatever their case); rename or remove "
                "one and try again"
            )
    return None


def _encoding(file: Path, head: bytes) -> str:
    if head.startswith(codecs.BOM_UTF8):
        candidates = ["utf-8-sig"]
    elif head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        candidates = ["utf-16"]
    else:
        candidates = ["utf-8", "cp1252"]
    for encoding in candidates:
        if _decodes(file, encoding):
            if encoding == "cp1252":
                _refuse_misread(file)
            return encoding
        if encoding == "utf-8":
            _refuse_damaged_utf8(file)
    raise CsvError(
        f"{file}: cannot decode the file as {' or '.join(candidates)}; save it as UTF-8 "
        "CSV and try again, or give its encoding with --encoding (mac_roman for Excel for "
        'Mac\'s plain CSV, cp437 for its "CSV (MS-DOS)")'
    )


def _codec(name: str) -> str:
    """The codec ``name`` stands for (``"UTF16"`` -> ``"utf-16"``), or ``name``."""
    try:
        return codecs.lookup(name).name
    except LookupError:
        return name


#: A codec given by name that would read a file's byte-order mark as a character,
#: the mark, and the codec that takes it off instead.
_MARKED = (
    ("utf-8", codecs.BOM_UTF8, "utf-8-sig"),
    ("utf-16-le", codecs.BOM_UTF16_LE, "utf-16"),
    ("utf-16-be", codecs.BOM_UTF16_BE, "utf-16"),
    ("utf-32-le", codecs.BOM_UTF32_LE, "utf-32"),
    ("utf-32-be", codecs.BOM_UTF32_BE, "utf-32"),
)


def _given_encoding(file: Path, head: bytes, name: str) -> str:
    """The codec ``name`` the caller gave, checked to be one Python knows and to
    decode the whole file."""
    try:
        info = codecs.lookup(name)
    except LookupError:
        info = None
    if info is None or not getattr(info, "_is_text_encoding", True):
        raise CsvError(
            f"unknown encoding {name!r}; give one Python knows, such as utf-8, cp1252 "
            "(Windows), mac_roman (Excel for Mac's plain CSV), latin-1 or utf-16"
        )
    encoding = info.name
    # The byte-order mark is no character of the first column's name: the codecs that
    # read it as one are swapped for those that take it off.
    for codec, mark, reads_it in _MARKED:
        if encoding == codec and head.startswith(mark):
            encoding = reads_it
    if not _decodes(file, encoding):
        raise CsvError(
            f"{file}: the file does not decode as {name}: it was saved in another "
            "encoding; give that one, or leave the encoding out to have it recognised"
        )
    return encoding


# Mac Roman's accented letters (ü, ä, é, ß, ñ...) read as Windows-1252 become letters
# or signs no word holds there: "JŸrgen", "MŸller & SŠhne", "CafŽ", "Strau§",
# "Mu\u2013oz" (a curly quote or an em dash between letters, as Mac Roman's í and ó
# read, can be text: "O\u2019Connell", "call\u2014then"; those alone are no sign).
_LETTER = r"[^\W\d_]"
_MAC_ROMAN_SIGNS = re.compile(
    rf"(?<={_LETTER})[\u0192\u02c6\u02dc\u0178\u00a7]"
    rf"|[\u0192\u02c6\u02dc\u0178](?={_LETTER})"
    r"|(?<=[a-z\u00df-\u00ff])[\u0160\u017d\u0152]"
    rf"|(?<={_LETTER})[\u0160\u017d\u0152](?=[a-z])"
    # ñ, á, Ü, Ö... between two letters: "Mu\u2013oz" is never text. (ö and û read as
    # "š" and "ž", which Central European names hold: Dušan, Božena are no sign.)
    r"|(?<=[a-z])[\u2013\u2020\u2021\u2030\u2039\u203a](?=[a-z])"
)


# DOS text (Excel's "CSV (MS-DOS)", code page 437) read as Windows-1252: its accented
# letters become quotes and signs after a letter ("Jos\u201a", "Pe¤a", "G”del", "K™ln",
# "Garc¡a"); Mac Roman's signs above may be its letters too ("na\u2039ve").
_DOS_SIGNS = re.compile(
    rf"(?<={_LETTER})[\u201a\u201e\u00a4]"
    rf"|(?<={_LETTER})[\u201d\u2122\u00a1\u00a2\u00a3\u2022](?={_LETTER})"
)
#: The encodings a file that reads as Windows-1252 may really be in, what saves them,
#: and the codec to name.
_MISREAD = (
    ("mac_roman", "Mac Roman text (what Excel for Mac saves as plain CSV)"),
    ("cp437", 'DOS text (what Excel saves as "CSV (MS-DOS)")'),
)


def _reads_as_letters(word: str, reading: str) -> bool:
    """Whether each character ``reading`` changes in ``word`` is a Latin letter (what an
    accented letter of a name or a company is), not a sign, nor a capital after a small
    letter ("Jos\u00c7", Mac Roman's reading of DOS text's "José")."""
    return all(
        new.isalpha()
        and "\u00c0" <= new <= "\u017f"
        and not (new.isupper() and i > 0 and reading[i - 1].islower())
        for i, (old, new) in enumerate(zip(word, reading, strict=True))
        if new != old
    )


def _refuse_misread(file: Path) -> None:
    """A file that decodes as Windows-1252 into signs no word holds where Mac Roman
    (Excel for Mac's plain "CSV") or DOS text (Excel's "CSV (MS-DOS)") gives common
    accented letters: refused, naming the line and each reading that gives letters,
    rather than stored as "JŸrgen" or "Jos\u201a". Which it is cannot be known for sure:
    the caller says, with the encoding."""
    decoder = codecs.getincrementaldecoder("cp1252")()
    lines = 0
    after_cr = False  # whether the text read before ended with a CR
    with file.open("rb") as raw:
        while block := raw.read(1 << 20):
            text = decoder.decode(block)
            found = min(
                (m for m in (_MAC_ROMAN_SIGNS.search(text), _DOS_SIGNS.search(text)) if m),
                key=lambda m: m.start(),
                default=None,
            )
            if found is None:
                lines += _line_breaks(text, after_cr)
                after_cr = text.endswith("\r")
                continue
            start = max(text.rfind(c, 0, found.start()) for c in " \t\r\n,;|") + 1
            ends = [i for c in " \t\r\n,;|" if (i := text.find(c, found.end())) >= 0]
            word = text[start : min(ends, default=len(text))]
            line = lines + _line_breaks(text[: found.start()], after_cr) + 1
            raw_word = word.encode("cp1252")
            readings = [(codec, what, raw_word.decode(codec)) for codec, what in _MISREAD]
            likely = [r for r in readings if _reads_as_letters(word, r[2])] or readings
            looks = " or ".join(f"{what}, where it reads {read!r}" for _, what, read in likely)
            codecs_named = " or ".join(f"--encoding {codec}" for codec, _, _ in likely)
            raise CsvError(
                f"{file}: line {line} reads {word!r}, which looks like {looks}; import it "
                f"with {codecs_named} (or --encoding cp1252 if {word!r} is right), or save "
                'it from Excel as "CSV UTF-8" and import that'
            )


# A character UTF-8 writes in several bytes: text in Windows-1252 almost never holds
# one (it would read "Ã©" for "é").
_UTF8_SEQUENCE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}"
)


def _line_breaks(text: str | bytes, after_cr: bool = False) -> int:
    """How many line breaks ``text`` holds, each CR LF, CR or LF one (as the CSV reader
    and a spreadsheet count lines); ``after_cr`` when the text read before it ended with
    a CR (a CR LF split between two reads is one)."""
    if isinstance(text, str):
        count = text.count("\n") + text.count("\r") - text.count("\r\n")
        return count - (after_cr and text.startswith("\n"))
    count = text.count(b"\n") + text.count(b"\r") - text.count(b"\r\n")
    return count - (after_cr and text.startswith(b"\n"))


def _refuse_damaged_utf8(file: Path) -> None:
    """A file written in UTF-8 (it holds characters of several bytes) with a byte that
    is not: refused, naming the line, rather than read whole as Windows-1252, which
    turns every "é" into "Ã©" without a word. (Called once the file failed to decode
    as UTF-8; read a block at a time, as :func:`_decodes` reads, so memory stays flat.)"""
    decoder = codecs.getincrementaldecoder("utf-8")()
    lines = 0  # before the block being read
    after_cr = False  # whether the block before ended with a CR
    bad: tuple[int, int] | None = None  # the first byte that is not UTF-8: line, value
    several = False  # whether the file holds a character of several bytes
    with file.open("rb") as raw:
        while (block := raw.read(1 << 20)) and not (bad and several):
            several = several or _UTF8_SEQUENCE.search(block) is not None
            if bad is None:
                try:
                    decoder.decode(block)
                except UnicodeDecodeError as exc:
                    # The block, after the bytes held over (part of a character: no
                    # line break).
                    at = exc.object[: exc.start]
                    bad = (lines + _line_breaks(at, after_cr) + 1, exc.object[exc.start])
                lines += _line_breaks(block, after_cr)
                after_cr = block.endswith(b"\r")
        if bad is None:
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError as exc:  # a character cut off at the end
                bad = (lines + 1, exc.object[exc.start])
    if bad is None or not several:
        return  # no UTF-8 character at all: Windows-1252 it may well be
    line, byte = bad
    raise CsvError(
        f"{file}: line {line} holds a byte (0x{byte:02X}) that is not UTF-8, while the rest "
        "of the file is UTF-8: the file is damaged or mixes encodings; fix that line (or "
        "save the file as UTF-8 again) and try again"
    )


def _decodes(file: Path, encoding: str) -> bool:
    # Read the whole file once before importing anything, so a bad byte deep inside a
    # large file cannot stop an import half way. (UnicodeError, not only its decoding
    # kind: UTF-16 without a byte-order mark and IDNA raise the plain one.)
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        with file.open("rb") as raw:
            while block := raw.read(1 << 20):
                decoder.decode(block)
            decoder.decode(b"", final=True)
    except UnicodeError:
        return False
    return True


def _check_columns(file: Path, format: str, header: tuple[str, ...]) -> None:
    columns = set(header)
    if format == "generic":
        if not columns & (_GENERIC_FIELDS | {"status", "created_at"}):
            raise CsvError(
                f"{file}: no column is a Lead field; generic files use leadfunnel's field "
                "names (first_name, last_name, email, phone, company, ...)"
            )
        return
    if not columns & (_LAYOUTS[format].columns | set(StatusMap.COLUMNS[format])):
        raise CsvError(f"{file}: no column of a {format} export was found in the header")
