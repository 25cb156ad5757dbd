"""Qualification speed: ``engine.evaluate`` against a hand-written loop of the same checks.

Both judge the same pydantic ``Lead`` objects against two profiles with five rules in all
(niche, authority, money | geography (hard), company size). The hand-written loop does
the five checks, each to the end, and combines them into "qualified": the least any
engine must do. Target (issue 3): the engine within 4x of the loop.

    python benchmarks/bench_qualification.py            # 100k leads
    python benchmarks/bench_qualification.py --quick    # 10k leads
"""

from __future__ import annotations

import argparse
import gc
import random
import re
import time
from decimal import Decimal

from leadfunnel import Lead, QualificationEngine

PROFILES = {
    "profiles": [
        {
            "name": "msp-owner",
            "rules": [
                {"rule": "niche", "industries": ["IT Services", "Managed Services"]},
                {"rule": "authority", "titles": ["ceo", "owner", "founder", "president"]},
                {"rule": "money", "min_annual_revenue": 1_000_000},
            ],
        },
        {
            "name": "us-smb",
            "rules": [
                {"rule": "geography", "countries": ["US"], "hard": True},
                {"rule": "company_size", "min_employees": 5, "max_employees": 200},
            ],
        },
    ]
}

INDUSTRIES = [
    "IT Services",
    "Managed Services",
    "Retail",
    "Accounting",
    "Construction",
    "Real Estate",
    "Education",
    "Healthcare",
    "Legal",
    "Restaurants",
    "it services",
    "Manufacturing",
    "Logistics",
    "Insurance",
    "Marketing",
    "Non-profit",
]
TITLES = [
    "CEO",
    "Owner",
    "Owner/CEO",
    "Co-Founder & CEO",
    "President",
    "Founder",
    "CTO",
    "Office Manager",
    "IT Manager",
    "Marketing Coordinator",
    "VP Sales",
    "Director",
    "Managing Partner",
    "CEO's assistant",
    "Head of Operations",
    "Technician",
    "Senior Engineer",
    "COO",
    "CFO",
    "Account Executive",
    "Owner & President",
]
COUNTRIES = ["US", "US", "US", "CA", "GB", "DE", "AU", None]


def make_leads(n: int, seed: int = 1) -> list[Lead]:
    rng = random.Random(seed)
    return [
        Lead(
            industry=rng.choice(INDUSTRIES),
            title=rng.choice(TITLES),
            annual_revenue=rng.choice([None, rng.randrange(50_000, 9_000_000, 1000)]),
            country=rng.choice(COUNTRIES),
            employees=rng.choice([None, rng.randrange(1, 500)]),
        )
        for _ in range(n)
    ]


INDUSTRY_KEYS = {"it services", "managed services"}
TITLE = re.compile(r"(?<![\w'\u2019])(?:president|founder|owner|ceo)(?![\w'\u2019])", re.I)
MIN_REVENUE = Decimal(1_000_000)


def by_hand(lead: Lead) -> bool:
    """The five checks written out, each to the end, pass/fail/unknown as 0/1/2."""
    niche = (
        2
        if lead.industry is None
        else (0 if " ".join(lead.industry.casefold().split()) in INDUSTRY_KEYS else 1)
    )
    authority = 2 if lead.title is None else (0 if TITLE.search(lead.title) else 1)
    money = 2 if lead.annual_revenue is None else (0 if lead.annual_revenue >= MIN_REVENUE else 1)
    territory = 2 if lead.country is None else (0 if lead.country == "US" else 1)
    size = 2 if lead.employees is None else (0 if 5 <= lead.employees <= 200 else 1)
    return (niche == authority == money == 0) or (territory == size == 0)


def timed(function: object, leads: list[Lead], rounds: int) -> tuple[float, int]:
    best = float("inf")
    qualified = 0
    for _ in range(rounds):
        gc.collect()
        start = time.perf_counter()
        qualified = sum(1 for lead in leads if function(lead))  # type: ignore[operator]
        best = min(best, time.perf_counter() - start)
    return best, qualified


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10k leads, one round")
    parser.add_argument("--leads", type=int, default=100_000)
    args = parser.parse_args()
    n = 10_000 if args.quick else args.leads
    rounds = 1 if args.quick else 3
    leads = make_leads(n)
    engine = QualificationEngine.from_dict(PROFILES)
    evaluate = engine.evaluate

    def engine_qualified(lead: Lead) -> bool:
        return evaluate(lead).qualified

    hand_time, hand_count = timed(by_hand, leads, rounds)
    engine_time, engine_count = timed(engine_qualified, leads, rounds)
    assert hand_count == engine_count, (hand_count, engine_count)
    explain_start = time.perf_counter()
    for lead in leads[: n // 10]:
        engine.evaluate(lead).verdicts  # noqa: B018 - explaining costs extra, once asked
    explain = (time.perf_counter() - explain_start) / (n // 10)
    print(f"leads: {n:,}  qualified: {engine_count:,}  (best of {rounds})")
    print(
        f"hand-written loop : {n / hand_time:>10,.0f} leads/s  {hand_time / n * 1e6:6.2f} us/lead"
    )
    print(
        f"engine.evaluate   : {n / engine_time:>10,.0f} leads/s  "
        f"{engine_time / n * 1e6:6.2f} us/lead"
    )
    print(f"ratio             : {engine_time / hand_time:.2f}x  (target <= 4x)")
    print(f"evaluate + verdicts (explained): {explain * 1e6:.2f} us/lead")


if __name__ == "__main__":
    main()
