"""What the commands pay to start: the SQL schema brings in no MySQL or PostgreSQL code
until such a database is used, and still declares the same tables there."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Annotated, Any

import pytest
import sqlalchemy as sa

from leadfunnel._sql import _schema as schema

URLS = ("sqlite://", "postgresql+psycopg://", "mysql+pymysql://", "mariadb+pymysql://")


@pytest.mark.parametrize("dialect", ["mysql", "postgresql"])
def test_opening_a_sqlite_database_imports_no_other_dialect(dialect: str) -> None:
    code = (
        "import sys, leadfunnel._cli, leadfunnel._sql\n"
        "from leadfunnel import SqlRepository\n"
        "repository = SqlRepository('sqlite://')\n"
        "repository.count('lead')\n"
        "repository.close()\n"
        f"print(sorted(m for m in sys.modules if m.startswith('sqlalchemy.dialects.{dialect}')))"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == "[]"


def _ddl(url: str) -> list[str]:
    """The statements creating the tables, as ``SqlRepository`` runs them (``create_all``,
    with its events), for the dialect of ``url``."""
    statements: list[str] = []

    def record(ddl: Any, *args: Any, **kw: Any) -> None:
        statements.append(str(ddl.compile(dialect=engine.dialect)).strip())

    engine = sa.create_mock_engine(url, record)
    schema.metadata.create_all(engine, checkfirst=False)
    return statements


def _tables(url: str) -> dict[str, str]:
    return {s.split()[2]: s for s in _ddl(url) if s.startswith("CREATE TABLE")}


@pytest.mark.parametrize("url", URLS)
def test_every_table_is_created(url: str) -> None:
    assert set(_tables(url)) == set(schema.metadata.tables)


@pytest.mark.parametrize(
    ("url", "check"),
    [
        ("mysql+pymysql://", lambda ddl: ddl.endswith(")CHARSET=utf8mb4 ENGINE=InnoDB")),
        ("mariadb+pymysql://", lambda ddl: ddl.endswith(")")),  # as sa.Table(mysql_...)
        ("sqlite://", lambda ddl: "CHARSET" not in ddl and "ENGINE" not in ddl),
        ("postgresql+psycopg://", lambda ddl: "CHARSET" not in ddl and "ENGINE" not in ddl),
    ],
)
def test_table_options_are_those_of_the_dialect(url: str, check: Callable[[str], bool]) -> None:
    # MySQL first: its options, added when a table is created there, stay MySQL's own.
    _ddl("mysql+pymysql://")
    tables = _tables(url)
    assert all(check(ddl) for ddl in tables.values()), tables


@pytest.mark.parametrize(
    ("url", "text", "instant", "uuid", "doc"),
    [
        ("sqlite://", "VARCHAR(20)", "BIGINT", "BLOB", "JSON"),
        ("postgresql+psycopg://", "VARCHAR(20)", "TIMESTAMP WITH TIME ZONE", "UUID", "JSONB"),
        (
            "mysql+pymysql://",
            "VARCHAR(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
            "DATETIME(6)",
            "BINARY(16)",
            "JSON",
        ),
        (
            "mariadb+pymysql://",
            "VARCHAR(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
            "DATETIME(6)",
            "BINARY(16)",
            "JSON",
        ),
    ],
)
def test_column_types_are_those_of_the_dialect(
    url: str, text: str, instant: str, uuid: str, doc: str
) -> None:
    dialect = sa.create_mock_engine(url, lambda *a, **k: None).dialect
    columns = (
        schema.steps.c.step,
        schema.steps.c.at,
        schema.steps.c.subject_id,
        schema.events.c.doc,
    )
    assert [c.type.compile(dialect=dialect) for c in columns] == [text, instant, uuid, doc]
    # The statement creating the table, as the migrations' ALTER TABLE ... ADD COLUMN.
    assert f"step {text} NOT NULL" in _tables(url)["lf_steps"].replace("`", "")


def test_text_of_two_lengths_is_not_one_cached_statement() -> None:
    # The length is part of the statement cache key: the compiled CAST to VARCHAR(20)
    # must not serve the CAST to VARCHAR(200).
    engine = sa.create_engine("sqlite://")
    with engine.connect() as conn:
        compiled = [
            conn.execute(sa.select(sa.cast(sa.null(), column.type))).context.compiled
            for column in (schema.steps.c.step, schema.leads.c.source)
        ]
    assert [str(c) for c in compiled] == [
        "SELECT CAST(NULL AS VARCHAR(20)) AS anon_1",
        "SELECT CAST(NULL AS VARCHAR(200)) AS anon_1",
    ]


# --- the command line: each command's module is imported when that command runs -------

COMMANDS = (
    "demo",
    "diagram",
    "due",
    "erase",
    "events",
    "export-person",
    "import",
    "list",
    "migrate",
    "qualify",
    "report",
)


def test_a_command_imports_only_its_own_module(tmp_path: Any) -> None:
    from click.testing import CliRunner

    from leadfunnel._cli import main

    db = f"sqlite:///{tmp_path / 'funnel.db'}"
    assert CliRunner().invoke(main, ["migrate", "--db", db]).exit_code == 0
    code = (
        "import sys\n"
        "from leadfunnel._cli import main\n"
        "try:\n"
        f"    main(['report', '--db', {db!r}])\n"
        "except SystemExit as exit:\n"
        "    assert exit.code == 0, exit.code\n"
        "print(sorted(m for m in sys.modules if m.startswith('leadfunnel._cli.')))"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert found.returncode == 0, found.stderr
    assert (
        found.stdout.splitlines()[-1] == "['leadfunnel._cli._common', 'leadfunnel._cli._reporting']"
    )


def test_the_help_lists_every_command_with_its_short_help() -> None:
    from click.testing import CliRunner

    from leadfunnel._cli import main

    listed = CliRunner().invoke(main, ["--help"]).output.split("Commands:\n")[1].splitlines()
    assert [line.split()[0] for line in listed] == list(COMMANDS)
    assert sorted(main.commands) == list(COMMANDS)
    for line, name in zip(listed, COMMANDS, strict=True):
        shown = line.split(None, 1)[1].removesuffix("...")
        assert len(shown) > 20, line
        assert main.commands[name].get_short_help_str(limit=1000).startswith(shown), line


def test_a_mistyped_command_is_still_given_the_right_name() -> None:
    from click.testing import CliRunner

    from leadfunnel._cli import main

    result = CliRunner().invoke(main, ["repor"])
    assert result.exit_code == 2
    assert "No such command 'repor'. Did you mean 'report'?" in result.stderr


# --- the models: leadfunnel's own are built on first use, an application's at once -----


def test_importing_leadfunnel_builds_no_model() -> None:
    # Building one would also make pydantic look up its plugins among every installed
    # package's entry points (importing importlib.metadata).
    code = (
        "import sys\n"
        "import leadfunnel\n"
        "from leadfunnel._models import _BUILT_ON_FIRST_USE\n"
        "print([m.__name__ for m in _BUILT_ON_FIRST_USE if m.__pydantic_complete__])\n"
        "print('importlib.metadata' in sys.modules)\n"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert found.returncode == 0, found.stderr
    assert found.stdout.split() == ["[]", "False"]


def test_a_model_is_built_on_first_use() -> None:
    code = (
        "import uuid\n"
        "from leadfunnel import Touch\n"
        "assert not Touch.__pydantic_complete__\n"
        "touch = Touch(subject_id=uuid.uuid4(), channel='call', outcome='connected')\n"
        "assert Touch.__pydantic_complete__\n"
        "print(touch.model_dump_json(include={'channel', 'outcome'}))\n"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == '{"channel":"call","outcome":"connected"}'


def test_an_application_model_is_built_where_it_is_defined() -> None:
    from pydantic import BaseModel, ConfigDict

    from leadfunnel import Contact, Event, Lead, Opportunity, Personal, Touch

    for base in (Lead, Contact, Opportunity, Touch, Event):
        mine: type[BaseModel] = type(
            f"My{base.__name__}", (base,), {"__annotations__": {"extra": "int | None"}}
        )
        assert mine.__pydantic_complete__, base
    # As with pydantic's default, a mistake shows where the class is written ...
    with pytest.raises(TypeError, match=r"MyLead\.mobile marked Personal must accept None"):

        class MyLead(Lead):
            mobile: Annotated[str, Personal] = ""

    # ... unless the application defers the build itself.
    class Deferred(Lead):
        model_config = ConfigDict(defer_build=True)

        score: int = 0

    assert not Deferred.__pydantic_complete__
    assert Deferred(score=3).score == 3
