"""The records of the funnel: leads, contacts, opportunities, touches and events.

Every record is an immutable pydantic model with an ``id``, ``created_at``,
``updated_at`` and ``version`` (0 for a record never stored; the store bumps it on
every save, which is how stale copies are caught). Edit a record with
``record.model_copy(update={...})`` and save it with ``funnel.update(...)``.

Input is normalised on the way in, so that dedupe and rules compare like with like:
e-mails are checked and their domain lower-cased, phones become E.164, countries become
ISO 3166 alpha-2 codes, and empty strings (as a CSV gives them) become ``None``.
"""

from __future__ import annotations

import dataclasses
import os
import random
import re
import threading
import time
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache, lru_cache
from types import MappingProxyType, UnionType
from typing import (
    Annotated,
    Any,
    ClassVar,
    Final,
    Literal,
    TypeAlias,
    TypeVar,
    Union,
    cast,
    get_args,
    get_origin,
    get_type_hints,
)
from uuid import UUID, SafeUUID

from pydantic import (
    AfterValidator,
    AliasChoices,
    AliasPath,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from typing_extensions import is_typeddict  # (typing's misses typing_extensions')

from ._clock import in_utc_range
from ._enums import Channel, ContactType, Interest, LeadStatus, LostReason, Outcome, Stage

__all__ = [
    "DEFAULT_PHONE_REGION",
    "Contact",
    "Event",
    "Lead",
    "Opportunity",
    "Personal",
    "Record",
    "Touch",
]

#: Region assumed for phone numbers written without a country code. Override per call
#: with ``Lead.model_validate(data, context={"phone_region": "GB"})`` or per funnel with
#: ``Funnel(phone_region="GB")``.
DEFAULT_PHONE_REGION = "US"

SubjectKind: TypeAlias = Literal["lead", "contact", "opportunity"]


def _utcnow() -> datetime:
    return datetime.now(UTC)


# --- ids ------------------------------------------------------------------------------

_id_lock = threading.Lock()
_id_last = [0, 0]  # the last (unix milliseconds, sequence) handed out
# The random tail of ids: a generator of our own (not the global one, which test suites
# reseed), seeded from the system's entropy, and again in a forked child so that two
# processes never share a sequence. Ids need uniqueness, not secrecy: reading
# /dev/urandom for each one cost 6 us an id.
_id_random = random.Random()
os.register_at_fork(after_in_child=_id_random.seed)
_new_object = object.__new__
# An enum member looked up on its class costs 0.2 us on Python 3.11: once, here.
_UNKNOWN_SAFETY = SafeUUID.unknown
_set = object.__setattr__


def new_id() -> UUID:
    """A new UUID version 7 (RFC 9562): time-ordered, and increasing within a process.

    48 bits of Unix time in milliseconds, a 12-bit sequence for ids made in the same
    millisecond, and 62 random bits. Records made at the same ``created_at`` (an import,
    a conversion) therefore list in the order they were made, and every id index grows
    at its end instead of splitting pages all over (random UUIDs made imports write
    many times the size of the database to disk).
    """
    now = time.time_ns() // 1_000_000
    with _id_lock:
        last, sequence = _id_last
        if now > last:
            last, sequence = now, 0
        else:  # the same millisecond, or the clock went back: keep increasing
            sequence += 1
            if sequence > 0xFFF:
                last, sequence = last + 1, 0
        _id_last[0], _id_last[1] = last, sequence
        tail = _id_random.getrandbits(62)
    value = (last << 80) | (0x7 << 76) | (sequence << 64) | (0b10 << 62) | tail
    # What UUID(int=value) makes, without its checks of a value built right here: a
    # third of its cost, on every record and event an import stores.
    uuid = _new_object(UUID)
    _set(uuid, "int", value)
    _set(uuid, "is_safe", _UNKNOWN_SAFETY)
    return uuid


# --- e-mail -------------------------------------------------------------------------

# The common case (plain ASCII dot-atom local part, ASCII domain with an alphabetic
# TLD) is checked here at a fraction of email-validator's cost; anything else, and
# anything this pattern rejects, goes to email-validator, which has the final word.
_PLAIN_EMAIL = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@((?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63})"
)
_SPECIAL_USE_TLDS = frozenset({"arpa", "invalid", "local", "localhost", "onion", "test"})


def _normalise_email(value: str) -> str:
    value = value.strip()
    match = _PLAIN_EMAIL.fullmatch(value)
    if (
        match is not None
        and len(value) <= 254
        and value.index("@") <= 64
        and match.group(1).rpartition(".")[2].lower() not in _SPECIAL_USE_TLDS
    ):
        local, _, domain = value.partition("@")
        return f"{local}@{domain.lower()}"
    import email_validator  # imported on first need: 15 ms a process otherwise

    try:
        checked = email_validator.validate_email(value, check_deliverability=False)
    except email_validator.EmailNotValidError as exc:
        raise ValueError(f"{value!r} is not a valid e-mail address: {exc}") from None
    return str(checked.normalized)


# --- phone --------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def normalise_phone(value: str, region: str) -> str:
    if value in _E164_MADE:
        # One this process made: E.164 names its country, so it stands for itself in
        # every region (a record validated again, as add() and capture() do, is not
        # parsed twice).
        return value
    import phonenumbers  # imported on first need: reading stored records never parses

    if not any(map(str.isdigit, value)):
        raise ValueError(f"{value!r} is not a phone number; leave it empty if there is none")
    try:
        number = phonenumbers.parse(value, region.upper())
    except phonenumbers.NumberParseException as exc:
        raise ValueError(
            f"{value!r} is not a phone number ({exc}); write it with its country code, "
            f"e.g. +1 512 555 0134, or set the default region (now {region})"
        ) from None
    possible = phonenumbers.is_possible_number_with_reason(number)
    if possible == phonenumbers.ValidationResult.IS_POSSIBLE_LOCAL_ONLY:
        raise ValueError(
            f"{value!r} is a local number, without its area code; write it whole, with "
            "its country code, e.g. +1 512 555 0134"
        )
    if possible != phonenumbers.ValidationResult.IS_POSSIBLE:
        raise ValueError(
            f"{value!r} cannot be a phone number in region {region}; "
            "check the digits and the country code"
        )
    if number.extension:
        # E.164 has no extension: dropping it would change the number silently.
        raise ValueError(
            f"{value!r} has an extension ({number.extension}), which a phone stored in "
            "E.164 cannot hold; give the number without it (the extension can go in notes)"
        )
    made = str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
    if len(_E164_MADE) >= _E164_KEPT:
        _E164_MADE.clear()  # bounded: the numbers of the last few thousand records
    _E164_MADE.add(made)
    return made


#: The E.164 numbers :func:`normalise_phone` made lately, at most :data:`_E164_KEPT`.
_E164_MADE: set[str] = set()
_E164_KEPT = 4096


@lru_cache(maxsize=1024)
def _check_national(value: str, region: str, country: str) -> None:
    """Refuse a number written without its country code, read in the default
    ``region``, when the record's ``country`` dials another code: "030 1234567" of a
    German record is not the US number +1 030 123 4567 (nor is a Mexican "55 1234 5678"
    a number in New Jersey). The default region is used as DESIGN 2 says, never a
    guess: the caller gives the country code, or sets the region."""
    import phonenumbers

    number = phonenumbers.parse(value, region.upper(), keep_raw_input=True)
    dials = phonenumbers.country_code_for_region(country)
    if (
        number.country_code_source == phonenumbers.CountryCodeSource.FROM_DEFAULT_COUNTRY
        and dials
        and dials != number.country_code
    ):
        raise ValueError(
            f"{value!r} has no country code: in the default region ({region}) it reads as "
            f"+{number.country_code}, but the country is {country} (+{dials}); write it "
            f"with its country code (+{dials} ...){_region_advice(country)}"
        )


def _region_advice(country: str) -> str:
    """ ", or set the default region to ..." where phone numbers can be read in
    ``country`` (not every country is a region of its own: Antarctica is not), for the
    library and the command line alike; else nothing."""
    import phonenumbers

    if country not in phonenumbers.SUPPORTED_REGIONS:
        return ""
    return (
        f", or set the default region to {country} (Funnel(phone_region={country!r}), "
        f"leadfunnel import --phone-region {country})"
    )


def _dial_hint(region: str, country: str) -> str:
    """What reads a number written without its country code for a record of another
    ``country`` than the default ``region``."""
    import phonenumbers

    dials = phonenumbers.country_code_for_region(country)
    code = f" (+{dials} ...)" if dials else ""
    return (
        f"the country is {country}, the default region {region}: write it with its "
        f"country code{code}{_region_advice(country)}"
    )


def _e164(value: str, info: ValidationInfo) -> str:
    """``value``, a record's phone, in E.164: read in the default region (the validation
    context's), and refused with what would read it where the record's ``country``
    (validated before the phones) dials another code."""
    region = _phone_region(info)
    country = info.data.get("country") if info.data else None
    national = country is not None and value[:1] != "+" and country != region.upper()
    try:
        phone = normalise_phone(value, region)
    except ValueError as exc:
        if not national:
            raise
        # "07911 123456" of a British record is no US number: say what would read it.
        raise ValueError(f"{exc}; {_dial_hint(region, str(country))}") from None
    if national:
        _check_national(value, region, str(country))
    return phone


def phone_region_of(region: str) -> str:
    """``region`` (upper-cased) if phone numbers can be read in it, else ``ValueError``
    saying what to give."""
    import phonenumbers

    code = region.strip().upper() if isinstance(region, str) else ""
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(
            f"phone region {region!r} is not one phone numbers are read in; give the ISO "
            "3166 code of a country (US, GB, DE, MX...)"
        )
    return code


def _phone_region(info: ValidationInfo) -> str:
    """The default region for phones without a country code: ``phone_region`` in the
    validation context, else :data:`DEFAULT_PHONE_REGION`."""
    if info.context:
        region: str = info.context.get("phone_region", DEFAULT_PHONE_REGION)
        return region
    return DEFAULT_PHONE_REGION


# --- country ------------------------------------------------------------------------

_COUNTRY_ALIASES = {
    "usa": "US",
    "u.s.": "US",
    "u.s.a.": "US",
    "united states of america": "US",
    "america": "US",
    "uk": "GB",
    "u.k.": "GB",
    "great britain": "GB",
    "britain": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "northern ireland": "GB",
    "south korea": "KR",
    "north korea": "KP",
    "russia": "RU",
    "vietnam": "VN",
    "iran": "IR",
    "syria": "SY",
    "laos": "LA",
    "bolivia": "BO",
    "venezuela": "VE",
    "tanzania": "TZ",
    "czech republic": "CZ",
    "holland": "NL",
    "the netherlands": "NL",
    "uae": "AE",
    "ivory coast": "CI",
    "taiwan": "TW",
    "moldova": "MD",
    "palestine": "PS",
    # Common English names that ISO 3166 spells otherwise (or has renamed).
    "turkey": "TR",
    "macedonia": "MK",
    "swaziland": "SZ",
    "burma": "MM",
    "cape verde": "CV",
    "vatican": "VA",
    "vatican city": "VA",
    "brunei": "BN",
    "micronesia": "FM",
    "dr congo": "CD",
    "drc": "CD",
    "democratic republic of the congo": "CD",
    "republic of the congo": "CG",
    "east timor": "TL",
    "macau": "MO",
    "republic of ireland": "IE",
    "falkland islands": "FK",
}


def _fold(name: str) -> str:
    # "Cote d'Ivoire" is "Côte d'Ivoire", "The Bahamas" is "Bahamas", "St." is "Saint".
    text = unicodedata.normalize("NFKD", name.strip().casefold())
    text = "".join(c for c in text if not unicodedata.combining(c)).removeprefix("the ")
    return re.sub(r"^st\.? ", "saint ", text)


@cache
def _country_table() -> dict[str, str]:
    import pycountry  # loads its database on first use only

    table: dict[str, str] = {}
    for country in pycountry.countries:
        code = country.alpha_2
        for attr in ("alpha_2", "alpha_3", "name", "official_name", "common_name"):
            name = getattr(country, attr, None)
            if name:
                table[name.casefold()] = code
                table.setdefault(_fold(name), code)
    for alias, code in _COUNTRY_ALIASES.items():
        table.setdefault(alias, code)
    return table


#: The languages whose country names are read too (exports from CRMs set up in them
#: write "Deutschland", "Espagne", "Países Bajos"): pycountry's translations.
_COUNTRY_LANGUAGES = (
    "ar", "cs", "da", "de", "el", "es", "fi", "fr", "he", "hu", "it", "ja", "ko", "nb",
    "nl", "pl", "pt", "pt_BR", "ro", "ru", "sk", "sv", "tr", "uk", "zh_CN", "zh_TW",
)  # fmt: skip


@cache
def _local_country_table() -> dict[str, str]:
    """Country names in :data:`_COUNTRY_LANGUAGES` (folded) -> code; a name two
    languages give two countries is left out. Built on the first name the English
    table does not know (about 0.15 s)."""
    import gettext

    import pycountry

    table: dict[str, str] = {}
    twice: set[str] = set()
    for language in _COUNTRY_LANGUAGES:
        try:
            names = gettext.translation(
                "iso3166-1", pycountry.LOCALES_DIR, languages=[language]
            ).gettext
        except OSError:  # a pycountry without that language
            continue
        for country in pycountry.countries:
            for attr in ("name", "official_name", "common_name"):
                english = getattr(country, attr, None)
                if not english:
                    continue
                local = _fold(names(english))
                if table.setdefault(local, country.alpha_2) != country.alpha_2:
                    twice.add(local)
    for name in twice:
        del table[name]
    return table


def normalise_country(value: str) -> str:
    """The ISO 3166 alpha-2 code of a country given by code or name (English, or one
    of the main business languages: "Deutschland", "Espagne")."""
    table = _country_table()
    code = table.get(value.strip().casefold())
    if code is None:
        code = table.get(_fold(value))
    if code is None:
        code = _local_country_table().get(_fold(value))
    if code is None:
        raise ValueError(
            f"{value!r} is not a country; give an ISO 3166 code (US, GB, DE) or its name"
        )
    return code


# --- shared field types -------------------------------------------------------------

# Unicode category Cc: C0 controls, DEL and C1 controls. NUL breaks PostgreSQL and C
# strings, ESC sequences rewrite terminals, and none of them is data a person typed.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
# Free text keeps its line structure: tab, LF and CR are allowed there.
_CONTROL_IN_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _refuse_control(pattern: re.Pattern[str], what: str) -> Any:
    def check(value: str) -> str:
        if value.isprintable():  # no control character (nor any other unprintable one)
            return value
        found = pattern.search(value)
        if found is not None:
            raise ValueError(
                f"contains the control character U+{ord(found.group()):04X} at position "
                f"{found.start()}; {what}"
            )
        return value

    return AfterValidator(check)


_ONE_LINE = _refuse_control(_CONTROL, "remove it (tabs and line breaks are allowed in notes only)")
_MULTI_LINE = _refuse_control(_CONTROL_IN_TEXT, "remove it (tabs and line breaks are fine)")

#: leadfunnel's validators that refuse control characters (U+0000 among them, which
#: PostgreSQL cannot store) in the text they check: a text field checked by one holds
#: nothing a store refuses, and its values need no look at commit.
REFUSES_CONTROL = frozenset((_ONE_LINE.func, _MULTI_LINE.func, _normalise_email))

Email = Annotated[str, AfterValidator(_normalise_email)]
Country = Annotated[str, _ONE_LINE, AfterValidator(normalise_country)]
Text = Annotated[str, Field(max_length=2000), _MULTI_LINE]
#: A person's notes: as long as a CRM's long text (Salesforce's Description holds
#: 32,000 characters), so that an export's notes never cost the person their import.
Notes = Annotated[str, Field(max_length=32_000), _MULTI_LINE]
Name = Annotated[str, Field(max_length=200), _ONE_LINE]
Money = Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=2)]
#: A count: whole, not negative, and within the signed 64 bits every database stores,
#: indexes and filters on (a larger one would break a filter, or an index cast to bigint).
Count = Annotated[int, Field(ge=0, le=2**63 - 1)]
#: An aware datetime within 0001-01-01 and 9999-12-31 in UTC (where stores keep them).
Instant = Annotated[AwareDatetime, AfterValidator(in_utc_range)]


def _blank_to_none(data: Any) -> Any:
    # CSV exports and web forms give "" for "no value"; a blank is not data. Most rows
    # hold none: look for one in C (a text that strips to nothing) before rebuilding.
    if isinstance(data, dict) and not all(map(_strip, filter(_is_str, data.values()))):
        return {k: (None if type(v) is str and not v.strip() else v) for k, v in data.items()}
    return data


_strip = str.strip
_is_str = str.__instancecheck__


class _Model(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        # An application's own field with an alias is given by either: leadfunnel fills
        # and edits records by field name (update, imports, stored documents).
        validate_by_name=True,
        str_strip_whitespace=True,
        validate_default=False,
        revalidate_instances="never",
        # leadfunnel's own models build their validators on first use (see
        # _BUILT_ON_FIRST_USE below); an application's subclasses when they are defined.
        defer_build=True,
    )


class _Stored(_Model):
    """Fields every stored record has."""

    id: UUID = Field(default_factory=new_id)
    created_at: Instant = Field(default_factory=_utcnow)
    updated_at: Instant = Field(default_factory=_utcnow)
    version: Count = 0

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        # An application's record class: a field marked Personal must hold None once
        # the person is erased. (A class whose annotations are not resolved yet is
        # checked when erase first asks for its personal fields.)
        if cls.__module__ != __name__ and cls.__pydantic_complete__:
            personal_fields(cls)  # checked, and kept for erase


class _Person(_Stored):
    """The fields shared by leads and contacts: who the person is and how to reach them."""

    first_name: Name | None = None
    last_name: Name | None = None
    email: Email | None = None
    #: Before the phone, which is checked against it (a number without its country code
    #: is refused where the country dials another).
    country: Country | None = None
    phone: Annotated[str, _ONE_LINE] | None = None
    company: Name | None = None
    title: Name | None = None
    industry: Name | None = None
    employees: Count | None = None
    annual_revenue: Money | None = None
    region: Name | None = None
    city: Name | None = None
    postal_code: Annotated[str, Field(max_length=20), _ONE_LINE] | None = None
    source: Name | None = None
    tags: frozenset[Annotated[str, Field(min_length=1, max_length=100), _ONE_LINE]] = frozenset()
    owner: Name | None = None
    notes: Notes | None = None
    opt_outs: frozenset[Channel] = frozenset()
    #: More ways to recognise the person, such as those of a duplicate merged into this
    #: record: they are identity keys too, so the merged-away e-mail still dedupes.
    other_emails: frozenset[Email] = frozenset()
    other_phones: frozenset[Annotated[str, _ONE_LINE]] = frozenset()
    #: When the person's personal data was erased (``funnel.erase``); such a record
    #: keeps only what reports need, and no trigger or touch applies to it any more.
    erased_at: Instant | None = None

    _blanks = model_validator(mode="before")(_blank_to_none)

    @field_validator("phone")
    @classmethod
    def _phone_e164(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else _e164(value, info)

    @field_validator("other_phones")
    @classmethod
    def _phones_e164(cls, value: frozenset[str], info: ValidationInfo) -> frozenset[str]:
        # Read as the phone is; the record's own phone is no other phone (an export's
        # mobile number may be the phone written another way: "07911 123456").
        phone = info.data.get("phone") if info.data else None
        return frozenset(e164 for e164 in (_e164(p, info) for p in value) if e164 != phone)

    @property
    def full_name(self) -> str:
        """First and last name, as far as known."""
        return " ".join(p for p in (self.first_name, self.last_name) if p)


#: leadfunnel's own write-time checks and normalisers, as the validation schemas hold
#: them (a classmethod's function): every stored value passed them on its way in, so a
#: store may read its documents back without them (see ``_documents``). A check
#: added above belongs here too.
WRITE_CHECKS = frozenset(
    (
        _blank_to_none,
        _ONE_LINE.func,
        _MULTI_LINE.func,
        _normalise_email,
        normalise_country,
        in_utc_range,
        _Person._phone_e164.__func__,  # type: ignore[attr-defined]
        _Person._phones_e164.__func__,  # type: ignore[attr-defined]
    )
)


class Lead(_Person):
    """A person on the list who is not (yet) a warm contact.

    ``status`` moves only by the funnel's triggers (``farm``, ``respond``, ``qualify``,
    ``disqualify``, ``convert``, ``avoid``); ``status_at`` is when it last moved;
    ``contact_id`` is the contact it became on conversion.
    """

    kind: ClassVar[SubjectKind] = "lead"

    campaign: Name | None = None
    interest: Interest = Interest.NONE
    needs: frozenset[Annotated[str, Field(min_length=1, max_length=200), _ONE_LINE]] = frozenset()
    status: LeadStatus = LeadStatus.RAW
    status_at: Instant | None = None
    profile: Name | None = None
    contact_id: UUID | None = None


class Contact(_Person):
    """A warm person: a converted lead, a client, a supplier or a partner."""

    kind: ClassVar[SubjectKind] = "contact"

    type: ContactType = ContactType.PROSPECT
    lead_id: UUID | None = None


class Opportunity(_Stored):
    """A deal, opened when an appointment is set, closed when won or lost."""

    kind: ClassVar[SubjectKind] = "opportunity"

    contact_id: UUID
    lead_id: UUID | None = None
    owner: Name | None = None
    setter: Name | None = None
    stage: Stage = Stage.APPOINTMENT_SET
    appointment_at: Instant | None = None
    amount: Money | None = None
    lost_reason: LostReason | None = None
    lost_note: Text | None = None
    closed_at: Instant | None = None

    @property
    def is_open(self) -> bool:
        """Whether the deal is still moving (neither won nor lost)."""
        return self.stage not in (Stage.WON, Stage.LOST)


class Touch(_Stored):
    """One follow-up: a call, an e-mail, a meeting... and what came of it."""

    subject_id: UUID
    channel: Channel
    outcome: Outcome
    at: Instant = Field(default_factory=_utcnow)
    actor: Name | None = None
    note: Text | None = None


class Event(_Stored):
    """One entry of history: a trigger applied to a subject.

    ``source`` and ``dest`` are the subject's state before and after (the same when the
    event records something that moved no state, such as a touch or an edit; ``source``
    is ``None`` for the event that created the subject). ``data`` carries details, such
    as the qualification verdicts of a ``qualify`` event.
    """

    subject_id: UUID
    subject: SubjectKind
    name: str
    source: str | None = None
    dest: str | None = None
    at: Instant = Field(default_factory=_utcnow)
    actor: Name | None = None
    reason: Text | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    #: Where the event stands in the store's commit order: strictly increasing across
    #: the whole store from 1, assigned when the event is committed (0 before), so a
    #: reader of ``funnel.events(after=...)`` never misses one.
    position: Count = 0

    def __hash__(self) -> int:
        # ``data`` is a dict, which pydantic's hash of every field would refuse: equal
        # events have the same id, version and position, so those are the hash.
        return hash((self.id, self.version, self.position))


#: The public models: each builds its validator and serialiser the first time it is
#: used (pydantic's ``defer_build``), so that ``import leadfunnel`` and a command that
#: never validates an event or a touch skip building them, and, until some model is
#: built, pydantic's look-up of its plugins among the installed packages' entry points
#: (about 15% of ``import leadfunnel``). Their subclasses are built when they are
#: defined, as pydantic does by default: a mistake in an application's own fields (or a
#: ``Personal`` field that cannot hold ``None``) shows where the class is written.
_BUILT_ON_FIRST_USE = (Lead, Contact, Opportunity, Touch, Event)
for _model in _BUILT_ON_FIRST_USE:
    _model.model_config["defer_build"] = False  # what their subclasses inherit

Record: TypeAlias = Lead | Contact | Opportunity
#: A person on the list, either kind: what ``add``, ``capture`` and ``find`` deal in.
Person: TypeAlias = Lead | Contact

RECORD_TYPES: dict[str, type[Lead] | type[Contact] | type[Opportunity]] = {
    "lead": Lead,
    "contact": Contact,
    "opportunity": Opportunity,
}


_M = TypeVar("_M", bound=BaseModel)


def field_values(model: BaseModel) -> dict[str, Any]:
    """``model``'s values by field name, with the extra fields of a class that allows
    them: what validating it again (as its class or another) starts from. Not a dump,
    which would add computed fields (refused as input) and go through the application's
    serialisers. Without extras it is the model's own ``__dict__``: read it, never
    change it."""
    extra = model.__pydantic_extra__
    return {**extra, **model.__dict__} if extra else model.__dict__


def updated(model: _M, changes: dict[str, Any]) -> _M:
    """``model.model_copy(update=changes)`` at about half its cost (1 us a copy instead
    of 1.7), for the hot paths: a trigger's next version, an event from its prototype, an
    event's position. Like ``model_copy`` it does not validate ``changes``: give it
    values of the fields' own types."""
    cls = type(model)
    new = cls.__new__(cls)
    extra = model.__pydantic_extra__
    private = model.__pydantic_private__
    _set(new, "__dict__", {**model.__dict__, **changes})
    _set(new, "__pydantic_fields_set__", model.__pydantic_fields_set__.union(changes))
    _set(new, "__pydantic_extra__", None if extra is None else dict(extra))
    _set(new, "__pydantic_private__", None if private is None else dict(private))
    return new


_POSITION = frozenset({"position"})


def placed(events: list[Event], first: int) -> list[Event]:
    """``events`` as stored at positions ``first``, ``first + 1``...: what
    ``updated(event, {"position": ...})`` makes of each, at two thirds of its cost (a
    store hands back every event it commits, one an imported row)."""
    out: list[Event] = []
    append = out.append
    for position, event in enumerate(events, first):
        new = _new_object(type(event))
        values = event.__dict__.copy()
        values["position"] = position
        extra = event.__pydantic_extra__
        private = event.__pydantic_private__
        _set(new, "__dict__", values)
        _set(new, "__pydantic_fields_set__", event.__pydantic_fields_set__ | _POSITION)
        _set(new, "__pydantic_extra__", None if extra is None else dict(extra))
        _set(new, "__pydantic_private__", None if private is None else dict(private))
        append(new)
    return out


def identity_keys(person: Lead | Contact) -> tuple[str, ...]:
    """The dedupe keys of a person: its e-mail (trimmed, lower-cased; a domain written
    with international letters gives its other spelling too, see :func:`email_keys`)
    and E.164 phone, then its ``other_emails`` and ``other_phones``."""
    if person.email is None:
        keys: tuple[str, ...] = () if person.phone is None else (f"phone:{person.phone}",)
    else:
        keys = email_keys(person.email)
        if person.phone is not None:
            keys += (f"phone:{person.phone}",)
    if person.other_emails or person.other_phones:
        more = [key for e in sorted(person.other_emails) for key in email_keys(e)]
        more += [f"phone:{p}" for p in sorted(person.other_phones)]
        keys += tuple(k for k in dict.fromkeys(more) if k not in keys)
    return keys


def email_keys(email: str) -> tuple[str, ...]:
    """The identity keys of one e-mail address: ``email:`` and the address lower-cased;
    for a domain with international letters, also the address with the domain's other
    spelling, so that ``ida@bücher.example`` and ``ida@xn--bcher-kva.example`` (its
    ASCII form, as some CRMs export it) are one mailbox, one person, on the avoid list
    too. The address as written comes first: the keys stored before are kept."""
    domain = email.rpartition("@")[2]
    if domain.isascii() and "xn--" not in domain.lower():
        return (f"email:{email.lower()}",)  # the usual case: nothing to look up
    return _international_email_keys(email.lower())


@lru_cache(maxsize=1024)
def _international_email_keys(email: str) -> tuple[str, ...]:
    import email_validator

    try:
        checked = email_validator.validate_email(email, check_deliverability=False)
    except email_validator.EmailNotValidError:  # stored before: keep its key as it is
        return (f"email:{email}",)
    local = email.rpartition("@")[0]
    spellings = (email, f"{local}@{checked.domain}", f"{local}@{checked.ascii_domain}")
    return tuple(dict.fromkeys(f"email:{spelling.lower()}" for spelling in spellings))


def holds_keys(record: Record) -> bool:
    """Whether a record claims its identity keys in the store.

    A converted lead hands its keys to the contact it became (and keeps them there even
    if the lead is avoided later), so the person is one record as far as dedupe goes.
    """
    if isinstance(record, Lead):
        return record.contact_id is None
    return isinstance(record, Contact)


def shares_key_sources(before: Record, after: Record) -> bool:
    """Whether ``after``, a version of ``before``, claims the identity keys ``before``
    claims, told without working either out: it holds the very objects ``before`` holds
    in the fields its keys come from (a new version shares the values it kept), and
    claims keys if and only if ``before`` does. ``False`` says nothing: compare the
    keys then. (Every trigger moves a record without touching its keys.)"""
    claims = holds_keys(before)
    if claims is not holds_keys(after):
        return False
    if not claims:
        return True
    was, now = cast(Person, before), cast(Person, after)  # only people claim keys
    return (
        now.email is was.email
        and now.phone is was.phone
        and now.other_emails is was.other_emails
        and now.other_phones is was.other_phones
    )


def is_avoided(record: Record) -> bool:
    """Whether a record is on the avoid list."""
    if isinstance(record, Lead):
        return record.status == LeadStatus.AVOID
    if isinstance(record, Contact):
        return record.type == ContactType.AVOID
    return False


#: The fields that identify a person: ``funnel.erase`` sets them to ``None``.
PERSONAL_FIELDS: tuple[str, ...] = (
    "first_name",
    "last_name",
    "email",
    "phone",
    "other_emails",
    "other_phones",
    "company",
    "title",
    "city",
    "postal_code",
    "notes",
)


class _PersonalMarker:
    """The type of :data:`Personal`."""

    def __repr__(self) -> str:
        return "Personal"


#: Marks an application's own field as personal data, so that ``funnel.erase`` blanks
#: it with the base personal fields (and scrubs its value from event data), in the
#: record, the merge snapshots and, on SQL, the stored document::
#:
#:     class MyLead(Lead):
#:         linkedin: Annotated[str | None, Personal] = None
#:
#: A personal field must accept ``None``, what an erased record holds there. A custom
#: field without the mark is kept by ``erase``, as industry or region are.
Personal: Final = _PersonalMarker()


def personal_fields(model: type[BaseModel]) -> tuple[str, ...]:
    """The fields ``erase`` blanks on a record of ``model``: :data:`PERSONAL_FIELDS`
    it has, then its own fields marked :data:`Personal`, in declaration order (a
    ``TypeError`` if one of those does not accept ``None``)."""
    found = _PERSONAL.get(model)
    if found is None:
        base = tuple(name for name in PERSONAL_FIELDS if name in model.model_fields)
        found = _PERSONAL[model] = base + own_personal_fields(model)
    return found


_PERSONAL: dict[type[BaseModel], tuple[str, ...]] = {}


def own_personal_fields(model: type[BaseModel]) -> tuple[str, ...]:
    """The application's fields of ``model`` marked :data:`Personal`; a ``TypeError``
    naming those that do not accept ``None`` (``erase`` could not blank them)."""
    own = tuple(
        name
        for name, info in model.model_fields.items()
        if name not in PERSONAL_FIELDS and _marks_whole(field_annotation(info))
    )
    found = []
    for name in own:
        try:
            TypeAdapter(model.model_fields[name].annotation or Any).validate_python(None)
        except ValidationError:
            found.append(name)
    if found:
        fields = ", ".join(f"{model.__name__}.{name}" for name in found)
        raise TypeError(
            f"{fields} marked Personal must accept None (what erase leaves there): "
            "declare it as `X | None = None`"
        )
    for name, info in model.model_fields.items():
        if name in own or name in PERSONAL_FIELDS:
            continue  # blanked whole
        inner = _marked_inside(info.annotation, set())
        if inner is not None:
            raise TypeError(
                f"{model.__name__}.{name} holds {inner}, marked Personal, which erase would "
                f"leave: it blanks a record's own fields, not those of a model inside one. "
                f"Mark {model.__name__}.{name} itself Personal (`X | None = None`: erased "
                "whole), or keep the personal part in a field of its own"
            )
    return own


def field_annotation(info: FieldInfo) -> Any:
    """The field's type with its own constraints: pydantic keeps a ``Field(max_length=
    ...)``, a ``Personal`` mark and the like apart from the annotation, in ``metadata``."""
    return Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation


def _marked_inside(annotation: Any, seen: set[Any]) -> str | None:
    """Where the first value marked :data:`Personal` inside ``annotation`` is: a field
    of a pydantic model, a dataclass or a ``TypedDict`` it holds (``Address.street``,
    itself, or inside a union, a collection or another such class), or an item type
    marked (``list[...]``); ``None`` if there is none."""
    if isinstance(annotation, type) and annotation not in seen:
        fields: dict[str, Any] | None = None
        if issubclass(annotation, BaseModel):
            seen.add(annotation)
            fields = {
                name: field_annotation(info) for name, info in annotation.model_fields.items()
            }
        elif dataclasses.is_dataclass(annotation) or is_typeddict(annotation):
            seen.add(annotation)
            try:
                fields = get_type_hints(annotation, include_extras=True)
            except Exception:  # annotations that do not resolve: nothing to look in
                fields = {}
        if fields is not None:
            for name, hint in fields.items():
                if _marks_whole(hint):
                    return f"{annotation.__name__}.{name}"
                inner = _marked_inside(hint, seen)
                if inner is not None:
                    return inner
            return None
    if _is_marked(annotation):
        return f"an item type marked Personal ({annotation!r})"
    for argument in get_args(annotation):
        inner = _marked_inside(argument, seen)
        if inner is not None:
            return inner
    return None


def _marks_whole(annotation: Any) -> bool:
    """Whether a field of ``annotation`` is marked :data:`Personal` whole: the mark on
    it, or on a member of its union (``Annotated[str, Personal] | None``)."""
    return _is_marked(annotation) or (
        get_origin(annotation) in _UNIONS and any(_is_marked(a) for a in get_args(annotation))
    )


def _is_marked(annotation: Any) -> bool:
    """Whether ``annotation`` is ``Annotated[..., Personal, ...]``."""
    return get_origin(annotation) is Annotated and any(
        m is Personal for m in annotation.__metadata__
    )


_UNIONS = (Union, UnionType)


#: The fields of a lead that hold sets (tags, needs, opt-outs, other e-mails and
#: phones): merges unite them, and a CSV cell lists their items.
SET_FIELDS: tuple[str, ...] = tuple(
    name for name, field in Lead.model_fields.items() if get_origin(field.annotation) is frozenset
)


def state_of(record: Record) -> str:
    """The lifecycle state of a record: a lead's status, a contact's type, a deal's stage."""
    if isinstance(record, Lead):
        return record.status.value
    if isinstance(record, Contact):
        return record.type.value
    return record.stage.value


# --- the keys a row may name a field by ------------------------------------------------


@cache
def field_keys(model: type[BaseModel]) -> Mapping[str, str]:
    """The keys of a row that fill a field of ``model``, each with the field's name:
    every field's name, and each alias of it that is a plain key (its ``alias``, its
    ``validation_alias``, each choice of an ``AliasChoices``; an ``AliasPath`` of more
    than one step points into nested data, and names no key). A field's name is never
    taken to mean another field it is an alias of."""
    keys = {name: name for name in model.model_fields}
    for name, info in model.model_fields.items():
        for key in _aliases(info):
            keys.setdefault(key, name)
    return MappingProxyType(keys)


def _aliases(info: FieldInfo) -> tuple[str, ...]:
    given = info.validation_alias
    found: list[object] = [info.alias]
    for choice in given.choices if isinstance(given, AliasChoices) else [given]:
        if isinstance(choice, AliasPath):
            found.append(choice.path[0] if len(choice.path) == 1 else None)
        else:
            found.append(choice)
    return tuple(dict.fromkeys(key for key in found if isinstance(key, str)))
