"""``funnel.due()`` over a large list: 100k leads with 300k touches (and 10k contacts).

In memory and on SQLite (``SqlRepository``), the same data, in one run:

1. ``funnel.due(at)``: the whole path (the repository's ``follow_up_candidates``, then
   scheduling, overdue, escalation through ``RoutingRules``, channels, sorting);
2. ``repository.follow_up_candidates`` alone, so the cadence layer's own cost shows;
3. the simplest hand-written equivalent: read every lead and contact, read each one's
   touches (``repository.touches(id)``), count and schedule in Python. On SQLite this
   is the load-everything approach the SQL adapter's pushdown exists to avoid.

Targets: due() within 2x of follow_up_candidates alone on both backends; on SQLite,
due() at least 10x faster than the naive per-record path. (In memory the naive path is
the reference adapter's own algorithm, so the two should be about level.)

    python benchmarks/bench_due.py             # 100k leads, 300k touches (about 2 minutes)
    python benchmarks/bench_due.py --quick     # 5k leads, 15k touches (seconds, for CI)
"""

from __future__ import annotations

import argparse
import gc
import random
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from leadfunnel import (
    CadencePolicy,
    ChangeSet,
    Channel,
    Contact,
    ContactType,
    Funnel,
    InMemoryRepository,
    Lead,
    LeadStatus,
    Outcome,
    OwnerGroup,
    Repository,
    RoutingRules,
    SqlRepository,
    Touch,
)
from leadfunnel._channels import RESETS, channels_for

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
AT = T0 + timedelta(days=40)
OWNERS = ["ana", "ben", "carla", "dan", "eve", "fay"]
STATUSES = [LeadStatus.RAW] * 5 + [LeadStatus.QUALIFIED] * 3 + [LeadStatus.UNQUALIFIED] * 2
OUTCOMES = [Outcome.NO_ANSWER] * 5 + [Outcome.LEFT_MESSAGE] * 3 + [Outcome.REPLIED]
ROUTER = RoutingRules(
    [
        OwnerGroup("a", OWNERS[:3], backup="zoe"),
        OwnerGroup("b", OWNERS[3:], backup="yan"),
    ],
    default="a",
)


def dataset(leads: int, touches: int, contacts: int) -> ChangeSet:
    """Leads (raw, qualified, unqualified) and contacts, with touches spread over them."""
    rng = random.Random(7)
    changes = ChangeSet()
    people: list[Lead | Contact] = []
    for i in range(leads):
        at = T0 + timedelta(minutes=i % 50_000)
        lead = Lead.model_construct(
            **{
                **Lead(first_name=f"P{i}").model_dump(),
                "id": uuid.uuid4(),
                "email": f"p{i}@c{i % 9973}.example.com",
                "status": STATUSES[i % len(STATUSES)],
                "status_at": at,
                "owner": OWNERS[i % len(OWNERS)],
                "created_at": at,
                "updated_at": at,
                "version": 1,
            }
        )
        people.append(lead)
    for i in range(contacts):
        contact = Contact.model_construct(
            **{
                **Contact(first_name=f"C{i}").model_dump(),
                "id": uuid.uuid4(),
                "email": f"c{i}@k{i}.example.com",
                "type": ContactType.PROSPECT,
                "owner": OWNERS[i % len(OWNERS)],
                "created_at": T0,
                "updated_at": T0,
                "version": 1,
            }
        )
        people.append(contact)
    changes.inserts.extend(people)
    template = Touch(subject_id=uuid.uuid4(), channel=Channel.EMAIL, outcome=Outcome.NO_ANSWER)
    for _ in range(touches):
        person = people[rng.randrange(len(people))]
        at = person.created_at + timedelta(hours=rng.randrange(1, 24 * 30))
        changes.touches.append(
            template.model_copy(
                update={
                    "id": uuid.uuid4(),
                    "subject_id": person.id,
                    "outcome": OUTCOMES[rng.randrange(len(OUTCOMES))],
                    "at": at,
                    "created_at": at,
                    "updated_at": at,
                }
            )
        )
    return changes


def naive_due(repository: Repository, policy: CadencePolicy, at: datetime) -> int:
    """The hand-written path: every person, then each one's touches, in Python."""
    busy = {o.contact_id for o in repository.opportunities() if o.is_open}
    due = 0
    people: list[Lead | Contact] = [*repository.leads(), *repository.contacts()]
    for person in people:
        if isinstance(person, Lead):
            if person.status not in (LeadStatus.RAW, LeadStatus.QUALIFIED):
                continue
            kind, anchor, state = "lead", person.status_at or person.created_at, person.status
        else:
            if person.type != ContactType.PROSPECT or person.id in busy:
                continue
            kind, anchor, state = "contact", person.created_at, person.type
        count, last = 0, None
        for touch in reversed(repository.touches(person.id)):
            if touch.outcome in RESETS:
                anchor = max(anchor, touch.at)
                break
            count += 1
            last = last or touch.at
        if count >= policy.limit(kind):  # type: ignore[arg-type]
            continue
        first = anchor + policy.wait(kind, 1)  # type: ignore[arg-type]
        due_at = first if last is None else max(last + policy.wait(kind, count + 1), first)  # type: ignore[arg-type]
        if due_at <= at and channels_for(kind, state.value, person.opt_outs):
            due += 1
    return due


def best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def run(name: str, repository: Repository, changes: ChangeSet, repeat: int) -> None:
    start = time.perf_counter()
    repository.commit(changes)
    loaded = time.perf_counter() - start
    policy = CadencePolicy()
    funnel = Funnel(repository, cadence=policy, router=ROUTER)
    due_s, items = best(lambda: funnel.due(at=AT), repeat)
    cand_s, rows = best(
        lambda: list(repository.follow_up_candidates(lead_limit=2, contact_limit=8)), repeat
    )
    naive_s, naive_count = best(lambda: naive_due(repository, policy, AT), 1)
    overdue = sum(1 for i in items if i.overdue)
    escalated = sum(1 for i in items if i.escalated_to)
    print(f"\n{name}: loaded in {loaded:.1f} s")
    print(f"  due(at)                      {due_s * 1000:9.0f} ms  {len(items)} items due")
    print(f"     of which overdue/escalated                {overdue} / {escalated}")
    print(f"  follow_up_candidates alone   {cand_s * 1000:9.0f} ms  {len(rows)} in cadence")
    print(f"  naive per-record in Python   {naive_s * 1000:9.0f} ms  {naive_count} due")
    print(f"  due / candidates: {due_s / cand_s:.2f}x (target <= 2x)")
    target = " (target >= 10x)" if name == "sqlite" else " (about level: same algorithm)"
    print(f"  naive / due:      {naive_s / due_s:.1f}x{target}")
    if naive_count != len(items):
        print(f"  MISMATCH: naive counts {naive_count}, due() lists {len(items)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5k leads, 15k touches")
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--touches", type=int, default=300_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    leads, touches = (5_000, 15_000) if args.quick else (args.leads, args.touches)
    contacts = max(leads // 10, 1)
    print(f"due() over {leads} leads, {contacts} contacts, {touches} touches")
    run("memory", InMemoryRepository(), dataset(leads, touches, contacts), args.repeat)
    with tempfile.TemporaryDirectory() as folder:
        repository = SqlRepository(f"sqlite:///{Path(folder) / 'funnel.db'}")
        try:
            run("sqlite", repository, dataset(leads, touches, contacts), args.repeat)
        finally:
            repository.close()


if __name__ == "__main__":
    main()
