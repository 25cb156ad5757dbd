"""A page of people filtered by owner or source (schema version 7) or by tag (version 9)
reads one range of an index, in list order, on SQLite: with single-column indexes, and
a tags index without the list order, SQLite sorted every match for each page, so
walking one owner's or one tag's people a page at a time was quadratic (performance
audits, 2026-11-29). The query plan says so; no timing is asserted."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from conftest import new_sqlite_url, person
from leadfunnel import Contact, Funnel, Lead, SqlRepository


def _plans(tmp_path: Path, read: Any) -> list[str]:
    """The SQLite query plan of every SELECT ``read(funnel)`` runs on lf_leads or
    lf_contacts."""
    url = new_sqlite_url(tmp_path / "funnel.db")
    repository = SqlRepository(url)
    funnel = Funnel(repository)
    for n in range(30):
        owner, source = "abc"[n % 3], "xy"[n % 2]
        tags = {"vip"} if n % 2 else set()
        funnel.add(Lead(**person(n, owner=owner, source=source, tags=tags)))
        funnel.add(Contact(**person(100 + n, owner=owner, source=source, tags=tags)))
    statements: list[tuple[str, Any]] = []

    def seen(conn: Any, cursor: Any, statement: str, parameters: Any, *rest: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    sa.event.listen(repository.engine, "before_cursor_execute", seen)
    page = read(funnel)
    assert page  # the filter found people: the plan is that of a real page
    read(funnel, after=page[-1])
    repository.close()
    plans = []
    with sqlite3.connect(tmp_path / "funnel.db") as db:
        for statement, parameters in statements:
            if "lf_leads" in statement or "lf_contacts" in statement:
                rows = db.execute(f"EXPLAIN QUERY PLAN {statement}", parameters).fetchall()
                plans.append(" | ".join(str(row[-1]) for row in rows))
    return plans


@pytest.mark.parametrize(
    ("read", "index"),
    [
        (lambda f, **k: f.leads(owner="a", limit=3, **k), "ix_lf_leads_owner_created"),
        (lambda f, **k: f.leads(source="x", limit=3, **k), "ix_lf_leads_source_created"),
        (lambda f, **k: f.contacts(owner="b", limit=3, **k), "ix_lf_contacts_owner_created"),
        (lambda f, **k: f.contacts(source="y", limit=3, **k), "ix_lf_contacts_source_created"),
        (lambda f, **k: f.leads(tag="vip", limit=3, **k), "ix_lf_tags_tag_created"),
        (lambda f, **k: f.contacts(tag="vip", limit=3, **k), "ix_lf_tags_tag_created"),
    ],
    ids=[
        "leads-owner",
        "leads-source",
        "contacts-owner",
        "contacts-source",
        "leads-tag",
        "contacts-tag",
    ],
)
def test_a_filtered_page_reads_a_range_in_list_order(tmp_path: Path, read: Any, index: str) -> None:
    plans = _plans(tmp_path, read)
    pages = [p for p in plans if index in p]
    assert len(pages) == 2, plans  # the first page and the next
    assert not any("TEMP B-TREE" in p for p in pages), pages  # no sort of the matches


def test_a_tag_page_follows_a_created_at_the_port_was_given(tmp_path: Path) -> None:
    """The tag rows hold their person's created_at for the list order: a change through
    the port that moves it (the facade refuses to) moves the person's place in a page
    by tag too, as in memory."""
    from datetime import timedelta

    from leadfunnel import InMemoryRepository
    from leadfunnel.storage import ChangeSet

    for repository in (InMemoryRepository(), SqlRepository(new_sqlite_url(tmp_path / "t.db"))):
        funnel = Funnel(repository)
        first, second = (funnel.add(Lead(**person(n, tags={"vip"}))) for n in range(2))
        later = second.created_at + timedelta(days=1)
        moved = first.model_copy(update={"created_at": later, "version": first.version + 1})
        repository.commit(ChangeSet(updates=[moved]))
        assert [r.id for r in funnel.leads(tag="vip")] == [second.id, first.id]
        assert [r.id for r in funnel.leads(tag="vip", after=second.id)] == [first.id]
        repository.close()
