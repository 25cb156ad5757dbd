"""The storage contract on every adapter: memory, SQLite, PostgreSQL and MariaDB.

PostgreSQL and MariaDB run when ``LEADFUNNEL_TEST_POSTGRES_URL`` /
``LEADFUNNEL_TEST_MYSQL_URL`` are set (``.ci/run`` sets them); each test gets its own
schema (PostgreSQL) or database (MariaDB), dropped afterwards.
"""

from __future__ import annotations

import os
from uuid import uuid4

import pytest
import sqlalchemy as sa

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
    url: str | None = None

    def _admin(self) -> sa.Engine:
        assert self.url is not None
        return sa.create_engine(self.url, isolation_level="AUTOCOMMIT")

    def create_repository(self) -> Repository:
        if not self.url:
            pytest.skip("set the database URL to run this backend")
        name = f"lf_test_{uuid4().hex[:16]}"
        admin = self._admin()
        try:
            with admin.connect() as conn:
                conn.exec_driver_sql(self.create_sql(name))
            try:
                return self.open(name)
            except BaseException:
                with admin.connect() as conn:
                    conn.exec_driver_sql(self.drop_sql(name))
                raise
        finally:
            admin.dispose()

    def create_sql(self, name: str) -> str:
        raise NotImplementedError

    def drop_sql(self, name: str) -> str:
        raise NotImplementedError

    def open(self, name: str) -> SqlRepository:
        raise NotImplementedError

    def name_of(self, repository: SqlRepository) -> str:
        raise NotImplementedError

    def reopen_repository(self, repository: Repository) -> Repository:
        assert isinstance(repository, SqlRepository)
        return self.open(self.name_of(repository))

    def destroy_repository(self, repository: Repository) -> None:
        repository.close()
        assert isinstance(repository, SqlRepository)
        admin = self._admin()
        try:
            with admin.connect() as conn:
                conn.exec_driver_sql(self.drop_sql(self.name_of(repository)))
        finally:
            admin.dispose()


@pytest.mark.postgres
class TestPostgresRepository(_ServerContract):
    url = POSTGRES_URL

    def create_sql(self, name: str) -> str:
        return f"CREATE SCHEMA {name}"

    def drop_sql(self, name: str) -> str:
        return f"DROP SCHEMA {name} CASCADE"

    def open(self, name: str) -> SqlRepository:
        assert self.url is not None
        return SqlRepository(self.url, schema=name)

    def name_of(self, repository: SqlRepository) -> str:
        assert repository.schema is not None
        return repository.schema


@pytest.mark.mysql
class TestMariaDbRepository(_ServerContract):
    url = MYSQL_URL

    def create_sql(self, name: str) -> str:
        return f"CREATE DATABASE {name} CHARACTER SET utf8mb4"

    def drop_sql(self, name: str) -> str:
        return f"DROP DATABASE {name}"

    def open(self, name: str) -> SqlRepository:
        assert self.url is not None
        return SqlRepository(sa.make_url(self.url).set(database=name))

    def name_of(self, repository: SqlRepository) -> str:
        assert repository.url.database is not None
        return repository.url.database
