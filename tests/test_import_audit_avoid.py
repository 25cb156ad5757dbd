"""Avoid lists imported from real CRMs, as an audit found them: a row matching a stored
person by one key (a phone) and giving another (a new e-mail) left that e-mail free, so
a later import or ``add`` made the person callable again. Every key an avoid row gives
is avoided: on memory, SQLite and the servers configured, through ``import_leads`` and
the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from leadfunnel import AvoidListedError, Funnel, Lead, SqlRepository
from leadfunnel._cli import main

_STATUS = "Open - Not Contacted"


def _import(tmp_path: Path, name: str, text: str, *args: str) -> tuple[int, str]:
    """``leadfunnel import`` of ``text`` (saved as ``name``) into ``tmp_path``'s
    database: its exit code and its output."""
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    db = f"sqlite:///{tmp_path / 'crm.db'}"
    result = CliRunner().invoke(main, ["import", str(path), "--db", db, *args])
    return result.exit_code, result.output


def test_an_avoid_row_matching_by_phone_suppresses_its_new_email(funnel: Funnel) -> None:
    bob = funnel.add(Lead(first_name="Bob", email="bob@old.example.com", phone="+15125550111"))
    report = funnel.import_leads(
        [{"first_name": "Bob", "email": "bob@new.example.com", "phone": "+1 512 555 0111"}],
        status="avoid",
    )
    (issue,) = report.avoided
    assert issue.existing_id == bob.id
    assert funnel.get_lead(bob.id).status == "avoid"
    with pytest.raises(AvoidListedError) as refused:
        funnel.add(Lead(first_name="Bob", email="bob@new.example.com"))
    assert refused.value.existing_id == bob.id
    again = funnel.import_leads([{"first_name": "Bob", "email": "BOB@new.example.com"}])
    assert (again.added, [i.existing_id for i in again.avoided]) == ([], [bob.id])
    # Erased later (suppressed, as an avoided person must be), the e-mail stays refused.
    funnel.erase(funnel.get_lead(bob.id))
    for key in ({"email": "bob@new.example.com"}, {"phone": "+15125550111"}):
        with pytest.raises(AvoidListedError):
            funnel.add(Lead(first_name="Bob", **key))


def test_an_avoid_row_naming_someone_avoided_or_erased_suppresses_its_other_keys(
    funnel: Funnel,
) -> None:
    ann = funnel.add(Lead(first_name="Ann", email="ann@x.example.com"))
    funnel.avoid(ann)
    eve = funnel.add(Lead(first_name="Eve", email="eve@x.example.com"))
    funnel.erase(eve)
    report = funnel.import_leads(
        [
            {"email": "ann@x.example.com", "phone": "+15125550100"},
            {"email": "eve@x.example.com", "phone": "+15125550102"},
        ],
        status="avoid",
    )
    assert [(i.row, i.existing_id) for i in report.avoided] == [(1, ann.id), (2, eve.id)]
    for phone, holder in (("+15125550100", ann.id), ("+15125550102", eve.id)):
        with pytest.raises(AvoidListedError) as refused:
            funnel.add(Lead(first_name="X", phone=phone))
        assert refused.value.existing_id == holder


def test_an_avoid_row_repeating_an_earlier_one_avoids_its_other_keys_in_any_chunking(
    funnel: Funnel,
) -> None:
    rows: list[dict[str, Any]] = [
        {"email": "c1@x.example.com", "status": "avoid"},
        {"email": "c1@x.example.com", "phone": "+15125550101", "status": "avoid"},
        {"phone": "+15125550101"},  # a lead row giving the phone the list carried
    ]
    report = funnel.import_leads(rows)
    assert len(report.added) == 1
    assert [i.row for i in report.avoided] == [2, 3]
    assert funnel.count("lead") == 1
    with pytest.raises(AvoidListedError):
        funnel.add(Lead(first_name="X", phone="+15125550101"))


def test_a_later_row_giving_a_key_an_avoid_row_carried_is_avoided_in_the_same_chunk(
    funnel: Funnel,
) -> None:
    stored = funnel.add(Lead(first_name="C", phone="+15125550104"))
    report = funnel.import_leads(
        [
            {"email": "new@x.example.com", "phone": "+15125550104", "status": "avoid"},
            {"first_name": "Later", "email": "new@x.example.com"},
        ]
    )
    assert report.added == []
    assert [(i.row, i.existing_id) for i in report.avoided] == [(1, stored.id), (2, stored.id)]
    assert report.avoided[1].reason == "new@x.example.com is on the avoid list"


def test_an_avoid_row_whose_keys_two_stored_people_hold_avoids_both(funnel: Funnel) -> None:
    by_phone = funnel.add(Lead(first_name="A", phone="+15125550103"))
    by_email = funnel.add(Lead(first_name="B", email="b@x.example.com"))
    report = funnel.import_leads(
        [{"email": "b@x.example.com", "phone": "+15125550103"}], status="avoid"
    )
    (issue,) = report.avoided
    assert funnel.get_lead(by_phone.id).status == funnel.get_lead(by_email.id).status == "avoid"
    assert str(by_phone.id) in issue.reason
    assert str(by_email.id) in issue.reason
    assert issue.reason.count("now on the avoid list") == 2


def test_the_command_line_s_avoid_list_leaves_a_new_email_refused(tmp_path: Path) -> None:
    base = f"FirstName,Email,Phone,Company,Status\nBob,bob@old.com,(512) 555-0111,Beta,{_STATUS}\n"
    dnc = "FirstName,Email,Phone\nBob,bob@new.com,(512) 555-0111\n"
    later = f"FirstName,Email,Company,Status\nBob,bob@new.com,Beta,{_STATUS}\n"
    assert _import(tmp_path, "base.csv", base)[0] == 0
    summary = "0 added, 0 duplicates, 1 avoided, 0 rejected (salesforce format)"
    code, out = _import(tmp_path, "dnc.csv", dnc, "--status", "avoid")
    assert (code, out.splitlines()[0]) == (0, summary)
    code, out = _import(tmp_path, "later.csv", later)
    assert (code, out.splitlines()[0]) == (0, summary)
    funnel = Funnel(SqlRepository(f"sqlite:///{tmp_path / 'crm.db'}"))
    assert [lead.status for lead in funnel.leads()] == ["avoid"]
