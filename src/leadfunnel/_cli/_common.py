"""What the commands share: the ``--db``, ``--format`` and ``--output`` options, opening
the funnel, writing the result, turning errors into one line on stderr with exit
status 2, and stopping quietly when standard output's reader goes away."""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, Self, TypeVar

import click

from .._collector import collector_paused
from .._csv_out import printable
from .._errors import LeadFunnelError

__all__ = [
    "DEFAULT_DB",
    "Interrupts",
    "db_option",
    "emit",
    "fail",
    "format_option",
    "guarded",
    "lead_model_option",
    "load_lead_model",
    "load_model",
    "open_funnel",
    "output_option",
    "read_cadence",
    "read_routing",
    "toml_file_option",
]

DEFAULT_DB = "sqlite:///leadfunnel.db"
_F = TypeVar("_F", bound=Callable[..., Any])

db_option = click.option(
    "--db",
    "db",
    envvar="LEADFUNNEL_DB",
    default=DEFAULT_DB,
    show_default=True,
    metavar="URL",
    help="Database URL (sqlite:///file.db, postgresql+psycopg://..., mysql+pymysql://...); "
    "also read from LEADFUNNEL_DB.",
)

output_option = click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True, allow_dash=True),
    default=None,
    # "-" is standard output, as for most commands, not a file named "-".
    callback=lambda ctx, param, value: None if value == "-" else value,
    help="Write to this file instead of standard output ('-': standard output).",
)


def format_option(*formats: str) -> Callable[[_F], _F]:
    """``--format``, one of ``formats``, the first by default."""
    return click.option(
        "--format", "format_", type=click.Choice(formats), default=formats[0], show_default=True
    )


def emit(text: str, output: str | None, written: str) -> None:
    """Print ``text`` (without control characters: imported data must not drive the
    terminal), or write it to ``output`` as it is and say so (``written``) on stderr."""
    if output:
        refuse_output_over_database(output, "--output")
        Path(output).write_text(text, encoding="utf-8")
        click.echo(f"{written} written to {output}", err=True)
    else:
        click.echo(printable(text), nl=False)


def json_text(data: Any, output: str | None) -> str:
    """``data`` as the JSON a command prints: characters as they are in a file (UTF-8)
    and on a standard output that can write them; as ``\\u`` escapes on one that cannot
    (a cp1252 console), so that no value is lost to a ``?``."""
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if output is not None or stdout_can_write(text):
        return text
    return json.dumps(data, indent=2) + "\n"


def svg_text(svg: str, output: str | None) -> str:
    """An SVG chart as a command prints it: as it is in a file (UTF-8) and on a standard
    output that can write it; on one that cannot (a cp1252 console), with every
    character beyond ASCII as an XML character reference (``&#24352;``), which any
    viewer reads as the character, so that no name is lost to a ``?``."""
    if output is not None or stdout_can_write(svg):
        return svg
    return svg.encode("ascii", "xmlcharrefreplace").decode("ascii")


def json_line(text: str) -> str:
    """A line of JSON (``events``) as standard output can write it: as it is, or with
    ``\\u`` escapes where it holds characters the output's encoding cannot write."""
    if stdout_can_write(text):
        return text
    return json.dumps(json.loads(text), separators=(",", ":"))


def stdout_can_write(text: str) -> bool:
    """Whether standard output's encoding can write ``text``."""
    if text.isascii():
        return True
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    try:
        text.encode(encoding)
    except (UnicodeError, LookupError):
        return False
    return True


#: The SIGINTs (Ctrl-C) received while the running command was guarded (see
#: :class:`Interrupts`): from the first on, any error is the interrupt's doing.
_sigints = 0


def fail(message: str) -> NoReturn:
    # After a Ctrl-C, an error is the interrupt's (a KeyboardInterrupt that pydantic-core
    # or a driver wrapped in its own error): the usual status 130 and one line, never an
    # error blaming the input or the URL.
    if _sigints:
        raise KeyboardInterrupt
    # One line: a message quoting the input (a column name...) must not break it, nor
    # send the terminal control codes.
    click.echo(f"leadfunnel: error: {printable(message.replace(chr(10), ' '))}", err=True)
    sys.exit(2)


def _reader_gone() -> NoReturn:
    """Stop quietly when the reader of standard output went away (``| head``), with the
    status a shell gives a command killed by SIGPIPE, 141 (128 + 13): nothing went wrong
    but the output was cut short, as ``set -o pipefail`` can tell."""
    stdout_to_devnull()
    sys.exit(141)


def stdout_to_devnull() -> None:
    """Point standard output, whose reader went away, at devnull: Python flushes it
    again at exit and would complain of the broken pipe (as Python's documentation on
    SIGPIPE recommends)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # a stream without a file descriptor (tests)
        pass


def open_funnel(db: str, migrate: str = "auto", **options: Any) -> Any:
    """The funnel on ``db``. Commands that only read open it with ``migrate="check"``:
    a mistyped ``--db`` is an error, never a new empty database."""
    # Importing SQLAlchemy and opening the engine make a few hundred thousand objects,
    # none of them garbage: the cyclic collector would walk them again and again as they
    # are made (4% of the instructions a command spends starting).
    with collector_paused():
        from .._funnel import Funnel
        from .._sql import SqlRepository

        try:
            repository = SqlRepository(db, migrate=migrate)  # type: ignore[arg-type]
        except LeadFunnelError as exc:
            fail(str(exc))
        except Exception as exc:  # a malformed URL from SQLAlchemy or a driver
            fail(
                f"cannot open database {without_password(db)!r}: {exc}; check the URL's "
                "form: dialect+driver://user:password@host:port/database?option=value"
            )
        _OPENED.extend(_files_of(repository))
        # Closed when the command ends, however it ends: a SQLite file in WAL mode is
        # checkpointed and its -wal file removed then, not left to the collector at exit
        # (which ``run`` skips).
        context = click.get_current_context(silent=True)
        if context is not None:
            context.call_on_close(repository.close)
        return Funnel(repository, **options)


#: The files of the SQLite databases this process opened: a command's --output must
#: never be one of them.
_OPENED: list[Path] = []


def refuse_output_over_database(path: str, option: str) -> None:
    """Exit with status 2 when ``path`` (an ``option``'s file) is a file of a database
    this command opened: writing there would destroy it. The files themselves are
    compared, not only their names: a hard link to the database is the database."""
    target = Path(path).resolve()
    if any(_same_file(target, opened) for opened in _OPENED):
        fail(
            f"{option} {path} is a file of the database this command uses: choose another "
            "file (writing there would destroy the database)"
        )


def _same_file(a: Path, b: Path) -> bool:
    if a == b:
        return True
    try:
        return os.path.samefile(a, b)  # the same device and inode: a hard link
    except OSError:  # either does not exist (yet)
        return False


def _files_of(repository: Any) -> list[Path]:
    url = repository.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return []
    database: str = url.database
    if database.startswith("file:") and str(url.query.get("uri", "")).lower() in (
        "true",
        "1",
        "yes",
    ):
        # A SQLite URI (sqlite:///file:funnel.db?uri=true): the file is its path.
        from urllib.parse import parse_qs, unquote, urlsplit

        parts = urlsplit(database)
        if "memory" in parse_qs(parts.query).get("mode", []) or "memory" in url.query.get(
            "mode", ()
        ):
            return []
        database = unquote(parts.path)
        if database in ("", ":memory:"):
            return []
    base = Path(database).resolve()
    return [base, *(base.with_name(base.name + tail) for tail in ("-wal", "-shm", "-journal"))]


def without_password(url: str) -> str:
    """``url`` with its password hidden, however malformed the rest of it is (a password
    may hold "/" and "@": everything up to the last "@" goes), and the query parameters
    that carry a secret (``?password=...``) too."""
    from .._sql._engine import without_secrets

    return without_secrets(url)


def schema_version_before(db: str) -> int | None:
    """The schema version ``db`` holds, read without writing anything (``migrate``
    says what it did), or None when it has no leadfunnel tables or cannot be read
    (opening it to migrate says why)."""
    from .._sql import SqlRepository

    try:
        repository = SqlRepository(db, migrate="never")
    except Exception:
        return None
    try:
        return repository.schema_version
    finally:
        repository.close()


def guarded(command: _F) -> _F:
    """Turn library errors into one clear line on stderr and exit status 2; stop quietly
    (:func:`_reader_gone`) when standard output's reader went away. A Ctrl-C is
    recorded (:class:`Interrupts`): any exception raised after one is the interrupt
    (status 130), whatever C extension code wrapped it in (pydantic-core's
    ``PydanticSerializationError``, ``SchemaError``)."""
    import functools

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        global _sigints
        _sigints = 0
        try:
            with Interrupts():
                result = command(*args, **kwargs)
                # Here, not at exit, where a closed pipe could no longer be told apart.
                sys.stdout.flush()
            return result
        except Exception as exc:
            if _sigints:
                raise KeyboardInterrupt from exc
            if isinstance(exc, BrokenPipeError):
                _reader_gone()
            if isinstance(exc, LeadFunnelError):
                fail(str(exc))
            if isinstance(exc, OSError):
                fail(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "))
            raise
        finally:
            _sigints = 0

    return wrapper  # type: ignore[return-value]


def lead_model_option(help: str) -> Callable[[_F], _F]:
    """``--lead-model MODULE:CLASS``: the application's ``Lead`` subclass."""
    return click.option("--lead-model", default=None, metavar="MODULE:CLASS", help=help)


def load_lead_model(spec: str) -> Any:
    """The class ``module:Class`` names: a subclass of ``Lead``, or exit 2."""
    from .._models import Lead

    return load_model(spec, Lead, "--lead-model")


class Interrupts:
    """Ctrl-C for a long command that cannot be lost: Python raises the
    ``KeyboardInterrupt`` wherever the main thread is, and where that is inside code a
    C extension calls back (pydantic-core serialising a value, a finaliser), the
    exception is printed as "Exception ignored" and dropped, and the command runs on
    (about one press in 25 during ``leadfunnel demo``). Here the press is also
    recorded, and :meth:`check`, called between units of work, raises it again; and
    (:func:`guarded`, which records presses for every command) an error raised after a
    press, the interrupt wrapped by such code, is the interrupt.
    Off the main thread (no handler can be set there) Python's default stays; a command
    started with Ctrl-C ignored (a background job) keeps ignoring it."""

    def __init__(self) -> None:
        self.requested = 0  # presses so far
        self._previous: Any = None

    def __enter__(self) -> Self:
        import signal
        import threading

        if threading.current_thread() is not threading.main_thread():
            return self
        current = signal.getsignal(signal.SIGINT)
        if current is signal.SIG_IGN:
            return self  # started with Ctrl-C ignored (a background job): it stays so
        signal.signal(signal.SIGINT, self._handle)
        # (None: a handler not set from Python, which cannot be put back: the default.)
        self._previous = signal.SIG_DFL if current is None else current
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            import signal

            # A handler the command set meanwhile stays: an import interrupted ignores
            # further presses while it shuts down (SIG_IGN), which putting Python's
            # default back would undo (a press then killed it with status -2).
            if signal.getsignal(signal.SIGINT) == self._handle:
                signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum: int, frame: object) -> None:
        global _sigints
        _sigints += 1
        self.requested += 1
        raise KeyboardInterrupt

    def check(self) -> None:
        """Raise the ``KeyboardInterrupt`` of a press that was dropped, if any."""
        if self.requested:
            raise KeyboardInterrupt


def load_model(spec: str, base: type[Any], option: str) -> Any:
    """The class ``module:Class`` names: a subclass of ``base``, or exit 2 naming
    ``option``."""
    import importlib

    module_name, _, class_name = spec.partition(":")
    if not module_name or not class_name:
        fail(f"{option} {spec!r}: write it as package.module:ClassName")
    # The application's package in the current folder is found, as ``python -m`` and
    # uvicorn find it: an installed ``leadfunnel`` script's path holds only its own.
    # Searched last, so that a stray module there never shadows an installed one.
    here = os.getcwd()
    if here not in sys.path and "" not in sys.path:
        sys.path.append(here)
    try:
        found = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        fail(f"{option} {spec!r}: {exc}; is the module on the Python path?")
    except Exception as exc:  # the application's module fails as it is imported
        where = ""  # a SyntaxError's message says where already
        frames = [] if isinstance(exc, SyntaxError) else traceback.extract_tb(exc.__traceback__)
        if frames:
            where = f" ({frames[-1].filename}, line {frames[-1].lineno})"
        fail(
            f"{option} {spec!r}: importing {module_name} raised {type(exc).__name__}: "
            f"{exc}{where}; fix the module (python -c 'import {module_name}' shows the "
            "whole traceback)"
        )
    if not (isinstance(found, type) and issubclass(found, base)):
        fail(f"{option} {spec!r} is not a subclass of leadfunnel.{base.__name__}")
    return found


def toml_file_option(flag: str, dest: str, help: str) -> Callable[[_F], _F]:
    """An option naming a TOML file (``--cadence FILE.toml``), read by the command
    (see :func:`read_cadence`, :func:`read_routing`)."""
    return click.option(
        flag, dest, type=click.Path(dir_okay=False), default=None, metavar="FILE.toml", help=help
    )


def read_cadence(option: str, path: str) -> Any:
    """The follow-up policy of the TOML file ``path`` that ``option`` names (see
    :func:`_config_file`)."""
    from .._cadence import CadencePolicy

    return _config_file(option, path, CadencePolicy.from_toml)


def read_routing(option: str, path: str) -> Any:
    """The routing rules of the TOML file ``path`` that ``option`` names (see
    :func:`_config_file`)."""
    from .._routing import RoutingRules  # not loaded with leadfunnel: only when asked

    return _config_file(option, path, RoutingRules.from_toml)


def _config_file(option: str, path: str, read: Callable[[str], Any]) -> Any:
    """What ``read`` makes of the file ``path``: a file that cannot be read or holds a
    bad value exits with status 2 and one line naming the option, the file and what is
    wrong (called before the database is opened)."""
    from .._errors import ConfigError

    try:
        return read(path)
    except ConfigError as exc:
        message = str(exc)
        fail(message if repr(path) in message else f"{option} {path}: {message}")
