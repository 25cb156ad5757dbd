"""Paging: what page 1,000 costs beside page 1, and beside the hand-written query.

``funnel.leads(after=last, limit=N)`` is a keyset page: ``WHERE (created_at, id) >
(:at, :id) ORDER BY created_at, id LIMIT N``, answered from the ``(created_at, id)``
index, so it costs the same however far in it is. Measured on a SQLite file of
``--leads`` leads (made with ``import_leads``), per page of ``--size``:

* ``funnel.leads(after=..., limit=...)`` at page 1 and at page ``--page``;
* the same keyset query by hand through ``sqlite3`` (documents parsed into ``Lead``s,
  as leadfunnel does): the floor;
* ``LIMIT/OFFSET`` by hand, the usual way, which reads every earlier row: what keyset
  paging avoids.

    python benchmarks/bench_paging.py                        # 100k leads, page 1,000
    python benchmarks/bench_paging.py --leads 1000000 --size 1000 --page 1000
    python benchmarks/bench_paging.py --quick
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

from leadfunnel import Funnel, Lead, SqlRepository


def rows(count: int) -> Iterator[dict[str, Any]]:
    for n in range(count):
        yield {
            "first_name": "Pat",
            "last_name": f"L{n}",
            "email": f"p{n}@co{n % 997}.example.com",
            "company": f"Co {n % 997}",
            "source": "webinar",
        }


def best(function: Callable[[], object], repeat: int = 7) -> float:
    """Milliseconds of the fastest of ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=100, help="records per page")
    parser.add_argument("--page", type=int, default=1_000, help="the far page measured")
    parser.add_argument("--quick", action="store_true", help="20k leads, page 100")
    args = parser.parse_args()
    if args.quick:
        args.leads, args.page = 20_000, 100
    if args.size * args.page > args.leads:
        parser.error("--size x --page must not exceed --leads")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "paging.db"
        funnel = Funnel(SqlRepository(f"sqlite:///{path}"))
        start = time.perf_counter()
        funnel.import_leads(rows(args.leads), chunk_size=20_000)
        made = time.perf_counter() - start
        # The cursor of page ``page``: the last lead of the page before it.
        raw = sqlite3.connect(path)
        before = (args.page - 1) * args.size
        at, id = raw.execute(
            "SELECT created_at, id FROM lf_leads ORDER BY created_at, id LIMIT 1 OFFSET ?",
            (before - 1,),
        ).fetchone()
        far_cursor = funnel.get_lead(UUID(bytes=id))
        first = funnel.leads(limit=args.size)
        far = funnel.leads(after=far_cursor, limit=args.size)
        assert len(first) == len(far) == args.size

        def keyset_by_hand(at: int, id: bytes) -> list[Lead]:
            found = raw.execute(
                "SELECT doc FROM lf_leads WHERE (created_at, id) > (?, ?) "
                "ORDER BY created_at, id LIMIT ?",
                (at, id, args.size),
            ).fetchall()
            return [Lead.model_validate_json(doc) for (doc,) in found]

        def offset_by_hand(offset: int) -> list[Lead]:
            found = raw.execute(
                "SELECT doc FROM lf_leads ORDER BY created_at, id LIMIT ? OFFSET ?",
                (args.size, offset),
            ).fetchall()
            return [Lead.model_validate_json(doc) for (doc,) in found]

        assert [x.id for x in keyset_by_hand(at, id)] == [x.id for x in far]
        assert [x.id for x in offset_by_hand(before)] == [x.id for x in far]
        zero = (-(2**62), b"")
        results = {
            "funnel.leads(after=, limit=)": (
                best(lambda: funnel.leads(limit=args.size)),
                best(lambda: funnel.leads(after=far_cursor, limit=args.size)),
            ),
            "keyset by hand (sqlite3)": (
                best(lambda: keyset_by_hand(*zero)),
                best(lambda: keyset_by_hand(at, id)),
            ),
            "LIMIT/OFFSET by hand": (
                best(lambda: offset_by_hand(0)),
                best(lambda: offset_by_hand(before)),
            ),
        }
        print(f"{args.leads:,} leads on SQLite (made in {made:.1f} s), pages of {args.size}:")
        print(f"  {'':32} {'page 1':>9} {f'page {args.page:,}':>12} {'ratio':>6}")
        for name, (one, far_ms) in results.items():
            print(f"  {name:32} {one:7.2f} ms {far_ms:9.2f} ms {far_ms / one:6.1f}")
        lf, hand = (
            results["funnel.leads(after=, limit=)"][1],
            results["keyset by hand (sqlite3)"][1],
        )
        print(f"  leadfunnel / hand-written keyset at page {args.page:,}: {lf / hand:.2f}x")


if __name__ == "__main__":
    main()
