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
    is compacted afterwards, so no byte of them is left in it (SQLite). People not found
    are listed; the status is 2 when nobody was found.

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
    from .._models import Contact

    models: dict[str, Any] = {}
    if lead_model:
        models["lead_model"] = load_lead_model(lead_model)
    if contact_model:
        models["contact_model"] = load_model(contact_model, Contact, "--contact-model")
    funnel = open_funnel(db, migrate="check", **models)
    missing: list[str] = []
    # Everyone is looked up first: the e-mail and the phone of one person name them
    # both, and once erased a person is found by neither.
    found: dict[Any, list[str]] = {}
    for who in dict.fromkeys(wanted):
        person = _find(funnel, who, missing)
        if person is not None:
            found.setdefault(person.id, []).append(who)
    erased = 0
    for person_id, named in found.items():
        done = funnel.erase(person_id, suppress=not keep_nothing, reason="erasure request")
        kept = "suppressed" if done.suppressed else "nothing kept"
        names = ", ".join(printable(who) for who in named)
        click.echo(f"erased {names}: {len(done.subject_ids)} records ({kept})")
        erased += 1
    gone = [who for who in missing if _suppressed(funnel, who)]
    for who in missing:
        why = " (erased or avoided before: on the suppression list)" if who in gone else ""
        click.echo(f"not found: {printable(who)}{why}", err=True)
    if erased:
        funnel.repository.compact()
    if not erased:
        fail(
            f"nobody of the {len(missing)} named is stored; "
            + (f"{len(gone)} of them erased or avoided before" if gone else "check the spelling")
        )


@click.command(name="export-person")
@db_option
@click.argument("person")
@output_option
@guarded
def export_person(db: str, person: str, output: str | None) -> None:
    """Everything stored about one person, as JSON (an access or portability request).

    \b
    Example:
      leadfunnel export-person pat@acme-it.example.com -o pat.json
    """
    funnel = open_funnel(db, migrate="check")
    found = _find(funnel, person)
    if found is None:
        if _suppressed(funnel, person):
            fail(
                f"nobody with e-mail or phone {person!r} is stored: that person was erased "
                "or avoided before (the suppression list keeps only a keyed hash: there is "
                "nothing to export)"
            )
        fail(f"nobody with e-mail or phone {person!r} is stored; check the spelling")
    data = funnel.export_person(found)
    emit(json_text(data, output), output, "1 person")


def _suppressed(funnel: Any, who: str) -> bool:
    """Whether the e-mail or phone ``who`` is on the suppression list (a person erased
    or avoided before, whom no lookup finds any more)."""
    from .._errors import InvalidArgumentError
    from .._people import keys_of

    email, phone = (who, None) if "@" in who else (None, who)
    try:
        keys = keys_of(email=email, phone=phone, phone_region=funnel.phone_region)
    except InvalidArgumentError:
        return False
    return bool(funnel._suppressor.banned(keys))


def _find(funnel: Any, who: str, missing: list[str] | None = None) -> Any:
    """The person with this e-mail (anything with an @) or phone, or ``None`` (noted
    in ``missing``); a value that is neither exits 2."""
    from .._errors import InvalidArgumentError

    try:
        found = funnel.find(email=who) if "@" in who else funnel.find(phone=who)
    except InvalidArgumentError as exc:
        if missing is None:
            fail(str(exc))
        found = None
    if found is None and missing is not None:
        missing.append(who)
    return found
