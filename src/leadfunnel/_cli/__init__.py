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
``diagram`` stay quick.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from ._common import fail
from ._database import events, migrate
from ._demo import demo, diagram
from ._importing import import_
from ._privacy import erase, export_person
from ._qualifying import qualify
from ._reporting import due, list_, report

__all__ = ["main"]


class _OneLineErrors(click.Group):
    """A group whose usage errors (bad option, unknown command) are one line on stderr."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        if not kwargs.get("standalone_mode", True):
            return super().main(*args, **kwargs)
        kwargs["standalone_mode"] = False
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


@click.group(cls=_OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="leadfunnel")
def main() -> None:
    """Run a sales lead funnel from the command line.

    \b
    Start with the demo, then look around:
      leadfunnel demo
      leadfunnel report --by setter
      leadfunnel due
    """


for _command in (
    demo,
    import_,
    qualify,
    due,
    report,
    list_,
    diagram,
    migrate,
    events,
    erase,
    export_person,
):
    main.add_command(_command)


def run() -> None:  # pragma: no cover - console entry point wrapper
    """Entry point that also maps a missing database driver to a clear error."""
    main(prog_name=os.path.basename(sys.argv[0]) or "leadfunnel")
