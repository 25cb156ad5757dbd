"""``RepositoryContract``: the test suite every storage adapter must pass.

Subclass it in a pytest test module, implement :meth:`RepositoryContract.create_repository`
to return a fresh, empty repository, and pytest runs the whole contract against it::

    from leadfunnel import InMemoryRepository
    from leadfunnel.testing import RepositoryContract

    class TestMyRepository(RepositoryContract):
        def create_repository(self):
            return InMemoryRepository()

Override :meth:`RepositoryContract.destroy_repository` to clean up (drop a schema...),
and :meth:`RepositoryContract.reopen_repository` for a durable store. ``self.tmp_path``
is pytest's temporary directory of the running test. The pytest plugin (and
``leadfunnel.testing``, without it) has pytest rewrite this module's asserts, so a
failure shows the values compared.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin
from uuid import UUID, uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from pydantic_core import PydanticUndefined

from .._enums import Channel, ContactType, Interest, LeadStatus, LostReason, Outcome, Stage
from .._errors import (
    AvoidListedError,
    ConcurrencyError,
    ConfigError,
    DuplicateError,
    InvalidArgumentError,
    NotFoundError,
    StorageError,
)
from .._models import (
    Contact,
    Event,
    Lead,
    Opportunity,
    Record,
    SubjectKind,
    Touch,
    identity_keys,
    state_of,
)
from .._repository import (
    ChangeSet,
    GroupBy,
    MergeLog,
    Move,
    RepListKind,
    Repository,
    StepCount,
    Suppression,
)
from ._strategies import contacts, leads

__all__ = ["RepositoryContract"]

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class _CustomLead(Lead):
    """An application's lead, with fields of its own (custom fields)."""

    endpoints: int | None = None
    vip: bool | None = None


class _CustomContact(Contact):
    endpoints: int | None = None


class _CustomDeal(Opportunity):
    po_number: str | None = None


class _ListLead(Lead):
    """An application's lead whose own fields can be changed in place."""

    systems: list[str] = Field(default_factory=list)
    meta: dict[str, int] = Field(default_factory=dict)


class _OddLead(Lead):
    """An application's lead whose own fields accept values not every database keeps."""

    score: int | None = None
    ratio: float | None = None
    label: str | None = None
    systems: list[str] = Field(default_factory=list)
    meta: dict[str, Any] = Field(default_factory=dict)


#: Values ``_OddLead`` accepts that not every store keeps: PostgreSQL refuses U+0000,
#: JSON has no inf or nan, a filter or bigint index breaks on an integer beyond 64 bits.
_UNPORTABLE: tuple[dict[str, Any], ...] = (
    {"label": "Acme\x00"},
    {"systems": ["ok", "\x00"]},
    {"meta": {"k\x00": 1}},
    {"meta": {"k": ["\x00"]}},
    {"score": 2**63},
    {"score": -(2**63) - 1},
    {"ratio": float("inf")},
    {"ratio": float("nan")},
)


def _scribble(record: Any) -> None:
    """Change a :class:`_ListLead`'s list and dict in place."""
    record.systems.append("CHANGED")
    record.meta["CHANGED"] = 1


def _scribble_on(event: Event) -> None:
    """Change an event's data in place, at the top and deeper."""
    event.data["fields"].append("CHANGED")
    event.data["n"]["a"] = 2
    event.data["CHANGED"] = True


def lead(n: int | str, **fields: Any) -> Lead:
    """A stored-looking lead (version 1) with its own e-mail."""
    base: dict[str, Any] = {
        "first_name": f"Pat{n}",
        "last_name": "Rivera",
        "email": f"pat{n}@acme{n}.example.com",
        "company": f"Acme {n}",
        "source": "webinar",
        "created_at": T0,
        "updated_at": T0,
        "status_at": T0,
        "version": 1,
    }
    base.update(fields)
    return Lead.model_validate(base)


def contact(n: int | str, **fields: Any) -> Contact:
    """A stored-looking contact (version 1, a prospect) with its own e-mail."""
    base: dict[str, Any] = {
        "first_name": f"Sam{n}",
        "last_name": "Chen",
        "email": f"sam{n}@client{n}.example.com",
        "created_at": T0,
        "updated_at": T0,
        "version": 1,
    }
    base.update(fields)
    return Contact.model_validate(base)


def deal(person: Contact, **fields: Any) -> Opportunity:
    """A stored-looking opportunity of ``person``."""
    base: dict[str, Any] = {
        "contact_id": person.id,
        "lead_id": person.lead_id,
        "created_at": T0,
        "updated_at": T0,
        "version": 1,
    }
    base.update(fields)
    return Opportunity.model_validate(base)


def event(
    record: Record,
    name: str,
    source: str | None,
    dest: str | None,
    at: datetime = T0,
    **fields: Any,
) -> Event:
    """An event of ``record``."""
    return Event(
        subject_id=record.id,
        subject=record.kind,
        name=name,
        source=source,
        dest=dest,
        at=at,
        created_at=at,
        updated_at=at,
        version=1,
        **fields,
    )


def touch(record: Record, outcome: str, at: datetime = T0, channel: str = "call") -> Touch:
    """A touch on ``record``."""
    return Touch(
        subject_id=record.id,
        channel=Channel(channel),
        outcome=Outcome(outcome),
        at=at,
        created_at=at,
        updated_at=at,
        version=1,
    )


def bump(record: Any, **changes: Any) -> Any:
    """``record`` with ``changes`` and the next version, as an update would carry it."""
    return record.model_copy(update={**changes, "version": record.version + 1})


def add(repository: Repository, *records: Record, at: datetime = T0) -> None:
    """Commit ``records`` as inserts, each with an ``add`` event."""
    events = [event(r, "add", None, state_of(r), at) for r in records]
    repository.commit(ChangeSet(inserts=list(records), events=events))


def counts(rows: list[StepCount]) -> dict[tuple[str, str | None], int]:
    """Step counts as a dict, for comparison."""
    return {(row.step, row.group): row.count for row in rows}


def assert_lists_choices(error: Exception, choices: Iterable[str]) -> None:
    """``error``'s message names every one of ``choices``, whatever its wording."""
    message = str(error)
    missing = [choice for choice in choices if choice not in message]
    assert not missing, f"the message {message!r} does not list {missing}"


def _offsets(value: Any) -> Any:
    """The UTC offset of every instant in ``value`` (a record, touch or event, or a
    list or dict of them), by field: pydantic's ``==`` takes 14:30+05:30 and 09:00Z for
    the same instant, so a store that gives back every instant in UTC (the writer's
    offset lost) passes it."""
    if isinstance(value, BaseModel):
        return {
            name: str(field.utcoffset())
            for name in type(value).model_fields
            if isinstance(field := getattr(value, name), datetime)
        }
    if isinstance(value, dict):
        return {key: _offsets(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_offsets(item) for item in value]
    return value


def _bounded(batches: Iterable[list[Lead]], most: int) -> Iterator[list[Lead]]:
    """``lead_batches``' batches, failing instead of looping forever after ``most`` (a
    batch holds one lead at least, each lead comes once)."""
    for number, batch in enumerate(batches):
        assert number < most, (
            f"lead_batches went on past {most} batches, more than the leads could fill: it "
            "never ended (does a page after a cursor start at the cursor's own record?)"
        )
        yield batch


def _at_limit(words: str, length: int) -> str:
    """``words`` over and over, cut to exactly ``length`` characters, with no
    whitespace at either end."""
    text = (words * (length // len(words) + 1))[:length]
    return text[:-1] + "!" if text[-1].isspace() else text


def _constrained(annotation: Any, in_set: bool = False) -> Iterator[tuple[Any, bool]]:
    """The ``Annotated`` types within a field's ``annotation`` (through ``X | None``,
    ``frozenset[X]``...), each with whether it is the type of a set's items."""
    origin = get_origin(annotation)
    if origin is Annotated:
        yield annotation, in_set
        return
    items = in_set or origin in (frozenset, set, list, tuple)
    for arg in get_args(annotation):
        yield from _constrained(arg, items)


def _constraint(annotated: Any, name: str) -> Any:
    """The constraint ``name`` (``max_length``, ``max_digits``...) of an ``Annotated``
    type, or ``None``."""
    for meta in annotated.__metadata__:
        for item in (meta, *getattr(meta, "metadata", ())):
            value = getattr(item, name, None)
            if value is not None:
                return value
    return None


def _text_limits(model: type[BaseModel]) -> dict[str, tuple[Any, int, bool]]:
    """Every text field of ``model`` with a length limit, read from its metadata: the
    type of its text, the limit, and whether the field is a set of such texts."""
    found: dict[str, tuple[Any, int, bool]] = {}
    for name, info in model.model_fields.items():
        for annotated, in_set in _constrained(info.annotation):
            length = _constraint(annotated, "max_length")
            if get_args(annotated)[0] is str and length is not None:
                found[name] = (annotated, length, in_set)
    return found


def _money_at_its_precision(model: type[BaseModel], name: str) -> Decimal:
    """The largest amount field ``name`` of ``model`` takes at its full precision
    (``max_digits`` digits, ``decimal_places`` of them after the point), with no
    two digits alike in a row: a store keeping it through a float, or in fewer
    digits, changes it."""
    (annotated, _), *_ = _constrained(model.model_fields[name].annotation)
    digits, places = _constraint(annotated, "max_digits"), _constraint(annotated, "decimal_places")
    assert digits, f"{model.__name__}.{name} has no max_digits"
    assert places, f"{model.__name__}.{name} has no decimal_places"
    text = ("98765432101234567890" * (digits // 20 + 1))[:digits]
    return Decimal(f"{text[: digits - places]}.{text[digits - places :]}")


_ONE_LINE_WORDS = "Zoë 李小龙 🦄 O'Brien "
_LINES_WORDS = 'Line one ✓\r\n\tZoë 🦄 said: "call me"\n'


def _texts_at_their_limits(model: type[BaseModel], variant: int = 0) -> dict[str, Any]:
    """A value for every text field of ``model`` with a limit, at that limit: in other
    scripts, with astral characters, and with line breaks and tabs where the field takes
    them; two different texts at the limit for a set. ``variant`` gives other texts."""
    values: dict[str, Any] = {}
    for name, (annotated, length, in_set) in _text_limits(model).items():
        texts = []
        for n in range(2 if in_set else 1):
            lines = (_LINES_WORDS[variant + n :] + _LINES_WORDS[: variant + n]).lstrip()
            text = _at_limit(lines, length)
            try:
                TypeAdapter(annotated).validate_python(text)
            except ValidationError:  # one line only
                words = _ONE_LINE_WORDS[variant + n :] + _ONE_LINE_WORDS[: variant + n]
                text = _at_limit(words.strip() + " ", length)
            texts.append(text)
        values[name] = frozenset(texts) if in_set else texts[0]
    return values


def _near_misses(text: str) -> dict[str, str]:
    """Texts that differ from ``text`` (which has ASCII letters and an accented one)
    in one way each, by the way: a store comparing text exactly finds none of them."""
    bare = "".join(
        char for char in unicodedata.normalize("NFD", text) if not unicodedata.combining(char)
    )
    misses = {
        "case of ASCII letters only": "".join(
            char.swapcase() if char.isascii() else char for char in text
        ),
        "case of accented letters only": "".join(
            char if char.isascii() else char.swapcase() for char in text
        ),
        "accents only": unicodedata.normalize("NFC", bare),
        "case and accents": bare.swapcase(),
    }
    assert all(probe != text for probe in misses.values()), (text, misses)
    return misses


def assert_whole(got: Any, expected: Any, names: Iterable[str]) -> None:
    """The fields ``names`` of ``got`` are those of ``expected``; the failure names
    each field that differs, with the characters given and read back."""

    def size(value: Any) -> Any:
        if isinstance(value, frozenset):
            return sorted(len(item) for item in value)
        return len(value) if isinstance(value, str) else value

    assert got is not None, f"the {type(expected).__name__} {expected.id} was not found"
    changed = {
        name: f"{size(getattr(expected, name))} characters given, {size(getattr(got, name))} back"
        for name in names
        if getattr(got, name) != getattr(expected, name)
    }
    assert not changed, (
        f"text at its length limit did not come back whole from the {type(expected).__name__}: "
        f"{changed}"
    )


def assert_kept(got: Any, expected: Any) -> None:
    """``got == expected``, every instant in the offset it was written in as well
    (a record, touch or event comes back as given, offsets and microseconds included).

    A failure names what differs, field by field, each value shortened: pytest's own
    explanation of ``==`` diffs the two whole reprs, which for records holding text at
    its length limit takes minutes a failing example (it is not cut short where the
    ``CI`` variable is set), and hypothesis replays hundreds of them as it shrinks."""
    if got != expected:
        raise AssertionError("came back otherwise than stored: " + _what_differs(got, expected))
    assert _offsets(got) == _offsets(expected), "an instant came back in another UTC offset"


def _what_differs(got: Any, expected: Any, where: str = "") -> str:
    """Where ``got`` differs from ``expected`` (records field by field, lists and dicts
    item by item), with short values: stored, then read back."""
    at = f"{where}: " if where else ""
    if isinstance(expected, BaseModel) and isinstance(got, BaseModel):
        if type(got) is not type(expected):
            return f"{at}a {type(expected).__name__} stored, a {type(got).__name__} back"
        names = [*type(expected).model_fields, *sorted(expected.__pydantic_extra__ or {})]
        found = [
            _what_differs(
                getattr(got, name, None), getattr(expected, name, None), where + "." + name
            )
            for name in names
            if getattr(got, name, None) != getattr(expected, name, None)
        ]
        return "; ".join(found) or f"{at}{_short(expected)} stored, {_short(got)} back"
    if isinstance(expected, list) and isinstance(got, list):
        if len(got) != len(expected):
            return f"{at}{len(expected)} items stored, {len(got)} back"
        found = [
            _what_differs(g, e, f"{where}[{i}]")
            for i, (g, e) in enumerate(zip(got, expected, strict=True))
            if g != e
        ]
        return _first_five(found)
    if isinstance(expected, dict) and isinstance(got, dict):
        missing = [k for k in expected if k not in got]
        extra = [k for k in got if k not in expected]
        if missing or extra:
            return f"{at}keys missing {_short(missing)}, keys not stored {_short(extra)}"
        found = [
            _what_differs(got[k], expected[k], f"{where}[{k!r}]")
            for k in expected
            if got[k] != expected[k]
        ]
        return _first_five(found)
    if isinstance(expected, str) and isinstance(got, str):
        first = next(
            (i for i, (g, e) in enumerate(zip(got, expected, strict=False)) if g != e),
            min(len(got), len(expected)),
        )
        return (
            f"{at}{len(expected)} characters stored, {len(got)} back, first differing at "
            f"{first}: {_short(expected[first : first + 40])} stored, "
            f"{_short(got[first : first + 40])} back"
        )
    return f"{at}{_short(expected)} stored, {_short(got)} back"


def _first_five(found: list[str]) -> str:
    """The first five differences found, and how many more there are."""
    return "; ".join(found[:5]) + (f"; and {len(found) - 5} more" if len(found) > 5 else "")


def _short(value: Any, most: int = 200) -> str:
    shown = repr(value)
    return shown if len(shown) <= most else f"{shown[: most - 40]}... ({len(shown)} characters)"


def _defaults_left(model: BaseModel) -> list[str]:
    """The fields of ``model`` left empty or at their default."""
    left = []
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        default = info.default
        if value in (None, "", frozenset(), {}) or (
            default is not PydanticUndefined and value == default
        ):
            left.append(name)
    return left


def _every_field_records() -> tuple[Lead, Contact, Opportunity]:
    """A lead, the contact it became and its deal, with every field set, and set to
    values a careless store would change: offsets and microseconds, a zero, a
    16-digit amount, text on several lines, non-ASCII text."""
    kolkata = timezone(timedelta(hours=5, minutes=30))
    newfoundland = timezone(-timedelta(hours=3, minutes=30))
    at = datetime(2026, 3, 2, 14, 30, 15, 123456, tzinfo=kolkata)
    later = datetime(2026, 3, 9, 8, 5, 0, 7, tzinfo=newfoundland)
    person: dict[str, Any] = {
        "first_name": "Zoë",
        "last_name": "O'Brien-Müller",
        "company": "Acme & Söhne GmbH",
        "title": "Owner/CEO",
        "industry": "IT Services",
        "employees": 0,
        "annual_revenue": Decimal("9999999999999999.99"),
        "country": "DE",
        "region": "Bavaria",
        "city": "München",
        "postal_code": "80331",
        "source": "trade-show",
        "tags": frozenset({"vip", "Ünï code"}),
        "owner": "ann",
        "notes": "line one\n\tindented, then CR LF\r\nend ✓",
        "opt_outs": frozenset({Channel.CALL, Channel.SMS}),
        "erased_at": later,
        "created_at": at,
        "updated_at": later,
        "version": 3,
    }
    lead_id, contact_id = uuid4(), uuid4()
    keys: dict[str, Any] = {  # the lead's, handed to the contact it became
        "email": "Zoe.OBrien+crm@acme-soehne.example.com",
        "phone": "+49 89 12345678",
        "other_emails": frozenset({"zoe@old-acme.example.com"}),
        "other_phones": frozenset({"+49 89 87654321"}),
    }
    a = Lead(
        id=lead_id,
        **keys,
        campaign="Q1 ☃",
        interest=Interest.HIGH,
        needs=frozenset({"help desk", "cloud migration"}),
        status=LeadStatus.CONVERTED,
        status_at=at,
        profile="msp",
        contact_id=contact_id,
        **person,
    )
    c = Contact(
        id=contact_id,
        **keys,
        type=ContactType.SUPPLIER,
        lead_id=lead_id,
        **person,
    )
    o = Opportunity(
        contact_id=contact_id,
        lead_id=lead_id,
        owner="rep",
        setter="sue",
        stage=Stage.LOST,
        appointment_at=at,
        amount=Decimal("0.01"),
        lost_reason=LostReason.PRICE,
        lost_note="too dear\nfor now",
        closed_at=later,
        created_at=at,
        updated_at=later,
        version=5,
    )
    return a, c, o


def _every_field_touch(record: Record) -> Touch:
    kolkata = timezone(timedelta(hours=5, minutes=30))
    return Touch(
        subject_id=record.id,
        channel=Channel.MEETING,
        outcome=Outcome.INTERESTED,
        at=datetime(2026, 3, 2, 14, 30, 15, 123456, tzinfo=kolkata),
        actor="ann",
        note="called back,\twants a quote\nnext week ✓",
        created_at=T0 + timedelta(minutes=1),
        updated_at=T0 + timedelta(minutes=2),
        version=2,
    )


def _every_field_event(record: Record) -> Event:
    kolkata = timezone(timedelta(hours=5, minutes=30))
    return Event(
        subject_id=record.id,
        subject=record.kind,
        name="disqualify",
        source="raw",
        dest="unqualified",
        at=datetime(2026, 3, 2, 14, 30, 15, 123457, tzinfo=kolkata),
        actor="ann",
        reason="no budget\nthis year ✓",
        data={"verdicts": [{"rule": "money", "outcome": "fail"}], "score": 0.25, "gap": None},
        created_at=T0 + timedelta(minutes=1),
        updated_at=T0 + timedelta(minutes=2),
        version=2,
    )


class RepositoryContract(ABC):
    """The storage port's contract as pytest tests (see ``leadfunnel._repository``)."""

    tmp_path: Path

    @abstractmethod
    def create_repository(self) -> Repository:
        """A fresh, empty repository for one test."""

    def destroy_repository(self, repository: Repository) -> None:
        """Release what :meth:`create_repository` made (default: ``close()`` it)."""
        repository.close()

    def reopen_repository(self, repository: Repository) -> Repository | None:
        """The same store opened again (a durable adapter), or ``None`` to skip the
        tests of what a reopen keeps (records, keys, touches, history, merge logs,
        suppressions, the secret) and of event positions growing on after it.

        Called while ``repository`` is still open (a store that allows one open handle
        closes it first); the copy returned is closed with ``close()`` when the test is
        done, and ``repository`` given to :meth:`destroy_repository` after it."""
        return None

    @pytest.fixture(autouse=True)
    def _contract_tmp_path(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path

    @pytest.fixture
    def repo(self) -> Iterator[Repository]:
        with self.fresh() as repository:
            yield repository

    @contextmanager
    def fresh(self) -> Iterator[Repository]:
        """A fresh repository, destroyed afterwards."""
        repository = self.create_repository()
        try:
            yield repository
        finally:
            self.destroy_repository(repository)

    # --- records round-trip ----------------------------------------------------------

    def test_records_come_back_equal(self, repo: Repository) -> None:
        kolkata = timezone(timedelta(hours=5, minutes=30))
        at = datetime(2026, 3, 2, 14, 30, 15, 123456, tzinfo=kolkata)
        a = lead(
            1,
            phone="+1 512 555 0134",
            tags={"vip", "webinar-2026"},
            needs={"backup"},
            opt_outs={Channel.SMS},
            annual_revenue="2500000.50",
            employees=25,
            country="US",
            created_at=at,
            status_at=at,
            notes="Ünïcode ✓ and 'quotes'",
        )
        c = contact(2, type=ContactType.CLIENT, lead_id=uuid4())
        o = deal(c, amount="1000.25", appointment_at=at, stage=Stage.PROPOSING, owner="rep")
        add(repo, a, c, o)
        assert_kept(repo.get(a.id), a)
        assert_kept(repo.get(c.id), c)
        assert_kept(repo.get(o.id), o)
        again = repo.get(a.id)
        assert isinstance(again, Lead)
        assert again.created_at == at
        assert again.created_at.utcoffset() == at.utcoffset()  # the writer's, not UTC
        assert_kept(repo.get_many([a.id, o.id, uuid4()]), {a.id: a, o.id: o})
        assert repo.get_many([]) == {}

    def test_every_field_of_every_record_comes_back(self, repo: Repository) -> None:
        """Each field of a lead, a contact and an opportunity set to something other
        than its default (an adapter that drops a field it was never shown passes a
        test that leaves it unset): all of it comes back."""
        a, c, o = _every_field_records()
        for record in (a, c, o):
            assert _defaults_left(record) == [], "the contract's sample must set every field"
        add(repo, a, c, o)
        assert_kept(repo.get(a.id), a)
        assert_kept(repo.get(c.id), c)
        assert_kept(repo.get(o.id), o)
        assert_kept(repo.get_many([a.id, c.id, o.id]), {a.id: a, c.id: c, o.id: o})
        assert_kept(repo.leads(), [a])
        assert_kept(repo.contacts(), [c])
        assert_kept(repo.opportunities(), [o])

    def test_amounts_at_their_full_precision_come_back_exact(self, repo: Repository) -> None:
        """A deal's amount and a person's annual revenue with every digit their type
        takes (``max_digits`` and ``decimal_places`` of ``Money``: 18 and 2), through an
        insert and an update: a store that keeps them as floats, or in a narrower
        column, rounds them."""
        amount = _money_at_its_precision(Opportunity, "amount")
        revenue = _money_at_its_precision(Lead, "annual_revenue")
        c = contact(1, annual_revenue=revenue)
        o = deal(c, amount=amount, stage=Stage.WON)
        add(repo, c, o)
        got = repo.get_many([c.id, o.id])
        back = (
            getattr(got.get(o.id), "amount", None),
            getattr(got.get(c.id), "annual_revenue", None),
        )
        assert back == (amount, revenue), (
            f"amounts at their full precision came back changed: {back}, given {(amount, revenue)}"
        )
        assert [d.amount for d in repo.opportunities()] == [amount]
        cent = Decimal(1).scaleb(int(amount.as_tuple().exponent))  # its last digit's unit
        edited = bump(o, amount=amount - cent)
        repo.commit(ChangeSet(updates=[edited]))
        got_amount = getattr(repo.get(o.id), "amount", None)
        assert got_amount == edited.amount, (
            f"an amount updated to {edited.amount} came back as {got_amount}"
        )

    def test_text_at_its_limits_comes_back_whole(self, repo: Repository) -> None:
        """Every text field with a length limit, at that limit (200 characters for a
        name, an owner, a source or a campaign, 100 for each tag, 32,000 for notes,
        2,000 for a note or an event's reason; read from the models' field metadata, so
        a field added later is checked too), in other scripts with astral characters and
        line breaks, comes back whole from every read: a column cut to 50, 150 or 2,000
        characters passes every shorter value."""
        models: tuple[type[BaseModel], ...] = (Lead, Contact, Opportunity, Touch, Event)
        limits = {model: _text_limits(model) for model in models}
        known: dict[type[BaseModel], set[str]] = {
            Lead: {"first_name", "company", "owner", "campaign", "tags", "needs", "notes"},
            Opportunity: {"owner", "setter", "lost_note"},
            Touch: {"actor", "note"},
            Event: {"actor", "reason"},
        }
        for model, names in known.items():
            assert names <= set(limits[model]), f"the contract missed {model.__name__}'s limits"
        assert {length for _, length, _ in limits[Lead].values()} >= {100, 200, 32_000}
        a = lead(1, **_texts_at_their_limits(Lead))
        c = contact(2, **_texts_at_their_limits(Contact))
        o = deal(
            c, stage=Stage.LOST, lost_reason=LostReason.PRICE, **_texts_at_their_limits(Opportunity)
        )
        t = Touch.model_validate(
            {**touch(a, "interested").model_dump(), **_texts_at_their_limits(Touch)}
        )
        e = Event.model_validate(
            {**event(a, "touch", "raw", "raw").model_dump(), **_texts_at_their_limits(Event)}
        )
        add(repo, a, c, o)
        (stored,) = repo.commit(ChangeSet(touches=[t], events=[e]))
        e = e.model_copy(update={"position": stored.position})
        got = repo.get_many([a.id, c.id, o.id])
        for record in (a, c, o):
            assert_whole(got.get(record.id), record, limits[type(record)])
        listed = [*repo.leads(), *repo.contacts(), *repo.opportunities()]
        for back, made in zip(listed, (a, c, o), strict=True):
            assert_whole(back, made, limits[type(made)])
        (t_back,) = repo.touches(a.id)
        assert_whole(t_back, t, limits[Touch])
        for e_back in (repo.history(a.id)[-1], repo.events(after=e.position - 1)[0]):
            assert_whole(e_back, e, limits[Event])
        assert_kept(got, {a.id: a, c.id: c, o.id: o})
        assert_kept([t_back, e_back], [t, e])
        # And through an update, which a store may write by other code than an insert.
        edited = bump(a, **_texts_at_their_limits(Lead, variant=1))
        edited_deal = bump(o, **_texts_at_their_limits(Opportunity, variant=1))
        repo.commit(ChangeSet(updates=[edited, edited_deal]))
        got = repo.get_many([a.id, o.id])
        assert_whole(got.get(a.id), edited, limits[Lead])
        assert_whole(got.get(o.id), edited_deal, limits[Opportunity])
        assert_kept(got, {a.id: edited, o.id: edited_deal})

    def test_touches_and_events_keep_every_field(self, repo: Repository) -> None:
        """A touch's note and actor, an event's actor, reason and data (and every other
        field of both) come back as given, from every read that returns them."""
        a = lead(1)
        add(repo, a)
        t, e = _every_field_touch(a), _every_field_event(a)
        assert _defaults_left(t) == [], "the contract's sample must set every field"
        assert _defaults_left(e) == ["position"], "the contract's sample must set every field"
        (stored,) = repo.commit(ChangeSet(touches=[t], events=[e]))
        assert stored.position > 0
        assert_kept(stored, e.model_copy(update={"position": stored.position}))
        assert_kept(repo.touches(a.id), [t])
        assert_kept(repo.history(a.id)[-1], stored)
        assert_kept(repo.events(after=repo.history(a.id)[0].position), [stored])

    def test_get_unknown_raises_not_found(self, repo: Repository) -> None:
        missing = uuid4()
        with pytest.raises(NotFoundError) as err:
            repo.get(missing)
        assert err.value.id == missing

    def test_lists_keep_insertion_order(self, repo: Repository) -> None:
        made = [lead(n) for n in (5, 3, 9, 1)]
        for record in made:
            add(repo, record)
        assert [r.id for r in repo.leads()] == [r.id for r in made]
        assert [r.id for r in repo.leads(limit=2)] == [r.id for r in made[:2]]
        updated = bump(made[0], notes="edited")
        repo.commit(ChangeSet(updates=[updated]))
        assert [r.id for r in repo.leads()] == [r.id for r in made]

    # --- versions and atomicity ------------------------------------------------------

    def test_update_checks_the_version(self, repo: Repository) -> None:
        a = lead(1)
        add(repo, a)
        fresh = bump(a, notes="first")
        repo.commit(ChangeSet(updates=[fresh]))
        assert repo.get(a.id) == fresh
        with pytest.raises(ConcurrencyError) as err:
            repo.commit(ChangeSet(updates=[bump(a, notes="stale")]))
        assert err.value.id == a.id
        with pytest.raises(ConcurrencyError):
            repo.commit(ChangeSet(updates=[bump(bump(fresh), notes="skips one")]))
        assert repo.get(a.id) == fresh

    def test_an_update_stores_nones_as_given(self, repo: Repository) -> None:
        """An update stores the record as given: a field set to ``None`` (as an
        erasure blanks the personal ones) reads back ``None``, never the old value."""
        a = lead(1, company="Acme", notes="met at the fair", title="CEO")
        c = contact(2, company="Beta", notes="call after 5")
        add(repo, a, c)
        blank_a = bump(a, company=None, notes=None, title=None, first_name=None)
        blank_c = bump(c, company=None, notes=None, last_name=None)
        repo.commit(ChangeSet(updates=[blank_a, blank_c]))
        for record, blank in ((a, blank_a), (c, blank_c)):
            got = repo.get(record.id)
            kept = [
                name
                for name in ("first_name", "last_name", "company", "notes", "title")
                if name in type(blank).model_fields
                and getattr(blank, name) is None
                and getattr(got, name) is not None
            ]
            assert not kept, f"an update to None kept the old value of {kept}"
            assert got == blank

    def test_an_update_that_empties_a_set_stores_it_empty(self, repo: Repository) -> None:
        """An update that empties a set field (a lead opting back in, needs or tags
        cleared, a merged-away e-mail or phone dropped) reads back empty, never with
        the old values, and the e-mails and phones it dropped are free again."""
        sets: dict[str, Any] = {
            "tags": frozenset({"vip"}),
            "opt_outs": frozenset({Channel.CALL, Channel.SMS}),
            "other_emails": frozenset({"old.pat@former.example.com"}),
            "other_phones": frozenset({"+1 512 555 0177"}),
        }
        a = lead(1, needs={"backup"}, **sets)
        c = contact(2, **{**sets, "other_emails": {"old.sam@former.example.com"}})
        c = c.model_copy(update={"other_phones": frozenset({"+15125550178"})})
        add(repo, a, c)
        held = [
            "email:old.pat@former.example.com",
            "phone:+15125550177",
            "email:old.sam@former.example.com",
            "phone:+15125550178",
        ]
        assert repo.find_keys(held) == {held[0]: a.id, held[1]: a.id, held[2]: c.id, held[3]: c.id}
        emptied: dict[str, Any] = {name: frozenset() for name in sets}
        blank_a, blank_c = bump(a, needs=frozenset(), **emptied), bump(c, **emptied)
        repo.commit(ChangeSet(updates=[blank_a, blank_c]))
        for record, blank in ((a, blank_a), (c, blank_c)):
            got = repo.get(record.id)
            kept = {
                name: getattr(got, name)
                for name in (*sets, "needs")
                if name in type(blank).model_fields and getattr(got, name)
            }
            assert not kept, (
                f"an update that emptied these sets of a {record.kind} kept the old values: {kept}"
            )
            assert got == blank
        assert repo.find_keys(held) == {}, (
            "an update that emptied other_emails and other_phones still holds their keys"
        )
        assert repo.leads(tag="vip") == []
        assert repo.contacts(tag="vip") == []
        add(repo, lead(3, email="old.pat@former.example.com", phone="+1 512 555 0177"))

    def test_update_or_delete_of_unknown_record_raises_not_found(self, repo: Repository) -> None:
        ghost = lead(1)
        with pytest.raises(NotFoundError):
            repo.commit(ChangeSet(updates=[bump(ghost)]))
        with pytest.raises(NotFoundError):
            repo.commit(ChangeSet(deletes=[ghost]))

    def test_a_record_is_found_only_under_its_own_kind(self, repo: Repository) -> None:
        a = lead(1)
        add(repo, a)
        impostor = contact(1, id=a.id, email="other@example.com", version=2)
        with pytest.raises(NotFoundError):
            repo.commit(ChangeSet(updates=[impostor]))
        assert repo.get(a.id) == a

    def test_delete_checks_the_version(self, repo: Repository) -> None:
        a = lead(1)
        add(repo, a)
        with pytest.raises(ConcurrencyError):
            repo.commit(ChangeSet(deletes=[a.model_copy(update={"version": 7})]))
        repo.commit(ChangeSet(deletes=[a]))
        with pytest.raises(NotFoundError):
            repo.get(a.id)
        assert repo.leads() == []

    def test_inserting_a_stored_id_again_is_refused(self, repo: Repository) -> None:
        a = lead(1)
        add(repo, a)
        with pytest.raises(ConcurrencyError):
            repo.commit(ChangeSet(inserts=[a.model_copy(update={"notes": "again"})]))
        assert repo.get(a.id) == a

    def test_a_new_record_may_not_take_an_id_another_kind_holds(self, repo: Repository) -> None:
        """An id means one record, whatever its kind: a contact given a lead's id (or a
        lead a deal's) is refused as an insert of a stored id, and nothing of its change
        is stored; the holder is still read, found and tagged as before."""
        a, c = lead(1, tags={"vip"}), contact(2)
        d = deal(c)
        add(repo, a, c, d)
        feed = repo.events()
        for impostor in (
            contact(3, id=a.id),
            lead(4, id=d.id, tags={"gold"}),
            deal(c, id=c.id),
        ):
            added = event(impostor, "add", None, None)
            with pytest.raises(ConcurrencyError) as err:
                repo.commit(ChangeSet(inserts=[impostor], events=[added]))
            assert err.value.id == impostor.id
            assert err.value.retryable is False, "trying again meets the same record"
        assert repo.get_many([a.id, c.id, d.id]) == {a.id: a, c.id: c, d.id: d}
        assert [r.id for r in repo.leads(tag="vip")] == [a.id]
        assert repo.leads(tag="gold") == []
        assert repo.contacts() == [c]
        assert repo.find_keys(identity_keys(contact(3))) == {}
        assert repo.events() == feed
        # Two new records of one change with one id: neither is stored.
        twin = uuid4()
        for pair in ((lead(5, id=twin), contact(6, id=twin)), (lead(7, id=twin), lead(8, id=twin))):
            with pytest.raises(ConcurrencyError) as err:
                repo.commit(ChangeSet(inserts=list(pair)))
            assert err.value.id == twin
            assert err.value.retryable is False
            assert repo.get_many([twin]) == {}

    def test_a_failed_commit_leaves_no_trace(self, repo: Repository) -> None:
        a, b, z = lead(1), lead(2), lead(3)
        add(repo, a)
        add(repo, z)
        t = touch(a, "no_answer")
        changes = ChangeSet(
            inserts=[b],
            updates=[bump(a, notes="fine"), bump(bump(z), notes="stale")],
            touches=[t],
            events=[event(b, "add", None, "raw"), event(a, "qualify", "raw", "qualified")],
            add_merge=MergeLog(uuid4(), a.id, T0, a, b, 2),
        )
        with pytest.raises(ConcurrencyError):
            repo.commit(changes)
        self.assert_untouched(repo, a, b, z)

    def test_a_refused_key_leaves_no_trace(self, repo: Repository) -> None:
        a, b = lead(1), lead(2)
        add(repo, a)
        clash = lead(3, email=a.email)
        changes = ChangeSet(
            inserts=[b, clash],
            updates=[bump(a, notes="fine")],
            touches=[touch(a, "no_answer")],
            events=[event(b, "add", None, "raw"), event(a, "qualify", "raw", "qualified")],
        )
        with pytest.raises(DuplicateError):
            repo.commit(changes)
        self.assert_untouched(repo, a, b)
        assert repo.find_keys([f"email:{b.email}"]) == {}
        assert repo.find_keys([f"email:{a.email}"]) == {f"email:{a.email}": a.id}

    def test_a_move_to_an_unknown_subject_leaves_no_trace(self, repo: Repository) -> None:
        a, b = lead(1), lead(2)
        add(repo, a)
        t = touch(a, "no_answer")
        repo.commit(ChangeSet(touches=[t]))
        changes = ChangeSet(
            inserts=[b],
            events=[event(b, "add", None, "raw")],
            moves=[Move((t.id,), (), uuid4())],
        )
        with pytest.raises(NotFoundError):
            repo.commit(changes)
        with pytest.raises(NotFoundError):
            repo.get(b.id)
        assert repo.touches(a.id) == [t]

    @staticmethod
    def assert_untouched(repo: Repository, a: Lead, b: Lead, *others: Lead) -> None:
        """``a`` (and ``others``) as first stored and ``b`` absent, nothing else recorded."""
        for record in (a, *others):
            assert repo.get(record.id) == record
        with pytest.raises(NotFoundError):
            repo.get(b.id)
        assert [e.name for e in repo.history(a.id)] == ["add"]
        assert repo.history(b.id) == []
        assert repo.touches(a.id) == []
        assert repo.last_merge(a.id) is None
        assert repo.find_keys([f"email:{b.email}"]) == {}
        assert counts(repo.step_counts(since=None, until=None)) == {("raw", None): 1 + len(others)}

    def test_a_loading_block_stores_and_refuses_as_outside_it(self, repo: Repository) -> None:
        """``loading()`` (an adapter may put off upkeep inside it) changes nothing a
        commit does: each one is stored, or refused whole, and read back, inside the
        block and after it; blocks nest."""
        a, b, c = lead(1), lead(2, tags={"x"}), lead(3)
        with repo.loading():
            add(repo, a)
            with repo.loading():
                add(repo, b)
            clash = lead(4, email=a.email)
            with pytest.raises(DuplicateError):
                repo.commit(ChangeSet(inserts=[c, clash], events=[event(c, "add", None, "raw")]))
            assert repo.get_many([c.id, clash.id]) == {}
            assert repo.get(b.id) == b
            assert repo.leads(tag="x") == [b]
        assert repo.leads() == [a, b]
        assert repo.find_keys([f"email:{a.email}"]) == {f"email:{a.email}": a.id}
        assert counts(repo.step_counts(since=None, until=None)) == {("raw", None): 2}

    def test_an_empty_change_set_is_fine(self, repo: Repository) -> None:
        repo.commit(ChangeSet())
        assert repo.leads() == []

    # --- identity keys ---------------------------------------------------------------

    def test_keys_are_claimed_and_found(self, repo: Repository) -> None:
        a = lead(1, phone="+1 512 555 0134")
        c = contact(2, email=None, phone="+44 20 7946 0958")
        add(repo, a, c)
        found = repo.find_keys(
            [f"email:{a.email}", "phone:+15125550134", "phone:+442079460958", "email:x@y.example"]
        )
        assert found == {
            f"email:{a.email}": a.id,
            "phone:+15125550134": a.id,
            "phone:+442079460958": c.id,
        }
        assert repo.find_keys([]) == {}

    def test_a_held_key_refuses_with_the_holder(self, repo: Repository) -> None:
        a = lead(1, phone="+1 512 555 0134")
        add(repo, a)
        for clash in (
            lead(2, email=str(a.email).upper()),  # e-mail keys ignore case
            lead(3, phone="(512) 555-0134"),
            contact(4, email=a.email),
        ):
            with pytest.raises(DuplicateError) as err:
                add(repo, clash)
            assert err.type is DuplicateError
            assert err.value.existing_id == a.id
        assert [r.id for r in repo.leads()] == [a.id]
        assert repo.contacts() == []

    def test_an_avoided_holder_refuses_with_avoid_listed(self, repo: Repository) -> None:
        avoided = lead(1, status=LeadStatus.AVOID)
        gone = contact(2, type=ContactType.AVOID)
        add(repo, avoided, gone)
        for clash in (lead(3, email=avoided.email), lead(4, email=gone.email)):
            with pytest.raises(AvoidListedError) as err:
                add(repo, clash)
            assert err.value.existing_id in (avoided.id, gone.id)

    def test_a_record_avoided_by_an_update_refuses_with_avoid_listed(
        self, repo: Repository
    ) -> None:
        a = lead(1)
        add(repo, a)
        repo.commit(ChangeSet(updates=[bump(a, status=LeadStatus.AVOID)]))
        with pytest.raises(AvoidListedError) as err:
            add(repo, lead(2, email=a.email))
        assert err.value.existing_id == a.id

    def test_two_new_records_with_one_key_clash_in_one_change_set(self, repo: Repository) -> None:
        a, b = lead(1), lead(2, email="pat1@acme1.example.com")
        with pytest.raises(DuplicateError) as err:
            add(repo, a, b)
        assert err.value.existing_id == a.id
        assert repo.leads() == []
        assert repo.find_keys([f"email:{a.email}"]) == {}

    def test_an_update_releases_the_keys_it_drops(self, repo: Repository) -> None:
        a = lead(1, phone="+1 512 555 0134")
        add(repo, a)
        moved = bump(a, email="new@acme1.example.com", phone=None)
        repo.commit(ChangeSet(updates=[moved]))
        assert repo.find_keys([f"email:{a.email}", "phone:+15125550134"]) == {}
        assert repo.find_keys(["email:new@acme1.example.com"]) == {
            "email:new@acme1.example.com": a.id
        }
        b = lead(2, email=a.email, phone="+1 512 555 0134")
        add(repo, b)
        assert repo.find_keys([f"email:{a.email}"]) == {f"email:{a.email}": b.id}

    def test_an_update_may_keep_its_own_keys(self, repo: Repository) -> None:
        a = lead(1)
        add(repo, a)
        repo.commit(ChangeSet(updates=[bump(a, notes="same keys")]))
        assert repo.find_keys([f"email:{a.email}"]) == {f"email:{a.email}": a.id}

    def test_a_delete_releases_its_keys(self, repo: Repository) -> None:
        a = lead(1)
        add(repo, a)
        repo.commit(ChangeSet(deletes=[a]))
        assert repo.find_keys([f"email:{a.email}"]) == {}
        b = lead(2, email=a.email)
        add(repo, b)
        assert repo.find_keys([f"email:{a.email}"]) == {f"email:{a.email}": b.id}

    def test_a_conversion_hands_the_keys_to_the_contact(self, repo: Repository) -> None:
        a = lead(1, phone="+1 512 555 0134", status=LeadStatus.QUALIFIED)
        add(repo, a)
        c = contact(1, email=a.email, phone=a.phone, lead_id=a.id)
        converted = bump(a, status=LeadStatus.CONVERTED, contact_id=c.id)
        repo.commit(
            ChangeSet(
                inserts=[c],
                updates=[converted],
                events=[event(converted, "convert", "qualified", "converted")],
            )
        )
        assert repo.find_keys([f"email:{a.email}", "phone:+15125550134"]) == {
            f"email:{a.email}": c.id,
            "phone:+15125550134": c.id,
        }
        # A converted lead holds no keys, even when avoided later.
        repo.commit(ChangeSet(updates=[bump(converted, status=LeadStatus.AVOID)]))
        assert repo.find_keys([f"email:{a.email}"]) == {f"email:{a.email}": c.id}
        with pytest.raises(DuplicateError) as err:
            add(repo, lead(9, email=a.email))
        assert err.type is DuplicateError
        assert err.value.existing_id == c.id

    def test_merged_away_emails_and_phones_are_identity_keys(self, repo: Repository) -> None:
        """``other_emails`` and ``other_phones`` (what a merge keeps of the record it
        merged away) are claimed, refused, released and avoid-listed like the person's
        own e-mail and phone."""
        a = lead(1, other_emails={"Old.Pat1@former.example.com"}, other_phones={"+1 512 555 0177"})
        add(repo, a)
        old_email, old_phone = "email:old.pat1@former.example.com", "phone:+15125550177"
        assert repo.find_keys([old_email, old_phone]) == {old_email: a.id, old_phone: a.id}
        for clash in (lead(2, email="OLD.PAT1@former.example.com"), contact(3, phone="5125550177")):
            with pytest.raises(DuplicateError) as err:
                add(repo, clash)
            assert err.type is DuplicateError
            assert err.value.existing_id == a.id
        # A merge, as the funnel commits it: the other record deleted, its e-mail and
        # phone now among keep's other ones, in one change set.
        keep, other = lead(4), lead(5, phone="+1 512 555 0188")
        add(repo, keep, other)
        merged = bump(
            keep,
            other_emails=frozenset({other.email}),
            other_phones=frozenset({other.phone}),
        )
        repo.commit(ChangeSet(updates=[merged], deletes=[other]))
        moved = [f"email:{other.email}", "phone:+15125550188"]
        assert repo.find_keys(moved) == dict.fromkeys(moved, keep.id)
        with pytest.raises(DuplicateError) as err:
            add(repo, lead(6, email=other.email))  # the merged-away e-mail, new again
        assert err.value.existing_id == keep.id
        # Dropped from other_emails: free again; the phone is still held.
        repo.commit(ChangeSet(updates=[bump(merged, other_emails=frozenset())]))
        assert repo.find_keys(moved) == {moved[1]: keep.id}
        # Avoided, the person's merged-away keys are avoid-listed too.
        repo.commit(ChangeSet(updates=[bump(a, status=LeadStatus.AVOID)]))
        with pytest.raises(AvoidListedError) as avoided:
            add(repo, lead(7, phone="+1 (512) 555-0177"))
        assert avoided.value.existing_id == a.id

    def test_opportunities_hold_no_keys(self, repo: Repository) -> None:
        c = contact(1)
        add(repo, c, deal(c), deal(c))
        assert repo.find_keys([f"email:{c.email}"]) == {f"email:{c.email}": c.id}

    # --- history, touches, moves, merges ---------------------------------------------

    def test_history_is_oldest_first_then_in_insertion_order(self, repo: Repository) -> None:
        a = lead(1)
        later, earlier = T0 + timedelta(hours=1), T0 - timedelta(hours=1)
        first = event(a, "add", None, "raw", T0)
        same1 = event(a, "touch", "raw", "raw", later)
        same2 = event(a, "qualify", "raw", "qualified", later)
        past = event(a, "capture", "raw", "raw", earlier)
        repo.commit(ChangeSet(inserts=[a], events=[first, same1]))
        repo.commit(ChangeSet(events=[same2, past]))
        tokyo = timezone(timedelta(hours=9))
        same3 = event(a, "update", "qualified", "qualified", later.astimezone(tokyo))
        repo.commit(ChangeSet(events=[same3]))
        names = {e.id: e.name for e in (past, first, same1, same2, same3)}
        assert [names.get(e.id, str(e.id)) for e in repo.history(a.id)] == [
            "capture",
            "add",
            "touch",
            "qualify",
            "update",
        ], "history is oldest first by `at` (any offset), then by position (commit order)"
        stored = repo.history(a.id)[-1]
        assert stored.model_copy(update={"position": 0}) == same3
        assert stored.position is not None
        assert repo.history(uuid4()) == []

    def test_touches_are_oldest_first_then_in_insertion_order(self, repo: Repository) -> None:
        a = lead(1)
        add(repo, a)
        t1 = touch(a, "no_answer", T0 + timedelta(minutes=5))
        t2 = touch(a, "left_message", T0 + timedelta(minutes=5), channel="email")
        t0 = touch(a, "connected", T0)
        repo.commit(ChangeSet(touches=[t1, t2]))
        repo.commit(ChangeSet(touches=[t0]))
        assert repo.touches(a.id) == [t0, t1, t2]
        assert repo.touches(uuid4()) == []

    def test_instants_in_other_offsets_are_ordered_and_compared_as_instants(
        self, repo: Repository
    ) -> None:
        """Three instants half an hour apart, written in +05:30, UTC and -03:30, whose
        wall-clock readings (10:00, 05:00, 02:00) run the other way: history, touches,
        lists, pages after a cursor, ``created_since``/``created_until`` and a report's
        ``since``/``until`` take them in the order of the instants (a store comparing
        ISO text with the offset kept takes them by their readings)."""
        kolkata = timezone(timedelta(hours=5, minutes=30))
        newfoundland = timezone(-timedelta(hours=3, minutes=30))
        instants = [
            datetime(2026, 3, 2, 10, 0, tzinfo=kolkata),  # 04:30 UTC
            datetime(2026, 3, 2, 5, 0, tzinfo=UTC),
            datetime(2026, 3, 2, 2, 0, tzinfo=newfoundland),  # 05:30 UTC
        ]
        wall_clock = "by their wall-clock readings instead of as instants"
        people = [lead(n, created_at=at, status_at=at) for n, at in enumerate(instants)]
        persons = [contact(n, created_at=at) for n, at in enumerate(instants)]
        deals = [deal(persons[0], created_at=at) for at in instants]
        for n in (1, 2, 0):  # stored in neither order
            add(repo, people[n], persons[n], deals[n], at=instants[n])

        def ids(records: Iterable[Record]) -> list[UUID]:
            return [r.id for r in records]

        for kind, made, got in (
            ("leads", people, repo.leads()),
            ("contacts", persons, repo.contacts()),
            ("opportunities", deals, repo.opportunities()),
        ):
            assert ids(got) == ids(made), f"{kind}() are ordered {wall_clock}"
        for n in (0, 1):
            cursor = (people[n].created_at, people[n].id)
            assert ids(repo.leads(after=cursor, limit=1)) == [people[n + 1].id], (
                f"a page after a cursor at {cursor[0]} starts {wall_clock}"
            )
        middle = instants[1]
        for at in (middle.astimezone(kolkata), middle.astimezone(newfoundland)):
            since = ids(repo.leads(created_since=at))
            assert since == ids(people[1:]), f"created_since={at} compares {wall_clock}"
            until = ids(repo.leads(created_until=at))
            assert until == [people[0].id], f"created_until={at} compares {wall_clock}"
            window = (
                counts(repo.step_counts(since=at, until=None, steps=["raw"])),
                counts(repo.step_counts(since=None, until=at, steps=["raw"])),
            )
            assert window == ({("raw", None): 2}, {("raw", None): 1}), (
                f"a report's since/until of {at} compares {wall_clock}"
            )
        # History and touches: the person's add (04:30 UTC) first, then 05:00, 05:30.
        a = persons[0]
        late = event(a, "update", "prospect", "prospect", instants[2])
        middle_event = event(a, "touch", "prospect", "prospect", instants[1])
        repo.commit(ChangeSet(events=[late, middle_event]))
        assert [e.at for e in repo.history(a.id)] == instants, f"history is ordered {wall_clock}"
        touches = [touch(a, "no_answer", at) for at in (instants[2], instants[0], instants[1])]
        repo.commit(ChangeSet(touches=touches))
        assert [t.at for t in repo.touches(a.id)] == instants, f"touches are ordered {wall_clock}"

    def test_moves_repoint_touches_and_events(self, repo: Repository) -> None:
        keep, other = lead(1), lead(2)
        add(repo, keep, other, at=T0)
        t_other = _every_field_touch(other).model_copy(update={"at": T0 + timedelta(hours=1)})
        t_keep = touch(keep, "connected", T0 + timedelta(hours=2))
        e_other = _every_field_event(other).model_copy(
            update={"at": T0 + timedelta(hours=1), "name": "touch", "dest": "raw"}
        )
        repo.commit(ChangeSet(touches=[t_other, t_keep], events=[e_other]))
        before = repo.history(other.id)
        moved_events = tuple(e.id for e in before)
        repo.commit(
            ChangeSet(
                deletes=[other],
                moves=[Move((t_other.id,), moved_events, keep.id)],
            )
        )
        # Re-pointed, and nothing else changed: every field, and each event's position.
        touches = repo.touches(keep.id)
        assert touches == [t_other.model_copy(update={"subject_id": keep.id}), t_keep]
        history = repo.history(keep.id)
        assert len(history) == 3
        assert all(e.subject_id == keep.id for e in history)
        assert history[-1].id == e_other.id
        assert [e for e in history if e.id in moved_events] == [
            e.model_copy(update={"subject_id": keep.id}) for e in before
        ]
        assert repo.touches(other.id) == []
        assert repo.history(other.id) == []
        # Moved steps count for the subject they now belong to.
        assert counts(repo.step_counts(since=None, until=None)) == {("raw", None): 1}

    def test_merge_logs_are_kept_and_removed(self, repo: Repository) -> None:
        keep, other = contact(1), contact(2, tags={"x"})
        d = deal(other)
        add(repo, keep, other, d)
        first = MergeLog(uuid4(), keep.id, T0, keep, other, 2, (uuid4(),), (), (d,))
        second = MergeLog(
            uuid4(), keep.id, T0 + timedelta(days=1), bump(keep), other, 3, (), (uuid4(),)
        )
        repo.commit(ChangeSet(add_merge=first))
        repo.commit(ChangeSet(add_merge=second))
        assert repo.last_merge(keep.id) == second
        # merges_of: every log not undone whose keep or merged-away record is asked
        # for, oldest first (an erasure scrubs them all).
        assert repo.merges_of([keep.id]) == [first, second]
        assert repo.merges_of([other.id, uuid4()]) == [first, second]
        repo.commit(ChangeSet(remove_merge=second.id))
        assert repo.last_merge(keep.id) == first
        assert repo.merges_of([keep.id, other.id]) == [first]
        repo.commit(ChangeSet(remove_merge=first.id))
        assert repo.last_merge(keep.id) is None
        assert repo.last_merge(other.id) is None
        assert repo.merges_of([keep.id, other.id]) == []

    # --- filters ---------------------------------------------------------------------

    def test_lead_filters(self, repo: Repository) -> None:
        a = lead(1, tags={"vip"}, owner="ann", created_at=T0)
        b = lead(2, status=LeadStatus.SUSPECT, source="list", created_at=T0 + timedelta(days=1))
        c = lead(3, tags={"vip", "x"}, owner="bob", created_at=T0 + timedelta(days=2))
        add(repo, a, b, c)

        def ids(**filters: Any) -> list[UUID]:
            found = [r.id for r in repo.leads(**filters)]
            if "limit" not in filters:  # count() answers every filter the list does
                assert repo.count("lead", **filters) == len(found), filters
            return found

        assert ids(status=LeadStatus.SUSPECT) == [b.id]
        assert ids(tag="vip") == [a.id, c.id]
        assert ids(tag="VIP") == []
        assert ids(source="webinar") == [a.id, c.id]
        assert ids(owner="bob") == [c.id]
        assert ids(created_since=T0 + timedelta(days=1)) == [b.id, c.id]
        assert ids(created_until=T0 + timedelta(days=1)) == [a.id]
        paris = timezone(timedelta(hours=1))
        assert ids(created_since=(T0 + timedelta(days=1)).astimezone(paris)) == [b.id, c.id]
        assert ids(tag="vip", owner="ann", status=LeadStatus.RAW) == [a.id]
        assert ids(tag="vip", limit=1) == [a.id]
        # A filter follows updates.
        repo.commit(ChangeSet(updates=[bump(a, tags=frozenset({"cold"}), owner="bob")]))
        assert ids(tag="vip") == [c.id]
        assert ids(tag="cold") == [a.id]
        assert ids(owner="bob") == [a.id, c.id]

    def test_contact_filters(self, repo: Repository) -> None:
        lead_id = uuid4()
        a = contact(1, tags={"vip"}, owner="ann", source="referral", lead_id=lead_id)
        b = contact(2, type=ContactType.CLIENT, owner="bob")
        add(repo, a, b)

        def ids(**filters: Any) -> list[UUID]:
            found = [r.id for r in repo.contacts(**filters)]
            if "limit" not in filters:  # count() answers every filter the list does
                assert repo.count("contact", **filters) == len(found), filters
            return found

        assert ids() == [a.id, b.id]
        assert ids(type=ContactType.CLIENT) == [b.id]
        assert ids(tag="vip") == [a.id]
        assert ids(source="referral") == [a.id]
        assert ids(owner="bob") == [b.id]
        assert ids(lead_id=lead_id) == [a.id]
        assert ids(limit=1) == [a.id]

    def test_opportunity_filters(self, repo: Repository) -> None:
        c1, c2 = contact(1, lead_id=uuid4()), contact(2)
        a = deal(c1, owner="ann", setter="sue")
        b = deal(c2, owner="bob", stage=Stage.WON)
        add(repo, c1, c2, a, b)

        def ids(**filters: Any) -> list[UUID]:
            found = [r.id for r in repo.opportunities(**filters)]
            if "limit" not in filters:  # count() answers every filter the list does
                assert repo.count("opportunity", **filters) == len(found), filters
            return found

        assert ids() == [a.id, b.id]
        assert ids(stage=Stage.WON) == [b.id]
        assert ids(owner="ann") == [a.id]
        assert ids(setter="sue") == [a.id]
        assert ids(contact_id=c2.id) == [b.id]
        assert ids(lead_id=c1.lead_id) == [a.id]
        assert ids(limit=1) == [a.id]

    def test_a_limit_of_zero_returns_nothing(self, repo: Repository) -> None:
        c = contact(2)
        add(repo, lead(1), c, deal(c))
        got: dict[str, list[Any]] = {
            "leads": repo.leads(limit=0),
            "contacts": repo.contacts(limit=0),
            "opportunities": repo.opportunities(limit=0),
            "events": repo.events(limit=0),
            "rep_list": repo.rep_list("not_sat", now=T0 + timedelta(days=1), limit=0),
        }
        assert {name: len(rows) for name, rows in got.items()} == dict.fromkeys(got, 0), (
            "limit=0 must return nothing (at most 0 rows), not every row"
        )

    def test_text_filters_compare_exactly(self, repo: Repository) -> None:
        """``owner``, ``source``, ``setter`` and ``tag`` match the text as written, as
        ``list()`` filters, as ``count()`` filters and in ``where=``: a letter's case or
        an accent makes another owner. Each value is probed with texts that differ from
        it in case only (ASCII letters, then accented ones: SQLite's ``NOCASE`` folds
        the first only), in accents only, and in both, so that a store that folds one
        of them (``lower(col) = lower(?)``, ``citext``, a MySQL ``*_ci`` or ``*_ai``
        collation) is caught whichever it folds."""
        a = lead(1, owner="José", source="Café", tags={"Crème"})
        c = contact(2, owner="Zoë", source="Café", tags={"Crème"})
        o = deal(c, owner="José", setter="Zoë")
        add(repo, a, c, o)
        stored: dict[tuple[SubjectKind, str], str] = {
            ("lead", "owner"): "José",
            ("lead", "source"): "Café",
            ("lead", "tag"): "Crème",
            ("contact", "owner"): "Zoë",
            ("contact", "source"): "Café",
            ("contact", "tag"): "Crème",
            ("opportunity", "owner"): "José",
            ("opportunity", "setter"): "Zoë",
        }
        method = {"lead": "leads", "contact": "contacts", "opportunity": "opportunities"}

        def found(kind: SubjectKind, name: str, value: str, in_where: bool) -> tuple[int, int]:
            """How many records the list finds with the filter, and ``count()`` counts."""
            filters = {"where": {name: value}} if in_where else {name: value}
            return len(getattr(repo, method[kind])(**filters)), repo.count(kind, **filters)

        missed, folded = [], []
        for (kind, name), text in stored.items():
            # where= names a field, and tags are a set, not a text
            for in_where in (False,) if name == "tag" else (False, True):
                call = f"{method[kind]}(" + (
                    f"where={{{name!r}: %r}})" if in_where else f"{name}=%r)"
                )
                if found(kind, name, text, in_where) != (1, 1):
                    missed.append(call % text)
                for how, probe in _near_misses(text).items():
                    if found(kind, name, probe, in_where) != (0, 0):
                        folded.append(f"{call % probe} ({how}; stored {text!r})")
        assert not missed, f"these filters did not find the record holding that text: {missed}"
        assert not folded, f"these filters matched text that differs from theirs: {folded}"
        assert [r.id for r in repo.leads(owner="José", source="Café", tag="Crème")] == [a.id]
        assert [r.id for r in repo.opportunities(owner="José", setter="Zoë")] == [o.id]

    def test_an_applications_text_field_compares_exactly_in_where(self, repo: Repository) -> None:
        """``where=`` on a text field of the application's own (kept in the record's
        document, not in a column of its own) matches the text as written too."""
        repo.use_models(opportunity=_CustomDeal)
        c = contact(1)
        d = _CustomDeal.model_validate({**deal(c).model_dump(), "po_number": "Pé-Ab"})
        add(repo, c, d)
        assert [r.id for r in repo.opportunities(where={"po_number": "Pé-Ab"})] == [d.id]
        folded = [
            f"opportunities(where={{'po_number': {probe!r}}}) ({how}; stored 'Pé-Ab')"
            for how, probe in _near_misses("Pé-Ab").items()
            if repo.opportunities(where={"po_number": probe})
            or repo.count("opportunity", where={"po_number": probe})
        ]
        assert not folded, f"these filters matched text that differs from theirs: {folded}"

    def test_owners_and_sources_of_follow_ups_and_rep_lists_compare_exactly(
        self, repo: Repository
    ) -> None:
        """``follow_up_candidates(owner=)`` (``due(owner=)``) and ``rep_list``'s
        ``owner`` and ``source`` match the text as written, as the list filters do."""
        day = timedelta(days=1)
        fits = lead(1, status=LeadStatus.QUALIFIED, owner="José", source="Café")
        person = contact(2, owner="Zoë", source="Café")
        booked = deal(person, owner="José", appointment_at=T0 + day)
        prospect = contact(3, owner="Zoë")  # in a cadence: no open deal
        add(repo, fits, prospect)
        repo.commit(
            ChangeSet(
                inserts=[person, booked],
                events=[event(booked, "set_appointment", None, "appointment_set", T0)],
            )
        )
        now = T0 + 10 * day

        def candidates(owner: str) -> set[UUID]:
            rows = repo.follow_up_candidates(lead_limit=2, contact_limit=8, owner=owner)
            return {row.subject_id for row in rows}

        def listed(
            kind: RepListKind, owner: str | None = None, source: str | None = None
        ) -> set[UUID]:
            rows = repo.rep_list(kind, now=now, owner=owner, source=source)
            return {row.record.id for row in rows}

        calls: list[tuple[str, Any, str, set[UUID]]] = [
            ("follow_up_candidates(owner=%r)", candidates, "José", {fits.id}),
            ("follow_up_candidates(owner=%r)", candidates, "Zoë", {prospect.id}),
            (
                "rep_list('never_booked', owner=%r)",
                lambda v: listed("never_booked", owner=v),
                "José",
                {fits.id},
            ),
            (
                "rep_list('never_booked', source=%r)",
                lambda v: listed("never_booked", source=v),
                "Café",
                {fits.id},
            ),
            (
                "rep_list('not_sat', owner=%r)",
                lambda v: listed("not_sat", owner=v),
                "José",
                {booked.id},
            ),
            (
                "rep_list('not_sat', source=%r)",
                lambda v: listed("not_sat", source=v),
                "Café",
                {booked.id},
            ),
        ]
        missed, folded = [], []
        for call, ask, text, expected in calls:
            if ask(text) != expected:
                missed.append(call % text)
            for how, probe in _near_misses(text).items():
                if ask(probe):
                    folded.append(f"{call % probe} ({how}; stored {text!r})")
        assert not missed, f"these did not find the record holding that text: {missed}"
        assert not folded, f"these matched text that differs from theirs: {folded}"

    def test_people_like(self, repo: Repository) -> None:
        a = lead(1, email="ann@Shared.example.com", company="Acme", last_name="Rivera")
        b = lead(2, email="bob@shared.example.com", company="Other", last_name="Smith")
        c = lead(3, email="cy@else.example.com", company="  acme ", last_name="Jones")
        d = lead(4, email="di@none.example.com", company="Zed", last_name="RIVERA")
        k = contact(5, email="ed@shared.example.com", company="Acme")
        add(repo, a, b, c, d, k)

        def ids(**traits: Any) -> list[UUID]:
            return [r.id for r in repo.people_like(**traits)]

        assert ids(email_domain="SHARED.example.com") == [a.id, b.id]
        assert ids(company="ACME") == [a.id, c.id]
        assert ids(last_name="rivera") == [a.id, d.id]
        assert ids(email_domain="else.example.com", last_name="Smith") == [b.id, c.id]
        assert ids(company="acme", kind="contact") == [k.id]
        assert ids(company="acme", limit=1) == [a.id]
        assert ids() == []
        # Names as people type them on different systems (trait_key): case, accents,
        # spaces and punctuation aside, decomposed text (NFD) as composed.
        e = lead(6, email="e@cafe.example.com", company="Café Müller, Inc.", last_name="O'Connell")
        add(repo, e)
        decomposed = unicodedata.normalize("NFD", "cafe  MÜLLER inc")
        assert ids(company=decomposed) == [e.id], "people_like must compare trait_key()s"
        assert ids(last_name="Oconnell") == [e.id], "people_like must compare trait_key()s"
        # Whole keys, not parts of them: "Acm" is not "Acme", "Riv" not "Rivera".
        partial = "people_like matched part of a trait: it compares whole trait_key()s"
        assert ids(company="Acm") == [], partial
        assert ids(last_name="Riv") == [], partial
        assert ids(email_domain="example.com") == [], partial
        # An edit moves a person to other traits: people_like reads them as they are now,
        # not as they were inserted (a trait column written by the INSERT only).
        moved = bump(a, company="Zed", last_name="Smith", email="ann@else.example.com")
        repo.commit(ChangeSet(updates=[moved]))
        stale = "people_like found a lead by a trait it had before an update"
        assert ids(company="ACME") == [c.id], stale
        assert ids(company="zed") == [a.id, d.id], stale
        assert ids(last_name="rivera") == [d.id], stale
        assert ids(last_name="smith") == [a.id, b.id], stale
        assert ids(email_domain="shared.example.com") == [b.id], stale
        assert ids(email_domain="else.example.com") == [a.id, c.id], stale
        # An erased person is left out, whatever traits its record still holds (an
        # application's erasure may keep a company; the port's rule does not depend
        # on what was removed).
        repo.commit(ChangeSet(updates=[bump(d, erased_at=T0 + timedelta(days=1))]))
        erased = "people_like found an erased person"
        assert ids(company="zed") == [a.id], erased
        assert ids(last_name="rivera") == [], erased

    # --- follow-up candidates --------------------------------------------------------

    def test_follow_up_candidates(self, repo: Repository) -> None:
        fresh = lead(1, status_at=T0 + timedelta(hours=1), opt_outs={Channel.CALL})
        touched = lead(2, status=LeadStatus.QUALIFIED, owner="ann")
        drip = lead(3)
        reset = lead(4)
        suspect = lead(5, status=LeadStatus.SUSPECT)
        prospect = contact(6, owner="bob")
        busy = contact(7)
        closed = contact(8)
        client = contact(9, type=ContactType.CLIENT)
        add(repo, touched, drip, reset, suspect, prospect, busy, closed, client)
        add(repo, fresh, at=T0 + timedelta(hours=1))  # it became raw then: its status_at
        # A contact whose deals are all closed is back in the cadence from the moment
        # the last one closed (its latest ``closed_at``: an edit of a closed deal since,
        # which moved its ``updated_at``, does not count).
        add(
            repo,
            deal(busy),
            deal(
                closed,
                stage=Stage.LOST,
                closed_at=T0 + timedelta(hours=6),
                updated_at=T0 + timedelta(hours=7),
            ),
            deal(
                closed,
                stage=Stage.WON,
                closed_at=T0 + timedelta(hours=2),
                updated_at=T0 + timedelta(hours=30),
            ),
        )
        h = timedelta(hours=1)
        repo.commit(
            ChangeSet(
                touches=[
                    touch(touched, "no_answer", T0 + 2 * h),
                    touch(drip, "no_answer", T0 + h),
                    touch(drip, "left_message", T0 + 2 * h),
                    touch(reset, "no_answer", T0 + h),
                    touch(reset, "left_message", T0 + 2 * h),
                    touch(reset, "replied", T0 + 3 * h),
                    touch(reset, "no_answer", T0 + 5 * h),
                    touch(prospect, "interested", T0 + 4 * h),
                    touch(suspect, "no_answer", T0),
                ]
            )
        )
        rows = {
            row.subject_id: row for row in repo.follow_up_candidates(lead_limit=2, contact_limit=8)
        }
        assert set(rows) == {fresh.id, touched.id, reset.id, prospect.id, closed.id}
        assert rows[fresh.id].touches == 0
        assert rows[fresh.id].last_touch_at is None
        assert rows[fresh.id].anchor_at == T0 + h
        assert rows[fresh.id].opt_outs == frozenset({Channel.CALL})
        assert rows[fresh.id].subject == "lead"
        assert rows[fresh.id].state == "raw"
        assert rows[touched.id].touches == 1
        assert rows[touched.id].last_touch_at == T0 + 2 * h
        assert rows[touched.id].owner == "ann"
        assert rows[touched.id].state == "qualified"
        assert rows[reset.id].touches == 1
        assert rows[reset.id].anchor_at == T0 + 3 * h
        assert rows[reset.id].last_touch_at == T0 + 5 * h
        assert rows[prospect.id].subject == "contact"
        assert rows[prospect.id].state == "prospect"
        assert rows[prospect.id].owner == "bob"
        assert rows[prospect.id].touches == 0
        assert rows[prospect.id].anchor_at == T0 + 4 * h
        assert rows[closed.id].anchor_at == T0 + timedelta(hours=6)
        wider = {r.subject_id for r in repo.follow_up_candidates(lead_limit=3, contact_limit=8)}
        assert drip.id in wider

    def test_follow_up_candidates_carry_the_last_counted_touch(self, repo: Repository) -> None:
        """``last_touch_at`` is the ``at`` of the last counted touch (``due()`` schedules
        from it): the latest one, as an instant, whatever order the touches were logged
        in and whatever offset they were written in."""
        day = timedelta(days=1)
        kolkata = timezone(timedelta(hours=5, minutes=30))
        twice, offsets = lead(1), contact(2)
        add(repo, twice, offsets)
        ten_days_later = T0 + 10 * day
        early = datetime(2026, 3, 3, 10, 0, tzinfo=kolkata)  # 04:30 UTC, reads 10:00
        later = datetime(2026, 3, 3, 5, 0, tzinfo=UTC)
        repo.commit(
            ChangeSet(
                touches=[
                    touch(twice, "no_answer", ten_days_later),
                    touch(twice, "left_message", T0 + day),
                    touch(twice, "no_answer", T0 + 2 * day, channel="email"),
                    touch(offsets, "no_answer", later),
                    touch(offsets, "no_answer", early),
                ]
            )
        )
        rows = {
            row.subject_id: row for row in repo.follow_up_candidates(lead_limit=5, contact_limit=5)
        }
        got = {
            name: (rows[r.id].touches, rows[r.id].last_touch_at) if r.id in rows else None
            for name, r in (("lead", twice), ("contact", offsets))
        }
        assert got == {"lead": (3, ten_days_later), "contact": (2, later)}, (
            "follow_up_candidates gave the wrong (touches, last_touch_at): the last counted "
            "touch is the latest by instant"
        )

    def test_a_qualified_lead_is_anchored_where_it_entered_its_cadence(
        self, repo: Repository
    ) -> None:
        """``anchor_at`` of a qualified lead is when it became raw
        (:func:`~leadfunnel.storage.lead_entered`), not when it was qualified: an
        overdue first response stays overdue once the lead is qualified. A lead
        disqualified since and qualified again starts a new cadence then."""
        h = timedelta(hours=1)
        kept = lead(1, status_at=T0 + h)
        again = lead(2, status_at=T0 + h)
        add(repo, kept, again, at=T0 + h)
        repo.commit(ChangeSet(touches=[touch(kept, "no_answer", T0 + 2 * h)]))
        out = bump(again, status=LeadStatus.UNQUALIFIED, status_at=T0 + 2 * h)
        repo.commit(
            ChangeSet(
                updates=[out], events=[event(out, "disqualify", "raw", "unqualified", T0 + 2 * h)]
            )
        )
        moved = [
            bump(kept, status=LeadStatus.QUALIFIED, status_at=T0 + 5 * h),
            bump(out, status=LeadStatus.QUALIFIED, status_at=T0 + 6 * h),
        ]
        repo.commit(
            ChangeSet(
                updates=moved,
                events=[
                    event(moved[0], "qualify", "raw", "qualified", T0 + 5 * h),
                    event(moved[1], "qualify", "unqualified", "qualified", T0 + 6 * h),
                ],
            )
        )
        rows = {
            row.subject_id: row for row in repo.follow_up_candidates(lead_limit=2, contact_limit=8)
        }
        got = {
            name: (rows[r.id].anchor_at, rows[r.id].touches)
            for name, r in (("kept", kept), ("again", again))
        }
        assert got == {"kept": (T0 + h, 1), "again": (T0 + 6 * h, 0)}, (
            "follow_up_candidates gave the wrong (anchor_at, touches): a qualified lead is "
            "anchored when it became raw, unless it was disqualified since"
        )

    def test_a_lead_with_two_arrivals_at_raw_entered_its_cadence_at_the_first(
        self, repo: Repository
    ) -> None:
        """A merge moves the other record's history, its arrival at raw included, to
        the kept lead (:class:`Move`): the person entered the cadence at the first
        arrival (:func:`~leadfunnel.storage.lead_entered`), so a touch between the two
        counts."""
        h = timedelta(hours=1)
        kept, other = lead(1, status_at=T0), lead(2, status_at=T0 + 2 * h)
        add(repo, kept, at=T0)
        repo.commit(ChangeSet(touches=[touch(kept, "no_answer", T0 + h)]))
        add(repo, other, at=T0 + 2 * h)
        moved = [e.id for e in repo.history(other.id)]
        repo.commit(ChangeSet(moves=[Move((), tuple(moved), kept.id)]))
        qualified = bump(kept, status=LeadStatus.QUALIFIED, status_at=T0 + 3 * h)
        repo.commit(
            ChangeSet(
                updates=[qualified],
                events=[event(qualified, "qualify", "raw", "qualified", T0 + 3 * h)],
            )
        )
        rows = {
            row.subject_id: row for row in repo.follow_up_candidates(lead_limit=2, contact_limit=8)
        }
        assert (rows[kept.id].anchor_at, rows[kept.id].touches) == (T0, 1), (
            "follow_up_candidates gave the wrong (anchor_at, touches) to a lead with two "
            "arrivals at raw: it entered its cadence at the first"
        )

    def test_a_raw_lead_whose_kept_record_arrived_second_entered_its_cadence_at_the_first(
        self, repo: Repository
    ) -> None:
        """A raw lead too entered its cadence when the first of its records became raw
        (:func:`~leadfunnel.storage.lead_entered`), not at its own, later arrival: a
        touch logged on the record that arrived first counts while the lead is raw,
        and qualifying it keeps its count and its schedule."""
        h = timedelta(hours=1)
        first, kept = lead(1, status_at=T0), lead(2, status_at=T0 + 2 * h)
        add(repo, first, at=T0)
        call = touch(first, "no_answer", T0 + h)
        repo.commit(ChangeSet(touches=[call]))
        add(repo, kept, at=T0 + 2 * h)
        moved = [e.id for e in repo.history(first.id)]
        repo.commit(ChangeSet(moves=[Move((call.id,), tuple(moved), kept.id)]))

        def row() -> tuple[datetime, int]:
            rows = {
                r.subject_id: r for r in repo.follow_up_candidates(lead_limit=2, contact_limit=8)
            }
            return rows[kept.id].anchor_at, rows[kept.id].touches

        assert row() == (T0, 1), (
            "follow_up_candidates gave the wrong (anchor_at, touches) to a raw lead whose "
            "kept record arrived second: it entered its cadence when the first became raw"
        )
        qualified = bump(kept, status=LeadStatus.QUALIFIED, status_at=T0 + 3 * h)
        repo.commit(
            ChangeSet(
                updates=[qualified],
                events=[event(qualified, "qualify", "raw", "qualified", T0 + 3 * h)],
            )
        )
        assert row() == (T0, 1), "qualifying the raw lead moved its cadence"

    def test_follow_up_candidates_by_owner_and_only_people_in_a_cadence(
        self, repo: Repository
    ) -> None:
        """``owner=`` filters (``due(owner=)`` is answered in storage), and only raw and
        qualified leads and prospects are in a cadence: never a lead that is avoided,
        unqualified, converted, a suspect or on the farm list, nor a contact of another
        type."""
        ann_lead, bob_lead, nobodys = lead(1, owner="ann"), lead(2, owner="bob"), lead(3)
        ann_prospect = contact(4, owner="ann")
        others: list[Record] = [
            lead(5, status=LeadStatus.AVOID, owner="ann"),
            lead(6, status=LeadStatus.UNQUALIFIED, owner="ann"),
            lead(7, status=LeadStatus.CONVERTED, owner="ann", contact_id=ann_prospect.id),
            lead(8, status=LeadStatus.SUSPECT, owner="ann"),
            lead(9, status=LeadStatus.FARM_LIST, owner="ann"),
            *(
                contact(f"{n}x", type=kind, owner="ann")
                for n, kind in enumerate(ContactType)
                if kind is not ContactType.PROSPECT
            ),
        ]
        add(repo, ann_lead, bob_lead, nobodys, ann_prospect, *others)

        def ids(owner: str | None = None) -> set[UUID]:
            rows = repo.follow_up_candidates(lead_limit=2, contact_limit=8, owner=owner)
            return {row.subject_id for row in rows}

        assert ids() == {ann_lead.id, bob_lead.id, nobodys.id, ann_prospect.id}
        assert ids("ann") == {ann_lead.id, ann_prospect.id}
        assert ids("bob") == {bob_lead.id}
        assert ids("carol") == set()

    def test_a_reset_at_the_same_instant_counts_by_insertion_order(self, repo: Repository) -> None:
        a = lead(1)
        add(repo, a)
        at = T0 + timedelta(hours=1)
        repo.commit(ChangeSet(touches=[touch(a, "no_answer", at), touch(a, "replied", at)]))
        (row,) = repo.follow_up_candidates(lead_limit=2, contact_limit=8)
        assert row.touches == 0
        assert row.anchor_at == at
        repo.commit(ChangeSet(touches=[touch(a, "no_answer", at)]))
        (row,) = repo.follow_up_candidates(lead_limit=2, contact_limit=8)
        assert row.touches == 1
        assert row.last_touch_at == at

    # --- step counts -----------------------------------------------------------------

    def _funnel_history(self, repo: Repository) -> dict[str, Any]:
        """Two leads and a deal, with moves spread over two months."""
        march, april = T0, T0 + timedelta(days=31)
        won_lead = lead(1, source="webinar", owner="ann", profile="msp")
        raw_lead = lead(2, source="list", owner="bob")
        c = contact(1, lead_id=won_lead.id, email="c@x.example.com")
        d = deal(c, lead_id=won_lead.id, owner="rep", setter="sue")
        add(repo, won_lead, raw_lead, at=march)
        repo.commit(
            ChangeSet(
                inserts=[c, d],
                events=[
                    event(won_lead, "qualify", "raw", "qualified", march),
                    event(won_lead, "convert", "qualified", "converted", march),
                    event(c, "add", None, "prospect", march),
                    event(d, "set_appointment", None, "appointment_set", march),
                    event(d, "sit", "appointment_set", "appointment_sat", april),
                    # A win straight from appointment_sat reaches the steps it skipped.
                    event(d, "win", "appointment_sat", "won", april),
                    event(raw_lead, "touch", "raw", "raw", april),
                    event(raw_lead, "qualify", "raw", "qualified", april),
                    event(raw_lead, "disqualify", "qualified", "unqualified", april),
                    event(raw_lead, "qualify", "unqualified", "qualified", april),
                ],
            )
        )
        return {"march": march, "april": april, "lead": won_lead, "deal": d}

    def test_step_counts_count_distinct_subjects_per_step(self, repo: Repository) -> None:
        self._funnel_history(repo)
        assert counts(repo.step_counts(since=None, until=None)) == {
            ("raw", None): 2,
            ("qualified", None): 2,
            ("appointment_set", None): 1,
            ("appointment_sat", None): 1,
            ("proposing", None): 1,
            ("contract_sent", None): 1,
            ("won", None): 1,
            ("unqualified", None): 1,
        }
        # Only the steps asked for, with or without groups.
        chosen = repo.step_counts(since=None, until=None, steps=("raw", "won"))
        assert counts(chosen) == {("raw", None): 2, ("won", None): 1}
        by_setter = repo.step_counts(since=None, until=None, by="setter", steps=["won"])
        assert counts(by_setter) == {("won", "sue"): 1}
        assert repo.step_counts(since=None, until=None, steps=()) == []

    def test_step_counts_honour_since_and_until(self, repo: Repository) -> None:
        h = self._funnel_history(repo)
        april = h["april"]
        assert counts(repo.step_counts(since=april, until=None)) == {
            # Qualified again from unqualified in April: raw too (funnel_steps).
            ("raw", None): 1,
            ("qualified", None): 1,
            ("unqualified", None): 1,
            ("appointment_sat", None): 1,
            ("proposing", None): 1,
            ("contract_sent", None): 1,
            ("won", None): 1,
        }
        assert counts(repo.step_counts(since=None, until=april)) == {
            ("raw", None): 2,
            ("qualified", None): 1,
            ("appointment_set", None): 1,
        }
        just_after = april + timedelta(microseconds=1)
        assert counts(repo.step_counts(since=just_after, until=None)) == {}
        assert counts(repo.step_counts(since=april, until=april)) == {}

    def test_step_counts_by_group(self, repo: Repository) -> None:
        self._funnel_history(repo)
        deal_steps = ("appointment_set", "appointment_sat", "proposing", "contract_sent", "won")
        Counts = dict[tuple[str, str | None], int]

        def grouped(by: Any) -> Counts:
            return counts(repo.step_counts(since=None, until=None, by=by))

        # Deal steps take the source and profile of the lead the deal came from.
        assert grouped("source") == {
            ("raw", "webinar"): 1,
            ("raw", "list"): 1,
            ("qualified", "webinar"): 1,
            ("qualified", "list"): 1,
            ("unqualified", "list"): 1,
            **{(step, "webinar"): 1 for step in deal_steps},
        }
        expected: Counts = {
            ("raw", "msp"): 1,
            ("raw", None): 1,
            ("qualified", "msp"): 1,
            ("qualified", None): 1,
            ("unqualified", None): 1,
            **{(step, "msp"): 1 for step in deal_steps},
        }
        assert grouped("profile") == expected
        expected = {
            ("raw", "ann"): 1,
            ("raw", "bob"): 1,
            ("qualified", "ann"): 1,
            ("qualified", "bob"): 1,
            ("unqualified", "bob"): 1,
            **{(step, "rep"): 1 for step in deal_steps},
        }
        assert grouped("owner") == expected
        expected = {
            ("raw", None): 2,
            ("qualified", None): 2,
            ("unqualified", None): 1,
            **{(step, "sue"): 1 for step in deal_steps},
        }
        assert grouped("setter") == expected
        assert (
            grouped("month")
            == {
                ("raw", "2026-03"): 2,
                ("raw", "2026-04"): 1,  # qualified again from unqualified: raw too
                ("qualified", "2026-03"): 1,
                ("qualified", "2026-04"): 1,
                ("unqualified", "2026-04"): 1,
                ("appointment_set", "2026-03"): 1,
                **{(step, "2026-04"): 1 for step in deal_steps[1:]},
            }
        )

    def test_a_deal_without_a_lead_groups_by_the_lead_of_its_contact(
        self, repo: Repository
    ) -> None:
        """A deal booked on a contact that had no lead then (``lead_id`` None), whose
        contact later took a lead's history (a merge with the contact a lead became),
        is grouped by that lead's source and profile: the person came from it. A deal
        with no lead either way falls under the contact's own source (a contact added
        directly has one), and under no profile."""
        origin = lead(1, source="webinar", profile="msp", status=LeadStatus.CONVERTED)
        person = contact(1, lead_id=origin.id)
        direct = contact(2)  # added directly: no lead at all
        referred = contact(3, source="referral")  # the same, with a source of its own
        merged_deal = deal(person, lead_id=None)
        direct_deal = deal(direct, lead_id=None)
        referred_deal = deal(referred, lead_id=None)
        add(repo, origin, person, direct, referred, merged_deal, direct_deal, referred_deal)

        def booked(by: Any) -> dict[str | None, int]:
            rows = repo.step_counts(since=None, until=None, by=by, steps=["appointment_set"])
            return {row.group: row.count for row in rows}

        assert booked("source") == {"webinar": 1, "referral": 1, None: 1}, (
            "a deal with no lead is grouped by its contact's own source"
        )
        assert booked("profile") == {"msp": 1, None: 2}

    def test_step_months_are_utc(self, repo: Repository) -> None:
        a = lead(1)
        late = datetime(2026, 3, 31, 23, 30, tzinfo=UTC).astimezone(timezone(timedelta(hours=2)))
        add(repo, a, at=late)
        assert counts(repo.step_counts(since=None, until=None, by="month")) == {
            ("raw", "2026-03"): 1
        }

    def test_step_groups_follow_the_current_record(self, repo: Repository) -> None:
        a = lead(1, source="list")
        add(repo, a)
        repo.commit(ChangeSet(updates=[bump(a, source="webinar")]))
        by_source = repo.step_counts(since=None, until=None, by="source")
        assert counts(by_source) == {("raw", "webinar"): 1}
        direct = contact(2)
        d = deal(direct, owner="rep")
        add(repo, direct, d)
        by_source = repo.step_counts(since=None, until=None, by="source")
        assert counts(by_source)[("appointment_set", None)] == 1

    def test_qualified_follow_up(self, repo: Repository) -> None:
        march, april = T0, T0 + timedelta(days=31)
        twice, never, later, requalified, raw = lead(1), lead(2), lead(3), lead(4), lead(5)
        add(repo, twice, never, later, requalified, raw, at=march)
        repo.commit(
            ChangeSet(
                events=[
                    event(twice, "qualify", "raw", "qualified", march),
                    event(never, "qualify", "raw", "qualified", march),
                    event(later, "qualify", "raw", "qualified", april),
                    event(requalified, "qualify", "raw", "qualified", march),
                    event(requalified, "disqualify", "qualified", "unqualified", march),
                    event(requalified, "qualify", "unqualified", "qualified", april),
                ],
                touches=[
                    touch(twice, "no_answer", march),
                    touch(twice, "connected", april + timedelta(days=40)),  # any time counts
                    touch(later, "no_answer", april),
                    touch(requalified, "no_answer", april),
                    touch(raw, "no_answer", march),
                ],
            )
        )

        def stats(since: datetime | None, until: datetime | None) -> tuple[int, int, int]:
            found = repo.qualified_follow_up(since=since, until=until)
            return found.qualified, found.never_touched, found.touches

        assert stats(None, None) == (4, 1, 4)
        assert stats(april, None) == (2, 0, 2)
        assert stats(None, april) == (3, 1, 3)
        assert stats(april + timedelta(days=1), None) == (0, 0, 0)
        # A converted lead is followed up on its contact: the contact's touches count,
        # and the booking is a follow-up even with none.
        booked, called = lead(6), lead(7)
        add(repo, booked, called, at=march)
        for n, converted in enumerate((booked, called), start=60):
            person = contact(n, lead_id=converted.id)
            add(repo, person, at=march)
            moved = bump(converted, status=LeadStatus.CONVERTED, contact_id=person.id)
            repo.commit(
                ChangeSet(
                    updates=[moved],
                    events=[event(converted, "qualify", "raw", "qualified", march)],
                    touches=[touch(person, "connected", april)] if converted is called else [],
                )
            )
        assert stats(None, None) == (6, 1, 5)
        # Two leads of one person (the contacts they became were merged) lead to one
        # contact: its touches count once.
        twin = lead(8)
        add(repo, twin, at=march)
        shared = bump(twin, status=LeadStatus.CONVERTED, contact_id=person.id)
        repo.commit(
            ChangeSet(
                updates=[shared],
                events=[event(twin, "qualify", "raw", "qualified", march)],
            )
        )
        assert stats(None, None) == (7, 1, 5)

    def test_stage_times_are_medians_from_first_arrivals(self, repo: Repository) -> None:
        day = timedelta(days=1)
        a, b, never = lead(1), lead(2), lead(3)
        person = contact(1, lead_id=a.id)
        first = deal(person, stage=Stage.WON)
        second = deal(person)  # the same lead's second deal, a month later
        add(repo, a, b, never, at=T0)
        repo.commit(
            ChangeSet(
                inserts=[person, first, second],
                events=[
                    event(a, "qualify", "raw", "qualified", T0 + 2 * day),
                    event(b, "qualify", "raw", "qualified", T0 + 4 * day),
                    event(b, "disqualify", "qualified", "unqualified", T0 + 5 * day),
                    event(b, "qualify", "unqualified", "qualified", T0 + 9 * day),
                    event(first, "set_appointment", None, "appointment_set", T0 + 5 * day),
                    event(first, "sit", "appointment_set", "appointment_sat", T0 + 6 * day),
                    event(first, "win", "appointment_sat", "won", T0 + 16 * day),
                    event(second, "set_appointment", None, "appointment_set", T0 + 30 * day),
                ],
            )
        )

        def medians(**period: Any) -> dict[str, tuple[str, float, int]]:
            rows = repo.stage_times(**{"since": None, "until": None, **period})
            return {r.step: (r.next, round(r.median_seconds / 86400, 6), r.count) for r in rows}

        # raw -> qualified: 2 and 4 days (b's first arrival), the median of two is the mean.
        # qualified -> appointment_set: to the lead's earliest deal, not the later one.
        assert medians() == {
            "raw": ("qualified", 3.0, 2),
            "qualified": ("appointment_set", 3.0, 1),
            "appointment_set": ("appointment_sat", 1.0, 1),
            "appointment_sat": ("won", 10.0, 1),
        }
        # A stretch counts in the period its later arrival falls in.
        assert medians(since=T0 + 5 * day) == {
            "qualified": ("appointment_set", 3.0, 1),
            "appointment_set": ("appointment_sat", 1.0, 1),
            "appointment_sat": ("won", 10.0, 1),
        }
        assert medians(until=T0 + 5 * day) == {"raw": ("qualified", 3.0, 2)}
        assert medians(since=T0 + 17 * day) == {}

    def test_stage_times_by_group(self, repo: Repository) -> None:
        day = timedelta(days=1)
        webinar = lead(1, owner="ann", profile="msp")
        listed = lead(2, source="list", owner="bob")
        person = contact(1, lead_id=webinar.id)
        first = deal(person, owner="rep", setter="sue")
        later = deal(person, owner="other", setter="cas")  # booked after: not timed
        add(repo, webinar, listed, at=T0)
        march_end = datetime(2026, 3, 31, 23, 0, tzinfo=UTC)
        repo.commit(
            ChangeSet(
                inserts=[person, first, later],
                events=[
                    event(webinar, "qualify", "raw", "qualified", T0 + 2 * day),
                    event(listed, "qualify", "raw", "qualified", march_end),
                    event(first, "set_appointment", None, "appointment_set", T0 + 3 * day),
                    event(later, "set_appointment", None, "appointment_set", T0 + 9 * day),
                    event(first, "sit", "appointment_set", "appointment_sat", T0 + 5 * day),
                ],
            )
        )

        def grouped(by: Any) -> dict[tuple[str, str | None], tuple[float, int]]:
            rows = repo.stage_times(since=None, until=None, by=by)
            return {(r.step, r.group): (round(r.median_seconds / 86400, 6), r.count) for r in rows}

        days_to_march_end = (march_end - T0) / day
        to_march_end = round(days_to_march_end, 6)
        both = round((2 + days_to_march_end) / 2, 6)  # the median of two: their mean
        assert grouped("source") == {
            ("raw", "list"): (to_march_end, 1),
            ("raw", "webinar"): (2.0, 1),
            ("qualified", "webinar"): (1.0, 1),
            ("appointment_set", "webinar"): (2.0, 1),
        }
        assert grouped("profile") == {
            ("raw", "msp"): (2.0, 1),
            ("raw", None): (to_march_end, 1),
            ("qualified", "msp"): (1.0, 1),
            ("appointment_set", "msp"): (2.0, 1),
        }
        # A lead's arrival takes the lead's owner; a deal's, the deal's (the first one).
        assert grouped("owner") == {
            ("raw", "ann"): (2.0, 1),
            ("raw", "bob"): (to_march_end, 1),
            ("qualified", "rep"): (1.0, 1),
            ("appointment_set", "rep"): (2.0, 1),
        }
        assert grouped("setter") == {
            ("raw", None): (both, 2),
            ("qualified", "sue"): (1.0, 1),
            ("appointment_set", "sue"): (2.0, 1),
        }
        assert grouped("month") == {
            ("raw", "2026-03"): (both, 2),
            ("qualified", "2026-03"): (1.0, 1),
            ("appointment_set", "2026-03"): (2.0, 1),
        }
        rows = repo.stage_times(since=None, until=None, by="source")
        assert [(r.step, r.group) for r in rows] == [
            ("raw", "list"),
            ("raw", "webinar"),
            ("qualified", "webinar"),
            ("appointment_set", "webinar"),
        ]

    def test_a_bad_grouping_or_list_name_is_refused_listing_the_choices(
        self, repo: Repository
    ) -> None:
        """DESIGN 14: an :class:`~leadfunnel.InvalidArgumentError` listing the allowed
        values (in the adapter's own words)."""
        groupings = get_args(GroupBy)
        with pytest.raises(InvalidArgumentError) as err:
            repo.stage_times(since=None, until=None, by="colour")  # type: ignore[arg-type]
        assert_lists_choices(err.value, groupings)
        with pytest.raises(InvalidArgumentError) as err:
            repo.step_counts(since=None, until=None, by="colour")  # type: ignore[arg-type]
        assert_lists_choices(err.value, groupings)
        with pytest.raises(InvalidArgumentError) as err:
            repo.rep_list("colour", now=T0)  # type: ignore[arg-type]
        assert_lists_choices(err.value, get_args(RepListKind))

    def test_the_median_of_an_odd_count_is_the_middle_one(self, repo: Repository) -> None:
        leads = [lead(n) for n in range(5)]
        add(repo, *leads, at=T0)
        hours = [1, 50, 2, 7, 3]
        repo.commit(
            ChangeSet(
                events=[
                    event(x, "qualify", "raw", "qualified", T0 + timedelta(hours=h))
                    for x, h in zip(leads, hours, strict=True)
                ]
            )
        )
        (row,) = repo.stage_times(since=None, until=None)
        assert (row.step, row.next, row.median_seconds, row.count) == (
            "raw",
            "qualified",
            3 * 3600.0,
            5,
        )

    def _rep_list_history(self, repo: Repository) -> dict[str, Any]:
        day = timedelta(days=1)
        now = T0 + 60 * day
        fits = lead(1, status=LeadStatus.QUALIFIED, status_at=T0 + 10 * day, owner="ann")
        fits_too = lead(2, status=LeadStatus.QUALIFIED, status_at=T0 + 20 * day, source="list")
        raw = lead(3)
        converted = lead(4, status=LeadStatus.CONVERTED, source="list")
        person = contact(4, lead_id=converted.id, source="list")
        direct = contact(5, source="webinar")
        deals = {
            "no_show": deal(person, appointment_at=T0 + 30 * day, owner="rep"),
            "upcoming": deal(person, appointment_at=T0 + 90 * day),
            "lost_no_show": deal(
                direct,
                stage=Stage.LOST,
                lost_reason="no_show",
                appointment_at=T0 + 25 * day,
            ),
            "avoid": deal(direct, stage=Stage.LOST, lost_reason="avoid"),
            "unqualified_no_show": deal(
                direct,
                stage=Stage.LOST,
                lost_reason="unqualified",
                appointment_at=T0 + 20 * day,
            ),
            "unbooked_time": deal(direct),  # no appointment time: its creation counts
            "sat_open": deal(person, stage=Stage.PROPOSING, owner="rep"),
            "sat_lost": deal(direct, stage=Stage.LOST, lost_reason="price"),
            "sat_unqualified": deal(direct, stage=Stage.LOST, lost_reason="unqualified"),
            "won": deal(direct, stage=Stage.WON),
        }
        sat_at = {"sat_open": 40, "sat_lost": 35, "sat_unqualified": 36, "won": 33}
        add(repo, fits, fits_too, raw, converted, at=T0)
        repo.commit(
            ChangeSet(
                inserts=[person, direct, *deals.values()],
                events=[
                    event(d, "set_appointment", None, "appointment_set", T0) for d in deals.values()
                ]
                + [
                    event(deals[n], "sit", "appointment_set", "appointment_sat", T0 + d * day)
                    for n, d in sat_at.items()
                ],
            )
        )
        return {"now": now, "fits": fits, "fits_too": fits_too, **deals}

    def test_rep_lists(self, repo: Repository) -> None:
        h = self._rep_list_history(repo)
        now, day = h["now"], timedelta(days=1)

        def pulled(kind: Any, **filters: Any) -> list[tuple[UUID, datetime]]:
            return [(r.record.id, r.since) for r in repo.rep_list(kind, now=now, **filters)]

        # Newest first; since is what put each one on the list.
        assert pulled("never_booked") == [
            (h["fits_too"].id, T0 + 20 * day),
            (h["fits"].id, T0 + 10 * day),
        ]
        assert pulled("not_sat") == [
            (h["no_show"].id, T0 + 30 * day),
            (h["lost_no_show"].id, T0 + 25 * day),
            (h["unbooked_time"].id, T0),
        ]
        assert pulled("not_bought") == [
            (h["sat_open"].id, T0 + 40 * day),
            (h["sat_lost"].id, T0 + 35 * day),
        ]
        # An appointment whose time has not come is not a no-show yet.
        later = [r.record.id for r in repo.rep_list("not_sat", now=T0 + 91 * day)]
        assert h["upcoming"].id in later
        # Filters: the lead's or the deal's contact's source; the record's owner.
        assert pulled("never_booked", source="list") == [(h["fits_too"].id, T0 + 20 * day)]
        assert pulled("not_sat", source="list") == [(h["no_show"].id, T0 + 30 * day)]
        assert pulled("never_booked", owner="ann") == [(h["fits"].id, T0 + 10 * day)]
        assert pulled("not_bought", owner="rep") == [(h["sat_open"].id, T0 + 40 * day)]
        # entered_since <= since < entered_until, and a limit.
        assert pulled("not_sat", entered_since=T0 + 25 * day, entered_until=T0 + 30 * day) == [
            (h["lost_no_show"].id, T0 + 25 * day)
        ]
        assert pulled("not_sat", limit=1) == [(h["no_show"].id, T0 + 30 * day)]
        assert pulled("not_bought", source="nowhere") == []
        # A report's no-shows are picked as the not_sat list is, by history and
        # appointment time, in its order and period, whatever the lost reason: the deals
        # lost as avoid or unqualified that never sat count too (nobody calls them, but
        # their appointments did not sit; an erasure loses open deals as avoid).
        shows = [(r.record.id, r.since) for r in repo.no_shows(now=now)]
        assert [since for _, since in shows] == sorted((since for _, since in shows), reverse=True)
        assert set(shows) == {
            *pulled("not_sat"),
            (h["unqualified_no_show"].id, T0 + 20 * day),
            (h["avoid"].id, T0),
        }
        assert [
            r.record.id
            for r in repo.no_shows(
                now=now, entered_since=T0 + 25 * day, entered_until=T0 + 30 * day
            )
        ] == [h["lost_no_show"].id]
        # An appointment at ``now`` itself is not before it: not a no-show yet.
        at_now = {r.record.id for r in repo.rep_list("not_sat", now=T0 + 30 * day)}
        assert h["no_show"].id not in at_now, (
            "not_sat listed an appointment at `now` itself: it takes appointment_at < now"
        )
        # A deal's source is its contact's, not that of the lead it came from.
        origin = lead(20, source="webinar", status=LeadStatus.CONVERTED)
        referred = contact(20, source="referral", lead_id=origin.id)
        booked = deal(referred, appointment_at=T0 + day)
        repo.commit(
            ChangeSet(
                inserts=[origin, referred, booked],
                events=[event(booked, "set_appointment", None, "appointment_set", T0)],
            )
        )

        def listed(source: str) -> bool:
            rows = repo.rep_list("not_sat", now=now, source=source)
            return booked.id in {row.record.id for row in rows}

        by_source = {source: listed(source) for source in ("referral", "webinar")}
        assert by_source == {"referral": True, "webinar": False}, (
            "rep_list(source=) must compare a deal's contact's source, not its lead's"
        )

    def test_avoided_people_leave_the_rep_lists_whatever_their_deals_reasons(
        self, repo: Repository
    ) -> None:
        """DESIGN 1: nobody markets to an avoided person. A contact avoided after its deals
        were lost for other reasons (a no-show, the price) leaves ``not_sat`` and
        ``not_bought``; its no-show still counts in reports (``no_shows``)."""
        day = timedelta(days=1)
        now = T0 + 60 * day
        avoided, kept = contact(1), contact(2)
        missed = deal(avoided, appointment_at=T0 + day)
        priced = deal(avoided, stage=Stage.PROPOSING)
        other = deal(kept, stage=Stage.PROPOSING)
        add(repo, avoided, kept, missed, priced, other)
        repo.commit(
            ChangeSet(
                events=[
                    event(d, "sit", "appointment_set", "appointment_sat", T0 + 2 * day)
                    for d in (priced, other)
                ]
            )
        )
        lost = {"stage": Stage.LOST, "closed_at": T0 + 3 * day}
        repo.commit(
            ChangeSet(
                updates=[
                    bump(missed, **lost, lost_reason=LostReason.NO_SHOW),
                    bump(priced, **lost, lost_reason=LostReason.PRICE),
                ]
            )
        )

        def listed(kind: Any) -> set[UUID]:
            return {row.record.id for row in repo.rep_list(kind, now=now)}

        assert (listed("not_sat"), listed("not_bought")) == ({missed.id}, {priced.id, other.id})
        current = repo.get(avoided.id)
        assert isinstance(current, Contact)
        repo.commit(ChangeSet(updates=[bump(current, type=ContactType.AVOID)]))
        assert (listed("not_sat"), listed("not_bought")) == (set(), {other.id})
        assert {row.record.id for row in repo.no_shows(now=now)} == {missed.id}

    def test_erased_people_leave_follow_ups_and_rep_lists_and_still_count(
        self, repo: Repository
    ) -> None:
        """DESIGN 13: an erased person (``erased_at`` set, personal fields gone) leaves
        ``due()`` and the rep lists, and every report reads the same as before."""
        day = timedelta(days=1)
        now = T0 + 60 * day
        raw, fits = lead(1), lead(2, status=LeadStatus.QUALIFIED)
        prospect, buyer = contact(3), contact(4)
        unsat = deal(buyer, appointment_at=T0 + day)
        sat = deal(buyer, stage=Stage.PROPOSING)
        stays, stays_too = lead(5), lead(6, status=LeadStatus.QUALIFIED)
        add(repo, raw, fits, prospect, buyer, unsat, sat, stays, stays_too)
        repo.commit(
            ChangeSet(
                events=[
                    event(fits, "qualify", "raw", "qualified", T0 + day),
                    event(sat, "sit", "appointment_set", "appointment_sat", T0 + 2 * day),
                ],
                touches=[touch(fits, "no_answer", T0 + day)],
            )
        )

        def candidates() -> set[UUID]:
            rows = repo.follow_up_candidates(lead_limit=2, contact_limit=8)
            return {row.subject_id for row in rows}

        def listed(kind: Any) -> set[UUID]:
            return {row.record.id for row in repo.rep_list(kind, now=now)}

        def reports() -> tuple[Any, ...]:
            return (
                counts(repo.step_counts(since=None, until=None, by="source")),
                repo.qualified_follow_up(since=None, until=None),
                repo.stage_times(since=None, until=None, by="owner"),
            )

        def no_shows() -> set[UUID]:
            return {row.record.id for row in repo.no_shows(now=now)}

        before = reports()
        assert no_shows() == {unsat.id}
        assert candidates() == {raw.id, fits.id, prospect.id, stays.id, stays_too.id}
        assert listed("never_booked") == {fits.id, stays_too.id}
        assert listed("not_sat") == {unsat.id}
        assert listed("not_bought") == {sat.id}
        # The erasure, as the funnel commits it by default (suppress=True: open deals
        # lost with reason "avoid", which keeps them off the rep lists even unerased).
        gone = {"first_name": None, "last_name": None, "email": None, "company": None}
        erased = {**gone, "erased_at": T0 + 30 * day}
        lost = {"stage": Stage.LOST, "lost_reason": LostReason.AVOID}
        repo.commit(
            ChangeSet(
                updates=[
                    bump(raw, **erased),
                    bump(fits, **erased),
                    bump(prospect, **erased),
                    bump(buyer, **erased),
                    bump(unsat, **lost),
                    bump(sat, **lost),
                ]
            )
        )
        assert candidates() == {stays.id, stays_too.id}
        assert listed("never_booked") == {stays_too.id}
        assert listed("not_sat") == set()
        assert listed("not_bought") == set()
        assert reports() == before
        # Nobody calls them back, but a report still counts the appointment that did
        # not sit, though its deal is now lost as "avoid".
        assert no_shows() == {unsat.id}

    def test_no_shows_count_each_appointment_moved_after_its_time(self, repo: Repository) -> None:
        """Whether an appointment sat is read from the deal's history: a ``reschedule``
        event records the time it moved the appointment from (``data["from"]``), and
        one moved once that time had passed is a no-show of its own period, whatever
        the deal did next (sat at the new time, lost, moved again). One moved before its
        time is nobody's no-show, and neither is a move from no time at all."""
        day = timedelta(days=1)
        chicago = timezone(timedelta(hours=-6))
        buyer = contact(1)
        # Booked for day 2, moved on day 5 (missed) to day 9 (in Chicago's offset),
        # moved again on day 8, before its time (not missed), to day 12; sat on day 12.
        rebooked = deal(buyer, stage=Stage.APPOINTMENT_SAT, appointment_at=T0 + 12 * day)
        # Booked for day 3, moved on day 6 (missed) to day 7, missed again: lost.
        twice = deal(
            buyer,
            stage=Stage.LOST,
            lost_reason="no_show",
            appointment_at=T0 + 7 * day,
            closed_at=T0 + 20 * day,
        )
        # Booked without a time on day 0, given one (day 40, still to come) on day 1.
        timeless = deal(buyer, appointment_at=T0 + 40 * day)
        nine_in_chicago = (T0 + 9 * day).astimezone(chicago)

        def moved(d: Opportunity, at: datetime, from_: datetime | None, to: datetime) -> Event:
            data = {"from": None if from_ is None else from_.isoformat(), "to": to.isoformat()}
            return event(d, "reschedule", "appointment_set", "appointment_set", at, data=data)

        repo.commit(
            ChangeSet(
                inserts=[buyer, rebooked, twice, timeless],
                events=[
                    *(
                        event(d, "set_appointment", None, "appointment_set", T0)
                        for d in (rebooked, twice, timeless)
                    ),
                    moved(rebooked, T0 + 5 * day, T0 + 2 * day, nine_in_chicago),
                    moved(rebooked, T0 + 8 * day, nine_in_chicago, T0 + 12 * day),
                    event(rebooked, "sit", "appointment_set", "appointment_sat", T0 + 12 * day),
                    moved(twice, T0 + 6 * day, T0 + 3 * day, T0 + 7 * day),
                    event(twice, "lose", "appointment_set", "lost", T0 + 20 * day),
                    moved(timeless, T0 + day, None, T0 + 40 * day),
                ],
            )
        )
        now = T0 + 30 * day
        shows = [(row.record.id, row.since) for row in repo.no_shows(now=now)]
        assert shows == [
            (twice.id, T0 + 7 * day),
            (twice.id, T0 + 3 * day),
            (rebooked.id, T0 + 2 * day),
        ], (
            "no_shows must give one row per appointment whose time came without its "
            "sitting: each reschedule's data['from'] before the event's at, and the "
            "current appointment of a deal that never sat"
        )
        assert all(since.utcoffset() == timedelta(0) for _, since in shows), shows
        # Each in the period its time fell in, and only once that time has come.
        week = repo.no_shows(now=now, entered_since=T0 + 2 * day, entered_until=T0 + 7 * day)
        assert [(row.record.id, row.since) for row in week] == [
            (twice.id, T0 + 3 * day),
            (rebooked.id, T0 + 2 * day),
        ]
        early = repo.no_shows(now=T0 + 3 * day)
        assert [(row.record.id, row.since) for row in early] == [(rebooked.id, T0 + 2 * day)]
        # The rep list is of the deals as they are now: the one lost as a no-show.
        listed = [(row.record.id, row.since) for row in repo.rep_list("not_sat", now=now)]
        assert listed == [(twice.id, T0 + 7 * day)]

    def test_rep_list_times_are_in_utc(self, repo: Repository) -> None:
        """A rep list is a read model: ``since`` is the instant in UTC, whatever offset
        the record's time was given in, as a SQL store reads it back (so a list prints
        and exports alike on every store)."""
        day = timedelta(days=1)
        chicago = timezone(timedelta(hours=-6))
        fits = lead(
            1,
            status=LeadStatus.QUALIFIED,
            status_at=(T0 + day).astimezone(chicago),
            created_at=T0.astimezone(chicago),
        )
        buyer = contact(2)
        unsat = deal(buyer, appointment_at=(T0 + 2 * day).astimezone(chicago))
        sat = deal(buyer, stage=Stage.APPOINTMENT_SAT)
        add(repo, fits, buyer)
        sitting = (T0 + 3 * day).astimezone(chicago)
        repo.commit(
            ChangeSet(
                inserts=[unsat, sat],
                events=[
                    event(unsat, "set_appointment", None, "appointment_set"),
                    event(sat, "set_appointment", None, "appointment_set"),
                    event(sat, "sit", "appointment_set", "appointment_sat", sitting),
                ],
            )
        )
        now = T0 + 10 * day
        for kind, expected in (
            ("never_booked", T0 + day),
            ("not_sat", T0 + 2 * day),
            ("not_bought", T0 + 3 * day),
        ):
            (row,) = repo.rep_list(kind, now=now)  # type: ignore[arg-type]
            assert row.since == expected
            assert row.since.utcoffset() == timedelta(0), (
                f"rep_list({kind!r}) gave since={row.since.isoformat()}: it must be the "
                "instant in UTC, whatever offset the record's time was given in"
            )
        (row,) = repo.no_shows(now=now)
        assert row.since == T0 + 2 * day
        assert row.since.utcoffset() == timedelta(0)

    # --- threads ---------------------------------------------------------------------

    def test_threads_share_one_repository(self, repo: Repository) -> None:
        contested = "someone@contested.example.com"
        outcomes: list[str] = []
        errors: list[BaseException] = []
        lock = threading.Lock()
        start = threading.Barrier(4)

        def work(worker: int) -> None:
            try:
                start.wait()
                for n in range(10):
                    add(repo, lead(f"{worker}x{n}"))
                try:
                    add(repo, lead(f"{worker}c", email=contested))
                    result = "won"
                except DuplicateError:
                    result = "duplicate"
                stored = repo.leads(limit=5)
                assert stored
                with lock:
                    outcomes.append(result)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert sorted(outcomes) == ["duplicate"] * 3 + ["won"]
        assert len(repo.leads()) == 41
        assert len(repo.find_keys([f"email:{contested}"])) == 1

    # --- partial data, suppressions, checks, positions (part two) ---------------------

    def test_a_person_without_email_or_phone_is_stored_changed_and_removed(
        self, repo: Repository
    ) -> None:
        # A badge scan: a name and a company, no identity key at all.
        one, two = lead("badge1", email=None), lead("badge2", email=None)
        add(repo, one, two)  # no key to clash on: both are stored
        assert repo.get_many([one.id, two.id]) == {one.id: one, two.id: two}
        avoided = bump(one, status=LeadStatus.AVOID, tags=frozenset({"x"}))
        repo.commit(ChangeSet(updates=[avoided], events=[event(one, "avoid", "raw", "avoid")]))
        assert repo.get(one.id) == avoided
        repo.commit(ChangeSet(deletes=[two]))
        assert [r.id for r in repo.leads()] == [one.id]
        c = contact("badge3", email=None, phone=None)
        add(repo, c, deal(c))
        assert repo.find_keys(["email:none", "phone:none"]) == {}

    def test_checks_refuse_a_change_decided_on_a_stale_read(self, repo: Repository) -> None:
        a = lead(1)
        add(repo, a)
        moved = bump(a, status=LeadStatus.AVOID)
        repo.commit(ChangeSet(updates=[moved]))
        late = touch(a, "no_answer")
        with pytest.raises(ConcurrencyError):
            repo.commit(
                ChangeSet(touches=[late], events=[event(a, "touch", "raw", "raw")], checks=[a])
            )
        assert repo.touches(a.id) == []  # nothing of the refused change
        assert [e.name for e in repo.history(a.id)] == ["add"]
        repo.commit(ChangeSet(touches=[late], checks=[moved]))
        assert repo.touches(a.id) == [late]
        assert repo.get(a.id) == moved  # a check changes nothing
        with pytest.raises(NotFoundError):
            repo.commit(ChangeSet(checks=[lead(2)]))

    def test_checks_and_touches_read_hold_for_contacts_and_deals(self, repo: Repository) -> None:
        """``checks`` and ``touches_read`` refuse a stale change whatever the kind of
        record read, not only a lead's: a touch decided on a prospect that was avoided
        meanwhile, a change decided on a deal that moved on, a call decided on a
        contact's touches when another was logged."""
        c, other = contact(1), contact(2)
        d = deal(other)
        add(repo, c, other, d)

        def refused(changes: ChangeSet, what: str) -> None:
            try:
                repo.commit(changes)
            except ConcurrencyError:
                return
            pytest.fail(f"a change decided on {what} was committed: expected ConcurrencyError")

        avoided = bump(c, type=ContactType.AVOID)
        repo.commit(ChangeSet(updates=[avoided]))
        late = touch(c, "no_answer")
        refused(ChangeSet(touches=[late], checks=[c]), "a contact changed since (checks)")
        assert repo.touches(c.id) == [], "nothing of the refused change is kept"
        sat = bump(d, stage=Stage.PROPOSING)
        repo.commit(ChangeSet(updates=[sat]))
        note = bump(other, notes="called about the deal")
        refused(ChangeSet(updates=[note], checks=[d]), "an opportunity changed since (checks)")
        assert repo.get(other.id) == other, "nothing of the refused change is kept"
        repo.commit(ChangeSet(updates=[note], checks=[sat, avoided]))  # as stored: fine
        first = touch(other, "no_answer")
        repo.commit(ChangeSet(touches=[first]))
        stale = ChangeSet(
            touches=[touch(other, "left_message")], checks=[note], touches_read={other.id: 0}
        )
        refused(stale, "a contact's touches, one logged since (touches_read)")
        assert repo.touches(other.id) == [first], "nothing of the refused change is kept"

    def test_touches_read_refuse_a_change_decided_on_other_touches(self, repo: Repository) -> None:
        a, b = lead(1), lead(2)
        add(repo, a, b)
        first = touch(a, "no_answer")
        repo.commit(ChangeSet(touches=[first], checks=[a], touches_read={a.id: 0}))
        late = touch(a, "left_message", channel="sms")
        for read in (0, 2):  # decided on fewer touches, or on more, than a has
            with pytest.raises(ConcurrencyError) as err:
                repo.commit(ChangeSet(touches=[late], checks=[a], touches_read={a.id: read}))
            assert (err.value.id, err.value.expected, err.value.found) == (a.id, read, 1)
        assert repo.touches(a.id) == [first]  # nothing of the refused change
        # Counted per subject: b has none, whatever a has.
        repo.commit(ChangeSet(touches=[late], checks=[a, b], touches_read={a.id: 1, b.id: 0}))
        assert repo.touches(a.id) == [first, late]
        assert repo.get(a.id) == a  # what was read is checked, not changed

    def test_events_read_refuse_a_change_decided_on_other_events(self, repo: Repository) -> None:
        a, b = lead(1), lead(2)
        add(repo, a, b)  # each has its add event
        late = event(a, "capture", "raw", "raw")
        repo.commit(ChangeSet(events=[late], checks=[a], events_read={a.id: 1}))
        scrub = late.model_copy(update={"reason": None})
        for read in (1, 3):  # decided on fewer events, or on more, than a has
            with pytest.raises(ConcurrencyError) as err:
                repo.commit(ChangeSet(rewrites=[scrub], checks=[a], events_read={a.id: read}))
            assert (err.value.id, err.value.expected, err.value.found) == (a.id, read, 2)
        # Counted before the change's own events, per subject.
        more = event(a, "update", "raw", "raw")
        repo.commit(ChangeSet(events=[more], checks=[a, b], events_read={a.id: 2, b.id: 1}))
        assert [e.name for e in repo.history(a.id)] == ["add", "capture", "update"]
        # A merge that read a's history, refused once b's moved onto it meanwhile.
        moved = repo.history(b.id)[0].id
        repo.commit(ChangeSet(moves=[Move((), (moved,), a.id)]))
        with pytest.raises(ConcurrencyError):
            repo.commit(ChangeSet(deletes=[a], events_read={a.id: 3}))
        assert repo.get(a.id) == a  # nothing of the refused change

    def test_deals_read_refuse_a_change_decided_on_other_deals(self, repo: Repository) -> None:
        a = lead(1)
        c = contact(1, lead_id=a.id)
        other = contact(2)
        add(repo, a, c, other)
        first = deal(c)
        add(repo, first)
        # Counted by contact_id for the contact, by lead_id for the lead.
        repo.commit(ChangeSet(checks=[c, a], deals_read={c.id: 1, a.id: 1, other.id: 0}))
        second = deal(c)
        add(repo, second)  # booked meanwhile: the change read one deal
        with pytest.raises(ConcurrencyError) as err:
            repo.commit(ChangeSet(deletes=[c], deals_read={c.id: 1}))
        assert (err.value.id, err.value.expected, err.value.found) == (c.id, 1, 2)
        assert repo.get(c.id) == c
        with pytest.raises(ConcurrencyError):
            repo.commit(ChangeSet(checks=[a], deals_read={a.id: 1}))
        # Re-pointed deals count where they point now.
        moved = bump(second, contact_id=other.id, lead_id=None)
        repo.commit(ChangeSet(updates=[moved], deals_read={c.id: 2, other.id: 0}))
        repo.commit(ChangeSet(checks=[c], deals_read={c.id: 1, other.id: 1, a.id: 1}))

    def test_unsuppressed_keys_are_refused_once_suppressed(self, repo: Repository) -> None:
        gone, a, b = lead(1), lead(2), lead(3)
        add(repo, gone)

        def digest(key: str) -> str:
            return hashlib.sha256(key.encode()).hexdigest()

        key = identity_keys(a)[0]
        # Nothing suppressed: the keys are stored.
        add_a = ChangeSet(inserts=[a], unsuppressed=list(identity_keys(a)), digest=digest)
        repo.commit(add_a)
        repo.commit(ChangeSet(suppress=[Suppression(digest(identity_keys(b)[0]), gone.id)]))
        # Another key suppressed: the keys are stored.
        again = lead(4)
        repo.commit(
            ChangeSet(inserts=[again], unsuppressed=[identity_keys(again)[0]], digest=digest)
        )
        with pytest.raises(AvoidListedError) as err:
            repo.commit(
                ChangeSet(
                    inserts=[b],
                    events=[event(b, "add", None, "raw")],
                    unsuppressed=list(identity_keys(b)),
                    digest=digest,
                )
            )
        assert (err.value.existing_id, err.value.key) == (gone.id, identity_keys(b)[0])
        assert repo.get_many([b.id]) == {}  # nothing of the refused change
        assert repo.find_keys(identity_keys(b)) == {}
        # An update giving a stored person the key, too.
        edited = bump(a, other_emails=frozenset({str(b.email)}))
        with pytest.raises(AvoidListedError):
            repo.commit(
                ChangeSet(updates=[edited], unsuppressed=[identity_keys(b)[0]], digest=digest)
            )
        assert repo.get(a.id) == a
        assert repo.find_keys([key]) == {key: a.id}

    def test_suppressions_are_kept_and_found_by_digest(self, repo: Repository) -> None:
        a = lead(1)
        add(repo, a)
        first, second = "a" * 64, "b" * 64
        # any_suppressed() may say True when unsure (the port's default), never False
        # while a suppression is stored: the import skips hashing on its word.
        before = repo.any_suppressed()
        assert isinstance(before, bool)
        repo.commit(ChangeSet(suppress=[Suppression(first, a.id)]))
        assert repo.any_suppressed() is True
        repo.commit(ChangeSet(suppress=[Suppression(first, uuid4()), Suppression(second, a.id)]))
        assert repo.suppressed([first, second, "c" * 64]) == {first: a.id, second: a.id}
        # All or nothing: a refused change leaves no suppression behind.
        with pytest.raises(ConcurrencyError):
            repo.commit(ChangeSet(suppress=[Suppression("d" * 64, a.id)], checks=[bump(a)]))
        assert repo.suppressed(["d" * 64]) == {}

    def test_the_suppression_secret_is_made_once(self, repo: Repository) -> None:
        secret = repo.suppression_secret()
        assert isinstance(secret, bytes)
        assert len(secret) >= 32
        assert repo.suppression_secret() == secret
        a = lead(1)
        add(repo, a)
        repo.commit(ChangeSet(suppress=[Suppression("f" * 64, a.id)]))
        assert repo.suppression_secret() == secret, (
            "the suppression secret changed once a suppression was stored: the digests "
            "stored with the old one no longer match"
        )
        again = self.reopen_repository(repo)
        if again is not None:
            try:
                assert again.suppression_secret() == secret
            finally:
                again.close()

    def test_event_positions_grow_in_commit_order(self, repo: Repository) -> None:
        a, b = lead(1), lead(2)
        later = T0 + timedelta(days=1)
        assert repo.last_position() == 0
        repo.commit(ChangeSet(inserts=[a], events=[event(a, "add", None, "raw", later)]))
        repo.commit(ChangeSet(inserts=[b], events=[event(b, "add", None, "raw", T0)]))
        repo.commit(
            ChangeSet(events=[event(a, "touch", "raw", "raw", T0), event(b, "touch", "raw", "raw")])
        )
        feed = repo.events()
        assert [(e.subject_id, e.name) for e in feed] == [
            (a.id, "add"),
            (b.id, "add"),
            (a.id, "touch"),
            (b.id, "touch"),
        ]
        positions = [e.position or 0 for e in feed]
        assert all(p > 0 for p in positions), f"every stored event has a position: {positions}"
        assert positions == sorted(set(positions)), (
            f"positions {positions} must strictly grow in commit order across the whole "
            "store (not restart per commit or per subject)"
        )
        assert [e.id for e in repo.events(after=positions[1])] == [feed[2].id, feed[3].id]
        assert [e.id for e in repo.events(after=0, limit=2)] == [feed[0].id, feed[1].id]
        assert repo.events(after=positions[-1]) == []
        assert repo.last_position() == positions[-1]  # where a consumer from now starts
        # History is by time, then by position: the same events, each with its position.
        assert [e.position for e in repo.history(a.id)] == [positions[2], positions[0]]

    def test_the_feed_follows_events_moved_by_a_merge(self, repo: Repository) -> None:
        keep, other = lead(1), lead(2)
        add(repo, keep, other)
        moved = tuple(e.id for e in repo.history(other.id))
        repo.commit(ChangeSet(deletes=[other], moves=[Move((), moved, keep.id)]))
        assert [e.subject_id for e in repo.events()] == [keep.id, keep.id]

    def test_any_date_from_year_1_to_9999_is_stored_and_read(self, repo: Repository) -> None:
        first = datetime(1, 1, 1, tzinfo=UTC)
        last = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
        old = lead(1, created_at=first, updated_at=first, status_at=first)
        new = lead(2, created_at=last, updated_at=last, status_at=last)
        repo.commit(
            ChangeSet(
                inserts=[old, new],
                events=[
                    event(old, "add", None, "raw", first),
                    event(new, "add", None, "raw", last),
                ],
                touches=[touch(old, "no_answer", first), touch(new, "no_answer", last)],
            )
        )
        assert_kept(repo.get_many([old.id, new.id]), {old.id: old, new.id: new})
        assert [e.at for e in repo.history(old.id)] == [first]
        assert [t.at for t in repo.touches(new.id)] == [last]
        candidates = repo.follow_up_candidates(lead_limit=2, contact_limit=8)
        assert {c.subject_id for c in candidates} == {old.id, new.id}
        assert counts(repo.step_counts(since=None, until=None)) == {("raw", None): 2}
        assert [r.id for r in repo.leads(created_since=last)] == [new.id]

    def test_rewrites_replace_touches_events_and_merge_logs_in_place(
        self, repo: Repository
    ) -> None:
        keep, other = lead(1), lead(2)
        add(repo, keep, other)
        noted = touch(keep, "connected").model_copy(update={"note": "spoke to Pat1"})
        said = event(keep, "touch", "raw", "raw", reason="Pat1 asked for prices")
        repo.commit(ChangeSet(touches=[noted], events=[said]))
        (moved_in,) = repo.history(other.id)
        moved = (moved_in.id,)
        log = MergeLog(uuid4(), keep.id, T0, keep, other, 2, (), moved, ())
        repo.commit(
            ChangeSet(
                updates=[bump(keep)],
                deletes=[other],
                moves=[Move((), moved, keep.id)],
                add_merge=log,
            )
        )
        position = repo.history(keep.id)[-1].position
        feed = {e.id: e.position for e in repo.events()}
        last = repo.last_position()
        scrubbed = MergeLog(
            log.id, keep.id, T0, keep.model_copy(update={"email": None}), other, 2, (), moved
        )
        repo.commit(
            ChangeSet(
                rewrites=[
                    noted.model_copy(update={"note": None}),
                    said.model_copy(update={"reason": None}),
                    # As read before the merge: the store keeps the subject it has now.
                    moved_in.model_copy(update={"data": {"scrubbed": True}}),
                ],
                rewrite_merges=[scrubbed],
            )
        )
        assert [t.note for t in repo.touches(keep.id)] == [None]
        history = repo.history(keep.id)
        assert [e.reason for e in history if e.id == said.id] == [None]
        assert {e.subject_id for e in history} == {keep.id}  # subjects and order kept
        assert [e.position for e in history][-1] == position
        assert {e.id: e.position for e in repo.events()} == feed, (
            "a rewrite (an erasure's scrub) moved events from their positions in the feed"
        )
        assert repo.events(after=last) == [], (
            "a rewrite put events back in the feed after its last position: a consumer "
            "would handle them again"
        )
        assert [e for e in history if e.id == moved_in.id] == [
            moved_in.model_copy(update={"subject_id": keep.id, "data": {"scrubbed": True}})
        ]
        assert repo.history(other.id) == []
        assert [m.keep_before.email for m in repo.merges_of([keep.id])] == [None]
        assert [m.id for m in repo.merges_of([other.id])] == [log.id]
        assert repo.merges_of([uuid4()]) == []
        with pytest.raises(NotFoundError):
            repo.commit(ChangeSet(rewrites=[touch(keep, "connected")]))
        repo.compact()  # safe to call at any time
        assert repo.get(keep.id) == bump(keep)

    def test_the_applications_own_models_and_fields(self, repo: Repository) -> None:
        """``use_models``: records come back as the application's subclasses, their own
        fields kept, filtered on with ``where``, and carried by merge logs."""
        repo.use_models(lead=_CustomLead, contact=_CustomContact, opportunity=_CustomDeal)
        a = _CustomLead.model_validate({**lead(1).model_dump(), "endpoints": 40, "vip": True})
        b = _CustomLead.model_validate({**lead(2).model_dump(), "endpoints": 7})
        c = _CustomContact.model_validate({**contact(3).model_dump(), "endpoints": 12})
        d = _CustomDeal.model_validate({**deal(c).model_dump(), "po_number": "PO-1"})
        add(repo, a, b, c, d)
        assert repo.get(a.id) == a
        assert type(repo.get(c.id)) is _CustomContact
        assert repo.get_many([d.id]) == {d.id: d}
        assert [r.id for r in repo.leads(where={"endpoints": 40})] == [a.id]
        assert [r.id for r in repo.leads(where={"vip": True})] == [a.id]
        assert [r.id for r in repo.leads(where={"vip": None})] == [b.id]
        assert [r.id for r in repo.leads(where={"source": "webinar", "endpoints": 7})] == [b.id]
        assert [r.id for r in repo.contacts(where={"endpoints": 12})] == [c.id]
        assert [r.id for r in repo.opportunities(where={"po_number": "PO-1"})] == [d.id]
        assert repo.count("lead", where={"endpoints": 40}) == 1
        edited = bump(a, endpoints=41)
        repo.commit(ChangeSet(updates=[edited]))
        assert repo.get(a.id) == edited
        assert repo.leads(where={"endpoints": 40}) == []
        log = MergeLog(uuid4(), a.id, T0, edited, b, edited.version + 1)
        repo.commit(ChangeSet(updates=[bump(edited)], deletes=[b], add_merge=log))
        last = repo.last_merge(a.id)
        assert last is not None
        assert isinstance(last.other, _CustomLead)
        assert last.other.endpoints == 7
        with pytest.raises(InvalidArgumentError) as unknown:
            repo.leads(where={"colour": "red"})
        assert "colour" in str(unknown.value)  # it names the field it does not know

    def test_values_not_every_store_keeps_are_refused_and_nothing_is_stored(
        self, repo: Repository
    ) -> None:
        """A value the application's model accepts but not every database keeps (a NUL
        character in text, an integer beyond signed 64 bits, an infinite or NaN float),
        inserted or updated, is refused with ``StorageError`` (``of_value``: an import
        rejects that row alone), naming the field, and nothing of the change is stored.
        ``Repository.commit`` checks this before it calls ``_commit``: an adapter that
        overrides ``commit`` must keep calling it."""
        repo.use_models(lead=_OddLead)
        kept = _OddLead.model_validate({**lead(1).model_dump(), "label": "fine", "score": 1})
        add(repo, kept)
        for values in _UNPORTABLE:
            new = _OddLead.model_validate({**lead(2).model_dump(), **values})
            changes = ChangeSet(
                inserts=[new],
                updates=[bump(kept, notes="fine")],
                touches=[touch(kept, "no_answer")],
                events=[event(new, "add", None, "raw"), event(kept, "update", "raw", "raw")],
            )
            with pytest.raises(StorageError) as refused:
                repo.commit(changes)
            assert refused.value.of_value, values
            assert next(iter(values)) in str(refused.value)  # names the field
            self.assert_untouched(repo, kept, new)
            with pytest.raises(StorageError) as refused:
                repo.commit(ChangeSet(updates=[bump(kept, **values)]))
            assert refused.value.of_value, values
            assert repo.get(kept.id) == kept
        edge = {"score": 2**63 - 1, "ratio": -1e308, "meta": {"low": -(2**63)}}
        repo.commit(ChangeSet(updates=[bump(kept, **edge)]))  # the limits themselves store
        assert repo.get(kept.id) == bump(kept, **edge)

    def test_records_stored_before_the_models_are_registered_read_as_them(
        self, repo: Repository
    ) -> None:
        """``use_models`` on a store that holds records: they come back as the new
        classes (their own fields at their defaults), and update as them."""
        plain, person = lead(1), contact(2)
        d = deal(person)
        add(repo, plain, person, d)
        repo.use_models(lead=_CustomLead, contact=_CustomContact, opportunity=_CustomDeal)
        got = repo.get(plain.id)
        assert type(got) is _CustomLead, (
            f"after use_models(lead=_CustomLead), get() returned a {type(got).__name__}: "
            "reads must return the registered classes (repository.models); an adapter "
            "that keeps objects converts the records it holds in _use_models"
        )
        assert got == _CustomLead.model_validate(plain.model_dump())
        assert type(repo.get(person.id)) is _CustomContact
        assert type(repo.get_many([d.id])[d.id]) is _CustomDeal
        assert [type(r) for r in repo.leads()] == [_CustomLead]
        assert [r.id for r in repo.leads(where={"endpoints": None})] == [plain.id]
        edited = bump(got, endpoints=5)
        repo.commit(ChangeSet(updates=[edited]))
        assert repo.get(plain.id) == edited

    def test_one_set_of_models_per_store(self, repo: Repository) -> None:
        """A kind read as the application's class is not retyped by another class
        (every reader of the store would start reading it so) unless asked to."""
        repo.use_models(lead=_CustomLead)
        repo.use_models(lead=_CustomLead)  # the same class again: nothing changes
        repo.use_models(contact=_CustomContact)  # a kind still read as Contact
        with pytest.raises(ConfigError) as refused:
            repo.use_models(lead=_ListLead, opportunity=_CustomDeal)
        assert "_CustomLead" in str(refused.value)
        assert "_ListLead" in str(refused.value)
        with pytest.raises(ConfigError):
            repo.use_models(lead=Lead)  # back to the base class is a retyping too
        assert dict(repo.models) == {
            "lead": _CustomLead,
            "contact": _CustomContact,
            "opportunity": Opportunity,  # nothing of a refused call is kept
        }
        repo.use_models(lead=_ListLead, replace=True)
        assert repo.models["lead"] is _ListLead

    def test_what_a_caller_holds_shares_nothing_with_the_store(self, repo: Repository) -> None:
        """Records, events and merge logs given to a commit or read are the caller's:
        changing a list, a dict or an event's data in place changes nothing stored (a
        store that serialises shares nothing; one that keeps objects copies what can
        change)."""
        repo.use_models(lead=_ListLead)
        given = _ListLead.model_validate(
            {**lead(1).model_dump(), "systems": ["x"], "meta": {"a": 1}}
        )
        other = _ListLead.model_validate({**lead(2).model_dump(), "systems": ["y"]})
        data = {"fields": ["email"], "n": {"a": 1}}
        said = event(given, "add", None, "raw", data={"fields": ["email"], "n": {"a": 1}})
        before, other_before = given.model_copy(deep=True), other.model_copy(deep=True)
        returned = repo.commit(ChangeSet(inserts=[given, other], events=[said]))
        _scribble(given)
        _scribble_on(said)
        _scribble_on(returned[0])
        for got in (repo.get(given.id), repo.get_many([given.id])[given.id], repo.leads()[0]):
            assert got == before
            _scribble(got)
        assert repo.get(given.id) == before
        for got_event in (repo.history(given.id)[0], repo.events()[0]):
            assert got_event.data == data
            _scribble_on(got_event)
        assert repo.history(given.id)[0].data == data
        assert repo.events()[0].data == data

        edited = bump(before.model_copy(deep=True), systems=["x", "z"])
        repo.commit(ChangeSet(updates=[edited]))
        edited_before = edited.model_copy(deep=True)
        _scribble(edited)
        kept = repo.get(given.id)
        assert isinstance(kept, _ListLead)
        assert (kept.systems, kept.meta) == (["x", "z"], {"a": 1})

        scrub: dict[str, Any] = {"fields": ["scrubbed"], "n": {"a": 1}}
        repo.commit(ChangeSet(rewrites=[said.model_copy(update={"data": scrub})]))
        scrub["fields"].append("CHANGED")
        assert repo.history(given.id)[0].data == {"fields": ["scrubbed"], "n": {"a": 1}}

        log = MergeLog(uuid4(), given.id, T0, kept, other, kept.version + 1)
        repo.commit(ChangeSet(updates=[bump(kept)], deletes=[other], add_merge=log))
        _scribble(log.keep_before)
        _scribble(log.other)
        for got_log in (repo.last_merge(given.id), repo.merges_of([given.id])[0]):
            assert got_log is not None
            assert (got_log.keep_before, got_log.other) == (edited_before, other_before)
            _scribble(got_log.keep_before)
            _scribble(got_log.other)
        last = repo.last_merge(given.id)
        assert last is not None
        assert (last.keep_before, last.other) == (edited_before, other_before)

    def test_a_transaction_keeps_all_its_commits_or_none(self, repo: Repository) -> None:
        a, b, c = lead(1), lead(2), lead(3)
        heard: list[list[Event]] = []
        repo.subscribe(heard.append)

        def fail_half_way() -> None:
            with repo.transaction():
                add(repo, a)
                repo.commit(ChangeSet(updates=[bump(a, notes="inside")]))
                inside = repo.get(a.id)
                assert isinstance(inside, Lead)
                assert inside.notes == "inside"  # the transaction reads its writes
                raise RuntimeError("the application failed")

        with pytest.raises(RuntimeError):
            fail_half_way()
        assert repo.get_many([a.id]) == {}
        assert repo.find_keys([f"email:{a.email}"]) == {}
        assert repo.events() == []
        assert heard == []  # nothing rolled back is ever reported
        with repo.transaction():
            add(repo, a)
            with pytest.raises(DuplicateError):  # a refused commit undoes only itself
                add(repo, lead(9, email=a.email))

            def fail_inner() -> None:
                with repo.transaction():  # a savepoint
                    add(repo, b)
                    raise RuntimeError("inner")

            with pytest.raises(RuntimeError):
                fail_inner()
            add(repo, c)
            assert heard == []  # told after the outermost commit
        assert set(repo.get_many([a.id, b.id, c.id])) == {a.id, c.id}
        assert [[e.subject_id for e in batch] for batch in heard] == [[a.id, c.id]]
        assert [e.subject_id for e in repo.events()] == [a.id, c.id]

    def test_lists_are_in_created_order_and_page_after_a_cursor(self, repo: Repository) -> None:
        hours = [5, 1, 3, 1, 4, 2, 1]
        made = [
            lead(
                n,
                created_at=T0 + timedelta(hours=h),
                source="a" if n % 2 else "b",
                tags={"vip"} if n % 3 else set(),
            )
            for n, h in enumerate(hours)
        ]
        assert repo.oldest_created_at("lead") is None
        add(repo, *made)  # stored out of creation order on purpose
        order = sorted(made, key=lambda r: (r.created_at, r.id))
        assert [r.id for r in repo.leads()] == [r.id for r in order]
        assert repo.oldest_created_at("lead") == order[0].created_at
        assert repo.oldest_created_at("opportunity") is None
        pages: list[list[UUID]] = []
        cursor: tuple[datetime, UUID] | None = None
        # Bounded: an adapter whose page starts at the cursor (>= for >) pages forever.
        for _ in range(len(made) + 1):
            page = repo.leads(after=cursor, limit=3)
            if not page:
                break
            if cursor is not None:
                first = (page[0].created_at, page[0].id)
                assert first > cursor, (
                    f"leads(after={cursor}) returned the cursor's own record (or one before "
                    f"it), {first}, again: a page after a cursor starts after that record"
                )
            pages.append([r.id for r in page])
            cursor = (page[-1].created_at, page[-1].id)
        else:
            pytest.fail(f"paging through {len(made)} leads never ended: {pages}")
        assert pages == [[r.id for r in order[i : i + 3]] for i in range(0, 7, 3)]
        assert [r.id for r in repo.leads(source="a", after=(order[2].created_at, order[2].id))] == [
            r.id for r in order[3:] if r.source == "a"
        ]
        # A page of people with a tag keeps the list order too, ties on created_at
        # included, from any cursor.
        vip = [r for r in order if "vip" in r.tags]
        for i in range(len(order)):
            after = (order[i].created_at, order[i].id)
            assert [r.id for r in repo.leads(tag="vip", after=after, limit=2)] == [
                r.id for r in vip if (r.created_at, r.id) > after
            ][:2], f"leads(tag='vip', after={after}, limit=2)"
        assert [r.id for r in repo.leads(tag="vip", source="a")] == [
            r.id for r in vip if r.source == "a"
        ]
        assert repo.count("lead", tag="vip") == len(vip)
        # A limit beyond any list (Python's ints have no bound) is no limit, on every
        # store: not a driver's overflow.
        for huge in (2**31, 2**63, 2**70):
            assert [r.id for r in repo.leads(limit=huge)] == [r.id for r in order]
            assert [r.id for r in repo.leads(tag="vip", limit=huge)] == [r.id for r in vip]
            assert len(repo.events(limit=huge)) == len(repo.events())
        # A cursor need not be stored: the page starts after where it would be.
        gap = (T0 + timedelta(hours=2, minutes=30), uuid4())
        assert [r.id for r in repo.leads(after=gap)] == [
            r.id for r in order if r.created_at > gap[0]
        ]
        assert repo.count("lead") == 7
        assert repo.count("lead", source="a") == 3
        assert repo.count("lead", created_since=T0 + timedelta(hours=3)) == 3
        c = contact(1)
        add(repo, c, deal(c), deal(c, stage=Stage.WON))
        assert repo.oldest_created_at("contact") == c.created_at
        assert repo.oldest_created_at("opportunity") == T0
        assert repo.count("contact") == 1
        assert repo.count("opportunity", contact_id=c.id) == 2
        assert repo.count("opportunity", stage=Stage.WON) == 1

    # --- durability ------------------------------------------------------------------

    def test_reopen_keeps_everything(self, repo: Repository) -> None:
        """Everything committed is there when the store is opened again: records and
        their tags and keys (merged-away ones too), touches, history and the event
        feed, merge logs (``unmerge`` needs them), suppressions (an erased person
        stays avoided), and what the reports count."""
        a, c, avoided = lead(1, tags={"vip"}), contact(2), lead(3, status=LeadStatus.AVOID)
        d = deal(c, stage=Stage.PROPOSING)
        keep, other = lead(4), lead(5)
        add(repo, a, c, d, avoided, keep, other)
        t = _every_field_touch(a)
        kept = bump(a, notes="kept")
        repo.commit(ChangeSet(touches=[t], updates=[kept], events=[_every_field_event(a)]))
        moved = tuple(e.id for e in repo.history(other.id))
        merged = bump(keep, other_emails=frozenset({other.email}))
        log = MergeLog(uuid4(), keep.id, T0, keep, other, merged.version, (), moved, (d,))
        repo.commit(
            ChangeSet(
                updates=[merged],
                deletes=[other],
                moves=[Move((), moved, keep.id)],
                add_merge=log,
            )
        )
        digest = "e" * 64
        repo.commit(ChangeSet(suppress=[Suppression(digest, avoided.id)]))
        feed = repo.events()
        histories = {i: repo.history(i) for i in (a.id, keep.id)}
        keys = [f"email:{a.email}", f"email:{other.email}", f"email:{avoided.email}"]
        reports = (
            counts(repo.step_counts(since=None, until=None, by="source")),
            {r.subject_id for r in repo.follow_up_candidates(lead_limit=2, contact_limit=8)},
        )
        again = self.reopen_repository(repo)
        if again is None:
            pytest.skip("this adapter keeps nothing across a reopen")
        try:
            assert_kept(again.get(a.id), kept)
            assert_kept(again.get_many([c.id, d.id, keep.id]), {c.id: c, d.id: d, keep.id: merged})
            assert again.get_many([other.id]) == {}
            assert_kept(again.touches(a.id), [t])
            assert_kept({i: again.history(i) for i in histories}, histories)
            assert [e.name for e in histories[keep.id]] == ["add", "add"]  # one moved in
            assert_kept(again.events(), feed)
            assert again.find_keys(keys) == {keys[0]: a.id, keys[1]: keep.id, keys[2]: avoided.id}
            with pytest.raises(AvoidListedError):
                add(again, lead(6, email=avoided.email))
            assert [r.id for r in again.leads(tag="vip")] == [a.id]
            assert again.last_merge(keep.id) == log  # unmerge can still undo the merge
            assert again.merges_of([other.id]) == [log]
            assert again.suppressed([digest]) == {digest: avoided.id}
            assert again.any_suppressed() is True
            assert (
                counts(again.step_counts(since=None, until=None, by="source")),
                {r.subject_id for r in again.follow_up_candidates(lead_limit=2, contact_limit=8)},
            ) == reports
        finally:
            again.close()

    def test_positions_go_on_growing_after_reopen(self, repo: Repository) -> None:
        """A consumer of the feed keeps the last position it handled: after a reopen, new
        events take positions after every earlier one, so ``events(after=last)`` still
        finds them (DESIGN 12, 14)."""
        a = lead(1)
        add(repo, a)
        repo.commit(
            ChangeSet(events=[event(a, "touch", "raw", "raw"), event(a, "update", "raw", "raw")])
        )
        last = max(e.position for e in repo.events())
        again = self.reopen_repository(repo)
        if again is None:
            pytest.skip("this adapter keeps nothing across a reopen")
        try:
            b = lead(2)
            stored = again.commit(
                ChangeSet(
                    inserts=[b],
                    events=[event(b, "add", None, "raw"), event(a, "touch", "raw", "raw")],
                )
            )
            assert all(e.position > last for e in stored), (last, [e.position for e in stored])
            assert again.events(after=last) == stored
            assert [e.position for e in again.history(a.id)][-1] == stored[-1].position
        finally:
            again.close()

    # --- property: random commits against a model ------------------------------------

    @settings(
        max_examples=60,
        deadline=None,
        # One repository serves every example (each works in its own e-mail space), and
        # every adapter's subclass runs this same method.
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.differing_executors,
        ],
    )
    @given(data=st.data())
    def test_random_commits_match_a_simple_model(self, repo: Repository, data: Any) -> None:
        # Each example has its own e-mail domain, so one repository serves them all.
        space = uuid4().hex[:12]
        model = _Model(space)
        ops = data.draw(st.lists(_operation(), min_size=1, max_size=12), label="operations")
        for op in ops:
            changes, _records = model.change_set(op)
            expected = model.outcome(changes)
            try:
                repo.commit(changes)
                got: tuple[type[BaseException], UUID | None] | None = None
            except DuplicateError as exc:
                got = (type(exc), exc.existing_id)
            except (ConcurrencyError, NotFoundError) as exc:
                got = (type(exc), None)
            assert got == expected, (op, got, expected)
            if expected is None:
                model.apply(changes)
        stored = repo.get_many(model.ever)
        assert stored == model.records
        assert repo.find_keys(model.all_keys()) == model.keys
        mine = [r.id for r in repo.leads() if r.id in model.ever]
        assert mine == [r for r in model.order if r in model.records]

    @settings(
        max_examples=20,
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.differing_executors,
        ],
    )
    @given(people=st.lists(st.one_of(leads(), contacts()), min_size=1, max_size=6))
    def test_drawn_people_come_back_as_they_went_in(
        self, repo: Repository, people: list[Lead | Contact]
    ) -> None:
        """Whatever ``leadfunnel.testing.leads()`` and ``contacts()`` draw is kept as
        given: people without e-mail or phone, erased or merged before, instants from
        year 1 to 9999 in any offset, long text in other scripts, notes on several
        lines. Their keys are claimed, and their steps counted by month."""
        # Ids of their own: drawn ids come from hypothesis' choices too (they replay), so
        # two examples may draw one id, and the history an earlier one left under it
        # (a delete keeps it) would be read as this one's.
        stored = [person.model_copy(update={"version": 1, "id": uuid4()}) for person in people]
        try:
            self._drawn_people_come_back(repo, stored)
        finally:
            # One repository serves every example, and drawn people are distinct within
            # an example only (their serials come from hypothesis' choices): remove them,
            # which frees their e-mails and phones for the next example.
            left = repo.get_many([p.id for p in stored])
            if left:
                repo.commit(ChangeSet(deletes=list(left.values())))

    @staticmethod
    def _drawn_people_come_back(repo: Repository, stored: list[Lead | Contact]) -> None:
        repo.commit(
            ChangeSet(
                inserts=list(stored),
                events=[event(p, "add", None, state_of(p), p.created_at) for p in stored],
            )
        )
        assert_kept(repo.get_many([p.id for p in stored]), {p.id: p for p in stored})
        for person in stored:
            keys = identity_keys(person)
            assert repo.find_keys(keys) == dict.fromkeys(keys, person.id)
            assert [e.at for e in repo.history(person.id)] == [person.created_at]
        by_month = counts(repo.step_counts(since=None, until=None, by="month"))
        for person in stored:
            if isinstance(person, Lead) and person.status is LeadStatus.RAW:
                utc = person.created_at.astimezone(UTC)
                month = f"{utc.year:04d}-{utc.month:02d}"  # strftime drops the zeros
                assert by_month.get(("raw", month), 0) >= 1, (month, by_month)

    # --- bulk work (issue 19) ----------------------------------------------------------

    def test_touched_names_the_subjects_with_a_touch_on_the_channel(self, repo: Repository) -> None:
        called, mailed, both, untouched = lead(1), lead(2), lead(3), lead(4)
        add(repo, called, mailed, both, untouched)
        repo.commit(
            ChangeSet(
                touches=[
                    touch(called, "no_answer"),
                    touch(mailed, "replied", channel="email"),
                    touch(both, "bounced", channel="email"),
                    touch(both, "connected", T0 + timedelta(hours=1)),
                ]
            )
        )
        ids = [called.id, mailed.id, both.id, untouched.id, uuid4()]
        assert repo.touched(ids, channel=Channel.CALL) == {called.id, both.id}
        assert repo.touched(ids, channel=Channel.EMAIL) == {mailed.id, both.id}
        assert repo.touched(ids, channel=Channel.SMS) == set()
        assert repo.touched([], channel=Channel.CALL) == set()
        counts = repo.touch_counts([*ids, called.id])
        assert counts == {called.id: 1, mailed.id: 1, both.id: 2, untouched.id: 0, ids[-1]: 0}
        assert repo.touch_counts([]) == {}

    def test_a_page_decided_on_touch_counts_is_refused_once_one_is_logged(
        self, repo: Repository
    ) -> None:
        """``touches_read`` of many subjects at once (a page of ``qualify_all`` left
        waiting for a call): a touch logged on one of them since refuses the commit."""
        people = [lead(n) for n in range(7)]
        add(repo, *people)
        read = repo.touch_counts(p.id for p in people)
        repo.commit(ChangeSet(touches=[touch(people[5], "no_answer")]))
        stale = ChangeSet(checks=list(people), touches_read=read)
        with pytest.raises(ConcurrencyError):
            repo.commit(stale)
        fresh = ChangeSet(checks=list(people), touches_read=repo.touch_counts(p.id for p in people))
        repo.commit(fresh)

    def test_batch_reads_answer_more_ids_than_one_query_takes(self, repo: Repository) -> None:
        """1,203 ids, keys or digests in one call: more than a database takes as
        parameters of one statement (SQLite's old limit is 999), so an adapter that
        reads in chunks must not lose the records of any chunk."""
        people = [lead(n) for n in range(1_203)]
        add(repo, *people)
        digests = [f"{n:064x}" for n in range(1_203)]
        repo.commit(
            ChangeSet(
                touches=[touch(p, "no_answer") for p in people[::100]],
                suppress=[
                    Suppression(d, p.id) for d, p in zip(digests[::2], people[::2], strict=True)
                ],
            )
        )
        ids = [p.id for p in people]
        found = repo.touched(ids, channel=Channel.CALL)
        assert found == {p.id for p in people[::100]}
        assert repo.get_many(ids) == {p.id: p for p in people}
        keys = [f"email:{p.email}" for p in people]
        assert repo.find_keys(keys) == {k: p.id for k, p in zip(keys, people, strict=True)}
        expected = {d: p.id for d, p in zip(digests[::2], people[::2], strict=True)}
        assert repo.suppressed(digests) == expected

    def test_lead_batches_yield_each_lead_of_a_status_once(self, repo: Repository) -> None:
        raw = [lead(n, created_at=T0 + timedelta(minutes=n % 7)) for n in range(23)]
        others = [lead(f"s{n}", status=LeadStatus.SUSPECT) for n in range(5)]
        add(repo, *raw, *others)
        seen: list[UUID] = []
        moved: set[UUID] = set()
        for batch in _bounded(repo.lead_batches(status=LeadStatus.RAW, size=5), len(raw)):
            assert 1 <= len(batch) <= 5
            assert all(r.status is LeadStatus.RAW for r in batch)
            seen.extend(r.id for r in batch)
            # The caller moves some of the batch on before asking for the next one.
            repo.commit(
                ChangeSet(updates=[bump(r, status=LeadStatus.QUALIFIED) for r in batch[::2]])
            )
            moved.update(r.id for r in batch[::2])
        assert sorted(seen) == sorted(r.id for r in raw)
        assert len(seen) == len(set(seen))
        left = [
            r.id
            for b in _bounded(repo.lead_batches(status=LeadStatus.RAW, size=50), len(raw))
            for r in b
        ]
        assert sorted(left) == sorted(r.id for r in raw if r.id not in moved)
        suspects = [
            r.id
            for b in _bounded(repo.lead_batches(status=LeadStatus.SUSPECT, size=2), len(others))
            for r in b
        ]
        assert sorted(suspects) == sorted(r.id for r in others)
        assert list(_bounded(repo.lead_batches(status=LeadStatus.AVOID, size=5), 1)) == []

    def test_won_batches_hold_the_deals_won_in_the_period(self, repo: Repository) -> None:
        """A report's won revenue: deals at ``won`` with ``closed_at`` in ``[since,
        until)``, each once, in batches of at most ``size``; lost and open deals, and a
        won deal without ``closed_at``, in no period. Instants in other offsets compare
        as instants."""
        day = timedelta(days=1)
        tokyo = timezone(timedelta(hours=9))
        buyer = contact(1)
        won = [
            deal(buyer, stage=Stage.WON, closed_at=(T0 + n * day).astimezone(tokyo))
            for n in range(12)
        ]
        # Created in another order than closed, so that no store's order can pass alone.
        won = [w.model_copy(update={"created_at": T0 - n * day}) for n, w in enumerate(won)]
        unclosed = deal(buyer, stage=Stage.WON)
        lost = deal(buyer, stage=Stage.LOST, lost_reason="price", closed_at=T0 + 3 * day)
        open_ = deal(buyer, stage=Stage.PROPOSING)
        add(repo, buyer, *won, unclosed, lost, open_)

        def period(since: datetime | None, until: datetime | None, size: int) -> list[UUID]:
            found: list[UUID] = []
            batches = repo.won_batches(since=since, until=until, size=size)
            for number, batch in enumerate(batches):
                assert number <= len(won), "won_batches never ended"
                assert 1 <= len(batch) <= size
                assert all(d.stage is Stage.WON for d in batch)
                found.extend(d.id for d in batch)
            assert len(found) == len(set(found)), "a deal came twice"
            return sorted(found)

        def ids(numbers: range) -> list[UUID]:
            return sorted(won[n].id for n in numbers)

        assert period(None, None, 5) == ids(range(12))
        assert period(T0 + 3 * day, T0 + 7 * day, 2) == ids(range(3, 7))
        # The bounds as instants: since included, until left out, whatever the offset.
        assert period((T0 + 3 * day).astimezone(tokyo), None, 100) == ids(range(3, 12))
        assert period(None, T0 + 3 * day, 1) == ids(range(3))
        assert period(T0 + 20 * day, None, 5) == []
        moved = bump(won[0], stage=Stage.LOST, lost_reason=LostReason.PRICE)
        repo.commit(ChangeSet(updates=[moved]))
        assert period(None, T0 + 3 * day, 10) == ids(range(1, 3))

    @pytest.mark.parametrize("as_read", [False, True], ids=["alone", "with-read"])
    def test_an_update_changes_only_the_keys_and_tags_it_changes(
        self, repo: Repository, as_read: bool
    ) -> None:
        """With ``as_read``, each change carries the record it was decided on, as the
        store gave it (``ChangeSet.read``): the outcome is the same."""

        def commit(update: Lead) -> None:
            read = {update.id: repo.get(update.id)} if as_read else {}
            repo.commit(ChangeSet(updates=[update], read=read))

        a = lead(1, phone="+1 512 555 0101", tags={"vip", "webinar"})
        add(repo, a)
        # A status change: every key and tag stays where it was.
        qualified = bump(a, status=LeadStatus.QUALIFIED, tags=a.tags | {"sweet-spot"})
        commit(qualified)
        keys = [f"email:{a.email}", "phone:+15125550101"]
        assert repo.find_keys(keys) == dict.fromkeys(keys, a.id)
        assert [r.id for r in repo.leads(tag="webinar")] == [a.id]
        assert [r.id for r in repo.leads(tag="sweet-spot")] == [a.id]
        # A new e-mail: the old one is free, the phone still held; a tag dropped.
        moved = bump(
            qualified, email="pat1@elsewhere.example.com", tags=frozenset({"vip", "sweet-spot"})
        )
        commit(moved)
        new_key = "email:pat1@elsewhere.example.com"
        assert repo.find_keys([*keys, new_key]) == {keys[1]: a.id, new_key: a.id}
        assert repo.leads(tag="webinar") == []
        assert [r.id for r in repo.leads(tag="vip")] == [a.id]
        add(repo, lead(2, email=a.email))  # the old e-mail is anybody's now
        # Avoided, the person keeps its keys, now avoid-listed.
        avoided = bump(moved, status=LeadStatus.AVOID)
        commit(avoided)
        with pytest.raises(AvoidListedError) as caught:
            add(repo, lead(3, email="PAT1@elsewhere.example.com"))
        assert caught.value.existing_id == a.id
        with pytest.raises(AvoidListedError):
            add(repo, lead(4, phone="+1 512 555 0101"))
        assert repo.get(a.id) == avoided

    def test_a_read_record_of_another_version_is_not_trusted(self, repo: Repository) -> None:
        a = lead(1, tags={"webinar"})
        add(repo, a)
        tagged = bump(a, tags=frozenset({"webinar", "vip"}))
        repo.commit(ChangeSet(updates=[tagged]))
        # The change was decided on ``a``, which is no longer what is stored: refused,
        # and nothing of it is kept.
        stale = bump(a, tags=frozenset())
        with pytest.raises(ConcurrencyError):
            repo.commit(ChangeSet(updates=[stale], read={a.id: a}))
        assert [r.id for r in repo.leads(tag="vip")] == [a.id]
        # A "read" record at another version than the one an update follows is not
        # taken for the stored one: the tags the store holds are dropped all the same.
        untagged = bump(tagged, tags=frozenset())
        repo.commit(ChangeSet(updates=[untagged], read={a.id: a}))
        assert repo.leads(tag="vip") == []
        assert repo.leads(tag="webinar") == []
        assert repo.get(a.id) == untagged

    def test_many_updates_and_checks_commit_together_or_not_at_all(self, repo: Repository) -> None:
        people = [lead(n, tags={"list"}) for n in range(1_100)]
        add(repo, *people)
        moved = [bump(p, status=LeadStatus.QUALIFIED, profile="msp") for p in people[:600]]
        checked: list[Record] = list(people[600:])
        stale = bump(people[-1], notes="changed by someone else")
        repo.commit(ChangeSet(updates=[stale]))
        with pytest.raises(ConcurrencyError):
            repo.commit(ChangeSet(updates=moved, checks=checked))
        assert repo.get(people[0].id) == people[0]  # nothing of the refused change
        events = [event(p, "qualify", "raw", "qualified") for p in moved]
        repo.commit(ChangeSet(updates=moved, checks=[*checked[:-1], stale], events=events))
        assert repo.count("lead", status=LeadStatus.QUALIFIED) == 600
        assert repo.get(people[599].id) == moved[599]
        assert repo.get(people[600].id) == people[600]  # a check changes nothing
        assert len(repo.leads(tag="list")) == 1_100
        qualified = repo.step_counts(since=None, until=None, steps=["qualified"])
        assert qualified == [StepCount("qualified", None, 600)]

    def test_events_come_back_equal_whatever_their_times(self, repo: Repository) -> None:
        a = lead(1)
        add(repo, a)
        kolkata = timezone(timedelta(hours=5, minutes=30))
        at = datetime(2026, 3, 2, 14, 30, 15, 123456, tzinfo=kolkata)
        plain = event(a, "touch", "raw", "raw", T0 + timedelta(hours=1))
        zoned = event(a, "update", "raw", "raw", at, actor="ana", data={"fields": ["notes"]})
        odd = Event(
            subject_id=a.id,
            subject="lead",
            name="note",
            at=T0 + timedelta(hours=2),
            created_at=T0 + timedelta(hours=3),
            updated_at=T0 + timedelta(hours=4),
            version=2,
            reason="by hand",
        )
        stored = repo.commit(ChangeSet(events=[plain, zoned, odd]))
        back = [e for e in repo.events() if e.name != "add"]
        assert back == stored
        assert sorted(repo.history(a.id)[1:], key=lambda e: e.position or 0) == stored
        assert [e.at.utcoffset() for e in back] == [timedelta(0), at.utcoffset(), timedelta(0)]
        assert back[1].data == {"fields": ["notes"]}
        assert (back[2].created_at, back[2].updated_at, back[2].version) == (
            odd.created_at,
            odd.updated_at,
            2,
        )
        assert repo.events(after=stored[0].position or 0) == stored[1:]

    def test_bulk_updates_of_the_same_records_twice_in_one_transaction(
        self, repo: Repository
    ) -> None:
        people = [lead(n) for n in range(40)]
        add(repo, *people)
        once = [bump(p, status=LeadStatus.QUALIFIED) for p in people]
        twice = [bump(p, profile="msp") for p in once]
        with repo.transaction():
            repo.commit(ChangeSet(updates=once))
            repo.commit(ChangeSet(updates=twice))
        assert repo.get_many([p.id for p in people]) == {p.id: p for p in twice}

        def the_second_one_stale() -> None:
            with repo.transaction():
                repo.commit(ChangeSet(updates=[bump(p, notes="a") for p in twice]))
                repo.commit(ChangeSet(updates=[bump(p, notes="b") for p in twice]))

        with pytest.raises(ConcurrencyError):
            the_second_one_stale()
        assert repo.get_many([p.id for p in people]) == {p.id: p for p in twice}


# --- the model of the property test -------------------------------------------------

Op = tuple[Any, ...]
_LINES = itertools.count()


def _operation() -> st.SearchStrategy[Op]:
    person = st.integers(0, 4)
    phone = st.none() | st.integers(0, 3)
    pick = st.integers(0, 30)
    return st.one_of(
        st.tuples(
            st.just("insert"),
            st.lists(st.tuples(person, phone, st.booleans()), min_size=1, max_size=3),
        ),
        st.tuples(
            st.just("update"), pick, st.none() | person, phone, st.sampled_from([0, 0, 0, -1, 1])
        ),
        st.tuples(st.just("avoid"), pick),
        st.tuples(st.just("delete"), pick, st.booleans()),
        st.tuples(st.just("reinsert"), pick),
    )


class _Model:
    """The port's rules over plain dicts: what a commit must do, and what it must refuse."""

    def __init__(self, space: str) -> None:
        self.space = space
        self.line = next(_LINES) % 100_000
        self.records: dict[UUID, Lead] = {}
        self.ever: list[UUID] = []
        self.order: list[UUID] = []
        self.keys: dict[str, UUID] = {}
        self.gone: dict[UUID, Lead] = {}

    def email(self, n: int) -> str:
        return f"p{n}@{self.space}.example.com"

    def phone(self, n: int | None) -> str | None:
        # Numbers of their own for each example, so examples never share a phone key.
        return None if n is None else f"+15{self.line:05d}{n:04d}"

    def all_keys(self) -> list[str]:
        return [f"email:{self.email(n)}" for n in range(5)] + [
            f"phone:{self.phone(n)}" for n in range(4)
        ]

    def pick(self, index: int) -> Lead | None:
        alive = [self.records[i] for i in self.order if i in self.records]
        return alive[index % len(alive)] if alive else None

    def change_set(self, op: Op) -> tuple[ChangeSet, list[Lead]]:
        kind = op[0]
        if kind == "insert":
            made = [
                lead(
                    0,
                    email=self.email(p),
                    phone=self.phone(ph),
                    status=LeadStatus.AVOID if avoided else LeadStatus.RAW,
                )
                for p, ph, avoided in op[1]
            ]
            self.ever.extend(r.id for r in made)
            return ChangeSet(inserts=list(made)), made
        target = self.pick(op[1])
        if target is None:
            return ChangeSet(), []
        if kind == "update":
            _, _, person, phone, skew = op
            changes: dict[str, Any] = {"phone": self.phone(phone)}
            if person is not None:
                changes["email"] = self.email(person)
            updated = target.model_copy(update={**changes, "version": target.version + 1 + skew})
            return ChangeSet(updates=[updated]), [updated]
        if kind == "avoid":
            return ChangeSet(updates=[bump(target, status=LeadStatus.AVOID)]), []
        if kind == "delete":
            victim = target if op[2] else target.model_copy(update={"version": 99})
            return ChangeSet(deletes=[victim]), []
        # "reinsert": the stored record inserted again.
        return ChangeSet(inserts=[target]), []

    def outcome(self, changes: ChangeSet) -> tuple[type[BaseException], UUID | None] | None:
        for record in changes.deletes:
            stored = self.records.get(record.id)
            if stored is None:
                return (NotFoundError, None)
            if stored.version != record.version:
                return (ConcurrencyError, None)
        released = {r.id for r in changes.deletes}
        for record in changes.updates:
            stored = self.records.get(record.id)
            if stored is None:
                return (NotFoundError, None)
            if stored.version != record.version - 1:
                return (ConcurrencyError, None)
            released.add(record.id)
        for record in changes.inserts:
            if record.id in self.records:
                return (ConcurrencyError, None)
        claims = {k: v for k, v in self.keys.items() if v not in released}
        pending = {r.id: r for r in changes.records() if isinstance(r, Lead)}
        for record in changes.records():
            assert isinstance(record, Lead)
            for key in _keys(record):
                holder = claims.get(key)
                if holder is not None and holder != record.id:
                    held = pending.get(holder) or self.records[holder]
                    error = AvoidListedError if held.status == LeadStatus.AVOID else DuplicateError
                    return (error, holder)
                claims[key] = record.id
        return None

    def apply(self, changes: ChangeSet) -> None:
        for record in changes.deletes:
            del self.records[record.id]
            self.order.remove(record.id)
        for record in changes.records():
            assert isinstance(record, Lead)
            self.keys = {k: v for k, v in self.keys.items() if v != record.id}
            self.records[record.id] = record
            if record.id not in self.order:
                self.order.append(record.id)
        for record in changes.deletes:
            self.keys = {k: v for k, v in self.keys.items() if v != record.id}
        for record in changes.records():
            assert isinstance(record, Lead)
            for key in _keys(record):
                self.keys[key] = record.id


def _keys(record: Lead) -> list[str]:
    found = []
    if record.email:
        found.append(f"email:{record.email.lower()}")
    if record.phone:
        found.append(f"phone:{record.phone}")
    return found
