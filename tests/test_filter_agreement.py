"""List filters agree on every store (memory, SQLite, PostgreSQL, MariaDB in ``conftest``).

``where=`` compares by value, as Python does: a ``Decimal`` by its number, an aware
datetime by its instant, a set whatever its order, and a record stored before a field
was added by the default it reads as. Text filters are trimmed as stored values are.
Any valid company or last name stores, however long it grows once case-folded.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import Field

from conftest import person
from leadfunnel import Funnel, InvalidArgumentError, Lead, Repository, SqlRepository, StorageError
from leadfunnel._repository import fold_name
from leadfunnel.storage import trait_key
from leadfunnel.testing import ManualClock


class Priced(Lead):
    price: Decimal | None = None
    seen: datetime | None = None
    renewal: date | None = None
    codes: frozenset[int] = frozenset()


def ids(records: list[Any]) -> list[Any]:
    return [r.id for r in records]


def test_where_compares_decimals_by_their_number(
    repository: Repository, clock: ManualClock
) -> None:
    funnel = Funnel(repository, lead_model=Priced, clock=clock)
    a = funnel.add(Priced(first_name="A", annual_revenue=Decimal("1000000.00")))
    b = funnel.add(Priced(first_name="B", price=Decimal("10.50")))
    c = funnel.add(Priced(first_name="C", price=Decimal("1E+2"), annual_revenue=Decimal(7)))
    d = funnel.add(Priced(first_name="D", price=Decimal("10.5"), annual_revenue=Decimal("1e6")))
    assert ids(funnel.leads(where={"annual_revenue": 1000000})) == [a.id, d.id]
    assert funnel.count("lead", where={"annual_revenue": "1000000.0"}) == 2
    assert ids(funnel.leads(where={"price": Decimal("10.5")})) == [b.id, d.id]
    assert ids(funnel.leads(where={"price": "10.500"})) == [b.id, d.id]
    assert ids(funnel.leads(where={"price": 100})) == [c.id]
    assert funnel.leads(where={"price": Decimal("10.51")}) == []
    assert funnel.leads(where={"price": Decimal("0.000000000000000000000000010501")}) == []
    # Filtered by the store, not after the limit: every page holds matches only.
    pages, after = [], None
    while page := funnel.leads(where={"price": "10.5"}, limit=1, after=after):
        pages.append(page[0].id)
        after = page[-1]
    assert pages == [b.id, d.id]


def test_where_compares_aware_datetimes_by_their_instant(
    repository: Repository, clock: ManualClock
) -> None:
    funnel = Funnel(repository, lead_model=Priced, clock=clock)
    plus_two = timezone(timedelta(hours=2))
    india = timezone(timedelta(hours=5, minutes=30))
    a = funnel.add(Priced(first_name="A", seen=datetime(2026, 1, 1, 12, tzinfo=plus_two)))
    b = funnel.add(Priced(first_name="B", seen=datetime(2026, 1, 1, 10, tzinfo=UTC)))
    c = funnel.add(Priced(first_name="C", seen=datetime(2026, 1, 1, 15, 30, 0, 1, tzinfo=india)))
    naive = funnel.add(Priced(first_name="N", seen=datetime(2026, 1, 1, 10)))
    old = funnel.add(Priced(first_name="O", seen=datetime(1, 1, 1, 3, tzinfo=plus_two)))
    ten = datetime(2026, 1, 1, 10, tzinfo=UTC)
    assert ids(funnel.leads(where={"seen": ten})) == [a.id, b.id]
    minus_five = timezone(-timedelta(hours=5))
    assert ids(funnel.leads(where={"seen": "2026-01-01T05:00:00-05:00"})) == [a.id, b.id]
    assert funnel.count("lead", where={"seen": ten.astimezone(minus_five)}) == 2
    # To the microsecond.
    assert ids(funnel.leads(where={"seen": ten + timedelta(microseconds=1)})) == [c.id]
    assert funnel.leads(where={"seen": ten + timedelta(microseconds=2)}) == []
    assert ids(funnel.leads(where={"seen": datetime(1, 1, 1, 1, tzinfo=UTC)})) == [old.id]
    # A naive datetime names no instant: it equals naive ones only, by wall time.
    assert ids(funnel.leads(where={"seen": datetime(2026, 1, 1, 10)})) == [naive.id]
    pages, after = [], None
    while page := funnel.leads(where={"seen": ten}, limit=1, after=after):
        pages.append(page[0].id)
        after = page[-1]
    assert pages == [a.id, b.id]


def test_where_on_dates_and_base_instants(repository: Repository, clock: ManualClock) -> None:
    funnel = Funnel(repository, lead_model=Priced, clock=clock)
    a = funnel.add(Priced(first_name="A", renewal=date(2027, 1, 31)))
    clock.advance(microseconds=1)
    b = funnel.add(Priced(first_name="B", renewal=date(2027, 2, 1)))
    assert ids(funnel.leads(where={"renewal": "2027-01-31"})) == [a.id]
    assert ids(funnel.leads(where={"renewal": date(2027, 2, 1)})) == [b.id]
    at = b.created_at.astimezone(timezone(timedelta(hours=-3)))
    assert ids(funnel.leads(where={"created_at": at})) == [b.id]
    assert ids(funnel.leads(where={"created_at": at.isoformat()})) == [b.id]


def _two_orders(make: Any) -> tuple[frozenset[Any], frozenset[Any]]:
    """Two equal frozensets of two items that iterate in opposite orders (the items
    share a slot of the set's table, so insertion order decides)."""
    for i in range(1000):
        for j in range(i + 1, 1000):
            first, second = make(i), make(j)
            one, two = frozenset([first, second]), frozenset([second, first])
            if list(one) != list(two):
                return one, two
    raise AssertionError("no two items collide")


def test_where_on_a_set_ignores_its_order(repository: Repository, clock: ManualClock) -> None:
    funnel = Funnel(repository, lead_model=Priced, clock=clock)
    tags, reversed_tags = _two_orders(lambda i: f"tag{i}")
    codes, reversed_codes = _two_orders(lambda i: i)
    a = funnel.add(Priced(first_name="A", tags=tags, codes=codes))
    b = funnel.add(Priced(first_name="B", tags={next(iter(tags))}))
    empty = funnel.add(Priced(first_name="E"))
    assert ids(funnel.leads(where={"tags": reversed_tags})) == [a.id]
    assert ids(funnel.leads(where={"tags": tags})) == [a.id]
    assert ids(funnel.leads(where={"codes": reversed_codes})) == [a.id]
    assert ids(funnel.leads(where={"tags": {next(iter(tags))}})) == [b.id]
    assert ids(funnel.leads(where={"tags": []})) == [empty.id]
    assert ids(funnel.leads(where={"codes": []})) == [b.id, empty.id]


class Later(Lead):
    """Fields an application added after leads were stored as plain ``Lead``."""

    plan: str = "free"
    seats: int | None = 5
    endpoints: int | None = None
    notes_list: list[str] = Field(default_factory=list)
    stamp: str = Field(default_factory=lambda: "made")


def test_a_filter_on_a_default_matches_records_stored_without_the_field(
    repository: Repository, clock: ManualClock
) -> None:
    old = Funnel(repository, clock=clock).add(Lead(first_name="old"))
    funnel = Funnel(repository, lead_model=Later, clock=clock)
    new = funnel.add(Later(first_name="new", stamp="made"))
    paid = funnel.add(Later(first_name="paid", plan="paid", seats=None, endpoints=3))
    assert ids(funnel.leads(where={"plan": "free"})) == [old.id, new.id]
    assert funnel.count("lead", where={"plan": "free"}) == 2
    assert ids(funnel.leads(where={"plan": "paid"})) == [paid.id]
    assert ids(funnel.leads(where={"seats": 5})) == [old.id, new.id]
    # None finds a record stored without the field only where None is the default.
    assert ids(funnel.leads(where={"seats": None})) == [paid.id]
    assert ids(funnel.leads(where={"plan": None})) == []
    assert ids(funnel.leads(where={"endpoints": None})) == [old.id, new.id]
    assert ids(funnel.leads(where={"notes_list": []})) == [old.id, new.id, paid.id]
    # A default_factory of the application's is not run: its value is unknown.
    assert ids(funnel.leads(where={"stamp": "made"})) == [new.id, paid.id]
    pages, after = [], None
    while page := funnel.leads(where={"plan": "free"}, limit=1, after=after):
        pages.append(page[0].id)
        after = page[-1]
    assert pages == [old.id, new.id]


def test_text_filters_are_trimmed_as_stored_values_are(
    repository: Repository, clock: ManualClock
) -> None:
    funnel = Funnel(repository, clock=clock)
    lead = funnel.add(
        Lead(**person(1, email="Pat@Acme.example.com", source=" web"), owner="ana ", tags={"vip "})
    )
    funnel.add(Lead(**person(2, source="fair"), owner="bob", tags={"vip2"}))
    assert (lead.owner, lead.source, lead.tags) == ("ana", "web", frozenset({"vip"}))
    for filters in (
        {"owner": "ana "},
        {"owner": "\tana"},
        {"source": "web  "},
        {"tag": " vip "},
        {"where": {"owner": "ana "}},
        {"where": {"company": "Acme IT 1 "}},
        {"where": {"email": " Pat@ACME.example.com "}},
        {"where": {"tags": ["vip "]}},
    ):
        assert ids(funnel.leads(**filters)) == [lead.id], filters
        assert funnel.count("lead", **filters) == 1, filters
    assert funnel.leads(owner="an") == funnel.leads(owner="ana\x00") == []
    assert [f.subject_id for f in funnel.due(owner=" ana ")] == [lead.id]
    funnel.qualify(lead, force=True)
    assert [r.record.id for r in funnel.rep_list("never_booked", owner="ana ")] == [lead.id]
    assert [r.record.id for r in funnel.rep_list("never_booked", source="web ")] == [lead.id]
    deal = funnel.set_appointment(lead, owner="dana", force=True)
    assert ids(funnel.opportunities(owner=" dana ")) == [deal.id]


#: 200 characters, 224 once case-folded ("ß" folds to "ss").
LONG = "Großhandel Straße " * 11 + "ßß"


def test_a_company_longer_once_case_folded_stores_and_matches(
    repository: Repository, clock: ManualClock
) -> None:
    assert len(LONG) == 200
    assert len(LONG.casefold()) == 224
    funnel = Funnel(repository, clock=clock)
    a = funnel.add(Lead(first_name="Ann", company=LONG, last_name=LONG))
    b = funnel.add(Lead(first_name="Bea", company=LONG.lower()))
    assert len(trait_key(LONG, "company") or "") == 200 < len(fold_name(LONG))
    # The same first 200 folded characters, another name after them.
    other = LONG[:-1] + "x"
    assert fold_name(other)[:200] == fold_name(LONG)[:200] != fold_name(other)
    c = funnel.add(Lead(first_name="Cy", company=other))
    report = funnel.import_leads([{"first_name": "Dee", "company": LONG, "last_name": LONG}])
    assert len(report.added) == 1
    assert not report.rejected
    d = report.added[0]
    assert ids(repository.people_like(company=LONG)) == [a.id, b.id, c.id, d]
    assert ids(repository.people_like(last_name=LONG.lower())) == [a.id, d]
    assert {x.id for x in funnel.similar(a)} == {b.id, d}  # whole names compared
    assert {x.id for x in funnel.similar(c)} == set()


def test_an_e_mail_domain_longer_once_case_folded_stores_and_matches(
    repository: Repository, clock: ManualClock
) -> None:
    domain = ".".join(["ΐ" * 41] * 3) + ".de"  # 374 characters once case-folded
    funnel = Funnel(repository, clock=clock)
    a = funnel.add(Lead(first_name="Ann", email=f"a@{domain}"))
    b = funnel.add(Lead(first_name="Bea", email=f"b@{domain}"))
    assert len(a.email.rpartition("@")[2].casefold()) > 255  # type: ignore[union-attr]
    assert ids(repository.people_like(email_domain=domain)) == [a.id, b.id]
    assert ids(funnel.similar(a)) == [b.id]


def test_long_keys_sqlite_stored_whole_are_cut_by_version_6(tmp_path: Any) -> None:
    """SQLite checks no length: a release before keys were cut stored them whole.
    Version 6 rewrites every trait key, cut, so such people are found again."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    repository = SqlRepository(url)
    funnel = Funnel(repository)
    domain = ".".join(["ΐ" * 41] * 3) + ".de"  # 374 characters once case-folded
    lead = funnel.add(Lead(first_name="Ann", company=LONG, email=f"a@{domain}"))
    with repository.engine.begin() as conn:  # as a release that kept keys whole wrote it
        conn.execute(
            sa.text("UPDATE lf_leads SET company_key = :k, email_domain = :d"),
            {"k": LONG.casefold(), "d": domain.casefold()},
        )
        conn.execute(sa.text("UPDATE lf_schema SET version = 5"))
    assert ids(repository.people_like(company=LONG)) == []
    repository.close()
    upgraded = SqlRepository(url)
    try:
        assert ids(upgraded.people_like(company=LONG)) == [lead.id]
        assert ids(upgraded.people_like(email_domain=domain)) == [lead.id]
    finally:
        upgraded.close()


def test_a_value_the_database_refuses_is_not_reported_as_a_connection_problem() -> None:
    from leadfunnel._sql._engine import translated

    refused = sa.exc.DataError("INSERT ...", {}, Exception("value too long for type"))
    with pytest.raises(StorageError) as caught, translated():
        raise refused
    message = str(caught.value)
    assert "refused a value: value too long for type" in message
    assert "retrying will not help" in message
    assert "reachable" not in message
    failed = sa.exc.OperationalError("SELECT ...", {}, Exception("database is locked"))
    with pytest.raises(StorageError, match="Retry, or check"), translated():
        raise failed


def test_where_reads_a_phone_as_the_funnel_stores_one(repository: Repository) -> None:
    """A phone filter written as people write phones finds the stored E.164 number: one
    without its country code is read in the funnel's region, as the stored one was."""
    us = Funnel(repository)
    pat = us.add(Lead(first_name="Pat", phone="(512) 555-0134", country="US"))
    for written in ("512-555-0134", " +1 512 555 0134 ", "+15125550134"):
        assert [lead.id for lead in us.leads(where={"phone": written})] == [pat.id]
        assert us.count("lead", where={"phone": written}) == 1
    assert us.leads(where={"phone": "512-555-0199"}) == []
    with pytest.raises(InvalidArgumentError, match=r"where=\{'phone': '12'\}"):
        us.leads(where={"phone": "12"})
    uk = Funnel(repository, phone_region="GB")
    written_in_gb = {"first_name": "Sam", "phone": "020 7946 0018", "country": "GB"}
    sam = uk.add(Lead.model_validate(written_in_gb, context={"phone_region": "GB"}))
    assert [lead.id for lead in uk.leads(where={"phone": "020 7946 0018"})] == [sam.id]


def test_where_finds_the_last_instants_of_the_calendar(
    repository: Repository, clock: ManualClock
) -> None:
    """SQLite's julianday() rounds to the millisecond and gives NULL past 9999-12-31:
    its pre-filter must not lose the instants of the calendar's last half-millisecond,
    stored in UTC or in another offset."""
    funnel = Funnel(repository, lead_model=Priced, clock=clock)
    last = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    behind = timezone(-timedelta(hours=3))
    stored = [
        funnel.add(Priced(first_name=str(n), seen=last - timedelta(microseconds=n)))
        for n in (0, 1, 400, 499, 500, 1000)
    ]
    in_offset = funnel.add(Priced(first_name="B", seen=last.astimezone(behind)))
    assert ids(funnel.leads(where={"seen": last})) == [stored[0].id, in_offset.id]
    for record, n in zip(stored[1:], (1, 400, 499, 500, 1000), strict=True):
        at = last - timedelta(microseconds=n)
        assert ids(funnel.leads(where={"seen": at})) == [record.id], n
        assert funnel.count("lead", where={"seen": at}) == 1
