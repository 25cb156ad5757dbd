"""Development sessions: ``nox -s tests lint typecheck docs bench``."""

from __future__ import annotations

import nox

nox.options.stop_on_first_error = True
nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.default_venv_backend = "venv"

PYTHONS = ["3.11", "3.12"]


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The test suite (PostgreSQL/MariaDB join when their URLs are set)."""
    session.install("-e", ".[test]")
    session.run("pytest", "-n", "auto", "--dist", "worksteal", "-q", *session.posargs)


@nox.session
def acceptance(session: nox.Session) -> None:
    """The contract's acceptance suite, kept beside the checkout in ../shared."""
    session.install("-e", ".[test]")
    session.run("pytest", "-q", "../shared/acceptance", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install("ruff")
    session.run("ruff", "check", "src", "tests", "benchmarks", "tools", "noxfile.py")
    session.run("ruff", "format", "--check", "src", "tests", "benchmarks", "tools", "noxfile.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the library, the tests and the docs' examples."""
    session.install("-e", ".[test]", "mypy")
    session.run("mypy")
    session.run("mypy", "--strict", "tests", "tools", "docs/examples")
    session.run("python", "tools/check_docs_types.py")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site with MkDocs (strict: broken links fail)."""
    session.install("-e", ".", "mkdocs", "mkdocstrings[python]")
    session.run("mkdocs", "build", "--strict", "--site-dir", "site")


@nox.session
def bench(session: nox.Session) -> None:
    """Every benchmark, side by side with its hand-written baseline."""
    session.install("-e", ".[test]")
    quick = ["--quick"] if "quick" in session.posargs else []
    for script in sorted(__import__("pathlib").Path("benchmarks").glob("bench_*.py")):
        session.run("python", str(script), *quick)


@nox.session
def package(session: nox.Session) -> None:
    """Build the sdist and wheel and check that the wheel installs and imports."""
    session.install("build", "twine")
    session.run("python", "-m", "build", "--outdir", "dist")
    session.run("twine", "check", "dist/*")
