"""Erasure and access (DESIGN.md section 13), on every backend in ``conftest``."""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from conftest import outputs_under_hash_seeds, person
from leadfunnel import (
    AvoidListedError,
    ConcurrencyError,
    ConfigError,
    Contact,
    DuplicateError,
    Funnel,
    Lead,
    LostReason,
    PolicyError,
    Repository,
    SqlRepository,
    Stage,
    StorageError,
)
from leadfunnel._repository import ChangeSet
from leadfunnel._suppression import SECRET_VARIABLE
from leadfunnel.testing import ManualClock

PII = {
    "first_name": "Zelda",
    "last_name": "Quixotic",
    "email": "zelda.quixotic@privacy.example.com",
    "phone": "+15125550177",
    "company": "Quixotic Holdings",
    "city": "Marfa",
    "notes": "home address 12 Elm Street",
}


def zelda(**fields: Any) -> Lead:
    return Lead(**person(90, **{**PII, **fields}))


def reports(funnel: Funnel) -> list[Any]:
    """What the reports count from history, overall and by group (the open pipeline is
    today's deals, which an erasure closes, not history)."""

    def figures(report: Any) -> Any:
        return (
            {name: (step.count, step.rate) for name, step in report.steps.items()},
            {k: (t.median_days, t.count) for k, t in report.time_in_stage.items()},
            {key: figures(group) for key, group in report.groups.items()},
        )

    return [figures(funnel.report(by=by)) for by in (None, "source", "owner", "month")]


def leaks(funnel: Funnel) -> list[str]:
    """Personal values of Zelda's found anywhere the funnel can show."""
    text = json.dumps(
        [
            [r.model_dump(mode="json") for r in funnel.leads()],
            [r.model_dump(mode="json") for r in funnel.contacts()],
            [r.model_dump(mode="json") for r in funnel.opportunities()],
            [e.model_dump(mode="json") for e in funnel.events(limit=None)],
            [
                t.model_dump(mode="json")
                for r in funnel.leads() + funnel.contacts()
                for t in funnel.touches(r)
            ],
        ]
    )
    return [value for value in PII.values() if value.casefold() in text.casefold()]


def test_erase_scrubs_everything_and_reports_read_the_same(
    funnel: Funnel, clock: ManualClock
) -> None:
    lead = funnel.capture(zelda(owner="ana"))
    funnel.touch(lead, "call", "connected", note="Zelda asked for Marfa prices")
    funnel.qualify(lead, force=True, reason="Zelda Quixotic called us")
    deal = funnel.set_appointment(lead, owner="sam")
    funnel.sit(deal)
    clock.advance(days=1)
    funnel.capture(Lead(**person(91)))
    before = reports(funnel)
    assert leaks(funnel), "the check must see Zelda before the erasure"

    erasure = funnel.erase(lead, reason="erasure request")

    assert set(erasure.subject_ids) == {lead.id, deal.contact_id}
    assert erasure.suppressed
    assert leaks(funnel) == []
    assert reports(funnel) == before
    kept = funnel.get_lead(lead.id)
    assert (kept.status, kept.owner, kept.source, kept.industry) == (
        "converted",
        "ana",
        "webinar",
        "IT Services",
    )
    assert kept.erased_at == clock.now()
    lost = funnel.get_opportunity(deal.id)
    assert (lost.stage, lost.lost_reason) == (Stage.LOST, LostReason.AVOID)
    assert [e.name for e in funnel.history(lead)][-1] == "erase"


def test_an_erased_person_leaves_every_list_and_takes_no_more_moves(
    funnel: Funnel, clock: ManualClock
) -> None:
    lead = funnel.capture(zelda())
    twin = funnel.capture(Lead(**person(92, company=PII["company"])))
    funnel.qualify(lead, force=True)
    funnel.erase(lead)
    later = clock.now() + timedelta(days=3)
    assert lead.id not in {item.subject_id for item in funnel.due(at=later)}
    assert lead.id not in {item.id for item in funnel.rep_list("never_booked", at=later)}
    assert lead.id not in {r.id for r in funnel.similar(twin)}
    assert funnel.find(email=PII["email"]) is None
    for move in (
        lambda: funnel.touch(lead, "email", "no_answer"),
        lambda: funnel.set_appointment(lead),
        lambda: funnel.avoid(lead),
        lambda: funnel.update(funnel.get_lead(lead.id).model_copy(update={"city": "Austin"})),
        lambda: funnel.merge(twin, lead),
        lambda: funnel.erase(lead),
    ):
        with pytest.raises(PolicyError, match="was erased"):
            move()


def test_suppression_keeps_them_out_and_keep_nothing_lets_them_back(funnel: Funnel) -> None:
    kept_out = funnel.add(zelda())
    funnel.erase(kept_out)
    attempt: Callable[[], object]
    for attempt in (
        lambda: funnel.add(Lead(first_name="Z", email=PII["email"].upper())),
        lambda: funnel.capture(Lead(first_name="Z", phone="512-555-0177")),
        lambda: funnel.add(Contact(first_name="Z", email=PII["email"])),
    ):
        with pytest.raises(AvoidListedError) as err:
            attempt()
        assert err.value.existing_id == kept_out.id
    other = funnel.add(Lead(**person(93, email="back@again.example.com")))
    erasure = funnel.erase(other, suppress=False)
    assert not erasure.suppressed
    assert funnel.add(Lead(**person(94, email="back@again.example.com"))).id != other.id


def test_open_deals_are_lost_for_other_without_suppression(funnel: Funnel) -> None:
    lead = funnel.capture(zelda())
    funnel.qualify(lead, force=True)
    deal = funnel.set_appointment(lead)
    funnel.erase(deal.contact_id, suppress=False)  # given the contact: the lead goes too
    lost = funnel.get_opportunity(deal.id)
    assert (lost.stage, lost.lost_reason) == (Stage.LOST, LostReason.OTHER)
    assert funnel.get_lead(lead.id).erased_at is not None
    assert list(funnel.rep_list("not_sat", at=lost.created_at + timedelta(days=9))) == []


def test_merge_snapshots_are_scrubbed_and_unmerge_gives_back_no_data(funnel: Funnel) -> None:
    keep = funnel.add(zelda())
    dup = funnel.add(Lead(**person(95, first_name="Zelda", last_name="Quixotic")))
    funnel.merge(keep, dup)
    funnel.erase(keep)
    (log,) = funnel.repository.merges_of([keep.id])
    assert (log.keep_before.email, log.other.first_name) == (None, None)
    assert leaks(funnel) == []


def test_export_person_gathers_everything_as_json(funnel: Funnel) -> None:
    lead = funnel.capture(zelda())
    funnel.touch(lead, "call", "left_message", note="voicemail about the audit")
    funnel.qualify(lead, force=True, reason="looked at the website")
    deal = funnel.set_appointment(lead)
    exported = funnel.export_person(deal.contact_id)
    text = json.dumps(exported)
    for expected in (PII["email"], str(lead.id), str(deal.id), "voicemail about the audit"):
        assert expected in text
    assert {r["kind"] for r in exported["records"]} == {"lead", "contact", "opportunity"}
    assert "looked at the website" in {e["reason"] for e in exported["events"]}


#: Set-valued fields, several items each: their order in a set follows string hashing.
SETS: dict[str, list[str]] = {
    "tags": [f"tag-{c}" for c in "jihgfedcba"],
    "needs": [f"need {n}" for n in range(8, 0, -1)],
    "other_emails": [f"zq{n}@other.example.com" for n in range(6, 0, -1)],
    "other_phones": [f"+1512555{n:04d}" for n in range(6, 0, -1)],
    "opt_outs": ["sms", "social", "meeting", "email", "direct_mail", "call"],
}


def test_export_person_lists_set_fields_sorted(funnel: Funnel) -> None:
    lead = funnel.add(zelda(**SETS))
    (record,) = funnel.export_person(lead)["records"]
    for name, values in SETS.items():
        assert record[name] == sorted(values), name


def test_the_same_person_exports_the_same_json_in_every_process(tmp_path: Path) -> None:
    # Each process hashes strings with its own seed, and so orders sets its own way.
    db = f"sqlite:///{tmp_path / 'f.db'}"
    repository = SqlRepository(db)
    funnel = Funnel(repository)
    lead = funnel.add(zelda(**SETS))
    funnel.merge(lead, funnel.add(Lead(**person(91, tags=["zz", "aa", "mm"]))))
    repository.close()
    command = ("-m", "leadfunnel", "export-person", PII["email"], "--db", db)
    outputs = outputs_under_hash_seeds(*command)
    assert len(outputs) == 1
    exported = json.loads(outputs.pop())
    (record,) = exported["records"]
    assert record["tags"] == sorted([*SETS["tags"], "aa", "mm", "zz"])
    (merge,) = exported["merges"]
    assert merge["merged_away"]["tags"] == ["aa", "mm", "zz"]


def test_the_suppression_secret_comes_from_the_funnel_the_environment_or_the_store(
    repository: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = Funnel(repository, suppression_secret="s3cret")
    first.erase(first.add(zelda()))
    # The same secret recognises the person, from the funnel or the environment.
    with pytest.raises(AvoidListedError):
        Funnel(repository, suppression_secret="s3cret").add(zelda())
    monkeypatch.setenv(SECRET_VARIABLE, "s3cret")
    with pytest.raises(AvoidListedError):
        Funnel(repository).add(zelda())
    # Another secret would not recognise them: the store keeps the fingerprint of the
    # one its list was written under, and refuses the other (it let them back in).
    monkeypatch.setenv(SECRET_VARIABLE, "another")
    with pytest.raises(ConfigError, match=r"another secret than \$LEADFUNNEL_SUPPRESSION"):
        Funnel(repository).add(zelda())
    monkeypatch.delenv(SECRET_VARIABLE)
    with pytest.raises(ConfigError, match="another secret than the store's own secret"):
        Funnel(repository).add(zelda())
    assert [lead.email for lead in Funnel(repository, suppression_secret="s3cret").leads()] == [
        None
    ]


def test_a_store_that_kept_its_own_secret_refuses_the_applications(
    repository: Repository,
) -> None:
    """The command line (no secret given) erased someone first: the application's own
    secret, given later, would not recognise them."""
    cli = Funnel(repository)
    cli.erase(cli.add(zelda()))
    with pytest.raises(AvoidListedError):
        Funnel(repository).add(zelda())  # the store's own secret, made once
    with pytest.raises(ConfigError, match="another secret than the secret given to Funnel"):
        Funnel(repository, suppression_secret="s3cret").add(zelda())


def _chain(error: BaseException) -> list[BaseException]:
    """``error`` and every exception it carries as cause or context."""
    found: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in found:
        found.append(current)
        current = current.__cause__ or current.__context__
    return found


def test_a_duplicate_the_database_refuses_carries_no_personal_data(
    repository: Repository,
) -> None:
    """DESIGN 13: no personal data in an exception's chain. A duplicate found by the
    store's unique index (a race, or a bulk insert) raised DuplicateError chained to
    the driver's error, whose message names the key on PostgreSQL ("Key (key)=(email:
    ...) already exists") and MariaDB ("Duplicate entry '...'"), and whose ``params``
    held the whole row."""
    email = "zelda.private@example.com"
    repository.commit(ChangeSet(inserts=[Lead(first_name="Zelda", email=email)]))
    with pytest.raises(DuplicateError) as caught:
        # Past the funnel's own lookup: the store itself finds the clash.
        repository.commit(ChangeSet(inserts=[Lead(first_name="Zed", email=email)]))
    assert email not in "".join(traceback.format_exception(caught.value))
    for error in _chain(caught.value):
        carried = {k: v for k, v in vars(error).items() if k != "key"}  # the caller's own
        assert email not in repr(carried), type(error)


def test_a_statement_the_database_fails_keeps_no_parameters(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'refusing.db'}"
    repository = SqlRepository(url)
    with repository.engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TRIGGER refuse BEFORE INSERT ON lf_leads BEGIN SELECT RAISE(ABORT, 'no'); END"
        )
    email = "zelda.private@example.com"
    try:
        with pytest.raises(StorageError) as caught:
            Funnel(repository).add(Lead(first_name="Zelda", email=email))
        chain = _chain(caught.value)
        # Not chained to the driver's error, whose words may name the value (MariaDB's
        # "Duplicate entry '...'"): the message gives its first line (the trigger's).
        assert "the database refused the change: no;" in str(caught.value)
        assert len(chain) == 1
        for error in chain:
            assert email not in repr(vars(error)), type(error)
    finally:
        repository.close()


def test_an_insert_of_a_stored_id_carries_no_personal_data(repository: Repository) -> None:
    """The same insert committed twice (a retry after a lost acknowledgement) trips on
    the person's key first: the ConcurrencyError is not chained to the driver's error,
    which names the e-mail on PostgreSQL and MariaDB."""
    email = "zelda.private@example.com"
    lead = Lead(first_name="Zelda", email=email)
    repository.commit(ChangeSet(inserts=[lead]))
    with pytest.raises(ConcurrencyError) as caught:
        repository.commit(ChangeSet(inserts=[lead]))
    assert email not in "".join(traceback.format_exception(caught.value))
    for error in _chain(caught.value):
        assert email not in repr(vars(error)), type(error)


def test_mariadbs_duplicate_value_is_hidden_in_a_refusal() -> None:
    import sqlalchemy.exc as sa_exc

    from leadfunnel._sql._repository import _refusal

    class DriverError(Exception):  # as PyMySQL's: (errno, message)
        pass

    message = "Duplicate entry 'email:z@x.example.com' for key 'PRIMARY'"
    text = _refusal(sa_exc.IntegrityError("INSERT ...", None, DriverError(1062, message)))
    assert "z@x.example.com" not in text
    assert "Duplicate entry (value hidden) for key 'PRIMARY'" in text
