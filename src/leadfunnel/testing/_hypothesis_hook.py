"""leadfunnel's ``hypothesis`` entry point: ``st.from_type(Lead)`` draws valid leads.

Kept apart from the strategies: hypothesis runs its entry points while it is being
imported, which may be *because* the strategies module is importing it.
"""

from __future__ import annotations

import sys
from importlib import import_module

_STRATEGIES = "leadfunnel.testing._strategies"


def setup() -> None:
    """Import the strategies module, which registers its strategies for ``from_type``.

    If it is in ``sys.modules`` already, it is imported (and registered) or in the middle
    of its import, and registers itself at its end.
    """
    if _STRATEGIES not in sys.modules:
        import_module(_STRATEGIES)
