"""Duplicate searches read names as people type them on different systems: case,
accents, spaces and punctuation aside, decomposed text (NFD) as composed."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from leadfunnel import ConfigError, Funnel, Lead, Repository, SqlRepository
from leadfunnel._sql import _schema as schema
from leadfunnel.storage import trait_key


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("O'Connell", "Oconnell"),
        ("Acme, Inc.", "ACME Inc"),
        ("Müller", "Muller"),
        ("Café Ltd", unicodedata.normalize("NFD", "Café Ltd")),
        ("Straße GmbH", "STRASSE gmbh"),
        ("Smith-Jones", "Smith Jones"),
        ("\uff21\uff43\uff4d\uff45", "acme"),  # full-width letters
    ],
)
def test_names_written_differently_share_a_key(one: str, other: str) -> None:
    assert trait_key(one, "company") == trait_key(other, "company") is not None
    assert trait_key(one, "last_name") == trait_key(other, "last_name")


def test_keys_keep_what_tells_names_apart() -> None:
    assert trait_key("Acme 1", "company") != trait_key("Acme 2", "company")
    assert trait_key("Smith", "last_name") != trait_key("Smyth", "last_name")
    assert trait_key("!!!", "company") is None  # nothing to compare
    # A domain's dots and dashes are part of it.
    assert trait_key(" Shared.Example.com ", "email_domain") == "shared.example.com"
    assert trait_key("a-b.example.com", "email_domain") != trait_key(
        "ab.example.com", "email_domain"
    )


@given(st.text(max_size=60))
def test_a_key_is_the_same_for_any_normal_form_and_case(text: str) -> None:
    for form in ("NFC", "NFD", "NFKC"):
        variant = unicodedata.normalize(form, text)
        assert trait_key(variant.upper(), "company") == trait_key(text, "company")
        assert trait_key(f"  {variant} ", "last_name") == trait_key(text, "last_name")


def test_similar_finds_the_same_person_typed_on_another_system(repository: Repository) -> None:
    """A badge scan from a Mac (NFD) and a web form (NFC), an apostrophe dropped, a
    company's comma and full stop: the same person, flagged."""
    funnel = Funnel(repository)
    web = funnel.add(Lead(first_name="José", last_name="O'Connell", company="Café Müller, Inc."))
    badge = funnel.add(
        Lead(
            first_name=unicodedata.normalize("NFD", "José"),
            last_name="Oconnell",
            company=unicodedata.normalize("NFD", "Cafe Muller Inc"),
        )
    )
    stranger = funnel.add(Lead(first_name="Ann", last_name="Lee", company="Other Co"))
    assert [r.id for r in funnel.similar(badge)] == [web.id]
    assert [r.id for r in funnel.similar(web)] == [badge.id]
    assert funnel.similar(stranger) == []


def test_version_6_rekeys_the_people_stored_before(repository: Repository) -> None:
    """A store written before version 6 holds the old keys (trimmed and case-folded
    only): the upgrade rewrites them, so people stored before are found too."""
    if not isinstance(repository, SqlRepository):
        pytest.skip("the keys are the SQL adapter's columns")
    funnel = Funnel(repository)
    old = funnel.add(Lead(first_name="Sean", last_name="O'Connell", company="Acme, Inc."))
    plain = funnel.add(Lead(first_name="Ann", last_name="Lee", company="Other"))
    with repository._engine.begin() as conn:  # what version 5 stored
        conn.execute(
            sa.update(schema.leads)
            .where(schema.leads.c.id == old.id)
            .values(company_key="acme, inc.", last_name_key="o'connell")
        )
        conn.execute(sa.update(schema.schema_table).values(version=5))
    new = funnel.add(Lead(first_name="Sean", last_name="Oconnell", company="ACME Inc"))
    assert funnel.similar(new) == []  # the old keys: not found
    repository.close()
    upgraded = SqlRepository(repository.url, schema=repository.schema)
    try:
        assert upgraded.schema_version == schema.SCHEMA_VERSION
        assert [r.id for r in Funnel(upgraded).similar(new)] == [old.id]
        with upgraded._engine.connect() as conn:
            keys = dict(
                conn.execute(
                    sa.select(schema.leads.c.id, schema.leads.c.company_key).where(
                        schema.leads.c.id.in_([old.id, plain.id])
                    )
                ).all()
            )
        assert keys == {old.id: "acmeinc", plain.id: "other"}
    finally:
        upgraded.close()


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("कुमार", "कामरा"),  # Kumar, Kamra: the vowel signs tell them apart
        ("ガルシア", "カルシア"),  # a voicing mark
        ("สมชาย", "สมชัย"),
    ],
)
def test_the_marks_of_other_scripts_tell_names_apart(one: str, other: str) -> None:
    assert trait_key(one, "last_name") != trait_key(other, "last_name")
    decomposed = unicodedata.normalize("NFD", one)
    assert trait_key(decomposed, "last_name") == trait_key(one, "last_name")


def test_a_store_opened_without_migrating_refuses_to_search_by_old_keys(
    tmp_path: Path,
) -> None:
    """Opened with migrate="never" at version 5, its keys are folded as they were then:
    a search would silently miss people, so it says to upgrade."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    repository = SqlRepository(url)
    Funnel(repository).add(Lead(first_name="Sean", last_name="O'Connell"))
    with repository._engine.begin() as conn:
        conn.execute(sa.update(schema.schema_table).values(version=5))
    repository.close()
    old = SqlRepository(url, migrate="never")
    try:
        with pytest.raises(ConfigError, match="leadfunnel migrate"):
            old.people_like(last_name="O'Connell")
    finally:
        old.close()
