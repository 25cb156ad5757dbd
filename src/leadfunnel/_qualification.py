"""Qualification: judging a lead against ideal customer profiles.

(The engine is built in its own issue; this module holds the result type the funnel
relies on.)
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ._enums import LeadStatus, Tier

__all__ = ["Decision", "QualificationResult"]

#: The engine's summary: some profile fits; none fits but some is undecided (data
#: missing); every profile hard-fails; or some profile fails on a soft rule.
Decision = Literal["qualified", "undecided", "hard_fail", "fail"]


class QualificationResult(BaseModel):
    """What the engine made of a lead, and (from ``funnel.qualify``) where it went."""

    model_config = ConfigDict(frozen=True)

    qualified: bool
    decision: Decision
    profile: str | None = None
    verdicts: dict[str, list[dict[str, object]]] = Field(default_factory=dict)
    missing: list[str] = Field(default_factory=list)
    score: float = Field(default=0.0, ge=0.0, le=1.0)
    tier: Tier = Tier.COLD
    status: LeadStatus | None = None
