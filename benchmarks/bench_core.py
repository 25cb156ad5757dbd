"""The funnel core, side by side with its simplest equivalents, in one run.

1. One facade transition on the in-memory repository (``funnel.farm(lead)``: load,
   state check, new version, event, atomic commit) against one ``Lead.model_validate``
   of a 12-field record without a phone (parsing a phone with ``phonenumbers`` costs
   more than the rest of the record, and would hide the transition's own cost).
   Target: at most 3x.
2. The lifecycle check itself (``LEAD.move(state, trigger)``, derived from the
   ``transitions`` definitions) against a bare dict lookup. Target: at most 5x.
3. ``transitions`` used the naive way: one ``Machine`` per record (construction, memory,
   one trigger), for scale.
4. 100k ``Lead(**fields)`` constructed against ``Lead.model_validate(fields)``.
   Target: within 1.5x.

    python benchmarks/bench_core.py            # full sizes (about a minute)
    python benchmarks/bench_core.py --quick    # seconds, for CI
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from transitions import Machine

from leadfunnel import Funnel, InMemoryRepository, Lead
from leadfunnel._lifecycle import _LEAD_STATES, _LEAD_TRANSITIONS, LEAD
from leadfunnel._models import normalise_phone
from leadfunnel.testing import ManualClock

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def twelve_fields(n: int) -> dict[str, Any]:
    """A typical record: 12 fields, as a form or an export gives them."""
    return {
        "first_name": f"Pat{n}",
        "last_name": "Rivera",
        "email": f"pat{n}@acme-it{n}.example.com",
        "phone": f"+1 512 {200 + n // 10000 % 800:03d} {n % 10000:04d}",
        "company": f"Acme IT {n}",
        "title": "CEO",
        "industry": "IT Services",
        "employees": 25,
        "annual_revenue": 2_500_000,
        "country": "US",
        "region": "TX",
        "source": "webinar",
    }


def best_per_call(run: Callable[[], int], repeat: int, fresh_phones: bool = True) -> float:
    """Seconds per call: the best of ``repeat`` runs of ``run`` (which returns its calls)."""
    best = float("inf")
    for _ in range(repeat):
        if fresh_phones:
            # Real input has a new phone number on every row: no run may reuse the
            # parses an earlier run left in the phone cache.
            normalise_phone.cache_clear()
        start = time.perf_counter()
        calls = run()
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def us(seconds: float) -> str:
    return f"{seconds * 1e6:9.2f} us"


def verdict(ratio: float, target: float) -> str:
    return f"{ratio:5.2f}x  (target <= {target}x: {'met' if ratio <= target else 'MISSED'})"


# --- 1. a facade transition ---------------------------------------------------------


def twelve_fields_without_phone(n: int) -> dict[str, Any]:
    """The same record with a city instead of a phone: what validating costs without
    ``phonenumbers`` (the baseline of the transition, issue 19)."""
    fields = twelve_fields(n)
    del fields["phone"]
    fields["city"] = "Austin"
    return fields


def bench_transition(records: int, repeat: int) -> tuple[float, float, float]:
    """(a transition, a 12-field validation without a phone, the same with a new phone)."""
    plain = [twelve_fields_without_phone(n) for n in range(records)]
    phoned = [twelve_fields(n) for n in range(records)]

    def validate(data: list[dict[str, Any]]) -> Callable[[], int]:
        def run() -> int:
            for fields in data:
                Lead.model_validate(fields)
            return len(data)

        return run

    plain_s = best_per_call(validate(plain), repeat)
    phone_s = best_per_call(validate(phoned), repeat)

    def farm() -> int:
        funnel = Funnel(InMemoryRepository(), clock=ManualClock(T0))
        funnel.import_leads(plain, status="suspect")
        ids = [lead.id for lead in funnel.leads()]
        start = time.perf_counter()
        for lead_id in ids:
            funnel.farm(lead_id)
        farm.elapsed = time.perf_counter() - start  # type: ignore[attr-defined]
        return records

    best = float("inf")
    for _ in range(repeat):
        farm()
        best = min(best, farm.elapsed / records)  # type: ignore[attr-defined]
    return best, plain_s, phone_s


# --- 2. the lifecycle check -------------------------------------------------------------


def bench_check(calls: int, repeat: int) -> tuple[float, float]:
    pairs = [("suspect", "farm"), ("raw", "qualify"), ("qualified", "convert"), ("raw", "avoid")]
    work = (pairs * (calls // len(pairs) + 1))[:calls]
    table = {
        ("suspect", "farm"): "farm_list",
        ("raw", "qualify"): "qualified",
        ("qualified", "convert"): "converted",
        ("raw", "avoid"): "avoid",
    }
    move = LEAD.move

    def lifecycle() -> int:
        for state, trigger in work:
            move(state, trigger)
        return calls

    def bare() -> int:
        for state, trigger in work:
            table[(state, trigger)]
        return calls

    return best_per_call(lifecycle, repeat), best_per_call(bare, repeat)


# --- 3. transitions, the naive way --------------------------------------------------


class _Record:
    """A plain object carrying its own machine: the pattern the library avoids."""

    def __init__(self) -> None:
        self.force = False

    def forced(self) -> bool:
        return self.force


def bench_naive(records: int) -> tuple[float, float, float]:
    gc.collect()
    tracemalloc.start()
    before, _ = tracemalloc.get_traced_memory()
    start = time.perf_counter()
    models = []
    for _ in range(records):
        model = _Record()
        Machine(
            model=model,
            states=_LEAD_STATES,
            transitions=_LEAD_TRANSITIONS,
            initial="suspect",
            auto_transitions=False,
        )
        models.append(model)
    build = (time.perf_counter() - start) / records
    after, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    start = time.perf_counter()
    for model in models:
        model.farm()  # type: ignore[attr-defined]
    trigger = (time.perf_counter() - start) / records
    return build, (after - before) / records, trigger


# --- 4. constructing leads ----------------------------------------------------------


def bench_construct(records: int, repeat: int) -> tuple[float, float]:
    data = [twelve_fields(n) for n in range(records)]

    def construct() -> int:
        for fields in data:
            Lead(**fields)
        return records

    def validate() -> int:
        for fields in data:
            Lead.model_validate(fields)
        return records

    return best_per_call(construct, repeat), best_per_call(validate, repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for CI")
    args = parser.parse_args()
    quick = args.quick
    transitions_n = 2_000 if quick else 20_000
    checks = 100_000 if quick else 1_000_000
    naive_n = 300 if quick else 3_000
    construct_n = 10_000 if quick else 100_000
    repeat = 3 if quick else 5

    print(f"leadfunnel core benchmark{' (quick)' if quick else ''}")
    print()

    farm_s, validate_s, phone_s = bench_transition(transitions_n, repeat)
    print(f"1. facade transition, in memory ({transitions_n:,} leads farmed)")
    print(f"   funnel.farm(lead)                 {us(farm_s)}")
    print(f"   Lead.model_validate(12 fields,    {us(validate_s)}")
    print("     no phone)")
    print(f"   ratio                             {verdict(farm_s / validate_s, 3)}")
    print(
        f"   ... 12 fields with a new phone    {us(phone_s)}  (for scale: {farm_s / phone_s:.2f}x)"
    )
    print()

    move_s, dict_s = bench_check(checks, repeat)
    print(f"2. lifecycle check ({checks:,} checks)")
    print(f"   LEAD.move(state, trigger)         {us(move_s)}")
    print(f"   bare dict lookup                  {us(dict_s)}")
    print(f"   ratio                             {verdict(move_s / dict_s, 5)}")
    print()

    build_s, build_bytes, trigger_s = bench_naive(naive_n)
    print(f"3. transitions the naive way: one Machine per record ({naive_n:,} records)")
    print(f"   Machine(model=record) per record  {us(build_s)}  {build_bytes / 1024:6.1f} KB")
    print(f"   record.farm() trigger             {us(trigger_s)}")
    print(f"   vs LEAD.move                      {trigger_s / move_s:7.1f}x slower per check")
    print(f"   vs a facade transition            {(build_s + trigger_s) / farm_s:7.1f}x slower")
    print()

    construct_s, validate2_s = bench_construct(construct_n, repeat)
    print(f"4. constructing leads ({construct_n:,})")
    print(
        f"   Lead(**fields)                    {us(construct_s)}"
        f"  ({construct_s * construct_n:6.2f} s total)"
    )
    print(
        f"   Lead.model_validate(fields)       {us(validate2_s)}"
        f"  ({validate2_s * construct_n:6.2f} s total)"
    )
    print(f"   ratio                             {verdict(construct_s / validate2_s, 1.5)}")


if __name__ == "__main__":
    main()
