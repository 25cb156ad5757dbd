"""The tests' pool of server schemas (``conftest.SchemaPool``): a schema given back is
handed out again only empty, as a new one starts, and never one its test changed."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from conftest import SERVER_URLS, T0, open_server, person, release_repository, schema_pool
from leadfunnel import Funnel, Lead
from leadfunnel._sql import _schema as schema
from leadfunnel.testing import ManualClock

SERVERS = [kind for kind, url in SERVER_URLS.items() if url]
pytestmark = pytest.mark.skipif(not SERVERS, reason="no database server URL is set")


@pytest.mark.parametrize("kind", SERVERS)
def test_a_schema_given_back_comes_back_empty_as_a_new_one(kind: str) -> None:
    pool = schema_pool(kind)
    name = pool.take()
    repository = open_server(kind, name)
    funnel = Funnel(repository, clock=ManualClock(T0))
    lead = funnel.capture(Lead(**person(1)))
    funnel.qualify(lead, force=True)
    funnel.erase(lead)  # its e-mail suppressed: never captured again in this schema
    release_repository(repository)

    again = pool.take()
    assert again == name  # reused, not made anew
    repository = open_server(kind, again)
    try:
        funnel = Funnel(repository, clock=ManualClock(T0))
        assert funnel.leads() == []
        assert funnel.events() == []
        assert repository.schema_version == schema.SCHEMA_VERSION
        # The event counter starts again where a new schema's does; nothing suppressed.
        later = funnel.capture(Lead(**person(1)))
        assert [e.position for e in funnel.history(later)] == [1]
    finally:
        release_repository(repository)


@pytest.mark.parametrize("kind", SERVERS)
def test_a_schema_its_test_changed_is_not_reused(kind: str) -> None:
    pool = schema_pool(kind)
    name = pool.take()
    repository = open_server(kind, name)
    with repository.engine.begin() as conn:
        leads = schema.leads.to_metadata(sa.MetaData())  # leadfunnel's own table untouched
        sa.Index("ix_test_extra", leads.c.owner, leads.c.status).create(conn)
    release_repository(repository)
    taken = [pool.take() for _ in range(2)]
    assert name not in taken
    for other in taken:
        pool.give_back(other)


@pytest.mark.parametrize("kind", SERVERS)
def test_a_schema_given_back_twice_is_handed_out_once(kind: str) -> None:
    pool = schema_pool(kind)
    name = pool.take()
    pool.give_back(name)
    pool.give_back(name)
    taken = [pool.take(), pool.take()]
    assert taken.count(name) == 1
    for other in taken:
        pool.give_back(other)
