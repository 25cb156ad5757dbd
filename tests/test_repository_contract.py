"""The storage contract on every adapter: memory, SQLite, PostgreSQL and MariaDB.

PostgreSQL and MariaDB run when ``LEADFUNNEL_TEST_POSTGRES_URL`` /
``LEADFUNNEL_TEST_MYSQL_URL`` are set (``.ci/run`` sets them); each test gets its own
schema (PostgreSQL) or database (MariaDB), empty, from the pool in ``conftest``.
"""

from __future__ import annotations

from uuid import uuid4

import pytest

from conftest import (
    SERVER_URLS,
    new_sqlite_url,
    open_server,
    release_repository,
    server_name,
    server_repository,
)
from leadfunnel import InMemoryRepository, Repository, SqlRepository
from leadfunnel.testing import RepositoryContract


class TestInMemoryRepository(RepositoryContract):
    def create_repository(self) -> Repository:
        return InMemoryRepository()


class TestSqliteRepository(RepositoryContract):
    def create_repository(self) -> Repository:
        # A copy of a new store's file (see conftest.sqlite_template): 1 ms, not 30.
        return SqlRepository(new_sqlite_url(self.tmp_path / f"{uuid4().hex}.db"))

    def reopen_repository(self, repository: Repository) -> Repository:
        assert isinstance(repository, SqlRepository)
        return SqlRepository(repository.url)


class TestSqliteMemoryRepository(RepositoryContract):
    """A private ``sqlite://`` database: one connection, shared by threads."""

    def create_repository(self) -> Repository:
        return SqlRepository("sqlite://")


class _ServerContract(RepositoryContract):
    kind = ""

    def create_repository(self) -> Repository:
        if not SERVER_URLS[self.kind]:
            pytest.skip("set the database URL to run this backend")
        return server_repository(self.kind)

    def reopen_repository(self, repository: Repository) -> Repository:
        assert isinstance(repository, SqlRepository)
        return open_server(self.kind, server_name(repository))

    def destroy_repository(self, repository: Repository) -> None:
        release_repository(repository)


@pytest.mark.postgres
class TestPostgresRepository(_ServerContract):
    kind = "postgres"


@pytest.mark.mysql
class TestMariaDbRepository(_ServerContract):
    kind = "mysql"
