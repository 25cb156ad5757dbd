"""One change at a time on SQLite: what a single facade call costs on a file.

The demo, a CRM's request handler and an integration's webhook all work one lead at a
time: each call reads a record, checks the move, and commits the change with its event
in a transaction of its own. Times, per call, on a file of ``--leads`` leads:

* ``repository.get(id)`` beside the hand-written ``sqlite3`` lookup of the same row
  (``SELECT doc FROM lf_leads WHERE id = ?``) rebuilt into a ``Lead``;
* ``funnel.touch`` (e-mail), ``funnel.qualify(force=True)`` and ``funnel.set_appointment``
  (a conversion: four rows changed, three events), each a whole read-check-commit.

    python benchmarks/bench_sql_ops.py            # 2,000 leads
    python benchmarks/bench_sql_ops.py --leads 200
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from leadfunnel import Funnel, Lead, SqlRepository


def per_call(function: Callable[[Any], object], items: list[Any]) -> float:
    """Microseconds per call of ``function`` over ``items`` (one pass)."""
    start = time.perf_counter()
    for item in items:
        function(item)
    return (time.perf_counter() - start) / len(items) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=2_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ops.db"
        funnel = Funnel(SqlRepository(f"sqlite:///{path}"))
        leads = [
            funnel.capture(Lead(first_name="Pat", email=f"p{n}@co{n}.example.com"))
            for n in range(args.leads)
        ]
        raw = sqlite3.connect(path)

        def by_hand(lead: Lead) -> Lead:
            (doc,) = raw.execute(
                "SELECT doc FROM lf_leads WHERE id = ?", (lead.id.bytes,)
            ).fetchone()
            return Lead.model_validate_json(doc)

        assert by_hand(leads[0]) == funnel.repository.get(leads[0].id)
        hand = min(per_call(by_hand, leads) for _ in range(3))
        get = min(per_call(lambda lead: funnel.repository.get(lead.id), leads) for _ in range(3))
        touch = per_call(lambda lead: funnel.touch(lead, "email", "no_answer"), leads)
        qualify = per_call(lambda lead: funnel.qualify(lead, force=True), leads)
        book = per_call(lambda lead: funnel.set_appointment(lead, setter="alex"), leads)
        print(f"{args.leads:,} leads on SQLite, per call:")
        print(f"  get, hand-written sqlite3 + model : {hand:7.0f} us")
        print(f"  repository.get                    : {get:7.0f} us  ({get / hand:.1f}x)")
        print(f"  funnel.touch (e-mail)             : {touch:7.0f} us")
        print(f"  funnel.qualify(force=True)        : {qualify:7.0f} us")
        print(f"  funnel.set_appointment            : {book:7.0f} us")


if __name__ == "__main__":
    main()
