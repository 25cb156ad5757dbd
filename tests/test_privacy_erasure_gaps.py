"""Erasure where an application's data goes beyond the base fields (DESIGN.md section
13): its own personal fields, rule explanations quoting values the person no longer
holds, the erasure's own reason, the person's deals, an avoided person, a converted
lead's keys. On every backend in ``conftest``."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import pytest

from conftest import T0, person
from leadfunnel import (
    AvoidListedError,
    Contact,
    Funnel,
    InvalidArgumentError,
    Lead,
    NotFoundError,
    Opportunity,
    Personal,
    PolicyError,
    QualificationEngine,
    Repository,
    SqlRepository,
)
from leadfunnel.testing import ManualClock


class MyLead(Lead):
    linkedin: Annotated[str | None, Personal] = None
    plan: str = "basic"  # not marked: kept, as industry is


class MyContact(Contact):
    linkedin: Annotated[str | None, Personal] = None
    plan: str = "basic"


class MyDeal(Opportunity):
    po_number: Annotated[str | None, Personal] = None
    seats: int = 1


LINKEDIN = "linkedin.example.com/in/zelda-quixotic-1977"
PO = "PO-ZELDA-4471"


def _funnel(repository: Repository, clock: ManualClock, **options: Any) -> Funnel:
    return Funnel(
        repository,
        clock=clock,
        lead_model=MyLead,
        contact_model=MyContact,
        opportunity_model=MyDeal,
        **options,
    )


def _everything(funnel: Funnel) -> str:
    return json.dumps(
        [
            [r.model_dump(mode="json") for r in funnel.leads()],
            [r.model_dump(mode="json") for r in funnel.contacts()],
            [r.model_dump(mode="json") for r in funnel.opportunities()],
            [e.model_dump(mode="json") for e in funnel.events(limit=None)],
        ]
    )


def test_fields_marked_personal_are_erased_and_the_others_kept(
    repository: Repository, clock: ManualClock
) -> None:
    funnel = _funnel(repository, clock)
    lead = funnel.capture(MyLead(**person(1), linkedin=LINKEDIN, plan="pro"))
    twin = funnel.capture(MyLead(**person(2), linkedin=LINKEDIN + "/old"))
    deal = funnel.set_appointment(lead, force=True)
    funnel.update(funnel.get_opportunity(deal.id).model_copy(update={"po_number": PO}))
    other = funnel.set_appointment(twin, force=True)
    funnel.merge(deal.contact_id, other.contact_id)  # a snapshot holding the old profile
    before = _everything(funnel)
    assert LINKEDIN in before
    assert PO in before

    funnel.erase(lead)

    assert LINKEDIN not in _everything(funnel)
    assert PO not in _everything(funnel)
    assert LINKEDIN not in json.dumps(funnel.export_person(lead))
    kept = funnel.get_lead(lead.id)
    assert isinstance(kept, MyLead)
    assert (kept.linkedin, kept.plan) == (None, "pro")
    assert funnel.leads(where={"linkedin": LINKEDIN}) == []


def test_no_byte_of_a_personal_custom_field_is_left_in_the_sqlite_files(tmp_path: Path) -> None:
    path = tmp_path / "crm.db"
    repository = SqlRepository(f"sqlite:///{path}")
    funnel = _funnel(repository, ManualClock(T0))
    lead = funnel.capture(MyLead(**person(1), linkedin=LINKEDIN))
    funnel.erase(lead)
    repository.compact()
    repository.close()
    for file in tmp_path.iterdir():
        assert LINKEDIN.encode() not in file.read_bytes(), file.name


def test_a_personal_field_must_accept_none() -> None:
    with pytest.raises(TypeError, match=r"Bad\.mobile marked Personal must accept None"):

        class Bad(Lead):
            mobile: Annotated[str, Personal] = "+15125550100"


def test_rule_explanations_quoting_old_values_are_erased(
    repository: Repository, clock: ManualClock
) -> None:
    """A qualification's verdicts quote the values they judged; an edit since leaves
    those values nowhere else, so only the explanation would keep them."""
    engine = QualificationEngine.from_dict(
        {"profiles": [{"name": "msp", "rules": [{"rule": "authority", "titles": ["owner"]}]}]}
    )
    funnel = Funnel(repository, clock=clock, engine=engine)
    lead = funnel.capture(Lead(**person(1, title="Head Kite Wrangler")))
    funnel.qualify(lead)
    assert "Kite Wrangler" in _everything(funnel)
    lead = funnel.update(funnel.get_lead(lead.id).model_copy(update={"title": "Owner"}))

    funnel.erase(lead)

    assert "Kite Wrangler" not in _everything(funnel)
    (qualified,) = [e for e in funnel.history(lead) if e.name == "qualify"]
    verdict = qualified.data["verdicts"]["msp"][0]
    assert (verdict["rule"], verdict["outcome"], verdict["reason"]) == ("authority", "fail", None)


def test_the_erasures_reason_keeps_why_without_the_persons_values(funnel: Funnel) -> None:
    zelda = funnel.capture(
        Lead(**person(1, first_name="Zelda", last_name="Quixotic", email="zq@privacy.example.com"))
    )
    funnel.erase(zelda, reason="Art. 17 request from Zelda Quixotic <zq@privacy.example.com>")
    reasons = [e.reason for e in funnel.history(zelda) if e.name == "erase"]
    assert reasons == ["Art. 17 request from [erased] [erased] <[erased]>"]


def test_an_erased_persons_deals_take_no_edit(funnel: Funnel) -> None:
    lead = funnel.capture(Lead(**person(1)))
    deal = funnel.set_appointment(lead, force=True)
    funnel.erase(lead)
    stored = funnel.get_opportunity(deal.id)
    with pytest.raises(PolicyError, match="was erased"):
        funnel.update(stored.model_copy(update={"amount": Decimal(10)}))


def test_an_avoided_person_is_erased_only_with_their_keys_suppressed(funnel: Funnel) -> None:
    lead = funnel.avoid(funnel.capture(Lead(**person(1))))
    with pytest.raises(PolicyError, match="avoid list"):
        funnel.erase(lead, suppress=False)
    assert funnel.erase(lead).suppressed


def test_a_converted_leads_keys_are_changed_on_its_contact(funnel: Funnel) -> None:
    """Its contact holds the person's keys: an e-mail put on the converted lead would
    be nobody's, and let the person be captured again as a new lead."""
    lead = funnel.capture(Lead(**person(1)))
    funnel.set_appointment(lead, force=True)
    converted = funnel.get_lead(lead.id)
    with pytest.raises(InvalidArgumentError, match="change email there"):
        funnel.update(converted.model_copy(update={"email": "new@privacy.example.com"}))
    edited = funnel.update(converted.model_copy(update={"industry": "Dental"}))
    assert edited.industry == "Dental"


def test_the_cli_says_a_person_was_erased_before_rather_than_misspelt(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from leadfunnel._cli import main

    db = f"sqlite:///{tmp_path / 'crm.db'}"
    Funnel(SqlRepository(db)).capture(Lead(**person(1, email="zelda@privacy.example.com")))

    def run(*args: str) -> tuple[int, str]:
        done = CliRunner().invoke(main, [*args, "--db", db], catch_exceptions=False)
        return done.exit_code, done.stderr

    assert run("erase", "zelda@privacy.example.com")[0] == 0
    code, err = run("erase", "ZELDA@privacy.example.com", "ghost@privacy.example.com")
    assert code == 2
    assert "not found: ZELDA@privacy.example.com (erased before" in err
    assert "not found: ghost@privacy.example.com\n" in err
    assert "1 of them erased before" in err
    code, err = run("export-person", "zelda@privacy.example.com")
    assert code == 2
    assert "that person was erased" in err
    assert "check the spelling" not in err


def test_a_merged_away_id_points_to_the_record_that_holds_its_data(funnel: Funnel) -> None:
    kept = funnel.capture(Lead(**person(1)))
    gone = funnel.capture(Lead(**person(2)))
    funnel.merge(kept, gone)
    for ask in (funnel.erase, funnel.export_person):
        with pytest.raises(NotFoundError, match=f"was merged into {kept.id}.*pass {kept.id}"):
            ask(gone.id)


def test_the_appointments_sat_rate_reads_the_same_after_an_erasure(
    funnel: Funnel, clock: ManualClock
) -> None:
    """A deal lost as a no-show, then its person erased: the report still counts the
    appointment that did not sit (the rep list, which nobody calls from, drops it)."""
    shown, missed = (funnel.capture(Lead(**person(n))) for n in (1, 2))
    sat = funnel.set_appointment(shown, force=True, appointment_at=clock.now())
    funnel.sit(sat)
    gone = funnel.set_appointment(missed, force=True, appointment_at=clock.now())
    clock.advance(days=1)
    funnel.lose(gone, reason="no_show")
    before = funnel.report()
    assert before.not_sat == 1

    funnel.erase(missed)

    after = funnel.report()
    assert after.not_sat == before.not_sat
    assert after.to_dict()["checks"] == before.to_dict()["checks"]


def test_the_stores_own_secret_survives_a_rolled_back_first_use(tmp_path: Path) -> None:
    """The store's own suppression secret is made with the store. Made on first use, in
    a transaction() block that rolled back (the first capture of a new store checks the
    suppression list), it was gone while this process went on hashing with it: a
    person erased afterwards came back in the next process."""
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    funnel = Funnel(SqlRepository(url))

    def request_failing_after_a_capture() -> None:
        with funnel.transaction():
            funnel.capture(Lead(**person(1)))
            raise RuntimeError("the request failed after the capture")

    with pytest.raises(RuntimeError):
        request_failing_after_a_capture()
    funnel.erase(funnel.capture(Lead(**person(2))))
    with pytest.raises(AvoidListedError):
        Funnel(SqlRepository(url)).capture(Lead(**person(2)))  # another process


def test_a_class_finished_late_is_checked_when_erase_asks_for_its_fields() -> None:
    """A class whose annotations pydantic could not resolve when it was made (a module
    that is not importable) is checked once it is finished, when erase first asks."""
    from leadfunnel._models import personal_fields

    source = (
        "from __future__ import annotations\n"
        "class Late(Lead):\n"
        "    mobile: Annotated[Mobile, Personal] = '+15125550100'\n"
    )
    namespace: dict[str, Any] = {
        "__name__": "not_importable",
        "Lead": Lead,
        "Annotated": Annotated,
        "Personal": Personal,
    }
    exec(source, namespace)
    late = namespace["Late"]
    assert not late.__pydantic_complete__
    late.model_rebuild(_types_namespace={**namespace, "Mobile": str})
    with pytest.raises(TypeError, match=r"Late\.mobile marked Personal must accept None"):
        personal_fields(late)
