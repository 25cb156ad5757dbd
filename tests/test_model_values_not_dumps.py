"""A record of a class between ``Lead`` and the registered one is taken by its field
values, not by a dump: a dump carries computed fields (which the registered class
refuses as extra input) and the application's serialisers. And a stored record that a
model validator refuses as a whole is named as such."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import computed_field, model_validator

from leadfunnel import Funnel, Lead, SqlRepository, StorageError


class Scored(Lead):
    seats: int = 0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def large(self) -> bool:
        return self.seats >= 100


class Registered(Scored):
    plan: str | None = None


def test_a_record_of_a_class_in_between_is_added_by_its_values() -> None:
    funnel = Funnel(lead_model=Registered)
    stored = funnel.add(Scored(email="pat@acme.example.com", seats=120))
    assert type(stored) is Registered
    assert (stored.seats, stored.large, stored.plan) == (120, True, None)


def test_a_record_of_a_class_in_between_is_imported_by_its_values() -> None:
    funnel = Funnel(lead_model=Registered)
    report = funnel.import_leads([Scored(email="sam@beta.example.com", seats=5)])
    assert report.rejected == []
    (stored,) = funnel.leads()
    assert type(stored) is Registered
    assert (stored.seats, stored.large) == (5, False)


class Strict(Lead):
    @model_validator(mode="after")
    def needs_a_company(self) -> Strict:
        if self.company is None:
            raise ValueError("a company is required")
        return self


def test_a_stored_record_a_model_validator_refuses_is_named_as_such(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    plain = Funnel(SqlRepository(url))
    lead = plain.add(Lead(email="ann@x.example.com"))
    plain.repository.close()
    strict = Funnel(SqlRepository(url), lead_model=Strict)
    with pytest.raises(StorageError) as raised:
        strict.get(lead.id)
    message = str(raised.value)
    assert f"the stored lead {lead.id} is refused by Strict as a whole" in message
    assert "value_error" in message
    assert " in  " not in message
    strict.repository.close()
