"""``python -m leadfunnel``: the same as the ``leadfunnel`` command."""

from ._cli import run

run(prog_name="leadfunnel")
