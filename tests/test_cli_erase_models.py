"""`leadfunnel erase --lead-model/--contact-model`: the application's fields not marked
Personal survive the erasure; without the classes the command cannot tell, and removes
them all (never leaving a personal one behind)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import run_leadfunnel
from leadfunnel import Funnel, SqlRepository

MODELS = """
from typing import Annotated

from leadfunnel import Contact, Lead, Personal


class EraseLead(Lead):
    endpoints: int | None = None
    linkedin: Annotated[str | None, Personal] = None


class EraseContact(Contact):
    endpoints: int | None = None
    linkedin: Annotated[str | None, Personal] = None
"""


@pytest.fixture
def models(tmp_path: Path) -> Any:
    (tmp_path / "erase_models.py").write_text(MODELS, encoding="utf-8")
    sys.path.insert(0, str(tmp_path))
    try:
        import erase_models  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(tmp_path))
    return erase_models


@pytest.mark.parametrize("told", [True, False])
def test_erase_keeps_the_application_s_non_personal_fields_when_told_its_classes(
    tmp_path: Path, models: Any, told: bool
) -> None:
    db = f"sqlite:///{tmp_path / 'crm.db'}"
    funnel = Funnel(
        SqlRepository(db), lead_model=models.EraseLead, contact_model=models.EraseContact
    )
    lead = funnel.add(models.EraseLead(email="zed@x.example.com", endpoints=40, linkedin="in/zed"))
    funnel.qualify(lead, force=True)
    deal = funnel.set_appointment(lead)
    funnel.repository.close()
    classes = ["--lead-model", "erase_models:EraseLead"]
    classes += ["--contact-model", "erase_models:EraseContact"]
    done = run_leadfunnel(
        tmp_path, "erase", "zed@x.example.com", "--db", db, *(classes if told else [])
    )
    assert done.returncode == 0, done.stderr
    reread = Funnel(
        SqlRepository(db), lead_model=models.EraseLead, contact_model=models.EraseContact
    )
    records: list[Any] = [reread.get_lead(lead.id), reread.get_contact(deal.contact_id)]
    for record in records:
        assert record.erased_at is not None
        assert record.linkedin is None
        assert record.endpoints == (40 if told else None)


def test_a_model_that_is_not_a_contact_is_refused(tmp_path: Path, models: Any) -> None:
    db = f"sqlite:///{tmp_path / 'crm.db'}"
    SqlRepository(db).close()
    done = run_leadfunnel(
        tmp_path, "erase", "a@x.example.com", "--db", db,
        "--contact-model", "erase_models:EraseLead",
    )  # fmt: skip
    assert done.returncode == 2
    assert "--contact-model 'erase_models:EraseLead' is not a subclass of leadfunnel.Contact" in (
        done.stderr
    )
