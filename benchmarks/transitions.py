"""Dossier transitions through the HTTP API on PostgreSQL, beside the stack's and the database's
own limits measured in the same run.

    .venv/bin/python -m benchmarks.transitions [--seconds 20] [--rounds 4] [--concurrency 16]
        [--workers 2]

1. Recreates the database ``motcua_transitions_bench`` on the server of ``MOTCUA_BENCH_URL``
   (default ``postgresql://postgres@127.0.0.1:5432``), migrates it, loads the catalog, one
   counter / specialist / leader per commune used, and ``--preload`` older dossiers by COPY
   (``benchmarks.dashboard``'s generator) so that the tables are not empty.
2. Starts the real API as deployed: ``motcua serve --workers N`` (uvicorn, app factory) with
   ``MALLOC_ARENA_MAX=2``, background flows off (``MOTCUA_EMBEDDED_WORKERS=false``: the outbox
   drains elsewhere), signs each officer in (``POST /api/v1/auth/token``).
3. Drives the mix with ``--concurrency`` virtual users (keep-alive connections opened 25 ms
   apart, so that they spread over the uvicorn workers; one request at a time each;
   ``benchmarks.httpload``): receive (``POST /api/v1/dossiers`` with an
   ``Idempotency-Key``) a marital-status certificate (1.004873, one commune does every step),
   forward (counter → specialist), forward (specialist → leader), approve, mark_result_ready,
   return_result (each ``POST …/events/{event}`` with ``If-Match``), and before each event, with
   probability ``--reads``, one worklist read (``GET /api/v1/dossiers?status=<step>&limit=20``
   by the officer of that step). Prints transitions/s and p50/p99 per kind, and the CPU of the
   client, the API processes (also each one) and PostgreSQL during the window.
4. In the same run: the same uvicorn serving a bare indexed read (``benchmarks.bare_app``) with
   the same client and concurrency → the framework's limit, taking turns with the mix in
   ``--rounds`` windows (so that both see the same moments of a machine whose speed drifts:
   the bare read alone moved by a fifth between runs); ``pgbench -N`` on a separate
   database of the same server → the database's limit. Prints the ratios (with the API's CPU
   per transition ÷ per bare read: steadier than the rates on a shared machine) and the goals
   (≥ 500 transitions/s, p99 < 50 ms, ≥ 50 % of the bare-read throughput), and writes
   BENCHMARKS.md (``benchmarks.report``).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from .httpload import Connection, HttpError, Recorder, install_uvloop, percentile
from .report import Report

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SERVER = os.environ.get("MOTCUA_BENCH_URL", "postgresql://postgres@127.0.0.1:5432")
DATABASE = "motcua_transitions_bench"
PGBENCH_DATABASE = "motcua_transitions_pgbench"
PROCEDURE = "1.004873"  # Cấp Giấy xác nhận tình trạng hôn nhân: intake → appraisal → approval
COMPONENTS = ["request_form", "requester_id"]
PASSWORD = "bench-password-1"
SECRET = "transitions-benchmark-secret-key-0123456789"
TRANSITIONS = ("receive", "forward", "approve", "mark_result_ready", "return_result")
# after receipt: (event, role sending it, worklist status of that officer, body)
PLAN: tuple[tuple[str, str, str, dict[str, Any]], ...] = (
    ("forward", "counter", "intake", {}),
    ("forward", "specialist", "appraisal", {}),
    ("approve", "leader", "approval", {"decision_ref": "123/GXN"}),
    ("mark_result_ready", "counter", "approved", {}),
    ("return_result", "counter", "result_ready", {}),
)
# The users connect one after the other, STAGGER_S apart, as clients arrive: 16 connections
# opened at once were all accepted by one uvicorn worker (it accepts a burst in one go), and
# with keep-alive the other worker then idled for the whole run (seen on 7 December: 0.94 and
# 0.00 cores). The API's CPU per process is printed, so that an imbalance shows.
STAGGER_S = 0.025
GOAL_TPS = 500.0
GOAL_P99_MS = 50.0
GOAL_BARE_RATIO = 0.5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def recreate(server: str, name: str) -> str:
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{server}/{name}"


# --- CPU accounting (/proc) ----------------------------------------------------------------------

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[str, int, float] | None:
    """(command, parent pid, CPU seconds) of a process, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    command = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    return command, int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK


def cpu_by_group(api_root: int | None, client_pids: list[int]) -> dict[str, float]:
    """CPU seconds so far: the API's process tree, the client processes, PostgreSQL (every
    backend of the server), and the whole machine (/proc/stat, busy time)."""
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            found = _stat(int(entry))
            if found is not None:
                stats[int(entry)] = found
    tree: set[int] = set()
    if api_root is not None and api_root in stats:
        tree.add(api_root)
        grew = True
        while grew:
            grew = False
            for pid, (_, parent, _) in stats.items():
                if parent in tree and pid not in tree:
                    tree.add(pid)
                    grew = True
    out = {
        "api": sum(stats[p][2] for p in tree),
        # each process of the API's tree, so that a worker idling beside a busy one shows
        **{f"api {pid}": stats[pid][2] for pid in tree},
        "client": sum(stats[p][2] for p in client_pids if p in stats),
        "postgres": sum(cpu for name, _, cpu in stats.values() if name.startswith("postgres")),
    }
    first = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(x) for x in first]
    out["machine"] = (sum(ticks) - ticks[3] - ticks[4]) / TICK  # minus idle and iowait
    return out


# --- the load ------------------------------------------------------------------------------------


@dataclass
class Plan:
    host: str
    port: int
    users: list[int]
    # per unit: role → bearer token
    tokens: dict[str, dict[str, str]]
    units: list[str]
    start: float  # monotonic: measurement window
    end: float
    reads: float
    kind: str  # "mix" or "bare"
    codes: list[str] = field(default_factory=list)
    seed: int = 1


def _mix_user(plan: Plan, rec: Recorder, index: int) -> Callable[[], Any]:
    rng = random.Random(plan.seed * 1_000_003 + index)
    unit = plan.units[index % len(plan.units)]
    auth = {role: {"Authorization": f"Bearer {t}"} for role, t in plan.tokens[unit].items()}

    async def run() -> None:
        await asyncio.sleep(index * STAGGER_S)
        conn = Connection(plan.host, plan.port)
        n = 0
        while time.monotonic() < plan.end:
            n += 1
            key = f"bench-{os.getpid()}-{index}-{n}"
            body = {
                "procedure_code": PROCEDURE,
                "applicant": {"name": "Nguyễn Thị Bích", "id_number": f"0{index:05d}{n:06d}"},
                "components": COMPONENTS,
            }
            try:
                r = await rec.timed(
                    "receive",
                    conn.request(
                        "POST",
                        "/api/v1/dossiers",
                        {**auth["counter"], "Idempotency-Key": key},
                        body,
                    ),
                    201,
                )
                code = r.json()["code"]
                etag = r.headers[b"etag"].decode()
                for event, role, status, payload in PLAN:
                    if rng.random() < plan.reads:
                        await rec.timed(
                            "worklist",
                            conn.request(
                                "GET", f"/api/v1/dossiers?status={status}&limit=20", auth[role]
                            ),
                        )
                    if time.monotonic() >= plan.end:
                        break
                    r = await rec.timed(
                        event,
                        conn.request(
                            "POST",
                            f"/api/v1/dossiers/{code}/events/{event}",
                            {**auth[role], "If-Match": etag},
                            payload,
                        ),
                    )
                    etag = r.headers[b"etag"].decode()
            except HttpError as error:
                if error.status >= 500 or error.status in (401, 404):
                    await asyncio.sleep(0.05)
            except (ConnectionError, OSError):
                conn.close()
                await asyncio.sleep(0.05)
        conn.close()

    return run


def _bare_user(plan: Plan, rec: Recorder, index: int) -> Callable[[], Any]:
    rng = random.Random(plan.seed * 1_000_003 + index)

    async def run() -> None:
        await asyncio.sleep(index * STAGGER_S)
        conn = Connection(plan.host, plan.port)
        while time.monotonic() < plan.end:
            code = rng.choice(plan.codes)
            try:
                await rec.timed("bare read", conn.request("GET", f"/bare/dossiers/{code}"))
            except HttpError:
                await asyncio.sleep(0.01)
            except (ConnectionError, OSError):
                conn.close()
                await asyncio.sleep(0.05)
        conn.close()

    return run


def client_process(plan: Plan, results: Any) -> None:
    """One client process: its users on one event loop; sends back latencies and its CPU."""
    install_uvloop()
    rec = Recorder(start=plan.start, end=plan.end)
    make = _mix_user if plan.kind == "mix" else _bare_user
    cpu: dict[str, float] = {}

    async def main() -> None:
        async def clock() -> None:
            await asyncio.sleep(max(0.0, plan.start - time.monotonic()))
            cpu["start"] = time.process_time()
            await asyncio.sleep(max(0.0, plan.end - time.monotonic()))
            cpu["end"] = time.process_time()

        await asyncio.gather(clock(), *(make(plan, rec, i)() for i in plan.users))

    asyncio.run(main())
    results.put((rec.latencies, rec.errors, cpu.get("end", 0.0) - cpu.get("start", 0.0)))


@dataclass
class Run:
    latencies: dict[str, list[int]]
    errors: dict[str, int]
    seconds: float
    client_cpu: float
    cpu: dict[str, float]  # seconds during the window, by group

    def rate(self, kinds: tuple[str, ...]) -> float:
        return sum(len(self.latencies.get(k, [])) for k in kinds) / self.seconds

    def merged(self, kinds: tuple[str, ...]) -> list[int]:
        return sorted(v for k in kinds for v in self.latencies.get(k, []))

    def api_cpu_ms(self, kinds: tuple[str, ...]) -> float:
        """The API's CPU milliseconds per answer of ``kinds`` (everything else it answered
        counted in): steadier than a rate on a shared machine, where both move together."""
        answered = sum(len(self.latencies.get(k, [])) for k in kinds)
        return 1000 * self.cpu["api"] / answered if answered else float("nan")


def combined(runs: list[Run]) -> Run:
    """One run of several windows: answers, errors, seconds and CPU added up."""
    latencies: dict[str, list[int]] = {}
    errors: dict[str, int] = {}
    for run in runs:
        for kind, values in run.latencies.items():
            latencies.setdefault(kind, []).extend(values)
        for kind, n in run.errors.items():
            errors[kind] = errors.get(kind, 0) + n
    cpu = {group: sum(run.cpu.get(group, 0.0) for run in runs) for group in runs[0].cpu}
    seconds = sum(run.seconds for run in runs)
    return Run(latencies, errors, seconds, sum(run.client_cpu for run in runs), cpu)


def drive(
    plan_for: Callable[[list[int], float, float], Plan],
    concurrency: int,
    processes: int,
    warmup: float,
    seconds: float,
    api_root: int,
) -> Run:
    start = time.monotonic() + warmup + 0.5
    end = start + seconds
    context = mp.get_context("fork")
    results = context.Queue()
    groups = [list(range(i, concurrency, processes)) for i in range(processes)]
    procs = [
        context.Process(target=client_process, args=(plan_for(g, start, end), results))
        for g in groups
        if g
    ]
    for p in procs:
        p.start()
    pids = [p.pid for p in procs if p.pid is not None]
    time.sleep(max(0.0, start - time.monotonic()))
    before = cpu_by_group(api_root, pids)
    time.sleep(max(0.0, end - time.monotonic()))
    after = cpu_by_group(api_root, pids)
    latencies: dict[str, list[int]] = {}
    errors: dict[str, int] = {}
    client_cpu = 0.0
    for _ in procs:
        lat, err, cpu = results.get(timeout=120)
        for k, v in lat.items():
            latencies.setdefault(k, []).extend(v)
        for k, n in err.items():
            errors[k] = errors.get(k, 0) + n
        client_cpu += cpu
    for p in procs:
        p.join(30)
    cpu = {k: after[k] - before.get(k, 0.0) for k in after}
    cpu["client"] = client_cpu
    return Run(latencies, errors, seconds, client_cpu, cpu)


# --- servers -------------------------------------------------------------------------------------


def wait_http(port: int, path: str, process: subprocess.Popen[bytes], timeout: float = 240) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with code {process.returncode}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2).close()
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"no answer on port {port}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def server_env(url: str, data_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "MOTCUA_DATABASE_URL": url,
        "MOTCUA_DATA_DIR": str(data_dir),
        "MOTCUA_SECRET_KEY": SECRET,
        "MOTCUA_EMBEDDED_WORKERS": "false",
        "MALLOC_ARENA_MAX": "2",
        "PYTHONPATH": str(ROOT),
    }


def start_api(
    url: str,
    data_dir: Path,
    port: int,
    workers: int,
    *,
    root: Path = ROOT,
    settings: dict[str, str] | None = None,
    log_name: str = "api.log",
) -> subprocess.Popen[bytes]:
    """``motcua serve`` of the checkout ``root`` (first on ``PYTHONPATH``), with ``settings``
    added to its environment; its log (access lines, tracebacks) in ``data_dir/log_name``."""
    motcua = Path(sys.executable).parent / "motcua"
    env = {**server_env(url, data_dir), "PYTHONPATH": str(root), **(settings or {})}
    log = (data_dir / log_name).open("wb")
    process = subprocess.Popen(
        [str(motcua), "serve", "--host", "127.0.0.1", "--port", str(port),
         "--workers", str(workers)],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_http(port, "/healthz", process)
    except BaseException:
        stop(process)
        raise
    return process


def start_bare(url: str, data_dir: Path, port: int, workers: int) -> subprocess.Popen[bytes]:
    """The same ``uvicorn.run`` call as ``motcua serve --workers N``, on the bare app."""
    code = (
        "import uvicorn; from api.logs import uvicorn_log_config; "
        "uvicorn.run('benchmarks.bare_app:create_app', factory=True, "
        f"host='127.0.0.1', port={port}, workers={workers}, log_config=uvicorn_log_config())"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, env=server_env(url, data_dir),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_http(port, "/bare/dossiers/none", process)
    except BaseException:
        stop(process)
        raise
    return process


# --- setup ---------------------------------------------------------------------------------------


def setup(url: str, units_wanted: int, preload: int) -> tuple[list[str], dict[str, str]]:
    """Migrate, catalog, officers (one per role and commune), older dossiers by COPY."""
    from datetime import date

    from services.catalog import default_catalog
    from services.clock import default_calendar
    from services.context import Context
    from services.demo import receiving_units
    from services.directory import create_officer, hash_password, sync_catalog
    from storage.db import make_engine, migrate

    engine = make_engine(url, pool_size=2)
    migrate(engine)
    ctx = Context(engine=engine, catalog=default_catalog(), calendar=default_calendar())
    sync_catalog(ctx)
    today = date.today()
    communes = [u for u, codes in receiving_units(ctx, today) if PROCEDURE in codes]
    communes = [u for u in communes if ctx.catalog.unit(u).kind in ("commune", "ward")]
    units = communes[:units_wanted]
    if not units:
        raise SystemExit(f"no commune takes {PROCEDURE} today")
    shared = hash_password(PASSWORD)
    users: dict[str, str] = {}
    for unit in units:
        for role in ("counter", "specialist", "leader"):
            username = f"bench_{role}_{unit}".replace(".", "_").lower()
            create_officer(ctx, username, f"{role} {unit}", role, unit, password_hash=shared)
            users[username] = unit
    if preload:
        from benchmarks.dashboard import generate

        generate(ctx, url, preload, seed=7, say=lambda _: None)
        with engine.connect() as conn:
            from sqlalchemy import text

            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
    engine.dispose()
    return units, users


def sign_in(port: int, users: dict[str, str]) -> dict[str, dict[str, str]]:
    import httpx

    tokens: dict[str, dict[str, str]] = {}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        for username, unit in users.items():
            r = client.post("/api/v1/auth/token", json={"username": username, "password": PASSWORD})
            r.raise_for_status()
            role = username.split("_")[1]
            tokens.setdefault(unit, {})[role] = r.json()["access_token"]
    return tokens


def pgbench(server: str, clients: int, seconds: int) -> tuple[float, str]:
    """``pgbench -N`` TPS on its own database of the same server (initialised here)."""
    binary = shutil.which("pgbench") or next(
        (str(p) for p in sorted(Path("/usr/lib/postgresql").glob("*/bin/pgbench"))), None
    )
    if binary is None:
        raise SystemExit("pgbench not found (PATH, /usr/lib/postgresql/*/bin)")
    url = recreate(server, PGBENCH_DATABASE)
    subprocess.run([binary, "-i", "-q", "-s", "10", url], check=True, capture_output=True)
    command = [binary, "-N", "-c", str(clients), "-j", "2", "-T", str(seconds), url]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    match = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out)
    if match is None:
        raise SystemExit(f"pgbench output not understood:\n{out}")
    return float(match.group(1)), " ".join(["pgbench", *command[1:-1], PGBENCH_DATABASE])


# --- main ----------------------------------------------------------------------------------------


def _line(name: str, values: list[int], seconds: float) -> str:
    return (
        f"  {name:<20} {len(values) / seconds:8.1f}/s   p50 {percentile(values, 0.5):6.1f} ms"
        f"   p99 {percentile(values, 0.99):6.1f} ms"
    )


def describe(
    rep: Report, run: Run, kinds: tuple[str, ...], label: str, each: tuple[str, ...] = ()
) -> None:
    """One line per kind in ``each``, then ``kinds`` together as ``label``; errors; CPU."""
    for kind in each:
        values = sorted(run.latencies.get(kind, []))
        if values:
            rep.print(_line(kind, values, run.seconds))
    rep.print(_line(label, run.merged(kinds), run.seconds))
    if run.errors:
        rep.print(f"  errors: {dict(sorted(run.errors.items()))}")
    cores = os.cpu_count() or 1
    c = run.cpu
    processes = sorted((v for k, v in c.items() if k.startswith("api ")), reverse=True)
    other = c["machine"] - c["api"] - c["client"] - c["postgres"]
    rep.print(
        "  CPU (cores busy): "
        f"API {c['api'] / run.seconds:.2f}, client {c['client'] / run.seconds:.2f}, "
        f"PostgreSQL {c['postgres'] / run.seconds:.2f}, other {other / run.seconds:.2f} "
        f"(machine {c['machine'] / run.seconds:.2f} of {cores})"
    )
    busy = [f"{v / run.seconds:.2f}" for v in processes if v / run.seconds >= 0.01]
    rep.print(f"  API per process (cores busy): {', '.join(busy)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default=DEFAULT_SERVER.rstrip("/"))
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--concurrency", type=int, default=16, help="virtual users")
    parser.add_argument("--client-processes", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--reads", type=float, default=0.5, help="worklist reads per event")
    parser.add_argument("--units", type=int, default=4, help="communes receiving")
    parser.add_argument("--preload", type=int, default=50_000, help="older dossiers (COPY)")
    parser.add_argument("--pgbench-clients", type=int, default=8)
    parser.add_argument("--pgbench-seconds", type=int, default=15)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--rounds",
        type=int,
        default=4,
        help="windows in which the mix and the bare read take turns",
    )
    args = parser.parse_args()

    rep = Report(
        "transitions",
        "Transitions through the HTTP API on PostgreSQL (`benchmarks.transitions`)",
        database_url=f"{args.server}/postgres",
    )
    url = recreate(args.server, DATABASE)
    units, users = setup(url, args.units, args.preload)
    data_dir = Path(tempfile.mkdtemp(prefix="motcua-transitions-"))
    rep.print(
        f"database {DATABASE}: {args.preload:,} older dossiers; {len(units)} communes receiving "
        f"{PROCEDURE}; API: motcua serve --workers {args.workers} (MALLOC_ARENA_MAX=2); "
        f"{args.concurrency} virtual users in {args.client_processes} client process(es); "
        f"{args.reads:g} worklist read per event; {args.warmup:g} s warm-up, {args.seconds:g} s"
    )

    port, bare_port = free_port(), free_port()
    api = start_api(url, data_dir, port, args.workers)
    bare = None
    try:
        bare = start_bare(url, data_dir, bare_port, args.workers)
        tokens = sign_in(port, users)

        def mix_plan(group: list[int], start: float, end: float) -> Plan:
            return Plan("127.0.0.1", port, group, tokens, units, start, end, args.reads, "mix",
                        seed=args.seed)  # fmt: skip

        codes: list[str] = []

        def bare_plan(group: list[int], start: float, end: float) -> Plan:
            return Plan("127.0.0.1", bare_port, group, {}, [], start, end, 0.0, "bare",
                        codes=codes, seed=args.seed)  # fmt: skip

        # the mix and the bare read take turns, so that both see the same moments of a machine
        # whose speed drifts (the bare read alone moved by a fifth between runs)
        window = args.seconds / args.rounds
        mixes: list[Run] = []
        bares: list[Run] = []
        for turn in range(args.rounds):
            warmup = args.warmup if turn == 0 else 1.0
            mixes.append(drive(mix_plan, args.concurrency, args.client_processes, warmup,
                               window, api.pid))  # fmt: skip
            if not codes:
                with psycopg.connect(url) as conn:
                    sample = "SELECT code FROM dossier ORDER BY random() LIMIT 20000"
                    codes.extend(r[0] for r in conn.execute(sample))
            bares.append(drive(bare_plan, args.concurrency, args.client_processes,
                               2.0 if turn == 0 else 1.0, window, bare.pid))  # fmt: skip
    finally:
        stop(api)
        if bare is not None:
            stop(bare)
    mix, bare_run = combined(mixes), combined(bares)
    rep.print(f"transitions (the mix; {args.rounds} windows of {window:g} s, taking turns with "
              "the bare read):")  # fmt: skip
    describe(rep, mix, TRANSITIONS, "all transitions", (*TRANSITIONS, "worklist"))
    if any(key.split()[-1].startswith("5") for key in mix.errors):
        log = (data_dir / "api.log").read_text(errors="replace").splitlines()
        causes = sorted(
            {line for line in log if re.match(r"^\w+(\.\w+)*(Error|Exception)\b", line)}
        )
        rep.print(f"  server errors in the API's log: {'; '.join(causes[:5]) or '(none logged)'}")
    reads = sorted(mix.latencies.get("worklist", []))
    tps = mix.rate(TRANSITIONS)
    all_p99 = percentile(mix.merged(TRANSITIONS), 0.99)

    with psycopg.connect(url) as conn:
        made = conn.execute("SELECT count(*) FROM dossier_event").fetchone()
    events = made[0] if made else 0
    rep.print(f"  ({len(reads):,} worklist reads; {events:,} events in the database)")

    rep.print("bare indexed read, same uvicorn + FastAPI + SQLModel, same client (the limit):")
    describe(rep, bare_run, ("bare read",), "bare read")
    bare_rps = bare_run.rate(("bare read",))

    pg_tps, pg_command = pgbench(args.server, args.pgbench_clients, args.pgbench_seconds)
    rep.print(f"pgbench -N, same server (the database's limit): {pg_tps:,.0f} TPS ({pg_command})")

    rep.print("ratios:")
    rep.print(f"  transitions/s ÷ bare reads/s = {tps:.1f} ÷ {bare_rps:.1f} = {tps / bare_rps:.2f}")
    rep.print(f"  transitions/s ÷ pgbench TPS  = {tps:.1f} ÷ {pg_tps:.0f} = {tps / pg_tps:.3f}")
    requests = mix.rate((*TRANSITIONS, "worklist"))
    rep.print(
        f"  requests/s of the mix (transitions + worklist reads) ÷ bare reads/s = "
        f"{requests:.1f} ÷ {bare_rps:.1f} = {requests / bare_rps:.2f}"
    )
    per_transition = mix.api_cpu_ms(TRANSITIONS)
    per_read = bare_run.api_cpu_ms(("bare read",))
    rep.print(
        f"  API CPU per transition (its worklist reads included) ÷ per bare read = "
        f"{per_transition:.2f} ms ÷ {per_read:.2f} ms = {per_transition / per_read:.2f}"
    )
    rep.goal(f"≥ {GOAL_TPS:.0f} transitions/s ({tps:.0f})", tps >= GOAL_TPS)
    rep.goal(f"p99 of transitions < {GOAL_P99_MS:.0f} ms ({all_p99:.1f})", all_p99 < GOAL_P99_MS)
    rep.goal(
        f"≥ {GOAL_BARE_RATIO:.0%} of the bare-read throughput ({tps / bare_rps:.0%})",
        tps / bare_rps >= GOAL_BARE_RATIO,
    )
    shutil.rmtree(data_dir, ignore_errors=True)
    rep.save()


if __name__ == "__main__":
    main()
