"""Tools for testing code that uses leadfunnel, and for testing leadfunnel adapters.

``ManualClock`` makes time explicit; more tools arrive with the testing toolkit.
"""

from __future__ import annotations

from ._clock import ManualClock

__all__ = ["ManualClock"]
