"""Privacy audit, second round (DESIGN.md section 13), on every backend in ``conftest``:

- ``leadfunnel export-person`` and ``erase`` find an avoided person by an e-mail or
  phone they held before (the suppression list names their record), and say "erased"
  only of people erased;
- the erasure's own reason keeps no e-mail address or phone number, however written,
  nor any other value of the person's;
- the id of a record merged away names the record at the end of its merges, which
  holds its data now, not one merged away in turn.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from click.testing import CliRunner

from conftest import person
from leadfunnel import (
    Funnel,
    Lead,
    NotFoundError,
    Repository,
    SqlRepository,
)
from leadfunnel._cli import _privacy as cli_privacy
from leadfunnel._cli import main
from leadfunnel.testing import ManualClock

OLD = "olga.old@oldkey.example.com"
NEW = "olga.new@oldkey.example.com"


def _olga(funnel: Funnel, **fields: Any) -> Lead:
    """Olga, avoided, her e-mail changed since: the old one is only on the suppression
    list now (as a keyed hash naming her record), no longer in the key index."""
    lead = funnel.add(
        Lead(first_name="Olga", last_name="Oldkey", email=OLD, status="raw", **fields)
    )
    funnel.avoid(lead)
    stored = funnel.get_lead(lead.id)
    funnel.update(stored.model_copy(update={"email": NEW}))
    assert funnel.find(email=OLD) is None
    return lead


@pytest.fixture
def cli(repository: Repository, clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``leadfunnel erase`` / ``export-person`` run on the test's repository (any
    backend): returns ``run(*arguments) -> (status, stdout, stderr)``."""

    def open_funnel(db: str, migrate: str = "auto", **options: Any) -> Funnel:
        return Funnel(repository, clock=clock, **options)

    monkeypatch.setattr(cli_privacy, "open_funnel", open_funnel)

    def run(*arguments: str) -> tuple[int, str, str]:
        done = CliRunner().invoke(main, [*arguments, "--db", "x"], catch_exceptions=False)
        return done.exit_code, done.stdout, done.stderr

    return run


# --- 1. an avoided person found by a key they held before -----------------------------


def test_export_person_by_an_avoided_persons_former_email_exports_them(
    funnel: Funnel, cli: Any
) -> None:
    lead = _olga(funnel)
    code, out, err = cli("export-person", OLD)
    assert (code, err) == (0, "")
    exported = json.loads(out)
    assert [(r["id"], r["email"], r["last_name"]) for r in exported["records"]] == [
        (str(lead.id), NEW, "Oldkey")
    ]
    assert exported == json.loads(json.dumps(funnel.export_person(lead)))


def test_erase_by_an_avoided_persons_former_email_erases_them(funnel: Funnel, cli: Any) -> None:
    lead = _olga(funnel)
    code, out, err = cli("erase", OLD)
    assert code == 0, err
    assert out.splitlines() == [f"erased {OLD}: 1 records (suppressed)"]
    erased = funnel.get_lead(lead.id)
    assert erased.erased_at is not None
    assert (erased.email, erased.last_name) == (None, None)
    # Now erased: both keys say so, and nothing is exported.
    for key in (OLD, NEW):
        code, _, err = cli("export-person", key)
        assert code == 2
        assert "that person was erased" in err
        assert "check the spelling" not in err
        code, _, err = cli("erase", key)
        assert code == 2
        assert f"not found: {key} (erased before: on the suppression list)" in err


def test_an_avoided_contacts_former_phone_finds_the_contact_and_its_lead(
    funnel: Funnel, cli: Any
) -> None:
    lead = funnel.capture(Lead(**person(1, phone="+15125550166")))
    deal = funnel.set_appointment(lead, force=True)
    funnel.avoid(deal.contact_id)
    contact = funnel.get_contact(deal.contact_id)
    funnel.update(contact.model_copy(update={"phone": "+15125550199"}))
    assert funnel.find(phone="(512) 555-0166") is None
    code, out, err = cli("export-person", "(512) 555-0166")
    assert code == 0, err
    kinds = {(r["kind"], r["id"]) for r in json.loads(out)["records"]}
    assert kinds == {
        ("lead", str(lead.id)),
        ("contact", str(deal.contact_id)),
        ("opportunity", str(deal.id)),
    }
    code, out, err = cli("erase", "512.555.0166")
    assert code == 0, err
    assert "erased 512.555.0166: 2 records (suppressed)" in out
    assert funnel.get_contact(deal.contact_id).erased_at is not None
    assert funnel.get_lead(lead.id).erased_at is not None


def test_a_former_key_of_a_record_merged_away_finds_the_record_it_was_merged_into(
    funnel: Funnel, cli: Any
) -> None:
    """Its suppression names the record merged away: the merge log says who holds it."""
    kept = funnel.avoid(funnel.capture(Lead(**person(1))))
    gone = _olga(funnel)
    funnel.merge(kept, gone)
    code, out, err = cli("export-person", OLD)
    assert code == 0, err
    exported = json.loads(out)
    assert [r["id"] for r in exported["records"]] == [str(kept.id)]
    assert [m["merged_away"]["id"] for m in exported["merges"]] == [str(gone.id)]
    code, out, err = cli("erase", OLD)
    assert code == 0, err
    assert funnel.get_lead(kept.id).erased_at is not None


def test_erase_goes_on_past_a_person_it_cannot_erase(funnel: Funnel, cli: Any) -> None:
    """An avoided person with --keep-nothing is refused (their keys stay refused for
    good); the others named are erased all the same, and the status says one was not."""
    _olga(funnel)
    other = funnel.capture(Lead(**person(2)))
    code, out, err = cli("erase", OLD, str(other.email), "--keep-nothing")
    assert code == 2
    assert out.splitlines() == [f"erased {other.email}: 1 records (nothing kept)"]
    assert f"not erased: {OLD}: " in err
    assert "avoid list" in err
    assert "1 of the people found not erased" in err
    assert funnel.get_lead(other.id).erased_at is not None
    assert funnel.find(email=NEW) is not None


def test_the_library_refuses_an_email_for_an_id_without_repeating_it(funnel: Funnel) -> None:
    """erase() and export_person() take a record or its id; an e-mail or phone given
    instead is not repeated in the message (exceptions end up in logs)."""
    _olga(funnel)
    for ask in (funnel.erase, funnel.export_person, funnel.get):
        for key in (OLD, "+1 (512) 555-0177"):
            with pytest.raises(NotFoundError, match=r"funnel\.find\(email=") as caught:
                ask(key)
            assert key not in str(caught.value)
            assert caught.value.id == key
    with pytest.raises(NotFoundError, match="no record with id nope"):
        funnel.get("nope")


def test_the_command_finds_an_avoided_persons_former_email_in_a_sqlite_file(
    tmp_path: Path,
) -> None:
    """The same through ``--db``, as an operator runs it."""
    db = f"sqlite:///{tmp_path / 'crm.db'}"
    repository = SqlRepository(db)
    lead = _olga(Funnel(repository))
    repository.close()

    def run(*arguments: str) -> tuple[int, str, str]:
        done = CliRunner().invoke(main, [*arguments, "--db", db], catch_exceptions=False)
        return done.exit_code, done.stdout, done.stderr

    code, out, _ = run("export-person", OLD)
    assert code == 0
    assert json.loads(out)["records"][0]["email"] == NEW
    assert run("erase", OLD)[0] == 0
    blob = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("crm.db"))
    assert NEW.encode() not in blob
    assert b"Oldkey" not in blob
    repository = SqlRepository(db)
    assert Funnel(repository).get_lead(lead.id).erased_at is not None
    repository.close()


# --- 2. the erasure's own reason -------------------------------------------------------

ZELDA = "zelda@privacy.example.com"
ZELDA_OLD = "zelda.old@privacy.example.com"


def _zelda(funnel: Funnel) -> Lead:
    lead = funnel.add(
        Lead(
            first_name="Zelda",
            last_name="Quixotic",
            email=ZELDA_OLD,
            phone="+15125550177",
            company="Quixotic Holdings",
            status="raw",
        )
    )
    # Her e-mail changed: the old one is kept only as the digest in the update event.
    funnel.update(funnel.get_lead(lead.id).model_copy(update={"email": ZELDA}))
    return lead


def _everything(funnel: Funnel, lead: Lead) -> str:
    return json.dumps(
        [
            [r.model_dump(mode="json") for r in funnel.leads()],
            [e.model_dump(mode="json") for e in funnel.events(limit=None)],
            funnel.export_person(lead),
        ]
    ).lower()


def _erase_reason(funnel: Funnel, lead: Lead) -> str | None:
    (erase,) = [e for e in funnel.history(lead) if e.name == "erase"]
    return erase.reason


@pytest.mark.parametrize(
    ("reason", "kept"),
    [
        (
            f"request from Zelda <{ZELDA}>, also {ZELDA_OLD}, tel (512) 555-0177 / +1 512 555 0177",
            "request from [erased] <[erased]>, also [erased], tel [erased] / [erased]",
        ),
        (
            f"ZELDA QUIXOTIC ({ZELDA.upper()}) asked by phone, 512.555.0177, "
            "dialled 00 1 512 555 0177 from abroad",
            "[erased] [erased] ([erased]) asked by phone, [erased], dialled [erased] from abroad",
        ),
        (
            # Not hers: an e-mail and a phone number in it go all the same.
            "forwarded by dpo@corp.example.com, call back +44 20 7946 0958",
            "forwarded by [erased], call back [erased]",
        ),
        (
            # Nothing personal: kept as it is (dates, ticket numbers, articles).
            "Art. 17 request 2026-11-28, ticket #4411, GDPR 2016/679, ref 123456789",
            "Art. 17 request 2026-11-28, ticket #4411, GDPR 2016/679, ref 123456789",
        ),
    ],
)
def test_the_erasures_reason_keeps_no_email_or_phone_of_hers_however_written(
    funnel: Funnel, reason: str, kept: str
) -> None:
    lead = _zelda(funnel)
    funnel.erase(lead, reason=reason)
    assert _erase_reason(funnel, lead) == kept
    left = _everything(funnel, lead)
    for needle in ("zelda", "quixotic", "555-0177", "555 0177", "5125550177", "dpo@"):
        assert needle not in left


def test_a_reason_longer_once_blanked_is_cut_to_what_an_event_holds(funnel: Funnel) -> None:
    lead = funnel.add(Lead(first_name="Al", email="al@privacy.example.com", status="raw"))
    reason = ("Al " * 667)[:2000]
    funnel.erase(lead, reason=reason)
    kept = _erase_reason(funnel, lead)
    assert kept is not None
    assert len(kept) == 2000
    assert "Al " not in kept


def test_a_national_number_is_read_in_the_funnels_region(
    repository: Repository, clock: ManualClock
) -> None:
    funnel = Funnel(repository, clock=clock, phone_region="GB")
    lead = funnel.add(Lead(first_name="Zara", phone="+44 20 7946 0958", status="raw"))
    assert lead.phone == "+442079460958"
    funnel.erase(lead, reason="asked on 020 7946 0958; 0161 496 0000 is the office")
    assert _erase_reason(funnel, lead) == "asked on [erased]; [erased] is the office"


def test_event_data_naming_a_former_key_or_a_phone_written_otherwise_is_found() -> None:
    """The person's event data is scrubbed the same way: an e-mail they edited away
    (known by its digest only) or their phone written another way names them."""
    from leadfunnel._privacy import _Personal

    def digest(key: str) -> str:
        return f"#{key}"

    texts = _Personal.of(
        [Lead(first_name="Zelda", phone="+15125550177")],
        ["phone:+15125550177"],
        [digest(f"email:{ZELDA_OLD}")],
        digest,
        "US",
    )
    assert texts.mentions(f"wrote from <{ZELDA_OLD.upper()}>")
    assert texts.mentions("call (512) 555-0177 after 5")
    assert texts.mentions("tel:0015125550177")
    assert not texts.mentions("wrote from someone@privacy.example.com")
    assert not texts.mentions("ticket 4411 of 2026-11-28")


# --- 3. a chain of merges ---------------------------------------------------------------


def test_a_record_merged_away_twice_names_the_record_at_the_end_of_the_chain(
    funnel: Funnel,
) -> None:
    a, b, c = (funnel.capture(Lead(**person(n))) for n in (1, 2, 3))
    funnel.merge(b, a)
    funnel.merge(c, b)
    for ask in (funnel.get, funnel.erase, funnel.export_person, funnel.get_lead):
        with pytest.raises(NotFoundError, match=f"merged into {b.id}.*pass {c.id}") as caught:
            ask(a.id)
        assert "2 merges" in str(caught.value)
    with pytest.raises(NotFoundError, match=f"merged into {c.id}, which holds its data now"):
        funnel.get(b.id)
    exported = funnel.export_person(c)
    assert {m["merged_away"]["id"] for m in exported["merges"]} == {str(a.id), str(b.id)}
    # Undone, the chain is one merge shorter: b holds a's data again.
    funnel.unmerge(c)
    with pytest.raises(NotFoundError, match=f"merged into {b.id}, which holds .*pass {b.id}"):
        funnel.get(a.id)


def test_a_contact_merged_away_twice_names_the_contact_at_the_end(funnel: Funnel) -> None:
    contacts = [
        funnel.set_appointment(funnel.capture(Lead(**person(n))), force=True).contact_id
        for n in (1, 2, 3)
    ]
    first, second, last = contacts
    funnel.merge(second, first)
    funnel.merge(last, second)
    with pytest.raises(NotFoundError, match=f"contact {first} was merged .*pass {last}"):
        funnel.erase(first)
    erasure = funnel.erase(last)
    assert {first, second, last} <= set(erasure.subject_ids)


class _Chain:
    """A store holding nothing but merge logs (``keep_id`` by merged-away id)."""

    def __init__(self, logs: dict[UUID, UUID]) -> None:
        from leadfunnel._repository import MergeLog

        now = Lead(first_name="X").created_at
        self.logs = {
            gone: MergeLog(gone, keep, now, Lead(first_name="K"), Lead(id=gone), 2)
            for gone, keep in logs.items()
        }

    def get(self, id: UUID) -> Any:
        raise NotFoundError(id)

    def merges_of(self, ids: Any) -> list[Any]:
        return [log for gone, log in self.logs.items() if gone in ids]


def test_a_chain_of_merges_that_loops_or_runs_long_ends_with_no_holder() -> None:
    from leadfunnel._changes import MAX_MERGES_FOLLOWED, get_or_merged, merged_into

    ids = [UUID(int=n + 1) for n in range(MAX_MERGES_FOLLOWED + 5)]
    looping = _Chain({ids[0]: ids[1], ids[1]: ids[2], ids[2]: ids[0]})
    chain, holder = merged_into(looping, ids[0])  # type: ignore[arg-type]
    assert holder is None
    assert len(chain) == 3
    with pytest.raises(NotFoundError, match=f"merged into {ids[1]}.*no stored record"):
        get_or_merged(looping, ids[0])  # type: ignore[arg-type]
    long = _Chain(dict(itertools.pairwise(ids)))
    chain, holder = merged_into(long, ids[0])  # type: ignore[arg-type]
    assert (len(chain), holder) == (MAX_MERGES_FOLLOWED, None)


def test_a_key_nobody_held_is_said_to_be_misspelt(funnel: Funnel, cli: Any) -> None:
    """Nothing on the suppression list, nothing stored: "check the spelling"; a value
    that is no e-mail nor phone is refused as such."""
    _olga(funnel)  # (something is suppressed: the list is asked)
    code, _, err = cli("export-person", "ghost@nowhere.example.com")
    assert code == 2
    assert "check the spelling" in err
    assert "erased" not in err
    code, _, err = cli("export-person", "12")
    assert code == 2
    assert "phone=" in err
