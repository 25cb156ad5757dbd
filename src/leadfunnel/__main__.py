"""``python -m leadfunnel``: the same as the ``leadfunnel`` command."""

from ._cli import main

main(prog_name="leadfunnel")
