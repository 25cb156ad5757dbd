"""An application's own fields declared with an alias (DESIGN.md section 15), on every
backend in ``conftest``: a field is read and written by its name or its alias, stored
under its name, and never lost on the way (it was: SQL adapters read such a field back
as ``None`` and refused rows keyed by its name)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from pydantic import AliasChoices, ConfigDict, Field

from conftest import SERVER_URLS, person
from leadfunnel import (
    Contact,
    Funnel,
    Lead,
    Repository,
    SqlRepository,
    StorageError,
)
from leadfunnel._cli import main
from leadfunnel._sql import _schema as schema
from leadfunnel.testing import ManualClock


class AliasLead(Lead):
    endpoints: int | None = None
    vertical: str | None = Field(default=None, alias="Vertical Market")
    seats: int | None = Field(default=None, validation_alias="Seat Count")
    plan: str | None = Field(default=None, validation_alias=AliasChoices("Plan Name", "plan_code"))
    renewal_note: str | None = Field(default=None, serialization_alias="Renewal Note")
    lead_only: str | None = Field(default=None, alias="Lead Only")


class AliasContact(Contact):
    endpoints: int | None = None
    vertical: str | None = Field(default=None, alias="Vertical Market")
    seats: int | None = Field(default=None, validation_alias="Seat Count")


class DumpsByAlias(AliasLead):
    """A model whose own dumps use the aliases: its documents are still by name."""

    model_config = ConfigDict(serialize_by_alias=True)


def funnel_of(repository: Repository, clock: ManualClock, lead: type[Lead] = AliasLead) -> Funnel:
    return Funnel(repository, lead_model=lead, contact_model=AliasContact, clock=clock)


def fields(record: Any) -> tuple[Any, ...]:
    return (record.vertical, record.seats, record.plan, record.renewal_note)


def test_aliased_fields_are_set_by_name_or_alias_and_round_trip(
    repository: Repository, clock: ManualClock
) -> None:
    funnel = funnel_of(repository, clock)
    by_alias = AliasLead.model_validate(
        {
            **person(1),
            "Vertical Market": "health",
            "Seat Count": 12,
            "Plan Name": "gold",
            "renewal_note": "May",
        }
    )
    by_name = AliasLead(**person(2), vertical="retail", seats=3, plan="silver", renewal_note="June")
    a, b = funnel.add(by_alias), funnel.add(by_name)
    assert fields(a) == ("health", 12, "gold", "May")
    assert fields(funnel.get_lead(a.id)) == ("health", 12, "gold", "May")
    assert fields(funnel.get_lead(b.id)) == ("retail", 3, "silver", "June")
    assert sorted(fields(x) for x in funnel.leads()) == [
        ("health", 12, "gold", "May"),
        ("retail", 3, "silver", "June"),
    ]
    # update() validates the edited record whole, by its fields' names.
    edited = funnel.update(funnel.get_lead(a.id).model_copy(update={"vertical": "energy"}))
    assert edited.vertical == "energy"  # type: ignore[attr-defined]
    again = funnel.get_lead(a.id)
    assert isinstance(again, AliasLead)
    assert fields(again) == ("energy", 12, "gold", "May")
    assert again.model_dump(by_alias=True)["Renewal Note"] == "May"


def test_where_filters_and_counts_an_aliased_field_by_its_name(
    repository: Repository, clock: ManualClock
) -> None:
    funnel = funnel_of(repository, clock)
    funnel.add(AliasLead.model_validate({**person(1), "Vertical Market": "health", "seats": 4}))
    funnel.add(AliasLead(**person(2), vertical="retail"))
    found = funnel.leads(where={"vertical": "health"})
    assert [(x.vertical, x.seats) for x in found] == [("health", 4)]  # type: ignore[attr-defined]
    assert funnel.count("lead", where={"seats": 4}) == 1
    assert funnel.count("lead", where={"vertical": None}) == 0


def test_import_leads_fills_an_aliased_field_from_its_name_or_its_alias(
    repository: Repository, clock: ManualClock
) -> None:
    funnel = funnel_of(repository, clock)
    report = funnel.import_leads(
        [
            {**person(1), "Vertical Market": "health", "Seat Count": "7", "plan_code": "gold"},
            {**person(2), "vertical": "retail", "seats": "8", "plan": "silver"},
            {**person(3), "Vertical Market": "x", "vertical": "y"},  # which one? refused
            # Becomes a contact: the lead-only field stays behind, by name or alias.
            {**person(4), "type": "prospect", "Vertical Market": "energy", "Lead Only": "z"},
            {**person(5), "type": "client", "vertical": "mining", "lead_only": "z"},
            # An export's empty column beside the other is no data: not given twice.
            {**person(6), "seats": "9", "Seat Count": "", "vertical": "x", "Vertical Market": None},
        ]
    )
    assert [issue.row for issue in report.rejected] == [3]
    sixth = funnel.get_lead(report.added[-1])
    assert (sixth.seats, sixth.vertical) == (9, "x")  # type: ignore[attr-defined]
    assert report.rejected[0].reason == (
        "vertical: given more than once ('Vertical Market' and 'vertical'); keep one"
    )
    first, second = (funnel.get_lead(i) for i in report.added[:2])
    assert (first.vertical, first.seats, first.plan) == ("health", 7, "gold")  # type: ignore[attr-defined]
    assert (second.vertical, second.seats, second.plan) == ("retail", 8, "silver")  # type: ignore[attr-defined]
    contacts = sorted(funnel.contacts(), key=lambda c: str(c.email))
    assert [(type(c), c.vertical) for c in contacts] == [  # type: ignore[attr-defined]
        (AliasContact, "energy"),
        (AliasContact, "mining"),
    ]


def test_export_person_holds_aliased_fields(repository: Repository, clock: ManualClock) -> None:
    funnel = funnel_of(repository, clock)
    lead = funnel.add(AliasLead.model_validate({**person(1), "Vertical Market": "health"}))
    (record,) = funnel.export_person(lead.id)["records"]
    assert record["vertical"] == "health"
    assert "Vertical Market" not in record


def test_a_merge_fills_an_aliased_field_and_unmerge_restores_it(
    repository: Repository, clock: ManualClock
) -> None:
    funnel = funnel_of(repository, clock)
    keep = funnel.add(AliasLead(**person(1), seats=5))
    other = funnel.add(AliasLead.model_validate({**person(2), "Vertical Market": "health"}))
    merged = funnel.merge(keep, other.id)
    assert (merged.vertical, merged.seats) == ("health", 5)
    assert fields(funnel.get_lead(keep.id))[:2] == ("health", 5)
    funnel.unmerge(keep.id)
    assert fields(funnel.get_lead(keep.id))[:2] == (None, 5)
    assert fields(funnel.get_lead(other.id))[:2] == ("health", None)


def sql_only(repository: Repository) -> SqlRepository:
    if not isinstance(repository, SqlRepository):
        pytest.skip("documents are the SQL adapter's")
    return repository


def stored_doc(repository: SqlRepository, lead_id: uuid.UUID) -> dict[str, Any]:
    with repository.engine.connect() as conn:
        doc = conn.execute(
            sa.select(schema.leads.c.doc).where(schema.leads.c.id == lead_id)
        ).scalar_one()
    return doc if isinstance(doc, dict) else dict(json.loads(doc))


def put_doc(repository: SqlRepository, lead_id: uuid.UUID, doc: dict[str, Any]) -> None:
    with repository.engine.begin() as conn:
        conn.execute(
            sa.update(schema.leads).where(schema.leads.c.id == lead_id).values(doc=json.dumps(doc))
        )


def test_documents_hold_fields_by_name_even_for_a_model_that_dumps_by_alias(
    repository: Repository, clock: ManualClock
) -> None:
    sql = sql_only(repository)
    funnel = funnel_of(repository, clock, lead=DumpsByAlias)
    lead = funnel.add(
        DumpsByAlias.model_validate(
            {**person(1), "Vertical Market": "health", "renewal_note": "May"}
        )
    )
    doc = stored_doc(sql, lead.id)
    assert (doc["vertical"], doc["renewal_note"]) == ("health", "May")
    assert not {"Vertical Market", "Renewal Note"} & doc.keys()
    assert funnel.leads(where={"vertical": "health"})[0].id == lead.id
    assert fields(funnel.get_lead(lead.id)) == ("health", None, None, "May")
    # update() edits by name, whatever the model dumps by.
    edited = funnel.update(lead.model_copy(update={"vertical": "energy"}))
    assert fields(funnel.get_lead(edited.id)) == ("energy", None, None, "May")


def test_documents_stored_by_alias_still_read_and_a_clash_is_an_error(
    repository: Repository, clock: ManualClock
) -> None:
    sql = sql_only(repository)
    funnel = funnel_of(repository, clock)
    lead = funnel.add(AliasLead(**person(1), vertical="health", renewal_note="May"))
    doc = stored_doc(sql, lead.id)
    # Written by alias (a model that dumped by alias, before documents were by name).
    legacy = {k: v for k, v in doc.items() if k not in ("vertical", "renewal_note")}
    put_doc(sql, lead.id, {**legacy, "Vertical Market": "retail", "Renewal Note": "June"})
    assert fields(funnel.get_lead(lead.id)) == ("retail", None, None, "June")
    # A field the model no longer has is left out, as before.
    put_doc(sql, lead.id, {**doc, "removed_field": 1})
    assert fields(funnel.get_lead(lead.id)) == ("health", None, None, "May")
    # The same field twice, with two values: which is right is not guessed.
    put_doc(sql, lead.id, {**doc, "Vertical Market": "retail"})
    with pytest.raises(StorageError, match=rf"lead {lead.id} .*vertical"):
        funnel.get_lead(lead.id)
    # ... with the same value, it is that value.
    put_doc(sql, lead.id, {**doc, "Vertical Market": "health"})
    assert funnel.get_lead(lead.id).vertical == "health"  # type: ignore[attr-defined]


# --- the command line --------------------------------------------------------------------

MODELS = """
from pydantic import AliasChoices, Field

from leadfunnel import Lead


class CsvLead(Lead):
    endpoints: int | None = None
    vertical: str | None = Field(default=None, alias="Vertical Market")
    plan: str | None = Field(default=None, validation_alias=AliasChoices("Plan Name", "plan_code"))
"""

CLI_DATABASES = ["sqlite", *(["mysql"] if SERVER_URLS["mysql"] else [])]


@pytest.fixture(params=CLI_DATABASES)
def cli_db(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'crm.db'}"
        return
    from conftest import release_repository, server_repository

    repository = server_repository("mysql")
    yield repository.url.render_as_string(hide_password=False)
    release_repository(repository)


@pytest.mark.parametrize(
    ("vertical", "plan"),
    [("Vertical Market", "Plan Name"), ("vertical", "plan_code"), ("vertical", "plan")],
)
def test_cli_import_fills_an_aliased_field_from_a_column_named_like_it_or_its_alias(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli_db: str, vertical: str, plan: str
) -> None:
    module = f"alias_models_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(MODELS, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "leads.csv").write_text(
        f"FirstName,Email,endpoints,{vertical},{plan},Shoe Size\n"
        "A,a@cf.example.com,25,health,gold,44\n"
        "B,b@cf.example.com,abc,,,\n",
        encoding="utf-8",
    )
    rejects = tmp_path / "rejects.csv"
    done = CliRunner().invoke(
        main,
        [
            "import",
            str(tmp_path / "leads.csv"),
            "--db",
            cli_db,
            "--lead-model",
            f"{module}:CsvLead",
            "--rejects",
            str(rejects),
        ],
        catch_exceptions=False,
    )
    assert done.exit_code == 0, done.output
    assert done.output.startswith("1 added"), done.output
    assert "Columns not imported: Shoe Size\n" in done.output
    assert "Extra inputs" not in rejects.read_text(encoding="utf-8")
    model = __import__(module).CsvLead
    repository = SqlRepository(cli_db)
    try:
        (lead,) = Funnel(repository, lead_model=model).leads()
        assert (type(lead), *(getattr(lead, n) for n in ("endpoints", "vertical", "plan"))) == (
            model,
            25,
            "health",
            "gold",
        )
    finally:
        repository.close()
