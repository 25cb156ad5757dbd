"""The demo: a realistic sample funnel, driven through the public facade.

Several hundred people arrive over the 90 days up to today (the funnel clock's hour)
from five sources; about half of the raw leads turn out unfit, the rest are called,
qualified, booked, and worked through the sales stages. Nothing is dated after today:
a story whose next move would fall in the future stops there, so the newest leads are
still raw and due for a call, and the latest deals are open (proposals carry an
amount: the open pipeline). Two things are planted for the report to show: a setter
whose appointments rarely stick (``casey``) and a source whose leads rarely qualify
(``bought-list``). Everything is deterministic for a given seed and hour.

*People* are everyone who arrives; *leads* those who became raw leads (the report's
raw count): the inquiries, and the bought-list suspects who responded. Suspects who
have not responded are people, not leads.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID

from ._enums import Channel, Interest, LeadStatus, LostReason, Outcome
from ._errors import LeadFunnelError
from ._funnel import Funnel
from ._models import Lead
from ._qualification import QualificationEngine
from ._samples import COMPANY_WORDS, FIRST_NAMES, LAST_NAMES

__all__ = ["DEMO_DAYS", "DEMO_PROFILES", "DemoSummary", "build_demo"]

#: How many days before today the demo's people arrive over.
DEMO_DAYS = 90

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
    """What the demo did, and over which days (``start`` to ``end``, the anchor).

    ``people`` arrived; ``leads`` of them became raw leads: ``inquiries`` (captured)
    and ``responded`` (bought-list suspects who answered the campaign). ``suspects``
    counts every suspect added, ``unresponsive`` those still suspects. Of the leads,
    ``qualified``, ``unqualified`` and ``waiting`` (still raw: a call or data
    pending); of the deals, ``won``, ``lost`` and ``open``. ``follow_ups`` counts the
    touches logged working the cadence after the stories.
    """

    start: datetime
    end: datetime
    people: int = 0
    leads: int = 0
    inquiries: int = 0
    suspects: int = 0
    responded: int = 0
    qualified: int = 0
    unqualified: int = 0
    appointments: int = 0
    won: int = 0
    lost: int = 0
    avoided: int = 0
    follow_ups: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def unresponsive(self) -> int:
        """Bought-list suspects who have not responded: people, not leads."""
        return self.suspects - self.responded

    @property
    def waiting(self) -> int:
        """Leads still raw: waiting for a call or more data."""
        return self.leads - self.qualified - self.unqualified

    @property
    def open(self) -> int:
        """Deals neither won nor lost yet."""
        return self.appointments - self.won - self.lost


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
        campaign=f"{source}-campaign",
        interest=rng.choice([Interest.SLIGHT, Interest.SLIGHT, Interest.HIGH]),
        tags={"demo"},
        owner=rng.choice(_OWNERS),
    )


def build_demo(
    funnel: Funnel,
    *,
    seed: int = 7,
    leads: int = 400,
    now: datetime | None = None,
    tick: Callable[[], None] | None = None,
) -> DemoSummary:
    """Drive ``leads`` people through ``funnel`` (which needs no engine of its own),
    arriving over the :data:`DEMO_DAYS` days before ``now`` (default: the funnel
    clock's time, to the hour). No move is dated after ``now``. ``tick`` is called
    before each person (the command line checks there for a Ctrl-C)."""
    rng = random.Random(seed)
    if funnel.engine is None:
        funnel.engine = QualificationEngine.from_dict(DEMO_PROFILES)
    end = (now or funnel.clock.now()).astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(days=DEMO_DAYS)
    summary = DemoSummary(start=start, end=end)
    sources = list(_SOURCES)
    weights = [share for share, _ in _SOURCES.values()]
    arrivals = sorted(
        start + timedelta(minutes=rng.randrange(0, DEMO_DAYS * 24 * 60)) for _ in range(leads)
    )
    suspects = []
    for n, at in enumerate(arrivals, start=1):
        if tick is not None:
            tick()
        source = rng.choices(sources, weights)[0]
        fits = rng.random() < _SOURCES[source][1]
        person = _person(rng, n, source, fits)
        try:
            if source == "bought-list" and rng.random() < 0.5:
                # A bought list starts as suspects; some respond to the campaign later.
                suspect = funnel.add(
                    person.model_copy(update={"status": LeadStatus.SUSPECT}), at=at
                )
                summary.people += 1
                summary.suspects += 1
                if rng.random() < 0.4:
                    suspects.append((suspect, at + timedelta(days=rng.randrange(3, 20))))
                continue
            lead = funnel.capture(person, at=at)
            summary.people += 1
            summary.leads += 1
            summary.inquiries += 1
            _work_lead(funnel, rng, lead.id, at, summary)
        except LeadFunnelError as exc:  # the demo keeps going, as a real team would
            summary.errors.append(f"{person.email}: {exc}")
    for suspect, at in suspects:
        if at > end:
            continue  # will respond, but not yet
        try:
            funnel.respond(suspect, at=at, reason="replied to the e-mail campaign")
            summary.leads += 1
            summary.responded += 1
            _work_lead(funnel, rng, suspect.id, at, summary)
        except LeadFunnelError as exc:
            summary.errors.append(f"{suspect.email}: {exc}")
    _follow_up(funnel, rng, summary)
    return summary


#: The owner who lets follow-ups slip (about half of them): ``leadfunnel due`` shows
#: their overdue backlog, the others keep up.
SLACKER = "riley"


def _follow_up(funnel: Funnel, rng: random.Random, summary: DemoSummary) -> None:
    """Work the cadence up to the end, as the team would have: every follow-up due is
    touched before it is late (no answer, a message, a short talk), except the
    slacker's neglected ones. What is left due at the end is not late yet, or the
    slacker's."""
    neglected: dict[object, bool] = {}
    for _ in range(12):  # rounds: each touch makes the next one due later
        acted = False
        for item in funnel.due(at=summary.end):
            if item.subject_id not in neglected:
                neglected[item.subject_id] = item.owner == SLACKER and rng.random() < 0.5
            # On time: somewhere between due and late.
            deadline = item.overdue_at or item.due_at + timedelta(hours=1)
            window = (deadline - item.due_at).total_seconds()
            at = item.due_at + timedelta(seconds=int(window * rng.uniform(0.1, 0.9)))
            if neglected[item.subject_id] or at > summary.end:
                continue  # neglected, or not late yet: still due at the end
            channel = Channel.CALL if Channel.CALL in item.channels else min(item.channels)
            outcome = rng.choice([Outcome.NO_ANSWER, Outcome.LEFT_MESSAGE, Outcome.CONNECTED])
            try:
                funnel.touch(item.subject_id, channel, outcome, at=at, actor=item.owner or "sdr")
            except LeadFunnelError as exc:
                summary.errors.append(f"{item.subject} {item.subject_id}: {exc}")
                continue
            summary.follow_ups += 1
            acted = True
        if not acted:
            return


class _Later(Exception):
    """The story's next move would be after the demo's end: it stops there."""


def _work_lead(
    funnel: Funnel, rng: random.Random, lead_id: UUID, at: datetime, summary: DemoSummary
) -> None:
    end = summary.end

    def when(moment: datetime) -> datetime:
        if moment > end:
            raise _Later
        return moment

    try:
        _story(funnel, rng, lead_id, at, summary, when)
    except _Later:
        return


def _story(
    funnel: Funnel,
    rng: random.Random,
    lead_id: UUID,
    at: datetime,
    summary: DemoSummary,
    when: Callable[[datetime], datetime],
) -> None:
    at += timedelta(minutes=rng.randrange(5, 240))
    result = funnel.qualify(lead_id, at=when(at), actor="demo")
    if not result.qualified and result.status is not None and result.status.value == "raw":
        # Soft failure: call before disqualifying.
        at += timedelta(hours=rng.randrange(1, 48))
        funnel.touch(lead_id, Channel.CALL, Outcome.CONNECTED, at=when(at), actor="sdr")
        result = funnel.qualify(lead_id, at=at, actor="sdr")
    if result.status is not None and result.status.value == "unqualified":
        summary.unqualified += 1
        if rng.random() < 0.03:
            funnel.avoid(lead_id, at=when(at + timedelta(days=1)), reason="asked us to stop")
            summary.avoided += 1
        return
    if not result.qualified:
        return
    summary.qualified += 1
    for touch in range(rng.choice([1, 2, 2, 3])):
        at += timedelta(days=rng.randrange(1, 4))
        outcome = Outcome.INTERESTED if touch or rng.random() < 0.6 else Outcome.LEFT_MESSAGE
        funnel.touch(lead_id, Channel.CALL, outcome, at=when(at), actor="sdr")
    if rng.random() > 0.7:
        return  # a sweet-spot lead that never booked
    setter = rng.choices(list(_SETTERS), [0.45, 0.45, 0.1])[0]
    at += timedelta(days=rng.randrange(1, 5))
    deal = funnel.set_appointment(
        lead_id,
        appointment_at=at + timedelta(days=3),
        owner=rng.choice(_OWNERS),
        setter=setter,
        at=when(at),
        actor=setter,
    )
    summary.appointments += 1
    at += timedelta(days=3)
    if rng.random() > _SETTERS[setter]:
        funnel.lose(
            deal, reason=rng.choice([LostReason.NO_SHOW, LostReason.CANCELLED]), at=when(at)
        )
        summary.lost += 1
        return
    deal = funnel.sit(deal, at=when(at))
    at += timedelta(days=rng.randrange(2, 10))
    if rng.random() > 0.85:
        funnel.lose(deal, reason=LostReason.NOT_SOLID, at=when(at))
        summary.lost += 1
        return
    deal = funnel.propose(deal, at=when(at))
    # The proposal's value: the open pipeline counts it until the deal closes.
    proposal = Decimal(rng.randrange(12_000, 90_000, 500))
    deal = funnel.update(deal.model_copy(update={"amount": proposal}), at=at, actor=setter)
    at += timedelta(days=rng.randrange(2, 10))
    if rng.random() > 0.8:
        funnel.lose(deal, reason=LostReason.PRICE, at=when(at))
        summary.lost += 1
        return
    deal = funnel.send_contract(deal, at=when(at))
    at += timedelta(days=rng.randrange(2, 14))
    if rng.random() < 0.93:
        # Some negotiate a discount before they sign.
        final = proposal if rng.random() < 0.7 else (proposal * Decimal("0.9")).quantize(1)
        funnel.win(deal, amount=final, at=when(at))
        summary.won += 1
    else:
        funnel.lose(deal, reason=LostReason.COMPETITOR, at=when(at))
        summary.lost += 1
