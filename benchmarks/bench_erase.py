"""Erasing many people: ``funnel.erase`` person after person, then ``compact()``.

Target (issue 14): 10,000 people erased from a SQLite database of a million leads in
under a minute. Each erasure is one transaction that reads the person, their history,
touches and merge logs, scrubs them and writes the suppression hashes; ``compact()``
(VACUUM and a WAL truncation) runs once at the end. Beside it, a floor written by hand
with ``sqlite3``: per person, one transaction that blanks the document and the indexed
personal columns and deletes the key rows (no history, touches or hashes: less work
than an erasure, so the ratio is an upper bound on the overhead).

    python benchmarks/bench_erase.py                          # 100k leads, 1,000 erased
    python benchmarks/bench_erase.py --leads 1000000 --erase 10000
    python benchmarks/bench_erase.py --quick
"""

from __future__ import annotations

import argparse
import random
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from leadfunnel import Funnel, SqlRepository


def rows(count: int) -> Iterator[dict[str, Any]]:
    for n in range(count):
        yield {
            "first_name": "Pat",
            "last_name": f"L{n}",
            "email": f"p{n}@co{n % 997}.example.com",
            "phone": f"+1512{n:07d}"[:12],
            "company": f"Co {n % 997}",
            "notes": f"met at booth {n}",
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--erase", type=int, default=1_000)
    parser.add_argument("--quick", action="store_true", help="20k leads, 200 erased")
    args = parser.parse_args()
    if args.quick:
        args.leads, args.erase = 20_000, 200
    chosen = random.Random(7).sample(range(args.leads), args.erase)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "erase.db"
        funnel = Funnel(SqlRepository(f"sqlite:///{path}"), suppression_secret="bench")
        start = time.perf_counter()
        funnel.import_leads(rows(args.leads), chunk_size=20_000)
        made = time.perf_counter() - start
        copy = Path(folder) / "hand.db"
        funnel.repository.close()
        shutil.copy(path, copy)
        funnel = Funnel(SqlRepository(f"sqlite:///{path}"), suppression_secret="bench")

        start = time.perf_counter()
        for n in chosen:
            person = funnel.find(email=f"p{n}@co{n % 997}.example.com")
            assert person is not None
            funnel.erase(person, reason="erasure request")
        erased = time.perf_counter() - start
        start = time.perf_counter()
        funnel.repository.compact()
        compacted = time.perf_counter() - start
        assert funnel.find(email=f"p{chosen[0]}@co{chosen[0] % 997}.example.com") is None

        raw = sqlite3.connect(copy, isolation_level=None)
        start = time.perf_counter()
        for n in chosen:
            key = f"email:p{n}@co{n % 997}.example.com"
            raw.execute("BEGIN IMMEDIATE")
            (holder,) = raw.execute(
                "SELECT record_id FROM lf_keys WHERE key = ?", (key,)
            ).fetchone()
            raw.execute(
                "UPDATE lf_leads SET doc = json_remove(doc, '$.first_name', '$.last_name', "
                "'$.email', '$.phone', '$.company', '$.notes'), email_domain = NULL, "
                "company_key = NULL, last_name_key = NULL, version = version + 1 "
                "WHERE id = ?",
                (holder,),
            )
            raw.execute("DELETE FROM lf_keys WHERE record_id = ?", (holder,))
            raw.execute("COMMIT")
        by_hand = time.perf_counter() - start
        raw.close()

    per = erased / args.erase * 1e3
    print(f"{args.leads:,} leads on SQLite (made in {made:.0f} s); {args.erase:,} erased:")
    print(f"  funnel.erase, one by one      {erased:7.1f} s   ({per:.2f} ms a person)")
    print(f"  repository.compact()          {compacted:7.1f} s")
    print(f"  together                      {erased + compacted:7.1f} s")
    print(f"  floor by hand (sqlite3)       {by_hand:7.1f} s   ({erased / by_hand:.1f}x)")


if __name__ == "__main__":
    main()
