"""The ``leadfunnel`` command: demo, import, qualify, due, report, list, diagram,
migrate, events, erase, export-person.

Every command takes ``--db URL`` (default ``sqlite:///leadfunnel.db``, or the
``LEADFUNNEL_DB`` environment variable). Bad input prints one line on stderr and exits
with status 2; nothing is half-written.

This module holds the ``main`` group; the commands live by what they are about:
``_demo`` (demo, diagram), ``_importing`` (import), ``_qualifying`` (qualify),
``_reporting`` (report, due, list), ``_database`` (migrate, events) and ``_privacy``
(erase, export-person), with what they share in ``_common``. What only some commands
need (SQLAlchemy above all) is imported inside them, when they run: ``--help`` and
``diagram`` stay quick. Each command's module is imported when the command is first
looked up (click's "lazy group"): ``report`` does not load the import's machinery.

The group also stops every command alike: a Ctrl-C exits with status 130 and one line
on stderr saying what was kept (each command says it with :func:`when_interrupted`), a
reader of standard output that goes away with 141 (``--help`` and ``--version`` too),
and text that standard output's encoding cannot write (a Windows cp1252 console, a
latin-1 ``PYTHONIOENCODING``) is written with ``?`` for it, never a traceback.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import io
import os
import sys
from collections.abc import Iterator, MutableMapping
from typing import Any, NoReturn

import click

from ._common import _reader_gone, fail, stdout_to_devnull

__all__ = ["main", "run", "when_interrupted"]

_KEPT = "leadfunnel.interrupted"


def when_interrupted(kept: str) -> None:
    """Say ``kept`` (what a Ctrl-C from now on leaves: "nothing was stored ...") if the
    running command is interrupted: the status is then 130."""
    click.get_current_context().meta[_KEPT] = kept


def _interrupted(kept: str | None) -> NoReturn:
    """Stop after a Ctrl-C: what was printed is flushed, one line on stderr says what was
    kept, and the status is 130 (128 + SIGINT), as a shell gives."""
    try:
        sys.stdout.flush()
    except (OSError, ValueError):  # the reader went too (Ctrl-C stops a whole pipeline)
        stdout_to_devnull()
    with contextlib.suppress(OSError):
        click.echo("leadfunnel: interrupted" + (f": {kept}" if kept else ""), err=True)
    sys.exit(130)


def _unwritable(exc: OSError) -> NoReturn:
    """Standard output cannot be written (a full disk, ``>/dev/full``) while the help or
    the version is printed: one line and status 2, as for a command's output. What is
    still buffered is dropped (Python would fail again writing it at exit)."""
    stdout_to_devnull()
    fail(f"{exc.filename or 'standard output'}: {exc.strerror or exc}")


def _prepare_output() -> None:
    """Text standard output's encoding cannot write is written as ``?``: a name in
    Chinese on a cp1252 console, not a traceback. (Python's standard error already
    writes it as ``\\u...``.)"""
    stream = sys.stdout
    if isinstance(stream, io.TextIOWrapper) and stream.errors == "strict":
        with contextlib.suppress(OSError, ValueError):  # closed
            stream.reconfigure(errors="replace")


class _Commands(MutableMapping[str, click.Command]):
    """The group's commands by name, each imported from its module (``module:name``
    in this package) the first time it is looked up. Every name is there from the
    start, for ``--help``, completion and "Did you mean" suggestions."""

    def __init__(self, where: dict[str, str]) -> None:
        self._commands: dict[str, click.Command | str] = dict(where)

    def __getitem__(self, name: str) -> click.Command:
        found = self._commands[name]
        if not isinstance(found, str):
            return found
        module, _, attribute = found.partition(":")
        command: click.Command = getattr(importlib.import_module(module, __name__), attribute)
        self._commands[name] = command
        return command

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._commands[name] = command

    def __delitem__(self, name: str) -> None:
        del self._commands[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._commands)

    def __len__(self) -> int:
        return len(self._commands)


class _OneLineErrors(click.Group):
    """A group whose usage errors (bad option, unknown command) are one line on stderr."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        if not kwargs.get("standalone_mode", True):
            return super().main(*args, **kwargs)
        kwargs["standalone_mode"] = False
        _prepare_output()
        try:
            code = super().main(*args, **kwargs)
        except click.exceptions.NoArgsIsHelpError as exc:  # bare ``leadfunnel``: the help
            exc.show()
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx is not None else "leadfunnel"
            fail(f"{exc.format_message()} (see '{where} --help')")
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        # ``leadfunnel --help | true``, ``--version``: printed while the options are read.
        try:
            return super().make_context(*args, **kwargs)
        except BrokenPipeError:
            _reader_gone()
        except OSError as exc:  # ``leadfunnel --help >/dev/full``
            _unwritable(exc)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:  # ``leadfunnel report --help | true``
            _reader_gone()
        except OSError as exc:  # ``leadfunnel report --help >/dev/full``
            _unwritable(exc)
        except KeyboardInterrupt:
            _interrupted(ctx.meta.get(_KEPT))


@click.group(
    cls=_OneLineErrors,
    commands=_Commands(
        {
            "demo": "._demo:demo",
            "import": "._importing:import_",
            "qualify": "._qualifying:qualify",
            "due": "._reporting:due",
            "report": "._reporting:report",
            "list": "._reporting:list_",
            "diagram": "._demo:diagram",
            "migrate": "._database:migrate",
            "events": "._database:events",
            "erase": "._privacy:erase",
            "export-person": "._privacy:export_person",
        }
    ),
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(package_name="leadfunnel")
def main() -> None:
    """Run a sales lead funnel from the command line.

    \b
    Start with the demo, then look around:
      leadfunnel demo
      leadfunnel report --by setter
      leadfunnel due
    """


def run(prog_name: str | None = None) -> None:
    """The ``leadfunnel`` console command (and ``python -m leadfunnel``): :func:`main`,
    then a quick exit.

    The process ends with the command: Python's exit would otherwise run the cyclic
    collector over every object the command made or imported (SQLAlchemy's, pydantic's),
    only to free memory the system is about to take back, about 5% of a report's
    instructions. The objects are frozen instead (:func:`gc.freeze`); what must be
    closed was closed before: each command closes its database when it ends and its
    files as it writes them. Tests call :func:`main`, which leaves the collector alone.
    """
    try:
        main(prog_name=prog_name or os.path.basename(sys.argv[0]) or "leadfunnel")
    finally:
        gc.freeze()
