"""schemathesis over the whole OpenAPI document: ``python -m benchmarks.fuzz --cases 10000``.

Starts the real app (``motcua serve`` under uvicorn, its own process, on a fresh PostgreSQL
database by default, one received dossier in it), loads ``/openapi.json`` from it and sends
``--cases`` generated requests spread over every operation, half valid (positive) and half
schema-violating (negative) data, signed in as an administrator. The same tests the suite runs
with six examples per operation (``tests/integration/test_api_fuzz.py``), at scale.

Prints the cases run, a status-code histogram, the number of 5xx answers (must be 0; each one
is printed with a curl command to reproduce it) and the time. Exit status 1 on any 5xx.

Operations whose input space is small (a GET without parameters) run out of distinct cases
early; their share goes to the others, round after round, until ``--cases`` are sent.
"""

from __future__ import annotations

import argparse
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DB = "postgresql://postgres@127.0.0.1:5432/motcua_fuzz_bench"
SECRET = "fuzz-bench-" + "k" * 40


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _fresh_database(url: str) -> None:
    if not url.startswith("postgresql"):
        return
    from storage.db import make_engine

    base, name = url.rsplit("/", 1)
    admin = make_engine(f"{base}/postgres")
    with admin.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()


def _seed(url: str) -> str:
    """Migrate, load the catalog and receive one dossier (so some generated codes are real)."""
    from services.context import Context
    from services.directory import sync_catalog
    from services.dossiers import Applicant, DossierIn, submit_dossier
    from states.lifecycle import Actor
    from storage.db import make_engine, migrate

    engine = make_engine(url)
    migrate(engine)
    ctx = Context(engine=engine)
    sync_catalog(ctx)
    dossier = submit_dossier(
        ctx,
        Actor("quay", "counter", "000.00.01.H37"),
        DossierIn(
            procedure_code="MOJ.lltp",
            receiving_unit="000.00.01.H37",
            applicant=Applicant(name="Vi Văn Nam", id_number="020100001111"),
            components=["request_form", "applicant_id"],
        ),
    )
    engine.dispose()
    return dossier.code


def _start_server(url: str, data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {
        **os.environ,
        "MOTCUA_DATABASE_URL": url,
        "MOTCUA_DATA_DIR": str(data_dir),
        "MOTCUA_SECRET_KEY": SECRET,
        "MOTCUA_EMBEDDED_WORKERS": "false",
        "MALLOC_ARENA_MAX": "2",
    }
    log = (data_dir / "server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-c", "from api.cli import main; main()", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"motcua serve exited; see {data_dir / 'server.log'}")
        try:
            if httpx.get(f"{base}/openapi.json", timeout=2).status_code == 200:
                return server, base
        except httpx.HTTPError:
            time.sleep(0.2)
    server.terminate()
    raise SystemExit("motcua serve did not start within 60 s")


@dataclass
class Tally:
    statuses: Counter[int] = field(default_factory=Counter)
    by_operation: Counter[str] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    transport_errors: list[str] = field(default_factory=list)
    generation_errors: list[str] = field(default_factory=list)

    @property
    def cases(self) -> int:
        return sum(self.statuses.values()) + len(self.transport_errors)


def _run_unit(
    operation: Any, mode: Any, budget: int, seed: int, headers: dict[str, str], tally: Tally
) -> int:
    """Up to ``budget`` cases of one operation in one generation mode; returns how many ran."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hypothesis_seed

    ran = 0

    @hypothesis_seed(seed)
    @settings(
        max_examples=budget,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        nonlocal ran
        ran += 1
        label = f"{case.method} {case.path}"
        tally.by_operation[label] += 1
        try:
            response = case.call(headers=headers, timeout=30)
        except Exception as exc:  # a refused or reset connection counts, never stops the run
            tally.transport_errors.append(f"{label}: {type(exc).__name__}: {exc}")
            return
        tally.statuses[response.status_code] += 1
        if response.status_code >= 500:
            tally.server_errors.append(
                f"[{response.status_code}] {case.as_curl_command(headers=headers)}\n"
                f"    {response.text[:300]}"
            )

    try:
        run()
    except Exception as exc:  # hypothesis could not generate (e.g. no negative data exists)
        tally.generation_errors.append(f"{operation.label} ({mode}): {type(exc).__name__}")
    return ran


def fuzz(
    base: str,
    cases: int,
    seed: int,
    headers: dict[str, str],
    progress: Callable[[Tally], None] | None = None,
) -> Tally:
    import schemathesis
    from schemathesis.core.result import Ok
    from schemathesis.generation.modes import GenerationMode

    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    found = list(schema.get_all_operations())
    operations = [result.ok() for result in found if isinstance(result, Ok)]
    if len(operations) != len(found):
        raise SystemExit("the OpenAPI document has operations schemathesis cannot read")
    units = [(op, mode) for op in operations for mode in GenerationMode]
    tally = Tally()
    round_ = 0
    while tally.cases < cases and units:
        budget = max(1, math.ceil((cases - tally.cases) / len(units)))
        still: list[tuple[Any, Any]] = []
        for operation, mode in units:
            left = cases - tally.cases
            if left <= 0:
                break
            ran = _run_unit(operation, mode, min(budget, left), seed + round_, headers, tally)
            if ran >= min(budget, left):  # not exhausted: may take a share of the next round
                still.append((operation, mode))
            if progress:
                progress(tally)
        units = still
        round_ += 1
    return tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument(
        "--database-url", default=os.environ.get("MOTCUA_BENCH_DATABASE_URL", DEFAULT_DB)
    )
    parser.add_argument("--seed", type=int, default=20260101)
    args = parser.parse_args()

    from services.accounts import Identity, issue_token
    from services.clock import TZ

    _fresh_database(args.database_url)
    dossier = _seed(args.database_url)
    data_dir = Path(tempfile.mkdtemp(prefix="motcua-fuzz-bench-"))
    server, base = _start_server(args.database_url, data_dir)
    admin = Identity("quantri", "Quản trị", "admin", "000.00.00.H37")
    token = issue_token(admin, SECRET, datetime.now(TZ), hours=24)
    headers = {"Authorization": f"Bearer {token}"}
    print(f"app: {base} (motcua serve, {args.database_url.split('://')[0]}); dossier {dossier}")
    last = [time.monotonic()]

    def progress(tally: Tally) -> None:
        if time.monotonic() - last[0] > 30:
            last[0] = time.monotonic()
            print(f"  … {tally.cases} cases", flush=True)

    started = time.perf_counter()
    try:
        tally = fuzz(base, args.cases, args.seed, headers, progress)
    finally:
        server.terminate()
        server.wait(15)
    elapsed = time.perf_counter() - started

    print(f"operations: {len(tally.by_operation)}; cases run: {tally.cases} in {elapsed:.0f} s "
          f"({tally.cases / elapsed:.1f} cases/s)")  # fmt: skip
    print("status codes: " + ", ".join(f"{s}: {n}" for s, n in sorted(tally.statuses.items())))
    print(f"5xx answers: {len(tally.server_errors)}")
    for line in tally.server_errors[:20]:
        print("  " + line)
    print(f"transport errors: {len(tally.transport_errors)}")
    for line in tally.transport_errors[:10]:
        print("  " + line)
    if tally.generation_errors:
        print(f"units schemathesis could not generate for: {len(tally.generation_errors)}")
    fewest = sorted(tally.by_operation.items(), key=lambda kv: kv[1])[:3]
    print("fewest cases: " + ", ".join(f"{op} {n}" for op, n in fewest))
    print(f"server log: {data_dir / 'server.log'}")
    sys.exit(1 if tally.server_errors or tally.transport_errors else 0)


if __name__ == "__main__":
    main()
