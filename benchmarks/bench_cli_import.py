"""``leadfunnel import`` of a generated Salesforce Lead export into SQLite.

Writes a Salesforce-style CSV (API field names, money like "$2,500,000", opt-out flags,
a few bad and duplicate rows), runs the real command in a child process, and prints rows
per second and the child's peak resident memory. Target (issue 7): memory flat, under
300 MB for 1M rows.

    python benchmarks/bench_cli_import.py --quick        # 10k rows (default 20k)
    python benchmarks/bench_cli_import.py --rows 1000000
"""

from __future__ import annotations

import argparse
import csv
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEADER = [
    "FirstName", "LastName", "Email", "Phone", "Company", "Title", "Industry",
    "NumberOfEmployees", "AnnualRevenue", "Country", "State", "City", "PostalCode",
    "LeadSource", "Status", "HasOptedOutOfEmail", "DoNotCall",
]  # fmt: skip


def write_csv(path: Path, rows: int) -> None:
    rng = random.Random(1)
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for n in range(rows):
            email = f"lead{n}@company{n}.example.com" if n % 500 else "not-an-email"
            if n % 997 == 0 and n:
                email = f"lead{n - 1}@company{n - 1}.example.com"  # a duplicate
            writer.writerow([
                rng.choice(["Pat", "Sam", "Alex"]), f"Rivera{n}", email,
                f"+1 512 {200 + n // 10_000 % 800:03d} {n % 10_000:04d}", f"Company {n}",
                rng.choice(["CEO", "Owner", "IT Manager"]),
                rng.choice(["IT Services", "Retail", "Accounting"]),
                rng.randrange(1, 500), f"${rng.randrange(50_000, 9_000_000):,}",
                rng.choice(["United States", "USA", "Canada"]), "TX", "Austin", "78701",
                rng.choice(["Webinar", "Web", "Trade Show"]), "Open - Not Contacted",
                rng.choice(["0", "1"]), "0",
            ])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10k rows")
    parser.add_argument("--rows", type=int, default=20_000)
    args = parser.parse_args()
    rows = 10_000 if args.quick else args.rows
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "salesforce-leads.csv"
        write_csv(source, rows)
        size = source.stat().st_size / 1e6
        start = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "leadfunnel", "import", str(source),
             "--db", f"sqlite:///{Path(folder) / 'import.db'}",
             "--rejects", str(Path(folder) / "rejects.csv")],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        took = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"file: {rows:,} rows, {size:.1f} MB")
        print(f"import: {result.stdout.splitlines()[0]}")
        print(f"time: {took:.1f} s, {rows / took:,.0f} rows/s")
        print(f"peak memory of the leadfunnel process: {peak:.0f} MB (target < 300 MB)")


if __name__ == "__main__":
    main()
