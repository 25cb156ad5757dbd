"""The demo: a realistic sample funnel, driven through the public facade.

Several hundred people arrive over a quarter from five sources; about half of the raw
leads turn out unfit, the rest are called, qualified, booked, and worked through the
sales stages. Two things are planted for the report to show: a setter whose
appointments rarely stick (``casey``) and a source whose leads rarely qualify
(``bought-list``). Everything is deterministic for a given seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from ._enums import Channel, Interest, LeadStatus, LostReason, Outcome
from ._errors import LeadFunnelError
from ._funnel import Funnel
from ._models import Lead
from ._qualification import QualificationEngine
from ._samples import COMPANY_WORDS, FIRST_NAMES, LAST_NAMES

__all__ = ["DEMO_PROFILES", "DemoSummary", "build_demo"]

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

#: The demo's ideal customer profiles, as a config file would give them.
DEMO_PROFILES = {
    "profiles": [
        {
            "name": "msp-owner",
            "rules": [
                {"rule": "niche", "industries": ["IT Services", "Managed Services"]},
                {"rule": "authority", "titles": ["ceo", "owner", "founder", "president"]},
                {"rule": "money", "min_annual_revenue": 1_000_000},
                {"rule": "geography", "countries": ["US", "CA"], "hard": True},
            ],
        },
        {
            "name": "accounting-partner",
            "rules": [
                {"rule": "niche", "industries": ["Accounting"]},
                {"rule": "authority", "titles": ["partner", "owner", "managing director"]},
                {"rule": "company_size", "min_employees": 5, "max_employees": 200},
                {"rule": "geography", "countries": ["US"], "hard": True},
            ],
        },
    ]
}

_FIT_INDUSTRY = ["IT Services", "Managed Services", "Accounting"]
_OTHER_INDUSTRY = ["Retail", "Restaurants", "Real Estate", "Construction", "Education"]
_AUTHORITY = ["CEO", "Owner", "Founder & CEO", "President", "Managing Partner", "Owner/CEO"]
_NO_AUTHORITY = ["Office Manager", "Marketing Coordinator", "IT Technician", "Intern"]
_REGIONS = ["TX", "CA", "NY", "FL", "IL", "WA", "CO", "GA"]

# source -> (share of arrivals, chance the lead fits a profile)
_SOURCES = {
    "referral": (0.15, 0.92),
    "webinar": (0.25, 0.7),
    "website": (0.25, 0.62),
    "trade-show": (0.15, 0.58),
    "bought-list": (0.20, 0.15),
}
_SETTERS = {"alex": 0.98, "jordan": 0.97, "casey": 0.4}  # setter -> chance the meeting sits
_OWNERS = ["sam", "riley"]


@dataclass
class DemoSummary:
    """What the demo did."""

    leads: int = 0
    suspects: int = 0
    qualified: int = 0
    unqualified: int = 0
    appointments: int = 0
    won: int = 0
    lost: int = 0
    avoided: int = 0
    errors: list[str] = field(default_factory=list)


def _person(rng: random.Random, n: int, source: str, fits: bool) -> Lead:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    company = f"{rng.choice(COMPANY_WORDS)} {rng.choice(['IT', 'Tech', 'Group', 'Partners', 'Co'])}"
    domain = company.lower().replace(" ", "-") + f"-{n}.example.com"
    if fits:
        industry = rng.choice(_FIT_INDUSTRY)
        title = rng.choice(_AUTHORITY)
        revenue = rng.randrange(1_200_000, 12_000_000, 50_000)
        country = "US" if industry == "Accounting" else rng.choice(["US", "US", "US", "CA"])
    else:
        flaw = rng.choice(["industry", "title", "money", "country"])
        industry = rng.choice(_OTHER_INDUSTRY if flaw == "industry" else _FIT_INDUSTRY)
        title = rng.choice(_NO_AUTHORITY if flaw == "title" else _AUTHORITY)
        revenue = (
            rng.randrange(80_000, 900_000, 10_000)
            if flaw == "money"
            else (rng.randrange(1_200_000, 9_000_000, 50_000))
        )
        country = rng.choice(["GB", "DE", "AU", "MX"]) if flaw == "country" else "US"
    return Lead(
        first_name=first,
        last_name=last,
        email=f"{first.lower()}.{last.lower()}@{domain}",
        phone=f"+1 512 555 {n % 10000:04d}" if rng.random() < 0.7 else None,
        company=company,
        title=title,
        industry=industry,
        employees=rng.randrange(6, 180),
        annual_revenue=revenue,
        country=country,
        region=rng.choice(_REGIONS) if country == "US" else None,
        source=source,
        campaign=f"{source}-q1",
        interest=rng.choice([Interest.SLIGHT, Interest.SLIGHT, Interest.HIGH]),
        tags={"demo"},
        owner=rng.choice(_OWNERS),
    )


def build_demo(funnel: Funnel, *, seed: int = 7, leads: int = 400) -> DemoSummary:
    """Drive ``leads`` people through ``funnel`` (which needs no engine of its own)."""
    rng = random.Random(seed)
    if funnel.engine is None:
        funnel.engine = QualificationEngine.from_dict(DEMO_PROFILES)
    summary = DemoSummary()
    sources = list(_SOURCES)
    weights = [share for share, _ in _SOURCES.values()]
    arrivals = sorted(
        START + timedelta(minutes=rng.randrange(0, 90 * 24 * 60)) for _ in range(leads)
    )
    suspects = []
    for n, at in enumerate(arrivals, start=1):
        source = rng.choices(sources, weights)[0]
        fits = rng.random() < _SOURCES[source][1]
        person = _person(rng, n, source, fits)
        try:
            if source == "bought-list" and rng.random() < 0.5:
                # A bought list starts as suspects; some respond to the campaign later.
                suspect = funnel.add(
                    person.model_copy(update={"status": LeadStatus.SUSPECT}), at=at
                )
                summary.suspects += 1
                if rng.random() < 0.4:
                    suspects.append((suspect, at + timedelta(days=rng.randrange(3, 20))))
                continue
            lead = funnel.capture(person, at=at)
            summary.leads += 1
            _work_lead(funnel, rng, lead.id, at, summary)
        except LeadFunnelError as exc:  # the demo keeps going, as a real team would
            summary.errors.append(f"{person.email}: {exc}")
    for suspect, at in suspects:
        try:
            funnel.respond(suspect, at=at, reason="replied to the e-mail campaign")
            summary.leads += 1
            _work_lead(funnel, rng, suspect.id, at, summary)
        except LeadFunnelError as exc:
            summary.errors.append(f"{suspect.email}: {exc}")
    return summary


def _work_lead(
    funnel: Funnel, rng: random.Random, lead_id: object, at: datetime, summary: DemoSummary
) -> None:
    from uuid import UUID

    assert isinstance(lead_id, UUID)
    at += timedelta(minutes=rng.randrange(5, 240))
    result = funnel.qualify(lead_id, at=at, actor="demo")
    if not result.qualified and result.status is not None and result.status.value == "raw":
        # Soft failure: call before disqualifying.
        at += timedelta(hours=rng.randrange(1, 48))
        funnel.touch(lead_id, Channel.CALL, Outcome.CONNECTED, at=at, actor="sdr")
        result = funnel.qualify(lead_id, at=at, actor="sdr")
    if result.status is not None and result.status.value == "unqualified":
        summary.unqualified += 1
        if rng.random() < 0.03:
            funnel.avoid(lead_id, at=at + timedelta(days=1), reason="asked us to stop")
            summary.avoided += 1
        return
    if not result.qualified:
        return
    summary.qualified += 1
    for touch in range(rng.choice([1, 2, 2, 3])):
        at += timedelta(days=rng.randrange(1, 4))
        outcome = Outcome.INTERESTED if touch or rng.random() < 0.6 else Outcome.LEFT_MESSAGE
        funnel.touch(lead_id, Channel.CALL, outcome, at=at, actor="sdr")
    if rng.random() > 0.7:
        return  # a sweet-spot lead that never booked
    setter = rng.choices(list(_SETTERS), [0.45, 0.45, 0.1])[0]
    at += timedelta(days=rng.randrange(1, 5))
    deal = funnel.set_appointment(
        lead_id,
        appointment_at=at + timedelta(days=3),
        owner=rng.choice(_OWNERS),
        setter=setter,
        at=at,
        actor=setter,
    )
    summary.appointments += 1
    at += timedelta(days=3)
    if rng.random() > _SETTERS[setter]:
        funnel.lose(deal, reason=rng.choice([LostReason.NO_SHOW, LostReason.CANCELLED]), at=at)
        summary.lost += 1
        return
    deal = funnel.sit(deal, at=at)
    steps = [
        (funnel.propose, 0.85, LostReason.NOT_SOLID),
        (funnel.send_contract, 0.8, LostReason.PRICE),
    ]
    for step, chance, reason in steps:
        at += timedelta(days=rng.randrange(2, 10))
        if rng.random() > chance:
            funnel.lose(deal, reason=reason, at=at)
            summary.lost += 1
            return
        deal = step(deal, at=at)
    at += timedelta(days=rng.randrange(2, 14))
    if rng.random() < 0.93:
        funnel.win(deal, amount=rng.randrange(12_000, 90_000, 500), at=at)
        summary.won += 1
    else:
        funnel.lose(deal, reason=LostReason.COMPETITOR, at=at)
        summary.lost += 1
