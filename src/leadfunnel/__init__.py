"""leadfunnel: an embeddable sales lead funnel.

Classify everyone on a list, qualify inbound leads against explicit rules, follow them
up on a cadence, convert them into contacts and opportunities when an appointment is
set, track the deals to won or lost, and report stage-to-stage conversion from history.

>>> from leadfunnel import Funnel, Lead
>>> funnel = Funnel()
>>> lead = funnel.capture(Lead(first_name="Pat", email="pat@acme.example.com"))
>>> lead.status
<LeadStatus.RAW: 'raw'>
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._cadence import BusinessHours, CadencePolicy, FollowUp
from ._channels import allowed_channels, reachable_channels
from ._clock import Clock, SystemClock
from ._comparison import FunnelComparison, StepChange
from ._enums import Channel, ContactType, Interest, LeadStatus, LostReason, Outcome, Stage, Tier
from ._errors import (
    AvoidListedError,
    ConcurrencyError,
    ConfigError,
    DuplicateError,
    InvalidArgumentError,
    InvalidTransitionError,
    LeadFunnelError,
    NotFoundError,
    PolicyError,
    RuleError,
    StorageError,
)
from ._funnel import FREE_MAIL_DOMAINS, Funnel
from ._importing import ImportIssue, ImportReport
from ._lifecycle import EVENT_NAMES, FUNNEL_STEPS, TIMED_STEPS, diagram
from ._memory import InMemoryRepository
from ._models import Contact, Event, Lead, Opportunity, Person, Personal, Touch
from ._people import Captured
from ._privacy import Erasure
from ._protocols import Router
from ._qualification import Profile, QualificationEngine, QualificationResult
from ._rep_lists import RepList, RepListItem, RepListName
from ._reports import FunnelReport, HealthCheck, Step, TimeInStage
from ._repository import (
    ChangeSet,
    FollowUpCandidate,
    FollowUpStats,
    GroupBy,
    MergeLog,
    Move,
    RepListRow,
    Repository,
    StageTime,
    StepCount,
)
from ._routing import OwnerGroup, Route, RoutingRules
from .rules import (
    Authority,
    BaseRule,
    CompanySize,
    Geography,
    Money,
    Need,
    Niche,
    Rule,
    Source,
    Verdict,
)

if TYPE_CHECKING:
    from ._sql import SqlRepository

    __version__: str

__all__ = [
    "EVENT_NAMES",
    "FREE_MAIL_DOMAINS",
    "FUNNEL_STEPS",
    "TIMED_STEPS",
    "Authority",
    "AvoidListedError",
    "BaseRule",
    "BusinessHours",
    "CadencePolicy",
    "Captured",
    "ChangeSet",
    "Channel",
    "Clock",
    "CompanySize",
    "ConcurrencyError",
    "ConfigError",
    "Contact",
    "ContactType",
    "DuplicateError",
    "Erasure",
    "Event",
    "FollowUp",
    "FollowUpCandidate",
    "FollowUpStats",
    "Funnel",
    "FunnelComparison",
    "FunnelReport",
    "Geography",
    "GroupBy",
    "HealthCheck",
    "ImportIssue",
    "ImportReport",
    "InMemoryRepository",
    "Interest",
    "InvalidArgumentError",
    "InvalidTransitionError",
    "Lead",
    "LeadFunnelError",
    "LeadStatus",
    "LostReason",
    "MergeLog",
    "Money",
    "Move",
    "Need",
    "Niche",
    "NotFoundError",
    "Opportunity",
    "Outcome",
    "OwnerGroup",
    "Person",
    "Personal",
    "PolicyError",
    "Profile",
    "QualificationEngine",
    "QualificationResult",
    "RepList",
    "RepListItem",
    "RepListName",
    "RepListRow",
    "Repository",
    "Route",
    "Router",
    "RoutingRules",
    "Rule",
    "RuleError",
    "Source",
    "SqlRepository",
    "Stage",
    "StageTime",
    "Step",
    "StepChange",
    "StepCount",
    "StorageError",
    "SystemClock",
    "Tier",
    "TimeInStage",
    "Touch",
    "Verdict",
    "__version__",
    "allowed_channels",
    "diagram",
    "reachable_channels",
]


if not TYPE_CHECKING:  # type checkers see SqlRepository and __version__ above, no other names

    def __getattr__(name: str) -> Any:
        # SqlRepository brings SQLAlchemy, a quarter of a second to import: only on first
        # use, so that in-memory use, the testing toolkit and hypothesis' hook stay light.
        # __version__ needs importlib.metadata, some 20 ms that every CLI command paid.
        if name == "SqlRepository":
            from ._sql import SqlRepository

            globals()[name] = SqlRepository
            return SqlRepository
        if name == "__version__":
            from importlib.metadata import PackageNotFoundError, version

            try:
                found = version("leadfunnel")
            except PackageNotFoundError:  # pragma: no cover - running from a source tree
                found = "0+unknown"
            globals()[name] = found
            return found
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
