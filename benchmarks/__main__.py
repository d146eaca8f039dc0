"""Every benchmark in sequence (``make bench``): ``python -m benchmarks [--only a,b]``.

Each command runs in its own process with its default sizes (the dashboard at
``--dashboard-dossiers``, 1,000,000 by default; 10,000,000 is its own run, see README) and
writes its section of BENCHMARKS.md. One failing or missing a goal does not stop the others;
the exit status is 1 if any failed."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

COMMANDS = ("clock", "transitions", "dashboard", "upload", "handoffs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(COMMANDS), help="comma-separated commands")
    parser.add_argument("--dashboard-dossiers", type=int, default=1_000_000)
    args = parser.parse_args()
    chosen = [c.strip() for c in args.only.split(",") if c.strip()]
    unknown = sorted(set(chosen) - set(COMMANDS))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(COMMANDS)}")
    extra = {"dashboard": ["--dossiers", str(args.dashboard_dossiers)]}
    outcome: list[tuple[str, int, float]] = []
    for name in chosen:
        command = [sys.executable, "-m", f"benchmarks.{name}", *extra.get(name, [])]
        print(f"\n=== {' '.join(['python', *command[1:]])}", flush=True)
        started = time.perf_counter()
        code = subprocess.call(command)
        outcome.append((name, code, time.perf_counter() - started))
    print("\n=== summary (figures in BENCHMARKS.md)")
    for name, code, seconds in outcome:
        print(f"  {name:<12} exit {code}  {seconds:6.0f} s")
    sys.exit(1 if any(code for _, code, _ in outcome) else 0)


if __name__ == "__main__":
    main()
