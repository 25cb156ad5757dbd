"""Hypothesis strategies for leadfunnel records and whole funnel histories.

>>> from hypothesis import given
>>> from leadfunnel.testing import leads
>>> @given(leads(status="suspect"))
... def test_suspects_are_never_due(lead): ...

The awkward cases come often, not once in a thousand examples: each is on at least a
quarter of the people (erased people, people with neither e-mail nor phone, avoid-listed
ones, a key merged away, a text or notes at the limit, an instant at the ends of what a
store keeps or in another far year, opt-outs), so that every run of hypothesis' default
100 examples holds each of them; values are often in other scripts, formula-like or on
several lines (notes), instants often in another offset, and missing fields are common.
Generated histories avoid, merge, re-capture and edit the people they bring in.
``tests/test_toolkit_histories.py`` measures the shares, ``tests/test_toolkit_audit.py``
the runs of 100.
"""

from __future__ import annotations

import builtins
import difflib
import enum
import functools
import itertools
import random
import sys
import types
import typing
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, TypeVar, Union, overload
from uuid import UUID

import annotated_types
from hypothesis import event, reject
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from pydantic import ValidationError

from .. import _samples
from .._changes import member
from .._enums import (
    Channel,
    ContactType,
    Interest,
    LeadStatus,
    LostReason,
    Outcome,
    Stage,
)
from .._errors import InvalidArgumentError, LeadFunnelError
from .._models import Contact, Lead, Opportunity

if TYPE_CHECKING:
    from .._funnel import Funnel
    from .._qualification import Profile, QualificationEngine

__all__ = [
    "FunnelStep",
    "Keys",
    "contacts",
    "deal_histories",
    "histories",
    "leads",
    "reached",
    "register_strategies",
    "replay",
]

#: Which ways of reaching a person a drawn record has: ``"both"`` (e-mail and phone),
#: ``"email"``, ``"phone"`` or ``"none"`` (a name and a company only).
Keys = Literal["both", "email", "phone", "none"]
_KEYS: tuple[Keys, ...] = typing.get_args(Keys)

FIRST_NAMES = [*_samples.FIRST_NAMES, "Zoë", "José", "Ngozi"]
LAST_NAMES = [*_samples.LAST_NAMES, "O'Brien", "Müller"]
COMPANY_WORDS = list(_samples.COMPANY_WORDS)
INDUSTRIES = [
    "IT Services",
    "Managed Services",
    "Accounting",
    "Retail",
    "Construction",
    "Real Estate",
    "Healthcare",
    "Legal",
    "Education",
    "Manufacturing",
]
TITLES = [
    "CEO",
    "Owner",
    "Founder",
    "President",
    "Owner/CEO",
    "Co-Founder & CEO",
    "CTO",
    "Office Manager",
    "IT Manager",
    "Marketing Coordinator",
    "Managing Partner",
]
COUNTRIES = ["US", "US", "US", "CA", "GB", "DE", "AU", "FR", "NL", "MX"]
# A region for every drawn country (a rule's Geography(regions=...) compares them).
REGIONS = {
    "US": ["TX", "CA", "NY", "FL", "WA"],
    "CA": ["ON", "BC", "QC"],
    "GB": ["England", "Scotland", "Wales"],
    "DE": ["BY", "BE", "HH"],
    "AU": ["NSW", "VIC", "QLD"],
    "FR": ["Île-de-France", "Bretagne"],
    "NL": ["NH", "ZH"],
    "MX": ["CMX", "JAL"],
    "JP": ["Tokyo", "Ōsaka"],
}
SOURCES = ["webinar", "referral", "website", "trade-show", "bought-list", "ads"]
SERVICES = ["managed backup", "help desk", "cloud migration", "security audit", "bookkeeping"]


_T = TypeVar("_T")
# ``leads(model=MyLead)`` is a strategy of ``MyLead``s, ``contacts(model=MyContact)`` of
# ``MyContact``s, for type checkers (the overloads of each).
_LeadModel = TypeVar("_LeadModel", bound=Lead)
_ContactModel = TypeVar("_ContactModel", bound=Contact)

# A drawn person's serial gives them their own e-mail and phone. It is drawn from
# hypothesis' own choices, so that the same choices draw the same people: a seed, the
# example database and ``derandomize=True`` replay them, and shrinking works (a counter
# kept by the process gave other people on every replay: flaky failures, no shrinking).
# Distinct within an example, as the funnel refuses duplicates, which a test rarely
# wants by accident: each example keeps the serials it gave out (``st.shared``, one
# set per example, made anew for each), and a serial drawn again moves on to the next
# free one. Shrinking drives every serial to 0, and without that a shrunk example's
# people would all share one e-mail and phone (a duplicate: another failure than the
# one being shrunk); with it they shrink to 0, 1, 2... A range rather than
# ``st.lists(unique=True)`` because people are drawn one at a time, by many strategies.
# Not distinct across examples: every example needs a store of its own (``make_funnel``).
_SERIALS = 8_000_000  # distinct phones: 800 exchanges of 10,000 lines (see _phone)
_SERIALS_GIVEN: st.SearchStrategy[set[int]] = st.shared(
    st.builds(set), key="leadfunnel.testing.serials"
)
_SERIAL_DRAWN = st.integers(0, _SERIALS - 1)


@st.composite
def _placed_serial(draw: st.DrawFn) -> tuple[int, int]:
    """A serial, and how many were given out in the example before it."""
    given = draw(_SERIALS_GIVEN)
    serial = draw(_SERIAL_DRAWN)
    while serial in given:
        serial = (serial + 1) % _SERIALS
    given.add(serial)
    return serial, len(given) - 1


# Strategies are made once, here or when a public strategy is asked for, not inside a
# draw (unless they depend on what was drawn): hypothesis validates each new strategy
# object the first time it is drawn from, which cost more than the drawing itself.
_PLACED_SERIAL: st.SearchStrategy[tuple[int, int]] = _placed_serial()
_SERIAL: st.SearchStrategy[int] = _PLACED_SERIAL.map(lambda placed: placed[0])
_COIN = st.booleans()


# The histories' knobs: drawn and compared with 0, which hypothesis draws well over once
# in n (it favours the bounds of a range, and shrinks to 0). The history surveys in
# ``tests/test_toolkit_histories.py`` measure what comes of them; person-level shares
# come from a table of plans instead (see _PLANS).
_ONE_IN_3 = st.integers(0, 2)
_ONE_IN_4 = st.integers(0, 3)
_ONE_IN_5 = st.integers(0, 4)
_ONE_IN_10 = st.integers(0, 9)


def _weighted(*choices: tuple[_T, int]) -> st.SearchStrategy[_T]:
    """``sampled_from`` with weights; the first choice is where shrinking goes."""
    return st.sampled_from([value for value, weight in choices for _ in range(weight)])


def _mixture(*choices: tuple[int, st.SearchStrategy[_T]]) -> st.SearchStrategy[_T]:
    """One of the strategies, with weights (``st.one_of`` picks evenly among all the
    branches of nested ``one_of``s); shrinking goes to the first."""
    return _weighted(*((strategy, weight) for weight, strategy in choices)).flatmap(
        lambda strategy: strategy
    )


# --- the plan: which awkward cases a person gets -----------------------------------------

# Hypothesis does not draw independent examples: in a run of 100 it tries about a dozen
# prefixes extended with the simplest values, and each random example is followed by a
# few mutations that keep its first draws. A run of 100 holds some 20 to 30 independent
# values of a person's *first* draw, and far fewer of the later ones: a case drawn one
# time in thirty by a later draw was missing from half of the runs of 100. So the
# awkward cases are decided together, by the first draw of every person: a row of a
# fixed table of plans. Each case takes a share of the rows large enough that a run of
# 100 examples holds it (``tests/test_toolkit_audit.py`` checks runs of several seeds),
# the cases are spread over the rows independently of each other (a fixed shuffle),
# and row 0, where shrinking goes, is a plain person.


@dataclass(frozen=True)
class _Plan:
    """The awkward cases of one drawn person."""

    reach: str  # both, email, phone, none (a badge) or erased
    kept: str  # the reach where erasing is not allowed: an erased plan's is none or both
    avoid: bool  # a lead avoid-listed, a contact of type avoid (when not fixed)
    merged: bool  # an e-mail or phone merged away before (people with one)
    long_text: bool  # a name, company or title of exactly 200 characters
    long_notes: bool  # notes of exactly 32,000 characters
    instant: str  # created_at: recent (UTC), offset, bound (0001/9999) or far (a year)
    opt_outs: bool  # channels the policy must refuse

    @property
    def plain(self) -> bool:
        return self == _PLAIN


_PLAIN = _Plan("both", "both", False, False, False, False, "recent", False)
_PLAN_ROWS = 240
_KEYED = ("both", "email", "phone")


def _plans() -> list[_Plan]:
    """The table of plans: every case on its share of the 240 rows (exactly), spread
    over them by a fixed shuffle (the same table in every process)."""
    shuffled = random.Random(20260105)

    def column(*shares: tuple[_T, int]) -> list[_T]:
        values = [value for value, count in shares for _ in range(count)]
        assert len(values) == _PLAN_ROWS, len(values)
        shuffled.shuffle(values)
        return values

    def rows_among(rows: list[int], count: int) -> set[int]:
        return set(shuffled.sample(rows, count))

    # Each case on a quarter of the rows at least (a run of 100 examples holds some 18
    # independent people, and a case on a quarter of them is missing from fewer than
    # one run in a hundred): erased people, badges with neither e-mail nor phone (the
    # erased included: two in five), avoid-listed people, a key merged away, a text at
    # its limit, notes at theirs, an instant at the ends of what a store keeps or in
    # another far year (half of them: 0001-01-01, 9999-12-31, 1582, 2038...),
    # opt-outs.
    reach = column(("both", 72), ("email", 36), ("phone", 36), ("none", 36), ("erased", 60))
    # Where nobody may be erased (a fixed status, fits=, erased_at=None): half of the
    # erased rows are badges, half reachable both ways (a quarter badges in all).
    erased_rows = [row for row in range(_PLAN_ROWS) if reach[row] == "erased"]
    kept_none = rows_among(erased_rows, 30)
    kept_reach = [
        ("none" if row in kept_none else "both") if reach[row] == "erased" else reach[row]
        for row in range(_PLAN_ROWS)
    ]
    avoid = column((True, 60), (False, 180))
    instant = column(("recent", 72), ("offset", 48), ("bound", 60), ("far", 60))
    opt_outs = column((True, 60), (False, 180))
    keyed = [row for row in range(_PLAN_ROWS) if reach[row] in _KEYED]
    kept = [row for row in range(_PLAN_ROWS) if reach[row] != "erased"]
    merged = rows_among(keyed, 60)
    long_text = rows_among(kept, 60)  # an erased person has no text
    long_notes = rows_among(kept, 60)
    plans = [
        _Plan(
            reach[row],
            kept_reach[row],
            avoid[row],
            row in merged,
            row in long_text,
            row in long_notes,
            instant[row],
            opt_outs[row],
        )
        for row in range(_PLAN_ROWS)
    ]
    # Shrinking goes to row 0: make it a plain person (a swap keeps every share).
    plain = next(row for row, plan in enumerate(plans) if plan.plain)
    plans[0], plans[plain] = plans[plain], plans[0]
    return plans


_PLANS = _plans()
_PLAN: st.SearchStrategy[_Plan] = st.sampled_from(_PLANS)


# --- text ---------------------------------------------------------------------------

# Values that trip careless code: apostrophes and hyphens, accents (composed and
# combining), other scripts, right-to-left text, astral characters, a no-break space
# inside, markup, SQL, and cells a spreadsheet would run as a formula. All valid: no
# control character, nothing a store cannot keep.
ODD_NAMES = [
    "O'Brien",
    "D'Arcy-Smith",
    "van der Berg",
    "Nguyễn",
    "Łukasz",
    "Søren",
    "E\u0301mile",
    "محمد",
    "李小龙",
    "Ana\u00a0María",
    "Zoë 🦄",
    "<b>Bold</b>",
    "Robert'); DROP TABLE leads;--",
    '=HYPERLINK("http://example.com")',
    "+1 Prefix",
    "-Minus",
    "@Handle",
]
ODD_COMPANIES = [
    "Acme & Söhne GmbH",
    "O'Reilly Media, Inc.",
    "AT&T",
    "株式会社テスト",
    "Ünïcode Ltd.",
    "=SUM(A1:A9)",
    "Smith (née Jones) LLC",
    "שלום Systems",
    "100% Pure 🍋 Co",
]
_WORDS = [
    "Ünïcode",
    "naïve café",
    "Straße",
    "東京",
    "O'Brien-Smith",
    "🦄",
    "lorem ipsum",
    "=1+1",
    "a\u0301",
]
_NOTES = [
    "Met at the trade show; wants a quote.",
    "called back,\twants a quote\nnext week",
    "Line one\r\nLine two\r\n\tindented ✓",
    "Prefers e-mail.\n\nDo not call before 10am (CET).",
    "=cmd|' /C calc'!A0",
    "Zoë said: \"call me\" \u2013 'maybe'",
]


def _table(*shares: tuple[int, Iterable[_T]]) -> st.SearchStrategy[_T]:
    """One draw from several kinds of values, each kind taking ``count`` places of the
    table (its values in turn): at most 256 places, which hypothesis draws evenly.

    A kind with more values than places would lose its last ones, never drawn (long
    texts once lost every value at the fields' limits so): that is refused here.
    """
    table: list[_T] = []
    for count, values in shares:
        kind = list(values)
        assert len(kind) <= count, f"{len(kind)} values for {count} places: some never drawn"
        table += itertools.islice(itertools.cycle(kind), count)
    assert len(table) <= 256, len(table)
    return st.sampled_from(table)


def _long(words: list[str], lengths: list[int], count: int) -> list[str]:
    """``count`` texts, each a word over and over cut to one of ``lengths`` characters
    exactly (the fields' limits among them): the lengths in turn, so that each comes
    as often, and the words in turn, so that each length meets several words."""
    texts = []
    for n in range(count):
        word, length = words[n % len(words)], lengths[n % len(lengths)]
        text = (word + " ") * (length // (len(word) + 1) + 1)
        # Exactly ``length`` characters, none of them whitespace at either end (a cut
        # in the middle of "\r\n" or at a space would otherwise leave it shorter).
        text = text.strip()
        while len(text) < length:
            text += text
        text = text[:length]
        while text[-1].isspace() or unicodedata.combining(text[-1]):
            text = text[:-1] + "x"
        texts.append(text)
    return texts


def _text(common: list[str], odd: list[str], lengths: list[int]) -> st.SearchStrategy[str]:
    """Mostly realistic values; one in four odd, one in eight long (a quarter of those
    at the field's limit)."""
    return _table((150, common), (60, odd), (30, _long([*odd, *_WORDS], lengths, 30)))


_NAME_LENGTHS = [200, 151, 199, 100]  # Name: at most 200 characters
_FIRST_NAME = _text(FIRST_NAMES, ODD_NAMES, _NAME_LENGTHS)
_LAST_NAME = _text(LAST_NAMES, ODD_NAMES, _NAME_LENGTHS)
_COMPANY = _text(
    [f"{word} {kind}" for word in COMPANY_WORDS for kind in ("IT", "Group", "Co")],
    ODD_COMPANIES,
    _NAME_LENGTHS,
)
_NOTE: st.SearchStrategy[str | None] = _table(
    (90, [None]),
    (90, _NOTES),
    # Notes: at most 32,000 (and a store column of 2,000 or 4,000 would cut the rest)
    (30, _long([*_NOTES, *_WORDS], [32_000, 2_001, 31_999, 500, 4_001], 30)),
)
# The texts at the limits that a person's plan asks for (see _PLANS).
_AT_NAME_LIMIT = _long([*ODD_NAMES, *_WORDS], [200], len(ODD_NAMES) + len(_WORDS))
_AT_NOTES_LIMIT = _long([*_NOTES, *_WORDS], [32_000], len(_NOTES) + len(_WORDS))


# --- instants -------------------------------------------------------------------------

_OFFSETS = [
    timezone(timedelta(hours=5, minutes=30)),
    timezone(-timedelta(hours=3, minutes=30)),
    timezone(timedelta(hours=14)),
    timezone(-timedelta(hours=12)),
    timezone(timedelta(hours=1)),
    timezone(-timedelta(hours=8)),
]
_FIRST_INSTANT = datetime(1, 1, 1, tzinfo=UTC)
_LAST_INSTANT = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
# The ends of what every store keeps (0001-01-01 and 9999-12-31 in UTC), in UTC and as
# the same instants in the farthest offsets (a year 0001 or 10000 in UTC would be out).
_BOUNDS = [
    _FIRST_INSTANT,
    _LAST_INSTANT,
    _FIRST_INSTANT.astimezone(timezone(timedelta(hours=14))),
    _LAST_INSTANT.astimezone(timezone(-timedelta(hours=12))),
]


_MONTH = timedelta(days=28)  # a point in a month, whatever the month


# A month (drawn evenly), then a point in it: two draws, where st.datetimes takes eight.
_MONTHS = [(year, month) for year in range(2020, 2031) for month in range(1, 13)]
_IN_MONTH = st.integers(0, _MONTH // timedelta(microseconds=1) - 1)
# Years that break things: the first and last a store keeps, around 1900 and the Unix
# epoch, 2038 (32-bit seconds), 2262 (64-bit nanoseconds), the Gregorian switch.
_FAR_YEARS = [2, 100, 1000, 1582, 1752, 1899, 1900, 1969, 1970, 2038, 2100, 2262, 3000, 9998]
_ZONES = [UTC, *_OFFSETS]
# Which instant: recent in UTC (8 in 15), recent in another offset (4 in 15), the first
# or last instant a store keeps (1 in 15), or a far year in any offset (2 in 15).
_INSTANT_KIND = _weighted(("recent", 8), ("offset", 4), ("bound", 1), ("far", 2))
_MONTH_PICK = st.sampled_from(_MONTHS)
_FAR_YEAR = st.sampled_from(_FAR_YEARS)
_ZONE = st.sampled_from(_ZONES)


def _instant(draw: st.DrawFn, kind: str | None = None) -> datetime:
    """An instant drawn inside a composite, of the ``kind`` a plan gives (else drawn)."""
    # Every kind makes the same draws: hypothesis favours the branches of an example
    # that draw more, which would skew the shares.
    drawn = draw(_INSTANT_KIND)
    kind = kind or drawn
    year, month = draw(_MONTH_PICK)
    far_year = draw(_FAR_YEAR)
    in_month = timedelta(microseconds=draw(_IN_MONTH))
    zone = draw(_ZONE)
    if kind == "bound":
        return _BOUNDS[_ZONES.index(zone) % len(_BOUNDS)]
    if kind == "far":
        year = far_year
    elif kind == "recent":
        zone = UTC
    elif zone is UTC:
        zone = _OFFSETS[month % len(_OFFSETS)]
    return (datetime(year, month, 1, tzinfo=UTC) + in_month).astimezone(zone)


@st.composite
def _instants(draw: st.DrawFn) -> datetime:
    return _instant(draw)


#: Instants as records carry them: mostly recent and in UTC, often in another offset,
#: one in five in a year that breaks things (the first and last instants a store keeps,
#: the Unix epoch, 2038, 9998...). A person's ``created_at`` comes from their plan.
_INSTANT = _instants()


# --- the rest of a person -------------------------------------------------------------


def _phone(area: int, serial: int, style: int = 0) -> str:
    """A phone number of its own for each serial, written one of several ways that all
    mean the same E.164 number (NANP 555-01xx is too small a range)."""
    exchange, line = 200 + serial // 10_000 % 800, serial % 10_000
    if style == 1:
        return f"({area}) {exchange:03d}-{line:04d}"
    if style == 2:
        return f"{area}.{exchange:03d}.{line:04d}"  # no country code: the default region
    if style == 3:  # London, for a number outside the default region
        return f"+44 20 {serial // 10_000 % 10_000:04d} {line:04d}"
    return f"+1 {area} {exchange:03d} {line:04d}"


_PHONE_STYLE = _weighted((0, 2), (1, 1), (2, 1), (3, 1))
_NATIONAL = (1, 2)  # the styles without a country code
_DIALS_1 = ("US", "CA")  # the drawn countries whose numbers those can be
_EMAIL_STYLE = _weighted(("plain", 3), ("upper", 2), ("tagged", 1), ("sub", 1), ("idn", 1))
_COUNTRY = st.sampled_from(
    [
        ("US", "US"),
        ("US", "US"),
        ("us", "US"),
        ("United States", "US"),
        ("CA", "CA"),
        ("GB", "GB"),
        ("United Kingdom", "GB"),
        ("DE", "DE"),
        ("Germany", "DE"),
        ("AU", "AU"),
        ("FR", "FR"),
        ("NL", "NL"),
        ("MX", "MX"),
        ("JP", "JP"),
    ]
)
_TITLE = _text(TITLES, ODD_NAMES, _NAME_LENGTHS)
_INDUSTRY = st.sampled_from(INDUSTRIES)
# Around the thresholds rules use, and the ends: none, one, a giant.
_EMPLOYEES = st.sampled_from(
    [1, 5, 9, 10, 11, 24, 25, 49, 50, 99, 100, 101, 250, 499, 500, 1_000, 2_000, 0, 250_000]
)
_REVENUE = st.sampled_from(
    [
        *(Decimal(n) for n in (50_000, 99_999, 100_000, 250_000, 999_999, 1_000_000)),
        *(Decimal(n) for n in (2_500_000, 5_000_000, 10_000_000, 50_000_000)),
        Decimal(0),
        Decimal("0.01"),
        Decimal("2500000.50"),
        Decimal("9999999999999999.99"),  # Money: 18 digits, 2 after the point
    ]
)
_REGION_PICK = st.integers(0, 14)


def _region(country: str, pick: int) -> str | None:
    regions = REGIONS.get(country)
    return regions[pick % len(regions)] if regions else None


# Never None here: a missing city or postal code is _DROPPED's (missing=True) to decide.
_CITY = st.sampled_from(["Austin", "Denver", "Toronto", "Leeds", "Berlin", "São Paulo", "Zürich"])
_POSTAL_CODE = st.sampled_from(["78701", "SW1A 1AA", "10115", "H0H 0H0", "01000-000"])
# Set only with missing=False: in the mix a person has no owner (a funnel's routing
# gives one) and a lead no campaign.
_OWNER = st.sampled_from(["ann", "bo", "Zoë", "sales-team-2"])
_CAMPAIGN = st.sampled_from(["spring-webinar", "q1-outbound", "trade-show-2026", "Ünï promo"])
_SOURCE = st.sampled_from(SOURCES)
_TAG_NAMES = ["vip", "partner-referral", "q1", "VIP", "Ünï code", "x" * 100]
_TAGS = _table(
    (30, [frozenset[str]()]),
    (41, [frozenset(c) for n in (1, 2, 3) for c in itertools.combinations(_TAG_NAMES, n)]),
)
# Some opt-outs, for the people whose plan has them (the others have none).
_OPT_OUTS = st.sampled_from(
    [frozenset(c) for n in (1, 2, 3) for c in itertools.combinations(Channel, n)]
)
_OPTIONAL = [
    "title",
    "industry",
    "employees",
    "annual_revenue",
    "country",
    "region",
    "city",
    "postal_code",
    "source",
]
# Which optional fields a person lacks: none two times in five, else one to three.
_DROPPED = _table(
    (100, [()]),
    (36, itertools.combinations(_OPTIONAL, 1)),
    (36, itertools.combinations(_OPTIONAL, 2)),
    (84, itertools.combinations(_OPTIONAL, 3)),
)


def _email(first: str, last: str, serial: int, style: str, old: bool = False) -> str:
    local = "".join(
        c for c in f"{first}.{last}".lower() if c.isascii() and (c.isalnum() or c == ".")
    ).strip(".")
    local = ".".join(part for part in local.split(".") if part)[:40] or "person"
    domain = f"{'old-' if old else ''}company-{serial}.example.com"
    if style == "upper":
        return f"{local.upper()}.{serial}@{domain.upper()}"
    if style == "tagged":
        return f"{local}+crm.{serial}@{domain}"
    if style == "sub":
        return f"{local}.{serial}@mail.eu.{domain}"
    if style == "idn":
        return f"{local}.{serial}@bücher-{domain}"
    return f"{local}.{serial}@{domain}"


#: The fields ``funnel.erase`` empties (an erased person keeps only what reports need).
_ERASED: dict[str, Any] = {
    "first_name": None,
    "last_name": None,
    "email": None,
    "phone": None,
    "other_emails": frozenset(),
    "other_phones": frozenset(),
    "company": None,
    "title": None,
    "city": None,
    "postal_code": None,
    "notes": None,
}


def _checked(
    strategy: str,
    model: builtins.type[Lead | Contact],
    own: tuple[str, ...],
    missing: object,
    keys: object,
    fixed: Mapping[str, Any],
) -> dict[str, Any]:
    """``fixed`` by field name (a field's alias is taken too), once the arguments are
    checked. Refused, when the strategy is made, are those that would make it draw
    something else than asked, or nothing at all: a keyword that is no field of
    ``model`` (a typo: every drawn record would be refused, and hypothesis would report
    a failed health check that does not name it), a ``keys`` that is none of
    :data:`Keys` (it was taken for "both"), a ``missing`` that is not a bool."""
    by_alias = {
        alias: name
        for name, info in model.model_fields.items()
        for alias in (info.alias, info.validation_alias)
        if isinstance(alias, str)
    }
    named = {by_alias.get(name, name): value for name, value in fixed.items()}
    unknown = [name for name in named if name not in model.model_fields]
    if unknown:
        name = unknown[0]
        close = difflib.get_close_matches(name, [*own, *model.model_fields, *by_alias], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise InvalidArgumentError(
            f"{strategy}() got {name}={named[name]!r}, but {name!r} is no field of "
            f"{model.__name__}{hint}; {strategy}() takes {', '.join(own)}, and the fields "
            f"of {model.__name__} to fix: {', '.join(sorted(model.model_fields))}"
        )
    if keys is not None and keys not in _KEYS:
        raise InvalidArgumentError(
            f"{strategy}(keys={keys!r}) is not a way of reaching a person; use one of: "
            f"{', '.join(_KEYS)} (or None, the default: a mix)"
        )
    if not isinstance(missing, bool):
        raise InvalidArgumentError(
            f"{strategy}(missing={missing!r}) takes True (the default: fields often "
            "missing) or False (every detail filled)"
        )
    return named


def _erasable(state: object, engine: object, fixed: Iterable[str]) -> bool:
    """Whether erased people come in the mix: not when the caller fixes the state (a
    lead's ``status``, a contact's ``type``: people to move on from there, and nothing
    may be done with an erased person), asks for leads that fit an engine (leads to
    qualify), or fixes ``erased_at`` itself."""
    return state is None and engine is None and "erased_at" not in fixed


def _reach(plan: _Plan, missing: bool, keys: Keys | None, erasable: bool) -> str:
    """How a person can be reached: ``keys``, or with ``missing`` their plan's (a plan
    to erase gives a badge or both ways unless ``erasable``), else both ways."""
    if keys is not None:
        return keys
    if not missing:
        return "both"
    return plan.reach if erasable else plan.kept


# The record ids: UUIDv7-shaped (as the models' own ``new_id``), from hypothesis'
# choices so that an example replays with the same ids. The 48-bit time is a fixed
# epoch plus the person's place in the example (``_SERIALS_GIVEN``: 0 for the first
# person drawn, 1 for the next...), so an example's ids are distinct and increase in
# the order its people were drawn, as the funnel's would in the order they were made
# (a list orders records of one ``created_at`` by id); 74 drawn bits make the rest.
_ID_EPOCH_MS = 1_577_836_800_000  # 2020-01-01 00:00 UTC
_ID_BITS = st.integers(0, 2**74 - 1)


def _drawn_id(place: int, bits: int) -> UUID:
    rand_a, rand_b = bits >> 62, bits & (2**62 - 1)
    value = (_ID_EPOCH_MS + place) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    return UUID(int=value)


def _person_fields(draw: st.DrawFn, plan: _Plan, reach: str, missing: bool) -> dict[str, Any]:
    """The fields of a person of ``plan``, reached as ``reach`` says, drawn inside a
    composite.

    The plan is an example's first draw (see :data:`_PLANS`): hypothesis starts its
    first examples from a few random draws and the simplest values after them, and
    mutates an example's later draws far more than its first, so the first draw is the
    one that keeps to its weights.
    """
    # Every person makes the same draws, whatever they are drawn for (see _instant).
    first = draw(_FIRST_NAME)
    last = draw(_LAST_NAME)
    raw_country, country = draw(_COUNTRY)
    created_at = _instant(draw, plan.instant)
    email_style, phone_style = draw(_EMAIL_STYLE), draw(_PHONE_STYLE)
    if phone_style in _NATIONAL and country not in _DIALS_1:
        phone_style = 0  # a US number without its +1 is refused where the country is not
    fields: dict[str, Any] = {
        "first_name": first,
        "last_name": last,
        "company": draw(_COMPANY),
        "title": draw(_TITLE),
        "industry": draw(_INDUSTRY),
        "employees": draw(_EMPLOYEES),
        "annual_revenue": draw(_REVENUE),
        "country": raw_country,
        "region": _region(country, draw(_REGION_PICK)),
        "city": draw(_CITY),
        "postal_code": draw(_POSTAL_CODE),
        "source": draw(_SOURCE),
        "tags": draw(_TAGS),
        "notes": draw(_NOTE),
        "created_at": created_at,
        "updated_at": created_at,
    }
    opt_outs = draw(_OPT_OUTS)
    fields["opt_outs"] = opt_outs if plan.opt_outs else frozenset()
    owner = draw(_OWNER)
    # The serial last of the person's draws: hypothesis keeps the weights of an
    # example's first draws best (see above), and the serial has no weights to keep.
    serial, place = draw(_PLACED_SERIAL)
    fields["id"] = _drawn_id(place, draw(_ID_BITS))
    fields["email"] = _email(first, last, serial, email_style)
    fields["phone"] = _phone(512, serial, phone_style)
    if reach in ("phone", "none", "erased"):
        fields["email"] = None
    if reach in ("email", "none", "erased"):
        fields["phone"] = None
    if plan.long_text:
        # One text field at the limit (the serial says which, and which text).
        name = ("first_name", "last_name", "company", "title")[serial % 4]
        fields[name] = _AT_NAME_LIMIT[serial // 4 % len(_AT_NAME_LIMIT)]
    if plan.long_notes:
        fields["notes"] = _AT_NOTES_LIMIT[serial % len(_AT_NOTES_LIMIT)]
    if missing:
        # Real lists have holes: drop some optional fields (names and company stay, so a
        # person without e-mail and phone is still somebody).
        for name in draw(_DROPPED):
            fields[name] = None
        if fields["country"] is None:
            fields["region"] = None
    else:
        # Every field filled: notes, and an owner (the mix leaves it to routing).
        if fields["notes"] is None:
            fields["notes"] = _NOTES[serial % len(_NOTES)]
        fields["owner"] = owner
    if plan.merged and missing and reach in _KEYED:
        # Someone merged before: an old e-mail or phone still recognises them.
        if fields["email"] is not None:
            old = _email(first, last, serial, "plain", old=True)
            fields["other_emails"] = frozenset({old})
        else:
            fields["other_phones"] = frozenset({_phone(737, serial)})
    erased_at = draw(_INSTANT)  # drawn for everyone, used for the erased (see above)
    if reach == "erased":
        # Erased (``funnel.erase``): no personal data left, and when it went.
        fields.update(_ERASED, erased_at=erased_at)
    return fields


def _fix(fields: dict[str, Any], values: dict[str, Any]) -> None:
    """Set the fields given by keyword; a ``created_at`` given alone dates
    ``updated_at`` too, as a never-stored record is."""
    fields.update(values)
    if "created_at" in values and "updated_at" not in values:
        fields["updated_at"] = values["created_at"]


def _fixed_values(draw: st.DrawFn, fixed: Mapping[str, Any]) -> dict[str, Any]:
    """The ``**fixed`` keywords: a strategy is drawn from, anything else used as is."""
    return {
        name: draw(value) if isinstance(value, st.SearchStrategy) else value
        for name, value in fixed.items()
    }


# The statuses of leads not avoid-listed (a plan says which are; see _status).
_LEAD_STATUSES = _weighted((LeadStatus.RAW, 3), (LeadStatus.SUSPECT, 2), (LeadStatus.FARM_LIST, 2))
_INTEREST = st.sampled_from(list(Interest))
_NEEDS = st.sampled_from(
    [frozenset(c) for n in (0, 1, 2) for c in itertools.combinations(SERVICES, n)]
)
# The types of contacts not avoid-listed (a plan says which are).
_CONTACT_TYPES = st.sampled_from([t for t in ContactType if t is not ContactType.AVOID])


#: The keywords of :func:`leads` and :func:`contacts` besides the fields they fix.
_LEADS_KEYWORDS = ("status", "fits", "missing", "keys", "model")
_CONTACTS_KEYWORDS = ("type", "missing", "keys", "model")


@overload
def leads(
    *,
    status: LeadStatus | str | None = None,
    fits: QualificationEngine | Profile | None = None,
    missing: bool = True,
    keys: Keys | None = None,
    model: type[_LeadModel],
    **fixed: Any,
) -> st.SearchStrategy[_LeadModel]: ...


@overload
def leads(
    *,
    status: LeadStatus | str | None = None,
    fits: QualificationEngine | Profile | None = None,
    missing: bool = True,
    keys: Keys | None = None,
    model: type[Lead] = ...,
    **fixed: Any,
) -> st.SearchStrategy[Lead]: ...


def leads(
    *,
    status: LeadStatus | str | None = None,
    fits: QualificationEngine | Profile | None = None,
    missing: bool = True,
    keys: Keys | None = None,
    model: type[Lead] = Lead,
    **fixed: Any,
) -> st.SearchStrategy[Lead]:
    """Valid, never-stored ``Lead``s, the awkward ones often; no two of one example
    share an e-mail or a phone, and the same hypothesis choices draw the same leads.

    ``status`` fixes the status (default: raw, suspect, farm_list, and a quarter
    avoid: every status ``add`` takes). ``fits`` keeps only leads that an engine (or a
    single profile) qualifies. ``keys`` fixes how the person can be reached: ``"both"``,
    ``"email"``, ``"phone"`` or ``"none"`` (default: a mix, two in five with neither,
    among them a quarter of all erased). Erased people (``erased_at`` set, names,
    e-mail, phone, company and notes gone: nothing more may be done with them) come
    only in the default mix: never with ``status``, ``fits``, ``keys`` or
    ``erased_at`` given. ``missing=False`` fills every field of the person's details
    (owner and campaign included; e-mail and phone unless ``keys`` says otherwise).
    ``model`` draws a subclass of ``Lead`` with custom fields, drawn from their
    annotations. Other keywords fix fields
    (``source="webinar"``, ``erased_at=None``), or draw them when given a strategy
    (``employees=st.integers(1, 9)``).

    The arguments are checked when the strategy is made: a keyword that is no field of
    ``model``, a ``status`` that is no ``LeadStatus`` or ``keys`` none of the above is
    an ``InvalidArgumentError`` naming it and what is allowed (it would otherwise fail
    every draw, or draw other people than asked).
    """
    if not (isinstance(model, type) and issubclass(model, Lead)):
        raise TypeError(f"model= takes Lead or a subclass of it, not {model!r}")
    _complete(model, sys._getframe(1))
    fixed = _checked("leads", model, _LEADS_KEYWORDS, missing, keys, fixed)
    if status is not None:
        status = member(LeadStatus, status, "status")
    engine = _engine(fits) if fits is not None else None
    strategy = _lead(_LeadParts.of(model, status, engine, missing, keys, fixed), fixed)
    if engine is not None:
        strategy = strategy.filter(lambda lead: engine.evaluate(lead).qualified)
    return strategy


@dataclass(frozen=True)
class _LeadParts:
    """The strategies a :func:`leads` call draws a lead's fields from, made once."""

    model: type[Lead]
    keys: Keys | None
    erasable: bool
    missing: bool
    status: LeadStatus | None  # fixed, or None: the plan's (avoid) or drawn
    custom: st.SearchStrategy[dict[str, Any]]
    profiles: st.SearchStrategy[Profile] | None  # with fits=: the profile to fit
    satisfying: Mapping[str, tuple[st.SearchStrategy[dict[str, Any]], ...]]  # by profile

    @classmethod
    def of(
        cls,
        model: type[Lead],
        status: LeadStatus | str | None,
        engine: QualificationEngine | None,
        missing: bool,
        keys: Keys | None,
        fixed: Iterable[str],
    ) -> _LeadParts:
        """``fixed`` names the fields given by keyword (no custom field is drawn for them)."""
        profiles = engine.profiles if engine is not None else ()
        fixed = frozenset(fixed)
        return cls(
            model=model,
            keys=keys,
            erasable=_erasable(status, engine, fixed),
            missing=missing,
            status=LeadStatus(status) if status is not None else None,
            custom=_custom_fields(model, Lead, dict.fromkeys(fixed)),
            profiles=st.sampled_from(profiles) if profiles else None,
            satisfying={p.name: tuple(_satisfying(rule) for rule in p.rules) for p in profiles},
        )


@st.composite
def _lead(draw: st.DrawFn, parts: _LeadParts, fixed: Mapping[str, Any]) -> Lead:
    plan = draw(_PLAN)  # first: see _person_fields
    reach = _reach(plan, parts.missing, parts.keys, parts.erasable)
    drawn_status = draw(_LEAD_STATUSES)
    custom = draw(parts.custom)  # early too, so that custom fields vary as much
    fields = _person_fields(draw, plan, reach, parts.missing)
    if parts.status is not None:
        fields["status"] = parts.status
    else:
        fields["status"] = LeadStatus.AVOID if plan.avoid else drawn_status
    fields["interest"] = draw(_INTEREST)
    fields["needs"] = draw(_NEEDS)
    campaign = draw(_CAMPAIGN)
    if not parts.missing:
        fields["campaign"] = campaign
    if parts.profiles is not None:
        # Steer towards a fit instead of filtering blindly: pick a profile and draw
        # values its built-in rules accept.
        for values in parts.satisfying[draw(parts.profiles).name]:
            fields.update(draw(values))
    fields.update(custom)
    _fix(fields, _fixed_values(draw, fixed))
    return _validated(parts.model, fields)


def _satisfying(rule: Any) -> st.SearchStrategy[dict[str, Any]]:
    """Field values the rule passes (empty for a rule this module does not know)."""
    from .. import rules

    if isinstance(rule, rules.Niche):
        return st.sampled_from(list(rule.industries)).map(lambda v: {"industry": v})
    if isinstance(rule, rules.Authority):
        return st.sampled_from(list(rule.titles)).map(lambda v: {"title": v.title()})
    if isinstance(rule, rules.Need):
        return st.sampled_from(list(rule.services)).map(lambda v: {"needs": frozenset({v})})
    if isinstance(rule, rules.Money):
        low_revenue = int(rule._revenue or 0)
        low_staff = rule._employees or 0
        return st.fixed_dictionaries(
            {
                "annual_revenue": st.integers(low_revenue, low_revenue + 10_000_000),
                "employees": st.integers(max(low_staff, 1), max(low_staff, 1) + 500),
            }
        )
    if isinstance(rule, rules.CompanySize):
        low = rule._low if rule._low is not None else 1
        high = rule._high if rule._high is not None else low + 1_000
        return st.integers(low, high).map(lambda v: {"employees": v})
    if isinstance(rule, rules.Geography):
        countries = st.sampled_from(list(rule.countries))
        if rule.regions is None:
            return countries.map(lambda c: {"country": c})
        regions = st.sampled_from(list(rule.regions))
        return st.tuples(countries, regions).map(lambda cr: {"country": cr[0], "region": cr[1]})
    if isinstance(rule, rules.Source):
        if rule.allowed is not None:
            return st.sampled_from(list(rule.allowed)).map(lambda v: {"source": v})
        return st.just({"source": "referral-" + "x" * 3})
    return st.just({})


@overload
def contacts(
    *,
    type: ContactType | str | None = None,
    missing: bool = True,
    keys: Keys | None = None,
    model: builtins.type[_ContactModel],
    **fixed: Any,
) -> st.SearchStrategy[_ContactModel]: ...


@overload
def contacts(
    *,
    type: ContactType | str | None = None,
    missing: bool = True,
    keys: Keys | None = None,
    model: builtins.type[Contact] = ...,
    **fixed: Any,
) -> st.SearchStrategy[Contact]: ...


def contacts(
    *,
    type: ContactType | str | None = None,
    missing: bool = True,
    keys: Keys | None = None,
    model: builtins.type[Contact] = Contact,
    **fixed: Any,
) -> st.SearchStrategy[Contact]:
    """Valid, realistic, never-stored ``Contact``s; no two of one example share an
    e-mail or a phone (nor with the example's leads).

    ``type`` fixes the type (default: any, avoid included; erased people as for
    :func:`leads`, never with ``type`` given); ``missing``, ``keys``, ``model`` and
    other keywords work, and are checked, as for :func:`leads` (a ``type`` that is no
    ``ContactType`` is an ``InvalidArgumentError`` listing the types).
    """
    if not (isinstance(model, builtins.type) and issubclass(model, Contact)):
        raise TypeError(f"model= takes Contact or a subclass of it, not {model!r}")
    _complete(model, sys._getframe(1))
    fixed = _checked("contacts", model, _CONTACTS_KEYWORDS, missing, keys, fixed)
    fixed_type = member(ContactType, type, "type") if type is not None else None
    custom = _custom_fields(model, Contact, fixed)
    erasable = _erasable(type, None, fixed)
    return _contact(model, keys, erasable, missing, fixed_type, custom, fixed)


@st.composite
def _contact(
    draw: st.DrawFn,
    model: builtins.type[Contact],
    keys: Keys | None,
    erasable: bool,
    missing: bool,
    fixed_type: ContactType | None,
    custom: st.SearchStrategy[dict[str, Any]],
    fixed: Mapping[str, Any],
) -> Contact:
    plan = draw(_PLAN)  # first: see _person_fields
    reach = _reach(plan, missing, keys, erasable)
    drawn_type = draw(_CONTACT_TYPES)
    own = draw(custom)
    fields = _person_fields(draw, plan, reach, missing)
    if fixed_type is not None:
        fields["type"] = fixed_type
    else:
        fields["type"] = ContactType.AVOID if plan.avoid else drawn_type
    fields.update(own)
    _fix(fields, _fixed_values(draw, fixed))
    return _validated(model, fields)


_M = TypeVar("_M", Lead, Contact)


def _validated(model: builtins.type[_M], fields: dict[str, Any]) -> _M:
    try:
        return model(**fields)
    except ValidationError:
        # A custom field's own validator refused the drawn value: draw again.
        reject()


def _engine(fits: Any) -> Any:
    from .._qualification import Profile, QualificationEngine

    if isinstance(fits, Profile):
        return QualificationEngine([fits])
    if isinstance(fits, QualificationEngine):
        return fits
    raise TypeError(f"fits= takes a QualificationEngine or a Profile, not {fits!r}")


# --- custom fields --------------------------------------------------------------------


def _complete(model: builtins.type[Lead | Contact], caller: types.FrameType) -> None:
    """Finish a model pydantic could not (its annotations name something it did not find
    when the class was made, as in a module that is not importable): with the names
    seen where the strategy was asked for, as pydantic itself would."""
    if not model.__pydantic_complete__:
        model.model_rebuild(_types_namespace={**caller.f_globals, **caller.f_locals})


def _custom_fields(
    model: builtins.type[Any], base: builtins.type[Any], fixed: Mapping[str, Any]
) -> st.SearchStrategy[dict[str, Any]]:
    """Values for the fields ``model`` adds to ``base`` (those not fixed by keyword):
    drawn from each field's annotation and constraints, or left at the default now and
    then, as a custom field often is."""
    extra = {
        name: info
        for name, info in model.model_fields.items()
        if name not in base.model_fields and name not in fixed
    }
    strategies: dict[str, st.SearchStrategy[Any]] = {}
    for name, info in extra.items():
        drawn = _for_annotation(info.annotation, list(info.metadata))
        if not info.is_required():
            default = info.get_default(call_default_factory=True)
            drawn = st.one_of(drawn, st.just(default))
        strategies[name] = drawn
    return st.fixed_dictionaries(strategies)


_TEXT = st.characters(categories=["L", "N", "Zs", "Pd", "Po"])


def _for_annotation(annotation: Any, metadata: list[Any]) -> st.SearchStrategy[Any]:
    """Values of a field's type that respect its constraints (``Field(ge=0)``,
    ``max_length``, ...). Text is printable (the models refuse control characters)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        inner = [m for info in args[1:] for m in getattr(info, "metadata", [info])]
        return _for_annotation(args[0], [*metadata, *inner])
    if origin in (Union, types.UnionType):
        return st.one_of(*(_for_annotation(arg, metadata) for arg in args))
    if annotation is type(None):
        return st.none()
    if origin is Literal:
        return st.sampled_from(args)
    if origin in (set, frozenset, list, tuple) and args:
        items = _for_annotation(args[0], [])
        bounds = _bounds(metadata)
        low, high = int(bounds.get("min_length", 0)), int(bounds.get("max_length", 3))
        if origin is list:
            return st.lists(items, min_size=low, max_size=high)
        if origin is tuple:
            return st.lists(items, min_size=low, max_size=high).map(tuple)
        return st.frozensets(items, min_size=low, max_size=high).map(origin)
    if isinstance(annotation, builtins.type):
        return _for_class(annotation, _bounds(metadata))
    return st.from_type(annotation)


def _bounds(metadata: Iterable[Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for item in metadata:
        if isinstance(item, annotated_types.Ge):
            found["min"] = item.ge
        elif isinstance(item, annotated_types.Gt):
            found["min"], found["exclusive_min"] = item.gt, True
        elif isinstance(item, annotated_types.Le):
            found["max"] = item.le
        elif isinstance(item, annotated_types.Lt):
            found["max"], found["exclusive_max"] = item.lt, True
        elif isinstance(item, annotated_types.MinLen):
            found["min_length"] = item.min_length
        elif isinstance(item, annotated_types.MaxLen):
            found["max_length"] = item.max_length
        else:  # pydantic's own: Field(pattern=, max_digits=, decimal_places=)
            for name in ("pattern", "max_digits", "decimal_places"):
                value = getattr(item, name, None)
                if value is not None:
                    found[name] = value
    return found


def _for_class(cls: builtins.type[Any], bounds: dict[str, Any]) -> st.SearchStrategy[Any]:
    low, high = bounds.get("min"), bounds.get("max")
    if issubclass(cls, enum.Enum):
        return st.sampled_from(list(cls))
    if cls is bool:
        return st.booleans()
    if cls is int:
        # Within signed 64 bits, what every store keeps (beyond, a store refuses it).
        low_int = -(2**63) if low is None else int(low) + bool(bounds.get("exclusive_min"))
        high_int = 2**63 - 1 if high is None else int(high) - bool(bounds.get("exclusive_max"))
        return st.integers(max(low_int, -(2**63)), min(high_int, 2**63 - 1))
    if cls is float:
        return st.floats(
            low,
            high,
            allow_nan=False,
            allow_infinity=False,
            exclude_min=bool(bounds.get("exclusive_min")),
            exclude_max=bool(bounds.get("exclusive_max")),
        )
    if cls is Decimal:
        places = int(bounds.get("decimal_places", 2))
        digits = bounds.get("max_digits")
        if digits is not None:
            # The largest value of max_digits digits, ``places`` of them after the point.
            largest = Decimal(10) ** (int(digits) - places) - Decimal(10) ** -places
            high = largest if high is None else min(Decimal(high), largest)
            low = -largest if low is None else max(Decimal(low), -largest)
        return st.decimals(low, high, allow_nan=False, allow_infinity=False, places=places)
    if cls is str and "pattern" in bounds:
        # Text the field's pattern matches, within its length, printable and stripped as
        # the models keep text.
        low_len = int(bounds.get("min_length", 0))
        high_len = bounds.get("max_length")
        return st.from_regex(str(bounds["pattern"]), fullmatch=True).filter(
            lambda text: (
                text.isprintable()
                and text == text.strip()
                and low_len <= len(text) <= (high_len if high_len is not None else len(text))
            )
        )
    if cls is str:
        return (
            st.text(
                _TEXT,
                min_size=max(int(bounds.get("min_length", 1)), 1),
                max_size=int(bounds.get("max_length", 40)),
            )
            .map(str.strip)
            .filter(bool)
        )
    if cls is datetime:
        return st.datetimes(datetime(2000, 1, 1), datetime(2040, 1, 1), timezones=st.just(UTC))
    if cls is date:
        return st.dates(date(2000, 1, 1), date(2040, 1, 1))
    if cls is UUID:
        return st.uuids()
    return st.from_type(cls)


# --- histories ------------------------------------------------------------------------

_DEAL_STEPS = frozenset({"sit", "propose", "send_contract", "win", "lose", "reschedule"})

# Which lead states each lead trigger starts from (DESIGN section 3).
_LEAD_FROM: dict[str, frozenset[str]] = {
    "farm": frozenset({"suspect"}),
    "respond": frozenset({"suspect", "farm_list"}),
    "qualify": frozenset({"raw", "unqualified"}),
    "disqualify": frozenset({"farm_list", "raw", "qualified"}),
}

# The stages each deal trigger starts from.
_DEAL_FROM: dict[str, frozenset[str]] = {
    "sit": frozenset({"appointment_set"}),
    "reschedule": frozenset({"appointment_set"}),
    "propose": frozenset({"appointment_sat"}),
    "send_contract": frozenset({"proposing"}),
    "win": frozenset({"contract_sent"}),
    "lose": frozenset({"appointment_set", "appointment_sat", "proposing", "contract_sent"}),
}

_ALL_CHANNELS = frozenset(Channel)
# The channel policy (DESIGN section 6), used only to aim touches: the funnel decides.
_CHANNELS: dict[str, frozenset[Channel]] = {
    "suspect": frozenset({Channel.EMAIL, Channel.SOCIAL}),
    "raw": frozenset({Channel.CALL, Channel.EMAIL, Channel.SMS, Channel.MEETING}),
    "farm_list": _ALL_CHANNELS,
    "qualified": _ALL_CHANNELS,
    "unqualified": frozenset({Channel.EMAIL}),
    "prospect": _ALL_CHANNELS,
    "client": _ALL_CHANNELS,
    "supplier": _ALL_CHANNELS,
    "partner": _ALL_CHANNELS,
    "other": _ALL_CHANNELS,
}


def _state(record: Lead | Contact) -> str:
    return str(record.status if isinstance(record, Lead) else record.type)


def _avoided(record: Lead | Contact) -> bool:
    return _state(record) == "avoid"


class _Cast:
    """The people and deals of a replay as the funnel holds them right now, in the order
    they came in (each kind read in one query, when a step first asks for it)."""

    def __init__(self, funnel: Funnel, people: list[UUID], deals: list[UUID] | None) -> None:
        self.funnel = funnel
        self.people = people
        self.deal_ids = deals

    @functools.cached_property
    def _leads(self) -> dict[UUID, Lead]:
        return {lead.id: lead for lead in self.funnel.leads()}

    @functools.cached_property
    def _contacts(self) -> dict[UUID, Contact]:
        return {contact.id: contact for contact in self.funnel.contacts()}

    def records(self, *, resolve: bool = True) -> list[Lead | Contact]:
        """Each person once: a lead, or (``resolve``) the contact it became; people
        merged away are gone."""
        found: dict[UUID, Lead | Contact] = {}
        for person_id in self.people:
            record: Lead | Contact | None = self._leads.get(person_id) or self._contacts.get(
                person_id
            )
            if resolve and isinstance(record, Lead) and record.contact_id is not None:
                record = self._contacts.get(record.contact_id, record)
            if record is not None:
                found.setdefault(record.id, record)
        return list(found.values())

    def leads(self) -> list[Lead]:
        return [self._leads[i] for i in dict.fromkeys(self.people) if i in self._leads]

    def deals(self) -> list[Opportunity]:
        current = {deal.id: deal for deal in self.funnel.opportunities()}
        if self.deal_ids is None:
            return list(current.values())
        return [current[i] for i in dict.fromkeys(self.deal_ids) if i in current]


@dataclass(frozen=True)
class FunnelStep:
    """One facade call of a generated history: ``method`` on a subject picked by
    ``target``, after the clock moves on by ``advance``.

    A step is *aimed* (the default): its subject is picked among those that can take it
    (a deal at ``appointment_set`` for ``sit``, a raw or unqualified lead for
    ``qualify``, someone the channel policy lets you reach for ``touch``...), counting
    back from the newest (``target=0`` is the newest). An unaimed step (``aimed=False``)
    picks among everyone, so the funnel may refuse it. ``apply(funnel, people)`` runs
    it; a move the funnel refuses (an illegal trigger, a policy refusal) is part of a
    realistic history and is skipped, not raised; a step with nobody to take it does
    nothing.

    ``kwargs`` are the call's keyword arguments, besides: ``record`` (the ``Lead`` or
    ``Contact`` that ``capture`` or ``add`` brings in; ``lead`` is an alias), ``match``
    (``"email"`` or ``"phone"``: the record arrives with that key of an earlier person,
    a returning or duplicate person), ``appointment_in`` (a ``timedelta`` from now, for
    ``set_appointment`` and ``reschedule``), ``changes`` (the fields ``update`` sets,
    as pairs) and ``other`` (which record ``merge`` merges into the target, counted
    like ``target``).
    """

    method: str
    target: int = 0
    kwargs: tuple[tuple[str, Any], ...] = ()
    advance: timedelta = timedelta(0)
    aimed: bool = True

    def apply(self, funnel: Funnel, people: list[Any], deals: list[Any] | None = None) -> Any:
        """Run the step on ``funnel``. ``people`` holds the ids of the people earlier
        steps brought in, ``deals`` those of the deals they opened (both in order, and
        both extended here); without ``deals``, every stored deal is a candidate."""
        clock = funnel.clock
        if self.advance and hasattr(clock, "advance"):
            clock.advance(seconds=self.advance.total_seconds())
        kwargs = dict(self.kwargs)
        try:
            if self.method in ("capture", "add"):
                return self._arrive(funnel, people, kwargs)
            cast = _Cast(funnel, people, deals)
            if self.method in _DEAL_STEPS:
                return self._move_deal(funnel, cast, kwargs)
            result = self._move_person(funnel, cast, kwargs)
            if self.method == "set_appointment" and deals is not None and result is not None:
                deals.append(result.id)
            return result
        except LeadFunnelError:
            return None

    def _pick(self, candidates: list[_T], target: int | None = None) -> _T | None:
        if not candidates:
            return None
        index = self.target if target is None else target
        return candidates[-1 - index % len(candidates)]

    def _arrive(self, funnel: Funnel, people: list[Any], kwargs: dict[str, Any]) -> Any:
        record = kwargs.pop("record", None) or kwargs.pop("lead")
        match = kwargs.pop("match", None)
        if match is not None:
            known = [
                r
                for r in _Cast(funnel, people, None).records(resolve=False)
                if getattr(r, match) is not None
            ]
            earlier = self._pick(known)
            if earlier is None:
                return None
            record = record.model_copy(update={match: getattr(earlier, match)})
        stored = getattr(funnel, self.method)(record, **kwargs)
        if stored.id == record.id and stored.id not in people:
            people.append(stored.id)
        return stored

    def _move_deal(self, funnel: Funnel, cast: _Cast, kwargs: dict[str, Any]) -> Any:
        deals = cast.deals()
        if self.aimed:
            stages = _DEAL_FROM[self.method]
            if self.method == "win" and kwargs.get("force"):
                stages = stages | {"proposing"}
            deals = [deal for deal in deals if deal.stage.value in stages]
        deal = self._pick(deals)
        if deal is None:
            return None
        if "appointment_in" in kwargs:
            kwargs["appointment_at"] = funnel.clock.now() + kwargs.pop("appointment_in")
        call: Callable[..., Any] = getattr(funnel, self.method)
        return call(deal.id, **kwargs)

    def _move_person(self, funnel: Funnel, cast: _Cast, kwargs: dict[str, Any]) -> Any:
        method = self.method
        subject: Lead | Contact | None
        if method in _LEAD_FROM:
            candidates: list[Lead | Contact] = list(cast.leads())
            if self.aimed:
                candidates = [
                    r for r in candidates if _state(r) in _LEAD_FROM[method] and r.erased_at is None
                ]
            subject = self._pick(candidates)
        elif method == "merge":
            return self._merge(funnel, cast, kwargs)
        else:
            candidates = cast.records(resolve=self.aimed)
            if self.aimed:
                candidates = [r for r in candidates if _can(funnel, method, r, kwargs)]
            subject = self._pick(candidates)
        if subject is None:
            return None
        if method == "update":
            changes = dict(kwargs.pop("changes", ()))
            edited: Any = subject.model_copy(update=changes)
            return funnel.update(edited)
        if "appointment_in" in kwargs:
            kwargs["appointment_at"] = funnel.clock.now() + kwargs.pop("appointment_in")
        if method == "touch":
            return funnel.touch(subject.id, kwargs.pop("channel"), kwargs.pop("outcome"), **kwargs)
        call: Callable[..., Any] = getattr(funnel, method)
        return call(subject.id, **kwargs)

    def _merge(self, funnel: Funnel, cast: _Cast, kwargs: dict[str, Any]) -> Any:
        records = cast.records(resolve=self.aimed)
        if self.aimed:
            # A converted lead is merged as the contact it became; an erased person not.
            records = [
                r
                for r in records
                if not (isinstance(r, Lead) and r.contact_id) and r.erased_at is None
            ]
        keep = self._pick(records)
        if keep is None:
            return None
        others = [r for r in records if r.kind == keep.kind and r.id != keep.id]
        if self.aimed and not _avoided(keep):
            others = [r for r in others if not _avoided(r)]
        other = self._pick(others, kwargs.pop("other", 0))
        if other is None:
            return None
        return funnel.merge(keep.id, other.id, **kwargs)

    def __repr__(self) -> str:
        shown = [f"{k}={v!r}" for k, v in self.kwargs if k not in ("lead", "record", "changes")] + [
            f"{k}={v!r}" for k, v in dict(self.kwargs).get("changes", ())
        ]
        if not self.aimed:
            shown.append("aimed=False")
        return f"{self.method}(#{self.target}{', ' + ', '.join(shown) if shown else ''})"


def _can(funnel: Funnel, method: str, record: Lead | Contact, kwargs: Mapping[str, Any]) -> bool:
    """Whether an aimed ``method`` can take ``record`` (a lead, or the contact it became)."""
    if record.erased_at is not None:
        return False  # nothing may be done with an erased person
    state = _state(record)
    if method == "avoid":
        return state != "avoid"
    if method == "touch":
        channel = Channel(kwargs["channel"])
        return channel in _CHANNELS.get(state, frozenset()) and channel not in record.opt_outs
    if method == "set_appointment":
        forced = bool(kwargs.get("force"))
        if isinstance(record, Lead):
            return state == "qualified" or (forced and state == "raw")
        return state in ("prospect", "client") or (forced and state == "unqualified")
    if method == "unmerge":
        return any(e.name == "merge" for e in funnel.history(record.id))
    return True  # update: anyone


# --- drawing histories ------------------------------------------------------------------


@functools.cache
def _hours(low: int, high: int) -> st.SearchStrategy[timedelta]:
    return st.integers(low, high).map(lambda h: timedelta(hours=h))


_AMOUNT = st.integers(500, 90_000)
_CALL_OUTCOME = st.sampled_from([Outcome.CONNECTED, Outcome.INTERESTED])


_SETTERS = st.sampled_from(["sue", "tom", None])
_OWNERS = st.sampled_from(["ann", "bo", None])
_REASONS = _weighted(
    (LostReason.NO_DECISION, 2),
    (LostReason.PRICE, 2),
    (LostReason.COMPETITOR, 1),
    (LostReason.NO_SHOW, 1),
    (LostReason.CANCELLED, 1),
    (LostReason.NOT_SOLID, 1),
    (LostReason.UNQUALIFIED, 1),
    (LostReason.AVOID, 1),
    (LostReason.OTHER, 1),
)
# How a deal story ends: won through every stage, won from proposing (forced), lost at
# some stage, or left open at some stage. Generation favours the first choice, so
# stories take turns leaning to winning and to losing: a history with two of them
# usually has both.
_LOST = ((("lost", 0), 1), (("lost", 1), 2), (("lost", 2), 2), (("lost", 3), 1))
_WON = ((("won", 4), 4), (("forced", 3), 1))
_OPEN = ((("open", 1), 1), (("open", 3), 1))
_ENDS = {
    "won": _weighted(*_WON, *_LOST, *_OPEN),
    "lost": _weighted(*_LOST, *_WON, *_OPEN),
}
_MOVES = ("sit", "propose", "send_contract", "win")


def _arrival(
    fits: QualificationEngine | Profile | None, model: type[Lead]
) -> st.SearchStrategy[FunnelStep]:
    """Someone new comes in: captured (an inbound response), or added (a list import:
    suspects, farm list, avoid-listed, or a contact from another system), or a known
    person again (their e-mail or phone on a new record)."""
    captured = leads(status="raw", model=model)
    if fits is not None:
        captured = st.one_of(captured, leads(status="raw", fits=fits, model=model))
    capture = captured.map(lambda lead: FunnelStep("capture", kwargs=(("record", lead),)))
    add = leads(model=model).map(lambda lead: FunnelStep("add", kwargs=(("record", lead),)))
    add_contact = contacts().map(lambda c: FunnelStep("add", kwargs=(("record", c),)))
    again = st.builds(
        lambda lead, t, key, method: FunnelStep(method, t, (("record", lead), ("match", key))),
        leads(status="raw", model=model),
        st.integers(0, 20),
        st.sampled_from(["email", "phone"]),
        st.sampled_from(["capture", "add"]),
    )
    return _mixture((2, capture), (2, add), (1, add_contact), (1, again))


def _deal_story(
    fits: QualificationEngine | Profile | None,
    model: type[Lead],
    rebook: bool,
    lean: Literal["won", "lost"] = "won",
) -> st.SearchStrategy[list[FunnelStep]]:
    """One deal from first contact to its end: someone comes in (or, with ``rebook``,
    an existing prospect or client books again), is qualified and booked, and the deal
    moves on until it is won, lost or left open."""
    newcomers = leads(status="raw", model=model)
    fitting = leads(status="raw", fits=fits, model=model) if fits is not None else None
    return _told_story(newcomers, fitting, rebook, _ENDS[lean])


@st.composite
def _told_story(
    draw: st.DrawFn,
    newcomers: st.SearchStrategy[Lead],
    fitting: st.SearchStrategy[Lead] | None,
    rebook: bool,
    ends: st.SearchStrategy[tuple[str, int]],
) -> list[FunnelStep]:
    """:func:`_deal_story`'s steps: ``fitting`` draws the leads that fit the engine."""
    steps: list[FunnelStep] = []
    booked_contact = rebook and draw(_ONE_IN_4) == 0
    if not booked_contact:
        if fitting is not None and draw(_COIN):
            lead = draw(fitting)
            by_engine = True
        else:
            lead = draw(newcomers)
            by_engine = False
        steps.append(FunnelStep("capture", kwargs=(("record", lead),), advance=draw(_hours(0, 48))))
        if draw(_ONE_IN_3) == 0:
            outcome = draw(_CALL_OUTCOME)
            steps.append(
                FunnelStep(
                    "touch",
                    kwargs=(("channel", Channel.CALL), ("outcome", outcome)),
                    advance=draw(_hours(0, 30)),
                )
            )
        forced_qualify = not by_engine or draw(_COIN)
        steps.append(FunnelStep("qualify", kwargs=(("force", True),) if forced_qualify else ()))
    booking = (
        ("force", not booked_contact and draw(_COIN)),
        ("setter", draw(_SETTERS)),
        ("owner", draw(_OWNERS)),
        ("appointment_in", draw(_hours(24, 24 * 14))),
    )
    steps.append(FunnelStep("set_appointment", kwargs=booking, advance=draw(_hours(0, 72))))
    end, stage = draw(ends)
    if draw(_ONE_IN_5) == 0:
        when = (("appointment_in", draw(_hours(24, 24 * 7))),)
        steps.append(FunnelStep("reschedule", kwargs=when, advance=draw(_hours(1, 48))))
    moves = list(_MOVES[:stage]) if end != "forced" else ["sit", "propose"]
    for method in moves:
        kwargs: tuple[tuple[str, Any], ...] = ()
        if method == "win":
            kwargs = (("amount", draw(_AMOUNT)),)
        steps.append(FunnelStep(method, kwargs=kwargs, advance=draw(_hours(1, 24 * 10))))
    if end == "forced":
        amount = draw(_AMOUNT)
        steps.append(
            FunnelStep(
                "win", kwargs=(("amount", amount), ("force", True)), advance=draw(_hours(1, 240))
            )
        )
    elif end == "lost":
        reason = draw(_REASONS)
        steps.append(FunnelStep("lose", kwargs=(("reason", reason),), advance=draw(_hours(1, 240))))
    return steps


# What the twin of a person shares with them (and neither is erased).
_SAME_PERSON = ("company", "first_name", "last_name", "erased_at")


def _duplicates(model: type[Lead]) -> st.SearchStrategy[list[FunnelStep]]:
    """The same person twice (a response, then a list import with other details), then
    merged, and now and then unmerged again."""
    twin = _LeadParts.of(
        model, status=None, engine=None, missing=True, keys=None, fixed=_SAME_PERSON
    )
    return _twins(leads(status="raw", model=model), twin)


@st.composite
def _twins(draw: st.DrawFn, firsts: st.SearchStrategy[Lead], twin: _LeadParts) -> list[FunnelStep]:
    """:func:`_duplicates`' steps: ``twin`` draws the second record, as ``leads()`` with
    the first one's name and company."""
    first = draw(firsts)
    second = draw(_lead(twin, {name: getattr(first, name) for name in _SAME_PERSON}))
    steps = [
        FunnelStep("capture", kwargs=(("record", first),)),
        FunnelStep("add", kwargs=(("record", second),), advance=draw(_hours(0, 24 * 30))),
        FunnelStep("merge", kwargs=(("other", 0), ("reason", "same person"))),
    ]
    if draw(_ONE_IN_3) == 0:
        steps.append(FunnelStep("unmerge", advance=draw(_hours(0, 24))))
    return steps


_UPDATES = st.one_of(
    st.sampled_from(
        [
            (("title", "Owner"),),
            (("notes", "called back,\twants a quote\nnext week"),),
            (("employees", 40), ("annual_revenue", 3_000_000)),
            (("tags", frozenset({"vip"})),),
            (("phone", None),),
            (("email", None),),
            (("email", None), ("phone", None)),
        ]
    ),
    _SERIAL.map(lambda n: (("email", f"moved.{n}@new-{n}.example.net"),)),
)


def _single_step(
    fits: QualificationEngine | Profile | None, model: type[Lead]
) -> st.SearchStrategy[FunnelStep]:
    """One move on somebody already there (aimed, or now and then not: a refusal)."""
    target = st.integers(0, 20)
    aimed = _weighted((True, 7), (False, 1))
    lead_moves = st.builds(
        lambda m, t, a, h, force: FunnelStep(
            m, t, (("force", True),) if m == "qualify" and force else (), h, a
        ),
        _weighted(("qualify", 2), ("respond", 1), ("farm", 1), ("disqualify", 1), ("avoid", 1)),
        target,
        aimed,
        _hours(0, 24 * 5),
        st.booleans(),
    )
    touch = st.builds(
        lambda t, a, c, o, h: FunnelStep("touch", t, (("channel", c), ("outcome", o)), h, a),
        target,
        aimed,
        _weighted((Channel.CALL, 3), (Channel.EMAIL, 3), (Channel.SOCIAL, 1), (Channel.SMS, 1)),
        st.sampled_from(list(Outcome)),
        _hours(0, 72),
    )
    book = st.builds(
        lambda t, a, force, setter: FunnelStep(
            "set_appointment", t, (("force", force), ("setter", setter)), timedelta(hours=1), a
        ),
        target,
        aimed,
        st.booleans(),
        _SETTERS,
    )
    deal_move = st.builds(
        lambda m, t, a, r, h: FunnelStep(m, t, (("reason", r),) if m == "lose" else (), h, a),
        st.sampled_from(["sit", "propose", "send_contract", "win", "lose"]),
        target,
        aimed,
        _REASONS,
        _hours(1, 24 * 5),
    )
    update = st.builds(
        lambda t, changes: FunnelStep("update", t, (("changes", changes),)), target, _UPDATES
    )
    merge = st.builds(
        lambda t, other, a: FunnelStep("merge", t, (("other", other),), aimed=a),
        target,
        st.integers(0, 20),
        aimed,
    )
    unmerge = st.builds(lambda t: FunnelStep("unmerge", t), target)
    return _mixture(
        (5, _arrival(fits, model)),
        (5, lead_moves),
        (3, touch),
        (2, book),
        (3, deal_move),
        (2, update),
        (2, merge),
        (1, unmerge),
    )


def histories(
    *,
    max_steps: int = 30,
    fits: QualificationEngine | Profile | None = None,
    model: type[Lead] = Lead,
) -> st.SearchStrategy[list[FunnelStep]]:
    """Sequences of facade calls that replay on any ``Funnel`` (see :func:`replay`).

    A history mixes whole deal stories (someone comes in, is qualified, booked, and the
    deal moves on to won, lost, or stays open) with single moves on the people already
    there: arrivals (captures, list imports, avoid-listed people, returning people),
    lead triggers, touches, bookings, deal moves, edits (an e-mail changed or removed),
    merges and unmerges. Each step is aimed at someone who can take it (see
    :class:`FunnelStep`); a few are not, and the funnel refuses them. ``fits`` draws
    part of the people to fit an engine (give the funnel the same engine), ``model`` is
    the lead class (a subclass with custom fields).
    """
    _complete(model, sys._getframe(1))
    single = _single_step(fits, model)
    stories = [_deal_story(fits, model, rebook=True, lean=lean) for lean in ("won", "lost")]
    twins = _duplicates(model)
    kinds = _weighted(("single", 6), ("story", 4), ("duplicates", 1))

    @st.composite
    def build(draw: st.DrawFn) -> list[FunnelStep]:
        # Drawn part by part rather than with st.lists, whose lists average five items:
        # too short for a deal to get anywhere. Here one part in ten ends the history
        # (and shrinking ends it sooner).
        steps: list[FunnelStep] = []
        told = 0
        while len(steps) < max_steps and draw(_ONE_IN_10) != 0:
            kind = draw(kinds)
            if kind == "story":
                steps += draw(stories[told % 2])
                told += 1
            else:
                steps += draw(twins) if kind == "duplicates" else [draw(single)]
        return steps[:max_steps]

    return build()


def deal_histories(
    *,
    max_deals: int = 4,
    fits: QualificationEngine | Profile | None = None,
    model: type[Lead] = Lead,
) -> st.SearchStrategy[list[FunnelStep]]:
    """Histories made of deal stories: one to ``max_deals`` deals (never none), each
    booked for someone new or again for an existing prospect or client, and moved on
    to won, won from proposing (``force=True``), lost for some reason at some stage,
    or left open; with touches and edits between them. About half of the examples win
    a deal and half lose one. ``fits`` and ``model`` as for :func:`histories`.
    """
    _complete(model, sys._getframe(1))
    between = st.one_of(
        st.builds(
            lambda t, c, o: FunnelStep("touch", t, (("channel", c), ("outcome", o))),
            st.integers(0, 5),
            st.sampled_from([Channel.CALL, Channel.EMAIL, Channel.MEETING]),
            st.sampled_from(list(Outcome)),
        ),
        st.builds(
            lambda t, c: FunnelStep("update", t, (("changes", c),)), st.integers(0, 5), _UPDATES
        ),
    )

    counts = st.integers(1, max_deals)
    # Deals take turns leaning to winning and to losing; the first one is someone new's,
    # later ones may book an existing prospect or client again.
    first = _deal_story(fits, model, rebook=False, lean="won")
    rebooked = {lean: _deal_story(fits, model, rebook=True, lean=lean) for lean in ("won", "lost")}
    betweens = st.lists(between, max_size=2)

    @st.composite
    def build(draw: st.DrawFn) -> list[FunnelStep]:
        steps: list[FunnelStep] = []
        for number in range(draw(counts)):
            lean: Literal["won", "lost"] = "won" if number % 2 == 0 else "lost"
            steps += draw(rebooked[lean] if number > 0 else first)
            steps += draw(betweens)
        return steps

    return build()


def replay(funnel: Funnel, history: list[FunnelStep]) -> list[Any]:
    """Apply every step of ``history`` to ``funnel``; return the people's ids.

    Inside a hypothesis test, it then records what the funnel reached (see
    :func:`reached`) with ``hypothesis.event``: run pytest with
    ``--hypothesis-show-statistics`` to see how often your examples won a deal, lost
    one, avoided or merged someone.
    """
    people: list[Any] = []
    deals: list[Any] = []
    for step in history:
        step.apply(funnel, people, deals)
    if currently_in_test_context():
        for name in sorted(reached(funnel)):
            event(f"replay reached: {name}")
    return people


def reached(funnel: Funnel) -> frozenset[str]:
    """What a funnel's history reached: each report step some subject reached (``raw``
    to ``won``, counted as ``funnel.report()`` counts them), ``lost`` (a deal was lost),
    ``unqualified`` and ``avoid`` (someone is), ``merged`` (someone was merged) and
    ``keyless`` (someone has neither e-mail nor phone)."""
    names = {name for name, step in funnel.report().steps.items() if step.count}
    if funnel.opportunities(stage=Stage.LOST):
        names.add("lost")
    people: list[Lead | Contact] = [*funnel.leads(), *funnel.contacts()]
    states = {_state(person) for person in people}
    names.update(states & {"unqualified", "avoid"})
    if any(person.email is None and person.phone is None for person in people):
        names.add("keyless")
    if any(e.name in ("merge", "unmerge") for p in people for e in funnel.history(p.id)):
        names.add("merged")
    return frozenset(names)


def register_strategies() -> None:
    """Let ``st.from_type(Lead)`` and ``st.from_type(Contact)`` use these strategies.

    This module does it when it is imported, and hypothesis imports this module when it
    is imported itself (leadfunnel's ``hypothesis`` entry point;
    ``HYPOTHESIS_NO_PLUGINS=1`` turns that off). Calling it again is harmless.
    """
    st.register_type_strategy(Lead, leads())
    st.register_type_strategy(Contact, contacts())


register_strategies()
