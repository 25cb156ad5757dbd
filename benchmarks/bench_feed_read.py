"""Reading the event feed: ``funnel.events(after=p, limit=1000)`` page after page.

Each page is one range scan of the unique index on ``lf_events.position``: the cost of
a page does not grow with how far into the feed it is. Measured on a SQLite file whose
``--events`` events come from an import (one event a lead), reading the whole feed in
pages of ``--size``, beside the same pages read by hand through ``sqlite3`` (documents
parsed into ``Event``s, as leadfunnel does).

    python benchmarks/bench_feed_read.py                   # 200k events
    python benchmarks/bench_feed_read.py --events 1000000
    python benchmarks/bench_feed_read.py --quick
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from leadfunnel import Event, Funnel, SqlRepository

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def rows(count: int) -> Iterator[dict[str, Any]]:
    for n in range(count):
        yield {"first_name": "Pat", "email": f"p{n}@co{n % 997}.example.com"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--size", type=int, default=1_000)
    parser.add_argument("--quick", action="store_true", help="20k events")
    args = parser.parse_args()
    count = 20_000 if args.quick else args.events
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "feed.db"
        funnel = Funnel(SqlRepository(f"sqlite:///{path}"))
        funnel.import_leads(rows(count), chunk_size=20_000)
        raw = sqlite3.connect(path)

        def by_hand(after: int) -> list[Event]:
            found = raw.execute(
                "SELECT id, subject_id, subject, name, at, doc, position FROM lf_events "
                "WHERE position > ? ORDER BY position LIMIT ?",
                (after, args.size),
            ).fetchall()
            events = []
            for id, subject_id, subject, name, at, doc, position in found:
                data = json.loads(doc)  # a compact document: the columns complete it
                when = EPOCH + timedelta(microseconds=at)
                data.update(subject_id=UUID(bytes=subject_id), position=position)
                data.setdefault("id", UUID(bytes=id))
                data.setdefault("subject", subject)
                data.setdefault("name", name)
                data.setdefault("at", when)
                data.setdefault("created_at", when)
                data.setdefault("updated_at", when)
                data.setdefault("version", 1)
                events.append(Event.model_validate(data))
            return events

        timings: dict[str, tuple[float, list[float]]] = {}
        for name, read in (
            ("funnel.events", lambda after: funnel.events(after=after, limit=args.size)),
            ("by hand (sqlite3)", by_hand),
        ):
            pages: list[float] = []
            last, seen = 0, 0
            start = time.perf_counter()
            while True:
                began = time.perf_counter()
                batch = read(last)
                pages.append(time.perf_counter() - began)
                if not batch:
                    break
                seen += len(batch)
                last = batch[-1].position or 0
            timings[name] = (time.perf_counter() - start, pages)
            assert seen == count, (name, seen)
        print(f"{count:,} events on SQLite, pages of {args.size:,}:")
        for name, (total, pages) in timings.items():
            first = sum(pages[:10]) / 10 * 1000
            last_ten = sum(pages[-11:-1]) / 10 * 1000
            print(
                f"  {name:20} all {total:6.2f} s   first pages {first:6.2f} ms   "
                f"last pages {last_ten:6.2f} ms"
            )
        ratio = timings["funnel.events"][0] / timings["by hand (sqlite3)"][0]
        print(f"  leadfunnel / by hand: {ratio:.2f}x")


if __name__ == "__main__":
    main()
