"""The commands that answer people's requests about their data: ``erase`` (the right to
erasure) and ``export-person`` (access and portability)."""

from __future__ import annotations

from typing import Any

import click

from .._csv_out import printable
from .._toml import read_text
from ._common import (
    db_option,
    emit,
    fail,
    guarded,
    json_text,
    lead_model_option,
    load_lead_model,
    load_model,
    open_funnel,
    output_option,
)

__all__ = ["erase", "export_person"]


@click.command()
@db_option
@click.argument("people", nargs=-1)
@click.option(
    "--file",
    "from_file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Also erase the people listed in this file, one e-mail or phone a line.",
)
@click.option(
    "--keep-nothing",
    is_flag=True,
    help="Keep no hash of their e-mail or phone either: they may be added again.",
)
@lead_model_option(
    "Your Lead subclass (package.module:Class): its fields not marked Personal are kept. "
    "Without it, every field of yours on the erased leads goes."
)
@click.option(
    "--contact-model",
    default=None,
    metavar="MODULE:CLASS",
    help="Your Contact subclass, as --lead-model for the erased contacts.",
)
@guarded
def erase(
    db: str,
    people: tuple[str, ...],
    from_file: str | None,
    keep_nothing: bool,
    lead_model: str | None,
    contact_model: str | None,
) -> None:
    """Erase people's personal data now (a right-to-erasure request), by e-mail or phone.

    Their records keep what reports count; by default their e-mail and phone stay on the
    suppression list as keyed hashes, so nobody can add them again. The database file
    is compacted afterwards, so no byte of them is left in it (SQLite). A person is found
    by an e-mail or phone they hold (an avoided person also by one they held before).
    People not found are listed, and those found who cannot be erased (avoided, with
    --keep-nothing); the status is 2 when nobody was erased, or somebody found was not.

    \b
    Examples:
      leadfunnel erase zelda@example.com +15125550177
      leadfunnel erase --file requests.txt
      leadfunnel erase zelda@example.com --lead-model crm.models:MyLead

    Your own fields (custom fields) are blanked when marked leadfunnel.Personal; the
    others are kept only if this command knows your classes (--lead-model,
    --contact-model): without them it cannot tell, and removes them all.
    """
    wanted = list(people)
    if from_file:
        text = read_text(from_file, "list of people")
        wanted += [line.strip() for line in text.splitlines() if line.strip()]
    if not wanted:
        fail("name the people to erase (e-mail or phone), or give --file")
    from .._errors import LeadFunnelError, StorageError
    from .._models import Contact

    models: dict[str, Any] = {}
    if lead_model:
        models["lead_model"] = load_lead_model(lead_model)
    if contact_model:
        models["contact_model"] = load_model(contact_model, Contact, "--contact-model")
    funnel = open_funnel(db, migrate="check", **models)
    missing: dict[str, str] = {}  # who -> why nobody was found
    # Everyone is looked up first: the e-mail and the phone of one person name them
    # both, and once erased a person is found by neither.
    found: dict[Any, list[str]] = {}
    for who in dict.fromkeys(wanted):
        person = _find(funnel, who, missing)
        if person is not None:
            found.setdefault(person.id, []).append(who)
    erased = 0
    refused: list[str] = []
    for person_id, named in found.items():
        names = ", ".join(printable(who) for who in named)
        try:
            done = funnel.erase(person_id, suppress=not keep_nothing, reason="erasure request")
        except LeadFunnelError as exc:
            # (An avoided person with --keep-nothing, one erased meanwhile, one the
            # application's classes refuse.) The others are still erased, and the
            # database compacted; a failing database stops the command.
            if isinstance(exc, StorageError) and not exc.of_value:
                raise
            click.echo(f"not erased: {names}: {printable(str(exc))}", err=True)
            refused.append(names)
            continue
        kept = "suppressed" if done.suppressed else "nothing kept"
        click.echo(f"erased {names}: {len(done.subject_ids)} records ({kept})")
        erased += 1
    for who, why in missing.items():
        click.echo(f"not found: {printable(who)}{why}", err=True)
    if erased:
        funnel.repository.compact()
    if refused:
        fail(f"{len(refused)} of the people found not erased: {'; '.join(refused)}")
    if not erased:
        gone = sum(1 for why in missing.values() if why == _ERASED)
        fail(
            f"nobody of the {len(missing)} named is stored; "
            + (f"{gone} of them erased before" if gone else "check the spelling")
        )


@click.command(name="export-person")
@db_option
@click.argument("person")
@output_option
@guarded
def export_person(db: str, person: str, output: str | None) -> None:
    """Everything stored about one person, as JSON (an access or portability request),
    found by an e-mail or phone they hold (an avoided person also by one held before).

    \b
    Example:
      leadfunnel export-person pat@acme-it.example.com -o pat.json
    """
    funnel = open_funnel(db, migrate="check")
    missing: dict[str, str] = {}
    found = _find(funnel, person, missing, strict=True)
    if found is None:
        if missing[person] == _ERASED:
            fail(
                f"nobody with e-mail or phone {person!r} is stored: that person was erased "
                "(the suppression list keeps only a keyed hash of it: there is nothing "
                "to export)"
            )
        if missing[person]:
            fail(
                f"nobody with e-mail or phone {person!r} is stored; it is on the "
                "suppression list (only as a keyed hash), kept there by a record that "
                "is stored no more"
            )
        fail(f"nobody with e-mail or phone {person!r} is stored; check the spelling")
    data = funnel.export_person(found)
    emit(json_text(data, output), output, "1 person")


#: Why a person named is not found: erased before (only the hash of the key is kept).
_ERASED = " (erased before: on the suppression list)"
_UNKNOWN_HOLDER = " (on the suppression list, kept there by a record stored no more)"


def _find(funnel: Any, who: str, missing: dict[str, str], *, strict: bool = False) -> Any:
    """The person with the e-mail (anything with an @) or phone ``who``, as they hold it
    now or held it before, or ``None``; then ``missing[who]`` says why (``_ERASED``,
    ``_UNKNOWN_HOLDER`` or ``""``: nothing known). A value that is neither an e-mail
    nor a phone is noted as missing too, or exits 2 if ``strict``.

    A key the person no longer holds (an avoided person's e-mail edited away, an
    erased person's) is no longer in the key index that :meth:`Funnel.find` reads, but
    it stays on the suppression list, whose entry names the record that keeps it
    there: that record (or the one it was merged into) is the person, unless erased."""
    from .._changes import current_record
    from .._errors import InvalidArgumentError
    from .._models import Contact, Lead
    from .._people import keys_of

    email, phone = (who, None) if "@" in who else (None, who)
    try:
        found = funnel.find(email=email, phone=phone)
        keys = keys_of(email=email, phone=phone, phone_region=funnel.phone_region)
    except InvalidArgumentError as exc:
        if strict:
            fail(str(exc))
        missing[who] = ""
        return None
    if found is not None:
        return found
    why = ""
    for record_id in dict.fromkeys(funnel._suppressor.banned(keys).values()):
        record = current_record(funnel.repository, record_id)
        if not isinstance(record, (Lead, Contact)):
            why = why or _UNKNOWN_HOLDER
        elif record.erased_at is None:
            return record  # avoided, holding other keys now
        else:
            why = _ERASED
    missing[who] = why
    return None
