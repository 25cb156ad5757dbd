"""Values every store keeps (docs/storage.md), as an audit found them broken: data nested
deeper than MariaDB's JSON check takes (refused there as a server failure, an import
lost whole) or than the JSON reader reads (stored, then every listing failed); a large
whole float in untyped data (PostgreSQL read it back as an int); a datetime whose UTC
offset has seconds (read back shifted); a lone surrogate in untyped text (pydantic's own
error on the SQL stores). Each is now refused by every store alike, before anything is
written, as ``StorageError(of_value=True)``, never showing the value."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import pytest
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from conftest import person, value_refusal
from leadfunnel import Contact, Funnel, Lead, Repository, StorageError
from leadfunnel.testing import ManualClock


class DataLead(Lead):
    data: Any = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    mixed: int | float | None = None
    ratio: float | None = None
    founded: datetime | None = None


def nested(depth: int) -> Any:
    """``"leaf"`` inside ``depth`` lists."""
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


def data_funnel(repository: Repository, clock: ManualClock) -> Funnel:
    return Funnel(repository, lead_model=DataLead, clock=clock)


# --- 1. nesting ------------------------------------------------------------------------


def test_data_nested_twenty_levels_stores_and_reads_back_everywhere(
    repository: Repository, clock: ManualClock
) -> None:
    funnel = data_funnel(repository, clock)
    deep = {"a": nested(19)}  # 20 levels: the dict and 19 lists
    lead = funnel.add(DataLead(**person(1), data=deep))
    assert funnel.get(lead.id) == lead
    assert [r.id for r in funnel.leads(where={"data": deep})] == [lead.id]


@pytest.mark.parametrize("depth", [21, 31, 200])
def test_data_nested_deeper_is_refused_everywhere(
    repository: Repository, clock: ManualClock, depth: int
) -> None:
    funnel = data_funnel(repository, clock)
    lead = DataLead(**person(1), data=nested(depth))
    message = value_refusal(funnel, lead, "'data" + "[0]" * 20 + "'", "nested more than 20 levels")
    assert "leaf" not in message
    # A filter on such a value matches nothing, and every listing still reads.
    assert funnel.count("lead", where={"data": nested(depth)}) == 0


def test_a_model_counts_as_a_level(repository: Repository, clock: ManualClock) -> None:
    class Box(DataLead):
        inner: DataLead | None = None

    funnel = Funnel(repository, lead_model=Box, clock=clock)
    inner = DataLead(**person(2), data=nested(20))  # 20 levels in the inner lead
    with pytest.raises(StorageError, match=r"field 'inner\.data(\[0\]){19}' .* nested more"):
        funnel.add(Box(**person(1), inner=inner))


def test_an_import_rejects_the_deep_row_alone(repository: Repository, clock: ManualClock) -> None:
    funnel = data_funnel(repository, clock)
    rows = [person(1), person(2, data=nested(31)), person(3)]
    report = funnel.import_leads(rows)
    assert [issue.row for issue in report.rejected] == [2]
    assert "nested more than 20 levels" in report.rejected[0].reason
    assert len(report.added) == 2
    assert funnel.count("lead") == 2


def test_a_stored_document_the_reader_cannot_read_is_a_storage_error() -> None:
    from leadfunnel._sql._rows import build_record, load_json

    deep = '{"x": ' + "[" * 300 + "]" * 300 + "}"
    with pytest.raises(StorageError, match=r"cannot be read .*recursion limit"):
        load_json(deep)
    with pytest.raises(StorageError, match="stored lead: a stored JSON document cannot be read"):
        build_record(Lead, deep)


def test_mariadbs_json_check_is_a_value_refused() -> None:
    """MariaDB's error 4025 (its JSON check refused the document) is the value's fault:
    an import rejects the row alone, and retrying cannot help."""
    import sqlalchemy.exc as sa_exc

    from leadfunnel._sql._engine import translated

    class Refused(Exception):
        pass

    orig = Refused(4025, "CONSTRAINT `lf_leads.doc` failed for `db`.`lf_leads`")
    with pytest.raises(StorageError) as caught, translated():
        raise sa_exc.OperationalError("INSERT ...", None, orig)
    assert caught.value.of_value
    assert "refused a value" in str(caught.value)


# --- 2. large whole floats ---------------------------------------------------------------


@pytest.mark.parametrize("number", [1e16, -1e16, 1e20, 1.5e300, 123.456e20, 1.7976931348623157e308])
def test_a_large_float_in_untyped_data_is_refused_everywhere(
    repository: Repository, clock: ManualClock, number: float
) -> None:
    funnel = data_funnel(repository, clock)
    value_refusal(
        funnel, DataLead(**person(1), metrics={"revenue": number}), "\"metrics['revenue']\"", "1e16"
    )
    value_refusal(funnel, DataLead(**person(2), data=[number]), "'data[0]'", "a float of 1e16")
    value_refusal(funnel, DataLead(**person(3), mixed=number), "'mixed'", "a float of 1e16")


@pytest.mark.parametrize(
    "number", [1e15, 9007199254740993.0, 9999999999999998.0, -9999999999999998.0, 1e-20, 0.5]
)
def test_smaller_floats_read_back_as_floats_everywhere(
    repository: Repository, clock: ManualClock, number: float
) -> None:
    funnel = data_funnel(repository, clock)
    lead = funnel.add(DataLead(**person(1), metrics={"n": number}, data=number, mixed=number))
    back = funnel.get(lead.id)
    assert isinstance(back, DataLead)
    for value in (back.metrics["n"], back.data, back.mixed):
        assert type(value) is float
        assert value == number


def test_a_float_field_keeps_a_large_float(repository: Repository, clock: ManualClock) -> None:
    """A field declared float reads PostgreSQL's integer text back as the float."""
    funnel = data_funnel(repository, clock)
    lead = funnel.add(DataLead(**person(1), ratio=1.5e300))
    back = funnel.get(lead.id)
    assert isinstance(back, DataLead)
    assert type(back.ratio) is float
    assert back.ratio == 1.5e300
    assert [r.id for r in funnel.leads(where={"ratio": 1.5e300})] == [lead.id]


# --- 3. UTC offsets with seconds ----------------------------------------------------------

NEW_YORK_1880 = datetime(1880, 6, 1, 9, 0, tzinfo=ZoneInfo("America/New_York"))  # -04:56:02


@pytest.mark.parametrize(
    "when",
    [
        NEW_YORK_1880,
        datetime(2024, 1, 1, tzinfo=timezone(timedelta(hours=1, seconds=30))),
        datetime(2024, 1, 1, tzinfo=timezone(timedelta(microseconds=1))),
    ],
)
def test_a_datetime_whose_offset_has_seconds_is_refused_everywhere(
    repository: Repository, clock: ManualClock, when: datetime
) -> None:
    funnel = data_funnel(repository, clock)
    message = value_refusal(
        funnel, DataLead(**person(1), founded=when), "'founded'", "whole minutes"
    )
    # The value is not quoted (the record's id, named, may hold any digits).
    assert when.isoformat() not in message
    assert "1880" not in re.sub(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", "(id)", message)
    value_refusal(funnel, DataLead(**person(2), data={"at": [when]}), "\"data['at'][0]\"", "offset")


def test_the_same_instant_in_utc_stores_and_is_found_by_either(
    repository: Repository, clock: ManualClock
) -> None:
    funnel = data_funnel(repository, clock)
    lead = funnel.add(DataLead(**person(1), founded=NEW_YORK_1880.astimezone(UTC)))
    back = funnel.get(lead.id)
    assert isinstance(back, DataLead)
    assert back.founded == NEW_YORK_1880
    assert [r.id for r in funnel.leads(where={"founded": NEW_YORK_1880})] == [lead.id]


# --- 4. lone surrogates -----------------------------------------------------------------


def test_a_lone_surrogate_in_untyped_text_is_refused_everywhere(
    repository: Repository, clock: ManualClock
) -> None:
    funnel = data_funnel(repository, clock)
    broken = json.loads('{"comment": "great \\ud83d"}')
    message = value_refusal(
        funnel, DataLead(**person(1), data=broken), "\"data['comment']\"", "lone surrogate"
    )
    assert "great" not in message
    value_refusal(funnel, DataLead(**person(2), data={"k\udc80": 1}), "'data'", "a key with a lone")
    assert funnel.count("lead", where={"data": "x\ud800"}) == 0
    assert funnel.count("lead", where={"data": {"comment": "great \ud83d"}}) == 0
    # Other text beyond ASCII stores.
    lead = funnel.add(DataLead(**person(3), data={"comment": "great \U0001f600 ü"}))
    assert [r.id for r in funnel.leads(where={"data": {"comment": "great \U0001f600 ü"}})] == [
        lead.id
    ]


# --- what a commit looks at -------------------------------------------------------------


def test_leadfunnels_own_records_still_cost_a_cache_look_up() -> None:
    """leadfunnel's own instants (created_at...) are the funnel's to write in UTC: a
    commit does not look at them. An application's datetime fields, it does."""
    from leadfunnel._repository import _NOTHING_TO_WALK, _checks_of

    for model in (Lead, Contact):
        assert _checks_of(model) is _NOTHING_TO_WALK
    walk = _checks_of(DataLead)
    assert walk.instants == ("founded",)
    assert walk.loose == frozenset({"data", "metrics", "mixed"})
    assert "ratio" in walk.fields


# --- from a review of the refusals ----------------------------------------------------


class Measure(TypedDict):
    x: float


@dataclasses.dataclass
class MeasureRow:
    x: float


class MeasureTuple(NamedTuple):
    x: float


class Sub(BaseModel):
    x: float


class MeasuredLead(Lead):
    td: Measure | None = None
    dc: MeasureRow | None = None
    nt: MeasureTuple | None = None
    anything: Any = None


def test_a_large_float_in_a_typed_dict_dataclass_or_named_tuple_stores(
    repository: Repository,
) -> None:
    """Their ``float`` fields read PostgreSQL's integer text back as a float: such a
    float was refused, the classes taken for untyped data."""
    funnel = Funnel(repository, lead_model=MeasuredLead)
    lead = funnel.add(
        MeasuredLead(
            email="pat@acme.example.com",
            td={"x": 1e20},
            dc=MeasureRow(1e20),
            nt=MeasureTuple(1e20),
        )
    )
    back = funnel.get_lead(lead.id)
    assert isinstance(back, MeasuredLead)
    assert (back.td, back.dc, back.nt) == ({"x": 1e20}, MeasureRow(1e20), MeasureTuple(1e20))
    assert isinstance(back.dc, MeasureRow)
    assert type(back.dc.x) is float


def test_a_model_in_an_untyped_field_is_checked_as_untyped_data(repository: Repository) -> None:
    """A model in an ``Any`` field is stored as a dict and read back without its types:
    PostgreSQL gave its float back as an int."""
    funnel = Funnel(repository, lead_model=MeasuredLead)
    with pytest.raises(StorageError, match=r"field 'anything\.x' .* a float of 1e16 or more"):
        funnel.add(MeasuredLead(email="pat@acme.example.com", anything=Sub(x=1e20)))
    assert funnel.leads() == []


def test_an_appointment_in_an_offset_with_microseconds_keeps_its_instant(funnel: Funnel) -> None:
    """``in_utc_range`` gave offsets with seconds in UTC, not those with microseconds,
    which JSON drops too: the SQL stores read the appointment back 250 ms off."""
    when = datetime(2030, 6, 1, 9, tzinfo=timezone(timedelta(hours=1, microseconds=250_000)))
    deal = funnel.set_appointment(
        funnel.capture(Lead(email="pat@acme.example.com")), force=True, appointment_at=when
    )
    assert funnel.get_opportunity(deal.id).appointment_at == when
