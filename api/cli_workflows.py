"""CLI of the workflows: ``motcua worker``, ``motcua fake-agency``, ``motcua outbox …``,
``motcua portal reconcile``."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

console = Console(width=None if sys.stdout.isatty() else 160)

outbox_app = typer.Typer(help="Hộp thư đi / the outbox", no_args_is_help=True)
portal_app = typer.Typer(help="Cổng DVC quốc gia / national portal sync", no_args_is_help=True)


# --- motcua worker -------------------------------------------------------------------------
def worker_cmd(
    serve: Annotated[
        bool | None,
        typer.Option(
            "--serve/--loop",
            help="serve the Prefect deployments (default when PREFECT_API_URL is set) or run "
            "the loops in this process",
        ),
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="rows per batch")] = None,
    poll_s: Annotated[float | None, typer.Option(help="seconds between idle checks")] = None,
    deadlines: Annotated[bool, typer.Option("--deadlines/--no-deadlines")] = True,
) -> None:
    """Chạy luồng xử lý nền / drain the outbox and watch deadlines.

    ``--loop`` (default without ``PREFECT_API_URL``): the drain loop and the deadline watch
    run in this process, each sweep a Prefect flow run. ``--serve`` (default with
    ``PREFECT_API_URL``): serve the ``drain-outbox`` and ``deadline-watch`` deployments on
    that Prefect server — any number of workers on any number of machines."""
    from api.deps import open_context
    from workflows.deploy import serve_deployments, start_embedded_workers

    if serve is None:
        from prefect.settings import PREFECT_API_URL

        serve = bool(PREFECT_API_URL.value())
    if serve:
        serve_deployments(batch_size=batch_size)
        return
    ctx = open_context()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    from workflows.handoffs import drain_loop

    workers = start_embedded_workers(ctx, drain=False, deadlines=deadlines)
    console.print("motcua worker: draining the outbox (Ctrl+C to stop)")
    drain_loop(stop, batch_size=batch_size, poll_s=poll_s)
    workers.stop()


# --- motcua fake-agency --------------------------------------------------------------------
class _Store:
    """What the stand-in agency received, keyed by idempotency key (SQLite file or memory)."""

    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS delivery (key TEXT PRIMARY KEY, path TEXT, body TEXT, "
            "first_at REAL, copies INTEGER)"
        )
        self.db.execute("CREATE TABLE IF NOT EXISTS counter (name TEXT PRIMARY KEY, n INTEGER)")
        self.lock = threading.Lock()

    def bump(self, name: str) -> None:
        with self.lock:
            self.db.execute(
                "INSERT INTO counter VALUES (?, 1) ON CONFLICT(name) DO UPDATE SET n = n + 1",
                (name,),
            )

    def store(self, key: str, path: str, body: str) -> bool:
        """True for the first copy of ``key``, False for a duplicate."""
        with self.lock:
            cur = self.db.execute(
                "INSERT INTO delivery VALUES (?, ?, ?, ?, 1) ON CONFLICT(key) DO NOTHING",
                (key, path, body, time.time()),
            )
            if cur.rowcount == 1:
                return True
            self.db.execute("UPDATE delivery SET copies = copies + 1 WHERE key = ?", (key,))
            return False

    def stats(self) -> dict[str, Any]:
        with self.lock:
            unique, copies = self.db.execute(
                "SELECT COUNT(*), COALESCE(SUM(copies), 0) FROM delivery"
            ).fetchone()
            counters = dict(self.db.execute("SELECT name, n FROM counter").fetchall())
        return {
            "unique": unique,
            "duplicates": copies - unique,
            "requests": counters.get("requests", 0),
            "failed": counters.get("failed", 0),
            "timed_out": counters.get("timed_out", 0),
            "answers_sent": counters.get("answers_sent", 0),
        }

    def deliveries(self, limit: int) -> list[dict[str, Any]]:
        with self.lock:
            rows = self.db.execute(
                "SELECT key, path, body, first_at, copies FROM delivery ORDER BY first_at LIMIT ?",
                (limit,),
            ).fetchall()
        return [
            {"key": k, "path": p, "body": json.loads(b), "first_at": t, "copies": c}
            for k, p, b, t, c in rows
        ]


def make_fake_agency(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    fail_rate: float = 0.0,
    timeout_rate: float = 0.0,
    delay_ms: int = 0,
    hang_ms: int = 30_000,
    db: str = ":memory:",
    secret: str | None = None,
    answer_delay_ms: int = 200,
    seed: int | None = None,
) -> ThreadingHTTPServer:
    """A stand-in for another agency's system (and for the national portal, on any path)."""
    store = _Store(db)
    rng = random.Random(seed)
    rng_lock = threading.Lock()

    def roll() -> float:
        with rng_lock:
            return rng.random()

    def answer(payload: dict[str, Any]) -> None:
        from services.agencies import signed_headers

        assert secret is not None
        body = json.dumps(
            {
                "answer_id": f"answer-{payload['idempotency_key']}",
                "dossier_code": payload["dossier"]["code"],
                "idempotency_key": payload["idempotency_key"],
                "outcome": "forward",
                "note": "Đã xác minh: không có án tích",
            },
            ensure_ascii=False,
        ).encode()
        for attempt in range(5):
            try:
                response = httpx.post(
                    payload["callback_url"],
                    content=body,
                    headers={"Content-Type": "application/json", **signed_headers(secret, body)},
                    timeout=10,
                )
                if response.status_code < 500:
                    store.bump("answers_sent")
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2 * 2**attempt)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out at once: no 40 ms stalls

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _send(self, status: int, data: dict[str, Any]) -> None:
            raw = json.dumps(data, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self) -> None:
            if self.path.startswith("/stats"):
                self._send(200, store.stats())
            elif self.path.startswith("/deliveries"):
                self._send(200, {"deliveries": store.deliveries(100_000)})
            else:
                self._send(404, {"error": "not found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            store.bump("requests")
            try:
                payload = json.loads(raw or b"{}")
            except ValueError:
                self._send(400, {"error": "bad json"})
                return
            key = self.headers.get("Idempotency-Key") or payload.get("idempotency_key")
            if not key:
                self._send(400, {"error": "Idempotency-Key required"})
                return
            if delay_ms:
                time.sleep(delay_ms / 1000)
            dice = roll()
            if dice < fail_rate / 2:  # fails before storing anything
                store.bump("failed")
                self._send(503, {"error": "unavailable"})
                return
            first = store.store(key, self.path, raw.decode() or "{}")
            if first and secret and payload.get("callback_url"):
                threading.Timer(answer_delay_ms / 1000, answer, args=(payload,)).start()
            if dice < fail_rate:  # stored, but the answer is lost: the sender retries
                store.bump("failed")
                self._send(500, {"error": "internal error"})
                return
            if dice < fail_rate + timeout_rate:  # stored, then hangs past the sender's timeout
                store.bump("timed_out")
                time.sleep(hang_ms / 1000)
            self._send(200, {"received": key, "duplicate": not first})

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def fake_agency_cmd(
    port: Annotated[int, typer.Option(help="TCP port on loopback")] = 8900,
    fail_rate: Annotated[float, typer.Option(help="share of calls answered with an error")] = 0.0,
    timeout_rate: Annotated[
        float, typer.Option(help="share of calls that hang past the caller's timeout")
    ] = 0.0,
    delay_ms: Annotated[int, typer.Option(help="delay before each answer")] = 0,
    hang_ms: Annotated[int, typer.Option(help="how long a timed-out call hangs")] = 30_000,
    db: Annotated[str, typer.Option(help="SQLite file of what was received")] = ":memory:",
    secret: Annotated[
        str | None, typer.Option(help="shared secret: answer through the signed callback")
    ] = None,
    answer_delay_ms: Annotated[int, typer.Option(help="delay before the callback")] = 200,
    host: Annotated[str, typer.Option()] = "127.0.0.1",
) -> None:
    """Hệ thống cơ quan giả lập / a stand-in agency system (and portal) on loopback.

    Stores each delivery keyed by its idempotency key; ``GET /stats`` gives the unique count
    and the duplicates; fails or times out at the given rates."""
    server = make_fake_agency(
        host=host,
        port=port,
        fail_rate=fail_rate,
        timeout_rate=timeout_rate,
        delay_ms=delay_ms,
        hang_ms=hang_ms,
        db=db,
        secret=secret,
        answer_delay_ms=answer_delay_ms,
    )
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"fake agency on http://{host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


# --- motcua outbox … / portal … --------------------------------------------------------------
@outbox_app.command("dead-letters")
def dead_letters_cmd(
    limit: Annotated[int, typer.Option()] = 100,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Bản tin không gửi được / rows that will not be retried any more."""
    from api.deps import open_context
    from services.outbox import dead_letters

    rows = dead_letters(open_context(), limit=limit)
    if as_json:
        print(
            json.dumps(
                [{**r.__dict__, "created_at": r.created_at.isoformat()} for r in rows],
                ensure_ascii=False,
            )
        )
        return
    table = Table("#", "Loại / kind", "Đích / target", "Hồ sơ", "Lần thử", "Tạo lúc", "Lỗi cuối")
    for r in rows:
        table.add_row(
            str(r.id), r.kind, r.target or "", r.code or "", str(r.attempts),
            r.created_at.isoformat(timespec="seconds"), (r.last_error or "")[:80],
        )  # fmt: skip
    console.print(table)
    console.print(f"{len(rows)} dead letter(s)")


@outbox_app.command("requeue")
def requeue_cmd(ids: list[int]) -> None:
    """Gửi lại bản tin lỗi / give dead letters another round of attempts."""
    from api.deps import open_context
    from services.outbox import requeue_dead

    console.print(f"{requeue_dead(open_context(), ids)} row(s) requeued")


@outbox_app.command("status")
def outbox_status_cmd() -> None:
    """Số bản tin theo trạng thái / rows per status."""
    from api.deps import open_context
    from services.outbox import counts

    print(json.dumps(counts(open_context())))


@portal_app.command("reconcile")
def portal_reconcile_cmd(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Hồ sơ đồng bộ lỗi / dossiers whose last portal sync failed."""
    from api.deps import open_context
    from services.portal_sync import reconcile

    rows = reconcile(open_context())
    if as_json:
        print(
            json.dumps([{**r.__dict__, "at": r.at.isoformat()} for r in rows], ensure_ascii=False)
        )
        return
    table = Table("Hồ sơ", "Bản tin", "Mã trạng thái cổng", "Trạng thái", "Lần thử", "Lỗi cuối")
    for r in rows:
        table.add_row(
            r.dossier_code, str(r.outbox_id), r.portal_status or "", r.status,
            str(r.attempts), (r.last_error or "")[:80],
        )  # fmt: skip
    console.print(table)
    console.print(f"{len(rows)} dossier(s) with a failed last sync")


__all__ = [
    "dead_letters_cmd",
    "fake_agency_cmd",
    "make_fake_agency",
    "outbox_app",
    "portal_app",
    "worker_cmd",
]
