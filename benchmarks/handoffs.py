"""Handoffs through one worker: ``uv run python -m benchmarks.handoffs``.

One worker (the ``drain-outbox`` Prefect flow in a loop, as ``motcua worker --loop`` runs it)
delivers inter-agency outbox rows to the stand-in agency (a separate process,
``motcua fake-agency``) over HTTP, on PostgreSQL by default. Prints:

1. throughput: a backlog of N committed handoffs drained → handoffs per second;
2. latency: handoffs committed at a steady rate (default 200/s) while the worker runs →
   commit → delivery (the agency's receipt) p50 / p95.

Goal (issue 5): ≥ 200 handoffs/s and p95 < 2 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import text

from .report import Report

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DB = "postgresql://postgres@127.0.0.1:5432/motcua_handoffs_bench"


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url", default=os.environ.get("MOTCUA_BENCH_DATABASE_URL", DEFAULT_DB)
    )
    parser.add_argument("--backlog", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=200.0, help="handoffs/s in the latency run")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of the latency run")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    rep = Report(
        "handoffs",
        "Inter-agency handoffs through one worker (`benchmarks.handoffs`)",
        database_url=args.database_url,
    )

    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    from services.context import Context
    from services.directory import sync_catalog
    from services.dossiers import Applicant, DossierIn, submit_dossier
    from services.settings import Settings
    from states.lifecycle import Actor
    from storage.db import make_engine, migrate
    from storage.models import Outbox
    from workflows.handoffs import build_runtime, configure, drain_loop, drain_outbox, quiet_prefect

    _fresh_database(args.database_url)
    engine = make_engine(args.database_url)
    migrate(engine)
    ctx = Context(engine=engine)
    sync_catalog(ctx)
    dossier = submit_dossier(
        ctx,
        Actor("motcua1", "counter", "000.00.01.H37"),
        DossierIn(
            procedure_code="MOJ.lltp",
            receiving_unit="000.00.01.H37",
            applicant=Applicant(name="Hoàng Văn Thụ", id_number="020099001234"),
            components=["request_form", "applicant_id"],
        ),
    )
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM outbox"))

    port = _free_port()
    agency_db = ROOT / "data" / "bench-agency.db"
    agency_db.parent.mkdir(exist_ok=True)
    agency_db.unlink(missing_ok=True)
    agency = subprocess.Popen(
        [sys.executable, "-c",
         "from api.cli_workflows import fake_agency_cmd as f; import sys; "
         f"f(port={port}, db={str(agency_db)!r})"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    agency_url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            httpx.get(f"{agency_url}/stats", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)

    settings = Settings(
        agency_default_endpoint=f"{agency_url}/police",
        agency_default_secret="bench",
        outbox_batch_size=args.batch_size,
        outbox_concurrency=args.concurrency,
        outbox_backoff_s=0.5,
    )
    configure(build_runtime(ctx, settings))
    table = Outbox.__table__  # type: ignore[attr-defined]

    def rows(n: int) -> list[dict[str, object]]:
        now = datetime.now(UTC)
        return [
            {"dossier_id": dossier.id, "kind": "inter_agency", "target": "000.00.20.H37",
             "payload": {"code": dossier.code, "event": "forward", "step": "verification"},
             "status": "pending", "attempts": 0, "created_at": now, "available_at": now}
            for _ in range(n)
        ]  # fmt: skip

    def pending() -> int:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    text("SELECT count(*) FROM outbox WHERE status <> 'done'")
                ).scalar_one()
            )

    try:
        with quiet_prefect():
            print("Prefect: starting the local API (first flow run)…", flush=True)
            drain_outbox(max_batches=1)  # warm-up: the ephemeral server starts here

            # 1. throughput on a committed backlog
            with engine.begin() as conn:
                conn.execute(table.insert(), rows(args.backlog))
            started = time.perf_counter()
            stop = threading.Event()
            worker = threading.Thread(
                target=drain_loop, args=(stop,), kwargs={"poll_s": 0.02, "max_batches": 50}
            )
            worker.start()
            while pending():
                time.sleep(0.02)
            elapsed = time.perf_counter() - started
            throughput = args.backlog / elapsed

            # 2. commit → delivery latency at a steady rate
            mark = time.time()
            tick = 0.05
            per_tick = max(1, round(args.rate * tick))
            commits = 0
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < args.seconds:
                with engine.begin() as conn:
                    conn.execute(table.insert(), rows(per_tick))
                commits += per_tick
                ahead = t0 + commits / args.rate - time.perf_counter()
                if ahead > 0:
                    time.sleep(ahead)
            deadline = time.monotonic() + 60
            while pending() and time.monotonic() < deadline:
                time.sleep(0.05)
            stop.set()
            worker.join()
    finally:
        agency.terminate()
        agency.wait(10)

    import sqlite3

    with sqlite3.connect(agency_db) as db:
        received = {key: first for key, first in db.execute("SELECT key, first_at FROM delivery")}
        copies = db.execute("SELECT COALESCE(SUM(copies), 0) FROM delivery").fetchone()[0]
    with engine.connect() as conn:
        created = {
            f"motcua-outbox-{i}": at.timestamp()
            for i, at in conn.execute(text("SELECT id, created_at FROM outbox"))
            if at.timestamp() >= mark
        }
    latencies = sorted(received[k] - t for k, t in created.items() if k in received)
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    say = rep.print
    say(f"database: {engine.dialect.name}; batch {args.batch_size}, {args.concurrency} in flight")
    say(
        f"throughput: {args.backlog} handoffs in {elapsed:.2f} s → "
        f"{throughput:.0f} handoffs/s through one worker"
    )
    say(
        f"latency at {args.rate:.0f}/s for {args.seconds:.0f} s ({len(latencies)} handoffs): "
        f"commit → delivery p50 {q[49] * 1000:.0f} ms, p95 {q[94] * 1000:.0f} ms, "
        f"max {latencies[-1] * 1000:.0f} ms"
    )
    say(
        f"agency: {len(received)} unique deliveries, {copies - len(received)} duplicates "
        f"(of {args.backlog + commits} committed)"
    )
    rep.goal(f"≥ 200 handoffs/s ({throughput:.0f})", throughput >= 200)
    rep.goal(f"commit → delivery p95 < 2 s ({q[94]:.2f} s)", q[94] < 2)
    rep.goal(f"no duplicate delivery ({copies - len(received)})", copies == len(received))
    rep.save()


if __name__ == "__main__":
    main()
