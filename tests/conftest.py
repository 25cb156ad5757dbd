"""Fixtures shared by the project's own tests.

``repository`` is parametrised over every adapter available here; tests that take
``funnel`` therefore run once per backend. PostgreSQL and MariaDB join when
``LEADFUNNEL_TEST_POSTGRES_URL`` / ``LEADFUNNEL_TEST_MYSQL_URL`` are set, each
repository in a fresh schema (database), all dropped when the session ends.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from leadfunnel import Funnel, InMemoryRepository, Repository, SqlRepository
from leadfunnel.testing import ManualClock

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

SERVER_URLS = {
    "postgres": os.environ.get("LEADFUNNEL_TEST_POSTGRES_URL"),
    "mysql": os.environ.get("LEADFUNNEL_TEST_MYSQL_URL"),
}
REPOSITORY_KINDS = ["memory", "sqlite", *(kind for kind, url in SERVER_URLS.items() if url)]
_CREATED: list[tuple[str, str]] = []  # server schemas/databases made here, dropped at the end


def person(n: int, **fields: Any) -> dict[str, Any]:
    """A lead's fields: a US MSP owner who fits the usual test profile."""
    base: dict[str, Any] = {
        "first_name": f"Pat{n}",
        "last_name": "Rivera",
        "email": f"pat{n}@acme-it{n}.example.com",
        "company": f"Acme IT {n}",
        "title": "CEO",
        "industry": "IT Services",
        "employees": 25,
        "annual_revenue": 2_500_000,
        "country": "US",
        "region": "TX",
        "source": "webinar",
    }
    base.update(fields)
    return base


def make_repository(kind: str, tmp_path: Any) -> Repository:
    if kind == "memory":
        return InMemoryRepository()
    if kind == "sqlite":
        return SqlRepository(f"sqlite:///{tmp_path / 'funnel.db'}")
    if kind in SERVER_URLS:
        return _server_repository(kind)
    raise ValueError(kind)


def _server_repository(kind: str) -> SqlRepository:
    """A repository in a fresh PostgreSQL schema or MariaDB database."""
    url = SERVER_URLS[kind]
    assert url is not None
    name = f"lf_test_{uuid.uuid4().hex[:16]}"
    _admin(kind, f"CREATE {'SCHEMA' if kind == 'postgres' else 'DATABASE'} {name}")
    _CREATED.append((kind, name))  # dropped at the end even if opening it fails
    if kind == "postgres":
        return SqlRepository(url, schema=name)
    return SqlRepository(sa.make_url(url).set(database=name))


def _admin(kind: str, sql: str) -> None:
    engine = sa.create_engine(str(SERVER_URLS[kind]), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(sql)
    finally:
        engine.dispose()


@pytest.fixture(scope="session", autouse=True)
def _drop_server_schemas() -> Iterator[None]:
    yield
    for kind in SERVER_URLS:
        names = [name for made, name in _CREATED if made == kind]
        if not names:
            continue
        # One connection for all of them: an engine per schema cost seconds at the end.
        engine = sa.create_engine(str(SERVER_URLS[kind]), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                for name in names:
                    conn.exec_driver_sql(
                        f"DROP SCHEMA {name} CASCADE"
                        if kind == "postgres"
                        else f"DROP DATABASE {name}"
                    )
        finally:
            engine.dispose()


@pytest.fixture(params=REPOSITORY_KINDS)
def repository(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Repository]:
    repo = make_repository(request.param, tmp_path)
    yield repo
    repo.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def funnel(repository: Repository, clock: ManualClock) -> Funnel:
    return Funnel(repository, clock=clock)


def outputs_under_hash_seeds(*args: str) -> set[str]:
    """What ``python ARGS`` prints under three string-hash seeds: one output if nothing
    it prints depends on the order of a set (each seed orders sets its own way)."""
    outputs = set()
    for seed in ("1", "2", "3"):
        done = subprocess.run(
            [sys.executable, *args],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        outputs.add(done.stdout)
    return outputs
