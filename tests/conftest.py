"""Fixtures shared by the project's own tests.

``repository`` is parametrised over every adapter available here; tests that take
``funnel`` therefore run once per backend. PostgreSQL and MariaDB join when
``LEADFUNNEL_TEST_POSTGRES_URL`` / ``LEADFUNNEL_TEST_MYSQL_URL`` are set.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from leadfunnel import Funnel, InMemoryRepository, Repository, SqlRepository
from leadfunnel.testing import ManualClock

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

REPOSITORY_KINDS = ["memory", "sqlite"]


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
    raise ValueError(kind)


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
