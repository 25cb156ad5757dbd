"""The shape of the package: use cases below the facade, the core below the adapters,
and no import circle anywhere (TYPE_CHECKING and function-level imports included)."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

import leadfunnel

PACKAGE = Path(leadfunnel.__file__).parent
USE_CASES = (
    "_people",
    "_leads",
    "_conversion",
    "_deals",
    "_follow_ups",
    "_merging",
    "_importing",
)


def _module_names() -> dict[str, Path]:
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


MODULES = _module_names()


@cache
def imports_of(name: str) -> frozenset[str]:
    """The leadfunnel modules ``name`` imports, wherever the import statement is."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            submodules = {f"{target}.{alias.name}" for alias in node.names} & MODULES.keys()
            # ``from . import _schema`` imports the submodule, not the package's body.
            found |= submodules or ({target} & MODULES.keys())
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names} & MODULES.keys()
    found.discard(name)
    return frozenset(found)


def _cycles() -> list[list[str]]:
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        path.append(name)
        for other in sorted(imports_of(name)):
            if state.get(other) == 1:
                cycles.append([*path[path.index(other) :], other])
            elif other not in state:
                visit(other)
        path.pop()
        state[name] = 2

    for name in sorted(MODULES):
        if name not in state:
            visit(name)
    return cycles


def test_no_module_takes_part_in_an_import_circle() -> None:
    assert _cycles() == []


def test_the_circle_finder_finds_a_circle() -> None:
    # The check above is only worth something if it can fail.
    imports_of.cache_clear()
    real = dict(MODULES)
    try:
        # Pretend the shared building blocks were written in the facade's module.
        MODULES["leadfunnel._changes"] = PACKAGE / "_funnel.py"
        assert _cycles() != []
    finally:
        MODULES.clear()
        MODULES.update(real)
        imports_of.cache_clear()


@pytest.mark.parametrize("use_case", USE_CASES)
def test_a_use_case_never_imports_the_facade_or_an_adapter(use_case: str) -> None:
    imported = imports_of(f"leadfunnel.{use_case}")
    assert "leadfunnel._funnel" not in imported
    assert not {m for m in imported if m.startswith("leadfunnel._sql")}


def test_the_core_depends_on_no_adapter() -> None:
    # Only the package door (lazily) and the command line, where it opens the database,
    # name the SQL adapter.
    users = {
        name
        for name in MODULES
        if not name.startswith("leadfunnel._sql")
        and any(m.startswith("leadfunnel._sql") for m in imports_of(name))
    }
    assert users <= {"leadfunnel", "leadfunnel._cli._common"}
