"""Hypothesis strategies for leadfunnel records and whole funnel histories.

>>> from hypothesis import given
>>> from leadfunnel.testing import leads
>>> @given(leads(status="suspect"))
... def test_suspects_are_never_due(lead): ...
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from hypothesis import strategies as st

from .. import _samples
from .._enums import Channel, ContactType, Interest, LeadStatus, LostReason, Outcome
from .._errors import LeadFunnelError
from .._models import Contact, Lead

if TYPE_CHECKING:
    from .._funnel import Funnel
    from .._qualification import Profile, QualificationEngine

__all__ = ["FunnelStep", "contacts", "histories", "leads", "register_strategies", "replay"]

FIRST_NAMES = [*_samples.FIRST_NAMES, "Zoë", "José", "Ngozi"]
LAST_NAMES = [*_samples.LAST_NAMES, "O'Brien", "Müller"]
COMPANY_WORDS = list(_samples.COMPANY_WORDS)
INDUSTRIES = [
    "IT Services",
    "Managed Services",
    "Accounting",
    "Retail",
    "Construction",
    "Real Estate",
    "Healthcare",
    "Legal",
    "Education",
    "Manufacturing",
]
TITLES = [
    "CEO",
    "Owner",
    "Founder",
    "President",
    "Owner/CEO",
    "Co-Founder & CEO",
    "CTO",
    "Office Manager",
    "IT Manager",
    "Marketing Coordinator",
    "Managing Partner",
]
COUNTRIES = ["US", "US", "US", "CA", "GB", "DE", "AU", "FR", "NL", "MX"]
REGIONS = {"US": ["TX", "CA", "NY", "FL", "WA"], "CA": ["ON", "BC", "QC"]}
SOURCES = ["webinar", "referral", "website", "trade-show", "bought-list", "ads"]
SERVICES = ["managed backup", "help desk", "cloud migration", "security audit", "bookkeeping"]

# Every drawn person gets a fresh serial, so e-mails and phones never collide within a
# test run (the funnel refuses duplicates, which a test rarely wants by accident).
_serials = itertools.count(1)


def _serial() -> st.SearchStrategy[int]:
    return st.builds(lambda: next(_serials))


@st.composite
def _person_fields(draw: st.DrawFn, missing: bool) -> dict[str, Any]:
    serial = draw(_serial())
    first = draw(st.sampled_from(FIRST_NAMES))
    last = draw(st.sampled_from(LAST_NAMES))
    company = (
        f"{draw(st.sampled_from(COMPANY_WORDS))} {draw(st.sampled_from(['IT', 'Group', 'Co']))}"
    )
    country = draw(st.sampled_from(COUNTRIES))
    local = "".join(
        c for c in f"{first}.{last}".lower() if c.isascii() and (c.isalnum() or c == ".")
    )
    fields: dict[str, Any] = {
        "first_name": first,
        "last_name": last,
        "email": f"{local}.{serial}@{company.split()[0].lower()}-{serial}.example.com",
        # NANP fictional range 555-01xx is too small; serials make each number unique.
        "phone": f"+1 512 {200 + serial // 10_000 % 800:03d} {serial % 10_000:04d}",
        "company": company,
        "title": draw(st.sampled_from(TITLES)),
        "industry": draw(st.sampled_from(INDUSTRIES)),
        "employees": draw(st.integers(1, 2_000)),
        "annual_revenue": draw(st.integers(50_000, 50_000_000)),
        "country": country,
        "region": draw(st.sampled_from(REGIONS[country])) if country in REGIONS else None,
        "city": draw(st.sampled_from(["Austin", "Denver", "Toronto", "Leeds", "Berlin", None])),
        "source": draw(st.sampled_from(SOURCES)),
        "tags": draw(st.frozensets(st.sampled_from(["vip", "partner-referral", "q1"]), max_size=2)),
    }
    if missing:
        # Real lists have holes: drop some optional fields (never both ways of reaching).
        optional = [
            "phone",
            "title",
            "industry",
            "employees",
            "annual_revenue",
            "country",
            "region",
            "city",
            "source",
        ]
        for name in draw(st.lists(st.sampled_from(optional), unique=True, max_size=4)):
            fields[name] = None
        if fields["country"] is None:
            fields["region"] = None
    return fields


def leads(
    *,
    status: LeadStatus | str | None = None,
    fits: QualificationEngine | Profile | None = None,
    missing: bool = True,
    **fixed: Any,
) -> st.SearchStrategy[Lead]:
    """Valid, realistic, never-stored ``Lead``s, each with its own e-mail and phone.

    ``status`` fixes the status (default: suspect, farm_list or raw, as ``add`` takes);
    ``fits`` keeps only leads that an engine (or a single profile) qualifies;
    ``missing=False`` fills every field; other keywords fix fields (``source="webinar"``).
    """
    statuses = (
        st.just(LeadStatus(status))
        if status is not None
        else st.sampled_from([LeadStatus.SUSPECT, LeadStatus.FARM_LIST, LeadStatus.RAW])
    )

    engine = _engine(fits) if fits is not None else None

    @st.composite
    def build(draw: st.DrawFn) -> Lead:
        fields = draw(_person_fields(missing))
        fields["status"] = draw(statuses)
        fields["interest"] = draw(st.sampled_from(list(Interest)))
        fields["needs"] = draw(st.frozensets(st.sampled_from(SERVICES), max_size=2))
        if engine is not None:
            # Steer towards a fit instead of filtering blindly: pick a profile and draw
            # values its built-in rules accept.
            profile = draw(st.sampled_from(engine.profiles))
            for rule in profile.rules:
                fields.update(draw(_satisfying(rule)))
        fields.update(fixed)
        return Lead(**fields)

    strategy = build()
    if engine is not None:
        strategy = strategy.filter(lambda lead: engine.evaluate(lead).qualified)
    return strategy


def _satisfying(rule: Any) -> st.SearchStrategy[dict[str, Any]]:
    """Field values the rule passes (empty for a rule this module does not know)."""
    from .. import rules

    if isinstance(rule, rules.Niche):
        return st.sampled_from(list(rule.industries)).map(lambda v: {"industry": v})
    if isinstance(rule, rules.Authority):
        return st.sampled_from(list(rule.titles)).map(lambda v: {"title": v.title()})
    if isinstance(rule, rules.Need):
        return st.sampled_from(list(rule.services)).map(lambda v: {"needs": frozenset({v})})
    if isinstance(rule, rules.Money):
        low_revenue = int(rule._revenue or 0)
        low_staff = rule._employees or 0
        return st.fixed_dictionaries(
            {
                "annual_revenue": st.integers(low_revenue, low_revenue + 10_000_000),
                "employees": st.integers(max(low_staff, 1), max(low_staff, 1) + 500),
            }
        )
    if isinstance(rule, rules.CompanySize):
        low = rule._low if rule._low is not None else 1
        high = rule._high if rule._high is not None else low + 1_000
        return st.integers(low, high).map(lambda v: {"employees": v})
    if isinstance(rule, rules.Geography):
        countries = st.sampled_from(list(rule.countries))
        if rule.regions is None:
            return countries.map(lambda c: {"country": c})
        regions = st.sampled_from(list(rule.regions))
        return st.tuples(countries, regions).map(lambda cr: {"country": cr[0], "region": cr[1]})
    if isinstance(rule, rules.Source):
        if rule.allowed is not None:
            return st.sampled_from(list(rule.allowed)).map(lambda v: {"source": v})
        return st.just({"source": "referral-" + "x" * 3})
    return st.just({})


def contacts(
    *, type: ContactType | str | None = None, missing: bool = True, **fixed: Any
) -> st.SearchStrategy[Contact]:
    """Valid, realistic, never-stored ``Contact``s, each with its own e-mail and phone."""
    types = st.just(ContactType(type)) if type is not None else st.sampled_from(list(ContactType))

    @st.composite
    def build(draw: st.DrawFn) -> Contact:
        fields = draw(_person_fields(missing))
        fields["type"] = draw(types)
        fields.update(fixed)
        return Contact(**fields)

    return build()


def _engine(fits: Any) -> Any:
    from .._qualification import Profile, QualificationEngine

    if isinstance(fits, Profile):
        return QualificationEngine([fits])
    if isinstance(fits, QualificationEngine):
        return fits
    raise TypeError(f"fits= takes a QualificationEngine or a Profile, not {fits!r}")


# --- histories ------------------------------------------------------------------------


@dataclass(frozen=True)
class FunnelStep:
    """One facade call of a generated history: ``method`` on the ``target``-th person.

    ``apply(funnel, people)`` runs it; a move the funnel refuses (an illegal trigger, a
    policy refusal) is part of a realistic history and is skipped, not raised.
    """

    method: str
    target: int = 0
    kwargs: tuple[tuple[str, Any], ...] = ()
    advance: timedelta = timedelta(0)

    def apply(self, funnel: Funnel, people: list[Any]) -> Any:
        """Run the step on ``funnel``; ``people`` holds what earlier steps created."""
        clock = funnel.clock
        if self.advance and hasattr(clock, "advance"):
            clock.advance(seconds=self.advance.total_seconds())
        kwargs = dict(self.kwargs)
        try:
            if self.method in ("capture", "add"):
                record = getattr(funnel, self.method)(kwargs["lead"])
                people.append(record.id)
                return record
            if not people:
                return None
            subject = people[self.target % len(people)]
            if self.method in ("sit", "propose", "send_contract", "win", "lose"):
                deals = funnel.opportunities()
                if not deals:
                    return None
                subject = deals[self.target % len(deals)].id
            call: Callable[..., Any] = getattr(funnel, self.method)
            return call(subject, **kwargs)
        except LeadFunnelError:
            return None

    def __repr__(self) -> str:
        extra = ", ".join(f"{k}={v!r}" for k, v in self.kwargs if k != "lead")
        return f"{self.method}(#{self.target}{', ' + extra if extra else ''})"


def histories(*, max_steps: int = 30) -> st.SearchStrategy[list[FunnelStep]]:
    """Sequences of facade calls that replay on any ``Funnel``: people arriving (captured,
    or added as suspects who later respond), qualified (by the funnel's engine, or by
    hand), touched, booked, and deals moving to won or lost. Calls the funnel refuses (no
    engine, an illegal move) are skipped by ``replay``."""
    people = leads(status="raw")
    suspects = leads(status="suspect")
    steps = st.one_of(
        st.builds(lambda lead: FunnelStep("capture", kwargs=(("lead", lead),)), people),
        st.builds(lambda lead: FunnelStep("add", kwargs=(("lead", lead),)), suspects),
        st.builds(
            lambda t, force: FunnelStep("qualify", t, (("force", True),) if force else ()),
            st.integers(0, 50),
            st.booleans(),
        ),
        st.builds(
            lambda t, m, days: FunnelStep(m, t, advance=timedelta(days=days)),
            st.integers(0, 50),
            st.sampled_from(["respond", "farm"]),
            st.integers(0, 10),
        ),
        st.builds(
            lambda t, c, o, hours: FunnelStep(
                "touch", t, (("channel", c), ("outcome", o)), timedelta(hours=hours)
            ),
            st.integers(0, 50),
            st.sampled_from([Channel.CALL, Channel.EMAIL]),
            st.sampled_from(list(Outcome)),
            st.integers(0, 72),
        ),
        st.builds(lambda t: FunnelStep("set_appointment", t), st.integers(0, 50)),
        st.builds(
            lambda t, m: FunnelStep(m, t, advance=timedelta(days=1)),
            st.integers(0, 50),
            st.sampled_from(["sit", "propose", "send_contract", "win"]),
        ),
        st.builds(
            lambda t, r: FunnelStep("lose", t, (("reason", r),)),
            st.integers(0, 50),
            st.sampled_from(list(LostReason)),
        ),
        st.builds(lambda t: FunnelStep("disqualify", t), st.integers(0, 50)),
        st.builds(lambda t: FunnelStep("avoid", t), st.integers(0, 50)),
    )
    return st.lists(steps, max_size=max_steps)


def replay(funnel: Funnel, history: list[FunnelStep]) -> list[Any]:
    """Apply every step of ``history`` to ``funnel``; return the people's ids."""
    people: list[Any] = []
    for step in history:
        step.apply(funnel, people)
    return people


def register_strategies() -> None:
    """Let ``st.from_type(Lead)`` and ``st.from_type(Contact)`` use these strategies.

    This module does it when it is imported, and hypothesis imports this module when it
    is imported itself (leadfunnel's ``hypothesis`` entry point;
    ``HYPOTHESIS_NO_PLUGINS=1`` turns that off). Calling it again is harmless.
    """
    st.register_type_strategy(Lead, leads())
    st.register_type_strategy(Contact, contacts())


register_strategies()
