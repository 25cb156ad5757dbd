"""The storage contract on every adapter: memory, SQLite, PostgreSQL and MariaDB.

PostgreSQL and MariaDB run when ``LEADFUNNEL_TEST_POSTGRES_URL`` /
``LEADFUNNEL_TEST_MYSQL_URL`` are set (``.ci/run`` sets them); each test gets its own
schema (PostgreSQL) or database (MariaDB), empty, from the pool in ``conftest``.
"""

from __future__ import annotations

import os
from uuid import uuid4

import pytest
import sqlalchemy as sa

from conftest import release_repository, schema_pool
from leadfunnel import InMemoryRepository, Repository, SqlRepository
from leadfunnel.testing import RepositoryContract

POSTGRES_URL = os.environ.get("LEADFUNNEL_TEST_POSTGRES_URL")
MYSQL_URL = os.environ.get("LEADFUNNEL_TEST_MYSQL_URL")


class TestInMemoryRepository(RepositoryContract):
    def create_repository(self) -> Repository:
        return InMemoryRepository()


class TestSqliteRepository(RepositoryContract):
    def create_repository(self) -> Repository:
        return SqlRepository(f"sqlite:///{self.tmp_path / f'{uuid4().hex}.db'}")

    def reopen_repository(self, repository: Repository) -> Repository:
        assert isinstance(repository, SqlRepository)
        return SqlRepository(repository.url)


class TestSqliteMemoryRepository(RepositoryContract):
    """A private ``sqlite://`` database: one connection, shared by threads."""

    def create_repository(self) -> Repository:
        return SqlRepository("sqlite://")


class _ServerContract(RepositoryContract):
    kind = ""
    url: str | None = None

    def create_repository(self) -> Repository:
        if not self.url:
            pytest.skip("set the database URL to run this backend")
        return self.open(schema_pool(self.kind).take())

    def open(self, name: str) -> SqlRepository:
        raise NotImplementedError

    def name_of(self, repository: SqlRepository) -> str:
        raise NotImplementedError

    def reopen_repository(self, repository: Repository) -> Repository:
        assert isinstance(repository, SqlRepository)
        return self.open(self.name_of(repository))

    def destroy_repository(self, repository: Repository) -> None:
        release_repository(repository)


@pytest.mark.postgres
class TestPostgresRepository(_ServerContract):
    kind = "postgres"
    url = POSTGRES_URL

    def open(self, name: str) -> SqlRepository:
        assert self.url is not None
        return SqlRepository(self.url, schema=name)

    def name_of(self, repository: SqlRepository) -> str:
        assert repository.schema is not None
        return repository.schema


@pytest.mark.mysql
class TestMariaDbRepository(_ServerContract):
    kind = "mysql"
    url = MYSQL_URL

    def open(self, name: str) -> SqlRepository:
        assert self.url is not None
        return SqlRepository(sa.make_url(self.url).set(database=name))

    def name_of(self, repository: SqlRepository) -> str:
        assert repository.url.database is not None
        return repository.url.database
