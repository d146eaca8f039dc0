"""Due-date computations per second on the working calendar.

    uv run python -m benchmarks.clock [--n 200000]

Random receipts over 2024–2026 (Tết, swapped days, after-15:00 receipts) with limits from the
catalog's range (0 to 20 working days, halves), computed by the one clock every service uses."""

from __future__ import annotations

import argparse
import random
import time
from datetime import datetime, timedelta
from decimal import Decimal

from services.clock import TZ, default_calendar

from .report import Report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rep = Report("clock", "Due-date computations (`benchmarks.clock`)")
    rng = random.Random(args.seed)
    calendar = default_calendar()
    base = datetime(2024, 1, 1, tzinfo=TZ)
    cases = [
        (
            base + timedelta(minutes=rng.randrange(0, 3 * 365 * 24 * 60)),
            Decimal(rng.randrange(0, 41)) / 2,
        )
        for _ in range(args.n)
    ]
    calendar.due_at_receipt(cases[0][0], cases[0][1])  # warm the caches
    started = time.perf_counter()
    for received, days in cases:
        calendar.due_at_receipt(received, days)
    elapsed = time.perf_counter() - started
    rep.print(f"due-date computations: {args.n:,} in {elapsed:.2f} s")
    rep.print(f"throughput: {args.n / elapsed:,.0f} per second (one core)")
    rep.print(f"mean: {elapsed / args.n * 1e6:.1f} µs per due date")
    rep.save()


if __name__ == "__main__":
    main()
